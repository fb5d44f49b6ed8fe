"""The catalog store: the one place that lists tables, and the home of job history.

A SQLAlchemy database, SQLite inside the warehouse by default, PostgreSQL by URL
(``postgresql+psycopg://...``). pyiceberg's SQL catalog shares the same database (its ``iceberg_*``
tables); ours are prefixed ``lh_``. Later features (lineage, policies, PII tags, audit) add tables here.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from lakehouse.errors import (
    CatalogEntryError,
    CommitConflictError,
    InvalidSchemaError,
    LakehouseError,
    StorageError,
    TableExistsError,
    TableNotFoundError,
)
from lakehouse.schema import PartitionField, parse_partitioning, schema_from_dict, schema_to_dict
from lakehouse.tables.base import ExpiredVersions, TableDefinition, TableName

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
)

leases_t = sa.Table(
    "lh_leases",
    metadata,
    sa.Column("table_name", sa.String(128), primary_key=True),
    sa.Column("holder", sa.String(256), nullable=False),
    sa.Column("acquired_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
)

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


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _aware(t: dt.datetime | None) -> dt.datetime | None:
    if t is None:
        return None
    return t.replace(tzinfo=dt.UTC) if t.tzinfo is None else t


@dataclass(frozen=True)
class TableRecord:
    """A registered table as the catalog knows it."""

    name: TableName
    format: str
    location: str
    definition: TableDefinition
    created_at: dt.datetime
    updated_at: dt.datetime
    error: str | None = None
    """Why the stored definition cannot be read (an unknown type an older release wrote, corrupt JSON): the
    record then has an empty definition; ``table drop`` still removes it."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": str(self.name),
            "format": self.format,
            "location": self.location,
            "schema": schema_to_dict(self.definition.schema),
            "partitioning": [str(p) for p in self.definition.partitioning],
            "keys": list(self.definition.keys),
            "properties": dict(self.definition.properties),
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
            "error": self.error,
        }


@dataclass(frozen=True)
class JobRecord:
    id: int
    table_name: str | None
    kind: str
    state: str
    actor: str
    started_at: dt.datetime
    finished_at: dt.datetime | None
    params: Mapping[str, Any] = field(default_factory=dict)
    metrics: Mapping[str, Any] = field(default_factory=dict)
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["started_at"] = self.started_at.isoformat()
        d["finished_at"] = self.finished_at.isoformat() if self.finished_at else None
        d["params"], d["metrics"] = dict(self.params), dict(self.metrics)
        return d


@dataclass(frozen=True)
class AuditRecord:
    id: int
    at: dt.datetime
    actor: str
    action: str
    table_name: str | None
    job_id: int | None
    outcome: str
    details: Mapping[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["at"] = self.at.isoformat()
        d["details"] = dict(self.details)
        return d


def _counts(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """The scalar figures of a job's metrics (counts, bytes, versions), not its file lists."""
    return {
        k: v for k, v in metrics.items() if isinstance(v, int | float | bool) or (isinstance(v, str) and len(v) < 80)
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


def _add_missing_columns(conn: Connection) -> None:
    """Columns added to a table after a catalog database was created (``create_all`` only creates tables):
    nullable ones, added in place, so a catalog made by an older lakehouse keeps working."""
    inspector = sa.inspect(conn)
    for table in metadata.sorted_tables:
        if not inspector.has_table(table.name):
            continue
        present = {c["name"] for c in inspector.get_columns(table.name)}
        for column in table.columns:
            if column.name not in present and column.nullable:
                kind = column.type.compile(dialect=conn.dialect)
                conn.exec_driver_sql(f"ALTER TABLE {table.name} ADD COLUMN {column.name} {kind}")


class CatalogStore:
    """Tables and job history in the catalog database."""

    def __init__(self, url: str, *, lease_ttl: float = 1800.0) -> None:
        self.url = url
        self.lease_holder: str | None = None
        """Set by a process that takes table leases itself (the autopilot); its jobs then run under them."""
        self.lease_ttl = lease_ttl
        self._job_leases: dict[int, tuple[str, str, int]] = {}  # job -> (table, holder, thread)
        self._running: set[int] = set()  # jobs this process started and has not finished
        self._leases_lock = threading.Lock()
        # leases this process keeps alive while it works ((table, holder) -> (ttl, registration)), and those it
        # lost; a registration number tells a lease released and taken again apart from the one a renewal saw
        self._kept: dict[tuple[str, str], tuple[float, int]] = {}
        self._registrations = 0
        self._lost: set[tuple[str, str]] = set()
        self._keeper: threading.Thread | None = None
        self._closing = threading.Event()
        self.on_job: Callable[[str, int, str, str | None, Mapping[str, Any]], None] | None = None
        """Called as (event type START|COMPLETE|FAIL|OTHER, job id, kind, table, metrics) when a job starts or ends
        (the lakehouse emits lineage from it)."""
        self.engine = make_engine(url)
        try:
            metadata.create_all(self.engine)
            with self.engine.begin() as conn:
                for ddl in _APPEND_ONLY.get(self.engine.dialect.name, []):
                    conn.exec_driver_sql(ddl)
                _add_missing_columns(conn)
        except sa.exc.SQLAlchemyError as e:
            raise StorageError(f"cannot open the catalog database {url}: {e}") from e

    @contextmanager
    def _tx(self) -> Iterator[Connection]:
        try:
            with self.engine.begin() as conn:
                yield conn
        except sa.exc.OperationalError as e:
            raise StorageError(f"catalog database error: {e.orig}") from e

    # ---- tables --------------------------------------------------------------------------------------

    def add_table(
        self,
        name: TableName,
        fmt: str,
        location: str,
        definition: TableDefinition,
        *,
        audit: tuple[str, str, Mapping[str, Any]] | None = None,
    ) -> TableRecord:
        """Store a table's row (and its audit entry ``(action, actor, details)``) in one transaction, after
        checking that the definition reads back as it is: a definition that cannot be stored changes nothing.

        Raises:
            InvalidSchemaError: naming the column whose type cannot be stored.
            TableExistsError: the name or location is taken.
        """
        columns = self._definition_columns(definition)
        now = _now()
        with self._tx() as conn:
            existing = conn.execute(
                sa.select(tables_t.c.name).where(sa.or_(tables_t.c.name == str(name), tables_t.c.location == location))
            ).first()
            if existing:
                raise TableExistsError(
                    f"the catalog already has table {existing.name}"
                    + (f" at {location}" if existing.name != str(name) else "")
                )
            conn.execute(
                tables_t.insert().values(
                    name=str(name),
                    namespace=name.namespace,
                    format=fmt,
                    location=location,
                    created_at=now,
                    updated_at=now,
                    **columns,
                )
            )
            row = conn.execute(sa.select(tables_t).where(tables_t.c.name == str(name))).one()
            record = self._record(row)  # what every later read will see; raises (and rolls back) if unreadable
            if audit is not None:
                self._audit_row(conn, audit[0], table=name, actor=audit[1], details=audit[2])
        return record

    @classmethod
    def _definition_columns(cls, definition: TableDefinition) -> dict[str, str]:
        """The stored form of a definition, checked to read back as the same definition.

        Raises:
            InvalidSchemaError: naming the column (or partition field) that would not read back."""
        from lakehouse.schema import check_storable, plain_flavours

        # Arrow's large and view flavours of strings, binaries and lists are one type to both formats (pyiceberg
        # reports nested ones as large): the catalog keeps the plain one
        schema = pa.schema([f.with_type(plain_flavours(f.type)) for f in definition.schema])
        check_storable(schema)
        columns = {
            "schema_json": json.dumps(schema_to_dict(schema)),
            "partitioning": ", ".join(str(p) for p in definition.partitioning),
            "keys_json": json.dumps(list(definition.keys)),
            "properties_json": json.dumps(dict(definition.properties), sort_keys=True),
        }
        back = cls._definition(columns["schema_json"], columns["partitioning"], columns["keys_json"], "{}")
        if back.partitioning != tuple(definition.partitioning):
            raise InvalidSchemaError(
                f"partitioning {columns['partitioning']!r} does not read back as stored; lakehouse cannot store it"
            )
        return columns

    def update_table(self, name: TableName, definition: TableDefinition | None = None) -> None:
        """Refresh the stored definition (after a schema change) and bump ``updated_at``."""
        values: dict[str, Any] = {"updated_at": _now()}
        if definition is not None:
            values.update(self._definition_columns(definition))
        with self._tx() as conn:
            conn.execute(tables_t.update().where(tables_t.c.name == str(name)).values(**values))

    def remove_table(self, name: TableName, *, audit: tuple[str, str, Mapping[str, Any]] | None = None) -> None:
        """Remove a table's row and everything the catalog keeps about it (and write its audit entry
        ``(action, actor, details)``), in one transaction."""
        with self._tx() as conn:
            conn.execute(layouts_t.delete().where(layouts_t.c.table_name == str(name)))
            conn.execute(expired_t.delete().where(expired_t.c.table_name == str(name)))
            conn.execute(policies_t.delete().where(policies_t.c.table_name == str(name)))
            conn.execute(pii_t.delete().where(pii_t.c.table_name == str(name)))
            result = conn.execute(tables_t.delete().where(tables_t.c.name == str(name)))
            if result.rowcount == 0:
                raise TableNotFoundError(f"no table {name} in the catalog")
            if audit is not None:
                self._audit_row(conn, audit[0], table=name, actor=audit[1], details=audit[2])

    def get_table(self, name: TableName, *, readable: bool = True) -> TableRecord:
        """The table's record.

        Raises:
            TableNotFoundError: no such table.
            CatalogEntryError: its stored definition cannot be read (unless ``readable=False``, which returns
                the record with ``error`` set and an empty definition: enough to drop it).
        """
        with self._tx() as conn:
            row = conn.execute(sa.select(tables_t).where(tables_t.c.name == str(name))).first()
        if row is None:
            raise TableNotFoundError(
                f"no table {name} in the catalog", hint="see `lakehouse table list`, or create/register it"
            )
        record = self._record(row, strict=False)
        if readable and record.error is not None:
            raise CatalogEntryError(
                f"the catalog entry of table {name} cannot be read: {record.error}; `lakehouse table drop {name}` "
                f"removes the entry (the files stay), then `lakehouse table register {name} {record.location}` "
                "adopts the table again"
            )
        return record

    def list_tables(self, *, namespace: str | None = None, fmt: str | None = None) -> list[TableRecord]:
        """Every table's record; one whose stored definition cannot be read is listed with ``error`` set."""
        query = sa.select(tables_t).order_by(tables_t.c.name)
        if namespace:
            query = query.where(tables_t.c.namespace == namespace.lower())
        if fmt:
            query = query.where(tables_t.c.format == fmt)
        with self._tx() as conn:
            rows = conn.execute(query).all()
        return [self._record(r, strict=False) for r in rows]

    @staticmethod
    def _definition(schema_json: str, partitioning: str, keys_json: str, properties_json: str) -> TableDefinition:
        parts: tuple[PartitionField, ...] = parse_partitioning(partitioning) if partitioning else ()
        return TableDefinition(
            schema=schema_from_dict(json.loads(schema_json)),
            partitioning=parts,
            keys=tuple(json.loads(keys_json)),
            properties=json.loads(properties_json),
        )

    @classmethod
    def _record(cls, row: Any, *, strict: bool = True) -> TableRecord:
        error: str | None = None
        try:
            definition = cls._definition(row.schema_json, row.partitioning, row.keys_json, row.properties_json)
        except (LakehouseError, ValueError, TypeError, KeyError, AttributeError) as e:
            # an older release's type string, hand-edited or corrupt JSON: the row is still listed and droppable
            if strict:
                raise
            error = e.message if isinstance(e, LakehouseError) else f"corrupt definition ({type(e).__name__}: {e})"
            definition = TableDefinition(schema=pa.schema([]))
        return TableRecord(
            name=TableName.parse(row.name),
            format=row.format,
            location=row.location,
            definition=definition,
            created_at=_aware(row.created_at) or _now(),
            updated_at=_aware(row.updated_at) or _now(),
            error=error,
        )

    # ---- jobs ----------------------------------------------------------------------------------------

    def start_job(self, kind: str, *, table: TableName | None, params: Mapping[str, Any], actor: str = "cli") -> int:
        """Record a running job. A job that changes a table's files needs the table's lease: the process's own
        (``lease_holder``, the autopilot) or one taken for this job alone and released when it finishes.

        Raises:
            CommitConflictError: another holder has the lease (an autopilot or another job is at work).
        """
        own: str | None = None
        if table is not None and kind in LEASED_KINDS:
            if self.lease_holder is not None:
                lease = self.lease(table)
                if lease is None or lease["holder"] != self.lease_holder:
                    raise CommitConflictError(f"{self.lease_holder} does not hold the lease of {table}")
            elif not self._held_by_this_thread(str(table)):  # a job inside a job (a purge's vacuum) shares its lease
                own = f"job:{actor}:{uuid.uuid4().hex[:8]}"
                if not self.acquire_lease(table, own, ttl=self.lease_ttl, keep_alive=True):
                    lease = self.lease(table) or {}
                    raise CommitConflictError(
                        f"table {table} is being maintained by {lease.get('holder')} (lease until "
                        f"{lease.get('expires_at')})",
                        hint="wait for it to finish, or stop the autopilot for this table",
                    )
        with self._tx() as conn:
            result = conn.execute(
                jobs_t.insert().values(
                    table_name=str(table) if table else None,
                    kind=kind,
                    state="running",
                    actor=actor,
                    started_at=_now(),
                    params_json=json.dumps(dict(params), default=str, sort_keys=True),
                )
            )
            pk = result.inserted_primary_key
            assert pk is not None
            job_id = int(pk[0])
        with self._leases_lock:
            self._running.add(job_id)
            if own is not None and table is not None:
                self._job_leases[job_id] = (str(table), own, threading.get_ident())
        if self.on_job is not None:
            self.on_job("START", job_id, kind, str(table) if table else None, {})
        return job_id

    def finish_job(
        self,
        job_id: int,
        *,
        state: str,
        metrics: Mapping[str, Any] | None = None,
        error: str | None = None,
        only_running: bool = False,
    ) -> None:
        """Close a job and write its audit entry (who, what, which table, the counts) in one transaction.

        ``only_running``: leave a job alone that its own process finished meanwhile (abandoning a job races its
        process finishing it)."""
        with self._tx() as conn:
            if only_running:
                closing = conn.execute(
                    jobs_t.update()
                    .where((jobs_t.c.id == job_id) & (jobs_t.c.state == "running"))
                    .values(state=state, finished_at=_now())
                ).rowcount
                if not closing:
                    return
            job = conn.execute(sa.select(jobs_t).where(jobs_t.c.id == job_id)).first()
            if job is not None:
                details = {"counts": _counts(metrics or {}), "params": json.loads(job.params_json)}
                if error:
                    details["error"] = " ".join(error.split())
                conn.execute(
                    audit_t.insert().values(
                        at=_now(),
                        actor=job.actor,
                        action=job.kind,
                        table_name=job.table_name,
                        job_id=job_id,
                        outcome=state,
                        details_json=json.dumps(details, default=str, sort_keys=True),
                    )
                )
            conn.execute(
                jobs_t.update()
                .where(jobs_t.c.id == job_id)
                .values(
                    state=state,
                    finished_at=_now(),
                    metrics_json=json.dumps(dict(metrics or {}), default=str, sort_keys=True),
                    error=" ".join(error.split()) if error else None,
                )
            )
        with self._leases_lock:
            held = self._job_leases.pop(job_id, None)
            self._running.discard(job_id)
        if held is not None:
            self.release_lease(held[0], held[1])
        if self.on_job is not None and job is not None:
            event = {"committed": "COMPLETE", "failed": "FAIL"}.get(state, "OTHER")
            self.on_job(event, job_id, job.kind, job.table_name, dict(metrics or {}))

    def record_job(
        self,
        kind: str,
        *,
        table: TableName | None,
        params: Mapping[str, Any],
        state: str,
        metrics: Mapping[str, Any],
        actor: str = "cli",
    ) -> int:
        """A job that finished as it started (for example a run that found nothing to do: ``skipped``)."""
        job = self.start_job(kind, table=table, params=params, actor=actor)
        self.finish_job(job, state=state, metrics=metrics)
        return job

    def jobs(self, *, table: TableName | None = None, limit: int = 100) -> list[JobRecord]:
        query = sa.select(jobs_t).order_by(jobs_t.c.id.desc()).limit(limit)
        if table is not None:
            query = query.where(jobs_t.c.table_name == str(table))
        with self._tx() as conn:
            rows = conn.execute(query).all()
        return self._job_records(rows)

    def latest_jobs(self, kind: str) -> dict[str, JobRecord]:
        """The latest finished job of one kind per table (e.g. each table's last autopilot pass)."""
        newest = (
            sa.select(sa.func.max(jobs_t.c.id))
            .where((jobs_t.c.kind == kind) & jobs_t.c.finished_at.is_not(None) & jobs_t.c.table_name.is_not(None))
            .group_by(jobs_t.c.table_name)
        )
        with self._tx() as conn:
            rows = conn.execute(sa.select(jobs_t).where(jobs_t.c.id.in_(newest))).all()
        return {str(r.table_name): r for r in self._job_records(rows)}

    @staticmethod
    def _job_records(rows: Sequence[Any]) -> list[JobRecord]:
        return [
            JobRecord(
                id=r.id,
                table_name=r.table_name,
                kind=r.kind,
                state=r.state,
                actor=r.actor,
                started_at=_aware(r.started_at) or _now(),
                finished_at=_aware(r.finished_at),
                params=json.loads(r.params_json),
                metrics=json.loads(r.metrics_json),
                error=r.error,
            )
            for r in rows
        ]

    # ---- layouts (which files a Z-order wrote, so an unchanged partition is not redone) ----------------

    def set_layout(self, table: TableName, partition_key: str, layout: str, files: list[str]) -> None:
        with self._tx() as conn:
            conn.execute(
                layouts_t.delete().where(
                    (layouts_t.c.table_name == str(table)) & (layouts_t.c.partition_key == partition_key)
                )
            )
            conn.execute(
                layouts_t.insert().values(
                    table_name=str(table),
                    partition_key=partition_key,
                    layout=layout,
                    files_json=json.dumps(sorted(files)),
                    updated_at=_now(),
                )
            )

    def layouts(self, table: TableName) -> dict[str, tuple[str, frozenset[str]]]:
        with self._tx() as conn:
            rows = conn.execute(sa.select(layouts_t).where(layouts_t.c.table_name == str(table))).all()
        return {r.partition_key: (r.layout, frozenset(json.loads(r.files_json))) for r in rows}

    # ---- PII tags (counts and confidence, never values) ---------------------------------------------------

    def set_pii_tags(self, table: TableName, tags: list[dict[str, Any]], *, job_id: int | None) -> None:
        """Replace a table's tags with the findings of a scan."""
        now = _now()
        with self._tx() as conn:
            conn.execute(pii_t.delete().where(pii_t.c.table_name == str(table)))
            if tags:
                conn.execute(
                    pii_t.insert(),
                    [
                        {
                            "table_name": str(table),
                            "column_name": t["column"],
                            "kind": t["kind"],
                            "method": t["method"],
                            "confidence": float(t["confidence"]),
                            "matches": int(t["matches"]),
                            "sampled": int(t["sampled"]),
                            "job_id": job_id,
                            "scanned_at": now,
                        }
                        for t in tags
                    ],
                )

    def pii_tags(self, table: TableName) -> list[dict[str, Any]]:
        with self._tx() as conn:
            rows = conn.execute(
                sa.select(pii_t).where(pii_t.c.table_name == str(table)).order_by(pii_t.c.column_name, pii_t.c.kind)
            ).all()
        return [
            {
                "column": r.column_name,
                "kind": r.kind,
                "method": r.method,
                "confidence": r.confidence,
                "matches": r.matches,
                "sampled": r.sampled,
                "scanned_at": (_aware(r.scanned_at) or _now()).isoformat(),
            }
            for r in rows
        ]

    # ---- API keys (only a SHA-256 of the secret is stored) ------------------------------------------------

    def add_key(self, key_id: str, *, name: str, role: str, secret_sha256: str, actor: str) -> None:
        with self._tx() as conn:
            conn.execute(
                keys_t.insert().values(
                    id=key_id, name=name, role=role, secret_sha256=secret_sha256, created_at=_now(), created_by=actor
                )
            )

    def key(self, key_id: str) -> dict[str, Any] | None:
        with self._tx() as conn:
            row = conn.execute(sa.select(keys_t).where(keys_t.c.id == key_id)).first()
        return dict(row._mapping) if row is not None else None

    def keys(self) -> list[dict[str, Any]]:
        with self._tx() as conn:
            rows = conn.execute(sa.select(keys_t).order_by(keys_t.c.created_at)).all()
        return [{k: v for k, v in r._mapping.items() if k != "secret_sha256"} for r in rows]

    def revoke_key(self, key_id: str) -> bool:
        with self._tx() as conn:
            result = conn.execute(
                keys_t.update().where((keys_t.c.id == key_id) & keys_t.c.revoked_at.is_(None)).values(revoked_at=_now())
            )
        return bool(result.rowcount)

    def _held_by_this_thread(self, table: str) -> bool:
        with self._leases_lock:
            return any(t == table and th == threading.get_ident() for t, _, th in self._job_leases.values())

    # ---- access log (which tables and predicate columns queries use) --------------------------------------

    def record_access(self, entries: list[dict[str, Any]]) -> None:
        """One row per table a query read: the columns its predicates compare with literals, and for each
        column compared with a time the earliest time it asked for."""
        if not entries:
            return
        now = _now()
        with self._tx() as conn:
            conn.execute(
                access_t.insert(),
                [
                    {
                        "at": now,
                        "table_name": e["table"],
                        "predicate_columns_json": json.dumps(sorted(e.get("predicate_columns", []))),
                        "time_from_json": json.dumps(e.get("time_from", {}), default=str),
                    }
                    for e in entries
                ],
            )

    def access_summary(self, table: TableName | str, *, since: dt.datetime) -> dict[str, Any]:
        """Reads since a time: how many, predicate columns by frequency, earliest time asked per column."""
        with self._tx() as conn:
            rows = conn.execute(
                sa.select(access_t.c.at, access_t.c.predicate_columns_json, access_t.c.time_from_json).where(
                    (access_t.c.table_name == str(table)) & (access_t.c.at >= since)
                )
            ).all()
        columns: dict[str, int] = {}
        time_from: dict[str, str] = {}
        last: dt.datetime | None = None
        for at, cols_json, times_json in rows:
            for c in json.loads(cols_json):
                columns[c] = columns.get(c, 0) + 1
            for c, t in json.loads(times_json).items():
                time_from[c] = min(time_from.get(c, t), t)
            at = _aware(at)
            last = at if last is None or (at is not None and at > last) else last
        return {
            "reads": len(rows),
            "last_read": last.isoformat() if last else None,
            "predicate_columns": dict(sorted(columns.items(), key=lambda kv: -kv[1])),
            "time_from": time_from,
        }

    # ---- leases (one maintainer per table at a time) -----------------------------------------------------

    def acquire_lease(self, table: TableName | str, holder: str, *, ttl: float, keep_alive: bool = False) -> bool:
        """Take (or renew) a table's lease for ``ttl`` seconds; False when another holder has a live one.

        ``keep_alive``: a background thread of this process renews the lease every ``ttl / 3`` until it is
        released, so a job longer than the TTL keeps it, while a process that dies stops renewing and its
        lease lapses after at most ``ttl``."""
        taken = self._take_lease(table, holder, ttl=ttl)
        if taken and keep_alive:
            self._keep_alive(str(table), holder, ttl)
        return taken

    def lease_lost(self, table: TableName | str, holder: str) -> bool:
        """True when a kept-alive lease could not be renewed (it lapsed and another holder took it)."""
        with self._leases_lock:
            return (str(table), holder) in self._lost

    def _keep_alive(self, table: str, holder: str, ttl: float) -> None:
        with self._leases_lock:
            self._registrations += 1
            self._kept[(table, holder)] = (ttl, self._registrations)
            self._lost.discard((table, holder))
            if self._keeper is None or not self._keeper.is_alive():
                self._keeper = threading.Thread(target=self._renew_kept, name="lakehouse-lease-keeper", daemon=True)
                self._keeper.start()

    def _renew_kept(self) -> None:
        while True:
            with self._leases_lock:
                if not self._kept:
                    self._keeper = None
                    return
                pause = max(0.05, min(60.0, min(ttl for ttl, _ in self._kept.values()) / 3))
            if self._closing.wait(pause):
                return
            with self._leases_lock:
                kept = dict(self._kept)
            for (table, holder), (ttl, registration) in kept.items():
                try:
                    renewed = self._renew_lease(table, holder, ttl=ttl)
                except (StorageError, sa.exc.SQLAlchemyError):  # the database busy or away a moment: next beat
                    continue
                if not renewed:
                    with self._leases_lock:
                        # lost only if it is still the registration this renewal was for (not released, or
                        # released and taken again, meanwhile)
                        if self._kept.get((table, holder), (0.0, -1))[1] == registration:
                            del self._kept[(table, holder)]
                            self._lost.add((table, holder))

    def _renew_lease(self, table: str, holder: str, *, ttl: float) -> bool:
        """Extend a lease this holder still has (never re-creates a released one)."""
        now = _now()
        with self._tx() as conn:
            return bool(
                conn.execute(
                    leases_t.update()
                    .where((leases_t.c.table_name == table) & (leases_t.c.holder == holder))
                    .values(expires_at=now + dt.timedelta(seconds=ttl))
                ).rowcount
            )

    def _take_lease(self, table: TableName | str, holder: str, *, ttl: float) -> bool:
        now = _now()
        until = now + dt.timedelta(seconds=ttl)
        with self._tx() as conn:
            taken = conn.execute(
                leases_t.update()
                .where(
                    (leases_t.c.table_name == str(table))
                    & ((leases_t.c.holder == holder) | (leases_t.c.expires_at < now))
                )
                .values(holder=holder, acquired_at=now, expires_at=until)
            ).rowcount
            if taken:
                return True
            exists = conn.execute(sa.select(leases_t.c.holder).where(leases_t.c.table_name == str(table))).first()
            if exists is not None:
                return False
        try:
            with self._tx() as conn:
                conn.execute(
                    leases_t.insert().values(table_name=str(table), holder=holder, acquired_at=now, expires_at=until)
                )
            return True
        except (StorageError, sa.exc.IntegrityError):  # another holder inserted first (the table name is unique)
            return False

    def release_lease(self, table: TableName | str, holder: str) -> None:
        with self._leases_lock:
            self._kept.pop((str(table), holder), None)
            self._lost.discard((str(table), holder))
        with self._tx() as conn:
            conn.execute(leases_t.delete().where((leases_t.c.table_name == str(table)) & (leases_t.c.holder == holder)))

    def lease(self, table: TableName | str) -> dict[str, Any] | None:
        with self._tx() as conn:
            row = conn.execute(sa.select(leases_t).where(leases_t.c.table_name == str(table))).first()
        if row is None or (_aware(row.expires_at) or _now()) < _now():
            return None
        return {"holder": row.holder, "acquired_at": _aware(row.acquired_at), "expires_at": _aware(row.expires_at)}

    def leases(self) -> list[dict[str, Any]]:
        with self._tx() as conn:
            rows = conn.execute(sa.select(leases_t)).all()
        return [
            {"table": r.table_name, "holder": r.holder, "expires_at": _aware(r.expires_at)}
            for r in rows
            if (_aware(r.expires_at) or _now()) >= _now()
        ]

    def abandon_stale_jobs(self) -> int:
        """Mark jobs still 'running' whose table no holder leases any more as failed (their process died); a
        job killed half-way is safe to redo (nothing it did is committed without its table commit)."""
        with self._tx() as conn:
            rows = conn.execute(
                sa.select(jobs_t.c.id, jobs_t.c.table_name, jobs_t.c.kind).where(jobs_t.c.state == "running")
            ).all()
        stale = [r.id for r in rows if r.kind in LEASED_KINDS and r.table_name and self.lease(r.table_name) is None]
        for job_id in stale:
            self.finish_job(
                job_id, state="failed", error="abandoned: its process stopped before it finished", only_running=True
            )
        return len(stale)

    # ---- figures for metrics ------------------------------------------------------------------------------

    def job_stats(self) -> dict[tuple[str, str], tuple[int, float, int]]:
        """(kind, state) -> (jobs, seconds of the finished ones, finished ones)."""
        with self._tx() as conn:
            rows = conn.execute(
                sa.select(jobs_t.c.kind, jobs_t.c.state, jobs_t.c.started_at, jobs_t.c.finished_at)
            ).all()
        out: dict[tuple[str, str], tuple[int, float, int]] = {}
        for kind, state, started, finished in rows:
            n, seconds, done = out.get((kind, state), (0, 0.0, 0))
            if finished is not None and started is not None:
                seconds += ((_aware(finished) or _now()) - (_aware(started) or _now())).total_seconds()
                done += 1
            out[(kind, state)] = (n + 1, seconds, done)
        return out

    def files_rewritten(self) -> int:
        keys = {"optimize": "files_before", "tier": "files_rewritten", "dedup": "files_removed", "pii.mask": "files"}
        total = 0
        with self._tx() as conn:
            rows = conn.execute(
                sa.select(jobs_t.c.kind, jobs_t.c.metrics_json).where(
                    jobs_t.c.kind.in_(list(keys)) & (jobs_t.c.state == "committed")
                )
            ).all()
        for kind, metrics_json in rows:
            value = json.loads(metrics_json).get(keys[kind])
            total += int(value) if isinstance(value, int) else 0
        return total

    def ingested_rows(self, *, namespace: str) -> int:
        """Rows committed by ingestion: the output row counts of lakehouse's own ingest events (job namespace
        ``namespace``); another tool's events, and values that are not counts, count nothing."""
        from lakehouse.governance.lineage import output_rows

        with self._tx() as conn:
            rows = conn.execute(
                sa.select(lineage_t.c.event_json).where(
                    (lineage_t.c.job_namespace == namespace) & (lineage_t.c.job_name == "lakehouse.ingest")
                )
            ).all()
        total = 0
        for (event_json,) in rows:
            try:
                event = json.loads(event_json)
            except ValueError:  # a row that is not JSON counts nothing
                continue
            total += output_rows(event) if isinstance(event, dict) else 0
        return total

    # ---- lineage (OpenLineage run events) -------------------------------------------------------------------

    def add_lineage(self, event: Mapping[str, Any]) -> int:
        def names(kind: str) -> list[str]:
            return [f"{d.get('namespace', '')}::{d.get('name', '')}" for d in event.get(kind) or []]

        job = event.get("job") or {}
        run = event.get("run") or {}
        when = event.get("eventTime")
        try:
            at = dt.datetime.fromisoformat(str(when).replace("Z", "+00:00")) if when else _now()
        except ValueError:
            at = _now()
        with self._tx() as conn:
            result = conn.execute(
                lineage_t.insert().values(
                    event_time=at if at.tzinfo else at.replace(tzinfo=dt.UTC),
                    event_type=str(event.get("eventType") or "OTHER")[:16],
                    job_namespace=str(job.get("namespace", ""))[:256],
                    job_name=str(job.get("name", ""))[:256],
                    run_id=str(run.get("runId", ""))[:64],
                    inputs_json=json.dumps(names("inputs")),
                    outputs_json=json.dumps(names("outputs")),
                    event_json=json.dumps(dict(event), default=str),
                )
            )
            pk = result.inserted_primary_key
            assert pk is not None
            return int(pk[0])

    def lineage_runs(self) -> list[tuple[str, str, str, list[str], list[str], str]]:
        """(job namespace, job name, run id, inputs, outputs, last event time) per run and dataset lists of its
        events (a run's events may name different datasets: union them per run), newest first."""
        columns = (
            lineage_t.c.job_namespace,
            lineage_t.c.job_name,
            lineage_t.c.run_id,
            lineage_t.c.inputs_json,
            lineage_t.c.outputs_json,
        )
        with self._tx() as conn:
            rows = conn.execute(
                sa.select(*columns, sa.func.max(lineage_t.c.event_time))
                .group_by(*columns)
                .order_by(sa.func.max(lineage_t.c.event_time).desc())
            ).all()
        return [(r[0], r[1], r[2], json.loads(r[3]), json.loads(r[4]), str(r[5])) for r in rows]

    def lineage_events(self, *, limit: int = 100) -> list[dict[str, Any]]:
        with self._tx() as conn:
            rows = conn.execute(sa.select(lineage_t.c.event_json).order_by(lineage_t.c.id.desc()).limit(limit)).all()
        return [json.loads(r[0]) for r in rows]

    # ---- audit log (append-only) ----------------------------------------------------------------------------

    def audit(
        self,
        action: str,
        *,
        table: TableName | str | None,
        actor: str,
        outcome: str = "ok",
        details: Mapping[str, Any] | None = None,
        job_id: int | None = None,
    ) -> None:
        """Append one entry: who did what to which table, with counts (never row values)."""
        with self._tx() as conn:
            self._audit_row(conn, action, table=table, actor=actor, outcome=outcome, details=details, job_id=job_id)

    @staticmethod
    def _audit_row(
        conn: Connection,
        action: str,
        *,
        table: TableName | str | None,
        actor: str,
        outcome: str = "ok",
        details: Mapping[str, Any] | None = None,
        job_id: int | None = None,
    ) -> None:
        conn.execute(
            audit_t.insert().values(
                at=_now(),
                actor=actor,
                action=action,
                table_name=str(table) if table is not None else None,
                job_id=job_id,
                outcome=outcome,
                details_json=json.dumps(dict(details or {}), default=str, sort_keys=True),
            )
        )

    def audit_log(
        self, *, table: TableName | None = None, action: str | None = None, limit: int = 100
    ) -> list[AuditRecord]:
        query = sa.select(audit_t).order_by(audit_t.c.id.desc()).limit(limit)
        if table is not None:
            query = query.where(audit_t.c.table_name == str(table))
        if action is not None:
            query = query.where(audit_t.c.action == action)
        with self._tx() as conn:
            rows = conn.execute(query).all()
        return [
            AuditRecord(
                id=r.id,
                at=_aware(r.at) or _now(),
                actor=r.actor,
                action=r.action,
                table_name=r.table_name,
                job_id=r.job_id,
                outcome=r.outcome,
                details=json.loads(r.details_json),
            )
            for r in rows
        ]

    # ---- expired versions (time travel names the retention that removed them) ---------------------------

    def add_expired(
        self,
        table: TableName,
        versions: list[int],
        *,
        retention: str,
        job_id: int | None,
        current_since: Mapping[int, Sequence[dt.datetime]] | None = None,
    ) -> None:
        if not versions:
            return
        since = current_since or {}
        now = _now()
        with self._tx() as conn:
            known = {
                r.version
                for r in conn.execute(
                    sa.select(expired_t.c.version).where(
                        (expired_t.c.table_name == str(table)) & expired_t.c.version.in_(versions)
                    )
                )
            }
            rows = [
                {
                    "table_name": str(table),
                    "version": v,
                    "retention": retention,
                    "job_id": job_id,
                    "expired_at": now,
                    "current_since": json.dumps(sorted(t.isoformat() for t in since.get(v, ()))),
                }
                for v in sorted(set(versions) - known)
            ]
            if rows:
                conn.execute(expired_t.insert(), rows)

    def expired(self, table: TableName) -> ExpiredVersions | None:
        """The versions retention removed from one table (with the retention, job and time of the latest run,
        and when each version was current), or None."""
        with self._tx() as conn:
            rows = conn.execute(
                sa.select(expired_t).where(expired_t.c.table_name == str(table)).order_by(expired_t.c.expired_at)
            ).all()
        if not rows:
            return None
        last = rows[-1]
        since = {
            int(r.version): tuple(dt.datetime.fromisoformat(t) for t in json.loads(r.current_since or "[]"))
            for r in rows
        }
        return ExpiredVersions(
            frozenset(int(r.version) for r in rows), last.retention, last.job_id, _aware(last.expired_at), since
        )

    # ---- per-table policies ------------------------------------------------------------------------------

    def policy(self, table: TableName) -> dict[str, Any]:
        with self._tx() as conn:
            row = conn.execute(sa.select(policies_t).where(policies_t.c.table_name == str(table))).first()
        return dict(json.loads(row.policy_json)) if row is not None else {}

    def set_policy(self, table: TableName, policy: Mapping[str, Any], *, actor: str) -> None:
        with self._tx() as conn:
            conn.execute(policies_t.delete().where(policies_t.c.table_name == str(table)))
            if policy:
                conn.execute(
                    policies_t.insert().values(
                        table_name=str(table),
                        policy_json=json.dumps(dict(policy), sort_keys=True),
                        actor=actor,
                        updated_at=_now(),
                    )
                )

    def interrupt_running(self, reason: str) -> int:
        """Close the jobs this process started and did not finish (it is being stopped: Ctrl-C, SIGTERM) as
        failed, and release their leases; what they committed stays committed, the rest is safe to redo."""
        with self._leases_lock:
            running = sorted(self._running)
        for job_id in running:
            self.finish_job(job_id, state="failed", error=f"interrupted: {reason}", only_running=True)
            with self._leases_lock:  # only_running returns early for a job finished meanwhile: forget it too
                self._running.discard(job_id)
                held = self._job_leases.pop(job_id, None)
            if held is not None:
                self.release_lease(held[0], held[1])
        return len(running)

    def dispose(self) -> None:
        self._closing.set()
        keeper = self._keeper
        if keeper is not None:
            keeper.join(timeout=5)
        self.engine.dispose()
