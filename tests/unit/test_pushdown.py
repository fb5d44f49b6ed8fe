"""Which WHERE conjuncts an isolated query's table reader may apply (:mod:`lakehouse.sql.pushdown`): every shape
the allow-list takes, and the shapes it must leave to DuckDB."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest

from lakehouse.expr import And, Compare, In, IsNull
from lakehouse.sql.pushdown import pushable

SCHEMA = pa.schema(
    [
        ("id", pa.int64()),
        ("k", pa.int32()),
        ("s", pa.string()),
        ("d", pa.date32()),
        ("ok", pa.bool_()),
        ("f", pa.float64()),
        ("m", pa.decimal128(9, 2)),
        ("ts", pa.timestamp("us", tz="UTC")),
        ("Mixed", pa.int64()),
    ]
)
V = '"__lh0_n__t__current"'
VIEW = "__lh0_n__t__current"


def push(where: str, *, sql: str | None = None, masked: tuple[str, ...] = ()) -> object:
    return pushable(sql or f"SELECT count(*) FROM {V} AS t WHERE {where}", VIEW, SCHEMA, masked)


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ("k = 5", Compare("k", "=", 5)),
        ("5 < k", Compare("k", ">", 5)),
        ("t.k <> -7", Compare("k", "!=", -7)),
        ("k BETWEEN 1 AND 3", And((Compare("k", ">=", 1), Compare("k", "<=", 3)))),
        ("s IN ('a', '', 'é')", In("s", ("a", "", "é"))),
        ("d >= '2026-02-28'", Compare("d", ">=", dt.date(2026, 2, 28))),
        ("ok = TRUE", Compare("ok", "=", True)),
        ("s IS NULL", IsNull("s")),
        ("s IS NOT NULL", IsNull("s", negated=True)),
        ('"MIXED" = 1', Compare("Mixed", "=", 1)),
        ("(k = 1 AND (s = 'x'))", And((Compare("k", "=", 1), Compare("s", "=", "x")))),
        # the pushable conjuncts of a clause that has others too
        ("k = 1 AND f > 2.5 AND (s = 'a' OR s = 'b')", Compare("k", "=", 1)),
        ("k = 2147483647", Compare("k", "=", 2147483647)),
    ],
)
def test_pushed(where: str, expected: object) -> None:
    assert push(where) == expected


@pytest.mark.parametrize(
    "where",
    [
        "k = 1 OR s = 'x'",  # under OR
        "NOT (k = 1)",  # NOT of a comparison: three-valued logic stays DuckDB's
        "k NOT IN (1, 2)",
        "f > 1.5",  # floats: DuckDB orders NaN above every number
        "m = 1",  # decimals
        "ts > '2026-01-01'",  # timestamps: the literal's time zone
        "k = 1.5",  # not an integer literal
        "k = 2147483648",  # beyond int32
        "k = '5'",  # a string against an integer
        "s = 5",
        "d = '2026-2-1'",  # not YYYY-MM-DD
        "d = '2026-02-30'",
        "ok = 1",
        "u.k = 1",  # another table's column
        "x.t.k = 1",
        "nope = 1",
        "k = k",
        "k IN (SELECT 1)",
        "k + 1 = 2",
        "lower(s) = 'a'",
    ],
)
def test_not_pushed(where: str) -> None:
    assert push(where) is None


@pytest.mark.parametrize(
    "sql",
    [
        f"SELECT * FROM {V} AS t JOIN other AS u ON t.id = u.id WHERE t.k = 1",
        f"SELECT * FROM {V} AS t, other WHERE t.k = 1",
        f"WITH x AS (SELECT 1) SELECT * FROM {V} AS t WHERE k = 1",
        f"SELECT * FROM {V} AS t WHERE k = 1 UNION ALL SELECT * FROM {V} AS t WHERE k = 1",
        f"SELECT * FROM {V} AS t WHERE k > (SELECT avg(k) FROM {V})",  # the table read a second time
        f"SELECT * FROM {V} AS t TABLESAMPLE 10% WHERE k = 1",  # sampled before the WHERE
        f"SELECT * FROM {V} USING SAMPLE 10 WHERE k = 1",
        f"SELECT * FROM (SELECT * FROM {V}) AS t WHERE k = 1",
        "SELECT * FROM other WHERE k = 1",
        "SELECT k FROM",  # not SQL
    ],
)
def test_query_shapes_not_pushed(sql: str) -> None:
    assert push("", sql=sql) is None


def test_clauses_after_the_where_keep_it_pushable() -> None:
    sql = f"SELECT s, count(*) FROM {V} AS t WHERE k >= 3 GROUP BY s HAVING count(*) > 1 ORDER BY 2 LIMIT 5"
    assert push("", sql=sql) == Compare("k", ">=", 3)


def test_masked_columns_are_never_pushed() -> None:
    """A caller without the PII permission filters on masked values: the raw ones must not decide what it sees."""
    assert push("s = 'alice' AND k = 1", masked=("s",)) == Compare("k", "=", 1)
    assert push("s IS NULL", masked=("s",)) is None


def test_zoned_time_literals_only_when_asked_and_only_with_an_offset() -> None:
    schema = pa.schema(
        [("at", pa.timestamp("us", "UTC")), ("naive", pa.timestamp("us")), ("ns", pa.timestamp("ns", "UTC"))]
    )
    at = dt.datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=dt.UTC)
    sql = "SELECT * FROM v WHERE at >= '2026-01-02T03:04:05.123456Z'"
    assert pushable(sql, "v", schema) is None  # the worker's reader: never
    assert pushable(sql, "v", schema, zoned_times=True) == Compare("at", ">=", at)
    plus_two = pushable("SELECT * FROM v WHERE at < '2026-01-02 05:04:05.123456+02:00'", "v", schema, zoned_times=True)
    assert plus_two == Compare("at", "<", at)
    for where in (
        "at >= '2026-01-02T03:04:05'",  # no offset: the session's time zone would say which instant
        "at >= '2026-01-02T03:04:05.1234567Z'",  # finer than DuckDB's microseconds
        "at >= TIMESTAMPTZ '2026-01-02T03:04:05Z'",  # a cast, not a literal
        "naive >= '2026-01-02T03:04:05Z'",
        "ns >= '2026-01-02T03:04:05Z'",
    ):
        assert pushable(f"SELECT * FROM v WHERE {where}", "v", schema, zoned_times=True) is None, where
