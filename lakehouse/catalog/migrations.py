"""Versioned upgrades of the catalog database, so an existing warehouse upgrades in place.

The database records its schema version in ``lh_schema_version``. Opening a catalog applies, in one
transaction each, every migration newer than that version, then records it. A database without the table
was made by release 0.1 (or is new): it is version 0, and migration 1 brings it to the 0.1 schema (which
creates a new database's tables too). A database of a newer version than this lakehouse knows is refused:
its schema may hold what this release would misread.

Add a migration for every change to :mod:`lakehouse.catalog.schema`: append it to :data:`MIGRATIONS` (never edit
a released one), and extend ``tests/integration/test_catalog_migrations.py``, which upgrades a catalog made by
release 0.1 (``tests/fixtures/catalog-0.1.sql``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from lakehouse.catalog.schema import _APPEND_ONLY, metadata
from lakehouse.errors import StorageError

version_t = sa.Table("lh_schema_version", sa.MetaData(), sa.Column("version", sa.Integer, nullable=False))


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    apply: Callable[[Connection], None]


def _tables_of_0_1(conn: Connection) -> None:
    """The tables of release 0.1 (for a new database: all of them), and the audit log's append-only triggers."""
    metadata.create_all(conn)
    for ddl in _APPEND_ONLY.get(conn.dialect.name, []):
        conn.exec_driver_sql(ddl)
    _add_missing_columns(conn)


def _add_missing_columns(conn: Connection) -> None:
    """Nullable columns that catalogs made before 0.1 was released may lack (``create_all`` only creates
    tables), added in place."""
    inspector = sa.inspect(conn)
    for table in metadata.sorted_tables:
        if not inspector.has_table(table.name):
            continue
        present = {c["name"] for c in inspector.get_columns(table.name)}
        for column in table.columns:
            if column.name not in present and column.nullable:
                kind = column.type.compile(dialect=conn.dialect)
                conn.exec_driver_sql(f"ALTER TABLE {table.name} ADD COLUMN {column.name} {kind}")


def _jobs_by_kind(conn: Connection) -> None:
    """An index for the questions the health score, ``maintain`` and the autopilot ask of the job history on
    every round (the newest finished job of a kind per table; running jobs)."""
    conn.exec_driver_sql("CREATE INDEX IF NOT EXISTS ix_lh_jobs_kind_state ON lh_jobs (kind, state)")


def _catalogs(conn: Connection) -> None:
    from lakehouse.catalog.schema import catalogs_t

    catalogs_t.create(conn, checkfirst=True)


def _stats(conn: Connection) -> None:
    from lakehouse.catalog.schema import stats_t

    stats_t.create(conn, checkfirst=True)
    _add_missing_columns(conn)


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "the tables of release 0.1", _tables_of_0_1),
    Migration(2, "index lh_jobs by kind and state", _jobs_by_kind),
    Migration(3, "lh_expired_versions.snapshot_id (time travel by an expired snapshot id)", _add_missing_columns),
    Migration(4, "lh_catalogs (connected external Iceberg catalogs)", _catalogs),
    Migration(5, "lh_table_stats (health measurements) and lh_access_log.predicates_json", _stats),
)
LATEST = MIGRATIONS[-1].version


def current_version(conn: Connection) -> int:
    if not sa.inspect(conn).has_table(version_t.name):
        return 0
    return int(conn.execute(sa.select(sa.func.max(version_t.c.version))).scalar() or 0)


def upgrade(engine: Engine) -> list[Migration]:
    """Bring the catalog database to :data:`LATEST`; returns the migrations applied (none when it is there)."""
    applied = []
    try:
        with engine.begin() as conn:
            version_t.create(conn, checkfirst=True)
            found = current_version(conn)
        if found > LATEST:
            raise StorageError(
                f"the catalog database {engine.url.render_as_string(hide_password=True)} has schema version "
                f"{found}, newer than this lakehouse knows ({LATEST})",
                hint="upgrade lakehouse (pip install -U lakehouse) before using this catalog",
            )
        for migration in MIGRATIONS:
            if migration.version <= found:
                continue
            with engine.begin() as conn:  # each migration and its version record commit together
                if current_version(conn) >= migration.version:  # another process applied it meanwhile
                    continue
                migration.apply(conn)
                conn.execute(sa.delete(version_t))
                conn.execute(sa.insert(version_t).values(version=migration.version))
            applied.append(migration)
    except sa.exc.SQLAlchemyError as e:
        raise StorageError(f"cannot upgrade the catalog database: {e}") from e
    return applied
