"""The catalog database's tables (prefixed ``lh_``; pyiceberg's SQL catalog keeps its ``iceberg_*`` tables in the
same database) and how to connect to it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from lakehouse.errors import (
    StorageError,
)

metadata = sa.MetaData()

tables_t = sa.Table(
    "lh_tables",
    metadata,
    sa.Column("name", sa.String(128), primary_key=True),
    sa.Column("namespace", sa.String(64), nullable=False, index=True),
    sa.Column("format", sa.String(16), nullable=False),
    sa.Column("location", sa.Text, nullable=False, unique=True),
    sa.Column("schema_json", sa.Text, nullable=False),
    sa.Column("partitioning", sa.Text, nullable=False, default=""),
    sa.Column("keys_json", sa.Text, nullable=False, default="[]"),
    sa.Column("properties_json", sa.Text, nullable=False, default="{}"),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

jobs_t = sa.Table(
    "lh_jobs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("table_name", sa.String(128), index=True),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),  # planned | running | committed | failed
    sa.Column("actor", sa.String(128), nullable=False, default="cli"),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("finished_at", sa.DateTime(timezone=True)),
    sa.Column("params_json", sa.Text, nullable=False, default="{}"),
    sa.Column("metrics_json", sa.Text, nullable=False, default="{}"),
    sa.Column("error", sa.Text),
)


layouts_t = sa.Table(
    "lh_layouts",
    metadata,
    sa.Column("table_name", sa.String(128), primary_key=True),
    sa.Column("partition_key", sa.Text, primary_key=True),
    sa.Column("layout", sa.String(256), nullable=False),  # e.g. zorder:a,b
    sa.Column("files_json", sa.Text, nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)


expired_t = sa.Table(
    "lh_expired_versions",
    metadata,
    sa.Column("table_name", sa.String(128), primary_key=True),
    sa.Column("version", sa.BigInteger, primary_key=True),
    sa.Column("retention", sa.String(64), nullable=False),
    sa.Column("job_id", sa.Integer),
    sa.Column("expired_at", sa.DateTime(timezone=True), nullable=False),
    # JSON list of ISO times at which the version became current (time travel to those moments names the
    # retention; Iceberg's own snapshot log forgets expired snapshots)
    sa.Column("current_since", sa.Text),
    # the version's snapshot id where the format has them (Iceberg): time travel by that id names the retention
    sa.Column("snapshot_id", sa.BigInteger),
)

policies_t = sa.Table(
    "lh_policies",
    metadata,
    sa.Column("table_name", sa.String(128), primary_key=True),
    sa.Column("policy_json", sa.Text, nullable=False),
    sa.Column("actor", sa.String(128), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)


pii_t = sa.Table(
    "lh_pii_tags",
    metadata,
    sa.Column("table_name", sa.String(128), primary_key=True),
    sa.Column("column_name", sa.String(128), primary_key=True),
    sa.Column("kind", sa.String(32), primary_key=True),
    sa.Column("method", sa.String(32), nullable=False),
    sa.Column("confidence", sa.Float, nullable=False),
    sa.Column("matches", sa.Integer, nullable=False),
    sa.Column("sampled", sa.Integer, nullable=False),
    sa.Column("job_id", sa.Integer),
    sa.Column("scanned_at", sa.DateTime(timezone=True), nullable=False),
)

keys_t = sa.Table(
    "lh_api_keys",
    metadata,
    sa.Column("id", sa.String(16), primary_key=True),
    sa.Column("name", sa.String(128), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("secret_sha256", sa.String(64), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("created_by", sa.String(128), nullable=False),
    sa.Column("revoked_at", sa.DateTime(timezone=True)),
)

lineage_t = sa.Table(
    "lh_lineage_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("event_time", sa.DateTime(timezone=True), nullable=False, index=True),
    sa.Column("event_type", sa.String(16), nullable=False),
    sa.Column("job_namespace", sa.String(256), nullable=False),
    sa.Column("job_name", sa.String(256), nullable=False),
    sa.Column("run_id", sa.String(64), nullable=False, index=True),
    sa.Column("inputs_json", sa.Text, nullable=False),
    sa.Column("outputs_json", sa.Text, nullable=False),
    sa.Column("event_json", sa.Text, nullable=False),
)

access_t = sa.Table(
    "lh_access_log",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False, index=True),
    sa.Column("table_name", sa.String(128), nullable=False, index=True),
    sa.Column("predicate_columns_json", sa.Text, nullable=False),
    sa.Column("time_from_json", sa.Text, nullable=False),
    sa.Column("predicates_json", sa.Text),
)

leases_t = sa.Table(
    "lh_leases",
    metadata,
    sa.Column("table_name", sa.String(128), primary_key=True),
    sa.Column("holder", sa.String(256), nullable=False),
    sa.Column("acquired_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
)

catalogs_t = sa.Table(
    "lh_catalogs",
    metadata,
    sa.Column("name", sa.String(63), primary_key=True),
    sa.Column("type", sa.String(16), nullable=False),
    sa.Column("properties_json", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("created_by", sa.String(128), nullable=False),
)
"""External Iceberg catalogs connected with ``lakehouse catalog add`` (their tables are rows of ``lh_tables``
named ``catalog.namespace.table``; see :mod:`lakehouse.external`)."""

stats_t = sa.Table(
    "lh_table_stats",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("table_name", sa.String(160), nullable=False, index=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("score", sa.Float, nullable=False),
    sa.Column("files", sa.Integer, nullable=False),
    sa.Column("bytes", sa.BigInteger, nullable=False),
    sa.Column("small_files", sa.Integer, nullable=False),
    sa.Column("rows", sa.BigInteger, nullable=False),
    sa.Column("tiers_json", sa.Text, nullable=False, default="{}"),
)
"""Each health measurement of a table (``health``, ``maintain``, every autopilot round, the console): the
console's table list and each score's trend read these instead of opening every table."""

LEASED_KINDS = frozenset(
    {"optimize", "vacuum", "orphans", "expire-data", "tier", "dedup", "pii.mask", "erase", "restore", "maintain"}
)
"""Jobs that change a table's files: at most one holder of a table's lease runs them."""

audit_t = sa.Table(
    "lh_audit",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False, index=True),
    sa.Column("actor", sa.String(128), nullable=False),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("table_name", sa.String(128), index=True),
    sa.Column("job_id", sa.Integer),
    sa.Column("outcome", sa.String(16), nullable=False),
    sa.Column("details_json", sa.Text, nullable=False, default="{}"),
)

# the audit log is append-only: the database itself refuses updates and deletes
_APPEND_ONLY = {
    "sqlite": [
        "CREATE TRIGGER IF NOT EXISTS lh_audit_no_update BEFORE UPDATE ON lh_audit "
        "BEGIN SELECT RAISE(ABORT, 'lh_audit is append-only'); END",
        "CREATE TRIGGER IF NOT EXISTS lh_audit_no_delete BEFORE DELETE ON lh_audit "
        "BEGIN SELECT RAISE(ABORT, 'lh_audit is append-only'); END",
    ],
    "postgresql": [
        "CREATE OR REPLACE FUNCTION lh_audit_append_only() RETURNS trigger AS $$ "
        "BEGIN RAISE EXCEPTION 'lh_audit is append-only'; END $$ LANGUAGE plpgsql",
        "DROP TRIGGER IF EXISTS lh_audit_append_only ON lh_audit",
        "CREATE TRIGGER lh_audit_append_only BEFORE UPDATE OR DELETE ON lh_audit "
        "FOR EACH ROW EXECUTE FUNCTION lh_audit_append_only()",
    ],
}


def make_engine(url: str) -> Engine:
    """An engine for the catalog URL; SQLite gets WAL and a busy timeout so processes can share it."""
    if url.startswith("sqlite:///"):
        path = Path(url[len("sqlite:///") :])
        if str(path) != ":memory:":
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise StorageError(f"cannot create the catalog directory {path.parent}: {e}") from e
        engine = sa.create_engine(url, connect_args={"timeout": 30})

        @sa.event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    try:
        return sa.create_engine(url, pool_pre_ping=True)
    except (sa.exc.ArgumentError, ImportError) as e:
        raise StorageError(f"cannot use catalog URL {url!r}: {e}") from e
