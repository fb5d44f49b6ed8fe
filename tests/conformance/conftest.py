"""Fixtures of the foreign-writer conformance suite: a CLI on a fresh warehouse and catalog per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conformance.harness import Cli
from tests.conformance.spark_writers import CATALOG, SparkWriter


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path)


@pytest.fixture(scope="session")
def spark_writer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SparkWriter]:
    """Spark with the Iceberg runtime, started the way lakehouse starts it (``Lakehouse.spark().session()``,
    local[2]); one JVM per test process. Tables go to a Hadoop catalog ``foreign`` in a directory of its own, so
    lakehouse adopts them by location only."""
    from lakehouse.config import load_settings
    from lakehouse.core import Lakehouse

    root = tmp_path_factory.mktemp("spark")
    settings = load_settings(
        config_file=False, warehouse=str(root / "lh"), spark={"master": "local[2]", "driver_memory": "1g"}
    )
    with Lakehouse(settings) as lh:
        session = lh.spark().session()
        warehouse = str(root / "hadoop")
        prefix = f"spark.sql.catalog.{CATALOG}"
        session.conf.set(prefix, "org.apache.iceberg.spark.SparkCatalog")
        session.conf.set(prefix + ".type", "hadoop")
        session.conf.set(prefix + ".warehouse", "file://" + warehouse)
        yield SparkWriter(session, warehouse)
