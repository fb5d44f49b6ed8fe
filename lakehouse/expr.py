"""Row filters: parsed once from SQL, rendered for each engine.

A filter is written as a SQL boolean expression (``"country = 'DE' AND ts >= '2026-01-01'"``) and parsed with
sqlglot into a small tree of :class:`Compare`, :class:`In`, :class:`IsNull`, :class:`And`, :class:`Or` and
:class:`Not`. The tree renders to a pyarrow compute expression here; the Iceberg adapter renders it to
pyiceberg expressions. Literals are coerced to the column's type (an ISO string against a timestamp
column becomes a UTC timestamp).

    >>> e = parse_filter("a > 1 AND b IN ('x', 'y')")
    >>> sorted(e.columns())
    ['a', 'b']
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

import pyarrow as pa
import pyarrow.compute as pc
import sqlglot
from sqlglot import exp

from lakehouse.errors import InvalidPredicateError

# sqlglot warns on stderr of things it cannot render (`Byte strings are not supported for Dialect`) before the
# filter is refused with its own one-line error
logging.getLogger("sqlglot").setLevel(logging.ERROR)

Op = Literal["=", "!=", "<", "<=", ">", ">="]


class Expr:
    """Base of the filter tree."""

    def columns(self) -> set[str]:
        raise NotImplementedError


@dataclass(frozen=True)
class Compare(Expr):
    column: str
    op: Op
    value: Any

    def columns(self) -> set[str]:
        return {self.column}


@dataclass(frozen=True)
class In(Expr):
    column: str
    values: tuple[Any, ...]
    negated: bool = False

    def columns(self) -> set[str]:
        return {self.column}


@dataclass(frozen=True)
class IsNull(Expr):
    column: str
    negated: bool = False

    def columns(self) -> set[str]:
        return {self.column}


@dataclass(frozen=True)
class And(Expr):
    items: tuple[Expr, ...]

    def columns(self) -> set[str]:
        return set().union(*(i.columns() for i in self.items))


@dataclass(frozen=True)
class Or(Expr):
    items: tuple[Expr, ...]

    def columns(self) -> set[str]:
        return set().union(*(i.columns() for i in self.items))


@dataclass(frozen=True)
class Not(Expr):
    item: Expr

    def columns(self) -> set[str]:
        return self.item.columns()


_CMP: dict[type[Any], Op] = {
    exp.EQ: "=",
    exp.NEQ: "!=",
    exp.LT: "<",
    exp.LTE: "<=",
    exp.GT: ">",
    exp.GTE: ">=",
}
_FLIP: dict[Op, Op] = {"=": "=", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}


def parse_error_detail(e: Exception) -> str:
    """What the SQL parser (sqlglot) found wrong, in its first error's words, naming a node by its SQL name
    rather than its Python class (``missing for EQ``, not ``missing for <class 'sqlglot.expressions.core.EQ'>``).

    >>> parse_error_detail(ValueError("Required keyword: 'expression' missing for <class 'sqlglot.expressions.EQ'>"))
    "Required keyword: 'expression' missing for EQ"
    """
    errors = getattr(e, "errors", None)
    detail = str(errors[0]["description"]) if errors else str(e)
    return re.sub(r"<class '(?:\w+\.)*(\w+)'>", r"\1", detail)


def parse_filter(text: str) -> Expr:
    """Parse a SQL boolean expression into a filter tree.

    Raises:
        InvalidPredicateError: for anything but comparisons, IN, IS [NOT] NULL, BETWEEN, AND, OR, NOT.
    """
    if not text or not text.strip():
        raise InvalidPredicateError("the filter is empty")
    try:
        tree = sqlglot.parse_one(text, read="duckdb")
        converted = _convert(tree, text)
    except sqlglot.errors.SqlglotError as e:  # tokenizer errors too (an unterminated string, stray bytes)
        raise InvalidPredicateError(f"cannot parse filter {text!r}: {parse_error_detail(e)}") from e
    except RecursionError:
        converted = None
    if converted is None or _depth(converted) > MAX_FILTER_DEPTH:
        limit = "" if converted is None else f" (at most {MAX_FILTER_DEPTH} levels of AND, OR and NOT in each other)"
        raise InvalidPredicateError(
            f"the filter nests too deeply{limit}",
            hint="flatten it: fewer parentheses, a chain of AND or OR, IN (...) for many values",
        )
    return converted


MAX_FILTER_DEPTH = 64
"""Levels of nesting a filter may have (chains of AND / OR are one level, however long): every use of a filter
(plans, pruning, the format libraries' own expressions) walks it recursively."""


def _depth(e: Expr) -> int:
    deepest, stack = 0, [(e, 1)]
    while stack:
        node, level = stack.pop()
        deepest = max(deepest, level)
        if isinstance(node, And | Or):
            stack.extend((i, level + 1) for i in node.items)
        elif isinstance(node, Not):
            stack.append((node.item, level + 1))
    return deepest


def _column(node: Any, text: str) -> str:
    if isinstance(node, exp.Column) and not node.table:
        return node.name
    raise InvalidPredicateError(f"expected a column name in filter {text!r}, got {node.sql()!r}")


def _literal(node: Any, text: str) -> Any:
    if isinstance(node, exp.Paren):
        return _literal(node.this, text)
    if isinstance(node, exp.Neg):
        v = _literal(node.this, text)
        if isinstance(v, int | float | Decimal):
            return -v
    if isinstance(node, exp.Literal):
        if node.is_string:
            return node.this
        raw = node.this
        try:
            return int(raw)
        except ValueError:
            pass
        try:
            return float(raw)
        except ValueError:  # what the tokenizer took for a number and is not one (``0E``)
            raise InvalidPredicateError(f"{raw!r} is not a number, in filter {text!r}") from None
    if isinstance(node, exp.Boolean):
        return bool(node.this)
    if isinstance(node, exp.Null):
        return None
    if isinstance(node, exp.Cast) and isinstance(node.this, exp.Literal):
        # TIMESTAMP '2026-01-01', DATE '...'
        return _literal(node.this, text)
    raise InvalidPredicateError(f"expected a literal value in filter {text!r}, got {node.sql()!r}")


def _convert(node: Any, text: str) -> Expr:
    if isinstance(node, exp.Paren):
        return _convert(node.this, text)
    if isinstance(node, exp.And | exp.Or):  # a chain of one of them, however long, is one node
        kind = type(node)
        operands: list[Expr] = []
        stack: list[Any] = [node]
        while stack:
            n = stack.pop()
            while isinstance(n, exp.Paren) and isinstance(n.this, kind):
                n = n.this
            if isinstance(n, kind):
                stack += [n.right, n.left]
            else:
                operands.append(_convert(n, text))
        return And(tuple(operands)) if kind is exp.And else Or(tuple(operands))
    if isinstance(node, exp.Not):
        inner = node.this
        if isinstance(inner, exp.Is):
            return IsNull(_column(inner.this, text), negated=True)
        if isinstance(inner, exp.In):
            return In(_column(inner.this, text), tuple(_literal(v, text) for v in inner.expressions), negated=True)
        return Not(_convert(inner, text))
    for cls, op in _CMP.items():
        if isinstance(node, cls):
            left, right = node.left, node.right
            if isinstance(left, exp.Column):
                return Compare(_column(left, text), op, _literal(right, text))
            if isinstance(right, exp.Column):
                return Compare(_column(right, text), _FLIP[op], _literal(left, text))
            raise InvalidPredicateError(f"a comparison in {text!r} needs a column on one side")
    if isinstance(node, exp.In):
        if node.args.get("query"):
            raise InvalidPredicateError(f"subqueries are not allowed in filter {text!r}")
        return In(_column(node.this, text), tuple(_literal(v, text) for v in node.expressions))
    if isinstance(node, exp.Is) and isinstance(node.expression, exp.Null):
        return IsNull(_column(node.this, text))
    if isinstance(node, exp.Between):
        col = _column(node.this, text)
        return And(
            (
                Compare(col, ">=", _literal(node.args["low"], text)),
                Compare(col, "<=", _literal(node.args["high"], text)),
            )
        )
    if isinstance(node, exp.Alias):  # `0x10` reads as `0 AS x10`: quote what was written, not that
        raise InvalidPredicateError(
            f"unsupported filter {text!r}: a value followed by a name (hexadecimal literals such as 0x10 are not "
            "supported)",
            hint="write numbers in decimal, strings in single quotes",
        )
    raise InvalidPredicateError(
        f"unsupported filter {node.sql()!r}",
        hint="use comparisons, IN, IS [NOT] NULL, BETWEEN, AND, OR and NOT on columns",
    )


def _arrow_literal(value: Any, t: pa.DataType, column: str) -> pa.Scalar:
    """A literal as an Arrow scalar of the column's type; one the type cannot hold (a decimal of more digits
    than its precision) is :class:`InvalidPredicateError`."""
    coerced = coerce(value, t, column)
    try:
        return pa.scalar(coerced, type=t)
    except (OverflowError, ValueError, pa.ArrowException) as e:
        raise InvalidPredicateError(f"value {value!r} does not fit column {column!r} ({t})") from e


def coerce(value: Any, t: pa.DataType, column: str) -> Any:
    """Coerce a literal to a Python value of the column's Arrow type."""
    if value is None:
        return None
    try:
        if pa.types.is_timestamp(t):
            if isinstance(value, str):
                ts = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
            elif isinstance(value, dt.datetime):
                ts = value
            else:
                raise TypeError(type(value).__name__)
            if t.tz is not None:
                return ts.replace(tzinfo=dt.UTC) if ts.tzinfo is None else ts.astimezone(dt.UTC)
            if ts.tzinfo is not None:
                raise InvalidPredicateError(
                    f"column {column!r} is a timestamp without time zone; compare it with a time without offset"
                )
            return ts
        if pa.types.is_date(t):
            if isinstance(value, str):
                return dt.date.fromisoformat(value[:10])
            return value
        if pa.types.is_integer(t):
            if isinstance(value, float) and not value.is_integer():
                raise TypeError("fractional")  # normalize() rewrites these before rendering
            n = int(value)
            lo, hi = (
                (0, 2**t.bit_width - 1)
                if pa.types.is_unsigned_integer(t)
                else (-(2 ** (t.bit_width - 1)), 2 ** (t.bit_width - 1) - 1)
            )
            if not lo <= n <= hi:
                raise ValueError(f"outside {lo}..{hi}")
            return n
        if pa.types.is_floating(t):
            return float(value)
        if pa.types.is_decimal(t):
            return Decimal(str(value))
        if pa.types.is_boolean(t):
            if isinstance(value, str):
                return value.lower() in ("true", "1", "t", "yes")
            return bool(value)
        if pa.types.is_string(t) or pa.types.is_large_string(t):
            return str(value)
    except (TypeError, ValueError) as e:
        raise InvalidPredicateError(f"value {value!r} does not fit column {column!r} ({t})") from e
    return value


def normalize(e: Expr, schema: pa.Schema) -> Expr:
    """Rewrite comparisons of integer columns with fractional literals into integer ones.

    ``x >= 2.5`` becomes ``x >= 3``, ``x < 2.5`` becomes ``x <= 2``, ``x = 2.5`` is never true and
    ``x != 2.5`` is true for every non-null x; fractional values drop out of IN lists. Every renderer then
    sees literals of the column's own type.
    """
    import math

    if isinstance(e, And):
        return And(tuple(normalize(i, schema) for i in e.items))
    if isinstance(e, Or):
        return Or(tuple(normalize(i, schema) for i in e.items))
    if isinstance(e, Not):
        return Not(normalize(e.item, schema))
    idx = schema.get_field_index(getattr(e, "column", ""))
    if idx < 0 or not pa.types.is_integer(schema.field(idx).type):
        return e

    def fractional(v: Any) -> bool:
        return isinstance(v, float) and not v.is_integer()

    if isinstance(e, Compare) and fractional(e.value):
        v = e.value
        if e.op in (">", ">="):
            return Compare(e.column, ">=", math.ceil(v))
        if e.op in ("<", "<="):
            return Compare(e.column, "<=", math.floor(v))
        # x = 2.5 is false for every non-null x and unknown for NULL: exactly "x IN ()"; != is its negation
        return In(e.column, (), negated=e.op == "!=")
    if isinstance(e, In) and any(fractional(v) for v in e.values):
        return In(e.column, tuple(v for v in e.values if not fractional(v)), e.negated)
    return e


def _field_type(schema: pa.Schema, column: str) -> pa.DataType:
    idx = schema.get_field_index(column)
    if idx < 0:
        raise InvalidPredicateError(
            f"filter refers to unknown column {column!r}", hint=f"columns are: {', '.join(schema.names)}"
        )
    return schema.field(idx).type


def check_columns(e: Expr, schema: pa.Schema) -> None:
    for c in e.columns():
        _field_type(schema, c)


def to_sql(e: Expr, schema: pa.Schema) -> str:
    """Render a filter as a standard SQL predicate with literals of the columns' types (for engines that
    take SQL text, such as delta-rs and DuckDB). SQL's own three-valued logic applies there.

    >>> schema = pa.schema([("a", pa.string()), ("b", pa.int64())])
    >>> print(to_sql(parse_filter("a = 'it''s' AND NOT b IN (1, 2)"), schema))
    ("a" = 'it''s' AND NOT ("b" IN (1, 2)))
    """

    def col(c: str) -> str:
        _field_type(schema, c)
        return '"' + c.replace('"', '""') + '"'

    def lit(c: str, v: Any) -> str:
        value = coerce(v, _field_type(schema, c), c)
        if value is None:
            return "NULL"
        if isinstance(value, bool):
            return "TRUE" if value else "FALSE"
        if isinstance(value, int | float | Decimal):
            return repr(value) if not isinstance(value, Decimal) else str(value)
        if isinstance(value, dt.datetime):
            text = value.isoformat(sep="T", timespec="microseconds")
            return "'" + text.replace("+00:00", "Z") + "'"
        if isinstance(value, dt.date):
            return "'" + value.isoformat() + "'"
        return "'" + str(value).replace("'", "''") + "'"

    if isinstance(e, Compare):
        if e.value is None:
            return "(NULL = NULL)"  # unknown, like the comparison it stands for
        return f"{col(e.column)} {'<>' if e.op == '!=' else e.op} {lit(e.column, e.value)}"
    if isinstance(e, In):
        if not e.values:
            return f"({col(e.column)} IS NOT NULL)" if e.negated else "FALSE"
        inner = ", ".join(lit(e.column, v) for v in e.values)
        return f"{'NOT ' if e.negated else ''}({col(e.column)} IN ({inner}))"
    if isinstance(e, IsNull):
        return f"{col(e.column)} IS {'NOT ' if e.negated else ''}NULL"
    if isinstance(e, And | Or):
        joiner = " AND " if isinstance(e, And) else " OR "
        return "(" + joiner.join(to_sql(i, schema) for i in e.items) + ")"
    if isinstance(e, Not):
        return f"NOT ({to_sql(e.item, schema)})"
    raise InvalidPredicateError(f"unsupported filter node {e!r}")


def to_arrow(e: Expr, schema: pa.Schema, *, cast: Collection[str] = ()) -> pc.Expression:
    """Render a filter tree as a pyarrow compute expression.

    ``cast``: columns to reference through a cast to their declared type. A Parquet file may hold a column as
    another Arrow type than the table declares: delta-rs's delete and merge write strings as ``string_view``
    (the Arrow schema stored in the file says so). A dataset scan checks the filter against each file's own
    types (its row-group statistics), and pyarrow has no kernel comparing ``string`` with ``string_view``, so
    such a column must be cast to the declared type before it is compared. (Row-group statistics of a cast
    column are not used to skip row groups; partition values, which are never cast, still prune files.)
    """

    def field(column: str) -> pc.Expression:
        ref = pc.field(column)
        return ref.cast(_field_type(schema, column)) if column in cast else ref

    if isinstance(e, Compare):
        t = _field_type(schema, e.column)
        f = field(e.column)
        if e.value is None:
            return pc.scalar(pa.scalar(None, pa.bool_()))  # comparing with NULL is unknown
        v = _arrow_literal(e.value, t, e.column)
        if pa.types.is_floating(t):  # SQL's order (DuckDB, Spark, PostgreSQL): NaN equals NaN, above every number
            nan = pc.is_nan(f)
            if math.isnan(v.as_py()):
                return {"=": nan, "!=": ~nan, "<": ~nan, "<=": nan | ~nan, ">": nan & ~nan, ">=": nan}[e.op]
            return {"=": f == v, "!=": f != v, "<": f < v, "<=": f <= v, ">": (f > v) | nan, ">=": (f >= v) | nan}[e.op]
        return {
            "=": f == v,
            "!=": f != v,
            "<": f < v,
            "<=": f <= v,
            ">": f > v,
            ">=": f >= v,
        }[e.op]
    if isinstance(e, In):
        t = _field_type(schema, e.column)
        # SQL three-valued logic: NULL IN (...) is unknown, and so is a non-match when the list holds NULL
        values = pa.array([_arrow_literal(v, t, e.column).as_py() for v in e.values if v is not None], type=t)
        unknown = pa.scalar(None, pa.bool_())
        f = field(e.column)
        if pa.types.is_floating(t) and len(values):
            # isin hashes: -0.0 would not match 0 (SQL: equal); NaN matches NaN, as in SQL's order
            hits = [pc.is_nan(f) if math.isnan(v) else f == pa.scalar(v, t) for v in values.to_pylist()]
            matched = hits[0]
            for hit in hits[1:]:
                matched = matched | hit
            expr = pc.if_else(f.is_null(), unknown, matched)
        else:
            expr = pc.if_else(f.is_null(), unknown, f.isin(values))
        if any(v is None for v in e.values):
            expr = pc.if_else(expr, pa.scalar(True), unknown)
        return ~expr if e.negated else expr
    if isinstance(e, IsNull):
        expr = field(e.column).is_null()
        return ~expr if e.negated else expr
    if isinstance(e, And):
        out = to_arrow(e.items[0], schema, cast=cast)
        for item in e.items[1:]:
            out = out & to_arrow(item, schema, cast=cast)
        return out
    if isinstance(e, Or):
        out = to_arrow(e.items[0], schema, cast=cast)
        for item in e.items[1:]:
            out = out | to_arrow(item, schema, cast=cast)
        return out
    if isinstance(e, Not):
        return ~to_arrow(e.item, schema, cast=cast)
    raise InvalidPredicateError(f"unsupported filter node {e!r}")


def evaluate_table(e: Expr, schema: pa.Schema, table: pa.Table) -> pa.ChunkedArray:
    """``e`` over the rows of ``table`` (which holds its columns in the types ``schema`` declares): true, false,
    or NULL where it is unknown (SQL's three-valued logic, as :func:`to_arrow` renders it)."""
    import pyarrow.dataset as pds

    rows = table.num_rows
    result = pds.dataset(table).to_table(columns={"__match": to_arrow(e, schema)}).column("__match")
    return result if len(result) == rows else pa.chunked_array([pa.repeat(result[0], rows)], pa.bool_())


def _like(value: Any, literal: Any) -> Any:
    """``literal`` converted to the Python type of ``value`` (for evaluating against plain rows)."""
    if literal is None or value is None:
        return literal
    try:
        if isinstance(value, dt.datetime):
            if isinstance(literal, str):
                t = dt.datetime.fromisoformat(literal.replace("Z", "+00:00"))
                if value.tzinfo is not None and t.tzinfo is None:
                    t = t.replace(tzinfo=dt.UTC)
                return t
            return literal
        if isinstance(value, dt.date):
            return dt.date.fromisoformat(str(literal)[:10]) if isinstance(literal, str) else literal
        if isinstance(value, bool):
            return literal if isinstance(literal, bool) else str(literal).lower() in ("true", "1")
        if isinstance(value, int | float) and isinstance(literal, str):
            return float(literal) if isinstance(value, float) or "." in literal else int(literal)
        if isinstance(value, str):
            return str(literal)
    except ValueError as e:
        # the type only: ``value`` is a row's value or a file's statistic, which the caller may not be allowed to
        # see (a masked column)
        raise InvalidPredicateError(f"value {literal!r} cannot be compared with {_type_word(value)} values") from e
    return literal


def _type_word(value: Any) -> str:
    """What kind of value ``value`` is, in SQL's words (never the value itself)."""
    for t, word in ((bool, "boolean"), (int, "integer"), (float, "floating-point"), (dt.datetime, "timestamp")):
        if isinstance(value, t):
            return word
    return "date" if isinstance(value, dt.date) else "string" if isinstance(value, str) else type(value).__name__


def _nan_order(op: str, value_nan: bool, literal_nan: bool) -> bool:
    """A comparison where the value or the literal (or both) is NaN, in SQL's order: NaN equals NaN and sorts
    above every number."""
    if value_nan and literal_nan:
        return op in ("=", "<=", ">=")
    if value_nan:  # NaN against a number: greater
        return op in ("!=", ">", ">=")
    return op in ("!=", "<", "<=")  # a number against NaN: smaller


def evaluate(e: Expr, row: Mapping[str, Any]) -> bool | None:
    """Evaluate a filter on one row of Python values with SQL three-valued logic (None = unknown)."""
    if isinstance(e, Compare):
        v = row.get(e.column)
        lit = _like(v, e.value)
        if v is None or lit is None:
            return None
        if isinstance(v, float) and isinstance(lit, float | int) and (math.isnan(v) or math.isnan(lit)):
            return _nan_order(e.op, math.isnan(v), math.isnan(lit))
        ops = {"=": v == lit, "!=": v != lit}
        if e.op in ops:
            return ops[e.op]
        return {"<": v < lit, "<=": v <= lit, ">": v > lit, ">=": v >= lit}[e.op]
    if isinstance(e, In):
        v = row.get(e.column)
        if v is None:
            return None
        hit = any(v == _like(v, x) for x in e.values if x is not None)
        result: bool | None = True if hit else (None if any(x is None for x in e.values) else False)
        return (not result if result is not None else None) if e.negated else result
    if isinstance(e, IsNull):
        isnull = row.get(e.column) is None
        return not isnull if e.negated else isnull
    if isinstance(e, And):
        values = [evaluate(i, row) for i in e.items]
        return False if False in values else (None if None in values else True)
    if isinstance(e, Or):
        values = [evaluate(i, row) for i in e.items]
        return True if True in values else (None if None in values else False)
    if isinstance(e, Not):
        v = evaluate(e.item, row)
        return None if v is None else not v
    raise InvalidPredicateError(f"unsupported filter node {e!r}")


Stats = Mapping[str, tuple[Any, Any, "int | None"]]


def may_match(e: Expr, stats: Stats, rows: int | None = None) -> bool:
    """False when a file with these per-column (min, max, nulls) statistics cannot hold a matching row."""
    return _may(e, stats, rows, negate=False)


def _may(e: Expr, stats: Stats, rows: int | None, negate: bool) -> bool:
    if isinstance(e, Not):
        return _may(e.item, stats, rows, not negate)
    if isinstance(e, And | Or):
        parts = [_may(i, stats, rows, negate) for i in e.items]
        return all(parts) if isinstance(e, And) != negate else any(parts)
    col = getattr(e, "column", None)
    if col is None or col not in stats:
        return True
    lo, hi, nulls = stats[col]
    if isinstance(e, IsNull):
        wants_null = e.negated == negate
        if wants_null:
            return nulls is None or nulls > 0
        return nulls is None or rows is None or nulls < rows
    if lo is None or hi is None:  # no bounds: all NULL only when the null count says so, else unknown
        all_null = nulls is not None and rows is not None and nulls >= rows
        return not all_null if isinstance(e, Compare | In) else True
    if isinstance(e, Compare):
        if e.value is None:
            return False
        v = _like(lo, e.value)
        op = {"=": "!=", "!=": "=", "<": ">=", "<=": ">", ">": "<=", ">=": "<"}[e.op] if negate else e.op
        if isinstance(lo, float) or isinstance(hi, float):
            # bounds leave NaN out (Parquet's and the formats' statistics): a file may hold NaN whatever they say,
            # and NaN satisfies = NaN, != x, > x and >= anything in SQL's order
            if isinstance(v, float) and math.isnan(v):
                return op != ">"
            if op in ("!=", ">", ">="):
                return True
        try:
            return {
                "=": lo <= v <= hi,
                "!=": not (lo == hi == v),
                "<": lo < v,
                "<=": lo <= v,
                ">": hi > v,
                ">=": hi >= v,
            }[op]
        except TypeError:
            return True
    if isinstance(e, In):
        if e.negated != negate:
            return True  # NOT IN rarely prunes; stay safe
        try:
            values = [_like(lo, v) for v in e.values if v is not None]
            if any(isinstance(v, float) and math.isnan(v) for v in values):
                return True  # bounds leave NaN out
            return any(lo <= v <= hi for v in values)
        except TypeError:
            return True
    return True


def all_match(e: Expr, stats: Stats, rows: int) -> bool:
    """True when statistics prove that every row of a file matches ``e``: each column it reads is known and
    holds no NULL (the filter is then true or false for every row, never unknown), it compares with no NULL,
    and no row can make its negation true. The statistics must be valid bounds of every value (floats, whose
    NaN no bound covers, must be left out by the caller)."""

    def has_null_literal(x: Expr) -> bool:
        if isinstance(x, Compare):
            return x.value is None
        if isinstance(x, In):
            return any(v is None for v in x.values)
        if isinstance(x, And | Or):
            return any(has_null_literal(i) for i in x.items)
        if isinstance(x, Not):
            return has_null_literal(x.item)
        return False

    for column in e.columns():
        known = stats.get(column)
        if known is None or known[2] != 0 or known[0] is None:
            return False
    return not has_null_literal(e) and not may_match(Not(e), stats, rows)
