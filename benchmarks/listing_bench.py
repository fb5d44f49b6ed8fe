"""One S3 listing of a table's prefix, three ways, in one run: what health, cost, vacuum and orphan removal wait
for on a table of many files.

On the tests' S3 server (``tests/fixtures/s3_server.py``), behind the counting proxy of ``tests/faults/proxy.py``:
``--keys`` small objects in ``--partitions`` day directories of one table prefix (plus a few that no table file
names: the listing must return them too). Then, at each ``--latency-ms`` (the proxy holds every LIST answer that
long, a round trip to a remote store; 0 = loopback only), the median of ``--repeat`` listings of the prefix:

* baseline: boto3's paginator with botocore's defaults (one page of 1,000 keys per request, each waiting for
  the previous page's token);
* lakehouse, one listing: ``lakehouse.storage.list_objects`` without known keys (its own timestamp parsing);
* lakehouse, split: the same given the table's files as known keys (``known=``): ranges of about 5,000 keys
  listed side by side, as health, cost, vacuum and orphan removal list a table.

Each way must return the same keys; printed: seconds, LIST requests, and the ratio to the baseline.

    .venv/bin/python benchmarks/listing_bench.py [--keys 30000] [--partitions 30] [--latency-ms 0,50]
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import boto3

from lakehouse.config import load_settings
from lakehouse.core import Lakehouse
from lakehouse.storage import list_objects
from tests.conftest import moto_server
from tests.faults.proxy import FaultPlan, ProxyClient, running_proxy

ROOT = Path(__file__).resolve().parents[1]
BUCKET = "listing-bench"


def _client(url: str) -> object:
    return boto3.client(
        "s3", endpoint_url=url, aws_access_key_id="k", aws_secret_access_key="s", region_name="us-east-1"
    )


def _timed(run: object, repeat: int, proxy: ProxyClient) -> tuple[float, int, list[str]]:
    times, lists, keys = [], 0, []
    for _ in range(repeat):
        proxy.reset()
        started = time.perf_counter()
        keys = run()  # type: ignore[operator]
        times.append(time.perf_counter() - started)
        lists = int(proxy.stats()["requests"].get("LIST", 0))
    return statistics.median(times), lists, keys


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keys", type=int, default=30_000)
    parser.add_argument("--partitions", type=int, default=30)
    parser.add_argument("--latency-ms", default="0,50", help="comma-separated LIST round trips to simulate")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with moto_server([sys.executable, str(ROOT / "tests" / "fixtures" / "s3_server.py")]) as upstream:
        with running_proxy(upstream) as proxy, tempfile.TemporaryDirectory() as tmp:
            direct = _client(upstream)
            direct.create_bucket(Bucket=BUCKET)  # type: ignore[attr-defined]
            files = [f"t/data/day={i % args.partitions:03d}/part-{i:07d}.parquet" for i in range(args.keys)]
            strays = ["t/_delta_log/00000000000000000000.json", "t/data/day=000/orphan.parquet", "t/zz/late.parquet"]
            with cf.ThreadPoolExecutor(16) as pool:
                list(pool.map(lambda k: direct.put_object(Bucket=BUCKET, Key=k, Body=b"x"), files + strays))  # type: ignore[attr-defined]
            settings = load_settings(
                config_file=False,
                warehouse=f"s3://{BUCKET}/t",
                catalog_url=f"sqlite:///{tmp}/c.db",
                s3={"endpoint": proxy.url, "access_key_id": "k", "secret_access_key": "s", "region": "us-east-1"},
            )
            lh = Lakehouse(settings)
            ctx = lh.ctx
            location = f"s3://{BUCKET}/t"
            known = [f"s3://{BUCKET}/{k}" for k in files]
            baseline_client = _client(proxy.url)

            def baseline() -> list[str]:
                pages = baseline_client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix="t/")  # type: ignore[attr-defined]
                return [o["Key"] for page in pages for o in page.get("Contents", [])]

            def one() -> list[str]:
                return [o.path.split("/", 3)[3] for o in list_objects(location, ctx)]

            def split() -> list[str]:
                return [o.path.split("/", 3)[3] for o in list_objects(location, ctx, known=known)]

            print(
                f"{args.keys + len(strays)} objects under one prefix, {args.partitions} partitions; "
                f"median of {args.repeat}"
            )
            print(f"{'LIST latency':>12}  {'way':<22} {'s':>7} {'LIST':>5} {'baseline/way':>12}")
            for latency in (int(x) for x in args.latency_ms.split(",")):
                proxy.plan(FaultPlan("slow", every=1, kinds=("LIST",), delay=latency / 1000) if latency else None)
                base_s, base_lists, expected = _timed(baseline, args.repeat, proxy)
                print(f"{latency:>9} ms  {'baseline: boto3':<22} {base_s:7.2f} {base_lists:5d} {1.0:12.2f}")
                for name, run in (("lakehouse, one listing", one), ("lakehouse, split", split)):
                    s, lists, keys = _timed(run, args.repeat, proxy)
                    if keys != expected:
                        raise SystemExit(f"{name} listed {len(keys)} keys, the baseline {len(expected)}")
                    print(f"{latency:>9} ms  {name:<22} {s:7.2f} {lists:5d} {base_s / s:12.2f}")
            lh.close()


if __name__ == "__main__":
    main()
