"""What a verified rewrite's DuckDB statements cost, alone and in the alternatives tried, on plain Parquet files.

Writes ``--files`` snappy Parquet files of ``--rows-per-file`` rows (the compaction benchmark's columns: id, ts,
user_id, amount, country, note) and times, in one process, median of ``--repeat``:

* ``copy``: the rewrite's COPY alone (zstd, row groups of ``--row-group`` rows), with DuckDB's default
  dictionary limit and with lakehouse's cap (:data:`lakehouse.maintenance.compaction.DICTIONARY_ENTRIES`);
* ``verified``: what a rewrite does today: COPY, then the fingerprint of the rows read and of the files written
  (each a read of its files);
* ``table first``: the rows loaded into a DuckDB table once, then fingerprinted and copied from it;
* ``second cursor``: the read side's fingerprint on a second cursor while the COPY runs;
* ``pyarrow + DuckDB hash``: pyarrow's dataset reader with DuckDB hashing each batch (nothing written), and
  pyarrow reading and writing zstd alone.

    .venv/bin/python benchmarks/verify_pass_bench.py [--files 400] [--rows-per-file 25000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import duckdb
import pyarrow as pa
import pyarrow.dataset as pds
import pyarrow.parquet as pq

from lakehouse.maintenance.compaction import dictionary_limit

HASH = (
    "coalesce(sum(hash(CAST(id AS BIGINT), CAST(ts AS TIMESTAMPTZ), CAST(user_id AS BIGINT), "
    "CAST(amount AS DOUBLE), signbit(CAST(amount AS DOUBLE)), CAST(country AS VARCHAR), CAST(note AS VARCHAR))), 0)"
)


def make(root: str, files: int, rows: int) -> None:
    countries = [f"C{i:02d}" for i in range(30)]
    base = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    n = 0
    for f in range(files):
        ids = range(n, n + rows)
        n += rows
        table = pa.table(
            {
                "id": pa.array(ids, pa.int64()),
                "ts": pa.array(
                    [base + dt.timedelta(days=f % 4, seconds=i % 86400) for i in ids], pa.timestamp("us", tz="UTC")
                ),
                "user_id": pa.array([(i * 2654435761) % 100_000 for i in ids], pa.int64()),
                "amount": pa.array([(i % 10_000) / 100 for i in ids]),
                "country": pa.array([countries[i % 30] for i in ids]),
                "note": pa.array([f"note {i} lorem ipsum dolor" for i in ids]),
            }
        )
        pq.write_table(table, f"{root}/in/p{f:04d}.parquet", compression="snappy")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, default=400)
    ap.add_argument("--rows-per-file", type=int, default=25_000)
    ap.add_argument("--row-group", type=int, default=131_072, help="rows per row group written (lakehouse's default)")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    root = tempfile.mkdtemp(prefix="verify-bench-")
    try:
        os.makedirs(f"{root}/in")
        make(root, args.files, args.rows_per_file)
        src = f"read_parquet('{root}/in/*.parquet', hive_partitioning = false, union_by_name = true)"
        out = f"read_parquet('{root}/out/*.parquet')"
        con = duckdb.connect(config={"preserve_insertion_order": False})

        def copy(source: str, dictionary: int | None, level: int | None = None) -> None:
            shutil.rmtree(f"{root}/out", ignore_errors=True)
            options = f"FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE {args.row_group}"
            if level is not None:
                options += f", COMPRESSION_LEVEL {level}"
            options += f", FILENAME_PATTERN 'part-{{uuid}}', ROW_GROUPS_PER_FILE {max(1, 4_000_000 // args.row_group)}"
            if dictionary is not None:
                options += f", DICTIONARY_SIZE_LIMIT {dictionary}"
            con.execute(f"COPY (SELECT * FROM {source}) TO '{root}/out' ({options})")

        def fingerprint(c: duckdb.DuckDBPyConnection, source: str) -> tuple[int, int]:
            row = c.execute(f"SELECT count(*), {HASH} FROM {source}").fetchone()
            assert row is not None
            return int(row[0]), int(row[1])

        cap = dictionary_limit(args.row_group)

        def verified(level: int | None = None) -> None:
            copy(src, cap, level)
            assert fingerprint(con, src) == fingerprint(con, out)

        def table_first() -> None:
            con.execute(f"CREATE OR REPLACE TEMP TABLE staged AS SELECT * FROM {src}")
            read = fingerprint(con, "staged")
            copy("staged", cap)
            assert read == fingerprint(con, out)
            con.execute("DROP TABLE staged")

        def second_cursor() -> None:
            got: dict[str, tuple[int, int]] = {}
            other = con.cursor()
            thread = threading.Thread(target=lambda: got.setdefault("read", fingerprint(other, src)))
            thread.start()
            copy(src, cap)
            thread.join()
            assert got["read"] == fingerprint(con, out)

        def pyarrow_hash() -> None:
            for batch in pds.dataset(f"{root}/in", format="parquet").to_batches(batch_size=1 << 20):  # noqa: B007
                con.execute(f"SELECT {HASH} FROM batch").fetchone()

        def pyarrow_rewrite() -> None:
            dataset = pds.dataset(f"{root}/in", format="parquet")
            shutil.rmtree(f"{root}/out", ignore_errors=True)
            os.makedirs(f"{root}/out")
            with pq.ParquetWriter(f"{root}/out/x.parquet", dataset.schema, compression="zstd") as writer:
                for batch in dataset.to_batches(batch_size=1 << 20):
                    writer.write_batch(batch, row_group_size=args.row_group)

        cases: list[tuple[str, Callable[[], None]]] = [
            ("copy, DuckDB's dictionary limit", lambda: copy(src, None)),
            (f"copy, dictionary cap {cap}", lambda: copy(src, cap)),
            ("copy, dictionary cap, zstd level 1", lambda: copy(src, cap, 1)),
            ("verified: copy + fingerprint of rows read + of files written", verified),
            ("verified, zstd level 1", lambda: verified(1)),
            ("table first: load, fingerprint, copy, fingerprint written", table_first),
            ("second cursor: read fingerprint beside the copy", second_cursor),
            ("pyarrow reader + DuckDB hash per batch (nothing written)", pyarrow_hash),
            ("pyarrow read + zstd write (no verification)", pyarrow_rewrite),
        ]
        rows = args.files * args.rows_per_file
        print(f"{args.files} files x {args.rows_per_file} rows = {rows:,} rows; median of {args.repeat}")
        for label, run in cases:
            times = []
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                run()
                times.append(time.perf_counter() - t0)
            print(f"  {label:62s} {statistics.median(times):6.2f} s  ({', '.join(f'{t:.2f}' for t in times)})")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
