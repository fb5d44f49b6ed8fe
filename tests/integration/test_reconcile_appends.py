"""Storage reconciliation of an Iceberg table whose history is appends only: the versions' manifest lists are
named by the table's metadata and every data file of an older version is in the current one, so what every
version names is read only when the listing holds an object nothing read so far accounts for (a stray file, a
manifest a merging append replaced). Either way the reconciliation must be the one that reads every version.
(benchmarks/planning_bench.py measures the effect on 1,000 versions of fast appends.)"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from lakehouse.config import load_settings
from lakehouse.core import Lakehouse
from lakehouse.maintenance.reconcile import _reconcile
from lakehouse.tables.iceberg import IcebergAdapter
from tests.conftest import their_iceberg_table

ROWS = pa.schema([pa.field("id", pa.int64()), pa.field("part", pa.string())])


@pytest.fixture
def lh(tmp_path: Path) -> Iterator[Lakehouse]:
    with Lakehouse(load_settings(config_file=False, warehouse=str(tmp_path / "wh"))) as lh:
        yield lh


@pytest.fixture
def versions_read(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The ``versions`` of every call of the Iceberg adapter's version_paths (None: every version)."""
    calls: list[Any] = []
    real = IcebergAdapter.version_paths

    def counting(self: IcebergAdapter, versions: Any = None) -> set[str]:
        calls.append(None if versions is None else frozenset(versions))
        return real(self, versions)

    monkeypatch.setattr(IcebergAdapter, "version_paths", counting)
    return calls


def _theirs(tmp_path: Path, appends: int, properties: dict[str, str] | None = None) -> tuple[Any, Any, Path]:
    """pyiceberg's own table, ``appends`` appends of two rows (``properties`` set first)."""
    from pyiceberg.schema import Schema
    from pyiceberg.types import LongType, NestedField, StringType

    schema = Schema(NestedField(1, "id", LongType(), required=False), NestedField(2, "part", StringType()))
    catalog, table = their_iceberg_table(tmp_path / "theirs", schema)
    if properties:
        with table.transaction() as tx:
            tx.set_properties(properties)
    for i in range(appends):
        table.append(pa.table({"id": [2 * i, 2 * i + 1], "part": ["a", "b"]}, schema=ROWS))
    return catalog, table, tmp_path / "theirs" / "t"


def _both_ways(lh: Lakehouse, name: str, calls: list[Any]) -> tuple[dict[str, Any], dict[str, Any], list[Any]]:
    """The reconciliation as lakehouse makes it, the one that reads every version, and the versions the first
    asked version_paths for (``calls``: the versions_read fixture)."""
    calls.clear()
    made = _reconcile(lh, name, orphan_age="0s").as_dict()
    asked = list(calls)
    full = _reconcile(lh, name, orphan_age="0s", every_version=True).as_dict()
    return made, full, asked


def _aged(path: Path) -> None:
    old = time.time() - 3600
    os.utime(path, (old, old))


def test_fast_appends_are_reconciled_from_the_current_version_alone(
    tmp_path: Path, lh: Lakehouse, versions_read: list[Any]
) -> None:
    catalog, _theirs_table, location = _theirs(
        tmp_path, appends=6, properties={"write.metadata.previous-versions-max": "2"}
    )
    catalog.engine.dispose()
    lh.register_table("f.t", location=str(location), format="iceberg")
    table = lh.table("f.t")
    head = table.snapshot().version
    assert table.appends_only()
    made = _reconcile(lh, "f.t", orphan_age="0s").as_dict()
    assert versions_read == [frozenset({head})], "only the current version's manifests are read"
    versions_read.clear()
    full = _reconcile(lh, "f.t", orphan_age="0s", every_version=True).as_dict()
    assert versions_read.count(None) == 1, "the reference reads every version"
    assert made == full
    # the six manifest lists and the metadata JSON files the log still names are metadata; the older metadata
    # JSON files (previous-versions-max = 2) are no version's, and unaccounted either way
    assert made["metadata"]["files"] >= 6 + 6 + 3, made
    assert made["unaccounted"]["files"] > 0, made
    assert made["current"]["files"] == 6 and made["retained"]["files"] == 0


@pytest.mark.parametrize(
    "stray",
    [
        lambda loc: loc / "data" / "stray.parquet",  # a data file no commit names
        lambda loc: loc / "metadata" / "stray-m0.avro",  # a manifest no manifest list names
    ],
    ids=["data-file", "manifest"],
)
def test_an_object_nothing_read_accounts_for_makes_every_version_read(
    tmp_path: Path, lh: Lakehouse, versions_read: list[Any], stray: Callable[[Path], Path]
) -> None:
    catalog, _theirs_table, location = _theirs(tmp_path, appends=3)
    catalog.engine.dispose()
    path = stray(location)
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(b"not referenced")
    _aged(path)
    lh.register_table("f.t", location=str(location), format="iceberg")
    made, full, asked = _both_ways(lh, "f.t", versions_read)
    assert made == full
    assert None in asked, "lakehouse's own reconciliation read every version"
    assert made["unaccounted_detail"]["removable"]["files"] == 1
    assert made["unaccounted_examples"]["removable"] == [str(path)]


def test_manifests_a_merging_append_replaced_stay_the_older_versions(
    tmp_path: Path, lh: Lakehouse, versions_read: list[Any]
) -> None:
    """A merging append writes its parent's manifests anew into one: the parent's own manifests are named only
    by the parent's manifest list. They are the older versions' metadata, not orphans."""
    merge = {"commit.manifest-merge.enabled": "true", "commit.manifest.min-count-to-merge": "2"}
    catalog, theirs, location = _theirs(tmp_path, appends=4, properties=merge)
    catalog.engine.dispose()
    current = {m.manifest_path for m in theirs.current_snapshot().manifests(theirs.io)}
    every = {m.manifest_path.removeprefix("file://") for s in theirs.metadata.snapshots for m in s.manifests(theirs.io)}
    assert every - {m.removeprefix("file://") for m in current}, "fixture error: no manifest was merged away"
    lh.register_table("f.t", location=str(location), format="iceberg")
    assert lh.table("f.t").appends_only()
    made, full, asked = _both_ways(lh, "f.t", versions_read)
    assert made == full
    assert None in asked, "the replaced manifests made lakehouse read every version"
    # pyiceberg's merging append leaves the manifest it wrote for the new files before merging it, named by no
    # manifest list: those, and only those, are unaccounted
    lists = {s.manifest_list.removeprefix("file://") for s in theirs.metadata.snapshots}
    on_disk = {str(p) for p in (location / "metadata").glob("*.avro")}
    unnamed = on_disk - lists - every
    assert made["unaccounted"]["files"] == len(unnamed), made["unaccounted_examples"]
    assert set(made["unaccounted_examples"].get("removable", [])) <= unnamed


def test_a_history_with_an_overwrite_or_off_the_current_ancestry_is_not_appends_only(
    tmp_path: Path, lh: Lakehouse, versions_read: list[Any]
) -> None:
    catalog, theirs, location = _theirs(tmp_path, appends=3)
    lh.register_table("f.t", location=str(location), format="iceberg")
    assert lh.table("f.t").appends_only()
    lh.drop_table("f.t")  # the registration keeps the metadata file it was given: registered anew below
    first = theirs.metadata.snapshots[0].snapshot_id
    theirs.manage_snapshots().rollback_to_snapshot(first).commit()  # the two later appends are off the ancestry
    lh.register_table("f.rolled", location=str(location), format="iceberg")
    assert not lh.table("f.rolled").appends_only()
    made, full, asked = _both_ways(lh, "f.rolled", versions_read)
    assert made == full and None in asked
    assert made["retained"]["files"] == 2, made  # the rolled-back appends' data files
    lh.drop_table("f.rolled")
    theirs.overwrite(pa.table({"id": [9], "part": ["c"]}, schema=ROWS))
    catalog.engine.dispose()
    lh.register_table("f.over", location=str(location), format="iceberg")
    assert not lh.table("f.over").appends_only()
    made, full, asked = _both_ways(lh, "f.over", versions_read)
    assert made == full and None in asked
    assert made["retained"]["files"] >= 1, made


def test_a_missing_manifest_list_of_an_older_version_is_reported_as_when_every_version_is_read(
    tmp_path: Path, lh: Lakehouse
) -> None:
    """Nothing left over in the listing, but an older version's manifest list is gone: the reconciliation
    reads every version and says which one cannot be read, as it did before it read them only when needed."""
    from lakehouse.errors import StorageError

    catalog, theirs, location = _theirs(tmp_path, appends=3)
    catalog.engine.dispose()
    oldest = theirs.metadata.snapshots[0].manifest_list.removeprefix("file://")
    os.remove(oldest)
    lh.register_table("f.t", location=str(location), format="iceberg")
    with pytest.raises(StorageError, match="cannot read the manifests"):
        _reconcile(lh, "f.t", orphan_age="0s", every_version=True)
    with pytest.raises(StorageError, match="cannot read the manifests"):
        _reconcile(lh, "f.t", orphan_age="0s")
