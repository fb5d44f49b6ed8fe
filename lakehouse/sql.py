"""SQL over catalog tables through DuckDB and its own delta, iceberg and httpfs extensions.

Extensions are loaded offline from their PyPI wheels (``duckdb-extension-*``); nothing is downloaded.
Catalog tables are referenced as ``namespace.table``. Time travel, per reference::

    SELECT * FROM sales.orders AT (VERSION => 3)
    SELECT * FROM sales.orders AT (TIMESTAMP => '2026-01-02T00:00:00Z')

or for every reference of a table with ``as_of={"sales.orders": 3}`` (the CLI's ``--as-of``). Each reference
becomes a temporary view over ``delta_scan(...)`` / ``iceberg_scan(...)`` of the declared columns.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import glob
import importlib
import os
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import sqlglot
from sqlglot import exp

from lakehouse.errors import (
    ConfigError,
    DependencyMissingError,
    ForbiddenError,
    LakehouseError,
    QueryError,
    QueryTimeoutError,
    StorageError,
)
from lakehouse.tables.base import AsOf, TableName, parse_as_of

if TYPE_CHECKING:
    import duckdb

    from lakehouse.config import QuerySettings
    from lakehouse.governance.masking import MaskPolicy
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


def _connect_duckdb(
    ctx: StorageContext,
    *,
    memory_limit: str | int,
    threads: int | None = None,
    temp_directory: str | None = None,
    extensions: Sequence[str] = EXTENSIONS,
    allowed_directories: Sequence[str] | None = None,
) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with the offline extensions loaded, S3 configured and configuration locked.

    With ``allowed_directories`` (the query engine), DuckDB's external access is switched off except below
    those directories (table locations): a second wall behind :func:`check_sandbox`."""
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
        if allowed_directories is not None:
            if not TABLE_FUNCTIONS:
                rows = con.execute(
                    "SELECT DISTINCT lower(function_name) FROM duckdb_functions() "
                    "WHERE function_type IN ('table', 'table_macro', 'pragma')"
                ).fetchall()
                TABLE_FUNCTIONS.update(r[0] for r in rows)
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
        return _connect_duckdb(
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
        masks: Callable[[LakehouseTable], Mapping[str, MaskPolicy]] | None = None,
        mask_secret: bytes | None = None,
        timeout: float | None = None,
    ) -> QueryResult:
        """Run one SELECT over catalog tables.

        Args:
            sql: the query; ``namespace.table`` names catalog tables.
            resolve: opens a table by name (raises TableNotFoundError).
            as_of: version or time per table name, for references without their own ``AT (...)``.
            max_rows: rows to return at most (default: the ``query.max_rows`` setting).
            masks: masking policies per table for a caller without the PII-read permission: the table's view
                returns those columns masked, so no expression of the query can see the raw values. Such a
                caller cannot read quarantine tables at all (they hold raw input).
            timeout: seconds, counted from this call, after which the query is interrupted
                (:class:`QueryTimeoutError`).
        """
        deadline = time.monotonic() + timeout if timeout else None
        limit = max_rows or self.settings.max_rows
        pinned = {TableName.parse(k): v for k, v in (as_of or {}).items()}
        self.connection()  # the first connection learns DuckDB's table functions, which the sandbox refuses
        rewritten, views = rewrite(sql, pinned)
        tables = {name: resolve(name) for name, _ in views.values()}
        if masks is not None:
            _refuse_quarantine(tables)
        db = self._acquire([t.location for t in tables.values()])
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
        udfs: list[tuple[str, Any]] = []  # (name, function): kept alive until the query is done
        try:
            result = self._run(cursor, rewritten, views, tables, limit, masks, mask_secret, udfs, cancelled)
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
            for udf_name, _ in udfs:
                with contextlib.suppress(Exception):  # best effort: the cursor closes next anyway
                    cursor.remove_function(udf_name)
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
        masks: Callable[[LakehouseTable], Mapping[str, MaskPolicy]] | None,
        mask_secret: bytes | None,
        udfs: list[tuple[str, Any]],
        cancelled: threading.Event,
    ) -> pa.Table:
        """The table views, then the query; up to ``limit + 1`` rows."""
        for view, (name, when) in views.items():
            table = tables[name]
            snapshot = table.snapshot(when) if when is not None else None
            masked = dict(masks(table)) if masks is not None else {}
            source = table.sql_source(snapshot)
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
                _masked_column(cursor, table.schema.field(c), masked[c], mask_secret, udfs)
                if c in masked
                else _quote(c)
                if c in present
                else f"CAST(NULL AS {duck_type(table.schema.field(c).type)}) AS {_quote(c)}"
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


def _refuse_quarantine(tables: Mapping[TableName, LakehouseTable]) -> None:
    """Quarantine tables hold raw input (payloads, and errors that quote values): no masking policy can know
    which part of a payload is PII, so a caller without the PII-read permission cannot read them at all."""
    from lakehouse.ingest.pipeline import is_quarantine

    for name in tables:
        if is_quarantine(name):
            raise ForbiddenError(
                f"{name} is a quarantine table: it holds raw input, readable only with the PII-read permission",
                hint="ask an admin, or query the target table",
            )


def _masked_column(
    cursor: Any, field: pa.Field, policy: MaskPolicy, secret: bytes | None, udfs: list[tuple[str, Any]]
) -> str:
    """A view column that masks ``field`` with ``policy`` through an Arrow UDF (the same code as in-place
    masking, so a masked read equals a masked file)."""
    import duckdb

    from lakehouse.governance.masking import mask_array

    t = field.type
    if policy.kind == "null":
        return f"CAST(NULL AS {duck_type(t)}) AS {_quote(field.name)}"
    import uuid

    name = f"lh_mask_{uuid.uuid4().hex[:16]}"  # unique: functions are shared by the connection's cursors
    duck = duckdb.sqltype(duck_type(t))

    def fn(values: pa.Array) -> pa.Array:
        out = mask_array(values, policy, secret)
        return out.cast(values.type) if out.type != values.type else out

    cursor.create_function(name, fn, [duck], duck, type="arrow", null_handling="special")
    udfs.append((name, fn))
    return f"{name}({_quote(field.name)}) AS {_quote(field.name)}"


_DUCK_TYPES = {
    "string": "VARCHAR",
    "large_string": "VARCHAR",
    "int64": "BIGINT",
    "int32": "INTEGER",
    "double": "DOUBLE",
    "float": "FLOAT",
    "bool": "BOOLEAN",
    "date32[day]": "DATE",
}


def duck_type(t: pa.DataType) -> str:
    """The DuckDB type name of an Arrow type (VARCHAR for what has no closer one)."""
    if pa.types.is_timestamp(t):
        return "TIMESTAMP WITH TIME ZONE" if t.tz else "TIMESTAMP"
    if pa.types.is_decimal(t):
        return f"DECIMAL({t.precision},{t.scale})"
    return _DUCK_TYPES.get(str(t), "VARCHAR")


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


def _literal_value(node: exp.Expression | None) -> AsOf:
    if isinstance(node, exp.Literal):
        return parse_as_of(node.this if node.is_string else str(node.this))
    if isinstance(node, exp.Cast) and isinstance(node.this, exp.Literal):
        return parse_as_of(node.this.this)
    raise QueryError(f"time travel needs a literal version or timestamp, got {node.sql() if node else None!r}")


def _time_travel(table: exp.Table) -> AsOf | None:
    """The version/time of ``AT (VERSION => n)`` / ``FOR TIMESTAMP AS OF t`` on a reference, if any."""
    when = table.args.get("when")
    version = table.args.get("version")
    if isinstance(when, exp.HistoricalData):
        kind, node = str(when.args.get("kind", "")).upper(), when.expression
        table.set("when", None)
    elif isinstance(version, exp.Version):
        kind, node = str(version.this).upper(), version.expression
        table.set("version", None)
    else:
        return None
    value = _literal_value(node)
    if kind == "VERSION" and isinstance(value, int):
        return value
    if kind == "TIMESTAMP" and isinstance(value, dt.datetime):
        return value
    raise QueryError(
        f"unsupported time travel {kind} => {node.sql() if node else None}: "
        "use AT (VERSION => n) or AT (TIMESTAMP => 'ISO time')"
    )


_DENIED_FUNCTIONS = {
    "getenv", "current_setting", "getvariable", "glob", "query", "query_table", "which_secret",
    "sql_auto_complete", "load", "install", "checkpoint", "force_checkpoint", "read_blob", "read_text",
    "sniff_csv", "summary", "test_all_types", "test_vector_types", "http_get", "http_post", "http_head",
    "write_blob", "write_log", "json_execute_serialized_sql", "copy_dir", "histogram",
}  # fmt: skip
_DENIED_PREFIXES = (
    "read_", "write_", "duckdb_", "pragma_", "parquet_", "iceberg_", "delta_", "sqlite_", "postgres_",
    "mysql_", "enable_", "disable_", "set_", "truncate_", "json_execute",
)  # fmt: skip
_DENIED_NODES = (exp.Summarize, exp.Describe, exp.Show, exp.Pragma, exp.Command, exp.Copy, exp.Set)
_HARMLESS_TABLE_FUNCTIONS = {"unnest"}
_UNBOUNDED_FUNCTIONS = {
    "range", "generate_series", "repeat", "list_resize", "array_resize", "sleep_ms", "pg_sleep", "bitstring",
    "space", "generate_date_array", "generate_timestamp_array",
}  # fmt: skip
"""Functions that build one value of any size in a single call (a list of n elements, a string repeated n
times), outside DuckDB's buffer manager, so neither ``memory_limit`` nor an interrupt stops them; and sleeps.
Measured: ``unnest(generate_series(1, 1e8))`` took 37 s and 3 GB against a 1 GB limit."""
MAX_GENERATED = 10_000
"""The largest output length of ``lpad``/``rpad`` and the largest width or precision in a ``printf``/``format``
string a query may ask for (these also build their result outside the buffer manager)."""
_PADS = {"lpad", "rpad"}
_FORMATS = {"printf", "format"}
TABLE_FUNCTIONS: set[str] = set()
"""Names of DuckDB's table functions and table macros (filled from ``duckdb_functions()`` when the engine
starts); none may be called from a query, in FROM or anywhere else."""


def _function_name(node: exp.Func) -> str:
    """The name DuckDB runs a function node under (sqlglot's own class names differ: ``lpad`` is ``Pad``)."""
    if isinstance(node, exp.Anonymous):
        return str(node.name).lower()
    if isinstance(node, exp.Pad):
        return "lpad" if node.args.get("is_left") else "rpad"
    if isinstance(node, exp.GenerateSeries):
        return "generate_series"
    return node.sql_name().lower()


def _call_args(node: exp.Func) -> list[exp.Expression]:
    """A call's arguments in DuckDB's order, also for the method form ``x.lpad(5, '0')``."""
    if isinstance(node, exp.Pad):
        return [a for a in (node.this, node.expression, node.args.get("fill_pattern")) if a is not None]
    args = [a for a in (node.this if isinstance(node.this, exp.Expression) else None, *node.expressions) if a]
    parent = node.parent
    if isinstance(parent, exp.Dot) and parent.expression is node:
        args.insert(0, parent.this)
    return args


def _check_generator(name: str, node: exp.Func) -> None:
    """Refuse functions that build unbounded values; bound the sized ones by literals."""
    if name in _UNBOUNDED_FUNCTIONS:
        raise QueryError(
            f"function {name} is not allowed: it builds a value of any size outside the memory limit",
            hint="read rows from catalog tables instead",
        )
    args = _call_args(node)
    if name in _PADS:
        size = args[1] if len(args) > 1 else None
        if not (isinstance(size, exp.Literal) and not size.is_string and str(size.this).isdigit()) or (
            int(size.this) > MAX_GENERATED
        ):
            raise QueryError(f"{name} needs a literal length of at most {MAX_GENERATED}")
    elif name in _FORMATS:
        fmt = args[0] if args else None
        if not (isinstance(fmt, exp.Literal) and fmt.is_string):
            raise QueryError(f"{name} needs a literal format string")
        for width in _format_widths(name, str(fmt.this)):
            if not width.isdigit() or int(width) > MAX_GENERATED:
                raise QueryError(
                    f"{name}: widths and precisions must be literal numbers of at most {MAX_GENERATED}, not {width!r}"
                )


_PRINTF_SPEC = re.compile(r"%%|%(?:\d+\$)?[-+ #0']*(\*(?:\d+\$)?|\d+)?(?:\.(\*(?:\d+\$)?|\d*))?")


def _format_widths(name: str, text: str) -> list[str]:
    """The widths and precisions of a ``printf`` (C style) or ``format`` (``{:>8.2f}`` style) string; a dynamic
    one is returned as ``*`` or ``{``.

    >>> _format_widths("printf", "%-8d|%.*f|%%|%5$s")
    ['8', '*']
    >>> _format_widths("format", "{} {{x}} {:>12.3f} {:{}}")
    ['12', '3', '{']
    """
    if name == "printf":
        return [w for m in _PRINTF_SPEC.finditer(text) for w in m.groups() if w]
    widths: list[str] = []
    field: list[str] | None = None
    i = 0
    while i < len(text):
        c = text[i]
        if field is None:
            if c in "{}" and text[i + 1 : i + 2] == c:  # {{ and }} are literal braces
                i += 2
                continue
            if c == "{":
                field = []
        elif c == "{":
            widths.append("{")  # a nested replacement field: a width taken from an argument
        elif c == "}":
            spec = "".join(field).partition(":")[2]
            widths += re.findall(r"\d+", spec)
            field = None
        else:
            field.append(c)
        i += 1
    return widths


def check_sandbox(tree: exp.Query | exp.Expression) -> None:
    """Allow only reads of catalog tables.

    * Every FROM/JOIN source is ``namespace.table``, a CTE in scope, a subquery, ``VALUES`` or ``UNNEST``; a
      ``LATERAL`` only over a subquery. A bare name must be a CTE visible where it is used, the way DuckDB binds
      it (see :func:`visible_ctes`), and no name may look like a path or URL.
    * No table function or table macro of DuckDB is called anywhere, nor a function that reads or writes files
      or URLs, or exposes settings, variables or the environment; nor one that builds a value of unbounded size
      outside the memory limit (``range``, ``repeat``, ``list_resize`` ..., and ``lpad``/``printf`` beyond
      :data:`MAX_GENERATED`).
    * No SUMMARIZE, DESCRIBE, SHOW, PRAGMA, COPY, SET or other command inside the query.

    Statements other than queries (ATTACH, COPY, INSTALL, LOAD, PRAGMA, SET ...) never get here: the caller
    accepts one query only. The engine also runs with DuckDB's external access off except for the warehouse.

    >>> check_sandbox(sqlglot.parse_one("SELECT getenv('HOME')", read="duckdb"))
    Traceback (most recent call last):
    ...
    lakehouse.errors.QueryError: function getenv is not allowed: queries read catalog tables only
    """
    for node in tree.walk():
        _check_node(node)
        if isinstance(node, exp.Lateral) and not isinstance(node.this, exp.Subquery):
            raise QueryError("LATERAL is allowed over a subquery only")
        if isinstance(node, exp.Table):
            _check_table(node)


def _check_node(node: exp.Expr) -> None:
    """The function and command rules of :func:`check_sandbox` for one node."""
    if isinstance(node, _DENIED_NODES):
        raise QueryError(f"{node.key.upper()} is not allowed: queries read catalog tables only")
    if isinstance(node, exp.Func):
        name = _function_name(node)
        denied = (
            name in _DENIED_FUNCTIONS
            or (name in TABLE_FUNCTIONS and name not in _HARMLESS_TABLE_FUNCTIONS)
            or name.startswith(_DENIED_PREFIXES)
            or name.endswith("_scan")
            or isinstance(node, exp.ReadCSV)
        )
        if denied:
            raise QueryError(f"function {name} is not allowed: queries read catalog tables only")
        _check_generator(name, node)


def check_generated(sql: str, dialect: str) -> None:
    """The function and command rules once more, on the SQL that is actually sent: sqlglot renames some
    functions when it writes a dialect (``space(n)`` becomes ``REPEAT(' ', n)``, ``generate_date_array``
    becomes ``GENERATE_SERIES``), so a name checked on the way in is not always the one that runs."""
    try:
        sent = sqlglot.parse_one(sql, read=dialect)
    except sqlglot.errors.SqlglotError as e:  # our own output: a bug, but never run what cannot be checked
        raise QueryError(f"cannot check the rewritten SQL: {e}") from e
    for node in sent.walk():
        _check_node(node)


def _check_table(table: exp.Table) -> None:
    target = table.this
    text = table.sql(dialect="duckdb")
    if not isinstance(target, exp.Identifier):
        raise QueryError(f"{text} is not allowed in FROM: name catalog tables as namespace.table")
    if table.catalog:
        raise QueryError(f"{text}: name catalog tables as namespace.table")
    if any(ch in part for part in (target.name, table.db or "") for ch in "/\\:.*?'"):
        raise QueryError(f"{text} looks like a path or URL; queries read catalog tables only")
    if table.db:
        return
    if target.name.lower() not in visible_ctes(table):
        raise QueryError(
            f"unknown table {target.name!r}: name catalog tables as namespace.table, or a CTE declared before it",
            hint="see `lakehouse table list`",
        )


def _cte_names(ctes: Sequence[exp.Expression]) -> set[str]:
    return {c.alias_or_name.lower() for c in ctes}


def visible_ctes(table: exp.Table) -> set[str]:
    """The CTE names a bare table reference binds to, as DuckDB (and PostgreSQL) bind them.

    In the body of a query with a WITH: all its CTEs. In the body of the *n*-th CTE: the CTEs declared before
    it, never itself (DuckDB binds a CTE's own name inside its body to the catalog, e.g. its built-in
    ``pg_settings`` view), except in the recursive term of a ``WITH RECURSIVE`` CTE whose body is a UNION (the
    right side: DuckDB binds the anchor's references to the catalog too). Enclosing queries add theirs by the
    same rules; a CTE of an inner query is not visible outside it.

    >>> t = sqlglot.parse_one("WITH a AS (SELECT 1), b AS (SELECT * FROM a) SELECT * FROM b", read="duckdb")
    >>> [sorted(visible_ctes(x)) for x in t.find_all(exp.Table)]
    [['a', 'b'], ['a']]
    >>> t = sqlglot.parse_one("WITH pg_settings AS (SELECT * FROM pg_settings) SELECT 1", read="duckdb")
    >>> visible_ctes(next(t.find_all(exp.Table)))
    set()
    """
    chain: list[Any] = [table]
    while chain[-1].parent is not None:
        chain.append(chain[-1].parent)
    names: set[str] = set()
    for i, node in enumerate(chain[1:], start=1):
        came_from = chain[i - 1]
        if isinstance(node, exp.With):  # the reference is in the body of one of these CTEs
            ctes = list(node.expressions)
            index = next(k for k, c in enumerate(ctes) if c is came_from)
            names |= _cte_names(ctes[:index])
            body = came_from.this
            # DuckDB treats UNION [ALL] as recursive, not UNION BY NAME (its self-reference binds to the catalog)
            recursive = isinstance(body, exp.Union) and not body.args.get("by_name")
            recursive_term = body.expression if recursive else None
            if node.args.get("recursive") and any(n is recursive_term for n in chain[: i - 1]):
                names.add(came_from.alias_or_name.lower())
        elif isinstance(node, exp.Query):
            with_ = node.args.get("with_") or node.args.get("with")
            if isinstance(with_, exp.With) and with_ is not came_from:  # the reference is in the query's body
                names |= _cte_names(with_.expressions)
    return names


_COMPARISONS = (exp.EQ, exp.GT, exp.GTE, exp.LT, exp.LTE, exp.In, exp.Between, exp.Like, exp.NEQ)


def access_of(sql: str) -> list[dict[str, Any]]:
    """For each catalog table a query reads: the columns its predicates compare with literals (the candidates
    for Z-order), and per column compared with a time literal the earliest time asked for (what to keep hot).

    >>> access_of("SELECT * FROM s.t WHERE a = 1 AND ts >= '2026-01-02' AND b IN (1, 2)")
    [{'table': 's.t', 'predicate_columns': ['a', 'b', 'ts'], 'time_from': {'ts': '2026-01-02T00:00:00+00:00'}}]
    """
    try:
        tree = sqlglot.parse_one(sql, read="duckdb")
    except (sqlglot.errors.SqlglotError, RecursionError):
        return []
    aliases: dict[str, str] = {}
    for t in tree.find_all(exp.Table):
        if t.db:
            name = f"{t.db}.{t.name}".lower()
            aliases[(t.alias or t.name).lower()] = name
    tables = set(aliases.values())
    found: dict[str, dict[str, Any]] = {n: {"table": n, "predicate_columns": set(), "time_from": {}} for n in tables}
    for cmp in tree.find_all(*_COMPARISONS):
        columns = [c for c in cmp.find_all(exp.Column) if c.find_ancestor(*_COMPARISONS) is cmp]
        literals = list(cmp.find_all(exp.Literal))
        if len(columns) != 1 or not literals:
            continue
        col = columns[0]
        owner = aliases.get(col.table.lower()) if col.table else (next(iter(tables)) if len(tables) == 1 else None)
        if owner is None:
            continue
        name = col.name
        found[owner]["predicate_columns"].add(name)
        if isinstance(cmp, exp.GT | exp.GTE | exp.EQ | exp.Between):
            low = cmp.args.get("low") if isinstance(cmp, exp.Between) else cmp.expression
            if isinstance(low, exp.Literal) and low.is_string:
                try:
                    when = parse_as_of(low.this)
                except LakehouseError:
                    continue
                if isinstance(when, dt.datetime):
                    prev = found[owner]["time_from"].get(name)
                    found[owner]["time_from"][name] = min(prev, when.isoformat()) if prev else when.isoformat()
    return [
        {"table": e["table"], "predicate_columns": sorted(e["predicate_columns"]), "time_from": e["time_from"]}
        for e in sorted(found.values(), key=lambda e: e["table"])
    ]


MAX_SQL_LENGTH = 100_000
"""Characters a query may have (the REST API's limit too)."""


def rewrite(
    sql: str, pinned: Mapping[TableName, AsOf], *, dialect: str = "duckdb"
) -> tuple[str, dict[str, tuple[TableName, AsOf | None]]]:
    """Replace catalog table references by view names; return the SQL (in ``dialect``: duckdb, or spark for
    the Spark engine) and the views to create. SQL longer than :data:`MAX_SQL_LENGTH`, or nested deeper than
    the parser can follow, is a :class:`QueryError`.

    >>> sql, views = rewrite("SELECT count(*) FROM s.t AT (VERSION => 2) JOIN s.t u USING (id)", {})
    >>> sql
    'SELECT COUNT(*) FROM "__lh0_s__t__v2" AS t JOIN "__lh1_s__t__current" AS u USING (id)'
    """
    if len(sql) > MAX_SQL_LENGTH:
        raise QueryError(f"the SQL is {len(sql):,} characters long; at most {MAX_SQL_LENGTH:,} are accepted")
    try:  # sqlglot parses and generates recursively: nesting deeper than Python's stack is the query's fault
        return _rewrite(sql, pinned, dialect=dialect)
    except RecursionError as e:
        raise QueryError(
            "the query nests expressions or subqueries too deeply", hint="flatten it, e.g. with CTEs"
        ) from e


def _rewrite(
    sql: str, pinned: Mapping[TableName, AsOf], *, dialect: str
) -> tuple[str, dict[str, tuple[TableName, AsOf | None]]]:
    try:
        statements = sqlglot.parse(sql, read="duckdb")
    except sqlglot.errors.ParseError as e:
        detail = e.errors[0]["description"] if e.errors else str(e)
        raise QueryError(f"cannot parse SQL: {detail}") from e
    except sqlglot.errors.SqlglotError as e:  # tokenizer errors (an unterminated string, stray bytes)
        raise QueryError(f"cannot parse SQL: {e}") from e
    statements = [s for s in statements if s is not None]
    if len(statements) != 1:
        raise QueryError(f"give exactly one SQL statement, not {len(statements)}")
    tree = statements[0]
    assert tree is not None
    if not isinstance(tree, exp.Query):
        raise QueryError(f"only queries (SELECT ...) can run here, not {tree.key.upper()}")
    check_sandbox(tree)
    views: dict[str, tuple[TableName, AsOf | None]] = {}
    numbers: dict[tuple[TableName, AsOf | None], str] = {}
    renamed: dict[tuple[str, str], str] = {}
    for node in list(tree.find_all(exp.Table)):
        if not node.db:
            continue  # a CTE of the query (check_sandbox refused anything else)
        name = TableName.parse(f"{node.db}.{node.name}")
        when = _time_travel(node)
        if when is None:
            when = pinned.get(name)
        suffix = (
            "current"
            if when is None
            else (f"v{when}" if isinstance(when, int) else "t" + when.strftime("%Y%m%dT%H%M%S%f"))
        )
        # numbered per query, so that a__b.c and a.b__c never share a view
        view = numbers.setdefault((name, when), f"__lh{len(numbers)}_{name.namespace}__{name.table}__{suffix}")
        views[view] = (name, when)
        # keep the node (and its sample, pivot, alias columns); only its name changes
        if not node.alias:
            node.set("alias", exp.TableAlias(this=exp.to_identifier(name.table)))
        renamed.setdefault((name.namespace, name.table), node.alias)
        node.set("this", exp.to_identifier(view, quoted=True))
        node.set("db", None)
        node.set("catalog", None)
    for col in tree.find_all(exp.Column):  # ns.table.column -> alias.column
        if col.args.get("db") and (col.db.lower(), col.table.lower()) in renamed:
            col.set("table", exp.to_identifier(renamed[(col.db.lower(), col.table.lower())]))
            col.set("db", None)
    out = tree.sql(dialect=dialect)
    check_generated(out, dialect)
    return out, views
