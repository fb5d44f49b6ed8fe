"""CLI start-up: how long ``lakehouse --help`` and light commands take, median of ``--repeat`` fresh processes.

ours       ``lakehouse --help``, ``lakehouse table list`` and ``lakehouse jobs`` on a warehouse of ``--tables``
           tables (the CLI imports the facade, DuckDB, the format SDKs and Spark only when a command needs them);
baseline   the start-up ``--help`` had before: a process importing the facade with the CLI
           (``python -c "import lakehouse.core, lakehouse.cli"``), which it did at module level.

  .venv/bin/python benchmarks/startup_bench.py --repeat 7
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import pyarrow as pa

from lakehouse.config import load_settings
from lakehouse.core import Lakehouse

EXE = shutil.which("lakehouse", path=os.path.dirname(sys.executable)) or "lakehouse"


def timed(cmd: list[str], repeat: int, env: dict[str, str]) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env=env)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--tables", type=int, default=20)
    args = ap.parse_args()
    wh = tempfile.mkdtemp(prefix="startup-bench-")
    with Lakehouse(load_settings(config_file=False, warehouse=wh)) as lh:
        for i in range(args.tables):
            lh.create_table(f"s.t{i}", schema=pa.schema([("id", pa.int64())]), format="delta")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LAKEHOUSE_", "AWS_"))}
    rows = [
        (
            "baseline: import lakehouse.core, lakehouse.cli",
            [sys.executable, "-c", "import lakehouse.core, lakehouse.cli"],
        ),
        ("lakehouse --help", [EXE, "--help"]),
        ("lakehouse table list", [EXE, "-w", wh, "table", "list", "--no-sync"]),
        ("lakehouse jobs", [EXE, "-w", wh, "jobs"]),
    ]
    results = {label: timed(cmd, args.repeat, env) for label, cmd in rows}
    for label, seconds in results.items():
        print(f"{label:48s} {seconds * 1000:7.0f} ms")
    base = results[rows[0][0]]
    print(f"--help vs baseline: {base / results['lakehouse --help']:.1f}x faster")
    shutil.rmtree(wh, ignore_errors=True)


if __name__ == "__main__":
    main()
