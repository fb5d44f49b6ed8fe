"""Where a Z-order's time goes: each DuckDB statement of lakehouse's Z-order of one Delta partition, timed, beside
delta-rs ``optimize.z_order`` of the same files, in one process run.

The partition: ``--files`` small Delta files of ``--rows-per-file`` rows (default 250 x 4,000 = 1 M rows, one day)
with a Zipf-skewed ``user_id`` (as in ``clustering_bench.py``), ``country``, ``ts``, ``amount`` and ``note``,
written by delta-rs. Each round copies them twice: lakehouse clusters one copy by ``(user_id, ts)`` (Hilbert,
``--memory`` budget) with every statement on its DuckDB connection timed, delta-rs Z-orders the other.

    .venv/bin/python benchmarks/zorder_profile.py [--files 250] [--rows-per-file 4000] [--rounds 2]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import pyarrow as pa
from deltalake import DeltaTable, write_deltalake

import lakehouse.maintenance.compaction as compaction
from lakehouse.config import load_settings
from lakehouse.core import Lakehouse
from lakehouse.maintenance.planner import CompactionOptions
from lakehouse.units import parse_size


def build(location: str, files: int, rows: int) -> None:
    rng = np.random.default_rng(1)
    day = dt.datetime(2026, 1, 2, tzinfo=dt.UTC)
    for f in range(files):
        seconds = rng.integers(0, 86_400, rows)
        write_deltalake(
            location,
            pa.table(
                {
                    "id": pa.array(np.arange(f * rows, (f + 1) * rows)),
                    "user_id": pa.array(rng.zipf(1.3, rows) % 100_000),
                    "country": pa.array([f"C{i % 30:02d}" for i in range(rows)]),
                    "ts": pa.array([day + dt.timedelta(seconds=int(s)) for s in seconds], pa.timestamp("us", tz="UTC")),
                    "amount": pa.array(rng.random(rows) * 100),
                    "note": pa.array([f"note {i}" for i in range(rows)]),
                }
            ),
            mode="append",
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=250)
    parser.add_argument("--rows-per-file", type=int, default=4_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--memory", default="256MB")
    args = parser.parse_args()
    root = tempfile.mkdtemp(prefix="zorder-profile-")
    statements: list[tuple[float, str]] = []
    original = compaction.rewrite_connection

    @contextlib.contextmanager
    def timed(table: Any, options: Any) -> Iterator[Any]:
        with original(table, options) as con:

            class Timed:
                def __getattr__(self, name: str) -> Any:
                    return getattr(con, name)

                def execute(self, query: str, *a: Any, **k: Any) -> Any:
                    start = time.perf_counter()
                    result = con.execute(query, *a, **k)
                    statements.append((time.perf_counter() - start, " ".join(query.split())[:60]))
                    return result

            yield Timed()

    compaction.rewrite_connection = timed  # type: ignore[assignment]
    try:
        build(f"{root}/src", args.files, args.rows_per_file)
        rows = args.files * args.rows_per_file
        print(f"{args.files} files x {args.rows_per_file} rows = {rows:,} rows, Zipf user_id, budget {args.memory}")
        for n in range(args.rounds):
            ours, theirs = f"{root}/ours{n}", f"{root}/theirs{n}"
            shutil.copytree(f"{root}/src", ours)
            shutil.copytree(f"{root}/src", theirs)
            statements.clear()
            settings = load_settings(config_file=False, warehouse=f"{root}/wh{n}")
            with Lakehouse(settings) as lh:
                lh.register_table("b.t", location=ours)
                start = time.perf_counter()
                options = CompactionOptions(zorder=("user_id", "ts"), memory_budget=parse_size(args.memory))
                compaction.optimize(lh, "b.t", options)
                whole = time.perf_counter() - start
            start = time.perf_counter()
            DeltaTable(theirs).optimize.z_order(["user_id", "ts"])
            delta_rs = time.perf_counter() - start
            print(
                f"round {n + 1}: lakehouse Z-order {whole:.2f} s (DuckDB statements "
                f"{sum(t for t, _ in statements):.2f} s), delta-rs z_order {delta_rs:.2f} s"
            )
            by_kind: dict[str, float] = {}
            for seconds, text in statements:
                by_kind[text] = by_kind.get(text, 0.0) + seconds
            for text, seconds in sorted(by_kind.items(), key=lambda kv: -kv[1]):
                if seconds >= 0.005:
                    print(f"  {seconds:6.2f} s  {text}")
    finally:
        compaction.rewrite_connection = original  # type: ignore[assignment]
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
