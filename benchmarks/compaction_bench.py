"""Compaction benchmark on a local warehouse: the same small files for every contestant, in one run.

Contestants, each in its own process (so peak RSS is its own) on its own copy of the same rows:
  iceberg/pyarrow   one pyarrow pass over the Iceberg table's files: read each file, write 1 zstd file per
                    partition (the practical read+write limit: no verification, no commit)
  iceberg/ours      lakehouse optimize on the Iceberg table (DuckDB rewrite, verified, one atomic replace commit)
  iceberg/spark     lakehouse optimize --engine spark: the same plan, run by Iceberg's RewriteDataFiles on a
                    Spark session through the shared catalog (session start reported apart). The master is the
                    spark.master setting (default local[*]: one task thread per core) unless --spark-master
                    names one; the run prints which, with the driver memory
  iceberg/delta-rs  the baseline for iceberg/ours: delta-rs optimize.compact on a byte-identical copy of the
                    Iceberg table's data files, registered as a Delta table (convert_to_deltalake, not timed)
  delta/delta-rs    the baseline for delta/ours: delta-rs optimize.compact on the Delta table
  delta/ours        lakehouse optimize on the Delta table (DuckDB rewrite, verified, one delta-rs commit)
Every contestant is timed from its call to its return (ours: the whole job, planning, the verification of every
partition's content, the commit and the job's records), in a process that has imported its libraries already.
Each line shows the bytes and the codec of the files written (from their Parquet footers): the baselines keep
delta-rs's defaults, so each contestant's output codec is printed next to its time. Ratios are baseline time /
our time (>= 1: ours is as fast).
Peak RSS is the contestant's Python process (ru_maxrss); for the Spark contestant the JVM is a separate process
still running when the job ends, so its peak (VmHWM of the gateway's java process, from /proc) is reported apart.
Then a selective DuckDB query (WHERE user_id BETWEEN x AND y) before vs after compaction + Z-order(user_id, ts):
files and row groups its predicate can skip by statistics, and its time.

    .venv/bin/python benchmarks/compaction_bench.py [--rows-per-file 2500 --files 100 --partitions 4]
    .venv/bin/python benchmarks/compaction_bench.py --no-query --repeat 3 \\
        --contestants iceberg/delta-rs,iceberg/ours,delta/delta-rs,delta/ours

--crossover instead compacts Iceberg tables of growing size with both engines (local, and Spark with its session
start counted) and prints the smallest size at which Spark was faster, or, when it was not at any size run, the
marginal cost per MB between sizes and least-squares lines through the points with where they would cross: an
extrapolation beyond the sizes run, printed as such:

    .venv/bin/python benchmarks/compaction_bench.py --crossover [--sizes 25,50,100,200 --rows-per-file 2500]

Both modes take --spark-master URL (passed to the children as LAKEHOUSE_SPARK__MASTER).
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve()


def make_data(
    root: str, partitions: int, files: int, rows: int, formats: tuple[str, ...] = ("iceberg", "delta")
) -> None:
    import pyarrow as pa

    from lakehouse.config import load_settings
    from lakehouse.core import Lakehouse
    from lakehouse.schema import parse_partitioning, parse_schema

    schema = parse_schema(
        "id:int64 not null, ts:timestamp not null, user_id:int64, amount:float64, country:string, note:string"
    )
    countries = [f"C{i:02d}" for i in range(30)]
    base = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    with Lakehouse(load_settings(config_file=False, warehouse=root)) as lh:
        tables = [
            lh.create_table(f"b.{fmt}", schema=schema, format=fmt, partitioning=parse_partitioning("day(ts)"))
            for fmt in formats
        ]
        n = 0
        for f in range(files):
            chunk = []
            for p in range(partitions):
                ids = range(n, n + rows)
                n += rows
                chunk.append(
                    pa.table(
                        {
                            "id": pa.array(ids, pa.int64()),
                            "ts": pa.array(
                                [base + dt.timedelta(days=p, seconds=(i * 37) % 86_400) for i in ids],
                                pa.timestamp("us", tz="UTC"),
                            ),
                            "user_id": pa.array([(i * 2654435761) % 100_000 for i in ids], pa.int64()),
                            "amount": pa.array([(i % 10_000) / 100 for i in ids]),
                            "country": pa.array([countries[i % 30] for i in ids]),
                            "note": pa.array([f"note {i} lorem ipsum dolor" for i in ids]),
                        },
                        schema=schema,
                    )
                )
            data = pa.concat_tables(chunk)
            for t in tables:
                t.append(data)
            print(f"\r  wrote {f + 1}/{files} append(s) to {' and '.join(formats)}", end="", file=sys.stderr)
        print(file=sys.stderr)


CONTESTANTS = ("iceberg/pyarrow", "iceberg/ours", "iceberg/spark", "iceberg/delta-rs", "delta/delta-rs", "delta/ours")
BASELINES = {"iceberg/ours": "iceberg/delta-rs", "delta/ours": "delta/delta-rs"}


def contestant(name: str, root: str) -> dict[str, Any]:
    """Runs in a child process."""
    from lakehouse.config import load_settings
    from lakehouse.core import Lakehouse
    from lakehouse.maintenance.compaction import optimize
    from lakehouse.maintenance.planner import CompactionOptions

    opts = CompactionOptions(target_file_size=512 * 1024 * 1024)
    with Lakehouse(load_settings(config_file=False, warehouse=root)) as lh:
        table = lh.table("b.iceberg" if name.startswith("iceberg") else "b.delta")
        before = table.files()
        in_bytes = sum(f.size_bytes for f in before)
        extra: dict[str, Any] = {}
        written: list[tuple[str, int]] = []
        location = table.location
        if name == "iceberg/delta-rs":  # set up (not timed): the Iceberg table's very files as a Delta table
            location = _as_delta_table(before, os.path.join(root, "iceberg-as-delta"))
            before = _delta_files(location)
        import deltalake  # noqa: F401 - every library imported before the clock starts, as in a running service
        import duckdb  # noqa: F401

        t0 = time.perf_counter()
        if name in ("iceberg/ours", "delta/ours"):
            r = optimize(lh, str(table.name), opts)
            assert r.rows_in == r.rows_out
        elif name == "iceberg/pyarrow":
            import pyarrow.parquet as pq

            out = Path(tempfile.mkdtemp(prefix="pyarrow-limit-"))
            by_part: dict[str, list[str]] = {}
            for f in before:
                by_part.setdefault(json.dumps(f.partition, default=str), []).append(f.path)
            for i, paths in enumerate(by_part.values()):
                writer = None
                for p in paths:
                    t = pq.read_table(p)
                    if writer is None:
                        writer = pq.ParquetWriter(out / f"p{i}.parquet", t.schema, compression="zstd")
                    writer.write_table(t)
                assert writer is not None
                writer.close()
            seconds = time.perf_counter() - t0
            written = [(str(p), p.stat().st_size) for p in sorted(out.iterdir())]
            extra["codec"] = _codec(written[0][0]) if written else "-"
            shutil.rmtree(out)
        elif name in ("delta/delta-rs", "iceberg/delta-rs"):
            from deltalake import DeltaTable

            DeltaTable(location).optimize.compact(target_size=opts.target_file_size)
        elif name == "iceberg/spark":
            extra = spark_rewrite(lh, table, opts)
        if name != "iceberg/pyarrow":
            seconds = time.perf_counter() - t0 - extra.pop("startup_s", 0.0)
        after = _delta_files(location) if name == "iceberg/delta-rs" else table.files()
        if name != "iceberg/pyarrow":
            old = {f.path for f in before}
            written = [(f.path, f.size_bytes) for f in after if f.path not in old]
            extra["codec"] = _codec(written[0][0]) if written else "-"
    # this Python process only: RUSAGE_CHILDREN would count only children that have exited and been waited for,
    # and the Spark contestant's JVM is still running here (its peak is measured apart, in spark_rewrite)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "name": name,
        "seconds": seconds,
        "mb_in": in_bytes / 1e6,
        "mb_out": sum(size for _, size in written) / 1e6,
        "files_before": len(before),
        "files_after": len(after) if name != "iceberg/pyarrow" else len(before),
        "files_written": len(written),
        "peak_rss_mb": rss_mb,
        **extra,
    }


def _as_delta_table(files: list[Any], location: str) -> str:
    """A Delta table at ``location`` over byte-identical copies of ``files`` (in Hive-style partition directories,
    so the partition values are the files' own)."""
    from deltalake import Field, Schema, convert_to_deltalake

    fields: dict[str, str] = {}
    for i, f in enumerate(files):
        parts = "/".join(f"{k}={v.isoformat() if hasattr(v, 'isoformat') else v}" for k, v in f.partition.items())
        for k, v in f.partition.items():
            fields[k] = "date" if isinstance(v, dt.date) else "long" if isinstance(v, int) else "string"
        target = os.path.join(location, parts, f"{i:05d}-{os.path.basename(f.path)}")
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.copyfile(f.path.removeprefix("file://"), target)
    convert_to_deltalake(
        location,
        partition_by=Schema([Field(k, t) for k, t in fields.items()]) if fields else None,
        partition_strategy="hive" if fields else None,
    )
    return location


def _delta_files(location: str) -> list[Any]:
    from types import SimpleNamespace

    import pyarrow as pa
    from deltalake import DeltaTable

    actions = pa.table(DeltaTable(location).get_add_actions(flatten=True))
    return [
        SimpleNamespace(path=os.path.join(location, p), size_bytes=s)
        for p, s in zip(actions["path"].to_pylist(), actions["size_bytes"].to_pylist(), strict=True)
    ]


def _codec(path: str) -> str:
    """The codec (and level, where the writer records it) of a Parquet file, and its writer."""
    import pyarrow.parquet as pq

    meta = pq.ParquetFile(path.removeprefix("file://")).metadata
    codecs = sorted({meta.row_group(0).column(i).compression for i in range(meta.num_columns)})
    writer = (meta.created_by or "?").split(" version")[0]
    return f"{'/'.join(codecs).lower()} ({writer})"


def spark_rewrite(lh: Any, table: Any, opts: Any) -> dict[str, Any]:
    """lakehouse optimize --engine spark: the session starts first (timed apart), then the job runs."""
    from lakehouse.maintenance.compaction import optimize

    t0 = time.perf_counter()
    engine = lh.spark()
    engine.session()
    startup = time.perf_counter() - t0
    r = optimize(lh, str(table.name), opts, engine="spark")
    assert r.rows_in == r.rows_out
    pid = engine.jvm_pid()
    return {
        "startup_s": startup,
        "spark_startup_s": startup,
        "spark_master": engine.master,
        "jvm_peak_rss_mb": _peak_rss_mb(pid) if pid else None,
    }


def _peak_rss_mb(pid: int) -> float | None:
    """A running process's peak resident set size (VmHWM in /proc/PID/status; Linux only)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def _spark_settings() -> str:
    from lakehouse.config import load_settings

    s = load_settings(config_file=False).spark
    return f"Spark master {s.master}, driver memory {s.driver_memory}"


def query_pruning(root: str, label: str) -> dict[str, Any]:
    import duckdb
    import pyarrow.parquet as pq

    from lakehouse.config import load_settings
    from lakehouse.core import Lakehouse

    lo, hi = 500, 600
    with Lakehouse(load_settings(config_file=False, warehouse=root)) as lh:
        files = lh.table("b.iceberg").files()
        groups = skip_groups = skip_files = 0
        for f in files:
            meta = pq.ParquetFile(f.path).metadata
            idx = meta.schema.to_arrow_schema().get_field_index("user_id")
            file_skip = True
            for g in range(meta.num_row_groups):
                st = meta.row_group(g).column(idx).statistics
                groups += 1
                if st.max < lo or st.min > hi:
                    skip_groups += 1
                else:
                    file_skip = False
            skip_files += file_skip
        sql = f"SELECT count(*), sum(amount) FROM b.iceberg WHERE user_id BETWEEN {lo} AND {hi}"
        lh.query(sql)  # warm
        times = []
        for _ in range(5):
            t0 = time.perf_counter()
            lh.query(sql)
            times.append(time.perf_counter() - t0)
    del duckdb
    return {
        "label": label,
        "files": len(files),
        "files_skipped": skip_files,
        "row_groups": groups,
        "row_groups_skipped": skip_groups,
        "median_s": sorted(times)[2],
    }


def main() -> None:
    if len(sys.argv) >= 3 and sys.argv[1] == "--child":
        print(json.dumps(contestant(sys.argv[2], sys.argv[3])))
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--partitions", type=int, default=4, help="day partitions of each table (default 4)")
    ap.add_argument("--files", type=int, default=100, help="appends, so small files per partition (default 100)")
    ap.add_argument("--rows-per-file", type=int, default=2500, help="rows per small file (default 2500)")
    ap.add_argument(
        "--contestants",
        default=",".join(CONTESTANTS),
        help=f"comma-separated, run in this order (default: all of {', '.join(CONTESTANTS)})",
    )
    ap.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="runs of every contestant, interleaved, each on a fresh copy of its input; times and ratios are "
        "printed per run and as medians (default 1)",
    )
    ap.add_argument("--no-query", action="store_true", help="skip the selective query before/after Z-order")
    ap.add_argument("--crossover", action="store_true", help="local vs Spark engine over growing table sizes")
    ap.add_argument("--sizes", default="25,50,100,200", help="with --crossover: files per partition per size")
    ap.add_argument("--spark-master", help="Spark master of the Spark contestant (default: spark.master, local[*])")
    args = ap.parse_args()
    if args.spark_master:
        os.environ["LAKEHOUSE_SPARK__MASTER"] = args.spark_master  # the children's settings read it
    if args.crossover:
        crossover(args)
        return
    names = [n.strip() for n in args.contestants.split(",") if n.strip()]
    unknown = [n for n in names if n not in CONTESTANTS]
    if unknown:
        ap.error(f"unknown contestant(s) {', '.join(unknown)}; known: {', '.join(CONTESTANTS)}")
    spark = f"; {_spark_settings()}" if "iceberg/spark" in names else ""
    print(
        f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; {args.partitions} partitions x "
        f"{args.files} files x {args.rows_per_file} rows, local warehouse{spark}"
    )
    base = tempfile.mkdtemp(prefix="lh-compaction-bench-")
    roots: dict[str, str] = {}
    for name in names:  # the same rows for everyone, each in a warehouse of its own
        roots[name] = os.path.join(base, name.replace("/", "_"))
        make_data(roots[name], args.partitions, args.files, args.rows_per_file, (name.split("/")[0],))
        if args.repeat > 1:  # every run starts from the same files (paths are absolute: restored in place)
            shutil.copytree(roots[name], roots[name] + ".pristine", symlinks=True)
    runs: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
    for run in range(args.repeat):
        if args.repeat > 1:
            print(f"run {run + 1}/{args.repeat} (load average {os.getloadavg()[0]:.1f})")
        for name in names:
            root = roots[name]
            if run:
                shutil.rmtree(root)
                shutil.copytree(root + ".pristine", root, symlinks=True)
            r = _run_child(name, root)
            if r is None:
                continue
            runs[name].append(r)
            extra = f" (+{r['spark_startup_s']:.1f} s session start)" if "spark_startup_s" in r else ""
            jvm = f" + JVM {r['jvm_peak_rss_mb']:.0f} MB" if r.get("jvm_peak_rss_mb") else ""
            print(
                f"  {name:16} {r['seconds']:6.2f} s{extra}  {r['mb_in'] / r['seconds']:6.1f} MB/s in  "
                f"files {r['files_before']} -> {r['files_after']}  wrote {r['files_written']} file(s), "
                f"{r['mb_out']:.2f} MB {r['codec']}  peak RSS {r['peak_rss_mb']:.0f} MB{jvm}"
            )
        for ours, baseline in BASELINES.items():
            if runs.get(ours) and runs.get(baseline) and len(runs[ours]) == len(runs[baseline]) == run + 1:
                b, o = runs[baseline][-1], runs[ours][-1]
                print(f"  {ours.split('/')[0]}: {baseline} / {ours} = {b['seconds'] / o['seconds']:.2f}")
    med = {n: _median([r["seconds"] for r in rs]) for n, rs in runs.items() if rs}
    if args.repeat > 1:
        print("medians: " + ", ".join(f"{n} {s:.2f} s" for n, s in med.items()))
    for ours, baseline in BASELINES.items():
        if ours in med and baseline in med:
            pairs = [b["seconds"] / o["seconds"] for b, o in zip(runs[baseline], runs[ours], strict=False)]
            per_run = f" (per run: {', '.join(f'{x:.2f}' for x in pairs)})" if len(pairs) > 1 else ""
            print(
                f"{ours.split('/')[0]}: ours is {_median(pairs):.2f}x the speed of delta-rs optimize.compact on "
                f"the same input bytes{per_run}; goal >= 0.9"
            )
    if "iceberg/ours" in med and "iceberg/pyarrow" in med:
        print(
            f"iceberg: ours is {med['iceberg/pyarrow'] / med['iceberg/ours']:.2f}x the pyarrow read+write limit's speed"
        )
    if "iceberg/ours" in med and "iceberg/spark" in med:
        print(f"iceberg: ours is {med['iceberg/spark'] / med['iceberg/ours']:.2f}x Spark's speed")
    if not args.no_query and "iceberg/ours" in roots:
        selective_query(base, roots["iceberg/ours"], args)
    shutil.rmtree(base, ignore_errors=True)


def _median(xs: list[float]) -> float:
    xs = sorted(xs)
    return xs[len(xs) // 2] if len(xs) % 2 else (xs[len(xs) // 2 - 1] + xs[len(xs) // 2]) / 2


def selective_query(base: str, compacted: str, args: argparse.Namespace) -> None:
    """A selective query on the small files, then on the compacted copy once more compacted + Z-ordered."""
    src = os.path.join(base, "src")
    make_data(src, args.partitions, args.files, args.rows_per_file, ("iceberg",))
    before = query_pruning(src, "small files")
    child = (
        "from lakehouse.config import load_settings; from lakehouse.core import Lakehouse; "
        "from lakehouse.maintenance.compaction import optimize; "
        "from lakehouse.maintenance.planner import CompactionOptions as O; "
        f"lh = Lakehouse(load_settings(config_file=False, warehouse={compacted!r})); "
        "optimize(lh, 'b.iceberg', O(target_file_size=16*1024*1024, zorder=('user_id','ts'), row_group_rows=65536))"
    )
    subprocess.run([sys.executable, "-c", child], check=True)
    after = query_pruning(compacted, "compacted + z-ordered")
    for q in (before, after):
        print(
            f"query on {q['label']:22} files {q['files_skipped']}/{q['files']} skipped, row groups "
            f"{q['row_groups_skipped']}/{q['row_groups']} skipped, median {q['median_s'] * 1000:.0f} ms"
        )
    print(f"selective query: {before['median_s'] / after['median_s']:.1f}x faster after compaction + z-order")


def _run_child(name: str, root: str) -> dict[str, Any] | None:
    proc = subprocess.run(
        [sys.executable, str(HERE), "--child", name, root], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        print(f"{name:16} failed: {proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else '?'}")
        return None
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def crossover(args: argparse.Namespace) -> None:
    """Iceberg compaction, local engine vs Spark engine (job, and job + session start), per table size."""
    sizes = [int(x) for x in args.sizes.split(",")]
    print(
        f"machine: {os.cpu_count()} cores; Iceberg, {args.partitions} partitions x N files x {args.rows_per_file} "
        f"rows, local warehouse; {_spark_settings()} (a new JVM per size)"
    )
    print(f"{'files':>6} {'rows':>10} {'MB':>8} {'local s':>8} {'spark job s':>12} {'+start s':>9} {'spark/local':>12}")
    points = []
    for files in sizes:
        base = tempfile.mkdtemp(prefix="lh-crossover-")
        got = {}
        for name in ("iceberg/ours", "iceberg/spark"):
            root = os.path.join(base, name.replace("/", "_"))
            make_data(root, args.partitions, files, args.rows_per_file, ("iceberg",))
            got[name] = _run_child(name, root)
        shutil.rmtree(base, ignore_errors=True)
        local, spark = got["iceberg/ours"], got["iceberg/spark"]
        if local is None or spark is None:
            continue
        total = spark["seconds"] + spark["spark_startup_s"]
        points.append((local["mb_in"], local["seconds"], total))
        print(
            f"{files * args.partitions:>6} {files * args.partitions * args.rows_per_file:>10,} {local['mb_in']:>8.1f} "
            f"{local['seconds']:>8.2f} {spark['seconds']:>12.2f} {total:>9.2f} {total / local['seconds']:>11.2f}x"
        )
    paying = [mb for mb, loc, tot in points if tot <= loc]
    if paying:
        print(f"crossover: Spark (with its start-up) was faster at {min(paying):.0f} MB, the smallest such size run")
        return
    if not points:
        return
    print(f"crossover: none measured: Spark (with its start-up) was slower at every size, up to {points[-1][0]:.1f} MB")
    if len(points) < 2:
        return
    # marginal cost between consecutive sizes: one odd point shows here, where a fitted line would hide it
    steps = [
        f"{a[0]:.1f}-{b[0]:.1f} MB: local {(b[1] - a[1]) / (b[0] - a[0]) * 1000:.1f}, "
        f"spark {(b[2] - a[2]) / (b[0] - a[0]) * 1000:.1f}"
        for a, b in itertools.pairwise(points)
    ]
    print("marginal ms/MB: " + "; ".join(steps))

    # least-squares lines time = a + b * MB for both engines
    def fit(ys: list[float]) -> tuple[float, float]:
        xs = [p[0] for p in points]
        mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
        b = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum((x - mx) ** 2 for x in xs)
        return my - b * mx, b

    (al, bl), (asp, bsp) = fit([p[1] for p in points]), fit([p[2] for p in points])
    print(
        f"fit through {len(points)} points: local {al:.2f} s + {bl * 1000:.1f} ms/MB; "
        f"spark {asp:.2f} s + {bsp * 1000:.1f} ms/MB (with start)"
    )
    if bl > bsp:
        print(f"extrapolation (not measured): the fitted lines cross near {(asp - al) / (bl - bsp):.0f} MB")
    else:
        print(
            "extrapolation (not measured): the fitted lines do not cross (Spark's fitted cost per MB is not lower); "
            "see the marginal costs above for how much one point weighs"
        )


if __name__ == "__main__":
    main()
