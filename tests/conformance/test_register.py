"""Registering a foreign table that lakehouse cannot (yet) take must leave the catalog as it was: ``table list``,
``health`` and ``table drop`` keep working and a second attempt fails the same way (issue 15: the catalog row was
committed before the refusal). A table it can take must be listed, healthy and droppable."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pytest

from tests.conformance.harness import TABLE, Cli, tree_digest


def _delta_struct(root: str) -> None:
    from deltalake import write_deltalake

    t = pa.table(
        {"id": [1, 2], "st": pa.array([{"a": 1, "b": "x"}, None], pa.struct([("a", pa.int32()), ("b", pa.string())]))}
    )
    write_deltalake(root, t)


def _delta_column_mapping_space(root: str) -> None:
    from deltalake import write_deltalake

    t = pa.table({"id": [1, 2], "amount value": [1.5, None]})
    write_deltalake(root, t, configuration={"delta.columnMapping.mode": "name"})


def _delta_int8(root: str) -> None:
    from deltalake import write_deltalake

    write_deltalake(root, pa.table({"id": pa.array([1, 2], pa.int8())}))


def _iceberg_bucket(root: str) -> None:
    from pyiceberg.catalog.sql import SqlCatalog
    from pyiceberg.partitioning import PartitionField, PartitionSpec
    from pyiceberg.schema import Schema
    from pyiceberg.transforms import BucketTransform
    from pyiceberg.types import LongType, NestedField, StringType

    os.makedirs(root, exist_ok=True)
    catalog = SqlCatalog("other", uri=f"sqlite:///{root}/../other.db", warehouse=f"file://{root}/..")
    catalog.create_namespace("ns")
    schema = Schema(
        NestedField(1, "id", LongType(), required=False), NestedField(2, "name", StringType(), required=False)
    )
    spec = PartitionSpec(PartitionField(source_id=1, field_id=1000, transform=BucketTransform(4), name="id_bucket"))
    table = catalog.create_table("ns.t", schema=schema, partition_spec=spec, location=f"file://{root}")
    table.append(pa.table({"id": pa.array([1, 2, 3], pa.int64()), "name": ["a", "", None]}))
    catalog.engine.dispose()


WRITERS: dict[str, tuple[str, Callable[[str], None]]] = {
    "delta_struct_column": ("delta", _delta_struct),
    "delta_column_mapping_space": ("delta", _delta_column_mapping_space),
    "delta_int8_column": ("delta", _delta_int8),
    "iceberg_bucket_partition": ("iceberg", _iceberg_bucket),
}

XFAIL: dict[str, str] = {}


def _cases() -> list[object]:
    return [
        pytest.param(w, marks=[pytest.mark.xfail(strict=True, reason=XFAIL[w])] if w in XFAIL else [], id=w)
        for w in WRITERS
    ]


@pytest.mark.parametrize("writer", _cases())
def test_register_leaves_the_catalog_usable(writer: str, cli: Cli, tmp_path: Path) -> None:
    fmt, build = WRITERS[writer]
    location = str(tmp_path / "tables" / "t")
    build(location)
    files = tree_digest(location)
    first = cli("table", "register", TABLE, location, "--format", fmt)
    listed = cli("table", "list", "--json")
    assert listed.code == 0, f"table list fails after register ({first.line()}): {listed.line()}"
    health = cli("health", "--json")
    assert health.code == 0, f"health fails after register ({first.line()}): {health.line()}"
    if first.code != 0:
        assert first.code == 1 and first.err.startswith("error: "), f"not a one-line refusal: {first.err[-500:]}"
        assert listed.json() == [], f"a failed register left a catalog entry: {listed.json()}"
        again = cli("table", "register", TABLE, location, "--format", fmt)
        assert again.line() == first.line(), f"a second register fails differently: {again.line()}"
        assert tree_digest(location) == files, "a failed register changed the table's files"
        return
    assert [t["name"] for t in listed.json()] == [TABLE]
    dropped = cli("table", "drop", TABLE)
    assert dropped.code == 0, f"table drop fails: {dropped.line()}"
    assert cli("table", "list", "--json").json() == []
    assert tree_digest(location) == files, "register or drop (without --purge) changed the table's files"
