"""Storage truth after retention: whatever a table's history (appends, optimize, dedup, restore, expire-data and
vacuums in between), ``vacuum --retain 0s --apply`` leaves on storage exactly the data files of the current
version (Delta's log and Iceberg's metadata apart), the storage reconciliation accounts for every byte as the current
version's data or metadata, and that metadata no longer grows with the history. Histories come from a
property-based generator.

A Delta vacuum once left every file of versions an earlier vacuum had expired on disk for ever: Delta's log
keeps listing those versions, and vacuum counted them as needing their files."""

from __future__ import annotations

import datetime as dt
import tempfile
from pathlib import Path

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from lakehouse.config import load_settings
from lakehouse.core import Lakehouse
from lakehouse.maintenance.compaction import optimize
from lakehouse.maintenance.dedup import dedup
from lakehouse.maintenance.planner import CompactionOptions
from lakehouse.maintenance.reconcile import reconcile
from lakehouse.maintenance.retention import expire_data, remove_orphans, vacuum
from lakehouse.schema import parse_partitioning
from tests.conformance.fingerprint import assert_same_rows

SCHEMA = pa.schema([pa.field("id", pa.int64(), nullable=False), ("ts", pa.timestamp("us", tz="UTC"))])
T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
# Delta keeps commit files for delta.logRetentionDuration (30 days by default) after a vacuum made their
# versions unreadable (a lagging writer still reads them); these tables let vacuum trim the log at once
NO_LOG_RETENTION = {"delta.logRetentionDuration": "interval 0 seconds"}
STEPS = st.lists(
    st.sampled_from(["append", "append", "optimize", "dedup", "restore", "expire", "vacuum"]), min_size=3, max_size=9
)


def _data_files_on_storage(location: str) -> set[str]:
    root = Path(location)
    return {
        str(p)
        for p in root.rglob("*.parquet")
        if "_delta_log" not in p.relative_to(root).parts and "metadata" not in p.relative_to(root).parts[:1]
    }


def _run(fmt: str, steps: list[str]) -> None:
    with tempfile.TemporaryDirectory() as root:
        lh = Lakehouse(load_settings(config_file=False, warehouse=f"{root}/wh", catalog_url="sqlite://"))
        try:
            table = lh.create_table(
                "s.t",
                schema=SCHEMA,
                format=fmt,
                partitioning=parse_partitioning("day(ts)"),
                properties=NO_LOG_RETENTION if fmt == "delta" else None,
            )
            next_id = 0
            for i, step in enumerate(steps):
                table = lh.table("s.t")
                if step == "append" or not table.files():
                    rows = [{"id": next_id + k % 3, "ts": T0 + dt.timedelta(days=k % 4 + i)} for k in range(5)]
                    next_id += 2
                    table.append(pa.Table.from_pylist(rows, schema=SCHEMA))
                elif step == "optimize":
                    optimize(lh, "s.t", CompactionOptions(min_input_files=2))
                elif step == "dedup":
                    dedup(lh, "s.t", keys=["id"], dry_run=False)
                elif step == "restore":
                    versions = [s.version for s in table.snapshots()]
                    expired = table.expired.versions if table.expired else frozenset()
                    readable = [v for v in versions[:-1] if v not in expired]
                    if readable:
                        lh.restore("s.t", readable[len(readable) // 2])
                elif step == "expire":
                    expire_data(lh, "s.t", older_than="1d", now=T0 + dt.timedelta(days=3), dry_run=False)
                elif step == "vacuum":
                    vacuum(lh, "s.t", retain="0s", dry_run=False)
            rows_before = lh.table("s.t").scan()
            vacuum(lh, "s.t", retain="0s", dry_run=False)
            table = lh.table("s.t")
            current = table.snapshot().version
            live = {p for p in table.version_paths({current}) if p.endswith(".parquet")}
            assert _data_files_on_storage(table.location) == live, steps
            assert_same_rows(table.scan(), rows_before, f"after vacuum ({steps})")
            _check_reconciliation(lh, steps)
        finally:
            lh.close()


def _check_reconciliation(lh: Lakehouse, steps: list[str]) -> None:
    """Every byte on storage is the current version's data or its metadata, and the metadata is O(1) in the
    history: Delta's log is a checkpoint and the current commit, Iceberg keeps a few metadata files."""
    remove_orphans(lh, "s.t", older_than="0s", dry_run=False)
    rec = reconcile(lh, "s.t", orphan_age="0s")
    table = lh.table("s.t")
    on_disk = [p for p in Path(table.location).rglob("*") if p.is_file()]
    assert rec.on_storage.bytes == sum(p.stat().st_size for p in on_disk), steps
    assert rec.on_storage.files == len(on_disk), steps
    assert rec.classes["current"].bytes == sum(f.size_bytes for f in table.files()), steps
    for kind in ("retained", "expired", "unaccounted"):
        assert rec.classes[kind].files == 0, (kind, rec.as_dict(), steps)
    assert rec.on_storage.bytes == rec.classes["current"].bytes + rec.classes["metadata"].bytes, steps
    if table.format == "delta":
        log = sorted(p.name for p in Path(table.location, "_delta_log").iterdir())
        assert len(log) <= 3, (log, steps)  # the head's commit, a checkpoint at it, _last_checkpoint
    else:
        jsons = [p for p in Path(table.location, "metadata").iterdir() if p.name.endswith(".metadata.json")]
        assert len(jsons) <= 4, (sorted(p.name for p in jsons), steps)


@pytest.mark.parametrize("fmt", ["delta", "iceberg"])
def test_vacuum_leaves_exactly_the_current_versions_files(fmt: str) -> None:
    @settings(
        max_examples=6,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(STEPS)
    def prop(steps: list[str]) -> None:
        _run(fmt, steps)

    prop()


def test_delta_keeps_its_log_for_the_log_retention(tmp_path: Path) -> None:
    """By default (delta.logRetentionDuration, 30 days) vacuum checkpoints but leaves the recent commit files: a
    writer that loaded the table before the vacuum still finds the commits since its version."""
    with Lakehouse(load_settings(config_file=False, warehouse=str(tmp_path / "wh"), catalog_url="sqlite://")) as lh:
        lh.create_table("s.t", schema=SCHEMA, format="delta")
        lagging = lh.table("s.t")  # a writer's view at version 0
        for i in range(3):
            lh.table("s.t").append(pa.Table.from_pylist([{"id": i, "ts": T0}], schema=SCHEMA))
        result = vacuum(lh, "s.t", retain="0s", dry_run=False)
        assert result.metadata_files_deleted == 0 and result.metadata_error is None
        lagging.append(pa.Table.from_pylist([{"id": 9, "ts": T0}], schema=SCHEMA))
        assert sorted(lh.table("s.t").scan().column("id").to_pylist()) == [0, 1, 2, 9]
        # 31 days on (the clock age decisions read, lakehouse.clock): the commits before the oldest version kept
        # are past the log retention and go
        from lakehouse import clock

        with clock.simulated(dt.datetime.now(dt.UTC) + dt.timedelta(days=31)):
            later = vacuum(lh, "s.t", retain="0s", dry_run=False)
        assert later.metadata_files_deleted > 0 and later.metadata_error is None
        assert sorted(lh.table("s.t").scan().column("id").to_pylist()) == [0, 1, 2, 9]


@pytest.mark.parametrize("fmt", ["delta", "iceberg"])
def test_a_second_vacuum_removes_what_versions_expired_earlier_left(fmt: str) -> None:
    """The issue's reproduction: vacuum, optimize, vacuum."""
    _run(fmt, ["append", "append", "vacuum", "optimize"])


def test_reconciliation_of_a_table_delta_rs_wrote(tmp_path: Path) -> None:
    """A table another writer made (delta-rs directly: a checkpoint every 2 commits, an overwrite, a DELETE, a
    foreign leftover file): the classes add up to the listing, and after vacuum and orphans with zero windows
    only the current data and the log remain."""
    from deltalake import DeltaTable, write_deltalake

    root = tmp_path / "foreign"
    data = pa.Table.from_pylist([{"id": i, "ts": T0 + dt.timedelta(hours=i)} for i in range(30)], schema=SCHEMA)
    config = {"delta.checkpointInterval": "2", **NO_LOG_RETENTION}
    write_deltalake(str(root), data.slice(0, 10), configuration=config)
    write_deltalake(str(root), data.slice(10, 10), mode="append")
    write_deltalake(str(root), data.slice(0, 20), mode="overwrite")
    write_deltalake(str(root), data.slice(20, 10), mode="append")
    DeltaTable(str(root)).delete("id < 3")
    (root / "part-leftover-of-a-failed-job.parquet").write_bytes(b"PAR1 not really")
    with Lakehouse(load_settings(config_file=False, warehouse=str(tmp_path / "wh"), catalog_url="sqlite://")) as lh:
        lh.register_table("f.t", location=str(root), format="delta")
        rows = lh.table("f.t").scan()
        rec = reconcile(lh, "f.t", orphan_age="0s")
        on_disk = [p for p in root.rglob("*") if p.is_file()]
        assert rec.on_storage.bytes == sum(p.stat().st_size for p in on_disk)
        assert rec.classes["current"].bytes == sum(f.size_bytes for f in lh.table("f.t").files())
        assert rec.classes["retained"].files > 0, "the overwritten and deleted files of older versions"
        assert rec.unaccounted["removable"].files == 1 and rec.examples["removable"][0].endswith("failed-job.parquet")
        vacuum(lh, "f.t", retain="0s", dry_run=False)
        remove_orphans(lh, "f.t", older_than="0s", dry_run=False)
        after = reconcile(lh, "f.t", orphan_age="0s")
        assert after.on_storage.bytes == after.classes["current"].bytes + after.classes["metadata"].bytes
        assert_same_rows(lh.table("f.t").scan(), rows, "after vacuum and orphans")
        assert len(list((root / "_delta_log").iterdir())) <= 3


@pytest.mark.parametrize("fmt", ["delta", "iceberg"])
def test_tables_nested_inside_the_location_are_never_orphans_registered_or_not(tmp_path: Path, fmt: str) -> None:
    """Another team's tables inside this table's location, never registered here (a Delta table delta-rs wrote,
    an Iceberg table of another catalog), are kept by ``orphans`` and reported as ``kept``; a leftover file of
    the table's own is still removed."""
    from deltalake import DeltaTable, write_deltalake

    rows = pa.Table.from_pylist([{"id": i, "ts": T0} for i in range(3)], schema=SCHEMA)
    with (
        Lakehouse(load_settings(config_file=False, warehouse=f"{tmp_path}/wh", catalog_url="sqlite://")) as lh,
        Lakehouse(load_settings(config_file=False, warehouse=f"{tmp_path}/other", catalog_url="sqlite://")) as other,
    ):
        table = lh.create_table("s.t", schema=SCHEMA, format=fmt)
        table.append(rows)
        inner_delta = f"{table.location}/team/delta"
        write_deltalake(inner_delta, rows)
        write_deltalake(inner_delta, rows, mode="append")
        inner = other.create_table("o.i", schema=SCHEMA, format="iceberg", location=f"{table.location}/team/ice")
        inner.append(rows)
        inner.append(rows)
        data_dir = Path(next(f.path for f in table.files())).parent
        leftover = data_dir / "leftover.parquet"
        leftover.write_bytes(b"not referenced")
        inner_files = {p for p in Path(table.location, "team").rglob("*") if p.is_file()}
        rec = reconcile(lh, "s.t", orphan_age="0s")
        assert rec.unaccounted["removable"].files == 1, rec.as_dict()
        assert rec.unaccounted["kept"].files >= len(inner_files), rec.as_dict()
        result = remove_orphans(lh, "s.t", older_than="0s", dry_run=False)
        assert [f.path for f in result.plan.files] == [str(leftover)], result.plan.files
        assert not leftover.exists()
        assert {p for p in Path(table.location, "team").rglob("*") if p.is_file()} == inner_files
        assert DeltaTable(inner_delta).to_pyarrow_table().num_rows == 6
        assert other.table("o.i").scan().num_rows == 6
        assert lh.table("s.t").scan().num_rows == 3
