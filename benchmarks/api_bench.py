"""REST API latency under concurrent load on loopback: `lakehouse serve` (uvicorn, one process) in a
subprocess, a thread-pool load generator (httpx, keep-alive) running for a bounded time per scenario.

Scenarios, each `--seconds` long with `--clients` concurrent clients:
  health        GET /health (no key, no catalog work): the floor of HTTP + framework on this machine
  catalog       GET /tables and GET /tables/{name}/versions, alternating
  time-travel   POST /query: a count over the table AT (VERSION => 1) (DuckDB over the format's files)

    .venv/bin/python benchmarks/api_bench.py [--seconds 10 --clients 8 --format iceberg]
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
import threading
import time
from typing import Any


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def setup(root: str, fmt: str) -> str:
    from lakehouse.config import load_settings
    from lakehouse.core import Lakehouse
    from lakehouse.governance.keys import create_key
    from lakehouse.schema import parse_partitioning
    from tests.conftest import EVENTS, events

    with Lakehouse(load_settings(config_file=False, warehouse=root)) as lh:
        table = lh.create_table("b.events", schema=EVENTS, format=fmt, partitioning=parse_partitioning("day(ts)"))
        for i in range(10):
            table.append(events(i * 10_000, 10_000))
        return create_key(lh, name="bench", role="admin")[1]


def scenario(base: str, key: str, name: str, seconds: float, clients: int, first_version: int) -> dict[str, Any]:
    import httpx

    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def worker(n: int) -> None:
        nonlocal errors
        with httpx.Client(base_url=base, headers={"X-API-Key": key}, timeout=30) as client:
            i = n
            while time.monotonic() < stop:
                t0 = time.perf_counter()
                if name == "health":
                    r = client.get("/health")
                elif name == "catalog":
                    r = client.get("/tables" if i % 2 else "/tables/b.events/versions")
                else:
                    sql = f"SELECT count(*) AS n FROM b.events AT (VERSION => {first_version})"
                    r = client.post("/query", json={"sql": sql})
                took = time.perf_counter() - t0
                with lock:
                    if r.status_code == 200:
                        latencies.append(took)
                    else:
                        errors += 1
                i += 1

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    latencies.sort()
    q = statistics.quantiles(latencies, n=100) if len(latencies) >= 100 else [latencies[-1]] * 99
    return {
        "requests": len(latencies),
        "errors": errors,
        "per_second": round(len(latencies) / seconds, 1),
        "p50_ms": round(statistics.median(latencies) * 1000, 2),
        "p99_ms": round(q[98] * 1000, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--format", choices=("delta", "iceberg"), default="iceberg")
    args = parser.parse_args()
    tmp = tempfile.mkdtemp(prefix="lakehouse-apibench-")
    server = None
    try:
        key = setup(f"{tmp}/wh", args.format)
        port = free_port()
        exe = os.path.join(os.path.dirname(sys.executable), "lakehouse")
        server = subprocess.Popen(
            [exe, "-w", f"{tmp}/wh", "serve", "--port", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        base = f"http://127.0.0.1:{port}"
        import httpx

        for _ in range(100):
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        versions = httpx.get(f"{base}/tables/b.events/versions", headers={"X-API-Key": key}).json()
        first = min(v["version"] for v in versions if v["operation"] != "create-table")
        results: dict[str, Any] = {"format": args.format, "clients": args.clients, "seconds": args.seconds}
        for name in ("health", "catalog", "time-travel"):
            results[name] = scenario(base, key, name, args.seconds, args.clients, first)
        results["catalog_p50_vs_health"] = round(results["catalog"]["p50_ms"] / results["health"]["p50_ms"], 2)
        results["time_travel_p50_vs_health"] = round(results["time-travel"]["p50_ms"] / results["health"]["p50_ms"], 2)
        print(json.dumps(results, indent=2))
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    main()
