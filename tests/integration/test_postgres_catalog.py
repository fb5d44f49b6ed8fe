"""The catalog (ours and pyiceberg's) on PostgreSQL by URL instead of SQLite."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from lakehouse.config import load_settings
from lakehouse.core import Lakehouse
from lakehouse.schema import parse_partitioning
from tests.conftest import EVENTS, events, sorted_rows

pytestmark = pytest.mark.postgres


def test_both_formats_on_a_postgres_catalog(postgres_url: str, tmp_path: Path) -> None:
    settings = load_settings(config_file=False, warehouse=str(tmp_path / "wh"), catalog_url=postgres_url)
    with Lakehouse(settings) as lh:
        for fmt in ("delta", "iceberg"):
            name = f"pg.events_{fmt}"
            t = lh.create_table(name, schema=EVENTS, format=fmt, partitioning=parse_partitioning("day(ts)"))
            v1 = t.append(events(0, 20)).version
            t.append(events(20, 20))
            assert sorted_rows(t.scan(as_of=v1)) == sorted_rows(events(0, 20))
            assert lh.query(f"SELECT count(*) AS n FROM {name}").table.to_pylist() == [{"n": 40}]
            lh.restore(name, v1)
            assert lh.table(name).row_count() == 20
        assert [str(r.name) for r in lh.list_tables()] == ["pg.events_delta", "pg.events_iceberg"]
        assert [j.kind for j in lh.jobs()] == ["restore", "restore"]
    # the tables really live in PostgreSQL, pyiceberg's beside ours
    engine = sa.create_engine(postgres_url)
    with engine.connect() as conn:
        names = {r[0] for r in conn.execute(sa.text("SELECT table_name FROM information_schema.tables"))}
        assert {"lh_tables", "lh_jobs", "iceberg_tables"} <= names
        assert conn.execute(sa.text("SELECT count(*) FROM lh_tables")).scalar() == 2
        assert conn.execute(sa.text("SELECT table_name FROM iceberg_tables")).scalar() == "events_iceberg"
    engine.dispose()
    # a second process (new Lakehouse object) sees the same catalog
    with Lakehouse(settings) as lh2:
        assert lh2.table("pg.events_iceberg").row_count() == 20
