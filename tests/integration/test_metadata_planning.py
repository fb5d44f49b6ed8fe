"""Planning from metadata: Iceberg manifests pruned by their partition summaries, a Delta table's history and log
replay read once per process and then only the commits since (benchmarks/planning_bench.py measures the effect on
a 100,000-file table; these tests hold the results to what an unpruned, uncached read says)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pyarrow as pa
import pytest

from lakehouse.core import Lakehouse
from lakehouse.expr import parse_filter
from lakehouse.maintenance.compaction import optimize
from lakehouse.maintenance.planner import CompactionOptions, partition_key, plan_compaction
from lakehouse.maintenance.retention import plan_vacuum
from lakehouse.schema import PartitionField
from lakehouse.storage import delete_files, list_files, split_location
from lakehouse.tables.base import LazyStats
from tests.conftest import EVENTS, events, their_iceberg_table

DAY0 = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)


def _fresh(lh: Lakehouse) -> Any:
    """A handle on p.events with no plan of its snapshot in this process (one made earlier answers later
    handles: the pruning is what a first reader gets)."""
    from lakehouse.tables import iceberg

    iceberg._recent_plans.clear()
    iceberg._recent_files.clear()
    return lh.table("p.events")


def _literal(v: Any) -> str:
    return str(v) if isinstance(v, int) and not isinstance(v, bool) else f"'{v}'"


def _daily(lh: Lakehouse, fmt: str, partitioning: list[PartitionField], days: int = 4, step: int = 1) -> Any:
    table = lh.create_table("p.events", schema=EVENTS, format=fmt, partitioning=partitioning)
    for d in range(days):  # one append (one manifest) per day
        table.append(events(d * 40, 40, day0=DAY0 + dt.timedelta(days=d * step), days=1))
    return lh.table("p.events")


@pytest.mark.parametrize(
    ("partitioning", "prunes"),
    [
        ([PartitionField("ts", "day")], True),
        ([PartitionField("country")], False),  # every day's manifest holds every country: nothing to skip
        ([PartitionField("ts", "month")], False),  # '2026-03' does not bind to the stored month number
        ([PartitionField("id", "bucket", 4)], False),
    ],
    ids=["day", "identity", "month", "bucket"],
)
def test_iceberg_partition_pruning_never_misses_a_matching_file(
    lh: Lakehouse, partitioning: list[PartitionField], prunes: bool
) -> None:
    _daily(lh, "iceberg", partitioning, step=31)  # a day and a month per append
    everything = lh.table("p.events").files()
    field = partitioning[0].name
    values = sorted({f.partition[field] for f in everything if f.partition[field] is not None})
    assert len(values) > 1
    skipped_any = False
    for v in values:
        # a fresh handle: one that planned the whole snapshot already answers from that plan
        pruned = _fresh(lh).files(partitions=parse_filter(f"{field} = {_literal(v)}"))
        matching = {f.path for f in everything if f.partition[field] == v}
        assert matching <= {f.path for f in pruned}, f"{field} = {v}: pruning lost a matching file"
        skipped_any |= len(pruned) < len(everything)
    assert skipped_any is prunes
    # a range and a disjunction: still never fewer than the matching files
    lo, hi = values[0], values[-1]
    for text in (f"{field} > {_literal(lo)}", f"{field} = {_literal(lo)} OR {field} = {_literal(hi)}"):
        expr = parse_filter(text)
        from lakehouse.expr import evaluate

        pruned = {f.path for f in _fresh(lh).files(partitions=expr)}
        assert {f.path for f in everything if evaluate(expr, f.partition) is True} <= pruned


def test_iceberg_optimize_with_partition_reads_only_matching_manifests_and_plans_the_same(lh: Lakehouse) -> None:
    table = _daily(lh, "iceberg", [PartitionField("ts", "day")])
    for d in range(4):  # a second small file per day
        table.append(events(1000 + d * 40, 40, day0=DAY0 + dt.timedelta(days=d), days=1))
    table = _fresh(lh)
    options = CompactionOptions(target_file_size=64 << 20)
    where = "ts_day = '2026-03-02'"
    pruned = table.files(partitions=parse_filter(where))
    assert 0 < len(pruned) < len(lh.table("p.events").files())
    full_plan = plan_compaction(str(table.name), table.files(), options, partition_filter=where)
    _fresh(lh)
    result = optimize(lh, "p.events", options, partition_filter=where, dry_run=True)
    assert [(p.key, sorted(f.path for f in p.inputs)) for p in result.plan.picked] == [
        (p.key, sorted(f.path for f in p.inputs)) for p in full_plan.picked
    ]
    assert [p.partition["ts_day"] for p in result.plan.picked] == ["2026-03-02"]
    # and the rewrite of that partition alone keeps every row
    before = lh.table("p.events").scan().sort_by("id")
    done = optimize(lh, "p.events", options, partition_filter=where)
    assert [(p.files_before, p.files_after) for p in done.partitions if p.status == "committed"] == [(2, 1)]
    assert lh.table("p.events").scan().sort_by("id").equals(before)
    per_day: dict[str, int] = {}
    for f in lh.table("p.events").files():
        per_day[partition_key(f.partition)] = per_day.get(partition_key(f.partition), 0) + 1
    assert sorted(per_day.values()) == [1, 2, 2, 2]


def _fresh_history(table: Any) -> list[tuple[int, Any]]:
    from lakehouse.tables import delta

    delta._forget_log(table.ctx, table.location)
    return [(s.version, s.timestamp) for s in table.snapshots()]


def test_delta_history_is_read_once_then_only_the_new_commits(lh: Lakehouse) -> None:
    table = lh.create_table("p.events", schema=EVENTS, format="delta")
    for i in range(3):
        table.append(events(i * 10, 10))
    first = [(s.version, s.timestamp) for s in lh.table("p.events").snapshots()]
    assert [v for v, _ in first] == [0, 1, 2, 3]
    other = Lakehouse(lh.settings)  # a writer elsewhere adds two versions
    try:
        other.table("p.events").append(events(100, 10))
        other.table("p.events").append(events(110, 10))
    finally:
        other.close()
    reopened = lh.table("p.events")
    cached = [(s.version, s.timestamp) for s in reopened.snapshots()]
    assert cached == _fresh_history(reopened)
    assert [v for v, _ in cached] == [0, 1, 2, 3, 4, 5]
    assert reopened.snapshots()[-1].is_current and not reopened.snapshots()[-2].is_current


def test_delta_history_cache_notices_a_log_trimmed_elsewhere(lh: Lakehouse) -> None:
    table = lh.create_table("p.events", schema=EVENTS, format="delta")
    for i in range(3):
        table.append(events(i * 10, 10))
    assert [s.version for s in lh.table("p.events").snapshots()] == [0, 1, 2, 3]
    sealed = lh.table("p.events").seal_history()  # a commit and a checkpoint at it
    log = f"{table.location.rstrip('/')}/_delta_log"
    # another process's log cleanup: the commit files before the checkpoint go, behind this process's back
    doomed = [f.path for f in list_files(log, lh.ctx, recursive=False)
              if f.path.endswith(".json") and int(f.path.rsplit("/", 1)[-1][:20]) < sealed]  # fmt: skip
    delete_files(doomed, lh.ctx)
    reopened = lh.table("p.events")
    versions = [s.version for s in reopened.snapshots()]
    assert versions == [sealed]
    assert versions == [v for v, _ in _fresh_history(reopened)]


def test_delta_log_replay_is_kept_until_the_log_changes(lh: Lakehouse) -> None:
    table = lh.create_table("p.events", schema=EVENTS, format="delta")
    for i in range(3):
        table.append(events(i * 10, 10))
    lh.table("p.events").delete_rows("id < 5")
    plan1 = plan_vacuum(lh, "p.events", retain="0s")
    lh.table("p.events").delete_rows("id < 15")  # a new commit: the replay must see it
    plan2 = plan_vacuum(lh, "p.events", retain="0s")
    from lakehouse.tables import delta

    delta._forget_log(table.ctx, table.location)
    plan3 = plan_vacuum(lh, "p.events", retain="0s")
    assert [f.path for f in plan2.files] == [f.path for f in plan3.files]
    assert {f.path for f in plan1.files} < {f.path for f in plan2.files}


def test_shared_listing_answers_every_listing_below_it_as_a_fresh_one_would(lh: Lakehouse, fmt: str) -> None:
    from lakehouse.storage import list_objects, shared_listings

    table = lh.create_table("p.events", schema=EVENTS, format=fmt, partitioning=[PartitionField("ts", "day")])
    for i in range(3):
        table.append(events(i * 10, 10))
    root = table.location.rstrip("/")
    sub = {f.path.rsplit("/", 1)[0] for f in lh.table("p.events").files()}.pop()
    fresh = {
        "all": list_files(root, lh.ctx),
        "sub": list_files(sub, lh.ctx),
        "flat": list_files(sub, lh.ctx, recursive=False),
        "objects": list_objects(root, lh.ctx),
    }
    with shared_listings():
        first = list_objects(root, lh.ctx)
        table.append(events(100, 10))  # written after the shared listing: not in it (as documented)
        shared = {
            "all": list_files(root, lh.ctx),
            "sub": list_files(sub, lh.ctx),
            "flat": list_files(sub, lh.ctx, recursive=False),
            "objects": list_objects(root, lh.ctx),
        }
    assert {o.path for o in first} == {o.path for o in fresh["objects"]}
    for k in fresh:
        assert sorted((o.path, o.size) for o in shared[k]) == sorted((o.path, o.size) for o in fresh[k]), k
    assert len(list_files(root, lh.ctx)) > len(fresh["all"])  # outside the block: listed again


def test_iceberg_plans_and_manifest_reads_are_shared_by_later_handles_and_match_fresh_ones(lh: Lakehouse) -> None:
    from lakehouse.tables import iceberg

    _daily(lh, "iceberg", [PartitionField("ts", "day")])
    first = sorted(f.path for f in lh.table("p.events").files())
    paths_first = lh.table("p.events").version_paths(None)
    lh.table("p.events").append(events(900, 10, day0=DAY0))  # a new snapshot: planned anew
    second = sorted(f.path for f in lh.table("p.events").files())
    assert set(first) < set(second)
    paths_second = lh.table("p.events").version_paths(None)
    iceberg._recent_plans.clear()
    iceberg._recent_files.clear()
    iceberg._manifest_paths.clear()
    iceberg._manifest_lists.clear()
    assert sorted(f.path for f in lh.table("p.events").files()) == second
    assert lh.table("p.events").version_paths(None) == paths_second
    assert paths_first < paths_second


def test_delta_history_of_a_table_created_again_at_the_same_location_is_its_own(lh: Lakehouse) -> None:
    table = lh.create_table("p.events", schema=EVENTS, format="delta")
    location = table.location
    for i in range(2):
        table.append(events(i * 10, 10))
    old = {s.timestamp for s in lh.table("p.events").snapshots()}
    lh.drop_table("p.events", purge=True)
    again = lh.create_table("p.events", schema=EVENTS, format="delta", location=location)
    for i in range(4):  # past the old table's newest version: a cache keyed by location alone would extend it
        again.append(events(100 + i * 10, 10))
    snaps = lh.table("p.events").snapshots()
    assert [s.version for s in snaps] == [0, 1, 2, 3, 4]
    assert [(s.version, s.timestamp) for s in snaps] == _fresh_history(lh.table("p.events"))
    assert not old & {s.timestamp for s in snaps}  # nothing of the dropped table's history


def test_delta_commit_read_again_when_its_file_changed(tmp_path: Any) -> None:
    """A kept commit is used again only while the log's listing shows the size and time it was read at: a commit
    file written over (a store without a commit lock) is read anew, by the history and by the log replay."""
    import json
    import os

    from lakehouse.config import load_settings

    lh = Lakehouse(load_settings(config_file=False, warehouse=str(tmp_path / "wh"), catalog_url="sqlite://"))
    table = lh.create_table("p.events", schema=EVENTS, format="delta")
    for i in range(2):
        table.append(events(i * 10, 10))
    before = lh.table("p.events").snapshots()
    assert before[1].operation == "write"
    lifetimes = lh.table("p.events").file_lifetimes()
    commit = f"{table.location.rstrip('/')}/_delta_log/{1:020d}.json"
    with open(commit) as fh:
        actions = [json.loads(line) for line in fh if line.strip()]
    for a in actions:
        if "commitInfo" in a:
            a["commitInfo"]["operation"] = "STREAMING UPDATE"
    with open(commit, "w") as fh:
        fh.write("\n".join(json.dumps(a) for a in actions) + "\n")
    os.utime(commit, (before[1].timestamp.timestamp() + 5, before[1].timestamp.timestamp() + 5))
    after = lh.table("p.events").snapshots()
    assert after[1].operation == "streaming-update"
    assert lh.table("p.events").file_lifetimes() == lifetimes  # same files: replayed anew, the same
    lh.close()


@pytest.mark.parametrize("table_format", ["delta", "iceberg"])
def test_file_list_is_made_once_per_version_for_every_consumer_and_anew_after_a_commit(
    lh: Lakehouse, monkeypatch: pytest.MonkeyPatch, table_format: str
) -> None:
    """health's consumers (file health, reconciliation, tiering, the compaction plan) share one list of a version's
    files; a new version (and on Iceberg a schema change, which keeps the snapshot) is listed anew, and the kept
    list equals a fresh one."""
    from lakehouse.maintenance.maintain import health
    from lakehouse.tables import delta, iceberg

    adapter = delta.DeltaAdapter if table_format == "delta" else iceberg.IcebergAdapter
    table = lh.create_table("p.events", schema=EVENTS, format=table_format, partitioning=[PartitionField("country")])
    for i in range(3):
        table.append(events(i * 10, 10))
    delta._files_cache.clear()
    iceberg._recent_files.clear()
    made = []
    real = adapter._list_files

    def counting(self: Any, *args: Any, **kwargs: Any) -> Any:
        made.append(self.name)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(adapter, "_list_files", counting)
    health(lh, "p.events")
    assert len(made) == 1
    kept = lh.table("p.events").files()
    table.append(events(100, 10))
    after = lh.table("p.events").files()
    assert len(made) == 2
    assert {f.path for f in kept} < {f.path for f in after}
    lh.table("p.events").add_columns([pa.field("extra", pa.string())])  # Iceberg: a new schema, the same snapshot
    lh.table("p.events").files()
    assert len(made) == 3
    delta._files_cache.clear()
    iceberg._recent_files.clear()
    fresh = lh.table("p.events").files()
    assert sorted(map(_file_key, lh.table("p.events").files())) == sorted(map(_file_key, fresh))
    assert {f.path for f in fresh} == {f.path for f in after}


@pytest.mark.parametrize("table_format", ["delta", "iceberg"])
def test_health_and_cost_open_the_table_once_and_a_table_outside_them_is_opened_anew(
    lh: Lakehouse, monkeypatch: pytest.MonkeyPatch, table_format: str
) -> None:
    """Within a read-only measurement (shared_listings: health, the cost report) every part gets the table opened
    at the block's first lh.table(); anywhere else each lh.table() opens it (a writer sees the latest version)."""
    from lakehouse.maintenance.maintain import health
    from lakehouse.maintenance.reconcile import reconcile
    from lakehouse.maintenance.tiering import table_cost
    from lakehouse.storage import shared_listings
    from lakehouse.tables import delta, iceberg

    adapter = delta.DeltaAdapter if table_format == "delta" else iceberg.IcebergAdapter
    table = lh.create_table("p.events", schema=EVENTS, format=table_format, partitioning=[PartitionField("country")])
    for i in range(3):
        table.append(events(i * 10, 10))
    opened: list[str] = []
    real = adapter.open.__func__  # type: ignore[attr-defined]

    def counting(cls: Any, name: Any, **kwargs: Any) -> Any:
        opened.append(str(name))
        return real(cls, name, **kwargs)

    monkeypatch.setattr(adapter, "open", classmethod(counting))
    health(lh, "p.events")
    assert opened == ["p.events"]
    with shared_listings():
        reconcile(lh, "p.events")
        table_cost(lh, "p.events")
    assert opened == ["p.events"] * 2
    first = lh.table("p.events")
    before = {f.path for f in first.files()}
    table.append(events(100, 10))
    second = lh.table("p.events")
    assert opened == ["p.events"] * 4
    assert second is not first and {f.path for f in second.files()} > before


def _file_key(f: Any) -> tuple[Any, ...]:
    return (f.path, f.size_bytes, f.row_count, partition_key(f.partition), sorted(f.stats.items()))


def test_delta_file_list_is_made_anew_when_a_commit_file_was_written_over(tmp_path: Any) -> None:
    """A commit file written over (a store without a commit lock) under the same version: the kept list is not
    used, because its add actions differ."""
    import json

    from lakehouse.config import load_settings

    lh = Lakehouse(load_settings(config_file=False, warehouse=str(tmp_path / "wh"), catalog_url="sqlite://"))
    table = lh.create_table("p.events", schema=EVENTS, format="delta")
    for i in range(2):
        table.append(events(i * 10, 10))
    assert sum(f.row_count for f in lh.table("p.events").files()) == 20
    commit = f"{table.location.rstrip('/')}/_delta_log/{2:020d}.json"
    with open(commit) as fh:
        actions = [json.loads(line) for line in fh if line.strip()]
    for a in actions:
        if "add" in a:
            stats = json.loads(a["add"]["stats"])
            stats["numRecords"] -= 3
            a["add"]["stats"] = json.dumps(stats)
    with open(commit, "w") as fh:
        fh.write("\n".join(json.dumps(a) for a in actions) + "\n")
    assert sum(f.row_count for f in lh.table("p.events").files()) == 17
    lh.close()


def test_iceberg_files_of_every_version_read_by_duckdb_equal_pyiceberg_across_specs_and_deletes(lh: Lakehouse) -> None:
    """Manifests of two partition specs (their partition structs differ, so DuckDB reads them one by one) and a
    manifest rewritten by a delete (entries marked deleted): the files of every version DuckDB's Avro reader
    finds equal pyiceberg's, on a local warehouse and on S3."""
    from pyiceberg.transforms import BucketTransform

    from tests.conformance.harness import check_file_list, check_version_paths

    table = lh.create_table("p.events", schema=EVENTS, format="iceberg", partitioning=[PartitionField("country")])
    for i in range(3):
        table.append(events(i * 10, 10))
    native = lh.table("p.events")._table  # type: ignore[attr-defined]
    with native.update_spec() as spec:
        spec.add_field("id", BucketTransform(4), "id_bucket")
    for i in range(3, 5):
        lh.table("p.events").append(events(i * 10, 10))
    lh.table("p.events").delete_rows("id < 15")
    assert len({f.partition.get("id_bucket") is None for f in lh.table("p.events").files()}) == 2  # both specs live
    check_version_paths(lh, "p.events")
    check_file_list(lh, "p.events")


def test_iceberg_files_of_every_version_read_by_duckdb_equal_pyiceberg_after_a_v1_to_v2_upgrade(
    lh: Lakehouse,
) -> None:
    """Format v1 manifests (no ``content`` field: the file path is the data file's first field) beside v2 ones
    after an upgrade, read in one DuckDB statement: the paths are still found by name, equal to pyiceberg's."""
    from tests.conformance.harness import check_file_list, check_version_paths

    table = lh.create_table(
        "p.events", schema=EVENTS, format="iceberg", partitioning=[PartitionField("country")],
        properties={"format-version": "1"},
    )  # fmt: skip
    for i in range(2):
        table.append(events(i * 10, 10))
    native = lh.table("p.events")._table  # type: ignore[attr-defined]
    assert native.metadata.format_version == 1
    with native.transaction() as tx:
        tx.upgrade_table_version(format_version=2)
    for i in range(2, 4):
        lh.table("p.events").append(events(i * 10, 10))
    lh.table("p.events").delete_rows("id < 15")
    assert lh.table("p.events")._table.metadata.format_version == 2  # type: ignore[attr-defined]
    check_version_paths(lh, "p.events")
    check_file_list(lh, "p.events")


def test_iceberg_files_of_every_version_without_duckdb_are_pyiceberg_s(lh: Lakehouse, monkeypatch: Any) -> None:
    """DuckDB is the [sql] extra: without it the files of every version (orphan detection) are pyiceberg's reads,
    the same set."""
    from lakehouse import duck
    from lakehouse.errors import DependencyMissingError
    from lakehouse.tables import iceberg

    table = lh.create_table("p.events", schema=EVENTS, format="iceberg")
    for i in range(3):
        table.append(events(i * 10, 10))
    with_duckdb = lh.table("p.events").version_paths(None)
    iceberg._manifest_paths.clear()
    iceberg._manifest_lists.clear()

    def missing(*args: Any, **kwargs: Any) -> Any:
        raise DependencyMissingError("SQL needs duckdb", hint="pip install 'lakehouse[sql]'")

    monkeypatch.setattr(duck, "connect_duckdb", missing)
    assert lh.table("p.events").version_paths(None) == with_duckdb
    assert iceberg._manifest_paths.get(sorted(p for p in with_duckdb if p.endswith("-m0.avro"))[0]) is not None


def test_iceberg_file_lists_decoded_by_duckdb_equal_pyiceberg_s_for_every_partition_type(lh: Lakehouse) -> None:
    """The file list of an append-only snapshot on S3 is decoded by DuckDB's Avro reader where each partition
    value maps back to Iceberg's internal form (integers, strings, booleans, dates: identity columns and every
    transform whose result is one of those), and by pyiceberg otherwise (identity timestamps and decimals; local
    manifests); each equals the list made from pyiceberg's plan, NULL partition values included.
    ``check_file_list`` also fails when a manifest DuckDB should have decoded was left to pyiceberg, and compares
    DuckDB's decoding of every manifest (local ones too) with pyiceberg's, entry by entry."""
    import decimal

    from lakehouse.tables import iceberg
    from tests.conformance.harness import check_file_list

    schema = pa.schema(
        [
            pa.field("id", pa.int64(), nullable=False),
            pa.field("ts", pa.timestamp("us", tz="UTC")),
            pa.field("d", pa.date32()),
            pa.field("country", pa.string()),
            pa.field("flag", pa.bool_()),
            pa.field("n", pa.int32()),
            pa.field("price", pa.decimal128(9, 2)),
        ]
    )
    base = dt.datetime(2026, 3, 1, 22, tzinfo=dt.UTC)

    def rows(start: int) -> pa.Table:
        ids = list(range(start, start + 6))
        return pa.table(
            {
                "id": ids,
                "ts": [None if i % 5 == 0 else base + dt.timedelta(hours=7 * i) for i in ids],
                "d": [None if i % 4 == 0 else dt.date(2025, 12, 30) + dt.timedelta(days=i) for i in ids],
                "country": [None if i % 3 == 0 else ["fr", "de", "", "frx"][i % 4] for i in ids],
                "flag": [None if i % 6 == 0 else i % 2 == 0 for i in ids],
                "n": [None if i % 7 == 0 else i - 20 for i in ids],
                "price": [decimal.Decimal(i) / 4 for i in ids],
            },
            schema=schema,
        )

    layouts: dict[str, tuple[list[PartitionField], bool]] = {  # name: (partitioning, decoded by DuckDB)
        "none": ([], True),
        "identities": ([PartitionField(c) for c in ("country", "d", "n", "flag")], True),
        "times": ([PartitionField("ts", "day"), PartitionField("d", "month")], True),
        "years_hours": ([PartitionField("ts", "hour"), PartitionField("d", "year")], True),
        "bucket_truncate": ([PartitionField("id", "bucket", 4), PartitionField("country", "truncate", 2)], True),
        "identity_timestamp": ([PartitionField("ts")], False),
        "identity_decimal": ([PartitionField("price")], False),
    }  # fmt: skip
    for name, (partitioning, decodable) in layouts.items():
        table = lh.create_table(f"p.{name}", schema=schema, format="iceberg", partitioning=partitioning)
        for i in range(3):
            table.append(rows(i * 6))
        native = lh.table(f"p.{name}")._table  # type: ignore[attr-defined]
        specs = {m.partition_spec_id for m in native.current_snapshot().manifests(native.io)}
        assert bool(iceberg._partition_readers(native, specs)) == decodable, name
        check_file_list(lh, f"p.{name}")


def test_iceberg_local_manifests_are_decoded_by_duckdb_from_a_size_on_and_statistics_converted_when_asked(
    tmp_path: Any, monkeypatch: Any
) -> None:
    """On a local disk DuckDB decodes the manifests of a listing from :data:`LOCAL_DECODE_ENTRIES` entries on
    (pyiceberg below); its files' bounds stay in Arrow until a file's statistics are asked for, then the
    statement's are converted once; the files, statistics included, equal pyiceberg's reading either way, and
    statistics pickle as a plain dict."""
    import pickle

    from lakehouse.config import load_settings
    from lakehouse.tables import iceberg

    with Lakehouse(load_settings(config_file=False, warehouse=str(tmp_path / "wh"))) as lh:
        table = lh.create_table("p.events", schema=EVENTS, format="iceberg", partitioning=[PartitionField("country")])
        for i in range(3):
            table.append(events(i * 20, 20))
        entries = len(lh.table("p.events").files())
        statements: list[int] = []
        converted: list[int] = []
        tables, row = iceberg._AvroReads.tables, iceberg._Bounds.row

        def counted_tables(self: Any, locations: Any, sql: str) -> Any:
            statements.append(len(locations))
            return tables(self, locations, sql)

        def counted_row(self: Any, i: int) -> Any:
            converted.append(self._rows is None)
            return row(self, i)

        monkeypatch.setattr(iceberg._AvroReads, "tables", counted_tables)
        monkeypatch.setattr(iceberg._Bounds, "row", counted_row)

        def listing(threshold: int) -> list[Any]:
            monkeypatch.setattr(iceberg, "LOCAL_DECODE_ENTRIES", threshold)
            return _fresh(lh).files()

        theirs = listing(entries + 1)  # one entry short of the threshold: pyiceberg's
        assert statements == [] and converted == []
        ours = listing(entries)
        assert statements and sum(statements) == 3  # the three appends' manifests, in DuckDB
        assert converted == []  # listed, and no bounds converted yet
        assert all(isinstance(f.stats, LazyStats) for f in ours)
        assert [(f.path, dict(f.stats)) for f in ours] == [(f.path, dict(f.stats)) for f in theirs]
        assert converted.count(True) == len(statements)  # each statement's bounds converted once
        assert sorted(ours, key=lambda f: f.path) == sorted(theirs, key=lambda f: f.path)
        assert all(f.stats for f in ours) and {"id", "ts"} <= set(ours[0].stats)
        copy = pickle.loads(pickle.dumps(ours[0].stats))
        assert type(copy) is dict and copy == dict(theirs[[f.path for f in theirs].index(ours[0].path)].stats)


def _delta_statistics_as_logged(lh: Lakehouse, name: str) -> None:
    """``name``'s listing converts no file's statistics through a whole-table plan (with Z-order) and file
    health; asked, each file's are the log's add statistics as delta-rs reads them (under the logical names), each
    file's ``id`` statistics bound its rows, and they pickle as a plain dict."""
    import pickle

    import pyarrow.parquet as pq
    from deltalake import DeltaTable

    from lakehouse.maintenance.health import file_health

    table = lh.table(name)
    files = table.files()
    assert files and all(isinstance(f.stats, LazyStats) for f in files)
    plan_compaction(name, files, CompactionOptions(zorder=("id",)))
    file_health(table, files=files)
    assert all(f.stats._stats is None for f in files)  # nothing asked for them

    options = lh.ctx.credentials.delta_storage_options() if lh.ctx.credentials else None
    actions = pa.table(DeltaTable(table.location, storage_options=options).get_add_actions(flatten=True)).to_pylist()
    logged = {}
    for a in actions:
        logged[a["path"].rsplit("/", 1)[-1]] = {
            c: (a[f"min.{c}"], a[f"max.{c}"], a.get(f"null_count.{c}")) for c in table.schema.names if f"min.{c}" in a
        }
    assert {f.path.rsplit("/", 1)[-1]: dict(f.stats) for f in files} == logged
    for f in files:
        if f.stats.get("id", (None, None))[0] is None:
            continue
        filesystem, inner = split_location(f.path, lh.ctx)
        ids = pq.read_table(inner, columns=["id"], filesystem=filesystem).column("id").to_pylist()
        assert f.stats["id"][:2] == (min(ids), max(ids))
    copy = pickle.loads(pickle.dumps(files[0].stats))
    assert type(copy) is dict and copy == dict(files[0].stats)


def test_delta_statistics_stay_in_arrow_through_a_plan_and_health_and_equal_the_log_s_when_asked(
    lh: Lakehouse,
) -> None:
    """A Delta listing converts no file's statistics until one is asked for (whole-table plans, file health and
    the tiering plan of a table partitioned by day ask for none); asked, they are the log's (see
    :func:`_delta_statistics_as_logged`)."""
    from lakehouse.maintenance.tiering import plan_tiering

    table = lh.create_table("p.events", schema=EVENTS, format="delta", partitioning=[PartitionField("ts", "day")])
    for i in range(3):
        table.append(events(i * 20, 20))
    plan_tiering(lh, "p.events")
    assert all(f.stats._stats is None for f in lh.table("p.events").files())
    _delta_statistics_as_logged(lh, "p.events")


@pytest.mark.parametrize("writer", ["deltars_options", "legacy_no_stats", "int96"])
def test_delta_statistics_of_other_writers_stay_in_arrow_and_equal_the_log_s(
    lh: Lakehouse, writer: str, tmp_path: Any
) -> None:
    """The same on Delta tables other writers made: delta-rs with its writer options (partitioned, a column added
    later, so older files have no statistics for it), an older writer that recorded none, and Spark's INT96
    timestamps."""
    from tests.conformance.delta_writers import DELTA_WRITERS

    foreign = DELTA_WRITERS[writer](str(tmp_path / "table"))
    lh.register_table("p.foreign", location=foreign.location, format="delta")
    _delta_statistics_as_logged(lh, "p.foreign")


def test_partition_keys_are_made_once_per_mapping_and_group_as_per_file_keys_would(monkeypatch: Any) -> None:
    """Grouping files by partition makes one key per partition mapping (a listing shares a mapping among its
    files); mappings that are equal but distinct objects, and ones with values of other types, still group as
    :func:`partition_key` of each file says."""
    import datetime as dt

    from lakehouse.maintenance import planner
    from lakehouse.tables.base import DataFile

    shared = [{"day": dt.date(2026, 1, d)} for d in (1, 2)]
    mappings = [*shared, {"day": dt.date(2026, 1, 1)}, {"day": "2026-01-01"}, {"n": 1}, {"n": True}, {}]
    files = [DataFile(f"/t/{i}.parquet", 10, 1, mappings[i % len(mappings)]) for i in range(70)]
    expected: dict[str, list[Any]] = {}
    for f in files:
        expected.setdefault(partition_key(f.partition), []).append(f)

    made: list[Any] = []
    real = planner.partition_key

    def counted(partition: Any) -> str:
        made.append(partition)
        return real(partition)

    monkeypatch.setattr(planner, "partition_key", counted)
    assert planner.by_partition(files) == expected
    assert len(made) == len(mappings)  # once per mapping, not per file
    made.clear()
    assert [k for k, _f in planner.partition_keys(iter(files))] == [real(f.partition) for f in files]
    assert len(made) == len(mappings)


def test_iceberg_files_of_one_partition_share_its_mapping_and_signed_zeros_stay_apart(tmp_path: Any) -> None:
    """An Iceberg listing gives the files of one partition one shared mapping; float partition values are not
    shared by equality, so 0.0 and -0.0 stay their own partitions (a table another writer partitioned by a
    double: lakehouse itself refuses to)."""
    import math

    from pyiceberg.partitioning import PartitionField as IcebergField
    from pyiceberg.partitioning import PartitionSpec
    from pyiceberg.schema import Schema
    from pyiceberg.transforms import IdentityTransform
    from pyiceberg.types import DoubleType, LongType, NestedField, StringType

    from lakehouse.config import load_settings
    from lakehouse.tables import iceberg

    root = tmp_path / "theirs"
    schema = Schema(
        NestedField(1, "id", LongType(), required=False),
        NestedField(2, "country", StringType(), required=False),
        NestedField(3, "x", DoubleType(), required=False),
    )
    spec = PartitionSpec(
        IcebergField(source_id=2, field_id=1000, transform=IdentityTransform(), name="country"),
        IcebergField(source_id=3, field_id=1001, transform=IdentityTransform(), name="x"),
    )
    catalog, theirs = their_iceberg_table(root, schema, spec)
    arrow = pa.schema([pa.field("id", pa.int64()), pa.field("country", pa.string()), pa.field("x", pa.float64())])
    for i in range(4):
        theirs.append(pa.table({"id": [i], "country": ["DE"], "x": [0.0 if i % 2 else -0.0]}, schema=arrow))
    for i in range(3):
        theirs.append(pa.table({"id": [10 + i], "country": ["FR"], "x": [1.5]}, schema=arrow))
    catalog.engine.dispose()
    with Lakehouse(load_settings(config_file=False, warehouse=str(tmp_path / "wh"))) as lh:
        lh.register_table("p.zeros", location=str(root / "t"), format="iceberg")
        iceberg._recent_plans.clear()
        iceberg._recent_files.clear()
        files = lh.table("p.zeros").files()
        assert len(files) == 7
        signs = sorted(math.copysign(1, f.partition["x"]) for f in files if f.partition["country"] == "DE")
        assert signs == [-1, -1, 1, 1]
        mappings = {id(f.partition) for f in files if f.partition["country"] == "FR"}
        assert len(mappings) == 1  # three files, one mapping
        # a compaction keeps them apart too: each zero's files become one file of that zero's partition
        before = sorted((r["id"], math.copysign(1, r["x"])) for r in lh.table("p.zeros").scan().to_pylist())
        from lakehouse.maintenance.compaction import optimize
        from lakehouse.maintenance.planner import CompactionOptions

        done = optimize(lh, "p.zeros", CompactionOptions(), dry_run=False)
        assert done.version is not None and done.rows_in == done.rows_out == 7, done.as_dict()
        after = lh.table("p.zeros")
        assert sorted((r["id"], math.copysign(1, r["x"])) for r in after.scan().to_pylist()) == before
        de = sorted(math.copysign(1, f.partition["x"]) for f in after.files() if f.partition["country"] == "DE")
        assert de == [-1, 1], "one file per zero"
