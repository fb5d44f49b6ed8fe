"""The catalog database upgrades in place: a catalog made by release 0.1 opens, is migrated to the latest schema
version (each migration once), and keeps every record; a catalog newer than this lakehouse is refused."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pyarrow as pa
import pytest
import sqlalchemy as sa

from lakehouse.catalog import CatalogStore
from lakehouse.catalog.migrations import LATEST, MIGRATIONS, current_version, upgrade
from lakehouse.config import load_settings
from lakehouse.core import Lakehouse
from lakehouse.errors import StorageError
from lakehouse.tables.base import TableName

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "catalog-0.1.sql"


def _release_0_1_catalog(tmp_path: Path) -> str:
    path = tmp_path / "catalog.db"
    con = sqlite3.connect(path)
    con.executescript(FIXTURE.read_text())
    con.close()
    return f"sqlite:///{path}"


def test_a_release_0_1_catalog_upgrades_in_place_and_keeps_its_records(tmp_path: Path) -> None:
    url = _release_0_1_catalog(tmp_path)
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        assert current_version(conn) == 0
        jobs_before = conn.exec_driver_sql("SELECT count(*) FROM lh_jobs").scalar()
        audit_before = conn.exec_driver_sql("SELECT count(*) FROM lh_audit").scalar()
    engine.dispose()

    store = CatalogStore(url)
    try:
        with store.engine.connect() as conn:
            assert current_version(conn) == LATEST
            indexes = {i["name"] for i in sa.inspect(conn).get_indexes("lh_jobs")}
        assert "ix_lh_jobs_kind_state" in indexes  # migration 2 ran
        assert [str(r.name) for r in store.list_tables()] == ["sales.delta_orders", "sales.iceberg_orders"]
        record = store.get_table(TableName.parse("sales.iceberg_orders"))
        assert record.format == "iceberg" and record.definition.schema.names == ["id", "email"]
        jobs = store.jobs()
        assert len(jobs) == jobs_before and {j.kind for j in jobs} == {"optimize"}
        assert all(j.state == "committed" for j in jobs)
        assert len(store.audit_log(limit=100)) == audit_before
        assert store.policy(TableName.parse("sales.delta_orders")) == {"retention": {"retain": "7d"}}
        assert [k["name"] for k in store.keys()] == ["ci reader"]
        with pytest.raises(sa.exc.DatabaseError, match="append-only"), store.engine.begin() as conn:
            conn.exec_driver_sql("DELETE FROM lh_audit")
    finally:
        store.dispose()
    assert upgrade(sa.create_engine(url)) == []  # opened again: nothing left to do


def test_the_upgraded_catalog_serves_a_lakehouse(tmp_path: Path) -> None:
    url = _release_0_1_catalog(tmp_path)
    with Lakehouse(load_settings(config_file=False, warehouse=str(tmp_path / "wh"), catalog_url=url)) as lh:
        table = lh.create_table("sales.new", schema=pa.schema([("id", pa.int64())]), format="iceberg")
        table.append(pa.table({"id": [1, 2]}))
        assert lh.query("SELECT sum(id) AS s FROM sales.new").table.to_pylist() == [{"s": 3}]
        names = [str(r.name) for r in lh.catalog.list_tables()]
        assert names == ["sales.delta_orders", "sales.iceberg_orders", "sales.new"]


def test_a_new_catalog_starts_at_the_latest_version(tmp_path: Path) -> None:
    store = CatalogStore(f"sqlite:///{tmp_path / 'new.db'}")
    try:
        with store.engine.connect() as conn:
            assert current_version(conn) == LATEST == MIGRATIONS[-1].version
    finally:
        store.dispose()


def test_a_catalog_newer_than_this_lakehouse_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'future.db'}"
    CatalogStore(url).dispose()
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql(f"UPDATE lh_schema_version SET version = {LATEST + 1}")
    engine.dispose()
    with pytest.raises(StorageError, match="newer than this lakehouse knows"):
        CatalogStore(url)
