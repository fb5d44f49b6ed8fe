"""The rewrite path of compaction, Z-order and deduplication (``rewrite_files``) verifies the files it wrote against
the rows it read: a value changed in a file after DuckDB wrote it, before the commit, is caught and named, and
nothing is committed, on both formats, and on Delta tables other writers made."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

import lakehouse.maintenance.compaction as compaction
from lakehouse.config import load_settings
from lakehouse.core import Lakehouse
from lakehouse.errors import ContentMismatchError
from lakehouse.maintenance.compaction import optimize
from lakehouse.maintenance.dedup import dedup
from lakehouse.maintenance.planner import CompactionOptions
from lakehouse.schema import parse_partitioning
from tests.conformance.fingerprint import assert_same_rows
from tests.conftest import EVENTS, events

JOBS = ["compact", "zorder", "dedup"]


def sorted_rows(table: pa.Table) -> list[dict[str, Any]]:
    return table.sort_by([("id", "ascending"), ("ts", "ascending")]).to_pylist()


@pytest.fixture
def lh(tmp_path: Any) -> Iterator[Lakehouse]:
    with Lakehouse(load_settings(config_file=False, warehouse=str(tmp_path / "wh"))) as lh:
        yield lh


def _replay() -> pa.Table:
    """Ids 0..9 again, 30 s later (the same day): dedup by the latest ``ts`` keeps these, so the files it
    rewrites (the first append's) keep rows."""
    first = events(0, 10)
    i = first.schema.get_field_index("ts")
    later = pc.add(first.column(i), pa.scalar(dt.timedelta(seconds=30), pa.duration("us")))
    return first.set_column(i, first.schema.field(i), later.cast(first.schema.field(i).type))


def _build(lh: Lakehouse, fmt: str) -> Any:
    """Six appends over three day partitions; the last replays ids 0..9."""
    table = lh.create_table("v.events", schema=EVENTS, format=fmt, partitioning=parse_partitioning("day(ts)"))
    for b in range(5):
        table.append(events(b * 60, 60))
    table.append(_replay())
    return table


def _run(lh: Lakehouse, job: str) -> None:
    """Run ``job`` for real."""
    if job == "dedup":
        dedup(lh, "v.events", keys=["id"], order="ts", dry_run=False)
    else:
        optimize(lh, "v.events", CompactionOptions(zorder=("id", "amount") if job == "zorder" else ()))


def _change_first_value(path: str, column: int, delta: float | int) -> None:
    """Add ``delta`` to the first row's value of the ``column``-th column of the Parquet file at ``path``."""
    t = pq.read_table(path)
    values = t.column(column).combine_chunks()
    changed = pc.if_else(pa.array([k == 0 for k in range(len(t))]), pc.add(values, delta), values)
    pq.write_table(t.set_column(column, t.schema.field(column), changed), path, compression="zstd")


def _corrupt_writes(monkeypatch: pytest.MonkeyPatch, change: Callable[[str], None]) -> list[str]:
    """From now on, ``change`` the first file holding rows of each rewrite's output as the rewrite lists it, before
    its verification reads it (a table with float columns is written twice: see ``rewrite_files``). Returns the
    files changed so far."""
    listed = compaction.list_files
    corrupted: list[str] = []

    def corrupting(location: str, ctx: Any) -> Any:
        found = listed(location, ctx)
        for f in found:
            local = f.path.removeprefix("file://")
            if local.endswith(".parquet") and f.path not in corrupted and pq.read_metadata(local).num_rows:
                change(local)
                corrupted.append(f.path)
                break
        return found

    monkeypatch.setattr(compaction, "list_files", corrupting)
    return corrupted


@pytest.mark.parametrize("job", JOBS)
def test_a_value_changed_after_the_writer_is_named_and_nothing_is_committed(
    lh: Lakehouse, fmt: str, job: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One value of one file written is changed between the write and the verification (as a faulty writer or
    store would): the verification names the column, the job commits nothing and the table reads as before."""
    table = _build(lh, fmt)
    version = table.snapshot().version
    before = sorted_rows(table.scan())
    corrupted = _corrupt_writes(
        monkeypatch, lambda path: _change_first_value(path, pq.read_schema(path).get_field_index("amount"), 1.0)
    )
    with pytest.raises(ContentMismatchError, match=r"column\(s\) amount differ"):
        _run(lh, job)
    monkeypatch.undo()
    assert corrupted
    fresh = lh.table("v.events")
    assert fresh.snapshot().version == version, "nothing committed"
    assert sorted_rows(fresh.scan()) == before


@pytest.mark.parametrize("writer", ["legacy_no_stats", "int96", "column_mapping_name", "deltars_options"])
def test_a_changed_value_in_a_rewrite_of_a_foreign_delta_table_is_named(
    lh: Lakehouse, writer: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same on Delta tables other writers made (an older writer without statistics, Spark's INT96
    timestamps, column mapping with physical names, delta-rs with its writer options): the ``id`` a file written
    holds, under whatever name the file stores it, is changed before the verification, which names ``id``."""
    from tests.conformance.delta_writers import DELTA_WRITERS

    foreign = DELTA_WRITERS[writer](str(tmp_path / "table"))
    lh.register_table("v.foreign", location=foreign.location, format="delta")
    version = lh.table("v.foreign").snapshot().version
    before = lh.table("v.foreign").scan()

    def change_id(path: str) -> None:
        assert pa.types.is_int64(pq.read_schema(path).field(0).type)  # the id column, first in every writer's
        _change_first_value(path, 0, 1_000_000)

    corrupted = _corrupt_writes(monkeypatch, change_id)
    with pytest.raises(ContentMismatchError, match=r"column\(s\) id differ"):
        optimize(lh, "v.foreign", CompactionOptions(min_input_files=2))
    monkeypatch.undo()
    assert corrupted
    fresh = lh.table("v.foreign")
    assert fresh.snapshot().version == version, "nothing committed"
    assert_same_rows(fresh.scan(), before, "the table is unchanged")
