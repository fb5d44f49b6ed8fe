"""SQL over catalog tables through DuckDB in this process, with its own delta, iceberg and httpfs extensions.

Extensions are loaded offline from their PyPI wheels (``duckdb-extension-*``); nothing is downloaded. Each
catalog table reference (see :mod:`lakehouse.sql.rewrite`) becomes a temporary view over ``delta_scan(...)`` /
``iceberg_scan(...)`` of the declared columns. This engine is for callers trusted with the raw data and the
machine (the CLI's own user) and for jobs; the API and masked reads run in :mod:`lakehouse.sql.worker`.
"""

from __future__ import annotations

import contextlib
import glob
import importlib
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from lakehouse.errors import (
    ConfigError,
    DependencyMissingError,
    LakehouseError,
    QueryError,
    QueryTimeoutError,
    StorageError,
)
from lakehouse.sql import allowlist
from lakehouse.sql.rewrite import access_of, rewrite
from lakehouse.tables.base import AsOf, TableName

if TYPE_CHECKING:
    import duckdb

    from lakehouse.config import QuerySettings
    from lakehouse.tables.base import LakehouseTable, StorageContext

# avro must be loaded before iceberg
EXTENSIONS = ("httpfs", "avro", "iceberg", "delta")


def extension_path(name: str) -> str:
    """Path of the ``.duckdb_extension`` file shipped by the ``duckdb-extension-<name>`` wheel."""
    try:
        module = importlib.import_module(f"duckdb_extension_{name}")
    except ImportError as e:
        raise DependencyMissingError(
            f"DuckDB's {name} extension is not installed", hint="pip install 'lakehouse[sql]'"
        ) from e
    base = os.path.dirname(module.__file__ or "")
    found = sorted(glob.glob(os.path.join(base, "**", f"{name}.duckdb_extension"), recursive=True))
    if not found:
        raise DependencyMissingError(f"duckdb-extension-{name} ships no {name}.duckdb_extension under {base}")
    return found[-1]


def connect_duckdb(
    ctx: StorageContext,
    *,
    memory_limit: str | int,
    threads: int | None = None,
    temp_directory: str | None = None,
    extensions: Sequence[str] = EXTENSIONS,
    allowed_directories: Sequence[str] | None = None,
    settings: Mapping[str, bool | int | str] | None = None,
) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with the offline extensions loaded, S3 configured and configuration locked.

    With ``allowed_directories`` (the query engine), DuckDB's external access is switched off except below
    those directories (table locations): a second wall behind the allow-list (:mod:`lakehouse.sql.allowlist`).
    ``settings`` are SET before the lock (Parquet's own, such as ``parquet_metadata_cache``, load the built-in
    parquet extension first)."""
    try:
        import duckdb
    except ImportError as e:
        raise DependencyMissingError("SQL needs duckdb", hint="pip install 'lakehouse[sql]'") from e
    config: dict[str, Any] = {
        "autoinstall_known_extensions": False,
        "autoload_known_extensions": False,
        "memory_limit": f"{memory_limit}B" if isinstance(memory_limit, int) else memory_limit,
    }
    if threads:
        config["threads"] = threads
    if temp_directory:  # a rewrite: spill instead of failing, and order only where a query asks for it
        config["temp_directory"] = temp_directory
        config["preserve_insertion_order"] = False
    try:
        con = duckdb.connect(config=config)
        for name in extensions:
            path = extension_path(name)
            con.execute(f"LOAD '{path.replace(chr(39), chr(39) * 2)}'")
        if ctx.credentials is not None:
            con.execute(ctx.credentials.duckdb_secret_sql())
        if settings:
            if any(k.startswith("parquet_") for k in settings):
                con.execute("LOAD parquet")  # built in; autoloading is off
            for key, value in settings.items():
                if isinstance(value, bool):
                    literal = "true" if value else "false"
                elif isinstance(value, int):
                    literal = str(value)
                else:
                    literal = "'" + value.replace("'", "''") + "'"
                con.execute(f"SET {key} = {literal}")
        if allowed_directories is not None:
            dirs = ", ".join("'" + d.replace("'", "''") + "'" for d in allowed_directories)
            con.execute(f"SET allowed_directories = [{dirs}]")
            con.execute("SET enable_external_access = false")
        # nothing a query sends can change settings, load extensions or reach other files' config
        con.execute("SET lock_configuration = true")
    except duckdb.Error as e:
        raise ConfigError(f"cannot start DuckDB with these settings: {_first_line(e)}") from e
    return con


@dataclass(frozen=True)
class QueryResult:
    table: pa.Table
    truncated: bool
    sql: str
    access: tuple[dict[str, Any], ...] = ()
    """Per catalog table read: predicate columns and earliest times asked (for the access log)."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "columns": [{"name": f.name, "type": str(f.type)} for f in self.table.schema],
            "rows": self.table.to_pylist(),
            "row_count": self.table.num_rows,
            "truncated": self.truncated,
        }


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

    def _connect(self, allowed: frozenset[str]) -> duckdb.DuckDBPyConnection:
        return connect_duckdb(
            self.ctx,
            memory_limit=self.settings.memory_limit,
            threads=self.settings.threads,
            allowed_directories=sorted(allowed),
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
            resolve: opens a table by name (raises TableNotFoundError).
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
        try:
            result = self._run(cursor, rewritten, views, tables, limit, cancelled)
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
        return QueryResult(result.slice(0, limit) if truncated else result, truncated, rewritten, tuple(access_of(sql)))

    def _run(
        self,
        cursor: duckdb.DuckDBPyConnection,
        rewritten: str,
        views: Mapping[str, tuple[TableName, AsOf | None]],
        tables: Mapping[TableName, LakehouseTable],
        limit: int,
        cancelled: threading.Event,
    ) -> pa.Table:
        """The table views, then the query; up to ``limit + 1`` rows."""
        for view, (name, when) in views.items():
            table = tables[name]
            snapshot = table.snapshot(when) if when is not None else None
            source = _without_pushdown(table.sql_source(snapshot), table.schema)
            if source is None:  # no data yet: an empty relation of the table's columns
                cursor.register(f"{view}__empty", table.schema.empty_table())
                source = _quote(f"{view}__empty")
            present = set(table.schema.names)
            if snapshot is not None:  # an old version may predate columns added since: they read as NULL
                try:
                    present = {r[0] for r in cursor.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()}
                except Exception as e:
                    raise StorageError(f"cannot read table {name}: {_first_line(e)}") from e
            cols = ", ".join(
                _quote(c) if c in present else f"CAST(NULL AS {duck_type(table.schema.field(c).type)}) AS {_quote(c)}"
                for c in table.schema.names
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


_DUCK_INTS = {
    (8, True): "TINYINT",
    (16, True): "SMALLINT",
    (32, True): "INTEGER",
    (64, True): "BIGINT",
    (8, False): "UTINYINT",
    (16, False): "USMALLINT",
    (32, False): "UINTEGER",
    (64, False): "UBIGINT",
}
_DUCK_TIMESTAMPS = {"s": "TIMESTAMP_S", "ms": "TIMESTAMP_MS", "us": "TIMESTAMP", "ns": "TIMESTAMP_NS"}


def duck_type(t: pa.DataType) -> str:
    """The DuckDB type of an Arrow type, exact wherever DuckDB has one.

    ``CAST(NULL AS duck_type(t))`` reads back into Arrow as ``t`` itself, except for these canonical
    equivalents (DuckDB has no closer type): float16 -> FLOAT (float32), large/view strings -> VARCHAR (string),
    large/view/fixed-size binaries -> BLOB (binary), date64 -> DATE (date32), time32 -> TIME (time64[us]),
    timestamps with a zone -> TIMESTAMPTZ (µs, UTC: DuckDB keeps instants, not zones), duration -> INTERVAL,
    large lists -> ``T[]`` (list), decimal32/64/256 of precision <= 38 -> DECIMAL(p,s) (decimal128), and
    decimals of precision > 38 -> VARCHAR (DuckDB's widest decimal has 38 digits; see :func:`duck_inexact`).
    Struct field names are quoted."""
    if pa.types.is_boolean(t):
        return "BOOLEAN"
    if pa.types.is_integer(t):
        return _DUCK_INTS[(t.bit_width, pa.types.is_signed_integer(t))]
    if pa.types.is_float16(t) or pa.types.is_float32(t):
        return "FLOAT"
    if pa.types.is_float64(t):
        return "DOUBLE"
    if pa.types.is_decimal(t):
        return f"DECIMAL({t.precision},{t.scale})" if t.precision <= 38 else "VARCHAR"
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return "VARCHAR"
    if (
        pa.types.is_binary(t)
        or pa.types.is_large_binary(t)
        or pa.types.is_binary_view(t)
        or pa.types.is_fixed_size_binary(t)
    ):
        return "BLOB"
    if pa.types.is_date(t):
        return "DATE"
    if pa.types.is_time(t):
        return "TIME_NS" if t.unit == "ns" else "TIME"
    if pa.types.is_timestamp(t):
        return "TIMESTAMPTZ" if t.tz else _DUCK_TIMESTAMPS[t.unit]
    if pa.types.is_duration(t):
        return "INTERVAL"
    if pa.types.is_struct(t):
        fields = [t.field(i) for i in range(t.num_fields)]
        return "STRUCT(" + ", ".join(f"{_quote(f.name)} {duck_type(f.type)}" for f in fields) + ")"
    if pa.types.is_map(t):
        return f"MAP({duck_type(t.key_type)}, {duck_type(t.item_type)})"
    if pa.types.is_fixed_size_list(t):
        return f"{duck_type(t.value_type)}[{t.list_size}]"
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return f"{duck_type(t.value_type)}[]"
    return "VARCHAR"


def duck_inexact(t: pa.DataType) -> str | None:
    """Why DuckDB cannot carry values of Arrow type ``t`` exactly through a Parquet read and write (a rewrite
    would change them), or None when it can. Recurses into nested types."""
    if pa.types.is_decimal(t) and t.precision > 38:
        return f"decimal({t.precision},{t.scale}) has more digits than DuckDB's widest decimal (38)"
    if pa.types.is_timestamp(t) and t.tz and t.unit == "ns":
        return "DuckDB reads zoned nanosecond timestamps at microsecond precision"
    if pa.types.is_time(t) and t.unit == "ns":
        return "DuckDB reads nanosecond times from Parquet at microsecond precision"
    if pa.types.is_duration(t):
        return "DuckDB reads durations from Parquet as plain integers"
    if pa.types.is_float16(t):
        return "DuckDB writes half floats back as 32-bit floats"
    if pa.types.is_struct(t):
        for i in range(t.num_fields):
            why = duck_inexact(t.field(i).type)
            if why:
                return why
    if pa.types.is_map(t):
        return duck_inexact(t.key_type) or duck_inexact(t.item_type)
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        return duck_inexact(t.value_type)
    return None


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
