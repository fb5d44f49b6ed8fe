"""Clustering benchmark: what a selective query gains from each layout of the same table, in one run.

The table: ``--partitions`` day partitions x ``--files`` small files x ``--rows-per-file`` rows (default 4 x 250 x
4,000 = 4 M rows) with ``user_id`` (uniform over 0..100k, or Zipf-skewed), a low-cardinality ``country``
(30 values), ``ts`` (the partition's day), ``amount`` and a ``note``. Built once per format and distribution;
every contestant gets its own copy of the same small files:

  small files      nothing done (what a stream leaves behind)
  compaction       lakehouse optimize (bin-packing, no clustering)
  morton           lakehouse optimize --zorder user_id,ts --curve morton
  hilbert          lakehouse optimize --zorder user_id,ts --curve hilbert
  delta-rs         delta-rs ``optimize.z_order(["user_id", "ts"])`` (Delta)
  spark            Spark + Iceberg ``rewrite_data_files(strategy => 'sort', sort_order => 'zorder(user_id, ts)')``
                   through lakehouse's Spark engine (Iceberg, with --spark; the session start is timed apart)

Each rewrite runs in a child process (its peak RSS is its own) with the memory budget ``--memory``. Then, for
1 %-selectivity predicates on ``user_id`` alone, on ``ts`` alone and on both (and ``country`` = one value, a
column nobody clusters by), it prints the row groups min/max statistics let a reader skip, the rows it still
decodes, and the query time (medians of ``--repeat``): DuckDB's own on the relation lakehouse's engine reads
for the query (``ms``: the table's files as lakehouse plans them, lakehouse.sql.planned) and on the format's
scan (``scan``: delta_scan / iceberg_scan), the whole ``lakehouse query`` (``lh``: resolving the table, the
allow-list, planning), and the query as the API runs it (``isolated``: in a worker process, the table streamed
to it by lakehouse's reader, which skips by statistics what the WHERE clause rules out); the ratios (of each of
the first three) are against the small files and against compaction alone, and the full-scan time says what
the smaller row groups cost. Last, 5 % more data
arrives as small files and the hilbert layout is clustered again: the share of the table's bytes that second
run rewrites.

    .venv/bin/python benchmarks/clustering_bench.py [--formats delta,iceberg] [--dists uniform,zipf]
        [--partitions 4 --files 250 --rows-per-file 4000] [--memory 256MB] [--spark]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve()
sys.path.insert(0, str(HERE.parent))
from _child import run_child as _run_child  # noqa: E402
from _child import vm_hwm  # noqa: E402

SCHEMA_TEXT = "id:int64 not null, ts:timestamp not null, user_id:int64, country:string, amount:float64, note:string"
COLUMNS = ("user_id", "ts")


def batches(dist: str, partitions: int, files: int, rows: int, *, seed: int, start_id: int = 0) -> Any:
    """``files`` x ``partitions`` Arrow tables, deterministic for a seed."""
    import numpy as np
    import pyarrow as pa

    from lakehouse.schema import parse_schema

    schema = parse_schema(SCHEMA_TEXT)
    rng = np.random.default_rng(seed)
    base = np.datetime64("2026-01-01T00:00:00", "us")
    countries = np.array([f"C{i:02d}" for i in range(30)])
    n = start_id
    for _ in range(files):
        for p in range(partitions):
            users = rng.zipf(1.3, rows) % 100_000 if dist == "zipf" else rng.integers(0, 100_000, rows)
            micros = rng.integers(0, 86_400_000_000, rows).astype("timedelta64[us]")
            yield (
                p,
                pa.table(
                    {
                        "id": pa.array(np.arange(n, n + rows)),
                        "ts": pa.array(base + np.timedelta64(p, "D") + micros).cast(pa.timestamp("us", "UTC")),
                        "user_id": pa.array(users.astype(np.int64)),
                        "country": pa.array(countries[rng.integers(0, 30, rows)]),
                        "amount": pa.array(rng.random(rows) * 100),
                        "note": pa.array([f"event {i} lorem ipsum dolor sit" for i in range(n, n + rows)]),
                    },
                    schema=schema,
                ),
            )
            n += rows


def build_pool(root: str, args: argparse.Namespace, dist: str) -> tuple[str, str]:
    """The small files once: a Delta table (copied per contestant: its log uses relative paths) and a directory
    of Parquet files per partition (added to each Iceberg contestant's own table)."""
    import pyarrow.parquet as pq

    from lakehouse.config import load_settings
    from lakehouse.core import Lakehouse
    from lakehouse.schema import parse_partitioning, parse_schema

    delta_root, files_root = f"{root}/delta-template", f"{root}/parquet-pool"
    os.makedirs(files_root, exist_ok=True)
    with Lakehouse(load_settings(config_file=False, warehouse=f"{root}/template-wh")) as lh:
        table = lh.create_table(
            "b.t",
            schema=parse_schema(SCHEMA_TEXT),
            format="delta",
            partitioning=parse_partitioning("day(ts)"),
            location=delta_root,
        )
        for i, (p, data) in enumerate(batches(dist, args.partitions, args.files, args.rows_per_file, seed=1)):
            os.makedirs(f"{files_root}/p{p}", exist_ok=True)
            pq.write_table(data, f"{files_root}/p{p}/f{i:05d}.parquet", compression="snappy")
            table.append(data)
            if i % 50 == 0:
                print(f"\r  {dist}: {i + 1} small files", end="", file=sys.stderr)
    print(file=sys.stderr)
    return delta_root, files_root


def new_table(root: str, fmt: str, delta_template: str, pool: str) -> None:
    """A contestant's own table of the small files."""
    from lakehouse.config import load_settings
    from lakehouse.core import Lakehouse
    from lakehouse.schema import parse_partitioning, parse_schema

    with Lakehouse(load_settings(config_file=False, warehouse=f"{root}/wh")) as lh:
        if fmt == "delta":
            shutil.copytree(delta_template, f"{root}/table")
            lh.register_table("b.t", location=f"{root}/table", format="delta")
            return
        table = lh.create_table(
            "b.t", schema=parse_schema(SCHEMA_TEXT), format="iceberg", partitioning=parse_partitioning("day(ts)")
        )
        add_files(table, sorted(str(p) for p in Path(pool).rglob("*.parquet")), f"{table.location}/data/added")


def add_files(table: Any, paths: list[str], into: str) -> None:
    """Add existing Parquet files to an Iceberg table in one commit (metadata only), as copies of its own."""
    os.makedirs(into, exist_ok=True)
    copies = []
    for p in paths:
        target = f"{into}/{Path(p).parent.name}-{Path(p).name}"
        shutil.copyfile(p, target)
        copies.append(target)
    table._table.refresh()
    table._table.add_files(copies)


def child(spec: dict[str, Any]) -> dict[str, Any]:
    """One rewrite, in its own process."""
    from lakehouse.config import load_settings
    from lakehouse.core import Lakehouse
    from lakehouse.maintenance.compaction import optimize
    from lakehouse.maintenance.planner import CompactionOptions
    from lakehouse.units import parse_size

    name, root = spec["contestant"], spec["root"]
    budget = parse_size(spec["memory"])
    out: dict[str, Any] = {"contestant": name}
    with Lakehouse(load_settings(config_file=False, warehouse=f"{root}/wh")) as lh:
        table = lh.table("b.t")
        out["mb_in"] = round(sum(f.size_bytes for f in table.files()) / 1e6, 1)
        t0 = time.perf_counter()
        if name == "compaction":
            r = optimize(lh, "b.t", CompactionOptions(target_file_size=512 << 20, memory_budget=budget))
            out["rows"] = r.rows_out
        elif name in ("morton", "hilbert", "hilbert-again"):
            opts = CompactionOptions(
                target_file_size=512 << 20, memory_budget=budget, zorder=COLUMNS, curve=name.split("-")[0]
            )
            r = optimize(lh, "b.t", opts)
            out["rows"] = r.rows_out
            out["bytes_rewritten"] = sum(p.input_bytes for p in r.plan.picked)
            out["bytes_table"] = sum(sum(f.size_bytes for f in p.files) for p in r.plan.partitions)
        elif name == "delta-rs":
            from deltalake import DeltaTable

            DeltaTable(table.location).optimize.z_order(list(COLUMNS))
        elif name == "spark":
            engine = lh.spark()
            engine.session()
            out["spark_startup_s"] = round(time.perf_counter() - t0, 2)
            t0 = time.perf_counter()
            opts = CompactionOptions(target_file_size=512 << 20, zorder=COLUMNS)
            optimize(lh, "b.t", opts, engine="spark")
            pid = engine.jvm_pid()
            out["jvm_peak_rss_mb"] = vm_hwm(pid) if pid else None
        out["seconds"] = round(time.perf_counter() - t0, 2)
        out["files_after"] = len(lh.table("b.t").files())
    # VmHWM of this process's own address space: getrusage's ru_maxrss would not do, since Linux folds the
    # high-water mark of the image before execve into it, and this child was forked from the bench process (which
    # grows as it builds and queries tables): every later child then reported at least the parent's size
    out["peak_rss_mb"] = round(vm_hwm(os.getpid()) or 0.0, 1)
    return out


def run_child(spec: dict[str, Any]) -> dict[str, Any]:
    return _run_child(HERE, spec, spec["contestant"])


def predicates(root: str) -> dict[str, str]:
    """1 %-selectivity predicates from the data itself: a user_id range (from the upper half of its values, so
    a skewed column's hot values are not the whole 1 %), a ts range of 1 % of the time span, both, and one
    country."""
    import duckdb

    from lakehouse.config import load_settings
    from lakehouse.core import Lakehouse

    with Lakehouse(load_settings(config_file=False, warehouse=f"{root}/wh")) as lh:
        files = [f.path for f in lh.table("b.t").files()]
    con = duckdb.connect()
    src = "read_parquet([" + ", ".join(f"'{p}'" for p in files) + "])"
    total = con.execute(f"SELECT count(*) FROM {src}").fetchone()[0]  # type: ignore[index]
    counts = con.execute(f"SELECT user_id, count(*) FROM {src} GROUP BY 1 ORDER BY 1").fetchall()
    start = next(i for i, (_, _) in enumerate(counts) if sum(c for _, c in counts[: i + 1]) >= total * 0.6)
    acc, end = 0, start
    while end < len(counts) and acc < total * 0.01:
        acc += counts[end][1]
        end += 1
    lo_u, hi_u = counts[start][0], counts[end - 1][0]
    lo_t, hi_t = con.execute(f"SELECT epoch_us(min(ts)), epoch_us(max(ts)) FROM {src}").fetchone()  # type: ignore[misc]
    import datetime as dt

    def at(share: float) -> dt.datetime:
        return dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=int(lo_t + (hi_t - lo_t) * share))

    t0, t1 = at(0.30), at(0.31)
    ts = f"ts BETWEEN '{t0.isoformat()}' AND '{t1.isoformat()}'"
    user = f"user_id BETWEEN {lo_u} AND {hi_u}"
    return {"user_id": user, "ts": ts, "both": f"{user} AND {ts}", "country": "country = 'C07'"}


def measure(root: str, preds: dict[str, str], repeat: int) -> dict[str, Any]:
    from lakehouse.config import load_settings
    from lakehouse.core import Lakehouse
    from lakehouse.maintenance.health import data_skipping
    from lakehouse.sql.planned import plan_read
    from lakehouse.sql.pushdown import pushable

    out: dict[str, Any] = {}
    with Lakehouse(load_settings(config_file=False, warehouse=f"{root}/wh")) as lh:
        table = lh.table("b.t")
        files = table.files()
        out["files"] = len(files)
        out["mb"] = round(sum(f.size_bytes for f in files) / 1e6, 1)
        # DuckDB's own time, twice: on the relation lakehouse's engine reads for the query (the files it plans,
        # lakehouse.sql.planned) and on the format's scan (delta_scan / iceberg_scan, which replays the log or the
        # manifests each time); then the whole `lakehouse query` (resolving the table, the allow-list, planning)
        # and the query as the API runs it (a worker process, the table streamed to it)
        con = lh.sql.connection([table.location]).cursor()
        con.execute(f"CREATE TEMP VIEW bench_scan AS SELECT * FROM {table.sql_source()}")
        for label, pred in preds.items():
            skip = data_skipping(table, files, pred)
            sql = f"SELECT count(*) AS n, sum(amount) AS s FROM bench WHERE {pred}"
            planned = plan_read(con, table, pushable(sql, "bench", table.schema, zoned_times=True))  # as the engine
            if planned is None:
                raise SystemExit(f"lakehouse reads {root}'s table through the format's scan, not its files")
            con.execute(f"CREATE OR REPLACE TEMP VIEW bench AS SELECT * FROM {planned.source}")
            duck, scan, whole, isolated = [], [], [], []
            for _ in range(repeat + 1):  # the in-process three interleaved, so drift spreads over them alike
                t0 = time.perf_counter()
                con.execute(sql).fetchall()
                duck.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                con.execute(sql.replace("FROM bench", "FROM bench_scan")).fetchall()
                scan.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                lh.query(sql.replace("FROM bench", "FROM b.t"))
                whole.append(time.perf_counter() - t0)
            for _ in range(repeat + 1):  # apart: a worker streaming 1,000 files for a second would slow the others
                t0 = time.perf_counter()
                lh.query(sql.replace("FROM bench", "FROM b.t"), isolated=True)
                isolated.append(time.perf_counter() - t0)
            out[label] = {
                "row_groups": skip["row_groups"],
                "row_groups_skipped": skip["row_groups_prunable"],
                "skip_share": skip["share_row_groups_prunable"],
                "rows_read": skip["rows_read"],
                "files_read": planned.files,
                "query_ms": round(statistics.median(duck[1:]) * 1000, 1),
                "format_scan_ms": round(statistics.median(scan[1:]) * 1000, 1),
                "lakehouse_query_ms": round(statistics.median(whole[1:]) * 1000, 1),
                "isolated_query_ms": round(statistics.median(isolated[1:]) * 1000, 1),
            }
        con.close()
        t0 = time.perf_counter()
        lh.query("SELECT count(*), sum(amount), max(note) FROM b.t")
        out["full_scan_ms"] = round((time.perf_counter() - t0) * 1000, 1)  # what the smaller row groups cost
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--formats", default="delta,iceberg")
    parser.add_argument("--dists", default="uniform,zipf")
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--files", type=int, default=250)
    parser.add_argument("--rows-per-file", type=int, default=4000)
    parser.add_argument("--memory", default="256MB")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--spark", action="store_true")
    parser.add_argument(
        "--contestants",
        default="morton,hilbert,delta-rs,spark",
        help="which rewrites to run besides the small files and compaction alone (the ratios' baselines)",
    )
    parser.add_argument("--child")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return
    tmp = tempfile.mkdtemp(prefix="lakehouse-clusterbench-")
    report: dict[str, Any] = {"memory_budget": args.memory, "runs": []}
    try:
        for dist in args.dists.split(","):
            pool_root = f"{tmp}/{dist}"
            delta_template, pool = build_pool(pool_root, args, dist)
            for fmt in args.formats.split(","):
                contestants = ["small files", "compaction", "morton", "hilbert"]
                contestants += ["delta-rs"] if fmt == "delta" else (["spark"] if args.spark else [])
                wanted = {"small files", "compaction", *args.contestants.split(",")}
                contestants = [c for c in contestants if c in wanted]
                run: dict[str, Any] = {"format": fmt, "dist": dist, "contestants": {}}
                preds: dict[str, str] | None = None
                for name in contestants:
                    root = f"{tmp}/{dist}-{fmt}-{name.replace(' ', '-')}"
                    new_table(root, fmt, delta_template, pool)
                    preds = preds or predicates(root)
                    res = {} if name == "small files" else run_child({"contestant": name, "root": root, **vars(args)})
                    res.update(measure(root, preds, args.repeat))
                    if name == "hilbert":  # 5 % new data, then cluster again
                        res["incremental"] = incremental(root, fmt, args, dist)
                    run["contestants"][name] = res
                    print(f"  {fmt}/{dist}/{name}: {json.dumps(res)}", file=sys.stderr)
                    if name != "hilbert":
                        shutil.rmtree(root, ignore_errors=True)
                run["predicates"] = preds
                run["ratios"] = ratios(run["contestants"])
                report["runs"].append(run)
            shutil.rmtree(pool_root, ignore_errors=True)
        print(json.dumps(report, indent=2))
        print_summary(report)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def incremental(root: str, fmt: str, args: argparse.Namespace, dist: str) -> dict[str, Any]:
    import pyarrow.parquet as pq

    from lakehouse.config import load_settings
    from lakehouse.core import Lakehouse

    extra = max(1, args.files // 20)
    start = args.partitions * args.files * args.rows_per_file
    new = list(batches(dist, args.partitions, extra, args.rows_per_file, seed=2, start_id=start))
    with Lakehouse(load_settings(config_file=False, warehouse=f"{root}/wh")) as lh:
        table = lh.table("b.t")
        if fmt == "delta":
            for _, data in new:
                table.append(data)
        else:
            os.makedirs(f"{root}/new", exist_ok=True)
            paths = []
            for i, (_, data) in enumerate(new):
                paths.append(f"{root}/new/n{i:04d}.parquet")
                pq.write_table(data, paths[-1])
            add_files(table, paths, f"{table.location}/data/added-new")
    again = run_child({"contestant": "hilbert-again", "root": root, **vars(args)})
    return {
        "new_rows": sum(d.num_rows for _, d in new),
        "seconds": again["seconds"],
        "bytes_rewritten": again["bytes_rewritten"],
        "bytes_table": again["bytes_table"],
        "share_rewritten": round(again["bytes_rewritten"] / again["bytes_table"], 4) if again["bytes_table"] else 0,
    }


def ratios(contestants: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    small, compaction = contestants["small files"], contestants["compaction"]
    for name in [n for n in ("morton", "hilbert") if n in contestants]:
        c = contestants[name]
        out[name] = {
            label: {
                f"{prefix}vs_{other}": round(base[label][key] / c[label][key], 2)
                for prefix, key in (
                    ("", "query_ms"),
                    ("format_scan_", "format_scan_ms"),
                    ("lakehouse_", "lakehouse_query_ms"),
                )
                for other, base in (("small_files", small), ("compaction", compaction))
            }
            for label in ("user_id", "ts", "both", "country")
        }
        if "delta-rs" in contestants:
            out[name]["time_vs_delta_rs_zorder"] = round(c["seconds"] / contestants["delta-rs"]["seconds"], 2)
    return out


def print_summary(report: dict[str, Any]) -> None:
    print(f"\nmemory budget {report['memory_budget']}", file=sys.stderr)
    for run in report["runs"]:
        print(f"\n{run['format']} / {run['dist']}: {run['predicates']}", file=sys.stderr)
        head = f"{'contestant':<12} {'secs':>6} {'RSS MB':>7} {'files':>5} {'MB':>7}"
        for label in ("user_id", "ts", "both", "country"):
            head += f" | {label + ' skip':>14} {'ms':>6} {'scan':>6} {'lh':>6}"
        print(head, file=sys.stderr)
        for name, c in run["contestants"].items():
            line = f"{name:<12} {c.get('seconds', 0):>6} {c.get('peak_rss_mb', 0):>7} {c['files']:>5} {c['mb']:>7}"
            for label in ("user_id", "ts", "both", "country"):
                q = c[label]
                line += (
                    f" | {q['row_groups_skipped']:>5}/{q['row_groups']:<5} {q['skip_share']:>3.0%} {q['query_ms']:>6}"
                    f" {q['format_scan_ms']:>6} {q['lakehouse_query_ms']:>6}"
                )
            print(line, file=sys.stderr)
        print(f"ratios: {json.dumps(run['ratios'])}", file=sys.stderr)
        inc = run["contestants"].get("hilbert", {}).get("incremental")
        if inc:
            print(f"hilbert after 5 % new data: {json.dumps(inc)}", file=sys.stderr)


if __name__ == "__main__":
    sys.path.insert(0, str(HERE.parent.parent))
    main()
