"""Incremental readers beside lakehouse's maintenance: a rewrite that keeps the rows (compaction, Z-order, tiering
moves) must be skipped by them, so every row arrives exactly once while lakehouse ingests and compacts.

- Iceberg: Spark Structured Streaming reads the table through the catalog it shares with pyiceberg, with
  ``trigger(availableNow=True)`` runs between lakehouse's appends and rewrites. Spark processes ``append``
  snapshots, skips ``replace`` ones and fails on ``overwrite`` ("Cannot process overwrite snapshot"), which is
  what a rewrite committed as an overwrite did. pyiceberg's incremental append scans read the same increments
  (they skip every snapshot that is not an append, overwrites too).
- Delta: the readers available here without delta-spark's jars: delta-rs's change data feed (``load_cdf``), and
  a reader that follows the log version by version as Spark's Delta streaming source does (files added with
  ``dataChange=true`` are new rows; a removal with ``dataChange=true`` stops it, as it stops Spark without
  ``ignoreDeletes``).
- What every Iceberg snapshot says: compaction, Z-order and tiering moves are ``replace`` snapshots whose summary
  counts exactly the files, records and bytes they swapped; deduplication and row deletes stay ``overwrite`` /
  ``delete``.
"""

from __future__ import annotations

import collections
import json
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lakehouse.config import load_settings
from lakehouse.core import Lakehouse
from lakehouse.maintenance.compaction import optimize
from lakehouse.maintenance.dedup import dedup
from lakehouse.maintenance.planner import CompactionOptions
from lakehouse.maintenance.tiering import tier
from lakehouse.schema import parse_partitioning
from lakehouse.storage import list_files
from tests.conftest import EVENTS, events

COMPACT = CompactionOptions(target_file_size=64 * 1024 * 1024)
ZORDER = CompactionOptions(target_file_size=64 * 1024 * 1024, zorder=("country", "amount"))


def _maintain(lh: Lakehouse, name: str, step: int) -> str:
    """One maintenance job that keeps the rows: compaction, Z-order, or a tiering move (the events are months
    old: the default policy moves them to the cold tier, rewritten under tier-cold/)."""
    if step % 3 == 1:
        done = optimize(lh, name, ZORDER)
        assert done.partitions and all(p.status == "committed" for p in done.partitions), done.as_dict()
        return "zorder"
    if step % 3 == 2:
        moved = tier(lh, name, dry_run=False)
        assert moved.files_rewritten > 0 and not moved.aborted, moved.as_dict()
        return "tier"
    done = optimize(lh, name, COMPACT)
    assert done.partitions and all(p.status == "committed" for p in done.partitions), done.as_dict()
    return "compact"


# ---- Iceberg: Spark Structured Streaming ---------------------------------------------------------------------


@pytest.fixture
def slh(tmp_path: Any) -> Iterator[Lakehouse]:
    spark = {"master": "local[2]", "driver_memory": "1g"}
    with Lakehouse(load_settings(config_file=False, warehouse=str(tmp_path / "wh"), spark=spark)) as lh:
        yield lh


@pytest.mark.spark
@pytest.mark.slow
def test_spark_structured_streaming_reads_every_row_once_across_rewrites(slh: Lakehouse, tmp_path: Any) -> None:
    lh = slh
    table = lh.create_table("s.events", schema=EVENTS, format="iceberg", partitioning=parse_partitioning("day(ts)"))
    spark = lh.spark().session()
    source = f"{lh.ctx.catalog_name}.s.events"
    sink, checkpoint = str(tmp_path / "sink"), str(tmp_path / "checkpoint")

    def stream() -> None:
        """One availableNow run: everything committed since the last run, then stop."""
        query = (
            spark.readStream.format("iceberg")
            .load(source)
            .select("id")
            .writeStream.format("parquet")
            .option("path", sink)
            .option("checkpointLocation", checkpoint)
            .trigger(availableNow=True)
            .start()
        )
        query.awaitTermination(120)
        assert query.exception() is None, query.exception()
        assert not query.isActive

    def arrived() -> list[int]:  # through the sink's own log: exactly what the query committed
        return [r["id"] for r in spark.read.parquet(sink).collect()]

    appended: list[int] = []
    jobs = []
    next_id = 0
    for step in range(4):
        for _ in range(3):
            batch = events(next_id, 40)
            table.append(batch)
            appended.extend(batch.column("id").to_pylist())
            next_id += 40
        stream()  # reads the appends
        jobs.append(_maintain(lh, "s.events", step))
        stream()  # must skip the rewrite: no error, no row twice
        got = collections.Counter(arrived())
        assert got == collections.Counter(appended), f"after {jobs[-1]}: {len(got)} rows, {len(appended)} appended"
    operations = [s.operation for s in lh.table("s.events").snapshots()]
    assert operations.count("append") == 12 and "overwrite" not in operations
    assert set(jobs) == {"compact", "zorder", "tier"} and operations.count("replace") >= 4


def test_pyiceberg_incremental_append_scans_read_every_row_once_across_rewrites(tmp_path: Any) -> None:
    with Lakehouse(load_settings(config_file=False, warehouse=str(tmp_path / "wh"))) as lh:
        table = lh.create_table("p.events", schema=EVENTS, format="iceberg", partitioning=parse_partitioning("day(ts)"))
        ice = table._table  # type: ignore[attr-defined]
        appended: list[int] = []
        read: list[int] = []
        last: int | None = None
        for step in range(3):
            for i in range(3):
                batch = events(step * 1000 + i * 40, 40)
                table.append(batch)
                appended.extend(batch.column("id").to_pylist())
            _maintain(lh, "p.events", step)
            ice.refresh()
            head = ice.current_snapshot().snapshot_id
            scan = ice.incremental_append_scan(
                from_snapshot_id_exclusive=last, to_snapshot_id_inclusive=head, selected_fields=("id",)
            )
            read.extend(scan.to_arrow().column("id").to_pylist())
            last = head
            assert collections.Counter(read) == collections.Counter(appended)


# ---- Delta: change data feed, and a log-following reader -------------------------------------------------------


class _DeltaLogReader:
    """Follows a Delta table's log version by version, as Spark's Delta streaming source does: the rows of files
    added with ``dataChange=true`` are new; files added or removed with ``dataChange=false`` (OPTIMIZE) are
    skipped; a removal with ``dataChange=true`` is a change a streaming reader cannot follow."""

    def __init__(self, lh: Lakehouse, location: str) -> None:
        self.lh = lh
        self.location = location.rstrip("/")
        self.version = -1

    def read(self) -> list[int]:
        logs = sorted(
            int(f.path.rsplit("/", 1)[1].split(".")[0])
            for f in list_files(f"{self.location}/_delta_log", self.lh.ctx, recursive=False)
            if f.path.endswith(".json")
        )
        ids: list[int] = []
        for version in [v for v in logs if v > self.version]:
            with open(f"{self.location}/_delta_log/{version:020d}.json") as fh:
                actions = [json.loads(line) for line in fh if line.strip()]
            for action in actions:
                if "remove" in action and action["remove"].get("dataChange", True):
                    raise AssertionError(f"version {version} removes data ({action['remove']['path']})")
                if "add" in action and action["add"]["dataChange"]:
                    path = f"{self.location}/{action['add']['path']}"
                    ids.extend(pq.read_table(path, columns=["id"]).column("id").to_pylist())
            self.version = version
        return ids


def test_delta_incremental_readers_see_every_row_once_across_rewrites(tmp_path: Any) -> None:
    from deltalake import DeltaTable

    with Lakehouse(load_settings(config_file=False, warehouse=str(tmp_path / "wh"))) as lh:
        table = lh.create_table(
            "d.events",
            schema=EVENTS,
            format="delta",
            partitioning=parse_partitioning("day(ts)"),
            properties={"delta.enableChangeDataFeed": "true"},
        )
        log_reader = _DeltaLogReader(lh, table.location)
        cdf_version = 0  # the table's creation is version 0
        from_log: list[int] = []
        from_cdf: list[int] = []
        appended: list[int] = []
        next_id = 0
        for step in range(4):
            for _ in range(3):
                batch = events(next_id, 40)
                table.append(batch)
                appended.extend(batch.column("id").to_pylist())
                next_id += 40
            _maintain(lh, "d.events", step)
            from_log.extend(log_reader.read())
            delta = DeltaTable(table.location)
            changes = pa.table(delta.load_cdf(starting_version=cdf_version + 1).read_all())
            cdf_version = delta.version()
            assert set(changes.column("_change_type").to_pylist()) == {"insert"}, "a rewrite showed up as a change"
            from_cdf.extend(changes.column("id").to_pylist())
            assert collections.Counter(from_log) == collections.Counter(appended)
            assert collections.Counter(from_cdf) == collections.Counter(appended)
        # the rewrites committed: every action of theirs says dataChange=false
        history = DeltaTable(table.location).history()
        rewrites = [h for h in history if h.get("lakehouse.operation") in ("compact", "zorder", "tier")]
        assert len(rewrites) >= 4
        for h in rewrites:
            with open(f"{table.location}/_delta_log/{h['version']:020d}.json") as fh:
                actions = [json.loads(line) for line in fh if line.strip()]
            changed = [a for a in actions if any(k in a for k in ("add", "remove"))]
            assert changed and all(next(iter(a.values()))["dataChange"] is False for a in changed)


# ---- what Iceberg snapshots say ------------------------------------------------------------------------------


def _summary_matches(table: Any, snap: Any) -> None:
    """The snapshot's summary counts exactly the files, records and bytes its commit swapped."""
    before = {f.path: f for f in table.files(as_of=snap.parent_version)}
    after = {f.path: f for f in table.files(as_of=snap.version)}
    added = [after[p] for p in after.keys() - before.keys()]
    removed = [before[p] for p in before.keys() - after.keys()]
    s = snap.summary
    assert int(s["added-data-files"]) == len(added) and int(s["deleted-data-files"]) == len(removed)
    assert int(s["added-records"]) == sum(f.row_count for f in added)
    assert int(s["deleted-records"]) == sum(f.row_count for f in removed)
    assert int(s["added-files-size"]) == sum(f.size_bytes for f in added)
    assert int(s["removed-files-size"]) == sum(f.size_bytes for f in removed)
    assert int(s["total-data-files"]) == len(after)
    assert int(s["total-records"]) == sum(f.row_count for f in after.values())
    assert int(s["total-files-size"]) == sum(f.size_bytes for f in after.values())


def test_iceberg_snapshots_say_replace_for_rewrites_and_overwrite_for_changes(tmp_path: Any) -> None:
    with Lakehouse(load_settings(config_file=False, warehouse=str(tmp_path / "wh"))) as lh:
        table = lh.create_table("i.events", schema=EVENTS, format="iceberg", partitioning=parse_partitioning("day(ts)"))
        for i in range(3):
            table.append(events(i * 50, 50))

        def new_snapshots(before: int) -> list[Any]:
            return [s for s in lh.table("i.events").snapshots() if s.version > before]

        seen = lh.table("i.events").snapshot().version
        for step in range(3):  # compact, Z-order, tier
            job = _maintain(lh, "i.events", step)
            table.append(events(1000 + step * 50, 50))  # something for the next job to rewrite
            mine = [s for s in new_snapshots(seen) if s.summary.get("lakehouse.operation") == job]
            assert mine and all(s.operation == "replace" for s in mine), (job, [s.operation for s in mine])
            for s in mine:
                _summary_matches(lh.table("i.events"), s)
            seen = lh.table("i.events").snapshot().version
        # deduplication removes rows: an overwrite; so does a row delete (or a delete of whole files)
        table.append(events(0, 10))  # ids that are there already
        seen = lh.table("i.events").snapshot().version
        assert dedup(lh, "i.events", keys=["id"], order="ts", dry_run=False).rows_removed == 10
        ops = {s.operation for s in new_snapshots(seen) if s.summary.get("lakehouse.operation") == "dedup"}
        assert ops == {"overwrite"}, ops
        seen = lh.table("i.events").snapshot().version
        lh.table("i.events").delete_rows("id < 5")
        assert {s.operation for s in new_snapshots(seen)} <= {"overwrite", "delete"}
        assert lh.table("i.events").row_count() == 3 * 50 + 3 * 50 - 5
