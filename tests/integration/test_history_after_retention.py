"""After retention, history and errors tell the truth on both formats: expired versions are listed and marked
(Iceberg forgets expired snapshots, the catalog does not), and a missing version's error names the versions
time travel can still reach, not a range that includes expired ones."""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pytest

from lakehouse.config import load_settings
from lakehouse.core import Lakehouse
from lakehouse.errors import VersionNotFoundError
from lakehouse.maintenance.retention import vacuum
from lakehouse.presentation import version_history
from lakehouse.tables.base import version_ranges


def test_version_ranges() -> None:
    assert version_ranges([4]) == "4"
    assert version_ranges([0, 1, 2, 4, 7, 8, 9]) == "0-2, 4, 7-9"
    assert version_ranges([]) == "none"


@pytest.mark.parametrize("fmt", ["delta", "iceberg"])
def test_history_marks_expired_versions_and_errors_name_the_readable_ones(fmt: str, tmp_path: Path) -> None:
    with Lakehouse(load_settings(config_file=False, warehouse=str(tmp_path / "wh"), catalog_url="sqlite://")) as lh:
        table = lh.create_table("h.t", schema=pa.schema([("id", pa.int64())]), format=fmt)
        for i in range(3):
            table.append(pa.table({"id": [i]}))
        versions = [s.version for s in lh.table("h.t").snapshots()]
        vacuum(lh, "h.t", retain="0s", dry_run=False)
        table = lh.table("h.t")
        history = version_history(table)
        assert [r["version"] for r in history] == versions, "expired versions are still listed"
        assert [r["expired"] for r in history] == [True] * (len(versions) - 1) + [False]
        assert history[-1]["is_current"]
        with pytest.raises(VersionNotFoundError, match=rf"readable versions: {versions[-1]}$"):
            table.snapshot(versions[-1] + 100)
        with pytest.raises(VersionNotFoundError, match="removed by retention"):
            table.snapshot(versions[0])


@pytest.mark.parametrize("fmt", ["delta", "iceberg"])
def test_time_travel_to_an_expired_version_names_the_retention_by_every_handle(fmt: str, tmp_path: Path) -> None:
    """By version, by snapshot id (Iceberg) and by a moment the version was current: the retention message, also
    after the format's own log forgot the version (Delta's trimmed log, Iceberg's expired snapshot log)."""
    with Lakehouse(load_settings(config_file=False, warehouse=str(tmp_path / "wh"), catalog_url="sqlite://")) as lh:
        props = {"delta.logRetentionDuration": "interval 0 seconds"} if fmt == "delta" else None  # trim at once
        table = lh.create_table("h.t", schema=pa.schema([("id", pa.int64())]), format=fmt, properties=props)
        for i in range(3):
            table.append(pa.table({"id": [i]}))
        snaps = lh.table("h.t").snapshots()
        old = snaps[1]

        def sizes() -> dict[str, int]:
            return {str(p): p.stat().st_size for p in (tmp_path / "wh").rglob("*") if p.is_file()}

        before = sizes()
        result = vacuum(lh, "h.t", retain="0s", dry_run=False)
        assert result.metadata_files_deleted > 0 and result.metadata_error is None
        gone = {p: n for p, n in before.items() if p not in sizes()}
        # what went, in bytes, is what the result says: data files and metadata files apart (the metadata JSON
        # files were left out, most of what an Iceberg vacuum frees)
        assert result.bytes_deleted + result.metadata_bytes_deleted == sum(gone.values()), (result.as_dict(), gone)
        assert result.metadata_bytes_deleted > 0
        table = lh.table("h.t")
        assert old.version not in {s.version for s in table.snapshots()}, "the format's log no longer lists it"
        with pytest.raises(VersionNotFoundError, match=f"version {old.version} of table h.t was removed by retention"):
            table.snapshot(old.version)
        with pytest.raises(VersionNotFoundError, match=f"version {old.version}\\)? of table h.t was removed"):
            table.snapshot(old.timestamp)
        if old.snapshot_id is not None:
            with pytest.raises(VersionNotFoundError, match=f"snapshot {old.snapshot_id} \\(version {old.version}\\)"):
                table.snapshot(old.snapshot_id)
        assert sorted(table.scan().column("id").to_pylist()) == [0, 1, 2]


@pytest.mark.parametrize("fmt", ["delta", "iceberg"])
def test_after_a_purge_time_travel_names_the_retention(fmt: str, tmp_path: Path) -> None:
    """A purge (seal, zero-retention vacuum, the old log dropped) leaves the same message as a vacuum, by version
    and by time (Delta's answer by time used to be "no version at or before ...")."""
    from lakehouse.governance.ops import purge_history

    with Lakehouse(load_settings(config_file=False, warehouse=str(tmp_path / "wh"), catalog_url="sqlite://")) as lh:
        lh.create_table("h.t", schema=pa.schema([("id", pa.int64())]), format=fmt)
        for i in range(3):
            lh.table("h.t").append(pa.table({"id": [i]}))
        old = lh.table("h.t").snapshots()[1]
        purge_history(lh, "h.t")
        for handle in (old.version, old.timestamp):
            with pytest.raises(
                VersionNotFoundError, match=f"version {old.version} of table h.t was removed by retention"
            ):
                lh.table("h.t").snapshot(handle)


def test_delta_commits_without_commit_info_keep_their_numbers_and_times(tmp_path: Path) -> None:
    """The Delta protocol makes ``commitInfo`` optional (older and minimal writers leave it out): such a commit is
    still a version, its time its file's modification time. delta-rs's history skips it and numbers the versions
    before it one too high: this table was listed as versions 3 and 4 only (3 with version 0's time), and time
    travel to version 2 was refused. A vacuum with a window keeps every version inside it readable."""
    import time

    from tests.conformance.delta_log import DeltaLogWriter

    root = tmp_path / "foreign"
    w = DeltaLogWriter(str(root))
    now_ms = int(time.time() * 1000)
    w.clock_ms = now_ms - 3 * 86_400_000  # versions 0 and 1: three days old
    schema = pa.schema([("id", pa.int64())])
    w.commit([w.protocol(1, 2), w.metadata(schema)], operation="CREATE TABLE")
    first = w.add(w.write_parquet(pa.table({"id": [1, 2]}, schema=schema)))
    w.commit([first], commit_info=False)
    w.clock_ms = now_ms - 3_600_000  # versions 2-4: an hour old
    w.commit([w.add(w.write_parquet(pa.table({"id": [3]}, schema=schema)))], commit_info=False)
    w.commit([w.remove(first)], commit_info=False)
    w.commit([w.add(w.write_parquet(pa.table({"id": [4]}, schema=schema)))])
    mtimes = {v: os.path.getmtime(root / "_delta_log" / f"{v:020d}.json") for v in range(5)}

    with Lakehouse(load_settings(config_file=False, warehouse=str(tmp_path / "wh"), catalog_url="sqlite://")) as lh:
        lh.register_table("h.foreign", location=str(root))
        snaps = lh.table("h.foreign").snapshots()
        assert [s.version for s in snaps] == [0, 1, 2, 3, 4]
        for s in snaps:
            assert s.timestamp.timestamp() == pytest.approx(mtimes[s.version], abs=0.002), s.version
        assert [s.operation for s in snaps] == ["create-table", "", "", "", "write"]
        assert lh.table("h.foreign").snapshot().version == 4

        vacuum(lh, "h.foreign", retain="1d", dry_run=False)
        table = lh.table("h.foreign")
        expired = table.expired.versions if table.expired else frozenset()
        assert not expired & {2, 3, 4}, "a version inside the window was expired"
        assert sorted(table.scan(as_of=2)["id"].to_pylist()) == [1, 2, 3]  # its files are still there
        assert sorted(table.scan()["id"].to_pylist()) == [3, 4]


def test_a_moment_at_a_snapshot_another_writer_expired_is_not_answered_with_an_older_one(tmp_path: Path) -> None:
    """pyiceberg's expiry of a middle snapshot keeps the snapshot log's entries around it, so a moment when the
    expired snapshot was current resolved to the one before it: its rows (and a restore to that moment would have
    gone there). The gap is seen from the sequence numbers: such a moment is refused, a version still works."""
    import datetime as dt
    import time

    from pyiceberg.schema import Schema
    from pyiceberg.types import LongType, NestedField

    from tests.conftest import their_iceberg_table

    catalog, theirs = their_iceberg_table(tmp_path / "theirs", Schema(NestedField(1, "id", LongType(), required=False)))
    moments = []
    for i in range(3):
        theirs.append(pa.table({"id": pa.array([i], pa.int64())}))
        moments.append(dt.datetime.fromtimestamp(theirs.current_snapshot().timestamp_ms / 1000, dt.UTC))
        time.sleep(0.02)
    middle = theirs.metadata.snapshots[1].snapshot_id
    between = moments[1] + (moments[2] - moments[1]) / 2  # the middle snapshot was current then
    with Lakehouse(load_settings(config_file=False, warehouse=str(tmp_path / "wh"))) as lh:
        lh.register_table("f.kept", location=str(tmp_path / "theirs" / "t"), format="iceberg")
        assert lh.table("f.kept").scan(as_of=between).num_rows == 2, "before any expiry: the middle snapshot"
        lh.drop_table("f.kept")
        theirs.maintenance.expire_snapshots().by_id(middle).commit()
        catalog.engine.dispose()
        lh.register_table("f.gap", location=str(tmp_path / "theirs" / "t"), format="iceberg")
        table = lh.table("f.gap")
        with pytest.raises(VersionNotFoundError, match="no longer retained"):
            table.scan(as_of=between)
        with pytest.raises(VersionNotFoundError, match="no longer retained"):
            lh.query("SELECT count(*) FROM f.gap", as_of={"f.gap": between})
        assert table.scan(as_of=moments[2]).num_rows == 3
        assert table.scan(as_of=table.snapshots()[0].version).num_rows == 1


def test_a_restore_to_a_version_another_writer_vacuumed_is_refused_before_anything(tmp_path: Path) -> None:
    """delta-rs's vacuum removed an old version's files: restore's dry run promised the old rows, the restore
    then failed in delta-rs with a storage error (the API: 502). Both now refuse up front: the version is gone."""
    from deltalake import DeltaTable, write_deltalake

    path = str(tmp_path / "theirs")
    write_deltalake(path, pa.table({"id": pa.array([1, 2], pa.int64())}))
    write_deltalake(path, pa.table({"id": pa.array([3], pa.int64())}), mode="append")
    write_deltalake(path, pa.table({"id": pa.array([10], pa.int64())}), mode="overwrite")
    DeltaTable(path).vacuum(retention_hours=0, enforce_retention_duration=False, dry_run=False)
    with Lakehouse(load_settings(config_file=False, warehouse=str(tmp_path / "wh"))) as lh:
        lh.register_table("f.gone", location=path, format="delta")
        with pytest.raises(VersionNotFoundError, match="cannot be restored: 2 data file"):
            lh.restore("f.gone", 1)
        assert lh.table("f.gone").scan().column("id").to_pylist() == [10]
        assert [j.kind for j in lh.jobs("f.gone")] == [], "refused before a job was recorded"
        lh.restore("f.gone", 2)  # its file is still there (the vacuum commits came after it)
        assert lh.table("f.gone").scan().column("id").to_pylist() == [10]


def test_delta_time_travel_reads_a_column_renamed_under_column_mapping_by_its_physical_name(tmp_path: Path) -> None:
    """A Delta table with column mapping (as Spark writes it) renamed ``amount`` to ``amount_eur``: version 0 read
    the renamed column as NULL (matched by name). It is matched by its physical name now, as Iceberg's by id."""
    import json
    import uuid

    from tests.conformance.delta_log import DeltaLogWriter, mapped_schema_json, to_physical

    root = str(tmp_path / "theirs")
    w = DeltaLogWriter(root)
    logical = pa.table({"id": pa.array([1, 2], pa.int64()), "amount": pa.array([100, 200], pa.int64())})
    schema_json, physical, max_id = mapped_schema_json(logical.schema, "name")
    config = {"delta.columnMapping.mode": "name", "delta.columnMapping.maxColumnId": str(max_id)}
    table_id = str(uuid.uuid4())
    rel = w.write_parquet(to_physical(logical, physical))
    meta = w.metadata(logical.schema, configuration=config, schema_json=schema_json, table_id=table_id)
    w.commit([w.protocol(2, 5), meta, w.add(rel)])
    renamed = json.loads(schema_json)
    renamed["fields"][1]["name"] = "amount_eur"
    renamed_schema = pa.schema([("id", pa.int64()), ("amount_eur", pa.int64())])
    w.commit(
        [w.metadata(renamed_schema, configuration=config, schema_json=json.dumps(renamed), table_id=table_id)],
        operation="RENAME COLUMN",
    )
    with Lakehouse(load_settings(config_file=False, warehouse=str(tmp_path / "wh"))) as lh:
        lh.register_table("f.mapped", location=root, format="delta")
        sql = "SELECT id, amount_eur FROM f.mapped ORDER BY id"
        expected = [{"id": 1, "amount_eur": 100}, {"id": 2, "amount_eur": 200}]
        assert lh.query(sql).table.to_pylist() == expected
        assert lh.query(sql, as_of={"f.mapped": 0}).table.to_pylist() == expected
        assert lh.table("f.mapped").scan(as_of=0).sort_by("id").to_pylist() == expected
