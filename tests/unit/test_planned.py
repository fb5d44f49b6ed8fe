"""The parts of lakehouse.sql.planned that decide what may be read from files directly: partition constants,
the statistics trusted to leave files out, and a file's layout from its footer."""

from __future__ import annotations

import datetime as dt
import decimal
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lakehouse.expr import may_match, parse_filter
from lakehouse.sql.planned import _constant, _Layout, _layouts, _select
from lakehouse.tables.base import DataFile, PlainFiles
from lakehouse.tables.delta import _exact_stats as delta_bounds
from lakehouse.tables.iceberg import _exact_bounds as iceberg_bounds

UTC = dt.UTC


@pytest.mark.parametrize(
    ("value", "t", "sql"),
    [
        ("o'hare", pa.string(), "CAST('o''hare' AS VARCHAR)"),
        (7, pa.int32(), "CAST('7' AS INTEGER)"),
        (True, pa.bool_(), "CAST('true' AS BOOLEAN)"),
        (dt.date(2026, 1, 2), pa.date32(), "CAST('2026-01-02' AS DATE)"),
        (
            dt.datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC),
            pa.timestamp("us", "UTC"),
            "CAST('2026-01-02T03:04:05.000006+00:00' AS TIMESTAMPTZ)",
        ),
        (dt.datetime(2026, 1, 2, 3, 4), pa.timestamp("us"), "CAST('2026-01-02T03:04:00' AS TIMESTAMP)"),
        (decimal.Decimal("-1.25"), pa.decimal128(10, 2), "CAST('-1.25' AS DECIMAL(10,2))"),
        (None, pa.int64(), "CAST(NULL AS BIGINT)"),
    ],
)
def test_partition_constants_are_typed_and_exact(value: object, t: pa.DataType, sql: str) -> None:
    assert _constant(value, t) == sql
    # DuckDB reads the constant back as the value itself, whatever the session's time zone
    con = duckdb.connect()
    con.execute("SET TimeZone = 'America/New_York'")
    if isinstance(value, dt.datetime):  # compared as microseconds since the epoch (of UTC wall time, if naive)
        row = con.execute(f"SELECT epoch_us({sql})").fetchone()
        assert row is not None
        assert row[0] == (value.replace(tzinfo=UTC) - dt.datetime(1970, 1, 1, tzinfo=UTC)) // dt.timedelta(
            microseconds=1
        )
        return
    row = con.execute(f"SELECT {sql}").fetchone()
    assert row is not None
    assert row[0] == value


@pytest.mark.parametrize(
    ("value", "t"),
    [
        ("7", pa.int64()),  # a value not of the column's kind: never guessed
        (1, pa.bool_()),
        (True, pa.int64()),
        (dt.datetime(2026, 1, 2), pa.timestamp("us", "UTC")),  # naive for a zoned column
        (dt.datetime(2026, 1, 2, tzinfo=UTC), pa.timestamp("us")),
        (dt.datetime(2026, 1, 2), pa.date32()),
        (1.5, pa.float64()),
        (b"x", pa.binary()),
    ],
)
def test_partition_constants_refused_where_not_exact(value: object, t: pa.DataType) -> None:
    assert _constant(value, t) is None


DECLARED = pa.schema(
    [
        ("id", pa.int64()),
        ("s", pa.string()),
        ("f", pa.float64()),
        ("d", pa.date32()),
        ("p", pa.string()),
        ("price", pa.decimal128(10, 2)),
        ("at", pa.timestamp("us", "UTC")),
    ]
)
AT = (dt.datetime(2026, 1, 1, tzinfo=UTC), dt.datetime(2026, 1, 2, tzinfo=UTC))


def test_delta_bounds_that_leave_files_out() -> None:
    """The rule Delta's row deletes decide files by, which planned reads take (``PlainFiles.bounds``): partition
    values, integer, date and string bounds (strings shorter than the 32 characters writers truncate at),
    timestamps widened by a millisecond; never floats, decimals, or bounds without a null count."""
    ms = dt.timedelta(milliseconds=1)
    f = DataFile(
        path="x",
        size_bytes=1,
        row_count=10,
        partition={"p": "eu"},
        stats={
            "id": (5, 9, 0),
            "s": ("abc", "abd", 0),
            "f": (1.0, 2.0, 0),  # NaN is within no bounds
            "d": (None, None, None),  # not recorded: unknown, not "all NULL"
            "price": (decimal.Decimal(1), decimal.Decimal(2), 0),
            "at": (*AT, 0),
        },
    )
    stats = delta_bounds(f, DECLARED, {"p"})
    assert stats == {"p": ("eu", "eu", 0), "id": (5, 9, 0), "s": ("abc", "abd", 0), "at": (AT[0] - ms, AT[1] + ms, 0)}
    assert not may_match(parse_filter("id > 9"), stats, 10)
    assert not may_match(parse_filter("s = 'zzz'"), stats, 10) and may_match(parse_filter("s >= 'abd'"), stats, 10)
    assert may_match(parse_filter("d = '2026-01-01'"), stats, 10)
    assert not may_match(parse_filter("p IS NULL"), stats, 10)
    assert not may_match(parse_filter("p = 'us'"), stats, 10)
    truncated = DataFile(path="t", size_bytes=1, row_count=2, stats={"s": ("a" * 32, "b" * 32, 0), "id": (1, 2, None)})
    assert delta_bounds(truncated, DECLARED, set()) == {}  # a 32-character maximum may be a prefix; no null count
    # Spark counts UTF-16 units: 20 emoji are 40, truncated to 16 of them and a tie-breaker, which sorts below them
    emoji = DataFile(path="e", size_bytes=1, row_count=1, stats={"s": ("😀" * 16, "😀" * 16 + "\ufffd", 0)})
    assert "s" not in delta_bounds(emoji, DECLARED, set())
    assert may_match(parse_filter("s = '" + "😀" * 20 + "'"), delta_bounds(emoji, DECLARED, set()), 1)
    null_partition = DataFile(path="y", size_bytes=1, row_count=4, partition={"p": None})
    stats = delta_bounds(null_partition, DECLARED, {"p"})
    assert stats == {"p": (None, None, 4)}
    assert may_match(parse_filter("p IS NULL"), stats, 4)
    assert not may_match(parse_filter("p = 'eu'"), stats, 4)
    all_null = DataFile(path="z", size_bytes=1, row_count=3, stats={"id": (None, None, 3)})
    assert delta_bounds(all_null, DECLARED, set()) == {"id": (None, None, 3)}


def test_iceberg_bounds_that_leave_files_out() -> None:
    """Iceberg's rule: integer, date, string (a truncated bound still bounds) and microsecond timestamp bounds
    with a null count, as recorded; never floats or decimals."""
    stats = {
        "id": (5, 9, 0),
        "s": ("a" * 40, "b" * 40, 0),
        "f": (1.0, 2.0, 0),
        "price": (decimal.Decimal(1), decimal.Decimal(2), 0),
        "at": (*AT, 1),
        "d": (dt.date(2026, 1, 1), dt.date(2026, 1, 1), None),
        "gone": (1, 2, 0),  # not a declared column
    }
    assert iceberg_bounds(stats, DECLARED) == {"id": (5, 9, 0), "s": ("a" * 40, "b" * 40, 0), "at": (*AT, 1)}
    nanos = pa.schema([("at", pa.timestamp("ns", "UTC"))])
    assert iceberg_bounds({"at": (*AT, 0)}, nanos) == {}


def test_layout_of_nested_columns_with_field_ids_and_int96(tmp_path: Path) -> None:
    con = duckdb.connect()
    nested = pa.schema(
        [
            pa.field("a", pa.struct([pa.field("x", pa.int32(), metadata={"PARQUET:field_id": "10"})]),
                     metadata={"PARQUET:field_id": "1"}),
            pa.field("b", pa.list_(pa.field("element", pa.string(), metadata={"PARQUET:field_id": "11"})),
                     metadata={"PARQUET:field_id": "2"}),
            pa.field("c", pa.int64(), metadata={"PARQUET:field_id": "3"}),
        ]
    )  # fmt: skip
    plain = str(tmp_path / "nested.parquet")
    pq.write_table(pa.table({"a": [{"x": 1}], "b": [["s"]], "c": [5]}, schema=nested), plain)
    int96 = str(tmp_path / "int96.parquet")
    stamp = pa.array([dt.datetime(9999, 12, 31)], pa.timestamp("us"))
    pq.write_table(pa.table({"t": stamp}), int96, use_deprecated_int96_timestamps=True)
    layouts = _layouts(con, [plain, int96])
    assert layouts is not None
    _, layout = layouts[plain]
    assert layout.ids == {"a": 1, "b": 2, "c": 3}  # the subtrees of a and b skipped, not taken for columns
    assert layout.types == {"a": "STRUCT(x INTEGER)", "b": "VARCHAR[]", "c": "BIGINT"}
    assert not layout.int96
    _, layout = layouts[int96]
    assert layout.int96 and layout.ids == {"t": None}


def test_columns_are_read_by_name_only_where_exact() -> None:
    con = duckdb.connect()
    declared = pa.schema([("id", pa.int64()), ("extra", pa.int64())])
    delta = PlainFiles([])

    def layout(types: dict[str, str], ids: dict[str, int | None] | None = None) -> _Layout:
        return _Layout(types, ids or dict.fromkeys(types), False)

    # a column added after the file was written reads as NULL of its type
    assert _select(con, layout({"id": "BIGINT"}), delta, declared, {}) == '"id", CAST(NULL AS BIGINT) AS "extra"'
    assert _select(con, layout({"id": "INTEGER", "extra": "BIGINT"}), delta, declared, {}) is None  # never cast
    assert _select(con, layout({"ID": "BIGINT"}), delta, declared, {}) is None  # spelled otherwise
    assert _select(con, _Layout({"id": "BIGINT", "extra": "BIGINT"}, {}, True), delta, declared, {}) is None
    iceberg = PlainFiles([], (), {"id": 1, "extra": 2})
    both = {"id": "BIGINT", "extra": "BIGINT"}
    assert _select(con, layout(both, {"id": 1, "extra": 2}), iceberg, declared, {}) == '"id", "extra"'
    # by id, whatever the file calls the column (a rename since it was written)
    assert (
        _select(con, layout(both, {"id": 2, "extra": 1}), iceberg, declared, {}) == '"extra" AS "id", "id" AS "extra"'
    )
    assert _select(con, layout(both, {"id": 1, "extra": 1}), iceberg, declared, {}) is None  # an id twice
    assert _select(con, layout({"id": "BIGINT"}, {"id": 1}), iceberg, declared, {}) is None  # maybe in metadata
    assert _select(con, layout(both), iceberg, declared, {}) is None  # no field ids, no name mapping
    mapped = PlainFiles([], (), {"id": 1, "extra": 2}, mapped_names={"id": ("id",), "extra": ("old", "extra")})
    assert _select(con, layout({"id": "BIGINT", "old": "BIGINT"}), mapped, declared, {}) == '"id", "old" AS "extra"'
    assert _select(con, layout({"id": "BIGINT", "old": "BIGINT", "extra": "BIGINT"}), mapped, declared, {}) is None
    zoned = pa.schema([("at", pa.timestamp("us", "UTC"))])
    assert _select(con, layout({"at": "TIMESTAMP WITH TIME ZONE"}), delta, zoned, {}) == '"at"'
    assert _select(con, layout({"at": "TIMESTAMP"}), delta, zoned, {}) is None
