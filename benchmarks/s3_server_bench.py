"""CPU per request of the tests' S3 server: moto's stock launcher (``python -m moto.server``, the baseline) against
``tests/fixtures/s3_server.py`` (the same server without the launcher's per-request costs), in one run.

For each server: a bucket, then N PutObject, N GetObject and N HeadObject calls of a 20 KB object through boto3;
then ``--keys`` more (tiny) objects and one paged ListObjectsV2 of them (1,000 keys a page). Printed: the server
process's CPU time (user + system, from /proc) per request of each kind (per page for the listing), and the
ratio.

    .venv/bin/python benchmarks/s3_server_bench.py [--requests 150] [--keys 20000]
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import boto3

from tests.conftest import moto_server

ROOT = Path(__file__).resolve().parents[1]

KINDS = ("put", "get", "head", "list page")


def _cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _server_pid(url: str) -> int:
    """The process listening on ``url``'s port (the server moto_server started)."""
    port = int(url.rsplit(":", 1)[1])
    for pid in (p for p in os.listdir("/proc") if p.isdigit()):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if str(port).encode() in cmdline and b"-p" in cmdline:
            return int(pid)
    raise RuntimeError(f"no process serves {url}")


def measure(command: list[str], n: int, keys: int) -> dict[str, float]:
    """Server CPU milliseconds per request of each kind (per page of the listing)."""
    with moto_server(command) as url:
        pid = _server_pid(url)
        client = boto3.client(
            "s3", endpoint_url=url, aws_access_key_id="k", aws_secret_access_key="s", region_name="us-east-1"
        )
        client.create_bucket(Bucket="bench-bucket")
        body = b"x" * 20_000
        out = {}
        for kind in KINDS[:3]:
            before = _cpu(pid)
            for i in range(n):
                if kind == "put":
                    client.put_object(Bucket="bench-bucket", Key=f"k{i}", Body=body)
                elif kind == "get":
                    client.get_object(Bucket="bench-bucket", Key=f"k{i}")["Body"].read()
                else:
                    client.head_object(Bucket="bench-bucket", Key=f"k{i}")
            out[kind] = (_cpu(pid) - before) / n * 1000
        with cf.ThreadPoolExecutor(8) as pool:
            list(
                pool.map(
                    lambda i: client.put_object(Bucket="bench-bucket", Key=f"t/d={i % 100}/f{i}", Body=b"x"),
                    range(keys),
                )
            )
        before, pages = _cpu(pid), 0
        for _page in client.get_paginator("list_objects_v2").paginate(Bucket="bench-bucket", Prefix="t/"):
            pages += 1
        out["list page"] = (_cpu(pid) - before) / pages * 1000
        return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=150)
    parser.add_argument("--keys", type=int, default=20_000, help="objects in the bucket for the listing")
    args = parser.parse_args()
    stock = measure([sys.executable, "-m", "moto.server"], args.requests, args.keys)
    lean = measure([sys.executable, str(ROOT / "tests" / "fixtures" / "s3_server.py")], args.requests, args.keys)
    print(f"{'request':10} {'stock ms':>9} {'lean ms':>8} {'lean/stock':>10}")
    for kind in KINDS:
        print(f"{kind:10} {stock[kind]:9.2f} {lean[kind]:8.2f} {lean[kind] / stock[kind]:10.2f}")


if __name__ == "__main__":
    main()
