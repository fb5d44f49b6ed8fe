"""Does memory stay flat as a partition grows? Compaction and Z-order of 1x, 4x and 16x the same partition.

For each format and each scale, builds a table with one day partition of ``scale x --base`` bytes of zstd
Parquet in small files (``--file-size`` each, written by the format's own writer through lakehouse appends;
random numbers, so the bytes do not compress away), then runs, each in its own process:

1. ``optimize`` (compaction to 128 MB files, verified value for value before its commit), then
2. ``optimize --zorder a,b`` (Hilbert) of the compacted partition: the whole partition is one sort, which
   spills beyond ``--memory``.

and with ``--ops ... dedup mask`` also, each on what the one before left:

3. ``dedup --key s --order ts`` (a random key: its collisions grow with the table, so more files are
   rewritten at larger scales): every row ranked in DuckDB, spilling beyond ``--memory``;
4. ``pii mask s=hash``: every file rewritten with the column masked and verified.

It prints per run the input bytes, time, MB/s and the process's peak RSS (``VmHWM``, the child's own). The
question: is peak RSS flat within 20 % from 1x to 16x (the rewrite streams and spills, held to its budget plus a
fixed overhead), and does time grow linearly (MB/s flat)?

    .venv/bin/python benchmarks/scale_bench.py [--base 256MB] [--scales 1 4 16] [--memory 512MB]

The default run writes 2 x 21 x 256 MB = 10.8 GB of input under --root (a temporary directory) and rewrites it
twice; about 25 minutes on 2 cores. ``--base 16MB`` is a quick check.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

HERE = Path(__file__).resolve()
sys.path.insert(0, str(HERE.parent.parent))
sys.path.insert(0, str(HERE.parent))
from _child import run_child as _run_child  # noqa: E402
from _child import vm_hwm  # noqa: E402

SCHEMA = pa.schema(
    [
        pa.field("id", pa.int64(), nullable=False),
        pa.field("ts", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("day", pa.date32(), nullable=False),
        pa.field("a", pa.int64()),
        pa.field("b", pa.float64()),
        pa.field("s", pa.string()),
    ]
)
DAY = dt.date(2026, 6, 1)
BYTES_PER_ROW = 27.1  # zstd Parquet bytes per row of these columns (measured: ``--calibrate``)


def _rows(start: int, n: int, rng: np.random.Generator) -> pa.Table:
    base = np.datetime64("2026-06-01T00:00:00", "us")
    return pa.table(
        {
            "id": pa.array(np.arange(start, start + n, dtype=np.int64)),
            "ts": pa.array(
                base + rng.integers(0, 86_400_000_000, n).astype("timedelta64[us]"), pa.timestamp("us", tz="UTC")
            ),
            "day": pa.array([DAY] * n, pa.date32()),
            "a": pa.array(rng.integers(0, 1 << 40, n)),
            "b": pa.array(rng.random(n)),
            "s": pa.array(rng.integers(0, 1 << 30, n)).cast(pa.string()),
        },
        schema=SCHEMA,
    )  # fmt: skip


def build(root: Path, fmt: str, total_bytes: int, file_bytes: int) -> dict[str, Any]:
    from lakehouse.config import load_settings
    from lakehouse.core import Lakehouse
    from lakehouse.schema import PartitionField

    rng = np.random.default_rng(7)
    rows_per_file = max(1, int(file_bytes / BYTES_PER_ROW))
    files = max(2, round(total_bytes / file_bytes))
    with Lakehouse(load_settings(config_file=False, warehouse=str(root / "wh"))) as lh:
        table = lh.create_table("b.t", schema=SCHEMA, format=fmt, partitioning=[PartitionField("day")])
        for i in range(files):
            table.append(_rows(i * rows_per_file, rows_per_file, rng))
        listed = lh.table("b.t").files()
        return {"files": len(listed), "bytes": sum(f.size_bytes for f in listed), "rows": files * rows_per_file}


def child(spec: dict[str, Any]) -> dict[str, Any]:
    """One rewrite, in its own process."""
    from lakehouse.config import load_settings
    from lakehouse.core import Lakehouse
    from lakehouse.maintenance.compaction import optimize
    from lakehouse.maintenance.planner import CompactionOptions
    from lakehouse.units import parse_size

    budget = parse_size(spec["memory"])
    settings = load_settings(config_file=False, warehouse=f"{spec['root']}/wh", governance={"mask_secret": "bench"})
    with Lakehouse(settings) as lh:
        before = lh.table("b.t").files()
        rows = sum(f.row_count for f in before)
        out: dict[str, Any]
        t0 = time.perf_counter()
        if spec["op"] in ("compaction", "zorder"):
            zorder = ("a", "b") if spec["op"] == "zorder" else ()
            opts = CompactionOptions(target_file_size=128 << 20, memory_budget=budget, zorder=zorder, commit_interval=0)
            r = optimize(lh, "b.t", opts)
            out = {"bytes_in": sum(p.input_bytes for p in r.plan.picked), "rows_in": r.rows_in, "rows_out": r.rows_out}
        elif spec["op"] == "dedup":  # keep the latest row per s (random: collisions grow with the table)
            from lakehouse.maintenance.dedup import dedup

            d = dedup(lh, "b.t", keys=["s"], order="ts", dry_run=False, memory_budget=budget)
            out = {"bytes_in": sum(f.size_bytes for f in before), "rows_in": rows, "rows_out": rows - d.rows_removed}
        else:  # mask: every file rewritten with s hashed
            from lakehouse.governance.ops import mask_table

            mask_table(lh, "b.t", policies={"s": "hash"}, dry_run=False)
            after = sum(f.row_count for f in lh.table("b.t").files())
            out = {"bytes_in": sum(f.size_bytes for f in before), "rows_in": rows, "rows_out": after}
        out["seconds"] = time.perf_counter() - t0
        out["files_after"] = len(lh.table("b.t").files())
    out["peak_rss_mb"] = vm_hwm(os.getpid()) or 0.0
    return out


def run_child(spec: dict[str, Any]) -> dict[str, Any]:
    return _run_child(HERE, spec, spec["op"])


def calibrate() -> None:
    import io

    import pyarrow.parquet as pq

    t = _rows(0, 1_000_000, np.random.default_rng(1))
    buf = io.BytesIO()
    pq.write_table(t, buf, compression="zstd")
    print(f"{len(buf.getvalue()) / t.num_rows:.1f} bytes per row")


def main() -> None:
    from lakehouse.units import parse_size

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", default="256MB", help="partition size at 1x")
    ap.add_argument("--scales", type=int, nargs="+", default=[1, 4, 16])
    ap.add_argument("--file-size", default="16MB", help="size of each small input file")
    ap.add_argument("--memory", default="512MB", help="the rewrites' memory budget")
    ap.add_argument("--formats", nargs="+", default=["delta", "iceberg"])
    ap.add_argument(
        "--ops",
        nargs="+",
        default=["compaction", "zorder"],
        choices=["compaction", "zorder", "dedup", "mask"],
        help="the rewrites, in this order, each on what the one before left",
    )
    ap.add_argument("--root", help="where the tables go (default: a temporary directory, removed after)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--calibrate", action="store_true", help="print the Parquet bytes per row of the generated data")
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return
    if args.calibrate:
        calibrate()
        return
    base, file_bytes = parse_size(args.base), parse_size(args.file_size)
    root = Path(args.root or tempfile.mkdtemp(prefix="lh-scale-"))
    print(f"partition of {args.base} x {args.scales}, {args.file_size} input files, memory budget {args.memory}, "
          f"{os.cpu_count()} cores")  # fmt: skip
    print(
        f"{'format':<8} {'op':<10} {'scale':>5} {'MB in':>8} {'files':>6} {'rows':>11} {'s':>8} {'MB/s':>6}"
        f" {'peak RSS MB':>11}"
    )
    results: list[dict[str, Any]] = []
    try:
        for fmt in args.formats:
            for scale in args.scales:
                where = root / f"{fmt}-{scale}"
                built = build(where, fmt, scale * base, file_bytes)
                rows = built["rows"]
                for op in args.ops:
                    r = run_child({"root": str(where), "op": op, "memory": args.memory})
                    if r["rows_in"] != rows or (op != "dedup" and r["rows_out"] != rows):
                        raise RuntimeError(f"{fmt} {op} x{scale}: rows {rows} -> {r['rows_in']} -> {r['rows_out']}")
                    rows = r["rows_out"]
                    r |= {"format": fmt, "op": op, "scale": scale}
                    r["files"] = built["files"] if op == args.ops[0] else None
                    results.append(r)
                    mb = r["bytes_in"] / 1e6
                    speed = mb / r["seconds"]
                    print(f"{fmt:<8} {op:<10} {scale:>4}x {mb:>8.0f} {r['files'] or '':>6} {r['rows_in']:>11,} "
                          f"{r['seconds']:>8.1f} {speed:>6.1f} {r['peak_rss_mb']:>11.0f}", flush=True)  # fmt: skip
                shutil.rmtree(where, ignore_errors=True)
    finally:
        if not args.root:
            shutil.rmtree(root, ignore_errors=True)
    print("flatness (largest / smallest scale):")
    for fmt in args.formats:
        for op in args.ops:
            rs = sorted((r for r in results if r["format"] == fmt and r["op"] == op), key=lambda r: r["scale"])
            if len(rs) < 2:
                continue
            lo, hi = rs[0], rs[-1]
            rss = hi["peak_rss_mb"] / lo["peak_rss_mb"]
            speed = (hi["bytes_in"] / hi["seconds"]) / (lo["bytes_in"] / lo["seconds"])
            print(f"  {fmt:<8} {op:<10} peak RSS {rss:.2f}x ({'flat within 20 %' if rss <= 1.2 else 'NOT flat'}), "
                  f"MB/s {speed:.2f}x over {hi['scale'] // lo['scale']}x the bytes")  # fmt: skip


if __name__ == "__main__":
    main()
