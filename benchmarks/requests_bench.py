"""Object-store requests of one compaction of N small files, both formats, counted by the proxy.

Starts moto's S3 server and the counting proxy of ``tests/faults/proxy.py`` in front of it, builds for each
format and each N an unpartitioned table of N small files (N appends), then counts every request
``lakehouse optimize`` makes through the proxy (no faults): GET, HEAD, LIST, PUT, POST (multipart), DELETE,
and the bytes each way. The question it answers: does compacting N files cost N GETs plus the outputs plus a
constant number of metadata requests, or a multiple of N?

    .venv/bin/python benchmarks/requests_bench.py [--n 4 16 64] [--rows 500]
"""

from __future__ import annotations

import argparse
import datetime as dt
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import boto3
import pyarrow as pa

from lakehouse.config import load_settings
from lakehouse.core import Lakehouse
from lakehouse.maintenance.compaction import optimize
from lakehouse.maintenance.planner import CompactionOptions
from tests.faults.proxy import ProxyClient, running_proxy

KINDS = ("GET", "HEAD", "LIST", "PUT", "POST", "DELETE", "OTHER")
SCHEMA = pa.schema(
    [
        pa.field("id", pa.int64(), nullable=False),
        pa.field("ts", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("country", pa.string()),
        pa.field("amount", pa.float64()),
    ]
)


def _rows(start: int, n: int) -> pa.Table:
    base = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
    ids = range(start, start + n)
    return pa.table(
        {
            "id": list(ids),
            "ts": [base + dt.timedelta(seconds=i) for i in ids],
            "country": [("DE", "FR", "US")[i % 3] for i in ids],
            "amount": [i * 0.5 for i in ids],
        },
        schema=SCHEMA,
    )


def _moto() -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            urllib.request.urlopen(f"{url}/moto-api/", timeout=1).close()
            return proc, url
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("moto did not start")


def measure(proxy: ProxyClient, upstream: str, fmt: str, n: int, rows: int, tmp: Path) -> dict[str, Any]:
    bucket = f"lh-bench-{uuid.uuid4().hex[:10]}"
    client = boto3.client(
        "s3", endpoint_url=upstream, aws_access_key_id="k", aws_secret_access_key="s", region_name="us-east-1"
    )
    client.create_bucket(Bucket=bucket)
    settings = load_settings(
        config_file=False,
        warehouse=f"s3://{bucket}/warehouse",
        catalog_url=f"sqlite:///{tmp}/{fmt}-{n}.db",
        s3={"endpoint": proxy.url, "access_key_id": "k", "secret_access_key": "s", "region": "us-east-1"},
    )
    with Lakehouse(settings) as lh:
        table = lh.create_table("b.events", schema=SCHEMA, format=fmt)
        for i in range(n):
            table.append(_rows(i * rows, rows))
        files_before = len(table.files())
        proxy.reset()
        started = time.perf_counter()
        result = optimize(lh, "b.events", CompactionOptions(target_file_size=256 << 20))
        seconds = time.perf_counter() - started
        stats = proxy.stats()
        files_after = len(lh.table("b.events").files())
    requests = stats["requests"]
    return {
        "format": fmt,
        "n": n,
        "files": f"{files_before} → {files_after}",
        "rows": result.rows_in,
        "seconds": seconds,
        **{k: requests.get(k, 0) for k in KINDS},
        "total": sum(requests.values()),
        "bytes_in": sum(stats["bytes_received"].values()),
        "bytes_out": sum(stats["bytes_sent"].values()),
        "deleted_keys": stats["deleted_keys"],
        "log": stats["log"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, nargs="+", default=[4, 16, 64])
    parser.add_argument("--rows", type=int, default=500, help="rows per small file")
    parser.add_argument("--formats", nargs="+", default=["delta", "iceberg"])
    parser.add_argument("--log", action="store_true", help="print every request of the largest N")
    args = parser.parse_args()
    moto, upstream = _moto()
    results = []
    try:
        with running_proxy(upstream) as proxy, tempfile.TemporaryDirectory() as tmp:
            for fmt in args.formats:
                for n in args.n:
                    results.append(measure(proxy, upstream, fmt, n, args.rows, Path(tmp)))
    finally:
        moto.terminate()
        moto.wait(timeout=10)
    print(
        f"{'format':<8} {'N':>4} {'files':>9} {'GET':>5} {'HEAD':>5} {'LIST':>5} {'PUT':>4} {'POST':>5}"
        f" {'DEL':>4} {'total':>6} {'GET/N':>6} {'MB in':>7} {'MB out':>7} {'s':>6}"
    )
    for r in results:
        print(
            f"{r['format']:<8} {r['n']:>4} {r['files']:>9} {r['GET']:>5} {r['HEAD']:>5} {r['LIST']:>5}"
            f" {r['PUT']:>4} {r['POST']:>5} {r['DELETE']:>4} {r['total']:>6} {r['GET'] / r['n']:>6.2f}"
            f" {r['bytes_in'] / 1e6:>7.2f} {r['bytes_out'] / 1e6:>7.2f} {r['seconds']:>6.2f}"
        )
    print("per extra input file (slope between the two largest N):")
    for fmt in args.formats:
        rs = sorted((r for r in results if r["format"] == fmt), key=lambda r: r["n"])
        if len(rs) < 2:
            continue
        a, b = rs[-2], rs[-1]
        dn = b["n"] - a["n"]
        slope = {k: (b[k] - a[k]) / dn for k in KINDS if b[k] != a[k]}
        const = {k: round(b[k] - slope.get(k, 0) * b["n"], 1) for k in KINDS if b[k]}
        print(f"  {fmt}: per file { ({k: round(v, 2) for k, v in slope.items()}) }; constant part {const}")
    if args.log:
        for r in results:
            if r["n"] == max(args.n):
                print(f"-- {r['format']} N={r['n']}")
                for kind, method, path, status in r["log"]:
                    print(f"  {kind:<6} {method:<6} {status} {path[:150]}")


if __name__ == "__main__":
    main()
