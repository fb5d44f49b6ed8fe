"""The fault matrix's summary: each cell writes its outcome as one JSON file into a directory shared by the
xdist workers (its path travels in ``LAKEHOUSE_TEST_FAULTS_RESULTS``, made by the controller), and the controller
prints the table at the end of the run. ``tests/conftest.py`` imports these hooks: the controller of an
``-n auto`` run collects nothing, so it never loads ``tests/faults/conftest.py``."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pytest

from tests.faults.proxy import FAULTS

RESULTS_ENV = "LAKEHOUSE_TEST_FAULTS_RESULTS"
_MADE = "_lakehouse_faults_results_made"


def pytest_configure(config: pytest.Config) -> None:
    if not hasattr(config, "workerinput") and RESULTS_ENV not in os.environ:
        os.environ[RESULTS_ENV] = tempfile.mkdtemp(prefix="lakehouse-faults-")
        setattr(config, _MADE, os.environ[RESULTS_ENV])


def pytest_unconfigure(config: pytest.Config) -> None:
    """Remove the directory this run made (after the summary was printed); one given from outside is kept."""
    made = getattr(config, _MADE, None)
    if made is not None:
        shutil.rmtree(made, ignore_errors=True)
        os.environ.pop(RESULTS_ENV, None)


def results_dir() -> Path:
    return Path(os.environ[RESULTS_ENV])


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    if hasattr(config, "workerinput") or RESULTS_ENV not in os.environ:
        return
    cells = [json.loads(p.read_text()) for p in sorted(results_dir().glob("*.json"))]
    if not cells:
        return
    tr = terminalreporter
    tr.section("fault matrix: object-store faults injected through the proxy, and each job's outcome")
    outcomes: dict[str, Counter[str]] = defaultdict(Counter)
    injected: Counter[str] = Counter()
    for c in cells:
        outcomes[c["fault"]][c["outcome"]] += 1
        injected[c["fault"]] += c["injected"]
    kinds = sorted({c["outcome"] for c in cells})
    tr.write_line(f"{'fault':<10} {'cells':>5} {'injected':>8} " + " ".join(f"{k:>16}" for k in kinds))
    for fault in FAULTS:
        if fault not in outcomes:
            continue
        row = outcomes[fault]
        tr.write_line(
            f"{fault:<10} {sum(row.values()):>5} {injected[fault]:>8} " + " ".join(f"{row[k]:>16}" for k in kinds)
        )
    total = Counter(c["outcome"] for c in cells)
    tr.write_line(
        f"{'all':<10} {len(cells):>5} {sum(injected.values()):>8} " + " ".join(f"{total[k]:>16}" for k in kinds)
    )
    by_job: dict[str, Counter[str]] = defaultdict(Counter)
    for c in cells:
        by_job[f"{c['job']}/{c['format']}"][c["outcome"]] += 1
    tr.write_line("per job/format: " + "; ".join(f"{j} {dict(v)}" for j, v in sorted(by_job.items())))
    failed = [c for c in cells if c["outcome"].startswith("failed-clean")]
    for c in failed:
        tr.write_line(f"  failed cleanly: {c['job']}/{c['format']}/{c['fault']}: {c['error'][:160]}")
