"""The type-string model: every Arrow type a foreign Delta or Iceberg table can have round-trips through its text
form, column and field names of any spelling are quoted, and ``duck_type`` names DuckDB's exact type."""

from __future__ import annotations

from typing import Any

import duckdb
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lakehouse.errors import InvalidSchemaError
from lakehouse.schema import (
    PartitionField,
    format_schema,
    format_type,
    parse_partitioning,
    parse_schema,
    parse_type,
    quote_name,
    schema_from_dict,
    schema_to_dict,
)
from lakehouse.sql import duck_type

UNITS = ("s", "ms", "us", "ns")

PRIMITIVES: list[pa.DataType] = [
    pa.bool_(),
    *(pa.int8(), pa.int16(), pa.int32(), pa.int64()),
    *(pa.uint8(), pa.uint16(), pa.uint32(), pa.uint64()),
    *(pa.float16(), pa.float32(), pa.float64()),
    *(pa.decimal128(p, s) for p, s in [(1, 0), (9, 2), (18, 4), (19, 0), (38, 38), (38, 9)]),
    *(pa.decimal256(p, s) for p, s in [(39, 2), (76, 10), (10, 2)]),
    pa.decimal32(9, 3),
    pa.decimal64(18, 0),
    *(pa.string(), pa.large_string(), pa.string_view()),
    *(pa.binary(), pa.large_binary(), pa.binary_view(), pa.binary(16)),
    *(pa.date32(), pa.date64()),
    *(pa.time32("s"), pa.time32("ms"), pa.time64("us"), pa.time64("ns")),
    *(pa.timestamp(u) for u in UNITS),
    *(pa.timestamp(u, tz="UTC") for u in UNITS),
    pa.timestamp("us", tz="Europe/Paris"),
    pa.timestamp("ms", tz="+01:00"),
    *(pa.duration(u) for u in UNITS),
]

# names a foreign table can have: spaces, dots, unicode, quotes of every kind, leading digits, keywords
NAMES = ["id", "first name", "a.b", "ü", "日本", "1st", 'q"uote', "it's", "back`tick", "not", "null", "x:y", "a,b"]
NAMES += ["<", "struct", "`", "``", " lead", "trail ", "a  b", "[x]", "(p)"]

names = st.one_of(st.sampled_from(NAMES), st.text(st.characters(min_codepoint=32, max_codepoint=0x2FFF), min_size=1))
names = names.filter(lambda n: bool(n.strip()) and "\x7f" not in n)


def _primitive(i: int) -> pa.DataType:
    return PRIMITIVES[i]


def _types() -> st.SearchStrategy[pa.DataType]:
    """Nested types of any depth (no empty structs: Parquet cannot hold them, and DuckDB has none)."""

    def nested(children: st.SearchStrategy[pa.DataType]) -> st.SearchStrategy[pa.DataType]:
        field = st.builds(lambda n, t, null: pa.field(n, t, nullable=null), names, children, st.booleans())
        item = st.builds(lambda t, null: pa.field("item", t, nullable=null), children, st.booleans())
        structs = st.lists(field, min_size=1, max_size=4, unique_by=lambda f: f.name).map(pa.struct)
        keys = st.sampled_from([pa.string(), pa.int32(), pa.int64(), pa.date32(), pa.large_string()])
        return st.one_of(
            structs,
            item.map(pa.list_),
            item.map(pa.large_list),
            st.builds(pa.list_, item, st.integers(1, 5)),
            st.builds(lambda k, v, s: pa.map_(k, v, keys_sorted=s), keys, item, st.booleans()),
        )

    leaves = st.integers(0, len(PRIMITIVES) - 1).map(_primitive)
    return st.recursive(leaves, nested, max_leaves=12)


TYPES = _types()


@pytest.mark.parametrize("t", PRIMITIVES, ids=str)
def test_every_primitive_round_trips(t: pa.DataType) -> None:
    text = format_type(t)
    assert parse_type(text).equals(t), text
    assert format_type(parse_type(text)) == text


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(TYPES)
def test_nested_types_round_trip(t: pa.DataType) -> None:
    """Arrow -> text -> Arrow is lossless (list item and map entry names aside, which Arrow's equality ignores
    too), and the text of a type is canonical: text -> Arrow -> text gives it back."""
    text = format_type(t)
    back = parse_type(text)
    assert back.equals(t), (text, back, t)
    assert format_type(back) == text


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(names, TYPES, st.booleans()), min_size=1, max_size=5, unique_by=lambda x: x[0].lower()))
def test_schemas_with_any_names_round_trip(columns: list[tuple[str, pa.DataType, bool]]) -> None:
    schema = pa.schema([pa.field(n, t, nullable=null) for n, t, null in columns])
    spec = format_schema(schema)
    assert parse_schema(spec).equals(schema), spec
    assert schema_from_dict(schema_to_dict(schema)).equals(schema)  # what the catalog stores


@given(names)
def test_names_quote_and_read_back(name: str) -> None:
    quoted = quote_name(name)
    assert parse_schema(f"{quoted}:int64").names == [name]
    assert parse_type(f"struct<{quoted}: int64>").field(0).name == name
    for pf in (PartitionField(name), PartitionField(name, "day")):
        assert parse_partitioning(str(pf)) == (pf,)


def test_spellings_accepted_on_input() -> None:
    """Aliases and Arrow's own spellings (an older release stored ``str(type)`` for types it had no name for)."""
    cases = {
        "int": pa.int64(),
        "LONG": pa.int64(),
        "double": pa.float64(),
        "timestamp[ns, tz=UTC]": pa.timestamp("ns", tz="UTC"),
        "timestamp[ms]": pa.timestamp("ms"),
        "timestamp(ns)": pa.timestamp("ns", tz="UTC"),
        "timestamp_ntz(ms)": pa.timestamp("ms"),
        "time64[us]": pa.time64("us"),
        "time32[ms]": pa.time32("ms"),
        "duration[s]": pa.duration("s"),
        "date32[day]": pa.date32(),
        "decimal128(38, 4)": pa.decimal128(38, 4),
        "decimal(40,2)": pa.decimal256(40, 2),
        "fixed_size_binary[16]": pa.binary(16),
        "struct<a: int32, b: list<element: string>>": pa.struct([("a", pa.int32()), ("b", pa.list_(pa.string()))]),
        "fixed_size_list<item: int32>[3]": pa.list_(pa.int32(), 3),
        "map<string, int64>": pa.map_(pa.string(), pa.int64()),
        "struct<a: int32 not null>": pa.struct([pa.field("a", pa.int32(), nullable=False)]),
        "struct<>": pa.struct([]),
    }
    for text, t in cases.items():
        assert parse_type(text).equals(t), text


@pytest.mark.parametrize(
    "t",
    [pa.null(), pa.dictionary(pa.int32(), pa.string()), pa.month_day_nano_interval(), pa.uuid()],
    ids=str,
)
def test_unsupported_types_are_refused_by_name(t: pa.DataType) -> None:
    with pytest.raises(InvalidSchemaError, match="not supported"):
        format_type(t)
    with pytest.raises(InvalidSchemaError, match="column 'odd'"):
        schema_to_dict(pa.schema([pa.field("odd", t)]))


def _canonical(t: pa.DataType) -> pa.DataType:
    """What DuckDB's type for ``t`` reads back as in Arrow: ``t`` itself, or the documented equivalent."""
    if pa.types.is_float16(t):
        return pa.float32()
    if pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return pa.string()
    if pa.types.is_large_binary(t) or pa.types.is_binary_view(t) or pa.types.is_fixed_size_binary(t):
        return pa.binary()
    if pa.types.is_date64(t):
        return pa.date32()
    if pa.types.is_time32(t):
        return pa.time64("us")
    if pa.types.is_timestamp(t) and t.tz:
        return pa.timestamp("us", tz="Etc/UTC")
    if pa.types.is_duration(t):
        return pa.month_day_nano_interval()
    if pa.types.is_decimal(t):
        return pa.decimal128(t.precision, t.scale) if t.precision <= 38 else pa.string()
    if pa.types.is_struct(t):
        return pa.struct([t.field(i).with_type(_canonical(t.field(i).type)) for i in range(t.num_fields)])
    if pa.types.is_map(t):
        return pa.map_(_canonical(t.key_type), _canonical(t.item_type))
    if pa.types.is_fixed_size_list(t):
        return pa.list_(_canonical(t.value_type), t.list_size)
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return pa.list_(_canonical(t.value_type))
    return t


def _loose(t: pa.DataType) -> Any:
    """A comparable form ignoring nullability (DuckDB's columns are all nullable)."""
    if pa.types.is_struct(t):
        return ("struct", [(t.field(i).name, _loose(t.field(i).type)) for i in range(t.num_fields)])
    if pa.types.is_map(t):
        return ("map", _loose(t.key_type), _loose(t.item_type))
    if pa.types.is_fixed_size_list(t):
        return ("fixed", t.list_size, _loose(t.value_type))
    if pa.types.is_list(t):
        return ("list", _loose(t.value_type))
    return str(t)


@pytest.fixture(scope="module")
def con() -> Any:
    c = duckdb.connect()
    yield c
    c.close()


@pytest.mark.parametrize("t", PRIMITIVES, ids=str)
def test_duck_type_is_exact(con: Any, t: pa.DataType) -> None:
    got = con.execute(f"SELECT CAST(NULL AS {duck_type(t)}) AS c").to_arrow_table().schema.field(0).type
    assert _loose(got) == _loose(_canonical(t)), (duck_type(t), got)


@settings(max_examples=150, deadline=None)
@given(TYPES)
def test_duck_type_of_nested_types_is_exact(t: pa.DataType) -> None:
    c = duckdb.connect()
    try:
        got = c.execute(f"SELECT CAST(NULL AS {duck_type(t)}) AS c").to_arrow_table().schema.field(0).type
    finally:
        c.close()
    assert _loose(got) == _loose(_canonical(t)), (duck_type(t), got)


def test_duck_type_names() -> None:
    assert duck_type(pa.uint8()) == "UTINYINT"
    assert duck_type(pa.decimal128(38, 9)) == "DECIMAL(38,9)"
    assert duck_type(pa.timestamp("ns")) == "TIMESTAMP_NS"
    assert duck_type(pa.timestamp("s")) == "TIMESTAMP_S"
    assert duck_type(pa.timestamp("ms", tz="UTC")) == "TIMESTAMPTZ"
    assert duck_type(pa.binary(4)) == "BLOB"
    s = pa.struct([("first name", pa.list_(pa.int32())), ('q"', pa.map_(pa.string(), pa.float64()))])
    assert duck_type(s) == 'STRUCT("first name" INTEGER[], "q""" MAP(VARCHAR, DOUBLE))'
