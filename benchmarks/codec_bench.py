"""Compression per codec and level on event data, against the "50-75 % smaller" claim (issue: the storage bill).

One set of rows (a day of a realistic event stream: increasing ids and times, a Zipf-skewed user id, low-
cardinality country/event type/user agent, prices, URLs with a few patterns, unique e-mail addresses) is written by
lakehouse's own writer (DuckDB ``COPY ... (FORMAT parquet)``, as compaction and tier rewrites do) with each codec
and level, unsorted and sorted by (event_type, user_id) (the layout a cold rewrite may choose). Each line prints
the bytes, the saving against the same rows as raw NDJSON and as uncompressed Parquet, the write time, and the
time of a full scan of the file (``SELECT sum(...)`` over every column), all in one run.

    .venv/bin/python benchmarks/codec_bench.py [--rows 1000000] [--repeat 3]

Saving = 1 - bytes / baseline bytes. The stream's generator is :func:`events` (seeded), for other benchmarks.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

CODECS = [
    ("uncompressed", None),
    ("snappy", None),
    ("gzip", None),
    ("zstd", 1),
    ("zstd", 3),
    ("zstd", 9),
    ("zstd", 19),
]
AGENTS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_2) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.2 Safari/605",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
    "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0",
    "okhttp/4.12.0",
]
TYPES = ["page_view", "click", "add_to_cart", "checkout", "purchase", "search", "login", "logout"]
COUNTRIES = ["DE", "FR", "US", "GB", "ES", "IT", "NL", "PL", "SE", "BR", "IN", "JP"]
PATHS = ["/", "/search", "/product/{}", "/cart", "/checkout", "/account", "/category/{}"]


def events(rows: int, *, seed: int = 7, day: str = "2026-06-01") -> pa.Table:
    """One day of events, deterministic for a seed."""
    rng = np.random.default_rng(seed)
    start = np.datetime64(f"{day}T00:00:00", "us")
    offsets = np.sort(rng.integers(0, 86_400_000_000, rows))
    users = np.minimum(rng.zipf(1.3, rows), 5_000_000).astype(np.int64)
    kinds = rng.choice(len(TYPES), rows, p=[0.45, 0.25, 0.08, 0.04, 0.03, 0.1, 0.03, 0.02])
    product = rng.integers(1, 20_000, rows)
    path_kind = rng.choice(len(PATHS), rows)
    urls = [
        "https://shop.example.com" + PATHS[k].format(p) + ("?ref=ad" if p % 7 == 0 else "")
        for k, p in zip(path_kind.tolist(), product.tolist(), strict=True)
    ]
    return pa.table(
        {
            "event_id": pa.array(np.arange(rows, dtype=np.int64) + 1_000_000_000),
            "ts": pa.array(start + offsets.astype("timedelta64[us]"), pa.timestamp("us", tz="UTC")),
            "user_id": pa.array(users),
            "event_type": pa.array([TYPES[k] for k in kinds.tolist()]),
            "country": pa.array(rng.choice(COUNTRIES, rows, p=_zipf_weights(len(COUNTRIES))).tolist()),
            "amount": pa.array(np.round(rng.gamma(2.0, 20.0, rows), 2)),
            "url": pa.array(urls),
            "user_agent": pa.array(rng.choice(AGENTS, rows, p=[0.4, 0.2, 0.25, 0.1, 0.05]).tolist()),
            "email": pa.array([f"user{u}.{i % 97}@example.com" for i, u in enumerate(users.tolist())]),
        }
    )


def _zipf_weights(n: int) -> list[float]:
    w = [1 / (k + 1) for k in range(n)]
    return [x / sum(w) for x in w]


def ndjson_bytes(table: pa.Table) -> int:
    import orjson

    total = 0
    for batch in table.to_batches(max_chunksize=50_000):
        for row in batch.to_pylist():
            total += len(orjson.dumps(row, default=str)) + 1
    return total


def write(con: object, src: str, out: str, codec: str, level: int | None, order: str | None) -> float:
    opts = ["FORMAT parquet", f"COMPRESSION {codec}", "ROW_GROUP_SIZE 122880"]
    if level is not None:
        opts.append(f"COMPRESSION_LEVEL {level}")
    query = f"SELECT * FROM read_parquet('{src}')" + (f" ORDER BY {order}" if order else "")
    started = time.perf_counter()
    con.execute(f"COPY ({query}) TO '{out}' ({', '.join(opts)})")  # type: ignore[attr-defined]
    return time.perf_counter() - started


def scan(con: object, path: str) -> float:
    started = time.perf_counter()
    con.execute(  # type: ignore[attr-defined]
        "SELECT sum(event_id), epoch_us(max(ts)), sum(user_id), count(DISTINCT event_type), max(country), sum(amount), "
        f"max(length(url)), max(user_agent), max(email) FROM read_parquet('{path}')"
    ).fetchall()
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> None:
    import duckdb
    import pyarrow.parquet as pq

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per line (median printed)")
    args = parser.parse_args(argv)

    table = events(args.rows)
    raw = ndjson_bytes(table)
    print(f"{args.rows:,} rows, {table.num_columns} columns; raw NDJSON {raw / 2**20:.1f} MiB", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "source.parquet")
        pq.write_table(table, src, compression="none")
        con = duckdb.connect()
        results = []
        for order in (None, "event_type, user_id"):
            for codec, level in CODECS:
                out = os.path.join(tmp, f"{codec}-{level}-{bool(order)}.parquet")
                writes, scans = [], []
                for _ in range(args.repeat):
                    writes.append(write(con, src, out, codec, level, order))
                    scans.append(scan(con, out))
                results.append(
                    (
                        codec if level is None else f"{codec}({level})",
                        order or "-",
                        os.path.getsize(out),
                        statistics.median(writes),
                        statistics.median(scans),
                    )
                )
        plain = next(size for name, order, size, _, _ in results if name == "uncompressed" and order == "-")
        print(
            f"{'codec':<14} {'sorted by':<21} {'MiB':>7} {'vs NDJSON':>10} {'vs plain Parquet':>17} "
            f"{'write s':>8} {'scan s':>7}"
        )
        for name, order, size, w, s in results:
            print(
                f"{name:<14} {order:<21} {size / 2**20:>7.1f} {100 * (1 - size / raw):>9.1f}% "
                f"{100 * (1 - size / plain):>16.1f}% {w:>8.2f} {s:>7.3f}"
            )


if __name__ == "__main__":
    main()
