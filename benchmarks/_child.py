"""What the benchmarks that measure one job per process share: run this script again as a child with a JSON
spec, and read a process's own peak RSS."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any


def vm_hwm(pid: int) -> float | None:
    """Peak RSS of process ``pid`` in MB (``VmHWM``: its own address space, unlike ``ru_maxrss``, which folds in
    the high-water mark of the image a child was forked from)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            return next(int(line.split()[1]) / 1024 for line in f if line.startswith("VmHWM:"))
    except (OSError, StopIteration):
        return None


def run_child(script: Path, spec: dict[str, Any], what: str) -> dict[str, Any]:
    """Run ``script --child SPEC`` in a fresh interpreter; its last stdout line is the JSON result."""
    proc = subprocess.run(
        [sys.executable, str(script), "--child", json.dumps(spec)],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONPATH": str(script.parent.parent)},
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{what} failed:\n{proc.stderr[-3000:]}")
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))
