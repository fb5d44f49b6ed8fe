"""The Spark engine on a local Spark session (local[2]): the same jobs as the local engine, through the catalog
Spark shares with pyiceberg. Every result is read back through pyiceberg and DuckDB and compared with the
input; the job history must record the Spark runs. One JVM serves the whole module (a session per test
would cost ~10 s each); each test's lakehouse re-points the shared catalog at its own database."""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pytest

from lakehouse.config import load_settings
from lakehouse.core import Lakehouse
from lakehouse.errors import InvalidInputError, UnsupportedOperationError, VersionNotFoundError
from lakehouse.maintenance.compaction import optimize
from lakehouse.maintenance.planner import CompactionOptions
from lakehouse.maintenance.retention import remove_orphans, vacuum
from lakehouse.schema import parse_partitioning
from lakehouse.storage import list_files
from tests.conftest import EVENTS, events, sorted_rows

pytestmark = [pytest.mark.spark, pytest.mark.slow]

COMPACT = CompactionOptions(target_file_size=64 * 1024 * 1024)
SPARK = {"master": "local[2]", "driver_memory": "1g"}


def _delta_jars() -> list[str]:
    """delta-spark jars named by LAKEHOUSE_TEST_DELTA_SPARK_JARS (comma separated), if they exist."""
    jars = [j for j in os.environ.get("LAKEHOUSE_TEST_DELTA_SPARK_JARS", "").split(",") if j]
    return jars if jars and all(os.path.exists(j) for j in jars) else []


@pytest.fixture
def slh(tmp_path: Any) -> Iterator[Lakehouse]:
    spark = dict(SPARK)
    if _delta_jars():
        spark["jars"] = _delta_jars()  # type: ignore[assignment]
    with Lakehouse(load_settings(config_file=False, warehouse=str(tmp_path / "wh"), spark=spark)) as lh:
        yield lh


def _events_table(lh: Lakehouse, fmt: str = "iceberg", batches: int = 6) -> list[dict[str, Any]]:
    table = lh.create_table("s.events", schema=EVENTS, format=fmt, partitioning=parse_partitioning("day(ts)"))
    for i in range(batches):
        table.append(events(i * 100, 100))
    return sorted_rows(table.scan())


def _job(lh: Lakehouse, job_id: int | None) -> Any:
    return next(j for j in lh.catalog.jobs() if j.id == job_id)


def _duckdb_rows(lh: Lakehouse) -> list[dict[str, Any]]:
    return sorted_rows(lh.query("SELECT * FROM s.events", max_rows=1_000_000).table)


def test_iceberg_compaction_on_spark_rewrites_only_planned_partitions(slh: Lakehouse) -> None:
    expected = _events_table(slh)
    table = slh.table("s.events")
    days = sorted({f.partition["ts_day"] for f in table.files()})
    untouched = {f.path for f in table.files() if f.partition["ts_day"] != days[0]}
    day_rows = sum(f.row_count for f in table.files() if f.partition["ts_day"] == days[0])
    before_version = table.snapshot().version
    result = optimize(slh, "s.events", COMPACT, partition_filter=f"ts_day = '{days[0]}'", engine="spark")
    d = result.as_dict()
    assert d["engine"]["engine"] == "spark" and d["engine"]["rewritten_files"] == 6
    assert d["files_before"] == 6 and d["files_after"] == 1 and d["rows_in"] == d["rows_out"] == day_rows
    after = slh.table("s.events")
    assert untouched <= {f.path for f in after.files()}, "a partition the planner did not pick was rewritten"
    assert len([f for f in after.files() if f.partition["ts_day"] == days[0]]) == 1
    assert sorted_rows(after.scan()) == expected  # pyiceberg
    assert _duckdb_rows(slh) == expected  # DuckDB's iceberg extension
    # the commit carries the job's properties, and the job history records the Spark run
    job = _job(slh, result.job_id)
    assert job.state == "committed" and job.params["engine"] == "spark" and job.params["spark_master"] == "local[2]"
    assert any(s.summary.get("lakehouse.job") == str(result.job_id) for s in after.snapshots())
    # rewrite_manifests commits a snapshot of its own: it carries the job too, and the job reports the version
    # it left current
    new = [s for s in after.snapshots() if s.version > before_version]
    assert d["engine"]["manifests_rewritten"] > 0 and len(new) == 2, [s.summary for s in new]
    assert all(s.summary.get("lakehouse.job") == str(result.job_id) for s in new)
    assert new[-1].summary["lakehouse.operation"] == "rewrite_manifests"
    assert result.version == after.snapshot().version == new[-1].version
    assert job.metrics["rows_in"] == job.metrics["rows_out"] == day_rows
    audit = [a for a in slh.audit_log("s.events", action="optimize") if a.job_id == result.job_id]
    assert audit and audit[0].outcome == "committed"
    runs = [
        e["eventType"]
        for e in slh.catalog.lineage_events()
        if e["run"]["facets"].get("lakehouse_job", {}).get("jobId") == result.job_id
    ]
    assert sorted(runs) == ["COMPLETE", "START"], "the Spark run is not in the lineage"
    # a dry run plans the same way and changes nothing
    again = optimize(slh, "s.events", COMPACT, dry_run=True, engine="spark")
    assert len(again.plan.picked) == len(days) - 1 and again.job_id is None


def test_iceberg_zorder_on_spark_then_the_planner_knows_the_layout(slh: Lakehouse) -> None:
    expected = _events_table(slh)
    options = CompactionOptions(target_file_size=64 * 1024 * 1024, zorder=("country", "amount"))
    result = optimize(slh, "s.events", options, engine="spark")
    assert result.rows_in == result.rows_out == len(expected)
    assert all(p.status == "committed" for p in result.partitions)
    assert sorted_rows(slh.table("s.events").scan()) == expected
    assert _duckdb_rows(slh) == expected
    # the layout is recorded: the next run has nothing to do
    again = optimize(slh, "s.events", options, dry_run=True, engine="spark")
    assert not again.plan.picked and all("already clustered" in p.reason for p in again.plan.partitions)
    with pytest.raises(InvalidInputError, match="not in table"):
        optimize(slh, "s.events", CompactionOptions(zorder=("nope",)), engine="spark")


def test_iceberg_compaction_on_spark_beside_a_writer_loses_and_doubles_nothing(slh: Lakehouse) -> None:
    expected = _events_table(slh, batches=8)
    written: list[pa.Table] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def writer() -> None:
        try:
            own = slh.table("s.events")
            n = 0
            while not stop.is_set() and n < 60:
                batch = events(10_000 + n * 10, 10)
                own.append(batch)
                written.append(batch)
                n += 1
                time.sleep(0.05)
        except BaseException as e:  # surfaced below
            errors.append(e)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        time.sleep(0.3)
        result = optimize(slh, "s.events", COMPACT, engine="spark")
    finally:
        stop.set()
        thread.join(timeout=120)
    assert not errors, errors
    assert len(written) >= 3, "the writer overlapped the Spark rewrite"
    assert result.rows_in == result.rows_out > 0
    for batch in written:
        expected.extend(batch.to_pylist())
    assert sorted_rows(slh.table("s.events").scan()) == sorted(expected, key=lambda r: r["id"])


def test_iceberg_vacuum_and_orphans_on_spark(slh: Lakehouse, monkeypatch: pytest.MonkeyPatch) -> None:
    expected = _events_table(slh)
    optimize(slh, "s.events", COMPACT)  # local: leaves the small files to the old versions
    table = slh.table("s.events")
    old_files = {f.path for f in table.files(as_of=3)}
    plan = vacuum(slh, "s.events", retain="0s", dry_run=True, engine="spark")
    assert plan.plan.expired_versions and plan.engine["engine"] == "spark"
    done = vacuum(slh, "s.events", retain="0s", dry_run=False, engine="spark")
    assert done.versions_expired == len(plan.plan.expired_versions)
    assert done.files_deleted == len(plan.plan.files) > 0 and not done.files_kept
    listed = {f.path for f in list_files(table.location, slh.ctx)}
    assert not (old_files & listed), "files only expired versions referenced are still in storage"
    with pytest.raises(VersionNotFoundError, match="retention"):
        slh.table("s.events").scan(as_of=3)
    job = _job(slh, done.job_id)
    assert (
        job.kind == "vacuum"
        and job.params["engine"] == "spark"
        and job.metrics["engine"]["deleted_data_files_count"] > 0
    )
    assert sorted_rows(slh.table("s.events").scan()) == expected
    # orphans: an old stray file goes, a young one stays, live data is untouched; in a process west of UTC
    # (ages once shifted by the local offset: a naive datetime became a timestamp in local time)
    data_dir = os.path.join(table.location, "data")
    old, young = os.path.join(data_dir, "stray-old.parquet"), os.path.join(data_dir, "stray-young.parquet")
    for path in (old, young):
        with open(path, "wb") as f:
            f.write(b"not a table file")
    two_hours_ago = time.time() - 7200
    os.utime(old, (two_hours_ago, two_hours_ago))
    live = {f.path for f in slh.table("s.events").files()}
    with monkeypatch.context() as m:
        m.setenv("TZ", "America/Los_Angeles")
        time.tzset()
        try:
            assert time.localtime().tm_gmtoff < 0
            orphans = remove_orphans(slh, "s.events", older_than="1h", dry_run=False, engine="spark")
        finally:
            m.undo()
            time.tzset()
    assert orphans.engine["engine"] == "spark"
    assert orphans.files_deleted == 1 and not os.path.exists(old) and os.path.exists(young)
    assert live <= {f.path for f in list_files(table.location, slh.ctx)}
    assert sorted_rows(slh.table("s.events").scan()) == expected
    assert _duckdb_rows(slh) == expected
    assert _job(slh, orphans.job_id).params["engine"] == "spark"


def test_query_on_spark_with_time_travel_matches_duckdb(slh: Lakehouse) -> None:
    _events_table(slh, batches=3)
    table = slh.table("s.events")
    v2 = table.snapshots()[1]
    sql = "SELECT country, count(*) AS n, sum(amount) AS total FROM s.events GROUP BY country ORDER BY country"
    for as_of in ({}, {"s.events": 2}, {"s.events": v2.timestamp + dt.timedelta(milliseconds=1)}):
        spark = slh.query(sql, as_of=as_of, engine="spark").table.to_pylist()
        duck = slh.query(sql, as_of=as_of).table.to_pylist()
        assert spark == duck and spark
    inline = slh.query("SELECT count(*) AS n FROM s.events AT (VERSION => 1)", engine="spark")
    assert inline.table.to_pylist() == [{"n": 100}]
    # no rows: the columns and their types still come back, as from DuckDB
    empty_sql = "SELECT id, ts, country FROM s.events WHERE id < 0"
    empty, duck_empty = slh.query(empty_sql, engine="spark").table, slh.query(empty_sql).table
    assert empty.num_rows == duck_empty.num_rows == 0
    assert empty.schema.names == duck_empty.schema.names == ["id", "ts", "country"]
    assert empty.schema.field("id").type == pa.int64() and empty.schema.field("country").type == pa.string()
    assert empty.schema.field("ts").type == pa.timestamp("us", tz="UTC")
    limited = slh.query("SELECT id FROM s.events", max_rows=5, engine="spark")
    assert limited.truncated and limited.table.num_rows == 5
    with pytest.raises(UnsupportedOperationError, match="local engine"):
        slh.query("SELECT 1 AS x FROM s.events", masked=True, engine="spark")
    with pytest.raises(InvalidInputError, match="unknown engine"):
        slh.query("SELECT 1", engine="flink")


def test_maintain_on_spark_runs_compaction_vacuum_and_orphans_there(slh: Lakehouse) -> None:
    from lakehouse.maintenance.maintain import maintain

    expected = _events_table(slh, batches=10)
    slh.set_policy("s.events", {"retention": {"retain": "0s", "orphan_age": "1h"}})
    report = maintain(slh, "s.events", dry_run=False, engine="spark")
    jobs = {j["job"]: j for j in report["jobs"]}
    assert jobs["optimize"]["result"]["engine"] == "spark", report
    assert jobs["optimize"]["result"]["rows_in"] == jobs["optimize"]["result"]["rows_out"] == len(expected)
    assert jobs["vacuum"]["result"]["engine"] == "spark"
    assert report["after"]["score"] > report["before"]["score"]
    assert sorted_rows(slh.table("s.events").scan()) == expected
    kinds = {(j.kind, j.params.get("engine")) for j in slh.catalog.jobs()}
    assert {("optimize", "spark"), ("vacuum", "spark")} <= kinds


def test_delta_on_spark_without_its_jars_says_what_to_set(slh: Lakehouse) -> None:
    if _delta_jars():
        pytest.skip("delta-spark jars are configured here; test_delta_on_spark runs instead")
    _events_table(slh, fmt="delta", batches=3)
    with pytest.raises(UnsupportedOperationError, match=r"delta-spark jars.*spark\.jars"):
        optimize(slh, "s.events", COMPACT, engine="spark")
    with pytest.raises(UnsupportedOperationError, match="delta-spark jars"):
        vacuum(slh, "s.events", retain="0s", dry_run=True, engine="spark")
    with pytest.raises(UnsupportedOperationError, match="delta-spark jars"):
        slh.query("SELECT count(*) FROM s.events", engine="spark")
    # orphan removal on Delta has nothing for Spark to compute: it runs locally and says so
    result = remove_orphans(slh, "s.events", older_than="1h", dry_run=True, engine="spark")
    assert result.engine["engine"] == "local" and "locally" in result.engine["note"]


@pytest.mark.skipif(
    not _delta_jars(),
    reason="delta-spark jars not available: no registry reachable here ships them; point "
    "LAKEHOUSE_TEST_DELTA_SPARK_JARS at delta-spark_2.12 and delta-storage 3.x jars to run this",
)
def test_delta_on_spark(slh: Lakehouse) -> None:
    expected = _events_table(slh, fmt="delta")
    result = optimize(slh, "s.events", COMPACT, engine="spark")
    assert result.rows_in == result.rows_out == len(expected)
    zorder = optimize(slh, "s.events", CompactionOptions(zorder=("country", "amount")), engine="spark")
    assert zorder.rows_in == zorder.rows_out
    assert sorted_rows(slh.table("s.events").scan()) == expected
    assert _duckdb_rows(slh) == expected
    # VACUUM also deletes untracked files older than its window: refused under the orphan age (default 3d)
    with pytest.raises(InvalidInputError, match=r"orphan age 3d"):
        vacuum(slh, "s.events", retain="0s", dry_run=False, engine="spark")
    assert slh.table("s.events").scan(as_of=1).num_rows == 100, "a refused vacuum expired a version"
    slh.set_policy("s.events", {"retention": {"orphan_age": "0s"}})  # no writer: untracked files may go
    stray = os.path.join(slh.table("s.events").location, "stray-old.parquet")
    with open(stray, "wb") as f:
        f.write(b"not a table file")
    done = vacuum(slh, "s.events", retain="0s", dry_run=False, engine="spark")
    assert done.files_deleted > 0 and sorted_rows(slh.table("s.events").scan()) == expected
    assert not os.path.exists(stray) and done.engine["unplanned_files_deleted"] == 1  # counted, not hidden
    assert done.files_deleted == len(done.plan.files) + 1
    # the current version is retained and readable on Spark; version 1 was removed by retention
    current = slh.table("s.events").snapshot().version
    spark = slh.query(f"SELECT count(*) AS n FROM s.events AT (VERSION => {current})", engine="spark")
    assert spark.table.to_pylist() == [{"n": len(expected)}]
    with pytest.raises(VersionNotFoundError, match="retention"):
        slh.query("SELECT count(*) AS n FROM s.events AT (VERSION => 1)", engine="spark")


def test_spark_start_up_mistakes_are_one_line_cli_errors(tmp_path: Any) -> None:
    """A bad master URL, no Java, a configured jar that does not exist, and a JVM that dies at start: each is one
    line on stderr naming the cause, exit code 1. Only the last launches a java process (it exits at once)."""
    wh = str(tmp_path / "wh")
    with Lakehouse(load_settings(config_file=False, warehouse=wh)) as lh:
        lh.create_table("s.events", schema=EVENTS, format="iceberg", partitioning=parse_partitioning("day(ts)"))
    exe = shutil.which("lakehouse", path=os.path.dirname(sys.executable)) or "lakehouse"
    query = [exe, "-w", wh, "query", "SELECT count(*) FROM s.events", "--engine", "spark"]
    cases = [
        ([*query, "--spark-master", "bogus://x"], {}, r"Spark master 'bogus://x' is not a master URL.*local\[N\]"),
        (query, {"JAVA_HOME": "/nonexistent"}, r"needs Java 17.*JAVA_HOME=/nonexistent.*openjdk-17"),
        (
            query,
            {"LAKEHOUSE_SPARK__JARS": '["/nope/delta-spark_2.12-3.3.2.jar"]'},
            r"Spark jar\(s\) not found: /nope/delta-spark_2.12-3.3.2.jar",
        ),
        (
            query,
            {"LAKEHOUSE_SPARK__DRIVER_MEMORY": "lots", "LAKEHOUSE_SPARK_LOG": str(tmp_path / "spark.log")},
            r"cannot start Spark \(local\[\*\]\): Invalid maximum heap size: -Xmxlots .*spark\.log",
        ),
    ]
    for args, env, message in cases:
        proc = subprocess.run(
            args, capture_output=True, text=True, env={**os.environ, "COLUMNS": "300", **env}, timeout=120, check=False
        )
        assert proc.returncode == 1, (env, proc.stderr)
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
        assert re.match(r"error: .*" + message, proc.stderr), proc.stderr
    assert "Could not create the Java Virtual Machine" in (tmp_path / "spark.log").read_text()  # the log it names


def test_iceberg_compaction_on_spark_of_bucket_and_truncate_partitions(slh: Lakehouse) -> None:
    """Spark's rewrite is filtered to the planned partitions: bucket and truncate values are transform terms."""
    slh.create_table(
        "s.buckets",
        schema=EVENTS,
        format="iceberg",
        partitioning=parse_partitioning("bucket(2, id), truncate(1, country)"),
    )
    table = slh.table("s.buckets")
    for b in range(4):
        table.append(events(b * 40, 40))
    expected = sorted_rows(table.scan())
    picked = optimize(slh, "s.buckets", COMPACT, dry_run=True).plan.picked
    first = picked[0].partition
    where = f"id_bucket = '{first['id_bucket']}'"
    result = optimize(slh, "s.buckets", COMPACT, partition_filter=where, engine="spark")
    assert result.rows_in == result.rows_out > 0
    assert {tuple(sorted(p.partition.items())) for p in result.partitions if p.status == "committed"} <= {
        tuple(sorted(p.partition.items())) for p in picked if p.partition["id_bucket"] == first["id_bucket"]
    }
    assert sorted_rows(slh.table("s.buckets").scan()) == expected
