"""Compaction and Z-order on both formats, local and S3: planned file counts, identical rows, no-op reruns,
concurrent writers, and pruning by file statistics after Z-order."""

from __future__ import annotations

import datetime as dt
import threading
import time
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lakehouse.core import Lakehouse
from lakehouse.maintenance.compaction import optimize
from lakehouse.maintenance.planner import CompactionOptions, partition_key
from lakehouse.schema import parse_partitioning, parse_schema
from lakehouse.storage import split_location

SCHEMA = parse_schema("id:int64 not null, ts:timestamp not null, a:int64, b:float64, s:string")
KB = 1024


def batch(start: int, n: int, days: int = 3) -> pa.Table:
    base = dt.datetime(2026, 4, 1, tzinfo=dt.UTC)
    ids = list(range(start, start + n))
    return pa.table(
        {
            "id": pa.array(ids, pa.int64()),
            "ts": pa.array([base + dt.timedelta(days=i % days, seconds=i) for i in ids], pa.timestamp("us", tz="UTC")),
            "a": pa.array([(i * 7919) % 1000 for i in ids], pa.int64()),
            "b": pa.array([((i * 104729) % 1000) / 10 for i in ids], pa.float64()),
            "s": pa.array([None if i % 9 == 0 else f"row {i}" for i in ids]),
        },
        schema=SCHEMA,
    )


def rows(table: Any, **kw: Any) -> list[dict[str, Any]]:
    return table.scan(**kw).sort_by("id").to_pylist()


def test_compaction_plan_rows_and_noop(lh: Lakehouse, fmt: str) -> None:
    table = lh.create_table("m.events", schema=SCHEMA, format=fmt, partitioning=parse_partitioning("day(ts)"))
    for i in range(8):
        table.append(batch(i * 60, 60))
    before_version = table.snapshot().version
    expected = rows(table)
    assert len(table.files()) == 24
    opts = CompactionOptions(target_file_size=8 * 1024 * KB)
    plan = optimize(lh, "m.events", opts, dry_run=True)
    assert plan.dry_run and len(plan.plan.picked) == 3 and plan.partitions == []
    assert all(p.expected_output_files == 1 and len(p.inputs) == 8 for p in plan.plan.picked)
    from lakehouse.maintenance.health import file_health

    before = file_health(table, predicate="ts < '2026-04-02T00:00:00Z'")
    assert before["files"] == 24 and before["small_file_ratio"] == 1.0 and before["files_per_partition"]["max"] == 8
    assert before["data_skipping"]["files_prunable"] == 16  # two of three days skipped by partition values
    assert len(table.files()) == 24, "a dry run changes nothing"

    result = optimize(lh, "m.events", opts)
    assert result.rows_in == result.rows_out == 480
    files = table.files()
    assert len(files) == sum(p.expected_output_files for p in plan.plan.picked) == 3
    assert rows(table) == expected, "compaction keeps the rows exactly"
    assert rows(table, as_of=before_version) == expected, "time travel to the old version still works"
    # a second run right after finds nothing to do
    again = optimize(lh, "m.events", opts)
    assert again.partitions == [] and not again.plan.picked
    assert {p.reason for p in again.plan.partitions} == {"1 small file(s), fewer than 2"}
    noop, job = lh.jobs("m.events")[:2]  # the run that found nothing to do is in the history as skipped
    assert (noop.id, noop.kind, noop.state) == (again.job_id, "optimize", "skipped")
    assert job.kind == "optimize" and job.state == "committed" and job.metrics["rows_in"] == 480


def test_partition_filter_and_thresholds(lh: Lakehouse, fmt: str) -> None:
    table = lh.create_table("m.events", schema=SCHEMA, format=fmt, partitioning=parse_partitioning("day(ts)"))
    for i in range(4):
        table.append(batch(i * 30, 30))
    opts = CompactionOptions(target_file_size=8 * 1024 * KB)
    result = optimize(lh, "m.events", opts, partition_filter="ts_day = '2026-04-02'")
    assert len(result.partitions) == 1
    by_part: dict[str, int] = {}
    for f in table.files():
        by_part[str(f.partition["ts_day"])] = by_part.get(str(f.partition["ts_day"]), 0) + 1
    assert by_part == {"2026-04-01": 4, "2026-04-02": 1, "2026-04-03": 4}
    few = optimize(lh, "m.events", CompactionOptions(target_file_size=8 * 1024 * KB, min_input_files=5), dry_run=True)
    assert not few.plan.picked and "fewer than 5" in few.plan.partitions[0].reason
    from lakehouse.errors import InvalidInputError

    with pytest.raises(InvalidInputError, match="not partition fields"):
        optimize(lh, "m.events", opts, partition_filter="country = 'x'")


@pytest.mark.slow
@pytest.mark.parametrize("fmt_", ["delta", "iceberg"])
def test_concurrent_writer_loses_nothing(fmt_: str, tmp_path: Any) -> None:
    # local storage: concurrency is storage-independent, and the S3 test server's latency only slows it down
    from lakehouse.config import load_settings

    lh = Lakehouse(load_settings(config_file=False, warehouse=str(tmp_path / "wh")))
    fmt = fmt_
    table = lh.create_table("m.events", schema=SCHEMA, format=fmt, partitioning=parse_partitioning("day(ts)"))
    for i in range(6):
        table.append(batch(i * 50, 50))
    writer_table = lh.table("m.events")
    next_id = [300]
    stop = threading.Event()
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            while not stop.is_set():  # a streaming writer: a micro-batch every 0.3 s
                writer_table.append(batch(next_id[0], 25))
                next_id[0] += 25
                time.sleep(0.3)
        except BaseException as e:  # surfaced by the assertion below
            errors.append(e)

    opts = CompactionOptions(target_file_size=8 * 1024 * KB)
    for _ in range(3):
        t = threading.Thread(target=writer)
        t.start()
        try:
            optimize(lh, "m.events", opts)
        finally:
            stop.set()
            t.join()
        stop.clear()
    assert not errors, errors
    got = [r["id"] for r in rows(table)]
    assert got == list(range(next_id[0])), "every appended row exactly once"


@pytest.mark.slow
@pytest.mark.parametrize("fmt_", ["delta", "iceberg"])
def test_upserting_writer_beside_compaction_keeps_the_latest_row_per_key(fmt_: str, tmp_path: Any) -> None:
    """An upsert (merge by key) reads the files it rewrites: a compaction that replaced them meanwhile is a
    real conflict, and the writer must start its merge over, never fail or double a row."""
    from lakehouse.config import load_settings
    from lakehouse.errors import CommitConflictError

    lh = Lakehouse(load_settings(config_file=False, warehouse=str(tmp_path / "wh")))
    table = lh.create_table(
        "m.events", schema=SCHEMA, format=fmt_, partitioning=parse_partitioning("day(ts)"), keys=["id"]
    )
    for i in range(6):
        table.append(batch(i * 50, 50))
    expected = {r["id"]: r for r in rows(table)}
    writer_table = lh.table("m.events")
    stop = threading.Event()
    errors: list[BaseException] = []

    def writer() -> None:
        n = 0
        try:
            while not stop.is_set():  # each micro-batch updates 20 existing keys and adds 10 new ones
                b = batch(n * 10, 30).to_pylist()
                for r in b:
                    r["s"] = f"v{n}"
                data = pa.Table.from_pylist(b, schema=SCHEMA)
                writer_table.upsert(data, keys=["id"])
                expected.update({r["id"]: r for r in data.to_pylist()})
                n += 1
                time.sleep(0.2 if fmt_ == "delta" else 0.4)
        except BaseException as e:  # surfaced by the assertion below
            errors.append(e)

    thread = threading.Thread(target=writer)
    thread.start()
    opts = CompactionOptions(target_file_size=8 * 1024 * KB)
    compacted = 0
    try:
        for _ in range(4):
            try:
                compacted += optimize(lh, "m.events", opts).rows_in > 0
            except CommitConflictError:  # the compaction may lose a race; the writer may not
                pass
            time.sleep(0.3)
    finally:
        stop.set()
        thread.join()
    assert not errors, errors
    assert compacted, "at least one compaction ran beside the writer"
    assert rows(lh.table("m.events")) == [expected[k] for k in sorted(expected)]


@pytest.mark.parametrize("fmt_", ["delta", "iceberg"])
def test_an_upsert_that_read_before_a_compaction_committed_merges_again(
    fmt_: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Deterministically: the writer's table state is held stale until its merge starts, so the merge reads
    the files a compaction has just replaced. Its commit must not land on top (that would double rows); the
    upsert starts over on the new version."""
    from lakehouse.config import load_settings

    lh = Lakehouse(load_settings(config_file=False, warehouse=str(tmp_path / "wh")))
    table = lh.create_table(
        "m.events", schema=SCHEMA, format=fmt_, partitioning=parse_partitioning("day(ts)"), keys=["id"]
    )
    for i in range(6):
        table.append(batch(i * 50, 50))
    expected = {r["id"]: r for r in rows(table)}
    writer = lh.table("m.events")
    writer.row_count()  # the writer's state: before the compaction
    calls = {"merge": 0}
    if fmt_ == "delta":
        dt_ = writer._dt  # type: ignore[attr-defined]
        real_update, real_merge = dt_.update_incremental, dt_.merge

        def merge(*args: Any, **kwargs: Any) -> Any:
            calls["merge"] += 1
            dt_.update_incremental = real_update  # from the first merge on, refreshes are real again
            return real_merge(*args, **kwargs)

        dt_.update_incremental = lambda: None
        dt_.merge = merge
    else:
        from pyiceberg.table import Transaction

        ice = writer._table  # type: ignore[attr-defined]
        real_refresh, real_upsert = ice.refresh, Transaction.upsert

        def upsert(self: Any, *args: Any, **kwargs: Any) -> Any:
            calls["merge"] += 1
            ice.refresh = real_refresh  # from the first merge on, refreshes are real again
            return real_upsert(self, *args, **kwargs)

        ice.refresh = lambda: ice
        monkeypatch.setattr(Transaction, "upsert", upsert)
    assert optimize(lh, "m.events", CompactionOptions(target_file_size=8 * 1024 * KB)).rows_in == 300
    update = batch(0, 30).to_pylist()
    for r in update:
        r["s"] = "updated"
    writer.upsert(pa.Table.from_pylist(update, schema=SCHEMA), keys=["id"])
    expected.update({r["id"]: r for r in update})
    assert rows(lh.table("m.events")) == [expected[k] for k in sorted(expected)], "no row lost or doubled"
    if fmt_ == "delta":
        assert calls["merge"] == 2, "the merge on the stale state conflicted and ran again on the new version"
    else:
        assert calls["merge"] >= 1


def _file_ranges(lh: Lakehouse, files: list[Any], column: str) -> list[tuple[Any, Any]]:
    out = []
    for f in files:
        filesystem, path = split_location(f.path, lh.ctx)
        with filesystem.open_input_file(path) as fh:
            meta = pq.ParquetFile(fh).metadata
        idx = meta.schema.to_arrow_schema().get_field_index(column)
        lo = min(meta.row_group(g).column(idx).statistics.min for g in range(meta.num_row_groups))
        hi = max(meta.row_group(g).column(idx).statistics.max for g in range(meta.num_row_groups))
        out.append((lo, hi))
    return out


def _pruned_share(ranges: list[tuple[Any, Any]], lo: Any, hi: Any) -> float:
    return sum(1 for a, b in ranges if b < lo or a > hi) / len(ranges)


def test_zorder_prunes_by_statistics(lh: Lakehouse, fmt: str) -> None:
    table = lh.create_table("m.points", schema=SCHEMA, format=fmt)
    data = batch(0, 40_000, days=1)
    for i in range(4):
        table.append(data.slice(i * 10_000, 10_000))
    expected = rows(table)
    target = 32 * KB
    optimize(lh, "m.points", CompactionOptions(target_file_size=target, small_file_fraction=1.0, min_input_files=1))
    plain = table.files()
    optimize(lh, "m.points", CompactionOptions(target_file_size=target, zorder=("a", "b"), row_group_rows=2048))
    zfiles = table.files()
    assert len(zfiles) >= 8, [f.size_bytes for f in zfiles]
    assert rows(table) == expected
    share_a = _pruned_share(_file_ranges(lh, zfiles, "a"), 100, 120)
    share_b = _pruned_share(_file_ranges(lh, zfiles, "b"), 10.0, 12.0)
    assert share_a >= 0.5 and share_b >= 0.5, (share_a, share_b, len(zfiles))
    # far better than the same data compacted without clustering
    assert _pruned_share(_file_ranges(lh, plain, "a"), 100, 120) < share_a
    # the same figure from the table's own statistics, as `lakehouse table show --predicate` reports it, and the
    # row groups inside the files
    from lakehouse.maintenance.health import file_health

    health = file_health(table, predicate="a BETWEEN 100 AND 120")["data_skipping"]
    assert health["share_prunable"] == pytest.approx(share_a, abs=0.01)
    assert health["share_row_groups_prunable"] >= share_a and health["rows_read"] < 0.5 * health["rows"]
    assert file_health(table, predicate="b >= 10.0 AND b <= 12.0")["data_skipping"]["share_prunable"] >= 0.5
    # a second Z-order on the same columns with no new files is skipped
    again = optimize(lh, "m.points", CompactionOptions(target_file_size=target, zorder=("a", "b")))
    assert again.partitions == [] and "already clustered as hilbert:a,b" in again.plan.partitions[0].reason
    assert partition_key({}) == again.plan.partitions[0].key


def test_optimize_cli(tmp_path: Any) -> None:
    import json
    import os
    import subprocess
    import sys

    from lakehouse.config import load_settings

    wh = str(tmp_path / "wh")
    with Lakehouse(load_settings(config_file=False, warehouse=wh)) as lh:
        t = lh.create_table("m.events", schema=SCHEMA, format="iceberg", partitioning=parse_partitioning("day(ts)"))
        for i in range(5):
            t.append(batch(i * 30, 30))
    exe = os.path.join(os.path.dirname(sys.executable), "lakehouse")

    def run(*args: str) -> Any:
        proc = subprocess.run([exe, "-w", wh, *args, "--json"], capture_output=True, text=True, check=False)
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)

    plan = run("optimize", "m.events", "--dry-run")
    assert plan["dry_run"] and plan["plan"]["partitions_picked"] == 3 and plan["plan"]["input_files"] == 15
    done = run("optimize", "m.events", "--target-size", "64MB")
    assert done["files_before"] == 15 and done["files_after"] == 3 and done["rows_in"] == done["rows_out"] == 150
    assert run("optimize", "m.events")["partitions"] == []
    show = run("table", "show", "m.events", "--predicate", "ts < '2026-04-02T00:00:00Z'")
    assert show["health"]["files"] == 3 and show["health"]["data_skipping"]["files_prunable"] == 2
    jobs = run("jobs", "m.events")  # newest first: the run that found nothing to do is in the history too
    assert [(j["kind"], j["state"]) for j in jobs] == [("optimize", "skipped"), ("optimize", "committed")]
    assert jobs[1]["metrics"]["rows_out"] == 150
    with Lakehouse(load_settings(config_file=False, warehouse=wh)) as lh:  # and each run's lineage completes
        runs = {}
        for e in lh.catalog.lineage_events(limit=1000):
            if e["job"]["name"] == "lakehouse.optimize":
                runs.setdefault(e["run"]["runId"], []).append(e["eventType"])
        assert sorted(sorted(r) for r in runs.values()) == [["COMPLETE", "START"], ["COMPLETE", "START"]], runs


def test_zorder_larger_than_the_memory_budget_spills(tmp_path: Any) -> None:
    """A partition several times the memory budget still Z-orders (DuckDB sorts out of core)."""
    from lakehouse.config import load_settings

    lh = Lakehouse(load_settings(config_file=False, warehouse=str(tmp_path / "wh")))
    table = lh.create_table("m.big", schema=SCHEMA, format="iceberg")
    n = 1_200_000
    data = batch(0, n, days=1)
    data = data.set_column(4, "s", pa.array([f"{i:08d} some padding text to make rows wider" for i in range(n)]))
    for i in range(3):
        table.append(data.slice(i * n // 3, n // 3))
    raw_bytes = data.nbytes
    budget = 64 * 1024 * KB
    assert raw_bytes > 1.4 * budget, raw_bytes
    result = optimize(lh, "m.big", CompactionOptions(zorder=("a", "b"), memory_budget=budget))
    assert result.rows_in == result.rows_out == n
    assert table.row_count() == n
    assert sorted(table.scan(columns=["id"])["id"].to_pylist()) == list(range(n))


@pytest.mark.parametrize("fmt_", ["delta", "iceberg"])
def test_zorder_partitions_with_null_and_quoted_values(fmt_: str, tmp_path: Any) -> None:
    from lakehouse.config import load_settings

    lh = Lakehouse(load_settings(config_file=False, warehouse=str(tmp_path / "wh")))
    table = lh.create_table("m.p", schema=SCHEMA, format=fmt_, partitioning=parse_partitioning("s"))
    for i in range(3):
        data = batch(i * 90, 90)
        data = data.set_column(4, "s", pa.array([(None, "o'hara", "x y", "007", "")[j % 5] for j in range(90)]))
        table.append(data)
    expected = rows(table)
    result = optimize(lh, "m.p", CompactionOptions(zorder=("a", "b")))
    assert rows(table) == expected
    # every partition, the NULL one too (Delta: the swap keeps each file's partition values from the log)
    assert result.rows_in == result.rows_out == 270
    assert len(table.files()) == (4 if fmt_ == "delta" else 5)  # Delta stores "" and NULL partitions alike
    with pytest.raises(Exception, match="partition column"):
        optimize(lh, "m.p", CompactionOptions(zorder=("s",)))


def test_compaction_keeps_the_sign_of_zero(lh: Lakehouse, fmt: str) -> None:
    """DuckDB's Parquet dictionaries hold -0.0 and 0.0 as one value (the first seen in a row group): the verified
    rewrite sees it and writes again without dictionaries, so both zeros survive."""
    import math

    table = lh.create_table("m.zeros", schema=SCHEMA, format=fmt)
    for i in range(3):
        data = batch(i * 40, 40)
        table.append(data.set_column(3, "b", pa.array([(0.0, -0.0, 1.5)[j % 3] for j in range(40)], pa.float64())))
    result = optimize(lh, "m.zeros", CompactionOptions(min_input_files=2))
    assert result.rows_in == result.rows_out == 120 and len(table.files()) == 1
    signs = [math.copysign(1, v) for v in table.scan(columns=["b"]).column("b").to_pylist() if v == 0]
    assert signs.count(-1.0) == 3 * 13 and signs.count(1.0) == 3 * 14


def test_rewritten_columns_of_many_values_are_not_dictionary_encoded(lh: Lakehouse, fmt: str) -> None:
    """A rewrite keeps a column of few values dictionary-encoded and writes one of thousands of distinct values
    per row group plain (DuckDB's default would build and keep a dictionary of up to a fifth of the group)."""
    from lakehouse.maintenance.compaction import DICTIONARY_ENTRIES

    n, distinct = 60_000, 8192
    assert DICTIONARY_ENTRIES < distinct < n // 5  # DuckDB's own limit would keep a dictionary of `distinct`
    table = lh.create_table("m.enc", schema=SCHEMA, format=fmt)
    for i in range(2):
        data = batch(i * n, n, days=1)
        # `a`: more distinct values than the cap, fewer than DuckDB's default limit for the group (n // 5)
        a = pa.array([j % distinct for j in range(i * n, (i + 1) * n)], pa.int64())
        table.append(data.set_column(2, "a", a).set_column(4, "s", pa.array([f"c{j % 30}" for j in range(n)])))
    expected = rows(table)
    optimize(lh, "m.enc", CompactionOptions(min_input_files=2, row_group_rows=n))
    (only,) = table.files()
    filesystem, path = split_location(only.path, lh.ctx)
    with filesystem.open_input_file(path) as fh:
        meta = pq.ParquetFile(fh).metadata
    names = meta.schema.to_arrow_schema().names

    def dictionary(group: int, column: str) -> bool:
        return any("DICTIONARY" in e for e in meta.row_group(group).column(names.index(column)).encodings)

    assert meta.num_row_groups == 2
    for g in range(meta.num_row_groups):
        assert dictionary(g, "s"), "30 values: a dictionary"
        assert not dictionary(g, "a"), "8,192 values: plain"
    assert rows(table) == expected


def test_compaction_of_infinite_and_nan_floats_leaves_a_readable_table(lh: Lakehouse, fmt: str) -> None:
    """A float column holding infinities and NaN: the rewritten files' statistics cannot carry them in a Delta log
    (JSON has neither: the old code wrote `Infinity`, and in a property test delta-rs's log reader then failed on
    it, after the commit had landed, so the job could not tell whether it had), so the column gets no bounds there;
    the rows are kept exactly and the table reads and filters through SQL."""
    import math

    table = lh.create_table("m.inf", schema=SCHEMA, format=fmt)
    # DuckDB's writer keeps no bounds for a column chunk holding NaN: the other two files carry infinities only
    specials = [[float("inf"), 1.5], [float("-inf"), float("inf")], [float("nan"), float("inf")]]
    for i in range(3):
        data = batch(i * 8, 8)
        table.append(data.set_column(3, "b", pa.array([specials[i][j % 2] for j in range(8)], pa.float64())))
    expected = rows(table)
    result = optimize(lh, "m.inf", CompactionOptions(min_input_files=2, row_group_rows=8))
    assert result.rows_in == result.rows_out == 24 and len(lh.table("m.inf").files()) == 1

    def same(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> bool:
        key = [{**r, "b": "nan" if isinstance(r["b"], float) and math.isnan(r["b"]) else r["b"]} for r in a]
        return key == [{**r, "b": "nan" if isinstance(r["b"], float) and math.isnan(r["b"]) else r["b"]} for r in b]

    assert same(rows(lh.table("m.inf")), expected)
    got = lh.query("SELECT count(*) AS n, count(*) FILTER (WHERE isinf(b)) AS inf FROM m.inf").table.to_pylist()
    assert got == [{"n": 24, "inf": 16}]
    # a predicate on the column: a reader that skips files by their statistics parses them
    above = sum(1 for r in expected if math.isnan(r["b"]) or r["b"] > 100)  # DuckDB orders NaN above infinity
    assert lh.query("SELECT count(*) AS n FROM m.inf WHERE b > 100").table.to_pylist() == [{"n": above}]
    if fmt == "delta":  # every statistic in the log is JSON proper
        import json

        def refuse(constant: str) -> None:
            raise AssertionError(f"{constant} in a Delta log entry")

        assert [s.version for s in lh.table("m.inf").snapshots()] == [0, 1, 2, 3, 4]
        filesystem, log = split_location(lh.table("m.inf").location.rstrip("/") + "/_delta_log", lh.ctx)
        from pyarrow import fs as pafs

        for info in filesystem.get_file_info(pafs.FileSelector(log)):
            if info.path.endswith(".json"):
                with filesystem.open_input_stream(info.path) as fh:
                    for line in fh.read().decode().splitlines():
                        action = json.loads(line, parse_constant=refuse)
                        if "add" in action and action["add"].get("stats"):
                            json.loads(action["add"]["stats"], parse_constant=refuse)


def test_delta_statistics_of_a_rewrite_let_other_readers_find_every_row(tmp_path: Any) -> None:
    """What lakehouse writes in the Delta log after a rewrite, read back by delta-rs's filtered reads and by
    lakehouse's own data skipping (`table show --predicate`): every row a filter matches is found. Before,
    delta-rs lost rows where a column had no bounds beside other columns' (a float reaching infinity), where a
    timestamp before year 1000 was written `999-...` (unreadable to it) and where a maximum with microseconds was
    truncated to milliseconds below the largest value; `table show` called such files skippable."""
    from deltalake import DeltaTable

    from lakehouse.config import load_settings
    from lakehouse.maintenance.health import data_skipping

    schema = pa.schema([("id", pa.int64()), ("f", pa.float64()), ("ts", pa.timestamp("us", tz="UTC"))])
    utc = dt.UTC
    values = [
        (1, 1.0, dt.datetime(2020, 1, 1, tzinfo=utc)),
        (2, float("inf"), dt.datetime(2024, 1, 1, 0, 0, 0, 999_999, tzinfo=utc)),
        (3, 2.0, dt.datetime(999, 1, 1, tzinfo=utc)),
    ]
    with Lakehouse(load_settings(config_file=False, warehouse=str(tmp_path / "wh"))) as lh:
        for name, rows_ in (("s.inf", values), ("s.finite", [(i, float(i), ts) for i, _, ts in values])):
            table = lh.create_table(name, schema=schema, format="delta")
            for i, f, ts in rows_:
                table.append(pa.table({"id": [i], "f": [f], "ts": [ts]}, schema=schema))
            optimize(lh, name, CompactionOptions(min_input_files=2))
            table = lh.table(name)
            assert len(table.files()) == 1
            reader = DeltaTable(table.location)
            for i, f, ts in rows_:
                for column, value in (("id", i), ("f", f), ("ts", ts)):
                    found = reader.to_pyarrow_table(filters=[(column, "=", value)]).column("id").to_pylist()
                    assert i in found, (name, column, value, found)
            for predicate in ("f = 1.0", "ts = '2024-01-01 00:00:00.999999+00'", "ts = '0999-01-01 00:00:00+00'"):
                matching = lh.query(f"SELECT count(*) AS n FROM {name} WHERE {predicate}").table.column("n")[0]
                skip = data_skipping(table, table.files(), predicate)
                assert skip["rows_read"] >= matching.as_py(), (name, predicate, skip)
