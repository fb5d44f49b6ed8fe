"""The part of a query's WHERE clause a table's reader may apply before the engine sees the rows.

Isolated queries (:mod:`lakehouse.sql.worker`) stream each table into DuckDB as Arrow batches, so DuckDB's own
file and row-group skipping never runs: without help the reader reads every row of the referenced columns, and
a table clustered for a selective predicate answers it no faster than one that is not. :func:`pushable` picks,
from one query, the conjuncts of its WHERE clause whose meaning the reader's engine (pyarrow, through delta-rs's
log or pyiceberg's plan) shares exactly with DuckDB's, so the reader skips files and row groups by their
statistics and leaves out rows that could not pass anyway; DuckDB still applies the whole clause.

Exact means an allow-list, not a best effort: a conjunct is pushed only when

* the query is one SELECT over this one table reference (no join, set operation, CTE, or second reference to
  the table anywhere, a subquery's included: each reference reads the table anew and must see every row);
* the conjunct is ``column <op> literal`` (=, <>, <, <=, >, >=; either side), ``column BETWEEN literal AND
  literal``, ``column IN (literals)`` or ``column IS [NOT] NULL``, where the column is the table's own,
  not masked for the caller, and
* the column is an integer compared with an integer literal in the type's range, a string with a string
  literal, a date with a ``YYYY-MM-DD`` literal, or a boolean with TRUE/FALSE.

Floats (DuckDB orders NaN above every number, pyarrow compares it with nothing), decimals and timestamps (a
literal's type or time zone could read differently), binary and nested columns are never pushed, nor is
anything under OR or NOT (three-valued logic stays DuckDB's).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Collection, Iterator
from typing import Any

import pyarrow as pa
import sqlglot
from sqlglot import exp

from lakehouse.expr import And, Compare, Expr, In, IsNull

_OPS: dict[type[Any], str] = {exp.EQ: "=", exp.NEQ: "!=", exp.LT: "<", exp.LTE: "<=", exp.GT: ">", exp.GTE: ">="}
_FLIP = {"=": "=", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}
_SELECT_PARTS = frozenset(
    {"kind", "hint", "distinct", "expressions", "exclude", "operation_modifiers", "from_", "from", "where", "group",
     "having", "qualify", "order", "limit", "offset"}
)  # fmt: skip
"""Clauses a query may have for its WHERE to be pushed: none that adds rows or sources (joins, CTEs, laterals) or
samples them before the WHERE."""
_TABLE_PARTS = frozenset({"this", "alias", "db", "catalog"})
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_INT = re.compile(r"-?\d+")


def pushable(
    sql: str, view: str, schema: pa.Schema, masked: Collection[str] = (), *, zoned_times: bool = False
) -> Expr | None:
    """The conjunction of the WHERE conjuncts of ``sql`` (a query as :func:`lakehouse.sql.rewrite.rewrite`
    leaves it) that the reader of the table bound as ``view`` may apply (see the module docstring), or None.

    ``zoned_times``: also a microsecond timestamp column with a time zone compared with a string literal that
    names its offset (``'2026-01-02T03:04:05.123456+00:00'``, ``...Z``): DuckDB reads it as that instant whatever
    the session's time zone (for readers that compare instants themselves, :mod:`lakehouse.sql.planned`)."""
    try:
        tree = sqlglot.parse_one(sql, read="duckdb")
    except sqlglot.errors.ParseError:
        return None
    if not isinstance(tree, exp.Select) or {k for k, v in tree.args.items() if v} - _SELECT_PARTS:
        return None
    references = [t for t in tree.find_all(exp.Table) if t.name == view]
    source = tree.args.get("from_") or tree.args.get("from")
    if len(references) != 1 or source is None or source.this is not references[0]:
        return None
    if {k for k, v in references[0].args.items() if v} - _TABLE_PARTS:  # a sample, pivot, join, ...
        return None
    where = tree.args.get("where")
    if where is None:
        return None
    names = {references[0].name, references[0].alias_or_name}
    items: list[Expr] = []
    for conjunct in _conjuncts(where.this):
        items.extend(_convert(conjunct, names, schema, masked, zoned_times))
    if not items:
        return None
    return items[0] if len(items) == 1 else And(tuple(items))


def _conjuncts(node: exp.Expression) -> Iterator[exp.Expression]:
    while isinstance(node, exp.Paren):
        node = node.this
    if isinstance(node, exp.And):
        yield from _conjuncts(node.args["this"])
        yield from _conjuncts(node.args["expression"])
    else:
        yield node


def _convert(
    node: exp.Expression, names: set[str], schema: pa.Schema, masked: Collection[str], zoned_times: bool = False
) -> list[Expr]:
    """The filter nodes one conjunct stands for exactly (empty: not pushable)."""

    def _literal(n: exp.Expression, t: pa.DataType) -> Any:
        return _literal_of(n, t, zoned_times)

    def column(n: exp.Expression) -> pa.Field | None:
        if not isinstance(n, exp.Column) or (n.table and n.table not in names) or n.args.get("db"):
            return None
        matches = [f for f in schema if f.name.lower() == n.name.lower()]
        if len(matches) != 1 or matches[0].name in masked:
            return None
        return matches[0]

    if type(node) in _OPS:
        op, left, right = _OPS[type(node)], node.args["this"], node.args["expression"]
        field = column(left)
        if field is None:
            field, left, right, op = column(right), right, left, _FLIP[op]
        if field is None:
            return []
        value = _literal(right, field.type)
        return [] if value is _NO else [Compare(field.name, op, value)]  # type: ignore[arg-type]
    if isinstance(node, exp.Between):
        field = column(node.this)
        if field is None:
            return []
        low, high = _literal(node.args["low"], field.type), _literal(node.args["high"], field.type)
        if low is _NO or high is _NO:
            return []
        return [Compare(field.name, ">=", low), Compare(field.name, "<=", high)]
    if isinstance(node, exp.In) and not node.args.get("query") and not node.args.get("unnest"):
        field = column(node.this)
        if field is None or not node.expressions:
            return []
        values = [_literal(v, field.type) for v in node.expressions]
        return [] if any(v is _NO for v in values) else [In(field.name, tuple(values))]
    negated = isinstance(node, exp.Not)
    inner = node.this if negated else node
    if isinstance(inner, exp.Is) and isinstance(inner.expression, exp.Null):
        field = column(inner.this)
        return [] if field is None else [IsNull(field.name, negated=negated)]
    return []


_NO = object()
"""Not a literal the column's type reads exactly."""


_ZONED = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:\d{2})")


def _literal_of(node: exp.Expression, t: pa.DataType, zoned_times: bool = False) -> Any:
    negative = False
    if isinstance(node, exp.Neg):
        negative, node = True, node.this
    if pa.types.is_integer(t):
        if not isinstance(node, exp.Literal) or node.is_string or not _INT.fullmatch(node.this):
            return _NO
        value = -int(node.this) if negative else int(node.this)
        bits = t.bit_width
        low, high = (0, 2**bits - 1) if pa.types.is_unsigned_integer(t) else (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
        return value if low <= value <= high else _NO
    if negative:
        return _NO
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return node.this if isinstance(node, exp.Literal) and node.is_string else _NO
    if pa.types.is_date32(t):
        if not (isinstance(node, exp.Literal) and node.is_string and _DATE.fullmatch(node.this)):
            return _NO
        try:
            return dt.date.fromisoformat(node.this)
        except ValueError:
            return _NO
    if pa.types.is_boolean(t):
        return node.this if isinstance(node, exp.Boolean) else _NO
    if zoned_times and pa.types.is_timestamp(t) and t.tz is not None and t.unit == "us":
        if not (isinstance(node, exp.Literal) and node.is_string and _ZONED.fullmatch(node.this)):
            return _NO
        try:
            return dt.datetime.fromisoformat(node.this)
        except ValueError:
            return _NO
    return _NO
