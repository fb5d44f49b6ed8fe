"""Iceberg's bucket and truncate partition transforms on tables lakehouse creates: the partition model, file
partitions, and every rewrite keeping each file's partition (bucket is not order-preserving, so a rewritten
file's partition cannot be inferred from its statistics: it is the partition of the files it replaces)."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from lakehouse.core import Lakehouse
from lakehouse.errors import InvalidSchemaError
from lakehouse.maintenance.compaction import optimize
from lakehouse.maintenance.dedup import dedup
from lakehouse.maintenance.planner import CompactionOptions
from lakehouse.schema import PartitionField, parse_partitioning, parse_schema
from tests.conftest import their_iceberg_table

SCHEMA = parse_schema("id:int64 not null, name:string, amount:float64, day:date")


def _batch(start: int, n: int) -> pa.Table:
    import datetime as dt

    ids = list(range(start, start + n))
    return pa.table(
        {
            "id": pa.array(ids, pa.int64()),
            "name": [None if i % 7 == 0 else f"n{i % 5}{'x' * (i % 3)}" for i in ids],
            "amount": [i / 4 for i in ids],
            "day": [dt.date(2024, 1, 1 + i % 3) for i in ids],
        },
        schema=SCHEMA,
    )


def test_partition_spec_text() -> None:
    fields = parse_partitioning("bucket(16, id), truncate(4, name), day")
    assert fields == (
        PartitionField("id", "bucket", 16),
        PartitionField("name", "truncate", 4),
        PartitionField("day"),
    )
    assert [str(f) for f in fields] == ["bucket(16, id)", "truncate(4, name)", "day"]
    assert [f.name for f in fields] == ["id_bucket", "name_trunc", "day"]
    with pytest.raises(InvalidSchemaError):
        parse_partitioning("bucket(0, id)")


def test_delta_refuses_bucket(lh: Lakehouse) -> None:
    with pytest.raises(InvalidSchemaError, match="bucket"):
        lh.create_table("t.d", schema=SCHEMA, format="delta", partitioning=parse_partitioning("bucket(4, id)"))


# local storage only: the transforms are storage-independent, S3 paths of every rewrite are covered elsewhere,
# and over the S3 server this test took 87 s of CI
@pytest.mark.parametrize("storage", ["local"])
def test_bucket_and_truncate_through_rewrites(lh: Lakehouse) -> None:
    spec = parse_partitioning("bucket(4, id), truncate(2, name), day")
    table = lh.create_table("t.b", schema=SCHEMA, format="iceberg", partitioning=spec)
    for start in (0, 40, 80):
        table.append(_batch(start, 40))
    table.append(_batch(0, 5))  # exact duplicates of ids 0..4
    table = lh.table("t.b")
    assert table.definition.partitioning == spec
    before = table.scan().sort_by("id")
    files = table.files()
    partitions = {tuple(sorted(f.partition.items(), key=lambda kv: kv[0])) for f in files}
    assert all(isinstance(dict(p)["id_bucket"], str) for p in partitions)
    assert {type(dict(p)["day"]).__name__ for p in partitions} == {"date"}  # identity dates as dates

    result = optimize(lh, "t.b", CompactionOptions(min_input_files=2))
    assert result.partitions and result.rows_in == result.rows_out
    after = lh.table("t.b")
    assert after.scan().sort_by("id").equals(before)
    # every rewritten file keeps its partition: no partition appears that did not before, and none is lost
    assert {tuple(sorted(f.partition.items())) for f in after.files()} == partitions

    z = optimize(lh, "t.b", CompactionOptions(min_input_files=1, zorder=("amount",)))
    assert z.rows_in == z.rows_out
    assert lh.table("t.b").scan().sort_by("id").equals(before)

    d = dedup(lh, "t.b", keys=["id"], dry_run=False)
    assert d.rows_removed == 5
    assert lh.table("t.b").scan().num_rows == before.num_rows - 5
    assert lh.query("SELECT count(*) AS n FROM t.b").table.column("n")[0].as_py() == before.num_rows - 5


def test_files_of_an_older_partition_spec_are_compacted_in_it(lh: Lakehouse) -> None:
    """After the partition spec evolved, files written under the older one are compacted in their own spec and
    partition. pyiceberg 0.12 records every added file in the current spec: the commit failed ("list index out
    of range": the older partition tuple is shorter)."""
    table = lh.create_table("t.evolving", schema=SCHEMA, format="iceberg", partitioning=parse_partitioning("day"))
    for start in (0, 30):
        table.append(_batch(start, 30))
    with table._table.update_spec() as spec:  # type: ignore[attr-defined]
        spec.add_identity("name")
    before = table.scan().sort_by("id")
    old = {(tuple(f.partition.items()), spec_id) for f, spec_id in _specs(table)}
    assert len({spec_id for _, spec_id in old}) == 1 and len(table.files()) == 6

    result = optimize(lh, "t.evolving", CompactionOptions(min_input_files=2))
    assert [p.status for p in result.partitions] == ["committed"] * 3 and result.rows_in == result.rows_out
    after = lh.table("t.evolving")
    assert after.scan().sort_by("id").equals(before) and len(after.files()) == 3
    assert {(tuple(f.partition.items()), spec_id) for f, spec_id in _specs(after)} == old, "same specs and partitions"
    assert lh.query("SELECT count(*) AS n FROM t.evolving").table.column("n")[0].as_py() == before.num_rows
    assert after.snapshot().summary["total-records"] == str(before.num_rows)


def _specs(table: object) -> list[tuple[object, int]]:
    """(DataFile, partition spec id) of each live file."""
    by_path = {str(t.file.file_path).removeprefix("file://"): t.file.spec_id for t in table._plan().tasks}  # type: ignore[attr-defined]
    return [(f, by_path[f.path]) for f in table.files()]  # type: ignore[attr-defined]


def test_a_partition_name_two_specs_give_to_different_fields_keeps_their_partitions_apart(
    lh: Lakehouse, tmp_path: Path
) -> None:
    """Another writer dropped ``truncate[4](s)`` named ``s_t`` and then added ``truncate[8](s)`` under the same
    name: files of both specs with the value ``abcd`` are of two partitionings. They were grouped as one partition
    and the job refused ("must name each new file's partition"): the table could not be compacted. Now each
    spec's files are compacted in their own spec and partition, the older one reported under a qualified name."""
    from pyiceberg.partitioning import PartitionField as IcebergField
    from pyiceberg.partitioning import PartitionSpec
    from pyiceberg.schema import Schema
    from pyiceberg.transforms import TruncateTransform
    from pyiceberg.types import LongType, NestedField, StringType

    schema = Schema(NestedField(1, "id", LongType(), required=False), NestedField(2, "s", StringType(), required=False))
    spec = PartitionSpec(IcebergField(source_id=2, field_id=1000, transform=TruncateTransform(4), name="s_t"))
    catalog, theirs = their_iceberg_table(tmp_path / "theirs", schema, spec)
    rows = [{"id": i, "s": "abcdefgh" if i < 4 else "abcd"} for i in range(8)]
    for i in range(4):
        theirs.append(pa.Table.from_pylist(rows[i : i + 1], schema.as_arrow()))
    with theirs.update_spec() as update:
        update.remove_field("s_t")
    with theirs.update_spec() as update:
        update.add_field("s", TruncateTransform(8), "s_t")
    for i in range(4, 8):
        theirs.append(pa.Table.from_pylist(rows[i : i + 1], schema.as_arrow()))
    catalog.engine.dispose()
    lh.register_table("f.renamed", location=str(tmp_path / "theirs" / "t"), format="iceberg")
    table = lh.table("f.renamed")
    assert {tuple(f.partition.items()) for f in table.files()} == {
        (("s_t (truncate[4](s))", "abcd"),),
        (("s_t", "abcd"),),
    }
    before = {(tuple(f.partition.items()), spec_id) for f, spec_id in _specs(table)}

    result = optimize(lh, "f.renamed", CompactionOptions(min_input_files=2))
    assert [p.status for p in result.partitions] == ["committed"] * 2, [p.as_dict() for p in result.partitions]
    after = lh.table("f.renamed")
    assert sorted(after.scan().to_pylist(), key=lambda r: r["id"]) == rows
    assert len(after.files()) == 2
    assert {(tuple(f.partition.items()), spec_id) for f, spec_id in _specs(after)} == before, "same specs, partitions"
