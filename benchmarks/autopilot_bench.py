"""Autopilot workers over many due tables on one PostgreSQL catalog: throughput, duplicates, takeover.

A throw-away PostgreSQL server on loopback (the Debian binaries ``scripts/install-system-deps.sh`` installs) holds
the catalog; ``--tables`` small Delta tables each get ``--appends`` appends (small files: every table is due for
compaction). For each worker count of ``--workers``, a fresh copy of the tables is maintained by that many
``lakehouse autopilot`` processes at once until every table has been maintained:

  tables/min   tables maintained per minute of wall time (the machine has 2 cores);
  duplicates   tables maintained more than once in the run (every table is due once: must be 0), and pairs of
               maintain jobs on one table that overlapped in time (leases: must be 0);
  takeover     with 2 workers and a short lease (``--lease-ttl``), one worker is killed (SIGKILL) in the middle of a
               job; the time until the other worker starts on that table (the lease lapses, the dead job is
               marked abandoned, the table is due again).

    .venv/bin/python benchmarks/autopilot_bench.py --tables 300 --workers 1,2,4
"""

from __future__ import annotations

import argparse
import glob
import itertools
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pyarrow as pa
import sqlalchemy as sa

from lakehouse.config import load_settings
from lakehouse.core import Lakehouse

EXE = shutil.which("lakehouse", path=os.path.dirname(sys.executable)) or "lakehouse"
SCHEMA = pa.schema([("id", pa.int64()), ("v", pa.string())])


def postgres() -> tuple[str, list[str], Path]:
    def binary(name: str) -> str:
        found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
        path = found[-1] if found else shutil.which(name)
        if not path:
            sys.exit("PostgreSQL server binaries are missing: bash scripts/install-system-deps.sh")
        return path

    base = Path(tempfile.mkdtemp(prefix="autopilot-bench-pg-"))
    prefix: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(base, user="postgres")
        prefix = ["runuser", "-u", "postgres", "--"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    subprocess.run([*prefix, binary("initdb"), "-D", str(base / "data"), "-A", "trust", "-U", "lakehouse",
                    "--no-sync"], check=True, capture_output=True)  # fmt: skip
    opts = f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
    subprocess.run([*prefix, binary("pg_ctl"), "-D", str(base / "data"), "-o", opts, "-l", str(base / "log"), "-w",
                    "start"], check=True, capture_output=True)  # fmt: skip
    return f"postgresql+psycopg://lakehouse@127.0.0.1:{port}", [*prefix, binary("pg_ctl")], base


def fresh_database(server: str) -> str:
    name = f"lh_{uuid.uuid4().hex[:10]}"
    engine = sa.create_engine(f"{server}/postgres", isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text(f"CREATE DATABASE {name}"))
    engine.dispose()
    return f"{server}/{name}"


def build(url: str, wh: str, tables: int, appends: int) -> list[str]:
    names = [f"n{i % 10}.t{i}" for i in range(tables)]
    with Lakehouse(load_settings(config_file=False, warehouse=wh, catalog_url=url)) as lh:
        lh.init()
        for n in names:
            t = lh.create_table(n, schema=SCHEMA, format="delta")
            for a in range(appends):
                t.append(pa.table({"id": [a], "v": ["x"]}, schema=SCHEMA))
    return names


def maintain_jobs(url: str, wh: str) -> list[object]:
    """The autopilot's maintain jobs that ran something (a pass over a healthy table records one with no jobs)."""
    with Lakehouse(load_settings(config_file=False, warehouse=wh, catalog_url=url)) as lh:
        return [
            j
            for j in lh.jobs(limit=1_000_000)
            if j.kind == "maintain" and j.table_name and (j.state != "committed" or j.metrics.get("jobs"))
        ]


def start_workers(n: int, url: str, wh: str, env: dict[str, str]) -> list[subprocess.Popen[bytes]]:
    return [
        subprocess.Popen(
            [EXE, "-w", wh, "--catalog-url", url, "autopilot", "--interval", "1s", "--json"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        for _ in range(n)
    ]


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=60)
        except subprocess.TimeoutExpired:
            p.kill()


def run(server: str, workers: int, tables: int, appends: int, env: dict[str, str], timeout: float) -> dict[str, float]:
    url = fresh_database(server)
    wh = tempfile.mkdtemp(prefix="autopilot-bench-wh-")
    names = build(url, wh, tables, appends)
    started = time.monotonic()
    procs = start_workers(workers, url, wh, env)
    try:
        while time.monotonic() - started < timeout:
            done = {j.table_name for j in maintain_jobs(url, wh) if j.state == "committed"}  # type: ignore[attr-defined]
            if len(done) >= len(names):
                break
            time.sleep(1)
        elapsed = time.monotonic() - started
    finally:
        stop(procs)
    jobs = maintain_jobs(url, wh)
    per_table: dict[str, list[object]] = {}
    for j in jobs:
        per_table.setdefault(j.table_name, []).append(j)  # type: ignore[attr-defined]
    twice = sum(1 for js in per_table.values() if len([j for j in js if j.state == "committed"]) > 1)  # type: ignore[attr-defined]
    overlaps = 0
    for js in per_table.values():
        spans = sorted((j.started_at, j.finished_at) for j in js if j.finished_at)  # type: ignore[attr-defined]
        overlaps += sum(1 for (_, e1), (s2, _) in itertools.pairwise(spans) if e1 > s2)
    maintained = len([t for t, js in per_table.items() if any(j.state == "committed" for j in js)])  # type: ignore[attr-defined]
    shutil.rmtree(wh, ignore_errors=True)
    return {"maintained": maintained, "seconds": elapsed, "per_min": maintained / elapsed * 60, "twice": twice,
            "overlaps": overlaps}  # fmt: skip


def takeover(server: str, tables: int, appends: int, env: dict[str, str], lease_ttl: str) -> float | None:
    url = fresh_database(server)
    wh = tempfile.mkdtemp(prefix="autopilot-bench-wh-")
    build(url, wh, tables, appends)
    env = {**env, "LAKEHOUSE_AUTOPILOT__LEASE_TTL": lease_ttl}
    victim, other = start_workers(2, url, wh, env)
    try:
        holder = None
        deadline = time.monotonic() + 120
        while holder is None and time.monotonic() < deadline:
            with Lakehouse(load_settings(config_file=False, warehouse=wh, catalog_url=url)) as lh:
                for lease in lh.catalog.leases():
                    if f":{victim.pid}:" in lease["holder"]:
                        holder = lease
            time.sleep(0.05)
        if holder is None:
            return None
        victim.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        table = holder["table"]
        while time.monotonic() - killed < 600:
            with Lakehouse(load_settings(config_file=False, warehouse=wh, catalog_url=url)) as lh:
                lease = lh.catalog.lease(table)
            if lease is not None and lease["holder"] != holder["holder"]:
                return time.monotonic() - killed
            time.sleep(0.2)
        return None
    finally:
        stop([victim, other])
        shutil.rmtree(wh, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tables", type=int, default=300)
    ap.add_argument("--appends", type=int, default=4)
    ap.add_argument("--workers", default="1,2,4")
    ap.add_argument("--timeout", type=float, default=900)
    ap.add_argument("--lease-ttl", default="10s")
    args = ap.parse_args()
    server, pg_ctl, base = postgres()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LAKEHOUSE_", "AWS_"))}
    try:
        print(f"{args.tables} due tables ({args.appends} small files each), PostgreSQL catalog, {os.cpu_count()} cores")
        print(f"{'workers':>7} {'maintained':>10} {'seconds':>8} {'tables/min':>10} {'twice':>6} {'overlaps':>8}")
        for w in [int(x) for x in args.workers.split(",")]:
            r = run(server, w, args.tables, args.appends, env, args.timeout)
            print(f"{w:7d} {r['maintained']:10.0f} {r['seconds']:8.1f} {r['per_min']:10.1f} {r['twice']:6.0f} "
                  f"{r['overlaps']:8.0f}", flush=True)  # fmt: skip
        t = takeover(server, min(args.tables, 60), args.appends, env, args.lease_ttl)
        print(
            f"takeover after SIGKILL (lease ttl {args.lease_ttl}): " + (f"{t:.1f} s" if t is not None else "not seen")
        )
    finally:
        subprocess.run([*pg_ctl, "-D", str(base / "data"), "-m", "immediate", "stop"], check=False, capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
