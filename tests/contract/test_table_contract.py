"""The table contract: the same tests for {delta, iceberg} x {local directory, S3 server}."""

from __future__ import annotations

import datetime as dt
import itertools
import time
from collections.abc import Callable

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from lakehouse.core import Lakehouse
from lakehouse.errors import (
    CommitConflictError,
    InvalidInputError,
    InvalidPredicateError,
    InvalidSchemaError,
    InvalidTableNameError,
    SchemaMismatchError,
    TableExistsError,
    TableNotFoundError,
    UnsupportedOperationError,
    VersionNotFoundError,
)
from lakehouse.schema import PartitionField, parse_partitioning
from tests.conftest import EVENTS, events, sorted_rows

PARTS = parse_partitioning("day(ts), country")


def _create(lh: Lakehouse, fmt: str, name: str = "sales.events", partitioning: str = "day(ts), country"):
    return lh.create_table(name, schema=EVENTS, format=fmt, partitioning=parse_partitioning(partitioning), keys=["id"])


def test_create_round_trips_definition(lh: Lakehouse, fmt: str) -> None:
    table = _create(lh, fmt)
    d = table.definition
    assert d.schema.equals(EVENTS)
    assert d.partitioning == (PartitionField("ts", "day"), PartitionField("country"))
    assert d.keys == ("id",)
    record = lh.table_record("sales.events")
    assert record.format == fmt
    assert record.definition.schema.equals(EVENTS)
    assert [str(p) for p in record.definition.partitioning] == ["day(ts)", "country"]
    assert [r.name for r in lh.list_tables()] == [record.name]
    assert lh.list_tables(format="delta" if fmt == "iceberg" else "iceberg") == []
    # reopened through the catalog: same definition
    assert lh.table("sales.events").definition.partitioning == d.partitioning


@pytest.mark.parametrize("transform", ["year", "month", "day", "hour"])
def test_time_transforms_partition_files(lh: Lakehouse, fmt: str, transform: str) -> None:
    table = _create(lh, fmt, partitioning=f"{transform}(ts)")
    data = events(0, 40, days=3)
    table.append(data)
    files = table.files()
    assert sum(f.row_count for f in files) == 40
    name = f"ts_{transform}"
    assert all(name in f.partition for f in files)
    expected = {
        "year": 1,
        "month": 1,
        "day": 3,
        "hour": len(set(pc.floor_temporal(data["ts"], unit="hour").to_pylist())),
    }
    assert len({str(f.partition[name]) for f in files}) == expected[transform]
    assert sorted_rows(table.scan()) == sorted_rows(data)


def test_append_and_scan_exact_rows(lh: Lakehouse, fmt: str) -> None:
    table = _create(lh, fmt)
    batches = [events(i * 50, 50) for i in range(4)]
    for b in batches:
        result = table.append(b)
        assert result.rows_added == 50
        assert result.files_added >= 1
    expected = pa.concat_tables(batches)
    got = table.scan()
    assert got.schema.equals(EVENTS)
    assert sorted_rows(got) == sorted_rows(expected)
    assert table.row_count() == 200
    # projection keeps declared types and order
    proj = table.scan(columns=["note", "id"])
    assert proj.column_names == ["note", "id"]
    assert sorted(proj["id"].to_pylist()) == list(range(200))


FILTERS = [
    "country = 'DE'",
    "amount > 100 AND country IN ('FR', 'US')",
    "ts >= '2026-03-02T00:00:00Z' AND ts < '2026-03-03T00:00:00+00:00'",
    "note IS NULL OR id BETWEEN 10 AND 20",
    "NOT (country = 'DE') AND country IS NOT NULL",
    "country NOT IN ('DE')",
    "NOT (country = NULL)",
    "NOT (country IN ('DE', NULL))",
    "NOT (country NOT IN ('DE', NULL))",
    "id >= 2.5 AND id < 7.5",
    "NOT (id = 2.5) AND id IN (3.5, 4, 5)",
    "NOT (NOT (amount > 50) OR note IS NULL)",
]


# what a filter selects does not depend on the storage: every filter on local files, and one on S3 (the scan's
# pushdown through the S3 file system)
@pytest.mark.parametrize(
    ("storage", "flt"),
    [*(("local", f) for f in FILTERS), pytest.param("s3", FILTERS[1], marks=pytest.mark.s3)],
    indirect=["storage"],
)
def test_scan_filter_matches_duckdb(lh: Lakehouse, fmt: str, flt: str) -> None:
    """The rows a filter selects equal DuckDB's SQL evaluation of the same text (three-valued logic)."""
    import duckdb

    table = _create(lh, fmt)
    data = pa.concat_tables([events(0, 60), events(60, 60)])
    table.append(data.slice(0, 60))
    table.append(data.slice(60))
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.register("data", data)
    expected = sorted(r[0] for r in con.execute(f"SELECT id FROM data WHERE {flt}").fetchall())
    assert sorted(table.scan(filter=flt, columns=["id"])["id"].to_pylist()) == expected
    con.close()


def test_bad_filters_are_clear_errors(lh: Lakehouse, fmt: str) -> None:
    table = _create(lh, fmt)
    table.append(events(0, 5))
    with pytest.raises(InvalidPredicateError, match="unknown column"):
        table.scan(filter="nope = 1")
    with pytest.raises(InvalidPredicateError):
        table.scan(filter="id = (SELECT 1)")
    with pytest.raises(InvalidPredicateError, match="does not fit"):
        table.scan(filter="ts > 'yesterday'")


def test_snapshots_and_time_travel(lh: Lakehouse, fmt: str) -> None:
    table = _create(lh, fmt)
    states: list[tuple[int, dt.datetime, pa.Table]] = []
    data = None
    for i in range(3):
        b = events(i * 30, 30)
        result = table.append(b, properties={"test.batch": str(i)})
        data = b if data is None else pa.concat_tables([data, b])
        snap = table.snapshot(result.version)
        states.append((result.version, snap.timestamp, data))
        time.sleep(0.01)
    snaps = table.snapshots()
    versions = [s.version for s in snaps]
    assert versions == sorted(versions)
    assert [s.is_current for s in snaps].count(True) == 1 and snaps[-1].is_current
    assert all(a.timestamp <= b.timestamp for a, b in itertools.pairwise(snaps))
    assert snaps[-1].summary.get("test.batch") == "2"
    for version, ts, expected in states:
        assert sorted_rows(table.scan(as_of=version)) == sorted_rows(expected)
        assert sorted_rows(table.scan(as_of=ts)) == sorted_rows(expected)
        assert sum(f.row_count for f in table.files(as_of=version)) == expected.num_rows
    # a time between two commits picks the earlier one
    between = states[0][1] + (states[1][1] - states[0][1]) / 2
    assert table.snapshot(between).version == states[0][0]
    if fmt == "iceberg":  # snapshot ids are accepted wherever a version is
        sid = table.snapshot(states[1][0]).snapshot_id
        assert sid is not None
        assert table.scan(as_of=sid).num_rows == 60


def test_missing_versions_are_clear_errors(lh: Lakehouse, fmt: str) -> None:
    table = _create(lh, fmt)
    table.append(events(0, 5))
    with pytest.raises(VersionNotFoundError, match="no version 99"):
        table.scan(as_of=99)
    with pytest.raises(VersionNotFoundError, match="no version at or before"):
        table.scan(as_of=dt.datetime(2000, 1, 1, tzinfo=dt.UTC))
    with pytest.raises(VersionNotFoundError):
        lh.restore("sales.events", 42)


def test_restore_equals_old_version(lh: Lakehouse, fmt: str) -> None:
    table = _create(lh, fmt)
    first = table.append(events(0, 40))
    table.append(events(40, 40))
    table.append(events(80, 40))
    before = table.snapshots()
    result = lh.restore("sales.events", first.version)
    assert sorted_rows(table.scan()) == sorted_rows(events(0, 40))
    after = table.snapshots()
    if table.capabilities.restore_creates_version:
        assert result.version == before[-1].version + 1
        assert len(after) == len(before) + 1
    else:
        assert result.version == first.version
        assert len(after) == len(before)
        assert next(s for s in after if s.is_current).version == first.version
    # the newer versions stay readable by time travel
    assert table.scan(as_of=before[-1].version).num_rows == 120
    # appends after a restore build on the restored state
    table.append(events(500, 10))
    assert table.row_count() == 50
    jobs = lh.jobs("sales.events")
    assert jobs[0].kind == "restore" and jobs[0].state == "committed"


def test_schema_mismatch_writes_nothing(lh: Lakehouse, fmt: str) -> None:
    table = _create(lh, fmt)
    table.append(events(0, 10))
    version = table.snapshot().version
    good = events(10, 5)
    bad_type = good.set_column(3, "amount", pa.array(["x"] * 5))
    with pytest.raises(SchemaMismatchError, match="amount"):
        table.append(bad_type)
    with pytest.raises(SchemaMismatchError, match="required column 'ts'"):
        table.append(good.drop_columns(["ts"]))
    with pytest.raises(SchemaMismatchError, match="unknown column"):
        table.append(good.append_column("extra", pa.array([1] * 5)))
    with pytest.raises(SchemaMismatchError, match="null"):
        table.append(good.set_column(0, pa.field("id", pa.int64()), pa.array([None] * 5, pa.int64())))
    assert table.snapshot().version == version
    assert table.row_count() == 10
    # lossless casts are accepted: int32 ids, a missing nullable column, another column order
    ok = (
        good.set_column(0, "id", pc.cast(good["id"], pa.int32()))
        .drop_columns(["note"])
        .select(["ts", "id", "country", "amount"])
    )
    table.append(ok)
    assert table.row_count() == 15
    assert table.scan(filter="id >= 10")["note"].null_count == 5


def test_names_and_missing_tables(lh: Lakehouse, fmt: str) -> None:
    for bad in ("events", "a.b.c.d", "sales.drop table", "1x.events", "sales.", "sales.é"):
        with pytest.raises(InvalidTableNameError):
            lh.create_table(bad, schema=EVENTS, format=fmt)
    with pytest.raises(UnsupportedOperationError, match="external catalog a"):  # catalog.namespace.table
        lh.create_table("a.b.c", schema=EVENTS, format=fmt)
    with pytest.raises(TableNotFoundError, match="table list"):
        lh.table("sales.nothing")
    _create(lh, fmt)
    with pytest.raises(TableExistsError):
        _create(lh, fmt)
    with pytest.raises(InvalidSchemaError, match="not in the schema"):
        _create(lh, fmt, name="sales.other", partitioning="day(nope)")
    with pytest.raises(InvalidSchemaError, match="timestamp or date"):
        _create(lh, fmt, name="sales.other", partitioning="day(country)")
    # a failed create leaves nothing behind
    assert [str(r.name) for r in lh.list_tables()] == ["sales.events"]


def test_register_existing_table_by_location(make_lakehouse: Callable[..., Lakehouse], fmt: str) -> None:
    writer = make_lakehouse("writer.db")
    table = _create(writer, fmt)
    table.append(events(0, 25))
    table.append(events(25, 25))
    location = table.location

    reader = make_lakehouse("reader.db")
    adopted = reader.register_table("adopted.events", location=location)
    assert reader.table_record("adopted.events").format == fmt  # detected
    assert adopted.definition.partitioning == PARTS
    assert adopted.definition.keys == ("id",)
    assert sorted_rows(adopted.scan()) == sorted_rows(table.scan())
    assert [s.version for s in adopted.snapshots()] == [s.version for s in table.snapshots()]
    with pytest.raises(TableExistsError):
        reader.register_table("adopted.events", location=location)
    with pytest.raises(TableNotFoundError, match="no Delta or Iceberg table"):
        reader.register_table("adopted.nothing", location=location + "-nope")


def test_drop_with_purge_removes_files(lh: Lakehouse, fmt: str) -> None:
    from lakehouse.storage import list_files

    table = _create(lh, fmt)
    table.append(events(0, 10))
    assert list_files(table.location, lh.ctx)
    lh.drop_table("sales.events", purge=True)
    assert list_files(table.location, lh.ctx) == []
    with pytest.raises(TableNotFoundError):
        lh.table("sales.events")
    # the name can be used again
    _create(lh, fmt).append(events(0, 3))
    assert lh.table("sales.events").row_count() == 3


def test_locations_never_overlap(lh: Lakehouse, fmt: str) -> None:
    table = _create(lh, fmt)
    table.append(events(0, 10))
    other = "iceberg" if fmt == "delta" else "delta"
    for location in (table.location, table.location + "/inner", lh.ctx.warehouse):
        with pytest.raises((TableExistsError, InvalidInputError)):
            lh.create_table("sales.intruder", schema=EVENTS, format=other, location=location)
    assert table.row_count() == 10 and sorted_rows(table.scan()) == sorted_rows(events(0, 10))
    assert [str(r.name) for r in lh.list_tables()] == ["sales.events"]
    # a table renamed away keeps its files at its first name's place: a new table of that name (a blue/green
    # swap's second round) goes beside it, not into it (it was refused as overlapping the renamed table)
    lh.rename_table("sales.events", "sales.events_old")
    again = _create(lh, fmt)
    again.append(events(100, 3))
    assert again.location != table.location and not again.location.startswith(table.location + "/")
    assert lh.table("sales.events_old").row_count() == 10 and lh.table("sales.events").row_count() == 3


def test_time_travel_by_time_follows_restores(lh: Lakehouse, fmt: str) -> None:
    table = _create(lh, fmt)
    first = table.append(events(0, 10)).version
    table.append(events(10, 10))
    lh.restore("sales.events", first)
    time.sleep(0.01)
    now = dt.datetime.now(dt.UTC)
    assert table.scan(as_of=now).num_rows == 10 == table.row_count()
    assert lh.query("SELECT count(*) AS n FROM sales.events", as_of={"sales.events": now}).table["n"][0].as_py() == 10


def test_file_paths_exist_even_with_odd_partition_values(lh: Lakehouse, fmt: str) -> None:
    from lakehouse.storage import exists

    table = _create(lh, fmt, partitioning="country")
    data = events(0, 4).set_column(2, "country", pa.array(["a b", "x/y", "50%", "é"]))
    table.append(data)
    files = table.files()
    assert len(files) == 4
    assert all(exists(f.path, lh.ctx) for f in files)
    assert sorted(str(f.partition["country"]) for f in files) == sorted(["a b", "x/y", "50%", "é"])


def test_dropping_a_table_whose_files_are_gone(lh: Lakehouse, fmt: str) -> None:
    from lakehouse.storage import delete_tree

    table = _create(lh, fmt)
    table.append(events(0, 3))
    delete_tree(table.location, lh.ctx)
    lh.drop_table("sales.events")
    assert lh.list_tables() == []


def test_a_restore_never_rolls_back_over_a_commit_it_did_not_plan_over(
    lh: Lakehouse, fmt: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another writer's append lands after the restore was asked for and before it commits. Iceberg's restore
    lost its compare-and-swap, reloaded the new head and rolled back over it: the acknowledged append was gone
    (its snapshot off ``main``, for the next vacuum to delete). Both formats now refuse, keeping the append."""
    table = _create(lh, fmt)
    first = table.append(events(0, 10))
    table.append(events(10, 10))
    if fmt == "iceberg":
        from pyiceberg.table.update.snapshot import ManageSnapshots as Committer

        method = "commit"
    else:
        from deltalake import DeltaTable as Committer  # type: ignore[assignment]

        method = "restore"
    original = getattr(Committer, method)
    raced: list[int] = []

    def racing(self: object, *args: object, **kwargs: object) -> object:
        if not raced:
            raced.append(lh.table("sales.events").append(events(500, 3)).version)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Committer, method, racing)
    with pytest.raises(CommitConflictError):
        lh.restore("sales.events", first.version)
    monkeypatch.undo()
    assert raced, "the other writer committed while the restore ran"
    kept = pa.concat_tables([events(0, 20), events(500, 3)])
    assert sorted_rows(lh.table("sales.events").scan()) == sorted_rows(kept), "the append is kept"
