"""Vacuum, orphan files and data expiry on both formats, local and S3: what stays readable, what is really
deleted from storage (listed directly), and what the job history records."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from lakehouse.core import Lakehouse
from lakehouse.errors import InvalidInputError, VersionNotFoundError
from lakehouse.maintenance.compaction import optimize
from lakehouse.maintenance.planner import CompactionOptions
from lakehouse.maintenance.retention import expire_data, plan_orphans, remove_orphans, vacuum
from lakehouse.schema import parse_partitioning
from lakehouse.storage import list_files, split_location
from tests.conftest import EVENTS, events, sorted_rows

COMPACT = CompactionOptions(target_file_size=64 * 1024 * 1024)


def stored_paths(lh: Lakehouse, location: str, request: pytest.FixtureRequest) -> set[str]:
    """Every object under ``location``, listed straight from the store (boto3 for S3, os for local)."""
    if location.startswith("s3://"):
        endpoint = request.getfixturevalue("s3_endpoint")
        bucket, _, prefix = location[len("s3://") :].partition("/")
        client = endpoint.client()
        out = set()
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix + "/"):
            out |= {f"s3://{bucket}/{o['Key']}" for o in page.get("Contents", [])}
        return out
    import os

    return {os.path.join(d, f) for d, _, files in os.walk(location) for f in files}


def _build(lh: Lakehouse, fmt: str) -> dict[str, Any]:
    """Three appends, a compaction (C1), a pause, one more append (A4) and another compaction (C2)."""
    table = lh.create_table("r.events", schema=EVENTS, format=fmt, partitioning=parse_partitioning("day(ts)"))
    versions = {}
    for i in range(3):
        versions[f"b{i + 1}"] = table.append(events(i * 100, 100)).version
    small = {f.path for f in table.files()}
    optimize(lh, "r.events", COMPACT)
    versions["c1"] = table.snapshot().version
    c1_files = {f.path for f in table.files()}
    t_c1 = time.time()
    time.sleep(2.0)
    versions["a4"] = table.append(events(300, 100)).version
    optimize(lh, "r.events", COMPACT)
    versions["c2"] = table.snapshot().version
    committed = {s.version: s.timestamp for s in table.snapshots()}
    return {
        "table": table,
        "versions": versions,
        "small": small,
        "c1_files": c1_files,
        "cutoff": t_c1 + 1.0,
        "committed": committed,
    }


def window_to(cutoff: float) -> str:
    """A retention window that starts at ``cutoff`` when the job starts now (computed right before each call:
    one computed earlier drifts past the next version on a slow machine)."""
    return f"{time.time() - cutoff:.3f}s"


def test_vacuum_keeps_the_window_and_deletes_what_only_older_versions_need(
    lh: Lakehouse, fmt: str, request: pytest.FixtureRequest
) -> None:
    built = _build(lh, fmt)
    table, v = built["table"], built["versions"]
    expected = {name: sorted_rows(table.scan(as_of=ver)) for name, ver in v.items()}
    committed = built["committed"]
    plan = vacuum(lh, "r.events", retain=window_to(built["cutoff"]))  # dry run by default
    assert plan.dry_run and plan.files_deleted == 0
    assert plan.plan.retained_versions[0] == v["c1"], "the version current at the window's start stays"
    assert set(plan.plan.expired_versions) == {s.version for s in table.snapshots() if s.version < v["c1"]}
    planned = {f.path for f in plan.plan.files}
    assert {p for p in planned if p.endswith(".parquet")} == built["small"], "the small files compaction replaced"
    if fmt == "iceberg":  # and the manifest lists and manifests only expired snapshots used
        assert all("/metadata/" in p and p.endswith(".avro") for p in planned - built["small"])
        assert any("/snap-" in p for p in planned)
    else:
        assert planned == built["small"]
    assert built["small"] <= stored_paths(lh, table.location, request), "a dry run deletes nothing"

    done = vacuum(lh, "r.events", retain=window_to(built["cutoff"]), dry_run=False)
    assert done.files_deleted == len(planned) and done.bytes_deleted == plan.plan.bytes
    stored = stored_paths(lh, table.location, request)
    assert not (planned & stored), "the files are gone from the store itself"
    for ver in done.plan.retained_versions:  # referenced files survive
        assert {f.path for f in table.files(as_of=ver)} <= stored
    for name in ("c1", "a4", "c2"):
        assert sorted_rows(lh.table("r.events").scan(as_of=v[name])) == expected[name]
    assert sorted_rows(lh.table("r.events").scan()) == expected["c2"]

    # time travel outside the window names the retention, by version, by time and through SQL
    reopened = lh.table("r.events")
    with pytest.raises(VersionNotFoundError, match="retention"):
        reopened.scan(as_of=v["b2"])
    with pytest.raises(VersionNotFoundError, match="retention"):
        lh.query(f"SELECT count(*) FROM r.events AT (VERSION => {v['b2']})")
    for name in ("b1", "b2", "b3"):  # the moments each removed version was current (Iceberg's log forgets them)
        with pytest.raises(VersionNotFoundError, match=f"version {v[name]} .*removed by retention"):
            reopened.scan(as_of=committed[v[name]])
    with pytest.raises(VersionNotFoundError, match="retention"):
        lh.query(f"SELECT count(*) FROM r.events AT (TIMESTAMP => '{committed[v['b3']].isoformat()}')")
    assert sorted_rows(reopened.scan(as_of=committed[v["c1"]])) == expected["c1"], "a retained moment still reads"

    job = lh.jobs("r.events")[0]
    assert job.kind == "vacuum" and job.state == "committed"
    assert set(job.metrics["expired_versions"]) == set(plan.plan.expired_versions)
    assert job.metrics["files_deleted"] == len(planned) and job.metrics["expired_versions"]

    again = vacuum(lh, "r.events", retain=window_to(built["cutoff"]), dry_run=False)
    assert again.plan.expired_versions == [] and again.files_deleted == 0, "a second run has nothing to do"
    assert lh.jobs("r.events")[0].state == "skipped"


def test_vacuum_lists_the_table_only_when_some_file_may_go(
    lh: Lakehouse, fmt: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Appends alone leave no data file that only expired versions reference: the plan needs no listing of the
    table (100 pages for 100,000 files on S3). A compaction's replaced files are listed (sizes, existence)."""
    import lakehouse.maintenance.retention as retention

    table = lh.create_table("r.events", schema=EVENTS, format=fmt)
    for i in range(2):
        table.append(events(i * 100, 100))
    cutoff = time.time() + 0.5
    time.sleep(1.0)
    table.append(events(200, 100))
    listed: list[str] = []

    def spy(location: str, *args: Any, **kwargs: Any) -> Any:
        listed.append(location)
        return list_files(location, *args, **kwargs)

    monkeypatch.setattr(retention, "list_files", spy)
    plan = vacuum(lh, "r.events", retain=window_to(cutoff)).plan
    assert plan.expired_versions, "the appends before the window expire"
    assert not [f for f in plan.files if f.path.endswith(".parquet")], "every data file is still current"
    if fmt == "delta":  # Iceberg's expired snapshots leave their manifest lists to delete: those are listed
        assert plan.files == [] and listed == []
    optimize(lh, "r.events", COMPACT)
    replaced = {f.path for f in table.files(as_of=table.snapshot().version - 1)}
    plan = vacuum(lh, "r.events", retain="0s").plan
    assert replaced <= {f.path for f in plan.files} and table.location in listed


def test_vacuum_keep_versions(lh: Lakehouse, fmt: str, request: pytest.FixtureRequest) -> None:
    built = _build(lh, fmt)
    table, v = built["table"], built["versions"]
    b2_rows = sorted_rows(table.scan(as_of=v["b2"]))
    b2_files = {f.path for f in table.files(as_of=v["b2"])}
    with pytest.raises(InvalidInputError, match="no readable version"):
        vacuum(lh, "r.events", retain=window_to(built["cutoff"]), keep=[99999])
    done = vacuum(lh, "r.events", retain=window_to(built["cutoff"]), keep=[v["b2"]], dry_run=False)
    assert v["b2"] in done.plan.retained_versions and v["b2"] not in done.plan.expired_versions
    assert {f.path for f in done.plan.files if f.path.endswith(".parquet")} == built["small"] - b2_files
    assert b2_files <= stored_paths(lh, table.location, request)
    assert sorted_rows(lh.table("r.events").scan(as_of=v["b2"])) == b2_rows
    # a moment between the kept version and the next retained one was at an expired version: refused, never
    # answered with the kept one
    with pytest.raises(VersionNotFoundError, match=f"version {v['b3']} .*removed by retention"):
        lh.table("r.events").scan(as_of=built["committed"][v["b3"]])
    # without --keep the next run takes the kept version too
    later = vacuum(lh, "r.events", retain=window_to(built["cutoff"]), dry_run=False)
    assert v["b2"] in later.plan.expired_versions
    assert {f.path for f in later.plan.files if f.path.endswith(".parquet")} == b2_files
    with pytest.raises(VersionNotFoundError, match="retention"):
        lh.table("r.events").scan(as_of=v["b2"])


def _write_stray(lh: Lakehouse, path: str) -> None:
    filesystem, inner = split_location(path, lh.ctx)
    if not path.startswith("s3://"):
        import os

        os.makedirs(os.path.dirname(inner), exist_ok=True)
    with filesystem.open_output_stream(inner) as fh:
        fh.write(b"PAR1 not really parquet, an aborted write's leftovers")


def test_orphans_age_guard_and_live_data(lh: Lakehouse, fmt: str, request: pytest.FixtureRequest) -> None:
    table = lh.create_table("r.events", schema=EVENTS, format=fmt, partitioning=parse_partitioning("day(ts)"))
    for i in range(3):
        table.append(events(i * 100, 100))
    first = table.snapshot().version
    first_rows = sorted_rows(table.scan(as_of=first))
    optimize(lh, "r.events", COMPACT)  # the replaced files are still referenced by older versions
    rows_now = sorted_rows(table.scan())
    data_dir = table.data_directory({}) if fmt == "iceberg" else table.location
    old_stray = f"{data_dir}/ts_day=2026-03-01/part-00000-aborted-old.parquet"
    old_manifest = f"{table.location}/metadata/aborted-m0.avro"
    hidden = f"{table.location}/_tmp_writer/part-x.parquet"
    _write_stray(lh, old_stray)
    if fmt == "iceberg":
        _write_stray(lh, old_manifest)
    _write_stray(lh, hidden)
    time.sleep(8.2)  # the young file must stay younger than the age until the job ends, under load too
    young_stray = f"{data_dir}/ts_day=2026-03-02/part-00000-in-flight.parquet"
    _write_stray(lh, young_stray)

    plan = plan_orphans(lh, "r.events", older_than="8s")
    expected_old = {old_stray} | ({old_manifest} if fmt == "iceberg" else set())
    assert {f.path for f in plan.files} == expected_old
    assert {f.path for f in plan.young} == {young_stray}
    assert old_stray in stored_paths(lh, table.location, request), "the plan deletes nothing"

    done = remove_orphans(lh, "r.events", older_than="8s", dry_run=False)
    assert done.files_deleted == len(expected_old)
    stored = stored_paths(lh, table.location, request)
    assert not (expected_old & stored)
    assert {young_stray, hidden} <= stored, "young and hidden files stay"
    table = lh.table("r.events")
    assert sorted_rows(table.scan()) == rows_now
    assert sorted_rows(table.scan(as_of=first)) == first_rows, "files only old versions use are not orphans"
    for s in table.snapshots():
        assert {f.path for f in table.files(as_of=s.version)} <= stored
    job = lh.jobs("r.events")[0]
    assert job.kind == "orphans" and job.metrics["files_deleted"] == len(expected_old)


def test_expire_data_by_age(make_lakehouse: Any, fmt: str) -> None:
    lh = make_lakehouse()
    table = lh.create_table("r.events", schema=EVENTS, format=fmt, partitioning=parse_partitioning("day(ts)"))
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    # ten days of rows, every 4 hours, in two appends (two files per day)
    ts = [now - dt.timedelta(hours=4 * k) for k in range(60)]
    data = pa.table(
        {
            "id": pa.array(range(60), pa.int64()),
            "ts": pa.array(ts, pa.timestamp("us", tz="UTC")),
            "country": pa.array(["DE"] * 60),
            "amount": pa.array([float(k) for k in range(60)]),
            "note": pa.array([f"n{k}" for k in range(60)]),
        },
        schema=EVENTS,
    )
    table.append(data.take(list(range(0, 60, 2))))
    table.append(data.take(list(range(1, 60, 2))))
    cutoff = now - dt.timedelta(days=5)
    keep = sorted(r["id"] for r in data.to_pylist() if r["ts"] >= cutoff)
    gone = [r["id"] for r in data.to_pylist() if r["ts"] < cutoff]
    with pytest.raises(InvalidInputError, match="not a date or timestamp"):
        expire_data(lh, "r.events", older_than="5d", column="amount")

    plan = expire_data(lh, "r.events", older_than="5d", now=now)
    assert plan.dry_run and plan.column == "ts"
    assert plan.rows_to_delete == len(gone) == 29 and plan.rows_deleted == 0  # the row exactly at the cutoff stays
    assert len(plan.partitions_whole) >= 4
    assert table.row_count() == 60

    done = expire_data(lh, "r.events", older_than="5d", dry_run=False, now=now)
    remaining = sorted(r["id"] for r in lh.table("r.events").scan().to_pylist())
    assert remaining == keep, "rows inside the window stay, rows past the age are gone"
    assert done.rows_deleted == len(gone) == done.rows_before - done.rows_after
    assert done.files_removed >= 8, "whole old days dropped"
    kept_rows = {r["id"]: r for r in data.to_pylist()}
    assert sorted_rows(lh.table("r.events").scan()) == [kept_rows[i] for i in remaining]
    job = lh.jobs("r.events")[0]
    assert job.kind == "expire-data" and job.metrics["rows_deleted"] == done.rows_deleted


def test_delete_rows_drops_whole_partitions_without_rewriting(tmp_path: Any, fmt: str) -> None:
    from lakehouse.config import load_settings

    with Lakehouse(load_settings(config_file=False, warehouse=str(tmp_path / "wh"))) as lh:
        table = lh.create_table("r.events", schema=EVENTS, format=fmt, partitioning=parse_partitioning("day(ts)"))
        table.append(events(0, 300))  # 2026-03-01 .. 03-03
        result = table.delete_rows("ts < '2026-03-02T00:00:00Z'")
        assert result.metadata_only and result.files_removed == 1
        assert result.rows_deleted == sum(1 for r in events(0, 300).to_pylist() if r["ts"].day == 1)
        assert list_files(table.location, lh.ctx)  # files of older versions stay until vacuum
        result = table.delete_rows("ts < '2026-03-02T12:00:00Z'")
        assert not result.metadata_only and result.files_added == 1
        left = sorted_rows(lh.table("r.events").scan())
        assert left == [r for r in sorted_rows(events(0, 300)) if r["ts"] >= dt.datetime(2026, 3, 2, 12, tzinfo=dt.UTC)]


def test_iceberg_append_survives_its_starting_snapshot_being_expired(tmp_path: Any, monkeypatch: Any) -> None:
    """A vacuum that commits and expires the snapshot a writer started from, between the writer's file write
    and its commit: the writer's first compare-and-swap loses, pyiceberg's retry cannot find its starting
    snapshot, and the append starts over from the current snapshot; every row lands exactly once."""
    from lakehouse.config import load_settings

    with Lakehouse(load_settings(config_file=False, warehouse=str(tmp_path / "wh"))) as lh:
        table = lh.create_table("r.events", schema=EVENTS, format="iceberg")
        table.append(events(0, 10))
        other = lh.table("r.events")
        catalog = table._table.catalog  # type: ignore[attr-defined]
        original = catalog.commit_table
        interfered: list[int] = []

        def commit_table(*args: Any, **kwargs: Any) -> Any:
            if not interfered:
                interfered.append(1)
                other.append(events(10, 10))  # moves the head on
                vacuum(lh, "r.events", retain="0s", dry_run=False)  # expires every older snapshot
            return original(*args, **kwargs)

        monkeypatch.setattr(catalog, "commit_table", commit_table)
        table.append(events(20, 10))
        assert interfered
        got = sorted(r["id"] for r in lh.table("r.events").scan(columns=["id"]).to_pylist())
        assert got == list(range(30))


def test_format_v1_iceberg_versions_stay_put_across_retention(lh: Lakehouse, tmp_path: Any) -> None:
    """A registered format-v1 Iceberg table has no sequence numbers: its versions must not shift when the
    oldest snapshots expire (else the catalog's expired versions name snapshots that are still there)."""
    from pyiceberg.catalog.sql import SqlCatalog

    other = SqlCatalog("other", uri=f"sqlite:///{tmp_path}/other.db", warehouse=f"file://{tmp_path}/other")
    other.create_namespace("ext")
    location = str(tmp_path / "other" / "v1")
    t = other.create_table(
        ("ext", "v1"), schema=EVENTS, location=f"file://{location}", properties={"format-version": "1"}
    )
    for i in range(3):
        t.append(events(i * 10, 10))
    table = lh.register_table("ext.v1", location=location)
    before = [s.version for s in table.snapshots()]
    vacuum(lh, "ext.v1", retain="0s", dry_run=False)
    table = lh.table("ext.v1")
    assert [s.version for s in table.snapshots()] == before[-1:], "the current version keeps its number"
    for i in range(3, 5):
        table.append(events(i * 10, 10))
    table = lh.table("ext.v1")
    # every version still listed reads (none is reported as removed), the old current one first
    assert table.snapshots()[0].version == before[-1]
    assert [table.scan(as_of=s.version).num_rows for s in table.snapshots()] == [30, 40, 50]
    done = vacuum(lh, "ext.v1", retain="0s", dry_run=False)
    assert len(done.plan.expired_versions) == 2 and table.snapshot().version not in done.plan.expired_versions
    assert lh.table("ext.v1").scan().num_rows == 50
    for v in before:
        with pytest.raises(VersionNotFoundError, match="retention"):
            lh.table("ext.v1").scan(as_of=v)


def test_a_catalog_from_before_current_since_is_upgraded_in_place(tmp_path: Any) -> None:
    import sqlite3

    from lakehouse.catalog import CatalogStore
    from lakehouse.tables.base import TableName

    db = tmp_path / "old.db"
    with sqlite3.connect(db) as conn:  # lh_expired_versions as an older lakehouse created it
        conn.execute(
            "CREATE TABLE lh_expired_versions (table_name VARCHAR(128) NOT NULL, version BIGINT NOT NULL, "
            "retention VARCHAR(64) NOT NULL, job_id INTEGER, expired_at DATETIME NOT NULL, "
            "PRIMARY KEY (table_name, version))"
        )
        conn.execute("INSERT INTO lh_expired_versions VALUES ('a.b', 3, '7d', 1, '2026-01-01 00:00:00')")
    store = CatalogStore(f"sqlite:///{db}")
    try:
        expired = store.expired(TableName.parse("a.b"))
        assert expired is not None and expired.versions == {3} and expired.current_since == {3: ()}
    finally:
        store.dispose()


def test_vacuum_keeps_the_snapshots_branches_and_tags_point_at(tmp_path: Any) -> None:
    """Another writer tagged an old snapshot: vacuum planned to expire it and delete its files, and the apply
    failed as a whole (pyiceberg protects a ref's head), so such a table could not be vacuumed at all. The heads
    of tags and branches are now retained; the versions between are expired."""
    from pathlib import Path

    from pyiceberg.schema import Schema
    from pyiceberg.types import LongType, NestedField

    from lakehouse.config import load_settings
    from tests.conftest import their_iceberg_table

    root = Path(tmp_path)
    catalog, theirs = their_iceberg_table(root / "theirs", Schema(NestedField(1, "id", LongType(), required=False)))
    theirs.append(pa.table({"id": pa.array([1], pa.int64())}))
    tagged = theirs.current_snapshot().snapshot_id
    theirs.manage_snapshots().create_tag(tagged, "release_1").commit()
    for i in (2, 3):
        theirs.overwrite(pa.table({"id": pa.array([i], pa.int64())}))
    catalog.engine.dispose()
    with Lakehouse(load_settings(config_file=False, warehouse=str(root / "wh"))) as lh:
        lh.register_table("f.tagged", location=str(root / "theirs" / "t"), format="iceberg")
        table = lh.table("f.tagged")
        tag_version = next(s.version for s in table.snapshots() if s.snapshot_id == tagged)
        tag_files = {f.path for f in table.files(as_of=tag_version)}
        time.sleep(0.05)
        plan = vacuum(lh, "f.tagged", retain="0s").plan
        assert tag_version not in plan.expired_versions and plan.expired_versions
        assert not tag_files & {f.path for f in plan.files}
        done = vacuum(lh, "f.tagged", retain="0s", dry_run=False)
        assert done.plan.expired_versions == plan.expired_versions
        assert done.versions_expired == len(plan.expired_versions)
        assert lh.table("f.tagged").scan(as_of=tag_version).column("id").to_pylist() == [1]
        assert lh.table("f.tagged").scan().column("id").to_pylist() == [3]


def test_a_commit_through_lakehouse_s_own_catalog_meanwhile_is_not_another_catalog(tmp_path: Any) -> None:
    """A writer appending through lakehouse's catalog while a vacuum starts writes a metadata file numbered after
    the one the vacuum loaded: the vacuum took it for another catalog's and refused (a vacuum beside a stream
    failed now and then). The catalog names that file current, so the vacuum goes on."""
    from lakehouse.config import load_settings

    settings = load_settings(config_file=False, warehouse=str(tmp_path / "wh"))
    with Lakehouse(settings) as lh, Lakehouse(settings) as writer:
        table = lh.create_table("f.beside", schema=pa.schema([pa.field("id", pa.int64())]), format="iceberg")
        table.append(pa.table({"id": [1]}))
        loaded = lh.table("f.beside")
        loaded.snapshots()  # loaded as of now
        writer.table("f.beside").append(pa.table({"id": [2]}))  # committed through the same catalog since
        with loaded.pinned(refresh=False):  # as a job holds its table: no reload on the way
            loaded.check_operation("vacuum")
        vacuum(lh, "f.beside", retain="0s", dry_run=False)
        assert sorted(lh.table("f.beside").scan().column("id").to_pylist()) == [1, 2]


def test_vacuum_and_orphans_respect_another_catalog_s_versions(tmp_path: Any) -> None:
    """An Iceberg table registered by location whose owner's catalog keeps committing (pyiceberg's SQL catalog
    here: metadata files numbered after the one lakehouse reads): vacuum and orphans are refused, since they would
    delete the owner's new files; the owner's rows all stay readable. A table a Hadoop catalog keeps
    (``version-hint.text``): the version the hint names is kept like a tag."""
    from pyiceberg.catalog.sql import SqlCatalog
    from pyiceberg.schema import Schema
    from pyiceberg.types import LongType, NestedField

    from lakehouse.config import load_settings
    from lakehouse.errors import UnsupportedOperationError

    owner = SqlCatalog("owner", uri=f"sqlite:///{tmp_path}/owner.db", warehouse=f"file://{tmp_path}/owner")
    owner.create_namespace("s")
    table = owner.create_table(("s", "e"), Schema(NestedField(1, "id", LongType(), required=False)))

    def batch(lo: int, hi: int) -> pa.Table:
        return pa.table({"id": pa.array(range(lo, hi), pa.int64())})

    table.append(batch(0, 10))
    with Lakehouse(load_settings(config_file=False, warehouse=str(tmp_path / "wh"))) as lh:
        lh.register_table("ext.e", location=owner.load_table(("s", "e")).location(), format="iceberg")
        assert plan_orphans(lh, "ext.e", older_than="0s").files == []  # nothing shows another writer yet
        for lo in (10, 20):
            owner.load_table(("s", "e")).append(batch(lo, lo + 10))
        for job in (
            lambda: remove_orphans(lh, "ext.e", older_than="0s", dry_run=True),
            lambda: vacuum(lh, "ext.e", retain="0s", dry_run=False),
        ):
            with pytest.raises(UnsupportedOperationError, match="numbered after the current one"):
                job()
        assert owner.load_table(("s", "e")).scan().to_arrow().num_rows == 30
        # a Hadoop catalog's layout, as Spark's HadoopCatalog leaves it: vN.metadata.json, version-hint.text = N.
        # lakehouse's commits never move the hint, so the version it names is kept like a tag: that catalog's
        # reader still loads the table after lakehouse's appends, vacuum and orphans, and a purge is refused
        kept = owner.create_table(
            ("s", "h"), Schema(NestedField(1, "id", LongType(), required=False)), location=f"file://{tmp_path}/hadoop"
        )
        kept.append(batch(0, 5))
        metadata = tmp_path / "hadoop" / "metadata"
        current = Path(str(owner.load_table(("s", "h")).metadata_location).removeprefix("file://"))
        (metadata / "v1.metadata.json").write_bytes(current.read_bytes())
        (metadata / "version-hint.text").write_text("1")
        owner.drop_table(("s", "h"))  # the SQL catalog lets go; the Hadoop layout stays
        lh.register_table("ext.h", location=str(tmp_path / "hadoop"), format="iceberg")
        for lo in (5, 10):
            lh.table("ext.h").append(batch(lo, lo + 5))
        vacuum(lh, "ext.h", retain="0s", dry_run=False)
        remove_orphans(lh, "ext.h", older_than="0s", dry_run=False)
        from pyiceberg.table import StaticTable

        hadoop_view = StaticTable.from_metadata(str(metadata / "v1.metadata.json"))
        assert sorted(hadoop_view.scan().to_arrow().column("id").to_pylist()) == list(range(5))
        assert sorted(lh.table("ext.h").scan().column("id").to_pylist()) == list(range(15))
        from lakehouse.governance.ops import erase

        with pytest.raises(UnsupportedOperationError, match=r"version-hint\.text names version"):
            erase(lh, "id = 1", tables=["ext.h"], dry_run=False)


def test_an_iceberg_log_shortening_killed_midway_restores_the_table_s_own_settings_next_time(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Trimming the metadata log commits the shortened settings, then the table's own; a process killed between
    the two leaves the shortened ones, saved beside the table's own values in the table itself, so the next run
    restores the owner's (``previous-versions-max=100``, ``delete-after-commit=false``), not the shortened ones."""
    import lakehouse.tables.iceberg as iceberg
    from lakehouse.config import load_settings

    keys = ("write.metadata.previous-versions-max", "write.metadata.delete-after-commit.enabled")
    with Lakehouse(load_settings(config_file=False, warehouse=str(tmp_path / "wh"))) as lh:
        table = lh.create_table("s.t", schema=EVENTS, format="iceberg")
        for b in range(3):
            table.append(events(b * 5, 5))
        with table._table.transaction() as tx:  # the owner's choice
            tx.set_properties({keys[0]: "100", keys[1]: "false"})
        original = iceberg._retry_commit

        def killed(what: str, fn: Any, **kw: Any) -> Any:
            if what.startswith("restoring the metadata log settings"):
                raise KeyboardInterrupt  # the process dies here
            return original(what, fn, **kw)

        monkeypatch.setattr(iceberg, "_retry_commit", killed)
        with pytest.raises(KeyboardInterrupt):
            lh.table("s.t").drop_old_log()
        monkeypatch.undo()
        props = lh.table("s.t")._table.properties
        assert (props[keys[0]], props[keys[1]]) == ("1", "true")  # shortened, and the owner's values saved
        lh.table("s.t").drop_old_log()
        props = lh.table("s.t")._table.properties
        assert (props[keys[0]], props[keys[1]]) == ("100", "false")
        assert not [k for k in props if k.startswith("lakehouse.saved.")]
        assert lh.table("s.t").scan().num_rows == 15
