"""SQL over catalog tables through DuckDB in this process, with its own delta, iceberg and httpfs extensions.

Extensions are loaded offline from their PyPI wheels (``duckdb-extension-*``); nothing is downloaded. Each
catalog table reference (see :mod:`lakehouse.sql.rewrite`) becomes a temporary view over ``delta_scan(...)`` /
``iceberg_scan(...)`` of the declared columns. This engine is for callers trusted with the raw data and the
machine (the CLI's own user) and for jobs; the API and masked reads run in :mod:`lakehouse.sql.worker`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from lakehouse.duck import connect_duckdb, duck_type
from lakehouse.errors import (
    LakehouseError,
    QueryError,
    QueryTimeoutError,
    StorageError,
)
from lakehouse.sql import allowlist
from lakehouse.sql.planned import PlannedRead, plan_read
from lakehouse.sql.pushdown import pushable
from lakehouse.sql.rewrite import access_of, rewrite
from lakehouse.storage import StorageContext
from lakehouse.tables.base import AsOf, TableName

if TYPE_CHECKING:
    import duckdb

    from lakehouse.config import QuerySettings
    from lakehouse.credentials import S3Credentials
    from lakehouse.tables.base import LakehouseTable


@dataclass(frozen=True)
class QueryResult:
    table: pa.Table
    truncated: bool
    sql: str
    access: tuple[dict[str, Any], ...] = ()
    """Per catalog table read: predicate columns and earliest times asked (for the access log)."""
    reads: tuple[dict[str, Any], ...] = ()
    """Per table reference: how it was read (``files``: the files lakehouse planned, how many of how many;
    ``format``: the format's own scan)."""

    def as_dict(self) -> dict[str, Any]:
        """The answer as JSON-ready values: rows are objects keyed by column, so columns of one name (``SELECT *``
        over a join, ``SELECT 1 AS a, 2 AS a``) are told apart (see :func:`unique_names`: a renamed column
        says ``renamed_from``) instead of the last one hiding the others.

        Raises:
            QueryError: a value has no Python form (a date past year 9999, an infinite timestamp).
        """
        names = unique_names(self.table.column_names)
        columns: list[dict[str, Any]] = []
        for f, name in zip(self.table.schema, names, strict=True):
            columns.append({"name": name, "type": str(f.type)} | ({"renamed_from": f.name} if name != f.name else {}))
        return {
            "columns": columns,
            "rows": python_rows(self.table.rename_columns(names)),
            "row_count": self.table.num_rows,
            "truncated": self.truncated,
        }


def json_value(value: Any) -> Any:
    """The JSON form of a result value JSON has no type for (the ``default`` of the API's and the CLI's encoders):
    binary as base64, an interval or a duration as ISO 8601 (``P1M2DT3.5S``), times in ISO 8601, anything else
    (decimals, UUIDs) as its text.

    >>> json_value(b"\\xff\\x00"), json_value(dt.timedelta(days=1, seconds=1.5))
    ('/wA=', 'P1DT1.5S')
    """
    import base64

    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, dt.timedelta):  # a negative one as -P...: its parts all have the same sign
        mag = abs(value)
        return ("-" if value < dt.timedelta(0) else "") + _iso_duration(
            0, mag.days, mag.seconds * 1_000_000_000 + mag.microseconds * 1000
        )
    if isinstance(value, pa.MonthDayNano):
        return _iso_duration(value.months, value.days, value.nanoseconds)
    if isinstance(value, dt.date | dt.time):  # dt.datetime too: ISO 8601, as orjson writes them
        return value.isoformat()
    return str(value)


def _iso_duration(months: int, days: int, nanoseconds: int) -> str:
    sign = "-" if nanoseconds < 0 else ""
    seconds = f"{sign}{abs(nanoseconds) // 1_000_000_000}"
    fraction = f"{abs(nanoseconds) % 1_000_000_000:09d}".rstrip("0")
    time = f"T{seconds}{'.' + fraction if fraction else ''}S" if nanoseconds else ""
    return f"P{f'{months}M' if months else ''}{f'{days}D' if days or not (months or time) else ''}{time}"


def unique_names(names: Sequence[str]) -> list[str]:
    """Column names made unique for an answer keyed by name: the first of a name keeps it, a later one becomes
    ``name_2``, ``name_3``... (skipping any name the result already has).

    >>> unique_names(["id", "v", "id", "id_2", "id"])
    ['id', 'v', 'id_3', 'id_2', 'id_4']
    """
    taken = set(names)
    seen: set[str] = set()
    out = []
    for name in names:
        if name in seen:
            n = 2
            while f"{name}_{n}" in taken:
                n += 1
            new = f"{name}_{n}"
            taken.add(new)
            name = new
        seen.add(name)
        out.append(name)
    return out


def python_rows(table: pa.Table) -> list[dict[str, Any]]:
    """A result's rows as Python values (``table``'s names unique), or :class:`QueryError` naming the column whose
    values have none."""
    try:
        return table.to_pylist()
    except (OverflowError, ValueError, pa.ArrowException) as e:
        bad = []
        for name in table.column_names:
            try:
                table.column(name).to_pylist()
            except (OverflowError, ValueError, pa.ArrowException):
                bad.append(name)
        raise QueryError(
            f"a value of column(s) {', '.join(bad) or '?'} has no Python form ({e})",
            hint="cast the column to VARCHAR in the query (the API's Arrow format carries such values as they are)",
        ) from e


@dataclass(eq=False)
class _Database:
    """One DuckDB database of the engine, with the number of queries running on it."""

    con: duckdb.DuckDBPyConnection
    allowed: frozenset[str]
    active: int = 0
    retired: bool = False


def _covers(allowed: frozenset[str], wanted: set[str]) -> bool:
    return all(any(w.startswith(a) for a in allowed) for w in wanted)


INTERRUPT_EVERY = 0.05
"""Seconds between interrupts once a query is past its time limit (DuckDB forgets an interrupt that arrives
before a statement starts, so one is not enough)."""


class SqlEngine:
    """A DuckDB database with the extensions loaded and S3 configured; one cursor per query.

    DuckDB's allowed directories cannot change once its configuration is locked, so the first query of a table
    outside them opens a new database that may read it too. The new one is built outside the engine's lock and
    swapped in; the old one is retired and closed by the last query still running on it (closing a connection
    waits for its running queries, so no query ever waits for another one here)."""

    def __init__(self, ctx: StorageContext, settings: QuerySettings) -> None:
        self.ctx = ctx
        self.settings = settings
        self._db: _Database | None = None
        self._lock = threading.Lock()
        self._allowed: set[str] = {_dir(ctx.warehouse)}
        self._scoped: dict[str, S3Credentials] = {}
        """Credentials of tables on stores the engine's context does not know (an external catalog's bucket), by
        the table location they are scoped to."""

    def connection(self, locations: Sequence[str] = ()) -> duckdb.DuckDBPyConnection:
        """The engine's current connection, one that may read ``locations`` (for inspection: a query holds its
        database with :meth:`_acquire` while it runs)."""
        db = self._acquire(locations)
        self._release(db)
        return db.con

    def _acquire(self, locations: Sequence[str]) -> _Database:
        """A database whose allowed directories cover ``locations``, in use until :meth:`_release`."""
        wanted = {_dir(loc) for loc in locations}
        while True:
            with self._lock:
                current = self._db
                if current is not None and _covers(current.allowed, wanted):
                    current.active += 1
                    return current
                self._allowed |= wanted
                allowed = frozenset(self._allowed)
            fresh = _Database(self._connect(allowed), allowed)  # loads the extensions: not under the lock
            retired: _Database | None = None
            with self._lock:
                current = self._db
                use: _Database | None = None
                if current is not None and _covers(current.allowed, wanted):
                    use = current  # another query swapped in one that will do meanwhile
                elif current is None or allowed >= current.allowed:
                    self._db = use = fresh
                    retired = current
                if use is not None:
                    use.active += 1
            if use is not fresh:
                fresh.con.close()  # nothing ever ran on it; otherwise another directory came meanwhile: again
            if retired is not None:
                self._retire(retired)
            if use is not None:
                return use

    def _retire(self, db: _Database) -> None:
        with self._lock:
            db.retired = True
            idle = db.active == 0
        if idle:
            db.con.close()

    def _release(self, db: _Database) -> None:
        with self._lock:
            db.active -= 1
            idle = db.retired and db.active == 0
        if idle:
            db.con.close()

    def _scope_credentials(self, tables: Iterable[LakehouseTable]) -> None:
        """Give DuckDB the credentials of tables whose store the engine's context does not reach itself (a table
        of an external catalog on a bucket of its own): a secret scoped to the table's location. A new one
        retires the current database, so the next query connects with it."""
        fresh = {}
        for t in tables:
            creds = t.ctx.credentials_for(t.location)
            if creds is not None and StorageContext.is_s3(t.location) and creds != self.ctx.credentials_for(t.location):
                fresh[t.location.rstrip("/") + "/"] = creds
        with self._lock:
            changed = any(self._scoped.get(k) != v for k, v in fresh.items())
            self._scoped.update(fresh)
            current = self._db if changed else None
            if current is not None:
                self._db = None
        if current is not None:
            self._retire(current)

    def _connect(self, allowed: frozenset[str]) -> duckdb.DuckDBPyConnection:
        with self._lock:
            scoped = sorted(self._scoped.items())
        return connect_duckdb(
            self.ctx,
            memory_limit=self.settings.memory_limit,
            threads=self.settings.threads,
            allowed_directories=sorted(allowed),
            extra_credentials=scoped,
            # footers read once per file (DuckDB's object cache, OBJECT_CACHE in duckdb_memory()): planned reads
            # of a table's files (lakehouse.sql.planned) otherwise decode the same footers for every query
            settings={"parquet_metadata_cache": True},
        )

    def close(self) -> None:
        """Close the database (queries still running on it close it when they finish)."""
        with self._lock:
            db, self._db = self._db, None
        if db is not None:
            self._retire(db)

    def query(
        self,
        sql: str,
        *,
        resolve: Callable[[TableName], LakehouseTable],
        as_of: Mapping[str, AsOf] | None = None,
        max_rows: int | None = None,
        timeout: float | None = None,
    ) -> QueryResult:
        """Run one SELECT over catalog tables, in this process (for a caller trusted with the raw data and the
        machine: the CLI's own user; the API and masked reads use :class:`lakehouse.sql.worker.IsolatedEngine`).

        Args:
            sql: the query; ``namespace.table`` names catalog tables.
            resolve: opens a table by name at its newest version (raises TableNotFoundError).
            as_of: version or time per table name, for references without their own ``AT (...)``.
            max_rows: rows to return at most (default: the ``query.max_rows`` setting).
            timeout: seconds, counted from this call, after which the query is interrupted
                (:class:`QueryTimeoutError`).
        """
        deadline = time.monotonic() + timeout if timeout else None
        limit = max_rows or self.settings.max_rows
        pinned = {TableName.parse(k): v for k, v in (as_of or {}).items()}
        rewritten, views = rewrite(sql, pinned)
        allowlist.check_sql(rewritten, tables=views)
        tables = {name: resolve(name) for name, _ in views.values()}
        with contextlib.ExitStack() as pins:  # each table answers from the version it was opened at
            for table in tables.values():
                pins.enter_context(table.pinned(refresh=False))
            return self._query(rewritten, views, tables, limit, deadline, timeout, sql)

    def _query(
        self,
        rewritten: str,
        views: Mapping[str, tuple[TableName, AsOf | None]],
        tables: Mapping[TableName, LakehouseTable],
        limit: int,
        deadline: float | None,
        timeout: float | None,
        sql: str,
    ) -> QueryResult:
        """:meth:`query` once its tables are open and pinned."""
        self._scope_credentials(tables.values())
        # where each table's files are: its location, and directories outside it that the format records
        db = self._acquire([loc for t in tables.values() for loc in t.read_locations()])
        try:
            cursor = db.con.cursor()
        except BaseException:
            self._release(db)
            raise
        cancelled = threading.Event()  # set once the time limit is reached
        done = threading.Event()
        watchdog = None
        if deadline is not None:
            watchdog = threading.Thread(
                target=_interrupt_at, args=(cursor, deadline, cancelled, done), name="lakehouse-query-limit"
            )
            watchdog.daemon = True
            try:
                watchdog.start()
            except BaseException:  # no thread to be had: give the connection back before failing
                cursor.close()
                self._release(db)
                raise
        reads: list[dict[str, Any]] = []
        try:
            result = self._run(cursor, rewritten, views, tables, limit, cancelled, reads)
        except Exception as e:
            if cancelled.is_set():  # whatever failed after the interrupt failed because of it
                raise QueryTimeoutError(f"query cancelled after its time limit of {timeout:g} s") from e
            if isinstance(e, LakehouseError):
                raise
            raise QueryError(f"query failed: {_first_line(e)}") from e  # duckdb's classes: the query's fault
        finally:
            done.set()
            if watchdog is not None:
                watchdog.join()
            cursor.close()
            self._release(db)
        truncated = result.num_rows > limit
        return QueryResult(
            result.slice(0, limit) if truncated else result, truncated, rewritten, tuple(access_of(sql)), tuple(reads)
        )

    def _run(
        self,
        cursor: duckdb.DuckDBPyConnection,
        rewritten: str,
        views: Mapping[str, tuple[TableName, AsOf | None]],
        tables: Mapping[TableName, LakehouseTable],
        limit: int,
        cancelled: threading.Event,
        reads: list[dict[str, Any]],
    ) -> pa.Table:
        """The table views, then the query; up to ``limit + 1`` rows. ``reads`` gets how each view reads."""
        for view, (name, when) in views.items():
            table = tables[name]
            snapshot = table.snapshot(when) if when is not None else None
            planned = _planned(cursor, table, rewritten, view) if when is None and self.settings.plan_files else None
            if planned is not None:
                source: str | None = planned.source
                reads.append({"table": str(name), **planned.as_dict()})
            else:
                source = _without_pushdown(table.sql_source(snapshot), table.schema)
                reads.append({"table": str(name), "read": "format"})
            if source is None:  # no data yet: an empty relation of the table's columns
                cursor.register(f"{view}__empty", table.schema.empty_table())
                source = _quote(f"{view}__empty")
            present = set(table.schema.names)
            if snapshot is not None:  # an old version may predate columns added since: they read as NULL
                try:
                    present = {r[0] for r in cursor.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()}
                except Exception as e:
                    raise StorageError(f"cannot read table {name}: {_first_line(e)}") from e
            # an old version's scan has that version's names: each column is read under its identity where the
            # format keeps one (Iceberg's field ids: renamed, or dropped and added again), else by name
            renamed = table.version_names(snapshot) if snapshot is not None else None
            then = {c: (renamed.get(c) if renamed is not None else c) for c in table.schema.names}
            # floats through `* 1` on the format's scan too: DuckDB skips row groups by min/max statistics that
            # leave NaN out (see lakehouse.sql.planned, whose relation does the same)
            exact = {
                c for c in table.schema.names if planned is None and pa.types.is_floating(table.schema.field(c).type)
            }
            cols = ", ".join(
                f"{_quote(old)}{' * 1' if c in exact else ''} AS {_quote(c)}"
                if old is not None and old in present
                else f"CAST(NULL AS {duck_type(table.schema.field(c).type)}) AS {_quote(c)}"
                for c, old in then.items()
            )
            if cancelled.is_set():  # an interrupt between two statements is lost: check before each
                raise QueryTimeoutError("the time limit was reached while preparing the table views")
            try:
                cursor.execute(f"CREATE TEMP VIEW {_quote(view)} AS SELECT {cols} FROM {source}")
            except Exception as e:
                raise StorageError(f"cannot read table {name}: {_first_line(e)}") from e
        if cancelled.is_set():
            raise QueryTimeoutError("the time limit was reached before the query started")
        reader = cursor.execute(rewritten).to_arrow_reader(min(limit + 1, 100_000))
        batches: list[pa.RecordBatch] = []
        rows = 0
        for batch in reader:
            batches.append(batch)
            rows += batch.num_rows
            if rows > limit:
                break
        return pa.Table.from_batches(batches, schema=reader.schema)


def _planned(cursor: duckdb.DuckDBPyConnection, table: LakehouseTable, sql: str, view: str) -> PlannedRead | None:
    """The current version read as the files lakehouse plans for the query's WHERE clause, where that reads
    exactly what the format's scan reads (:mod:`lakehouse.sql.planned`); None: the format's scan."""
    import duckdb

    try:
        return plan_read(cursor, table, pushable(sql, view, table.schema, zoned_times=True))
    except duckdb.Error:  # a footer DuckDB cannot read: the format's scan says what is wrong with the file
        return None


def _without_pushdown(source: str | None, schema: pa.Schema) -> str | None:
    """Delta's kernel reads a pushed-down filter on a column named ``a.b`` as the nested field ``b`` of ``a``
    (and fails): for such tables, filters stay in DuckDB."""
    if source is None or not source.startswith("delta_scan(") or not source.endswith(")"):
        return source
    if not any("." in name for name in schema.names):
        return source
    return source[:-1] + ", pushdown_filters = 'none')"


def _interrupt_at(cursor: Any, deadline: float, cancelled: threading.Event, done: threading.Event) -> None:
    """At ``deadline`` interrupt the cursor's query, and again every :data:`INTERRUPT_EVERY` s until it is done."""
    if done.wait(max(0.0, deadline - time.monotonic())):
        return
    cancelled.set()
    while True:
        with contextlib.suppress(Exception):  # a cursor between statements, or closing: try again
            cursor.interrupt()
        if done.wait(INTERRUPT_EVERY):
            return


def _dir(location: str) -> str:
    """A location as an allowed-directory prefix of DuckDB (``s3://`` for every S3 scheme, a trailing /)."""
    loc = location.replace("s3a://", "s3://", 1)
    if loc.startswith("file://"):
        loc = loc[len("file://") :]
    return loc.rstrip("/") + "/"


def _quote(ident: str) -> str:
    return '"' + ident.replace('"', '""') + '"'


def _first_line(e: Exception) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__
