"""Filters: parsed once, rendered to pyarrow; checked against DuckDB's own evaluation of the same SQL."""

from __future__ import annotations

import datetime as dt
import math

import duckdb
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lakehouse.errors import InvalidPredicateError
from lakehouse.expr import And, Compare, In, IsNull, Not, normalize, parse_filter, to_arrow

SCHEMA = pa.schema(
    [
        ("a", pa.int64()),
        ("b", pa.string()),
        ("t", pa.timestamp("us", tz="UTC")),
        ("f", pa.float64()),
        ("g", pa.float64()),
    ]
)
# NaN sorts above every number and equals itself in SQL (DuckDB, Spark, PostgreSQL); -0.0 equals 0.0
SPECIAL = [math.nan, -0.0, 0.0, 1.5, -2.0, math.inf, -math.inf, None, math.nan, 3.0, 0.0]
SPECIAL_FILTERS = [
    "g IN ('NaN', 1.5)",
    "g NOT IN ('NaN')",
    "g NOT IN (0, NULL)",
    "g IS NULL",
    "g IN (0)",  # -0.0 is equal (pyarrow's isin hashes it apart)
    "g IN (-0.0, 3)",
    "g NOT IN (0, 'inf')",
    "g = -0.0",
]


def test_parse_shapes() -> None:
    assert parse_filter("a = 1") == Compare("a", "=", 1)
    assert parse_filter("1 < a") == Compare("a", ">", 1)
    assert parse_filter("b IN ('x', 'y')") == In("b", ("x", "y"))
    assert parse_filter("b NOT IN ('x')") == In("b", ("x",), negated=True)
    assert parse_filter("b IS NOT NULL") == IsNull("b", negated=True)
    assert parse_filter("a BETWEEN 1 AND 3") == And((Compare("a", ">=", 1), Compare("a", "<=", 3)))
    assert parse_filter("NOT a = -2") == Not(Compare("a", "=", -2))
    assert parse_filter("t > TIMESTAMP '2026-01-01'") == Compare("t", ">", "2026-01-01")


@pytest.mark.parametrize(
    "bad", ["", "a +", "a = b", "f(a) = 1", "a = (SELECT 1)", "x.a = 1", "a LIKE 'x%'", "A<0E", "a = 1e"]
)
def test_rejects(bad: str) -> None:
    with pytest.raises(InvalidPredicateError):
        parse_filter(bad)


def _data() -> pa.Table:
    base = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    rows = 60
    return pa.table(
        {
            "a": pa.array([None if i % 11 == 0 else i - 30 for i in range(rows)], pa.int64()),
            "b": pa.array([None if i % 7 == 0 else "xyz"[i % 3] for i in range(rows)]),
            "t": pa.array([base + dt.timedelta(hours=i) for i in range(rows)], pa.timestamp("us", tz="UTC")),
            "f": pa.array([i / 4 for i in range(rows)]),
            "g": pa.array([SPECIAL[(i * 7) % len(SPECIAL)] for i in range(rows)], pa.float64()),
        },
        schema=SCHEMA,
    )


atoms = st.one_of(
    st.builds(lambda op, v: f"a {op} {v}", st.sampled_from(["=", "!=", "<", "<=", ">", ">="]), st.integers(-35, 35)),
    st.builds(lambda op, v: f"b {op} '{v}'", st.sampled_from(["=", "!=", "<", ">="]), st.sampled_from("wxyz")),
    st.builds(
        lambda vs: f"b IN ({', '.join(repr(v) for v in vs)})", st.lists(st.sampled_from("xyz"), min_size=1, max_size=3)
    ),
    st.builds(
        lambda vs: f"a NOT IN ({', '.join(map(str, vs))})", st.lists(st.integers(-30, 30), min_size=1, max_size=3)
    ),
    st.sampled_from(
        [
            "a IS NULL",
            "b IS NOT NULL",
            "a BETWEEN -5 AND 5",
            "f > 7.5",
            "a = NULL",
            "b IN ('x', NULL)",
            "a NOT IN (1, NULL)",
            "a >= 2.5",
            "a = 3.5",
            "a != -1.5",
            "a IN (1.5, 2)",
            "a < -0.5",
        ]
    ),
    st.builds(lambda h: f"t >= '2026-01-02T{h:02d}:00:00+00:00'", st.integers(0, 23)),
    st.builds(
        lambda op, v: f"g {op} {v}",
        st.sampled_from(["=", "!=", "<", "<=", ">", ">="]),
        st.sampled_from(["'NaN'", "0", "-0.0", "1.5", "'inf'", "'-inf'", "-3"]),
    ),
    st.sampled_from(SPECIAL_FILTERS),
)
filters = st.recursive(
    atoms,
    lambda inner: st.one_of(
        st.builds(lambda x, y: f"({x}) AND ({y})", inner, inner),
        st.builds(lambda x, y: f"({x}) OR ({y})", inner, inner),
        st.builds(lambda x: f"NOT ({x})", inner),
    ),
    max_leaves=6,
)


@pytest.mark.parametrize("text", SPECIAL_FILTERS)
def test_float_filters_agree_with_duckdb(text: str) -> None:
    test_arrow_rendering_agrees_with_duckdb.hypothesis.inner_test(text)  # type: ignore[attr-defined]


@settings(max_examples=150, deadline=None)
@given(filters)
def test_arrow_rendering_agrees_with_duckdb(text: str) -> None:
    data = _data()
    ours = data.filter(to_arrow(normalize(parse_filter(text), SCHEMA), SCHEMA))["f"].to_pylist()
    con = duckdb.connect()
    con.register("arrow_data", data)
    con.execute("SET TimeZone = 'UTC'")
    # a table of DuckDB's own: filters on a registered Arrow table are pushed into pyarrow's scan, which would
    # compare pyarrow with pyarrow (NaN differs: IEEE there, SQL's order in DuckDB)
    con.execute("CREATE TABLE data AS SELECT * FROM arrow_data")
    theirs = [r[0] for r in con.execute(f"SELECT f FROM data WHERE {text} ORDER BY f").fetchall()]
    assert sorted(ours) == theirs


@settings(max_examples=150, deadline=None)
@given(filters)
def test_file_pruning_is_sound(text: str) -> None:
    """A file that statistics say cannot match really holds no matching row (and pruning does happen)."""
    import pyarrow.compute as pc

    from lakehouse.expr import may_match

    data = _data()
    expr = normalize(parse_filter(text), SCHEMA)
    for start in range(0, data.num_rows, 10):
        chunk = data.slice(start, 10)
        stats = {}
        for name in SCHEMA.names:
            col = chunk[name]
            mm = pc.min_max(col).as_py()
            stats[name] = (mm["min"], mm["max"], col.null_count)
        matches = chunk.filter(to_arrow(expr, SCHEMA)).num_rows
        if not may_match(expr, stats, chunk.num_rows):
            assert matches == 0, (text, start)


def test_pruning_prunes() -> None:
    from lakehouse.expr import may_match

    stats = {"a": (10, 20, 0), "b": ("m", "p", 3)}
    assert not may_match(parse_filter("a > 20"), stats, 10)
    assert not may_match(parse_filter("a IN (1, 2, 30)"), stats, 10)
    assert not may_match(parse_filter("NOT (a <= 20)"), stats, 10)
    assert not may_match(parse_filter("a = 15 AND b = 'z'"), stats, 10)
    assert may_match(parse_filter("a = 15 OR b = 'z'"), stats, 10)
    assert not may_match(parse_filter("a IS NULL"), stats, 10)
    assert may_match(parse_filter("b IS NULL"), stats, 10)


@pytest.mark.parametrize(
    ("column", "t", "text"),
    [
        ("id", pa.int64(), "id = 99999999999999999999999999"),
        ("id", pa.int64(), "id IN (1, 9223372036854775808)"),
        ("id", pa.int64(), "id >= -9223372036854775809"),
        ("small", pa.uint8(), "small < 256"),
        ("small", pa.uint8(), "small > -1"),
        ("price", pa.decimal128(5, 2), "price = 12345.67"),
    ],
)
def test_a_literal_the_column_type_cannot_hold_is_a_predicate_error(column: str, t: pa.DataType, text: str) -> None:
    with pytest.raises(InvalidPredicateError, match=f"does not fit column '{column}'"):
        to_arrow(parse_filter(text), pa.schema([(column, t)]))


def test_literals_at_the_type_s_bounds_still_filter() -> None:
    table = pa.table({"id": pa.array([-(2**63), 0, 2**63 - 1], pa.int64()), "small": pa.array([0, 7, 255], pa.uint8())})
    for text, expected in [
        ("id = 9223372036854775807", [2**63 - 1]),
        ("id IN (-9223372036854775808, 5)", [-(2**63)]),
        ("small >= 255 OR small = 0", [-(2**63), 2**63 - 1]),
    ]:
        assert table.filter(to_arrow(parse_filter(text), table.schema)).column("id").to_pylist() == expected


def test_a_literal_that_does_not_compare_names_no_value_of_the_table() -> None:
    """A row's value or a file's statistic (of a column the caller may only see masked) never reaches the
    error: only its kind does."""
    from lakehouse.expr import evaluate

    for row, kind in [({"amount": 2000}, "integer"), ({"amount": 1234.5}, "floating-point")]:
        with pytest.raises(InvalidPredicateError) as info:
            evaluate(parse_filter("amount = 'x'"), row)
        assert kind in info.value.message and str(row["amount"]) not in info.value.message
    with pytest.raises(InvalidPredicateError) as info:
        evaluate(parse_filter("ts > 'nope'"), {"ts": dt.datetime(2026, 5, 17, 9, 41, tzinfo=dt.UTC)})
    assert "timestamp" in info.value.message and "2026" not in info.value.message


def test_mistakes_are_one_line_that_quotes_what_was_written(capfd: pytest.CaptureFixture[str]) -> None:
    """``0x10`` read as ``0 AS x10`` and the error quoted that; a byte string made sqlglot print a stray warning
    line before the error."""
    with pytest.raises(InvalidPredicateError, match=r"unsupported filter 'a = 0x10': .*hexadecimal"):
        parse_filter("a = 0x10")
    with pytest.raises(InvalidPredicateError):
        parse_filter("b = E'\\x00'")
    assert capfd.readouterr().err == ""


def test_long_chains_are_flat_and_deep_nesting_is_a_predicate_error() -> None:
    """A chain of thousands of OR terms is one node (every later use of a filter walks it recursively); nesting
    beyond what the parser or MAX_FILTER_DEPTH allows is an InvalidPredicateError, never a RecursionError."""
    from lakehouse.expr import MAX_FILTER_DEPTH, Or, evaluate_table

    chain = parse_filter(" OR ".join(f"a = {i}" for i in range(3000)))
    assert isinstance(chain, Or) and len(chain.items) == 3000
    assert parse_filter("(a = 1 OR (a = 2 OR a = 3)) AND a = 1 AND (a = 2)") == And(
        (
            Or((Compare("a", "=", 1), Compare("a", "=", 2), Compare("a", "=", 3))),
            Compare("a", "=", 1),
            Compare("a", "=", 2),
        )
    )
    data = pa.table({"a": [1, 2999, 3000, None]}, schema=pa.schema([("a", pa.int64())]))
    assert evaluate_table(chain, data.schema, data).to_pylist() == [True, True, False, None]
    assert parse_filter("NOT " * (MAX_FILTER_DEPTH - 1) + "a = 1") is not None
    for deep in (
        "NOT " * MAX_FILTER_DEPTH + "a = 1",
        "(" * 300 + "a = 1" + ")" * 300,
        "NOT (" * 200 + "a=1" + ")" * 200,
    ):
        with pytest.raises(InvalidPredicateError, match="nests too deeply"):
            parse_filter(deep)
