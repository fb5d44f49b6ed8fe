"""Hot/warm/cold tiering: storage classes on the S3 server, tier directories on local storage, the cost
report against the store's own listing, and file swaps that refuse a concurrently removed input."""

from __future__ import annotations

import datetime as dt
import os
from typing import Any

import pyarrow as pa
import pytest

from lakehouse.config import load_settings
from lakehouse.core import Lakehouse
from lakehouse.errors import CommitConflictError, InvalidInputError, UnsupportedOperationError
from lakehouse.maintenance.compaction import optimize
from lakehouse.maintenance.planner import CompactionOptions
from lakehouse.maintenance.tiering import plan_tiering, table_cost, tier
from lakehouse.schema import parse_partitioning
from tests.conftest import EVENTS, events, s3_settings, sorted_rows, their_iceberg_table

AGES = {"hot": 1, "warm": 30, "cold": 200}  # days old


def aged_events(now: dt.datetime, start: int, per_day: int = 40) -> pa.Table:
    rows = []
    i = start
    for days in AGES.values():
        for k in range(per_day):
            ts = (now - dt.timedelta(days=days)).replace(hour=k % 24, minute=k % 60, second=0, microsecond=0)
            rows.append({"id": i, "ts": ts, "country": "DE", "amount": i * 0.5, "note": f"event number {i} " * 3})
            i += 1
    return pa.Table.from_pylist(rows, schema=EVENTS)


def _table(lh: Lakehouse, fmt: str) -> Any:
    table = lh.create_table("t.events", schema=EVENTS, format=fmt, partitioning=parse_partitioning("day(ts)"))
    now = dt.datetime.now(dt.UTC)
    for b in range(3):
        table.append(aged_events(now, b * 1000))
    return table


def _prefix_tier(key: str) -> str:
    return next((t for t in ("warm", "cold") if f"/tier-{t}/" in key), "hot")


def _tier_of_partition(table: Any, day_offset: int) -> list[Any]:
    day = (dt.datetime.now(dt.UTC) - dt.timedelta(days=day_offset)).date()
    return [f for f in table.files() if str(next(iter(f.partition.values()))) == day.isoformat()]


@pytest.mark.s3
def test_storage_classes_on_s3(s3_endpoint: Any, bucket: str, tmp_path: Any, fmt: str) -> None:
    with Lakehouse(s3_settings(s3_endpoint, bucket, tmp_path)) as lh:
        table = _table(lh, fmt)
        before = sorted_rows(table.scan())
        plan = plan_tiering(lh, "t.events")
        assert plan.method == "storage-class"
        actions = {g.target: g.action for g in plan.groups}
        assert actions == {"hot": "none", "warm": "set-class", "cold": "rewrite+set-class"}

        done = tier(lh, "t.events", dry_run=False)
        assert done.files_moved == 6 and done.files_rewritten == 3 and len(done.versions) == 1
        client = s3_endpoint.client()

        def classes(files: list[Any]) -> set[str]:
            out = set()
            for f in files:
                key = f.path.split("/", 3)[3]
                out.add(client.head_object(Bucket=bucket, Key=key).get("StorageClass", "STANDARD"))
            return out

        table = lh.table("t.events")
        assert classes(_tier_of_partition(table, AGES["hot"])) == {"STANDARD"}
        assert classes(_tier_of_partition(table, AGES["warm"])) == {"STANDARD_IA"}
        cold = _tier_of_partition(table, AGES["cold"])
        assert classes(cold) == {"GLACIER_IR"} and len(cold) == 1, "cold: recompressed into one file"
        assert all("/tier-cold/" in f.path for f in cold)
        assert sorted_rows(table.scan()) == before, "the table reads identically across tiers"
        assert lh.query("SELECT count(*) AS n, sum(id) AS s FROM t.events").table.to_pylist() == [
            {"n": len(before), "s": sum(r["id"] for r in before)}
        ]
        assert tier(lh, "t.events", dry_run=False).plan.moves == [], "a second run moves nothing"

        report = table_cost(lh, "t.events")
        cost = report.as_dict()
        listed = [
            o for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket) for o in page["Contents"]
        ]
        assert cost["bytes"] == sum(o["Size"] for o in listed) and cost["objects"] == len(listed)
        assert sum(t["bytes"] for t in cost["tiers"].values()) == cost["bytes"]
        assert set(cost["tiers"]) == {"hot", "warm", "cold"}
        prices = lh.settings.cost.prices
        # each object billed at least 128 KB in STANDARD_IA and GLACIER_IR (AWS's minimum billable object size)
        minimum = {"STANDARD_IA": 128 * 1024, "GLACIER_IR": 128 * 1024}
        expected = sum(
            max(o["Size"], minimum.get(o.get("StorageClass", "STANDARD"), 0))
            / 1024**3
            * prices[o.get("StorageClass", "STANDARD")]
            for o in listed
        )
        assert report.monthly_cost == pytest.approx(expected, rel=1e-6)
        hot = sum(o["Size"] for o in listed) / 1024**3 * prices["STANDARD"]
        # these files are a few KB: billed as 128 KB each once tiered, they cost more than kept hot
        assert report.all_hot_monthly_cost == pytest.approx(hot, rel=1e-6) and report.savings < 0
        assert cost["json_to_parquet_ratio"] > 1
        noop, job = lh.jobs("t.events")[:2]
        assert noop.kind == "tier" and noop.state == "skipped"
        assert job.kind == "tier" and job.state == "committed" and job.metrics["files_moved"] == 6


@pytest.mark.s3
def test_tier_prefixes_on_s3_are_priced_by_prefix(s3_endpoint: Any, bucket: str, tmp_path: Any) -> None:
    """A plain MinIO has no storage classes: tiers are prefixes, and the cost report follows the prefix (the
    store lists its default class for every object)."""
    with Lakehouse(s3_settings(s3_endpoint, bucket, tmp_path)) as lh:
        table = _table(lh, "delta")
        lh.set_policy("t.events", {"tiering": {"method": "prefix"}})
        assert tier(lh, "t.events", dry_run=False).files_rewritten == 6
        client = s3_endpoint.client()
        listed = [
            o for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket) for o in page["Contents"]
        ]
        assert {o.get("StorageClass", "STANDARD") for o in listed} == {"STANDARD"}
        report = table_cost(lh, "t.events")
        cost = report.as_dict()
        expected = {"hot": 0, "warm": 0, "cold": 0}
        for o in listed:
            tier_name = next((t for t in ("warm", "cold") if f"/tier-{t}/" in o["Key"]), "hot")
            expected[tier_name] += o["Size"]
        assert {k: v["bytes"] for k, v in cost["tiers"].items()} == expected
        assert cost["tiers"]["cold"]["storage_classes"] == {"GLACIER_IR": expected["cold"]}
        billed = {"hot": ("STANDARD", 0), "warm": ("STANDARD_IA", 128 * 1024), "cold": ("GLACIER_IR", 128 * 1024)}
        for tier_name, (cls, minimum) in billed.items():
            sizes = [o["Size"] for o in listed if _prefix_tier(o["Key"]) == tier_name]
            assert cost["tiers"][tier_name]["monthly_cost"] == pytest.approx(
                sum(max(x, minimum) for x in sizes) / 1024**3 * lh.settings.cost.prices[cls], abs=1e-6
            )
        assert sorted_rows(lh.table("t.events").scan()) == sorted_rows(table.scan())


def test_tier_directories_on_local_storage(tmp_path: Any, fmt: str) -> None:
    with Lakehouse(load_settings(config_file=False, warehouse=str(tmp_path / "wh"))) as lh:
        table = _table(lh, fmt)
        before = sorted_rows(table.scan())
        hot_files = {f.path for f in _tier_of_partition(table, AGES["hot"])}
        done = tier(lh, "t.events", dry_run=False)
        assert done.plan.method == "prefix" and done.files_rewritten == 6 and len(done.versions) == 2
        table = lh.table("t.events")
        assert {f.path for f in _tier_of_partition(table, AGES["hot"])} == hot_files, "hot data is not touched"
        assert all("/tier-warm/" in f.path for f in _tier_of_partition(table, AGES["warm"]))
        assert all("/tier-cold/" in f.path for f in _tier_of_partition(table, AGES["cold"]))
        assert sorted_rows(table.scan()) == before
        assert lh.query("SELECT count(*) AS n FROM t.events").table.to_pylist() == [{"n": len(before)}]
        # older versions still read their own files (a tier move is a commit, not a rename)
        first = min(s.version for s in table.snapshots() if table.row_count(as_of=s.version) > 0)
        assert len(table.scan(as_of=first)) == len(before) // 3
        cost = table_cost(lh, "t.events").as_dict()
        on_disk = [os.path.join(d, f) for d, _, fs in os.walk(table.location) for f in fs]
        assert cost["bytes"] == sum(os.path.getsize(p) for p in on_disk) and cost["objects"] == len(on_disk)
        assert cost["tiers"]["cold"]["storage_classes"] == {"GLACIER_IR": cost["tiers"]["cold"]["bytes"]}
        # moving back up when the policy changes: everything is hot again, in the table's data directory
        lh.set_policy("t.events", {"tiering": {"warm_after": "3650d", "cold_after": "7300d"}})
        back = tier(lh, "t.events", dry_run=False)
        assert back.files_rewritten == 2
        assert not any("/tier-" in f.path for f in lh.table("t.events").files())
        assert sorted_rows(lh.table("t.events").scan()) == before


def test_policy_errors_and_storage_class_on_local(tmp_path: Any) -> None:
    with Lakehouse(load_settings(config_file=False, warehouse=str(tmp_path / "wh"))) as lh:
        _table(lh, "delta")
        with pytest.raises(InvalidInputError, match="restore before every read"):
            lh.set_policy("t.events", {"tiering": {"storage_classes": {"cold": "DEEP_ARCHIVE"}}})
        with pytest.raises(InvalidInputError, match="cold_after"):
            lh.set_policy("t.events", {"tiering": {"warm_after": "100d"}})
        with pytest.raises(InvalidInputError, match="keep_read_hot"):
            lh.set_policy("t.events", {"tiering": {"keep_read_hot": "xx"}})
        for section, key in (("tiering", "column"), ("retention", "expire_column")):  # ages need a time column
            with pytest.raises(InvalidInputError, match=f"{section}.{key} names country, a string column"):
                lh.set_policy("t.events", {section: {key: "country"}})
            lh.set_policy("t.events", {section: {key: "ts"}})
        lh.set_policy("t.events", {"tiering": {"method": "storage-class"}})
        with pytest.raises(UnsupportedOperationError, match="no storage classes"):
            plan_tiering(lh, "t.events")
        # a Z-order by a partition column: optimize refuses it, so maintain and the autopilot failed every pass
        lh.create_table("t.by_country", schema=EVENTS, format="delta", partitioning=parse_partitioning("country"))
        for flat in (["country"], ["amount", "country"]):
            with pytest.raises(InvalidInputError, match=r"compaction\.zorder names country, a partition column"):
                lh.set_policy("t.by_country", {"compaction": {"zorder": flat}})
        lh.set_policy("t.by_country", {"compaction": {"zorder": ["amount"]}})


def test_replace_files_refuses_an_input_removed_meanwhile(tmp_path: Any, fmt: str) -> None:
    with Lakehouse(load_settings(config_file=False, warehouse=str(tmp_path / "wh"))) as lh:
        table = _table(lh, fmt)
        before = sorted_rows(table.scan())
        day = _tier_of_partition(table, AGES["cold"])
        stale = lh.table("t.events")
        optimize(lh, "t.events", CompactionOptions(target_file_size=64 * 1024 * 1024))  # removes them
        fresh = lh.table("t.events").files()
        with pytest.raises(CommitConflictError):
            stale.replace_files(remove=[f.path for f in day], add=[])
        assert sorted_rows(lh.table("t.events").scan()) == before
        assert {f.path for f in lh.table("t.events").files()} == {f.path for f in fresh}


def test_tier_vacuum_and_orphans_beside_a_writer(tmp_path: Any, fmt: str) -> None:
    """A writer keeps appending (also into the partitions being moved) while tiering, vacuum and orphan
    removal run: every row it committed is there exactly once and every version left is readable."""
    import threading
    import time

    from lakehouse.maintenance.retention import remove_orphans, vacuum

    with Lakehouse(load_settings(config_file=False, warehouse=str(tmp_path / "wh"))) as lh:
        table = _table(lh, fmt)
        expected = sorted_rows(table.scan())
        now = dt.datetime.now(dt.UTC)
        stop = threading.Event()
        written: list[pa.Table] = []
        errors: list[BaseException] = []

        def writer() -> None:
            try:
                own = lh.table("t.events")
                n = 0
                while not stop.is_set() and n < 40:
                    batch = aged_events(now, 10_000 + n * 1000, per_day=5)
                    own.append(batch)
                    written.append(batch)
                    n += 1
                    time.sleep(0.15)
            except BaseException as e:  # surfaced below
                errors.append(e)

        thread = threading.Thread(target=writer)
        thread.start()
        try:
            time.sleep(0.5)
            tier(lh, "t.events", dry_run=False)
            vacuum(lh, "t.events", retain="0s", dry_run=False)
            remove_orphans(lh, "t.events", older_than="5s", dry_run=False)
            tier(lh, "t.events", dry_run=False)
        finally:
            stop.set()
            thread.join(timeout=120)
        assert not errors, errors
        assert len(written) >= 3, "the writer overlapped the maintenance jobs"
        for batch in written:
            expected.extend(batch.to_pylist())
        final = lh.table("t.events")
        assert sorted_rows(final.scan()) == sorted(expected, key=lambda r: r["id"])
        expired = final.expired.versions if final.expired else frozenset()
        for s in final.snapshots():
            if s.version not in expired:
                final.scan(as_of=s.version, columns=["id"])


def test_cost_projects_the_year_and_counts_the_jobs_requests(tmp_path: Any, fmt: str) -> None:
    """``lakehouse cost``'s bill beyond storage: the last 30 days' jobs (files they read and wrote, their
    requests and retrievals) and the next 12 months under the policy against no maintenance."""
    settings = load_settings(config_file=False, warehouse=str(tmp_path / "wh"))
    with Lakehouse(settings) as lh:
        table = _table(lh, fmt)  # 3 small files in each of a hot, a warm and a cold day
        lazy = table_cost(lh, "t.events")
        assert lazy.activity["jobs"] == 0 and lazy.activity["request_cost"] == 0
        p0 = lazy.projection
        assert [m["month"] for m in p0["months"]] == list(range(1, 13))
        assert p0["compaction_ratio"] == 1.0, "no compaction ran: the data keeps its size either way"
        # new data arrives at the rate of the last 30 days' partitions: the hot and the warm day (29.x days old)
        recent = sum(f.size_bytes for days in (AGES["hot"], AGES["warm"]) for f in _tier_of_partition(table, days))
        assert p0["daily_bytes"] == int(recent / 30)
        assert p0["months"][-1]["bytes_without_maintenance"] > p0["months"][0]["bytes_without_maintenance"]
        # these files are a few KB: in STANDARD_IA and GLACIER_IR each is billed as 128 KB, so tiering them
        # costs more than leaving them in STANDARD, and the projection says so
        assert p0["total"] > p0["total_without_maintenance"]
        # at a flat price (no minimum size, one price for every class) the same bytes cost the same
        lh.settings.cost.flat_price = 0.01
        flat = table_cost(lh, "t.events").projection
        assert flat["total"] == pytest.approx(flat["total_without_maintenance"], rel=1e-3)
        lh.settings.cost.flat_price = None

        done = optimize(lh, "t.events", CompactionOptions())
        inputs = sum(p.files_before for p in done.partitions)
        tier(lh, "t.events", dry_run=False)
        c = table_cost(lh, "t.events")
        by_class = c.as_dict()["storage_classes"]
        assert set(by_class) == {"STANDARD", "STANDARD_IA", "GLACIER_IR"}, "local tiers priced as their classes"
        assert sum(v["bytes"] for v in by_class.values()) == c.bytes
        assert sum(v["objects"] for v in by_class.values()) == c.objects
        assert sum(v["monthly_cost"] for v in by_class.values()) == pytest.approx(c.monthly_cost, abs=1e-5)
        a = c.activity
        assert a["jobs"] == 2 and a["files_read"] >= inputs and a["gets"] == 9 * a["files_read"]
        assert a["request_cost"] > 0
        # the tier job rewrote the cold day out of STANDARD; nothing read from IA or Glacier IR yet
        assert set(a["retrieved_bytes"]) <= {"STANDARD"} and a["retrieval_cost"] == 0
        p1 = c.projection
        assert p1["compaction_ratio"] < 1.0, "zstd rewrites of tiny files are smaller than the files"
        assert p1["total_without_maintenance"] > p0["total_without_maintenance"] * 0.99
        # expiring rows after 60 days drops the cold day at once and every day after 60: cheaper still
        lh.settings.tables["t.events"] = {"retention": {"expire_after": "60d"}}
        expiring = table_cost(lh, "t.events").projection
        assert expiring["total"] < p1["total"]
        assert not any(m["bytes_by_class"].get("GLACIER_IR") for m in expiring["months"])


def test_cost_of_a_table_without_a_time_partition(tmp_path: Any) -> None:
    """No time partition to age: the storage and the jobs' activity are reported, the projection says why not."""
    with Lakehouse(load_settings(config_file=False, warehouse=str(tmp_path / "wh"))) as lh:
        table = lh.create_table("t.flat", schema=EVENTS, format="delta")
        table.append(aged_events(dt.datetime.now(dt.UTC), 0))
        cost = table_cost(lh, "t.flat").as_dict()
        assert cost["objects"] > 0 and cost["storage_classes"]["STANDARD"]["bytes"] == cost["bytes"]
        assert cost["activity_30d"]["jobs"] == 0
        assert "time partition" in cost["projection_12m"]["error"]


def test_cost_counts_files_outside_the_location_apart(tmp_path: Any) -> None:
    """An Iceberg table with a file added from outside its location (``add_files``): the bill prices what the
    listing of the location holds, and the live data inside it; the file outside is reported apart (live data
    was larger than the bytes on storage, and the bytes other than live data negative)."""
    import pyarrow.parquet as pq

    with Lakehouse(load_settings(config_file=False, warehouse=str(tmp_path / "wh"))) as lh:
        table = lh.create_table("t.ext", schema=EVENTS, format="iceberg")
        table.append(events(0, 10))
        outside = tmp_path / "elsewhere" / "old.parquet"
        outside.parent.mkdir()
        pq.write_table(events(10, 40), outside)
        table._table.add_files([str(outside)])
        cost = table_cost(lh, "t.ext").as_dict()
        inside = [f for f in lh.table("t.ext").files() if not f.path.startswith(str(tmp_path / "elsewhere"))]
        assert cost["live_data_bytes"] == sum(f.size_bytes for f in inside)
        assert cost["other_bytes"] >= 0 and cost["bytes"] >= cost["live_data_bytes"]
        assert (cost["external_data_files"], cost["external_data_bytes"]) == (1, outside.stat().st_size)
        assert cost["live_rows"] == 50


def test_files_outside_the_location_are_never_moved(tmp_path: Any) -> None:
    """A file added from outside the table's location (``add_files``) is someone else's object: tiering neither
    rewrites it into the table's tier directories nor (on S3) changes its storage class; the plan counts it."""
    import pyarrow.parquet as pq

    with Lakehouse(load_settings(config_file=False, warehouse=str(tmp_path / "wh"))) as lh:
        table = _table(lh, "iceberg")
        now = dt.datetime.now(dt.UTC)
        warm = [r for r in aged_events(now, 5000).to_pylist() if (now - r["ts"]).days >= AGES["warm"] - 1]
        warm = [r for r in warm if r["ts"].date() == warm[0]["ts"].date()]
        outside = tmp_path / "elsewhere" / "theirs.parquet"
        outside.parent.mkdir()
        pq.write_table(pa.Table.from_pylist(warm, schema=EVENTS), outside)
        before_bytes = outside.read_bytes()
        table._table.add_files([str(outside)])
        before = sorted_rows(lh.table("t.events").scan())
        plan = plan_tiering(lh, "t.events")
        assert plan.external_files == 1
        assert str(outside) not in {f.path for g in plan.groups for f in g.files}
        assert plan.moves, "the table's own old files still move"
        tier(lh, "t.events", dry_run=False)
        table = lh.table("t.events")
        assert str(outside) in {f.path for f in table.files()}, "still the table's file, where it was"
        assert outside.read_bytes() == before_bytes
        assert sorted_rows(table.scan()) == before


def test_a_period_of_year_9999_and_a_nested_partition_source_are_no_crash(tmp_path: Any) -> None:
    """Other writers' tables: a delta-rs table partitioned by a date holding 9999-12-31 (a common "no end"), whose
    day ends past what Python can count, is aged as never old; an Iceberg table partitioned by a nested field
    (``s.city``) has no top-level time column to tier by, which tiering says in one line."""
    from deltalake import write_deltalake
    from pyiceberg.partitioning import PartitionField as IcebergField
    from pyiceberg.partitioning import PartitionSpec
    from pyiceberg.schema import Schema
    from pyiceberg.transforms import IdentityTransform
    from pyiceberg.types import LongType, NestedField, StringType, StructType

    from lakehouse.maintenance.maintain import health

    ends = [dt.date(2026, 1, 1), dt.date(9999, 12, 31)]
    delta = str(tmp_path / "delta")
    for i in range(4):
        write_deltalake(
            delta, pa.table({"id": [i], "valid_to": [ends[i % 2]]}), mode="append", partition_by=["valid_to"]
        )
    root = tmp_path / "theirs"
    nested = Schema(
        NestedField(1, "id", LongType(), required=False),
        NestedField(2, "s", StructType(NestedField(3, "city", StringType(), required=False)), required=False),
    )
    spec = PartitionSpec(IcebergField(source_id=3, field_id=1000, transform=IdentityTransform(), name="city"))
    catalog, table = their_iceberg_table(root, nested, spec)
    table.append(
        pa.Table.from_pylist([{"id": 1, "s": {"city": "a"}}, {"id": 2, "s": {"city": "b"}}], nested.as_arrow())
    )
    catalog.engine.dispose()
    with Lakehouse(load_settings(config_file=False, warehouse=str(tmp_path / "wh"))) as lh:
        lh.register_table("f.until", location=delta, format="delta")
        lh.register_table("f.nested", location=str(root / "t"), format="iceberg")
        plan = plan_tiering(lh, "f.until")
        target = {str(g.partition["valid_to"]): g.target for g in plan.groups}
        assert target == {"2026-01-01": target["2026-01-01"], "9999-12-31": "hot"}, target
        assert [g.age_days for g in plan.groups if str(g.partition["valid_to"]).startswith("9999")] != [None]
        assert health(lh, "f.until").score >= 0 and table_cost(lh, "f.until").as_dict()["tiers"]
        assert health(lh, "f.nested").score >= 0
        with pytest.raises(InvalidInputError, match="no time partition to tier by"):
            plan_tiering(lh, "f.nested")


def test_maintain_settles_with_a_z_order_and_tiering(tmp_path: Any, fmt: str) -> None:
    """Z-order wrote old partitions back into the hot directory, tiering moved them to tier-warm/ again (new
    paths: the layout, recorded by path, was forgotten), and every maintain pass did both again. A partition's
    rewrite now stays in the tier its files are in: the passes settle."""
    from lakehouse.maintenance.maintain import maintain

    with Lakehouse(load_settings(config_file=False, warehouse=str(tmp_path / "wh"))) as lh:
        table = lh.create_table("t.settle", schema=EVENTS, format=fmt, partitioning=parse_partitioning("day(ts)"))
        now = dt.datetime.now(dt.UTC)
        for b in range(3):
            table.append(aged_events(now, b * 1000))
        before = sorted_rows(table.scan())
        policy = {"tiering": {"warm_after": "3d", "cold_after": "100d"}, "compaction": {"zorder": ["id"]}}
        lh.set_policy("t.settle", policy)
        ran = [[j["job"] for j in maintain(lh, "t.settle", dry_run=False)["jobs"]] for _ in range(4)]
        assert ran[2:] == [[], []], ran
        assert sorted_rows(lh.table("t.settle").scan()) == before


def test_a_tier_move_keeps_a_partitions_z_order(tmp_path: Any, fmt: str) -> None:
    """A tier rewrite of a Z-ordered partition clusters it again on the way and records the layout with the new
    files: a plain rewrite merged them into large row groups in no order, the layout record named files no
    longer live, and the next maintain clustered the partition again (two full rewrites per move)."""
    from lakehouse.maintenance.compaction import optimize
    from lakehouse.maintenance.planner import CompactionOptions, partition_key

    with Lakehouse(load_settings(config_file=False, warehouse=str(tmp_path / "wh"))) as lh:
        table = _table(lh, fmt)
        before = sorted_rows(table.scan())
        zorder = CompactionOptions(zorder=("amount", "id"), curve="morton", min_input_files=1)
        optimize(lh, "t.events", zorder)
        tier(lh, "t.events", dry_run=False)
        table = lh.table("t.events")
        assert sorted_rows(table.scan()) == before
        layouts = lh.catalog.layouts(table.name)
        for days in (AGES["warm"], AGES["cold"]):
            files = _tier_of_partition(table, days)
            assert files and all("/tier-" in f.path for f in files)
            layout = layouts[partition_key(files[0].partition)]
            assert layout == ("morton:amount,id", frozenset(f.path for f in files)), layout
        again = optimize(lh, "t.events", zorder)
        assert again.partitions == [], [p.reason for p in again.plan.partitions]
