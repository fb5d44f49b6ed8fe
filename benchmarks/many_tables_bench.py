"""Many tables: list and health commands and the API's lists over a warehouse of ``--tables`` small Delta tables.

  table list     ``lakehouse table list --no-sync --json`` (a fresh process each time: start-up included), p50/p99
  /tables        ``GET /tables?limit=50`` against ``lakehouse serve``, p50/p99 of ``--requests``
  /console/tables  the console's list (size, score, trend, tiers, last job, PII per row), p50/p99
  health --all   ``lakehouse health --all --json`` once (it opens every table: time per table), with ``--health``

No list touches the object store: lists read the catalog database only.

    .venv/bin/python benchmarks/many_tables_bench.py --tables 1000 --health
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import pyarrow as pa

from lakehouse.config import load_settings
from lakehouse.core import Lakehouse
from lakehouse.governance.keys import create_key

EXE = shutil.which("lakehouse", path=os.path.dirname(sys.executable)) or "lakehouse"
SCHEMA = pa.schema([("id", pa.int64()), ("v", pa.string())])


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tables", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=20, help="table list processes")
    ap.add_argument("--requests", type=int, default=100)
    ap.add_argument("--health", action="store_true", help="also time health of every table")
    args = ap.parse_args()
    wh = tempfile.mkdtemp(prefix="many-tables-")
    with Lakehouse(load_settings(config_file=False, warehouse=wh)) as lh:
        lh.init()
        key = create_key(lh, name="bench", role="admin")[1]
        for i in range(args.tables):
            lh.create_table(f"n{i % 20}.t{i}", schema=SCHEMA, format="delta").append(
                pa.table({"id": [i], "v": ["x"]}, schema=SCHEMA)
            )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LAKEHOUSE_", "AWS_"))}
    times = []
    for _ in range(args.runs):
        t0 = time.perf_counter()
        out = subprocess.run([EXE, "-w", wh, "table", "list", "--no-sync", "--json"], check=True, capture_output=True,
                             env=env).stdout  # fmt: skip
        times.append(time.perf_counter() - t0)
    assert len(json.loads(out)) == args.tables
    print(f"{args.tables} tables")
    print(f"table list (process)   p50 {pct(times, 50) * 1000:7.0f} ms  p99 {pct(times, 99) * 1000:7.0f} ms")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([EXE, "-w", wh, "serve", "--port", str(port)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, env=env)  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                urllib.request.urlopen(base + "/health", timeout=1).close()
                break
            except OSError:
                time.sleep(0.5)
        for path in ("/tables?limit=50", "/console/tables?limit=50&sort=bytes&desc=true"):
            lat = []
            for _ in range(args.requests):
                t0 = time.perf_counter()
                with urllib.request.urlopen(urllib.request.Request(base + path, headers={"X-API-Key": key})) as r:
                    r.read()
                lat.append(time.perf_counter() - t0)
            print(f"{path.split('?')[0]:22s} p50 {pct(lat, 50) * 1000:7.1f} ms  p99 {pct(lat, 99) * 1000:7.1f} ms")
    finally:
        server.terminate()
        server.wait(timeout=30)
    if args.health:
        t0 = time.perf_counter()
        subprocess.run([EXE, "-w", wh, "health", "--json"], check=True, capture_output=True, env=env)
        took = time.perf_counter() - t0
        print(f"health (every table)   {took:7.1f} s  ({took / args.tables * 1000:.0f} ms per table)")
    shutil.rmtree(wh, ignore_errors=True)


if __name__ == "__main__":
    main()
