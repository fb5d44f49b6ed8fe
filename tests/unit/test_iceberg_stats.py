"""Iceberg file statistics as lakehouse reads them from manifest entries: the conversion bound once per column
(``_bound_readers``) gives what pyiceberg's ``from_bytes`` gives for every primitive type, dates and timestamps
as Python values, and leaves out what cannot be converted."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from pyiceberg.conversions import from_bytes, to_bytes
from pyiceberg.schema import Schema
from pyiceberg.types import (
    BinaryType,
    BooleanType,
    DateType,
    DecimalType,
    DoubleType,
    FloatType,
    IntegerType,
    LongType,
    NestedField,
    StringType,
    TimestampType,
    TimestamptzType,
    TimeType,
)

from lakehouse.tables.iceberg import _bound_readers, _column_stats

COLUMNS: list[tuple[Any, Any]] = [
    (BooleanType(), st.booleans()),
    (IntegerType(), st.integers(-(2**31), 2**31 - 1)),
    (LongType(), st.integers(-(2**63), 2**63 - 1)),
    (FloatType(), st.floats(width=32, allow_nan=False)),
    (DoubleType(), st.floats(allow_nan=False)),
    (StringType(), st.text(max_size=20)),
    (BinaryType(), st.binary(max_size=20)),
    (DecimalType(18, 4), st.decimals(min_value=-(10**13), max_value=10**13, places=4, allow_nan=False)),
    (DateType(), st.integers(-700_000, 2_900_000)),
    (TimeType(), st.integers(0, 86_400_000_000 - 1)),
    (TimestampType(), st.integers(-(2**50), 2**50)),
    (TimestamptzType(), st.integers(-(2**50), 2**50)),
]
SCHEMA = Schema(*[NestedField(i + 1, f"c{i}", t, required=False) for i, (t, _) in enumerate(COLUMNS)])


def _reference(t: Any, b: bytes) -> Any:
    """What the per-file conversion gave before the readers were bound: ``from_bytes``, then dates and
    timestamps as Python values."""
    v = from_bytes(t, b)
    if isinstance(t, TimestamptzType):
        return dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=int(v))
    if isinstance(t, TimestampType):
        return dt.datetime(1970, 1, 1) + dt.timedelta(microseconds=int(v))
    if isinstance(t, DateType):
        return dt.date(1970, 1, 1) + dt.timedelta(days=int(v))
    return v


@settings(max_examples=60, deadline=None)
@given(st.tuples(*[s for _, s in COLUMNS]), st.tuples(*[s for _, s in COLUMNS]), st.data())
def test_bound_readers_convert_as_from_bytes(lows: tuple[Any, ...], highs: tuple[Any, ...], data: Any) -> None:
    present = data.draw(st.lists(st.booleans(), min_size=len(COLUMNS), max_size=len(COLUMNS)))
    lower, upper, nulls = {}, {}, {}
    for i, (t, _) in enumerate(COLUMNS):
        if not present[i]:
            continue
        lo, hi = lows[i], highs[i]
        if isinstance(lo, Decimal):
            lo, hi = lo.quantize(Decimal("0.0001")), hi.quantize(Decimal("0.0001"))
        lower[i + 1], upper[i + 1], nulls[i + 1] = to_bytes(t, lo), to_bytes(t, hi), i
    f = SimpleNamespace(lower_bounds=lower, upper_bounds=upper, null_value_counts=nulls)
    expected = {
        f"c{fid - 1}": (
            _reference(COLUMNS[fid - 1][0], lower[fid]),
            _reference(COLUMNS[fid - 1][0], upper[fid]),
            fid - 1,
        )
        for fid in lower
    }
    assert _column_stats(f, SCHEMA, _bound_readers(SCHEMA)) == expected
    assert _column_stats(f, SCHEMA) == expected


def test_a_long_bound_of_a_promoted_int() -> None:
    """A long column promoted from int keeps 4-byte bounds in older files: read as the int they hold."""
    schema = Schema(NestedField(1, "n", LongType(), required=False))
    f = SimpleNamespace(
        lower_bounds={1: to_bytes(IntegerType(), -5)},
        upper_bounds={1: to_bytes(IntegerType(), 7)},
        null_value_counts={},
    )
    assert _column_stats(f, schema) == {"n": (-5, 7, None)}
