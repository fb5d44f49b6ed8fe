"""Schema specs, partition specs, table names, and conforming data to a schema."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest

from lakehouse.errors import InvalidInputError, InvalidSchemaError, InvalidTableNameError, SchemaMismatchError
from lakehouse.schema import PartitionField, conform, parse_partitioning, parse_schema, validate_partitioning
from lakehouse.tables.base import TableName, parse_as_of


def test_parse_schema() -> None:
    s = parse_schema("id:int64 not null, ts:timestamp, price:decimal(10, 2), ok:bool, d:date, raw:binary")
    assert s.field("id").nullable is False and s.field("ts").type == pa.timestamp("us", tz="UTC")
    assert s.field("price").type == pa.decimal128(10, 2)
    for bad, msg in [
        ("id", "no type"),
        ("id:int64, id:string", "twice"),
        ("`a\tb`:int64", "invalid column"),
        ("``:int64", "invalid column"),
        ("x:decimal(77,2)", "out of range"),
        ("x:decimal(10,11)", "out of range"),
        ("x:struct<a: int64", "expected"),
        ("x:geometry", "unknown type"),
        ("", "no columns"),
    ]:
        with pytest.raises(InvalidSchemaError, match=msg):
            parse_schema(bad)


def test_parse_and_validate_partitioning() -> None:
    schema = parse_schema("ts:timestamp, d:date, c:string, f:float64")
    assert parse_partitioning("hour(ts), month(d), c") == (
        PartitionField("ts", "hour"),
        PartitionField("d", "month"),
        PartitionField("c"),
    )
    validate_partitioning(schema, parse_partitioning("hour(ts), month(d), c"))
    for spec, msg in [
        ("day(c)", "timestamp or date"),
        ("hour(d)", "needs a timestamp"),
        ("f", "cannot partition"),
        ("x", "not in the schema"),
        ("c, c", "twice"),
    ]:
        with pytest.raises(InvalidSchemaError, match=msg):
            validate_partitioning(schema, parse_partitioning(spec))
    with pytest.raises(InvalidSchemaError, match="unknown partition transform"):
        parse_partitioning("squash(c)")
    with pytest.raises(InvalidSchemaError, match="width of bucket"):
        parse_partitioning("bucket(c)")


def test_table_names() -> None:
    assert str(TableName.parse(" Sales.Orders ")) == "sales.orders"
    glue = TableName.parse("Glue.Sales.Orders")
    assert (glue.catalog, glue.namespace, glue.table, str(glue)) == ("glue", "sales", "orders", "glue.sales.orders")
    assert glue.external and not TableName.parse("sales.orders").external
    assert glue.qualified_namespace == "glue.sales"
    assert glue != TableName.parse("sales.orders")  # the same namespace.table in two catalogs: two tables
    assert sorted([glue, TableName.parse("sales.orders")])[0] == TableName.parse("sales.orders")
    bad_names = ["orders", "a.b.c.d", "a.", ".b", "a b.c", "a.b-c", "a." + "x" * 64, "ä.b", "a..c", "x" * 33 + ".b.c"]
    for bad in bad_names:
        with pytest.raises(InvalidTableNameError):
            TableName.parse(bad)


def test_parse_as_of() -> None:
    assert parse_as_of("12") == 12
    assert parse_as_of("2026-01-01") == dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    assert parse_as_of("2026-01-01T10:00:00Z") == dt.datetime(2026, 1, 1, 10, tzinfo=dt.UTC)
    with pytest.raises(InvalidInputError):
        parse_as_of("last week")


def test_conform_casts_losslessly_or_refuses() -> None:
    schema = parse_schema("id:int32 not null, ts:timestamp, name:string")
    ok = conform(pa.table({"name": ["a"], "id": pa.array([1], pa.int64())}), schema)
    assert ok.schema.equals(schema) and ok["ts"].null_count == 1
    naive_ms = pa.table({"id": [1], "ts": pa.array([dt.datetime(2026, 1, 1)], pa.timestamp("ms"))})
    with pytest.raises(SchemaMismatchError, match="'ts' is timestamp_ntz"):
        conform(naive_ms, schema)
    with pytest.raises(SchemaMismatchError, match="cannot be cast"):
        conform(pa.table({"id": pa.array([2**40], pa.int64())}), schema)
    with pytest.raises(SchemaMismatchError, match=r"unknown column.*required column 'id'"):
        conform(pa.table({"x": [1]}), schema)


def test_key_columns_are_named_once_and_exist() -> None:
    from lakehouse.errors import InvalidSchemaError
    from lakehouse.schema import validate_keys

    schema = pa.schema([("id", pa.int64()), ("region", pa.string())])
    validate_keys(schema, ["id", "region"])
    with pytest.raises(InvalidSchemaError, match="id given more than once"):
        validate_keys(schema, ["id", "region", "id"])
    with pytest.raises(InvalidSchemaError, match="'nope' is not in the schema"):
        validate_keys(schema, ["nope"])
