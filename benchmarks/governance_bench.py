"""Dedup and masking throughput (rows/s) on a local warehouse, each against a baseline in the same run.

Data: ``--rows`` events in ``--files`` appends over 4 days; the last ``--replays`` appends re-deliver earlier
ids (with a later timestamp), as a replayed stream does.

Contestants (rows/s over the whole table's rows, so all are comparable):
  dedup/ours        lakehouse dedup --key id --order ts: DuckDB ranks every row, rewrites only the files that
                    hold a duplicated key, one commit
  dedup/full        the usual way: DuckDB reads the whole table, keeps the latest row per id, writes it all
                    back (no commit), the minimum a full-table rewrite costs
  mask/ours         lakehouse pii mask (email=hash, ip=generalize) in place: every file rewritten, one commit
  mask/pyarrow      the same masking functions over the same files with pyarrow read + write, no commit

    .venv/bin/python benchmarks/governance_bench.py [--rows 1000000 --files 40 --replays 4 --format delta]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import tempfile
import time
from typing import Any


def make_table(root: str, fmt: str, rows: int, files: int, replays: int) -> dict[str, Any]:
    import pyarrow as pa

    from lakehouse.config import load_settings
    from lakehouse.core import Lakehouse
    from lakehouse.schema import parse_partitioning, parse_schema

    schema = parse_schema("id:int64 not null, ts:timestamp not null, email:string, ip:string, amount:float64")
    base = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    per = rows // files
    settings = load_settings(config_file=False, warehouse=root, governance={"mask_secret": "bench"})
    duplicates = 0
    with Lakehouse(settings) as lh:
        table = lh.create_table("b.events", schema=schema, format=fmt, partitioning=parse_partitioning("day(ts)"))
        for f in range(files):
            if f >= files - replays:  # a replay of ids already delivered, later in time
                start, shift = (f - (files - replays)) * per, 60
                duplicates += per
            else:
                start, shift = f * per, 0
            ids = list(range(start, start + per))
            table.append(
                pa.table(
                    {
                        "id": pa.array(ids, pa.int64()),
                        "ts": pa.array(
                            [base + dt.timedelta(seconds=(i * 347) % (4 * 86400) + shift) for i in ids],
                            pa.timestamp("us", tz="UTC"),
                        ),
                        "email": [f"user{i}@example.com" for i in ids],
                        "ip": [f"10.{i % 250}.{(i // 250) % 250}.{i % 199 + 1}" for i in ids],
                        "amount": pa.array([i * 0.25 for i in ids], pa.float64()),
                    },
                    schema=schema,
                )
            )
        return {"rows": per * files, "duplicates": duplicates, "files": len(table.files())}


def run_ours_dedup(root: str) -> float:
    from lakehouse.config import load_settings
    from lakehouse.core import Lakehouse
    from lakehouse.maintenance.dedup import dedup

    with Lakehouse(load_settings(config_file=False, warehouse=root)) as lh:
        t0 = time.perf_counter()
        result = dedup(lh, "b.events", keys=["id"], order="ts", dry_run=False)
        seconds = time.perf_counter() - t0
        assert result.status == "committed", result.error
    return seconds


def run_full_dedup(root: str, out: str) -> float:
    import duckdb

    from lakehouse.config import load_settings
    from lakehouse.core import Lakehouse

    with Lakehouse(load_settings(config_file=False, warehouse=root)) as lh:
        paths = [f.path for f in lh.table("b.events").files()]
    t0 = time.perf_counter()
    con = duckdb.connect()
    files = ", ".join("'" + p.replace("'", "''") + "'" for p in paths)
    con.execute(
        f"COPY (SELECT * EXCLUDE (lh_rank) FROM (SELECT *, row_number() OVER (PARTITION BY id ORDER BY ts DESC) "
        f"AS lh_rank FROM read_parquet([{files}], union_by_name = true)) WHERE lh_rank = 1) "
        f"TO '{out}' (FORMAT parquet, COMPRESSION zstd)"
    )
    con.close()
    return time.perf_counter() - t0


def run_ours_mask(root: str) -> float:
    from lakehouse.config import load_settings
    from lakehouse.core import Lakehouse
    from lakehouse.governance.ops import mask_table

    settings = load_settings(config_file=False, warehouse=root, governance={"mask_secret": "bench"})
    with Lakehouse(settings) as lh:
        t0 = time.perf_counter()
        mask_table(lh, "b.events", policies={"email": "hash", "ip": "generalize"}, dry_run=False)
        return time.perf_counter() - t0


def run_pyarrow_mask(root: str, out: str) -> float:
    import os

    import pyarrow.parquet as pq

    from lakehouse.config import load_settings
    from lakehouse.core import Lakehouse
    from lakehouse.governance.masking import apply_masks, parse_mask

    with Lakehouse(load_settings(config_file=False, warehouse=root)) as lh:
        paths = [f.path for f in lh.table("b.events").files()]
    masks = {"email": parse_mask("hash"), "ip": parse_mask("generalize")}
    os.makedirs(out, exist_ok=True)
    t0 = time.perf_counter()
    for i, p in enumerate(paths):
        table = apply_masks(pq.read_table(p), masks, b"bench")
        pq.write_table(table, f"{out}/{i}.parquet", compression="zstd")
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--files", type=int, default=40)
    parser.add_argument("--replays", type=int, default=4)
    parser.add_argument("--format", choices=("delta", "iceberg"), default="delta")
    args = parser.parse_args()
    tmp = tempfile.mkdtemp(prefix="lakehouse-govbench-")
    try:
        results: dict[str, Any] = {"format": args.format}
        # every contestant gets its own freshly built copy of the same (deterministic) table
        for name in ("dedup_ours", "dedup_full", "mask_ours", "mask_pyarrow"):
            work = f"{tmp}/{name}"
            info = make_table(work, args.format, args.rows, args.files, args.replays)
            results.update(info)
            if name == "dedup_ours":
                seconds = run_ours_dedup(work)
            elif name == "dedup_full":
                seconds = run_full_dedup(work, f"{tmp}/{name}.parquet")
            elif name == "mask_ours":
                seconds = run_ours_mask(work)
            else:
                seconds = run_pyarrow_mask(work, f"{tmp}/{name}_out")
            results[name] = {"seconds": round(seconds, 3), "rows_per_s": round(info["rows"] / seconds)}
            shutil.rmtree(work, ignore_errors=True)
        results["dedup_ratio_ours_vs_full"] = round(
            results["dedup_full"]["seconds"] / results["dedup_ours"]["seconds"], 2
        )
        results["mask_ratio_ours_vs_pyarrow"] = round(
            results["mask_pyarrow"]["seconds"] / results["mask_ours"]["seconds"], 2
        )
        print(json.dumps(results, indent=2))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
