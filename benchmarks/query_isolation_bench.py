"""What query isolation costs, and what it protects: two measurements in one run.

1. Latency: the same time-travel query (``count(*)``, ``min(note)`` over a 100,000-row table AT VERSION 1)
   in-process (DuckDB's own delta_scan/iceberg_scan, the CLI's path) and through a query worker (a separate
   process with an rlimit whose DuckDB reads nothing itself: the API's path), sequentially, ``--queries`` each;
   p50/p99 and the ratio.
2. Memory: ``lakehouse serve`` in its own process; its RSS after a warm-up query, then after ``--bombs``
   memory-bomb queries (ten nested ``replace()``: the string grows 8-fold per level outside DuckDB's buffer
   manager, so it is the worker's rlimit or the time limit that stops it; each answered 413 or 408), and after
   one normal query.

    .venv/bin/python benchmarks/query_isolation_bench.py [--format iceberg] [--queries 200] [--bombs 100]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

BOMB = "SELECT length(" + "replace(" * 10 + "lpad('ab', 1000, 'a')" + ", 'a', 'aaaaaaaa')" * 10 + ")"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS:"))


def quantiles(latencies: list[float]) -> dict[str, float]:
    latencies = sorted(latencies)
    q = statistics.quantiles(latencies, n=100) if len(latencies) >= 100 else [latencies[-1]] * 99
    return {"p50_ms": round(statistics.median(latencies) * 1000, 2), "p99_ms": round(q[98] * 1000, 2)}


def latency(root: str, fmt: str, queries: int) -> dict[str, Any]:
    from lakehouse.config import load_settings
    from lakehouse.core import Lakehouse
    from lakehouse.schema import parse_partitioning
    from tests.conftest import EVENTS, events

    with Lakehouse(load_settings(config_file=False, warehouse=root)) as lh:
        table = lh.create_table("b.events", schema=EVENTS, format=fmt, partitioning=parse_partitioning("day(ts)"))
        for i in range(10):
            table.append(events(i * 10_000, 10_000))
        first = min(s.version for s in table.snapshots() if s.operation != "create-table")
        sql = f"SELECT count(*) AS n, min(note) AS m FROM b.events AT (VERSION => {first})"
        out: dict[str, Any] = {}
        for name, isolated in (("in_process", False), ("worker", True)):
            lh.query(sql, isolated=isolated)  # warm: extensions loaded, a worker started
            took = []
            for _ in range(queries):
                t0 = time.perf_counter()
                lh.query(sql, isolated=isolated)
                took.append(time.perf_counter() - t0)
            out[name] = quantiles(took)
        out["p50_ratio_worker_vs_in_process"] = round(out["worker"]["p50_ms"] / out["in_process"]["p50_ms"], 2)
        return out


def bombs(root: str, count: int, timeout: float) -> dict[str, Any]:
    import httpx

    from lakehouse.config import load_settings
    from lakehouse.core import Lakehouse
    from lakehouse.governance.keys import create_key

    with Lakehouse(load_settings(config_file=False, warehouse=root)) as lh:
        key = create_key(lh, name="bench", role="reader")[1]
    port = free_port()
    exe = os.path.join(os.path.dirname(sys.executable), "lakehouse")
    server = subprocess.Popen(
        [exe, "-w", root, "serve", "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(150):
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        with httpx.Client(base_url=base, headers={"X-API-Key": key}, timeout=120) as client:
            normal = {"sql": "SELECT count(*) AS n FROM b.events"}
            assert client.post("/query", json=normal).status_code == 200
            start = rss(server.pid)
            statuses: dict[int, int] = {}
            t0 = time.perf_counter()
            for _ in range(count):
                r = client.post("/query", json={"sql": BOMB, "timeout_seconds": timeout})
                statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
            took = time.perf_counter() - t0
            after_bombs = rss(server.pid)
            answered = client.post("/query", json=normal).status_code
            after = rss(server.pid)
        return {
            "bombs": count,
            "statuses": statuses,
            "seconds_per_bomb": round(took / count, 2),
            "server_rss_start_mb": round(start / 2**20, 1),
            "server_rss_after_bombs_mb": round(after_bombs / 2**20, 1),
            "server_rss_growth_mb": round((after - start) / 2**20, 1),
            "next_query_status": answered,
            "within_100_mb": after - start <= 100 * 2**20,
        }
    finally:
        server.terminate()
        server.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--format", choices=("delta", "iceberg"), default="iceberg")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--bombs", type=int, default=100)
    parser.add_argument("--bomb-timeout", type=float, default=3, help="each bomb's timeout_seconds")
    args = parser.parse_args()
    tmp = tempfile.mkdtemp(prefix="lakehouse-isolation-")
    try:
        results: dict[str, Any] = {"format": args.format}
        results["time_travel"] = latency(f"{tmp}/wh", args.format, args.queries)
        results["memory_bombs"] = bombs(f"{tmp}/wh", args.bombs, args.bomb_timeout)
        print(json.dumps(results, indent=2))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    main()
