"""Fixtures for the fault matrix: a counting, fault-injecting proxy in front of the session's S3 server, and
settings that point every client at it with fast retries.

Each matrix cell writes its outcome as one JSON file into a directory shared by the xdist workers; the
controller prints the summary table at the end of the run (:mod:`tests.faults.summary`, whose hooks
``tests/conftest.py`` carries, so that the controller of an ``-n auto`` run of the whole suite has them too).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lakehouse.config import Settings, load_settings
from tests.conftest import S3Endpoint
from tests.faults.proxy import ProxyClient, running_proxy
from tests.faults.summary import results_dir  # noqa: F401 (the cells import it from here)

# fast retries: the same count and shape as in production (libraries' own retry settings), shorter pauses
RETRIES = {"max_retries": 4, "retry_backoff": 0.02, "retry_max_backoff": 0.2, "retry_timeout": 30}


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
    return _settings(proxy.url, endpoint, bucket, tmp_path, **extra)


def direct_settings(endpoint: S3Endpoint, bucket: str, tmp_path: Path, **extra: Any) -> Settings:
    """The same warehouse and catalog as :func:`proxied_settings`, straight to the S3 server (for what happens
    before and after a fault is planned: building a cell's table, reading it back)."""
    return _settings(endpoint.url, endpoint, bucket, tmp_path, **extra)


def _settings(url: str, endpoint: S3Endpoint, bucket: str, tmp_path: Path, **extra: Any) -> Settings:
    return load_settings(
        config_file=False,
        warehouse=f"s3://{bucket}/warehouse",
        catalog_url=f"sqlite:///{tmp_path}/catalog.db",
        s3={
            "endpoint": url,
            "access_key_id": endpoint.access_key,
            "secret_access_key": endpoint.secret_key,
            "region": endpoint.region,
            **RETRIES,
        },
        **extra,
    )
