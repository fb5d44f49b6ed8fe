"""In-process SQL reads a table's current version as the Parquet files lakehouse plans for the query
(:mod:`lakehouse.sql.planned`) where that reads exactly what the format's own scan reads; the same query with
``query.plan_files = false`` (always ``delta_scan`` / ``iceberg_scan``) is the reference."""

from __future__ import annotations

import datetime as dt
import decimal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from lakehouse.core import Lakehouse
from lakehouse.schema import parse_partitioning
from tests.conformance.fingerprint import assert_same_rows

UTC = dt.UTC

SCHEMA = pa.schema(
    [
        pa.field("id", pa.int64(), nullable=False),
        pa.field("region", pa.string()),
        pa.field("day", pa.date32()),
        pa.field("flag", pa.bool_()),
        pa.field("qty", pa.int32()),
        pa.field("price", pa.decimal128(10, 2)),
        pa.field("amount", pa.float64()),
        pa.field("at", pa.timestamp("us", tz="UTC")),
        pa.field("note", pa.string()),
        pa.field("tags", pa.list_(pa.string())),
    ]
)


def rows(start: int, n: int) -> pa.Table:
    ids = list(range(start, start + n))
    return pa.table(
        {
            "id": ids,
            "region": [("eu", "us", None, "o'hare")[i % 4] for i in ids],
            "day": [None if i % 9 == 4 else dt.date(2026, 1, 1) + dt.timedelta(days=i % 3) for i in ids],
            "flag": [None if i % 7 == 3 else i % 2 == 0 for i in ids],
            "qty": [None if i % 5 == 0 else i * 3 for i in ids],
            "price": [decimal.Decimal(i) / 4 for i in ids],
            "amount": [float("nan") if i % 13 == 0 else i * 0.5 for i in ids],
            "at": [dt.datetime(2026, 1, 1, tzinfo=UTC) + dt.timedelta(minutes=37 * i, microseconds=i) for i in ids],
            "note": [None if i % 6 == 0 else f"n{i}" for i in ids],
            "tags": [[f"t{i % 3}"] * (i % 3) for i in ids],
        },
        schema=SCHEMA,
    )


@pytest.fixture
def pair(make_lakehouse: Callable[..., Lakehouse]) -> Iterator[tuple[Lakehouse, Lakehouse]]:
    """Two Lakehouse objects on one catalog: planned reads (the default) and the format's scan only."""
    planned = make_lakehouse()
    scan = Lakehouse(
        planned.settings.model_copy(update={"query": planned.settings.query.model_copy(update={"plan_files": False})})
    )
    yield planned, scan
    scan.close()


def same(pair: tuple[Lakehouse, Lakehouse], sql: str) -> tuple[pa.Table, dict[str, Any]]:
    """The query's rows through both engines, which must be equal; and how the planned engine read."""
    planned, scan = pair
    got = planned.query(sql, max_rows=1_000_000)
    want = scan.query(sql, max_rows=1_000_000)
    assert want.reads[0]["read"] == "format"
    assert got.table.schema.equals(want.table.schema), sql
    assert_same_rows(got.table, want.table, sql)
    return got.table, got.reads[0]


LOCAL = pytest.mark.parametrize("storage", ["local"], indirect=True)
"""For tests of what is read rather than where from: S3 paths, credentials and footers over HTTP are
``test_planned_reads_equal_the_format_scan``'s (both storages)."""


# lakehouse partitions Delta by identity columns of every constant kind; Iceberg's identity values are in the
# files as well
PARTITIONS = {"delta": "region, day, flag", "iceberg": "region, day"}


def test_planned_reads_equal_the_format_scan(pair: tuple[Lakehouse, Lakehouse], fmt: str) -> None:
    lh, _ = pair
    table = lh.create_table("p.t", schema=SCHEMA, format=fmt, partitioning=parse_partitioning(PARTITIONS[fmt]))
    for i in range(4):  # four appends of disjoint ids: file statistics can tell them apart
        table.append(rows(i * 50, 50))
    total = len(lh.table("p.t").files())
    everything, how = same(pair, "SELECT * FROM p.t")
    assert everything.num_rows == 200
    assert how == {"table": "p.t", "read": "files", "files": total, "files_total": total}
    queries = {
        "SELECT * FROM p.t WHERE id >= 150": True,  # the last append's files only
        "SELECT * FROM p.t WHERE id < 0": True,  # no file: an empty relation of the table's columns
        "SELECT id, qty FROM p.t WHERE qty BETWEEN 30 AND 90 AND id <> 20": True,
        "SELECT * FROM p.t WHERE region = 'eu'": True,  # a partition value (Delta's log); Iceberg's string bounds
        "SELECT * FROM p.t WHERE region = 'o''hare' OR id = 3": False,  # OR stays DuckDB's
        "SELECT * FROM p.t WHERE region IS NULL": True,
        "SELECT * FROM p.t WHERE note < 'n10'": True,  # string bounds: n1..n9 only in the first append's files
        "SELECT * FROM p.t WHERE note > 'n97'": True,  # n98, n99: some of the second append's files
        "SELECT * FROM p.t WHERE day = '2026-01-02'": True,  # Delta's log; Iceberg's exact date bounds
        "SELECT * FROM p.t WHERE flag": False,
        "SELECT count(*) AS n, sum(price) AS p FROM p.t WHERE note LIKE 'n1%'": False,
        "SELECT * FROM p.t WHERE amount > 10 AND at < TIMESTAMP '2026-01-02 00:00:00+00'": False,  # a cast
        "SELECT * FROM p.t WHERE at >= '2026-01-05T12:00:00Z'": True,  # a literal naming its offset
        "SELECT * FROM p.t WHERE at BETWEEN '2026-01-02 00:00:00+02:00' AND '2026-01-02 12:00:00+02:00'": True,
        "SELECT * FROM p.t WHERE at >= '2026-01-05T12:00:00'": False,  # no offset: the session's time zone
    }
    for sql, prunes in queries.items():
        _, how = same(pair, sql)
        assert how["read"] == "files", sql
        assert (how["files"] < total) == prunes, (sql, how)


@LOCAL
def test_nan_rows_are_found_whatever_the_files_statistics_leave_out(
    pair: tuple[Lakehouse, Lakehouse], fmt: str
) -> None:
    """Parquet writers leave NaN out of a float column's min/max: DuckDB's reader then skipped the row groups
    that hold the NaN rows of `f = 'NaN'` or `f > 100` (NaN sorts above every number in DuckDB). In-process and
    through the isolated worker (the API's path, where pyarrow evaluated DuckDB's filters: NaN compares false),
    a query finds every row DuckDB's own comparison matches."""
    lh, scan = pair
    schema = pa.schema([pa.field("id", pa.int64()), pa.field("f", pa.float64()), pa.field("g", pa.float32())])
    table = lh.create_table("p.nan", schema=schema, format=fmt)
    for k in range(3):  # three files, each with one NaN, finite values 10k+1 .. 10k+9
        f = [float("nan")] + [float(k * 10 + i) for i in range(1, 10)]
        table.append(pa.table({"id": range(k * 10, k * 10 + 10), "f": f, "g": f}, schema=schema))
    expected = {"f = 'NaN'": 3, "f > 100": 3, "f > 1": 29, "NOT (f < 1)": 30, "g > 100": 3, "f = -0.0": 0}
    for where, n in expected.items():
        sql = f"SELECT count(*) AS n FROM p.nan WHERE {where}"
        assert lh.query(sql).table.to_pylist() == [{"n": n}], where
        assert lh.query(sql, isolated=True).table.to_pylist() == [{"n": n}], where
        assert scan.query(sql).table.to_pylist() == [{"n": n}], where  # the format's scan
    latest = lh.table("p.nan").snapshot().version
    at = f"SELECT count(*) AS n FROM p.nan AT (VERSION => {latest}) WHERE f > 100"  # time travel: the format's scan
    assert lh.query(at).table.to_pylist() == [{"n": 3}]
    same(pair, "SELECT * FROM p.nan")  # the values themselves as the format's scan reads them (NaN included)


@LOCAL
def test_files_of_an_older_schema(pair: tuple[Lakehouse, Lakehouse], fmt: str) -> None:
    """Files written before a column was added: Delta's read it as NULL; where Iceberg's are among the files
    read, the format's scan reads them (a column a file lacks may be a partition value kept in metadata there)."""
    lh, _ = pair
    table = lh.create_table("p.e", schema=SCHEMA, format=fmt)
    table.append(rows(0, 30))
    table.add_columns([pa.field("extra", pa.int64())])
    newer = rows(30, 30)
    lh.table("p.e").append(newer.append_column("extra", pa.array(range(30), pa.int64())))
    got, how = same(pair, "SELECT * FROM p.e")
    assert got.column("extra").null_count == 30
    assert how["read"] == ("files" if fmt == "delta" else "format")
    # statistics leave the newer files only: every one of them holds the column
    _, how = same(pair, "SELECT id, extra FROM p.e WHERE id >= 30")
    assert how["read"] == "files"
    assert how["files"] < how["files_total"]
    _, how = same(pair, "SELECT id, extra FROM p.e WHERE id >= 20")
    assert how["read"] == ("files" if fmt == "delta" else "format")


@LOCAL
def test_time_travel_reads_through_the_format(pair: tuple[Lakehouse, Lakehouse], fmt: str) -> None:
    lh, _ = pair
    table = lh.create_table("p.v", schema=SCHEMA, format=fmt)
    first = table.append(rows(0, 10)).version
    table.append(rows(10, 10))
    got, how = same(pair, f"SELECT * FROM p.v AT (VERSION => {first}) WHERE id >= 5")
    assert got.num_rows == 5
    assert how["read"] == "format"


@LOCAL
def test_a_commit_is_seen_by_the_next_query(pair: tuple[Lakehouse, Lakehouse], fmt: str) -> None:
    """The planned file list is the current version's at each query, never an older one kept."""
    lh, _ = pair
    table = lh.create_table("p.c", schema=SCHEMA, format=fmt)
    table.append(rows(0, 10))
    assert lh.query("SELECT count(*) AS n FROM p.c WHERE id >= 0").table.to_pylist() == [{"n": 10}]
    lh.table("p.c").append(rows(10, 10))
    assert lh.query("SELECT count(*) AS n FROM p.c WHERE id >= 0").table.to_pylist() == [{"n": 20}]
    lh.table("p.c").delete_rows("id < 5")
    result = lh.query("SELECT count(*) AS n FROM p.c WHERE id >= 0")
    assert result.table.to_pylist() == [{"n": 15}]
    assert result.reads[0]["read"] == "files"  # both formats' deletes here rewrite files (no deletion vectors)


@pytest.mark.parametrize("format_", ["delta", "iceberg"])
def test_a_query_answers_from_the_version_its_tables_were_opened_at(tmp_path: Path, format_: str) -> None:
    """The engine pins each table while it plans and reads: the schema, the files and the scan come from the
    one version the table was opened at, even when a commit lands in between (here: rows and a column added
    after the open), whether it reads planned files or the format's scan. A pinned table is not brought up to
    date by its reads; leaving the pin, or entering one with ``refresh``, is."""
    from lakehouse.config import load_settings

    settings = load_settings(
        config_file=False, warehouse=str(tmp_path / "wh"), catalog_url=f"sqlite:///{tmp_path}/c.db"
    )
    scan_only = settings.model_copy(update={"query": settings.query.model_copy(update={"plan_files": False})})
    with Lakehouse(settings) as lh, Lakehouse(scan_only) as lh_scan:
        lh.create_table("p.o", schema=SCHEMA, format=format_).append(rows(0, 10))
        for engine, read in ((lh, "files"), (lh_scan, "format")):
            opened = engine.table("p.o")
            before = opened.row_count()

            def resolve(name: Any, opened: Any = opened, n: int = before, added: str = f"extra_{read}") -> Any:
                other = lh.table("p.o")  # a commit lands after the query's table was opened
                other.append(rows(n, 10))
                other.add_columns([pa.field(added, pa.int64())])
                return opened

            got = engine.sql.query("SELECT * FROM p.o WHERE id >= 0", resolve=resolve)
            assert got.table.num_rows == before and f"extra_{read}" not in got.table.column_names, read
            assert got.reads[0]["read"] == read
        opened = lh.table("p.o")
        with opened.pinned(refresh=False):
            assert opened.row_count() == 30 and "extra_format" in opened.schema.names
            lh.table("p.o").append(rows(30, 5))
            assert opened.row_count() == 30
        assert opened.row_count() == 35  # unpinned: the newest version
        lh.table("p.o").append(rows(35, 5))
        with opened.pinned():  # refreshed on entry
            assert opened.row_count() == 40
        assert lh.query("SELECT count(*) AS n FROM p.o WHERE id >= 0").table.to_pylist() == [{"n": 40}]


def test_a_query_loads_an_iceberg_table_from_its_catalog_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Pinned for the query, the table is not reloaded (a catalog row read and a metadata check) each time the
    engine asks for its schema, files or scan (without the pin: nine loads for the first query here)."""
    from pyiceberg.catalog.sql import SqlCatalog

    from lakehouse.config import load_settings

    settings = load_settings(
        config_file=False, warehouse=str(tmp_path / "wh"), catalog_url=f"sqlite:///{tmp_path}/c.db"
    )
    with Lakehouse(settings) as lh:
        lh.create_table("p.l", schema=SCHEMA, format="iceberg").append(rows(0, 10))
        loads = []
        load = SqlCatalog.load_table
        monkeypatch.setattr(SqlCatalog, "load_table", lambda self, ident: loads.append(ident) or load(self, ident))
        for sql in ("SELECT count(*) AS n FROM p.l WHERE id >= 5", "SELECT count(*) AS n FROM p.l AT (VERSION => 1)"):
            loads.clear()
            assert lh.query(sql).table.num_rows == 1
            assert len(loads) == 1, sql


@LOCAL
def test_iceberg_columns_by_field_id_and_by_name_mapping(pair: tuple[Lakehouse, Lakehouse]) -> None:
    """A column renamed since its files were written is found by its field id; files without field ids (added as
    they are, a migrated table's) through the table's name mapping."""
    import pyarrow.parquet as pq

    from lakehouse.storage import split_location

    lh, _ = pair
    table = lh.create_table("p.i", schema=SCHEMA, format="iceberg")
    table.append(rows(0, 20))
    ice = table._table  # type: ignore[attr-defined]
    with ice.update_schema() as update:
        update.rename_column("qty", "quantity")
    got, how = same(pair, "SELECT * FROM p.i WHERE id >= 0")
    assert how["read"] == "files" and got.column_names[4] == "quantity" and got.column("quantity").null_count == 4
    plain = rows(20, 20).rename_columns([("quantity" if c == "qty" else c) for c in SCHEMA.names])
    path = f"{table.location.rstrip('/')}/data/added/plain.parquet"
    filesystem, inner = split_location(path, lh.ctx)
    filesystem.create_dir(inner.rsplit("/", 1)[0], recursive=True)
    with filesystem.open_output_stream(inner) as out:
        pq.write_table(plain, out)  # no field ids
    ice.refresh()
    ice.add_files([path])
    assert ice.metadata.name_mapping() is not None
    got, how = same(pair, "SELECT * FROM p.i")
    assert how["read"] == "files" and got.num_rows == 40
    _, how = same(pair, "SELECT id, quantity FROM p.i WHERE id >= 20")
    assert how == {"table": "p.i", "read": "files", "files": 1, "files_total": how["files_total"]}
    assert how["files_total"] > 1


def test_delta_timestamp_statistics_truncated_to_milliseconds(tmp_path: Path) -> None:
    """Spark records a Delta file's timestamp bounds truncated to milliseconds: a file whose last value lies
    0.9 ms past its recorded maximum is still read for a predicate between the two."""
    from lakehouse.config import load_settings
    from tests.conformance.delta_log import DeltaLogWriter

    root = str(tmp_path / "spark-like")
    w = DeltaLogWriter(root)
    base = dt.datetime(2026, 1, 1, tzinfo=UTC)
    data = pa.table(
        {
            "id": pa.array([1, 2], pa.int64()),
            "ts": pa.array([base, base + dt.timedelta(microseconds=900)], pa.timestamp("us", "UTC")),
        }
    )
    w.commit([w.protocol(1, 2), w.metadata(data.schema)], operation="CREATE TABLE")
    stamp = "2026-01-01T00:00:00.000Z"
    stats = {"numRecords": 2, "minValues": {"id": 1, "ts": stamp}, "maxValues": {"id": 2, "ts": stamp}}
    w.commit([w.add(w.write_parquet(data), stats={**stats, "nullCount": {"id": 0, "ts": 0}})])
    settings = load_settings(
        config_file=False, warehouse=str(tmp_path / "wh"), catalog_url=f"sqlite:///{tmp_path}/c.db"
    )
    with Lakehouse(settings) as lh:
        lh.register_table("s.t", location=root, format="delta")
        got = lh.query("SELECT id FROM s.t WHERE ts >= '2026-01-01T00:00:00.000500+00:00'")
        assert got.table.to_pylist() == [{"id": 2}]
        assert got.reads == ({"table": "s.t", "read": "files", "files": 1, "files_total": 1},)
        # past the widened maximum: the file is left out, and nothing is lost by it
        got = lh.query("SELECT id FROM s.t WHERE ts > '2026-01-01T00:00:00.001000Z'")
        assert got.table.num_rows == 0
        assert got.reads == ({"table": "s.t", "read": "files", "files": 0, "files_total": 1},)


def test_delta_string_statistics_truncated_as_spark_does(tmp_path: Path) -> None:
    """Spark truncates a Delta file's string bounds at 32 UTF-16 units and appends a tie-breaker to the maximum:
    20 emoji (40 units) are recorded as 16 of them and U+FFFD, which sorts below the value. The file is still
    read for that value (and a delete by it deletes it), and a bound that cannot be truncated still prunes."""
    from lakehouse.config import load_settings
    from tests.conformance.delta_log import DeltaLogWriter

    root = str(tmp_path / "spark-like")
    w = DeltaLogWriter(root)
    long_value = "😀" * 20
    data = pa.table({"id": pa.array([1, 2], pa.int64()), "s": pa.array(["a", long_value])})
    w.commit([w.protocol(1, 2), w.metadata(data.schema)], operation="CREATE TABLE")
    stats = {"numRecords": 2, "minValues": {"id": 1, "s": "a"}, "maxValues": {"id": 2, "s": "😀" * 16 + "\ufffd"}}
    w.commit([w.add(w.write_parquet(data), stats={**stats, "nullCount": {"id": 0, "s": 0}})])
    short = pa.table({"id": pa.array([3], pa.int64()), "s": pa.array(["b"])})
    short_stats = {"numRecords": 1, "minValues": {"id": 3, "s": "b"}, "maxValues": {"id": 3, "s": "b"}}
    w.commit([w.add(w.write_parquet(short), stats={**short_stats, "nullCount": {"id": 0, "s": 0}})])
    settings = load_settings(
        config_file=False, warehouse=str(tmp_path / "wh"), catalog_url=f"sqlite:///{tmp_path}/c.db"
    )
    with Lakehouse(settings) as lh:
        lh.register_table("s.t", location=root, format="delta")
        got = lh.query(f"SELECT id FROM s.t WHERE s = '{long_value}'")
        assert got.table.to_pylist() == [{"id": 2}]
        assert got.reads == ({"table": "s.t", "read": "files", "files": 1, "files_total": 2},)
        assert lh.table("s.t").delete_rows(f"s = '{long_value}'").rows_deleted == 1
        assert lh.query("SELECT id FROM s.t ORDER BY id").table.to_pylist() == [{"id": 1}, {"id": 3}]


def test_file_names_with_pattern_characters(tmp_path: Path) -> None:
    """A data file named like a DuckDB file pattern (``part-*.parquet``, which matches another file's name too)
    is read through the format's scan: read_parquet would expand the name and read the other file too."""
    from lakehouse.config import load_settings
    from tests.conformance.delta_log import DeltaLogWriter

    root = str(tmp_path / "patterns")
    w = DeltaLogWriter(root)
    data = pa.table({"id": pa.array([1, 2], pa.int64())})
    w.commit([w.protocol(1, 2), w.metadata(data.schema)], operation="CREATE TABLE")
    w.write_parquet(pa.table({"id": pa.array([99], pa.int64())}), name="part-1")  # in no commit
    stats = {"numRecords": 2, "minValues": {"id": 1}, "maxValues": {"id": 2}, "nullCount": {"id": 0}}
    w.commit([w.add(w.write_parquet(data, name="part-*"), stats=stats)])
    settings = load_settings(
        config_file=False, warehouse=str(tmp_path / "wh"), catalog_url=f"sqlite:///{tmp_path}/c.db"
    )
    with Lakehouse(settings) as lh:
        lh.register_table("s.p", location=root, format="delta")
        got = lh.query("SELECT id FROM s.p ORDER BY id")
        assert got.table.to_pylist() == [{"id": 1}, {"id": 2}]
        assert got.reads == ({"table": "s.p", "read": "format"},)


@LOCAL
def test_more_files_than_planned_reads_take_read_through_the_format(
    pair: tuple[Lakehouse, Lakehouse], fmt: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past ``MAX_FILES`` files left to read (each footer is read to check its schema first) a query reads
    through the format's scan; a WHERE clause that leaves fewer is planned."""
    from lakehouse.sql import planned

    lh, _ = pair
    table = lh.create_table("p.m", schema=SCHEMA, format=fmt)
    for i in range(4):
        table.append(rows(i * 10, 10))
    monkeypatch.setattr(planned, "MAX_FILES", 2)
    _, how = same(pair, "SELECT * FROM p.m")
    assert how["read"] == "format"
    _, how = same(pair, "SELECT * FROM p.m WHERE id >= 30")
    assert how["read"] == "files" and how["files"] == 1
