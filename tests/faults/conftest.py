"""Fixtures for the fault matrix: a counting, fault-injecting proxy in front of the session's S3 server, and
settings that point every client at it with fast retries.

Each matrix cell writes its outcome as one JSON file into a directory shared by the xdist workers (its path
travels in ``LAKEHOUSE_TEST_FAULTS_RESULTS``); the controller prints the summary table at the end of the run
(``pytest_terminal_summary``; run ``pytest tests/faults`` to have this conftest loaded in the controller).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lakehouse.config import Settings, load_settings
from tests.conftest import S3Endpoint
from tests.faults.proxy import FAULTS, ProxyClient, running_proxy

RESULTS_ENV = "LAKEHOUSE_TEST_FAULTS_RESULTS"
# fast retries: the same count and shape as in production (libraries' own retry settings), shorter pauses
RETRIES = {"max_retries": 4, "retry_backoff": 0.02, "retry_max_backoff": 0.2, "retry_timeout": 30}


def pytest_configure(config: pytest.Config) -> None:
    if not hasattr(config, "workerinput") and RESULTS_ENV not in os.environ:
        os.environ[RESULTS_ENV] = tempfile.mkdtemp(prefix="lakehouse-faults-")


def results_dir() -> Path:
    return Path(os.environ[RESULTS_ENV])


@pytest.fixture(scope="session")
def fault_proxy(s3_endpoint: S3Endpoint) -> Iterator[ProxyClient]:
    with running_proxy(s3_endpoint.url) as proxy:
        yield proxy


@pytest.fixture
def proxy(fault_proxy: ProxyClient) -> Iterator[ProxyClient]:
    """The proxy with no faults planned and zeroed counters; no faults left planned afterwards."""
    fault_proxy.plan(None)
    fault_proxy.reset()
    yield fault_proxy
    fault_proxy.plan(None)


def proxied_settings(proxy: ProxyClient, endpoint: S3Endpoint, bucket: str, tmp_path: Path, **extra: Any) -> Settings:
    """Settings whose S3 endpoint is the proxy (every client: delta-rs, pyarrow/pyiceberg, DuckDB, boto3)."""
    return load_settings(
        config_file=False,
        warehouse=f"s3://{bucket}/warehouse",
        catalog_url=f"sqlite:///{tmp_path}/catalog.db",
        s3={
            "endpoint": proxy.url,
            "access_key_id": endpoint.access_key,
            "secret_access_key": endpoint.secret_key,
            "region": endpoint.region,
            **RETRIES,
        },
        **extra,
    )


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
