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
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import sqlglot
from sqlglot import exp

from lakehouse.errors import (
    ConfigError,
    DependencyMissingError,
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


class SqlEngine:
    """A DuckDB database with the extensions loaded and S3 configured; one cursor per query."""

    def __init__(self, ctx: StorageContext, settings: QuerySettings) -> None:
        self.ctx = ctx
        self.settings = settings
        self._con: duckdb.DuckDBPyConnection | None = None
        self._lock = threading.Lock()
        self._allowed: set[str] = {_dir(ctx.warehouse)}

    def connection(self, locations: Sequence[str] = ()) -> duckdb.DuckDBPyConnection:
        """The engine's connection; reopened when a table lives outside the directories it may read."""
        with self._lock:
            wanted = {_dir(loc) for loc in locations}
            if any(not any(w.startswith(a) for a in self._allowed) for w in wanted):
                self._allowed |= wanted
                if self._con is not None:
                    self._con.close()
                    self._con = None
            if self._con is None:
                self._con = self._connect()
            return self._con

    def _connect(self) -> duckdb.DuckDBPyConnection:
        return _connect_duckdb(
            self.ctx,
            memory_limit=self.settings.memory_limit,
            threads=self.settings.threads,
            allowed_directories=sorted(self._allowed),
        )

    def close(self) -> None:
        with self._lock:
            if self._con is not None:
                self._con.close()
                self._con = None

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
                returns those columns masked, so no expression of the query can see the raw values.
            timeout: seconds after which the query is interrupted (:class:`QueryTimeoutError`).
        """
        limit = max_rows or self.settings.max_rows
        pinned = {TableName.parse(k): v for k, v in (as_of or {}).items()}
        self.connection()  # the first connection learns DuckDB's table functions, which the sandbox refuses
        rewritten, views = rewrite(sql, pinned)
        tables = {name: resolve(name) for name, _ in views.values()}
        cursor = self.connection([t.location for t in tables.values()]).cursor()
        udfs: list[tuple[str, Any]] = []  # (name, function): kept alive until the query is done
        try:
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
                try:
                    cursor.execute(f"CREATE TEMP VIEW {_quote(view)} AS SELECT {cols} FROM {source}")
                except Exception as e:
                    raise StorageError(f"cannot read table {name}: {_first_line(e)}") from e
            timer = threading.Timer(timeout, cursor.interrupt) if timeout else None
            if timer is not None:
                timer.daemon = True
                timer.start()
            try:
                reader = cursor.execute(rewritten).to_arrow_reader(min(limit + 1, 100_000))
                batches: list[pa.RecordBatch] = []
                rows = 0
                for batch in reader:
                    batches.append(batch)
                    rows += batch.num_rows
                    if rows > limit:
                        break
                result = pa.Table.from_batches(batches, schema=reader.schema)
            except LakehouseError:
                raise
            except Exception as e:  # duckdb raises many error classes; all are the query's fault here
                if timer is not None and not timer.is_alive() and "interrupt" in str(e).lower():
                    raise QueryTimeoutError(f"query cancelled after its time limit of {timeout:g} s") from e
                raise QueryError(f"query failed: {_first_line(e)}") from e
            finally:
                if timer is not None:
                    timer.cancel()
            truncated = result.num_rows > limit
            return QueryResult(
                result.slice(0, limit) if truncated else result, truncated, rewritten, tuple(access_of(sql))
            )
        finally:
            for udf_name, _ in udfs:
                with contextlib.suppress(Exception):  # best effort: the cursor closes next anyway
                    cursor.remove_function(udf_name)
            cursor.close()


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
_HARMLESS_TABLE_FUNCTIONS = {"unnest", "range", "generate_series"}
TABLE_FUNCTIONS: set[str] = set()
"""Names of DuckDB's table functions and table macros (filled from ``duckdb_functions()`` when the engine
starts); none may be called from a query, in FROM or anywhere else."""


def check_sandbox(tree: exp.Query | exp.Expression) -> None:
    """Allow only reads of catalog tables.

    * Every FROM/JOIN source is ``namespace.table``, a CTE in scope, a subquery, ``VALUES`` or ``UNNEST``; a
      ``LATERAL`` only over a subquery. A bare name must be a CTE of an enclosing query, and no name may look
      like a path or URL.
    * No table function or table macro of DuckDB is called anywhere, nor a function that reads or writes files
      or URLs, or exposes settings, variables or the environment.
    * No SUMMARIZE, DESCRIBE, SHOW, PRAGMA, COPY, SET or other command inside the query.

    Statements other than queries (ATTACH, COPY, INSTALL, LOAD, PRAGMA, SET ...) never get here: the caller
    accepts one query only. The engine also runs with DuckDB's external access off except for the warehouse.

    >>> check_sandbox(sqlglot.parse_one("SELECT getenv('HOME')", read="duckdb"))
    Traceback (most recent call last):
    ...
    lakehouse.errors.QueryError: function getenv is not allowed: queries read catalog tables only
    """
    for node in tree.walk():
        if isinstance(node, _DENIED_NODES):
            raise QueryError(f"{node.key.upper()} is not allowed: queries read catalog tables only")
        if isinstance(node, exp.Func):
            name = (node.name if isinstance(node, exp.Anonymous) else node.sql_name()).lower()
            denied = (
                name in _DENIED_FUNCTIONS
                or (name in TABLE_FUNCTIONS and name not in _HARMLESS_TABLE_FUNCTIONS)
                or name.startswith(_DENIED_PREFIXES)
                or name.endswith("_scan")
                or isinstance(node, exp.ReadCSV)
            )
            if denied:
                raise QueryError(f"function {name} is not allowed: queries read catalog tables only")
        if isinstance(node, exp.Lateral) and not isinstance(node.this, exp.Subquery):
            raise QueryError("LATERAL is allowed over a subquery only")
        if isinstance(node, exp.Table):
            _check_table(node)


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
    name = target.name.lower()
    # a bare name must be a CTE of a query that encloses this reference (CTE scopes do not leak out)
    node: Any = table.parent
    while node is not None:
        with_ = (node.args.get("with_") or node.args.get("with")) if isinstance(node, exp.Query) else None
        if isinstance(with_, exp.With) and any(cte.alias_or_name.lower() == name for cte in with_.expressions):
            return
        node = node.parent
    raise QueryError(
        f"unknown table {target.name!r}: name catalog tables as namespace.table", hint="see `lakehouse table list`"
    )


_COMPARISONS = (exp.EQ, exp.GT, exp.GTE, exp.LT, exp.LTE, exp.In, exp.Between, exp.Like, exp.NEQ)


def access_of(sql: str) -> list[dict[str, Any]]:
    """For each catalog table a query reads: the columns its predicates compare with literals (the candidates
    for Z-order), and per column compared with a time literal the earliest time asked for (what to keep hot).

    >>> access_of("SELECT * FROM s.t WHERE a = 1 AND ts >= '2026-01-02' AND b IN (1, 2)")
    [{'table': 's.t', 'predicate_columns': ['a', 'b', 'ts'], 'time_from': {'ts': '2026-01-02T00:00:00+00:00'}}]
    """
    try:
        tree = sqlglot.parse_one(sql, read="duckdb")
    except sqlglot.errors.SqlglotError:
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


def rewrite(
    sql: str, pinned: Mapping[TableName, AsOf], *, dialect: str = "duckdb"
) -> tuple[str, dict[str, tuple[TableName, AsOf | None]]]:
    """Replace catalog table references by view names; return the SQL (in ``dialect``: duckdb, or spark for
    the Spark engine) and the views to create.

    >>> sql, views = rewrite("SELECT count(*) FROM s.t AT (VERSION => 2) JOIN s.t u USING (id)", {})
    >>> sql
    'SELECT COUNT(*) FROM "__lh0_s__t__v2" AS t JOIN "__lh1_s__t__current" AS u USING (id)'
    """
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
    return tree.sql(dialect=dialect), views
