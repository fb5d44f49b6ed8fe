"""The Spark engine's checks and bookkeeping that need no JVM: what is refused before a session starts, and what
Delta's VACUUM reports. A test that would start a JVM fails instead (``_start`` / ``_sql`` are replaced)."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

pytest.importorskip("pyspark")

from lakehouse.config import load_settings
from lakehouse.core import Lakehouse
from lakehouse.engines.spark import SparkEngine, check_master
from lakehouse.errors import (
    ConfigError,
    DependencyMissingError,
    InvalidInputError,
    UnsupportedOperationError,
    VersionNotFoundError,
)
from lakehouse.schema import parse_partitioning
from lakehouse.tables.base import StorageContext, TableName
from tests.conftest import EVENTS, events


def _no_jvm(*_: Any, **__: Any) -> Any:
    raise AssertionError("a JVM was started")


def _engine(tmp_path: Path, **spark: Any) -> SparkEngine:
    settings = load_settings(config_file=False, warehouse=str(tmp_path / "wh"), spark=spark)
    ctx = StorageContext(warehouse=str(tmp_path / "wh"), catalog_url=f"sqlite:///{tmp_path}/c.db")
    return SparkEngine(settings, ctx)


def test_master_urls_of_every_form_spark_takes_and_nothing_else() -> None:
    for ok in (
        "local",
        "local[1]",
        "local[*]",
        "local[4,2]",
        "spark://h:7077",
        "yarn",
        "k8s://https://h",
        "mesos://m:5050",
    ):
        assert check_master(ok) == ok
    for bad in ("bogus://x", "local[0]", "local[x]", "spark:/h", "", "yarn-cluster"):
        with pytest.raises(InvalidInputError, match="not a master URL"):
            check_master(bad)


def test_preflight_refuses_a_missing_jar_no_java_and_a_bad_master_before_any_jvm(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("lakehouse.engines.spark._launch_gateway", _no_jvm)
    engine = _engine(tmp_path, master="local[2]", jars=[str(tmp_path / "delta-spark_2.12-3.3.2.jar")])
    assert engine.delta_enabled  # by name; the file is checked before a start
    with pytest.raises(ConfigError, match=r"jar\(s\) not found: .*delta-spark_2.12-3.3.2.jar"):
        engine.session()
    (tmp_path / "delta-spark_2.12-3.3.2.jar").write_bytes(b"PK")
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "no-java"))
    with pytest.raises(DependencyMissingError, match=r"needs Java 17.*no runnable bin/java.*openjdk-17"):
        engine.session()
    monkeypatch.delenv("JAVA_HOME")
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(DependencyMissingError, match="no java on PATH"):
        engine.session()
    bad = _engine(tmp_path, master="bogus://x")
    with pytest.raises(InvalidInputError, match="bogus://x"):
        bad.describe()  # a dry run names the master too: refused before any work


def test_spark_query_refuses_and_resolves_versions_before_starting_a_session(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(SparkEngine, "_start", _no_jvm)
    with Lakehouse(load_settings(config_file=False, warehouse=str(tmp_path / "wh"))) as lh:
        lh.create_table("s.d", schema=EVENTS, format="delta").append(events(0, 10))
        ice = lh.create_table("s.i", schema=EVENTS, format="iceberg", partitioning=parse_partitioning("day(ts)"))
        ice.append(events(0, 10))
        with pytest.raises(UnsupportedOperationError, match="delta-spark jars"):
            lh.query("SELECT count(*) FROM s.d", engine="spark")
        with pytest.raises(VersionNotFoundError):
            lh.query("SELECT count(*) FROM s.i AT (VERSION => 9)", engine="spark")


def test_delta_vacuum_on_spark_refuses_a_window_under_the_orphan_age_and_reports_every_deletion(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = _engine(tmp_path, master="local[2]", delta=True)
    location = tmp_path / "t"
    (location / "_delta_log").mkdir(parents=True)
    for name in ("live.parquet", "expired.parquet", "untracked.parquet", "_delta_log/0.json"):
        (location / name).write_bytes(b"x" * 10)
    table: Any = SimpleNamespace(format="delta", name=TableName.parse("s.t"), location=str(location))
    statements: list[str] = []

    def fake_vacuum(statement: str) -> list[Any]:  # what delta-spark's VACUUM does: expired and untracked go
        statements.append(statement)
        os.remove(location / "expired.parquet")
        os.remove(location / "untracked.parquet")
        return []

    monkeypatch.setattr(engine, "_sql", fake_vacuum)
    with pytest.raises(InvalidInputError, match=r"0s window.*untracked file.*orphan age 3d") as refused:
        engine.vacuum_delta(table, dt.timedelta(0))  # the orphan age of the settings: 3d by default
    assert "retain at least 3d" in str(refused.value) and not statements
    with pytest.raises(InvalidInputError, match="orphan age 2h"):
        engine.vacuum_delta(table, dt.timedelta(hours=1), orphan_age=dt.timedelta(hours=2))
    gone = engine.vacuum_delta(table, dt.timedelta(hours=2), orphan_age=dt.timedelta(hours=2))
    assert statements == [f"VACUUM delta.`{location}` RETAIN 2.000000 HOURS"]
    assert sorted(os.path.basename(f.path) for f in gone) == ["expired.parquet", "untracked.parquet"]
    assert sum(f.size for f in gone) == 20
