"""From the SQL a user writes to the SQL that runs: catalog table references become view names, time travel
clauses become pinned versions, and the structure is checked (one query; FROM names catalog tables, CTEs in
scope, subqueries, VALUES or UNNEST; nothing looks like a path). Functions are checked afterwards, on DuckDB's
own parse of the result (:mod:`lakehouse.sql.allowlist`).

Time travel, per reference::

    SELECT * FROM sales.orders AT (VERSION => 3)
    SELECT * FROM sales.orders AT (TIMESTAMP => '2026-01-02T00:00:00Z')

or for every reference of a table with ``as_of={"sales.orders": 3}`` (the CLI's ``--as-of``).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from typing import Any

import sqlglot
from sqlglot import exp

from lakehouse.errors import LakehouseError, QueryError
from lakehouse.expr import parse_error_detail
from lakehouse.tables.base import AsOf, TableName, parse_as_of

_COMMANDS = (exp.Summarize, exp.Describe, exp.Show, exp.Pragma, exp.Command, exp.Copy, exp.Set)


def check_structure(tree: exp.Query | exp.Expression) -> None:
    """The query's shape: every FROM/JOIN source is ``namespace.table``, a CTE visible where it is used (the way
    DuckDB binds it, see :func:`visible_ctes`), a subquery, ``VALUES`` or a function the allow-list then checks;
    a ``LATERAL`` only over a subquery; no name that looks like a path or URL; no command (SUMMARIZE, DESCRIBE,
    SHOW, PRAGMA, COPY, SET) inside the query.

    >>> check_structure(sqlglot.parse_one("SELECT * FROM '/etc/passwd'", read="duckdb"))
    Traceback (most recent call last):
    ...
    lakehouse.errors.QueryError: "/etc/passwd" looks like a path or URL; queries read catalog tables only
    """
    for node in tree.walk():
        if isinstance(node, _COMMANDS):
            raise QueryError(f"{node.key.upper()} is not allowed: queries read catalog tables only")
        if isinstance(node, exp.Lateral) and not isinstance(node.this, exp.Subquery):
            raise QueryError("LATERAL is allowed over a subquery only")
        if isinstance(node, exp.Table):
            _check_table(node)


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


_PRINTF_SPEC = re.compile(r"%%|%(?:\d+\$)?[-+ #0']*(\*(?:\d+\$)?|\d+)?(?:\.(\*(?:\d+\$)?|\d*))?")


def format_widths(name: str, text: str) -> list[str]:
    """The widths and precisions of a ``printf`` (C style) or ``format`` (``{:>8.2f}`` style) string; a dynamic
    one is returned as ``*`` or ``{``.

    >>> format_widths("printf", "%-8d|%.*f|%%|%5$s")
    ['8', '*']
    >>> format_widths("format", "{} {{x}} {:>12.3f} {:{}}")
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


def _check_table(table: exp.Table) -> None:
    target = table.this
    text = table.sql(dialect="duckdb")
    if not isinstance(target, exp.Identifier):
        raise QueryError(f"{text} is not allowed in FROM: name catalog tables as namespace.table")
    if table.catalog and not table.db:
        raise QueryError(f"{text}: name catalog tables as namespace.table")
    if any(ch in part for part in (target.name, table.db or "", table.catalog or "") for ch in "/\\:.*?'"):
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

    ``predicates``: each such comparison as SQL over the bare column (``a = 1``), what a data-skipping report
    replays (:func:`lakehouse.maintenance.health.data_skipping`).

    >>> access_of("SELECT * FROM s.t WHERE a = 1 AND ts >= '2026-01-02' AND b IN (1, 2)")[0]["predicate_columns"]
    ['a', 'b', 'ts']
    >>> access_of("SELECT * FROM s.t WHERE a = 1 AND ts >= '2026-01-02' AND b IN (1, 2)")[0]["time_from"]
    {'ts': '2026-01-02T00:00:00+00:00'}
    >>> access_of("SELECT * FROM s.t x WHERE x.a = 1 AND ts >= '2026-01-02' AND b IN (1, 2)")[0]["predicates"]
    ['b IN (1, 2)', 'a = 1', "ts >= '2026-01-02'"]
    """
    try:
        tree = sqlglot.parse_one(sql, read="duckdb")
    except (sqlglot.errors.SqlglotError, RecursionError):
        return []
    aliases: dict[str, str] = {}
    for t in tree.find_all(exp.Table):
        if t.db:
            name = (f"{t.catalog}.{t.db}.{t.name}" if t.catalog else f"{t.db}.{t.name}").lower()
            aliases[(t.alias or t.name).lower()] = name
    tables = set(aliases.values())
    found: dict[str, dict[str, Any]] = {
        n: {"table": n, "predicate_columns": set(), "time_from": {}, "predicates": []} for n in tables
    }
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
        bare = cmp.copy()
        for c in bare.find_all(exp.Column):
            c.set("table", None)
            c.set("db", None)
            c.set("catalog", None)
        text = bare.sql(dialect="duckdb")
        if len(text) <= 500 and text not in found[owner]["predicates"] and len(found[owner]["predicates"]) < 10:
            found[owner]["predicates"].append(text)
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
        {
            "table": e["table"],
            "predicate_columns": sorted(e["predicate_columns"]),
            "time_from": e["time_from"],
            "predicates": e["predicates"],
        }
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
        rewritten, views = _rewrite(sql, pinned, dialect=dialect)
    except RecursionError as e:
        raise QueryError(
            "the query nests expressions or subqueries too deeply", hint="flatten it, e.g. with CTEs"
        ) from e
    unread = sorted(str(n) for n in set(pinned) - {name for name, _ in views.values()})
    if unread:  # a misspelt name would otherwise read the current version without a word
        raise QueryError(
            f"as-of names table(s) {', '.join(unread)}, which the query does not read",
            hint="give a version or time only for tables the query names",
        )
    return rewritten, views


def _rewrite(
    sql: str, pinned: Mapping[TableName, AsOf], *, dialect: str
) -> tuple[str, dict[str, tuple[TableName, AsOf | None]]]:
    try:
        statements = sqlglot.parse(sql, read="duckdb")
    except sqlglot.errors.SqlglotError as e:  # tokenizer errors too (an unterminated string, stray bytes)
        raise QueryError(f"cannot parse SQL: {parse_error_detail(e)}") from e
    statements = [s for s in statements if s is not None]
    if len(statements) != 1:
        raise QueryError(f"give exactly one SQL statement, not {len(statements)}")
    tree = statements[0]
    assert tree is not None
    if not isinstance(tree, exp.Query):
        raise QueryError(f"only queries (SELECT ...) can run here, not {tree.key.upper()}")
    check_structure(tree)
    views: dict[str, tuple[TableName, AsOf | None]] = {}
    numbers: dict[tuple[TableName, AsOf | None], str] = {}
    renamed: dict[tuple[str, str], str] = {}
    for node in list(tree.find_all(exp.Table)):
        if not node.db:
            continue  # a CTE of the query (check_sandbox refused anything else)
        name = TableName.parse(f"{node.catalog}.{node.db}.{node.name}" if node.catalog else f"{node.db}.{node.name}")
        when = _time_travel(node)
        if when is None:
            when = pinned.get(name)
        suffix = (
            "current"
            if when is None
            else (f"v{when}" if isinstance(when, int) else "t" + when.strftime("%Y%m%dT%H%M%S%f"))
        )
        # numbered per query, so that a__b.c and a.b__c never share a view
        view = numbers.setdefault(
            (name, when),
            f"__lh{len(numbers)}_{name.catalog + '__' if name.catalog else ''}{name.namespace}__{name.table}__{suffix}",
        )
        views[view] = (name, when)
        # keep the node (and its sample, pivot, alias columns); only its name changes
        if not node.alias:
            node.set("alias", exp.TableAlias(this=exp.to_identifier(name.table)))
        renamed.setdefault((name.namespace, name.table), node.alias)  # ns.table.column (catalog.ns.table.column
        # is a column of a struct to sqlglot: qualify external tables' columns by the table or an alias)
        node.set("this", exp.to_identifier(view, quoted=True))
        node.set("db", None)
        node.set("catalog", None)
    for col in tree.find_all(exp.Column):  # ns.table.column -> alias.column
        if col.args.get("db") and (col.db.lower(), col.table.lower()) in renamed:
            col.set("table", exp.to_identifier(renamed[(col.db.lower(), col.table.lower())]))
            col.set("db", None)
    return tree.sql(dialect=dialect), views


def needed_columns(sql: str) -> set[str] | None:
    """The names (lower case) a query can use as columns of the tables it reads, or None when it can use any
    (``*``, ``t.*``, ``COLUMNS(...)``, a table alias used as a row value): every identifier of the query, so a
    superset of the columns it refers to. A table bound with only these columns answers the query the same.

    >>> sorted(needed_columns('SELECT a, count(*) FROM "v" AS t WHERE t.b > 1 GROUP BY a'))
    ['a', 'b', 't', 'v']
    >>> needed_columns('SELECT t.* FROM "v" AS t') is None
    True
    >>> needed_columns('SELECT t FROM "v" AS t') is None
    True
    """
    try:
        tree = sqlglot.parse_one(sql, read="duckdb")
    except (sqlglot.errors.SqlglotError, RecursionError):
        return None
    aliases = {t.alias_or_name.lower() for t in tree.find_all(exp.Table)}
    aliases |= {s.alias.lower() for s in tree.find_all(exp.Subquery) if s.alias}
    for node in tree.walk():
        if isinstance(node, exp.Star) and not isinstance(node.parent, exp.Func | exp.Column):
            return None
        if isinstance(node, exp.Column) and (isinstance(node.this, exp.Star) or node.name.lower() in aliases):
            return None
        if isinstance(node, exp.Columns | exp.Pivot):
            return None
        if isinstance(node, exp.Join) and "NATURAL" in str(node.args.get("method") or "").upper():
            return None  # joins on every common column
        if isinstance(node, exp.Anonymous) and node.name.lower() == "columns":
            return None
        if isinstance(node, exp.Star) and isinstance(node.parent, exp.Func) and not isinstance(node.parent, exp.Count):
            return None
    return {i.name.lower() for i in tree.find_all(exp.Identifier)}
