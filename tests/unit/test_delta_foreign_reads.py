"""The Delta adapter on tables other writers wrote: exact row counts (footers when the log has no statistics,
minus deletion vectors), reads of INT96, deletion-vector and column-mapped files, foreign generated columns, and
the table-feature allow-list checked per operation before anything is written.

Tables come from the conformance suite's writers (hand-assembled logs per the Delta protocol), opened through
the adapter directly: no catalog, so names the catalog's schema language does not take yet work here."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lakehouse.config import load_settings
from lakehouse.core import Lakehouse
from lakehouse.errors import CommitConflictError, SchemaMismatchError, UnsupportedOperationError
from lakehouse.maintenance.compaction import rewrite_files
from lakehouse.maintenance.planner import CompactionOptions
from lakehouse.tables.base import OPERATIONS, StorageContext, TableName
from lakehouse.tables.delta import DeltaAdapter, _parquet_stats
from tests.conformance import delta_writers as writers
from tests.conformance.delta_log import DeltaLogWriter
from tests.conformance.fingerprint import assert_same_rows

NAME = TableName("t", "foreign")


def _open(path: Path | str) -> DeltaAdapter:
    ctx = StorageContext(warehouse=str(Path(path).parent / "wh"), catalog_url="sqlite://")
    return DeltaAdapter.open(NAME, location=str(path), ctx=ctx)


def _reads(table: DeltaAdapter, expected: pa.Table, what: str) -> None:
    assert_same_rows(table.scan(), expected, f"{what}: scan")
    assert_same_rows(table.batches().read_all(), expected, f"{what}: batches")
    assert sum(f.row_count for f in table.files()) == expected.num_rows == table.row_count()
    assert_same_rows(table.scan(filter="id < 7"), expected.filter(pc.less(expected["id"], 7)), f"{what}: filter")


def _sql(table: DeltaAdapter) -> pa.Table:
    import glob

    import duckdb
    import duckdb_extension_delta

    ext = glob.glob(os.path.dirname(duckdb_extension_delta.__file__) + "/**/delta.duckdb_extension", recursive=True)
    con = duckdb.connect(config={"autoinstall_known_extensions": False})
    con.execute(f"LOAD '{ext[0]}'")
    return con.execute(f"SELECT * FROM {table.sql_source()}").to_arrow_table()


# ---- row counts ------------------------------------------------------------------------------------------------


def test_files_without_statistics_count_their_rows_from_the_footer(tmp_path: Path) -> None:
    foreign = writers.legacy_no_stats(str(tmp_path / "t"))
    table = _open(foreign.location)
    counts = {f.path: f.row_count for f in table.files()}
    assert counts == {p: pq.ParquetFile(p).metadata.num_rows for p in counts}
    assert all(counts.values()) and sum(counts.values()) == foreign.expected.num_rows
    _reads(table, foreign.expected, "no statistics")


def test_deletion_vectors_are_applied_to_row_counts_and_reads(tmp_path: Path) -> None:
    foreign = writers.deletion_vectors(str(tmp_path / "t"))
    table = _open(foreign.location)
    physical = sum(pq.ParquetFile(f.path).metadata.num_rows for f in table.files())
    assert physical == foreign.expected.num_rows + 5  # 3 rows deleted inline, 2 by a file
    _reads(table, foreign.expected, "deletion vectors")
    assert_same_rows(_sql(table), foreign.expected, "deletion vectors: SQL")
    for op in ("optimize", "dedup", "delete", "mask"):
        with pytest.raises(UnsupportedOperationError, match="deletionVectors"):
            table.check_operation(op)
    table.check_operation("vacuum")


# ---- INT96 -------------------------------------------------------------------------------------------------------


def test_int96_timestamps_read_exactly_and_survive_a_delete(tmp_path: Path) -> None:
    foreign = writers.int96(str(tmp_path / "t"))
    table = _open(foreign.location)
    _reads(table, foreign.expected, "INT96")
    ts = table.scan(columns=["ts"]).column("ts").to_pylist()
    assert dt.datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=dt.UTC) in ts
    assert dt.datetime(1, 1, 1, tzinfo=dt.UTC) in ts
    result = table.delete_rows("id = 1")  # rewrites the file holding it, every other value kept exactly
    assert result.rows_deleted == 2  # the row and its duplicate
    expected = foreign.expected.filter(pc.not_equal(foreign.expected["id"], 1))
    _reads(_open(foreign.location), expected, "INT96 after a delete")


def test_a_delete_reads_statistics_at_the_ends_of_the_datetime_range(tmp_path: Path) -> None:
    """Timestamp statistics are widened by a millisecond (Delta truncates them): at 0001-01-01 and 9999-12-31
    that overflowed Python's datetime, and every delete from such a table failed."""
    import deltalake

    ends = [dt.datetime(1, 1, 1, tzinfo=dt.UTC), dt.datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=dt.UTC)]
    data = pa.table({"id": pa.array([1, 2], pa.int64()), "ts": pa.array(ends, pa.timestamp("us", tz="UTC"))})
    deltalake.write_deltalake(str(tmp_path / "t"), data)
    table = _open(tmp_path / "t")
    assert [(lo.year, hi.year) for lo, hi, _ in (f.stats["ts"] for f in table.files())] == [(1, 9999)]
    assert table.delete_rows("id = 1").rows_deleted == 1
    assert _open(tmp_path / "t").scan().to_pylist() == [{"id": 2, "ts": ends[1]}]
    assert table.delete_rows("ts < '2000-01-01T00:00:00Z'").rows_deleted == 0


# ---- column mapping ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["name", "id"])
def test_column_mapping_reads_by_physical_name(mode: str, tmp_path: Path) -> None:
    foreign = writers.DELTA_WRITERS[f"column_mapping_{mode}"](str(tmp_path / "t"))
    table = _open(foreign.location)
    assert table.schema.names == foreign.expected.column_names
    _reads(table, foreign.expected, f"column mapping {mode}")
    # DuckDB's delta_scan reads column-mapped partition values as NULL: the adapter's SQL source joins the log's
    assert_same_rows(_sql(table).select(foreign.expected.column_names), foreign.expected, "column mapping: SQL")
    assert any(f.partition.get("region name") == "eu" for f in table.files())
    with pytest.raises(UnsupportedOperationError, match="columnMapping"):
        table.check_delete()


@pytest.mark.parametrize("mode", ["name", "id"])
@pytest.mark.parametrize("zorder", [(), ("id", "full name")])
def test_column_mapping_rewrites_keep_physical_names_and_ids(
    mode: str, zorder: tuple[str, ...], tmp_path: Path
) -> None:
    foreign = writers.DELTA_WRITERS[f"column_mapping_{mode}"](str(tmp_path / "t"))
    table = _open(foreign.location)
    lh = Lakehouse(load_settings(config_file=False, warehouse=str(tmp_path / "wh"), catalog_url="sqlite://"))
    try:
        groups: dict[str, list[Any]] = {}
        for f in table.files():
            groups.setdefault(repr(sorted(f.partition.items())), []).append(f)
        add: list[str] = []
        partitions: dict[str, dict[str, Any]] = {}
        for i, files in enumerate(groups.values()):
            out = rewrite_files(
                lh,
                table,
                [f.path for f in files],
                f"{foreign.location}/lh-test-{i}",
                CompactionOptions(zorder=zorder),
                columns=table.file_columns(),
                expected_rows=sum(f.row_count for f in files),
            )
            add += out
            partitions.update({p: dict(files[0].partition) for p in out})
        stored = table.file_schema()
        assert stored is not None
        physical = {f.name for f in stored}
        for path in add:
            schema = pq.ParquetFile(path).schema_arrow
            assert set(schema.names) <= physical and "id" not in schema.names
            assert all(f.metadata and b"PARQUET:field_id" in f.metadata for f in schema)
        table.replace_files(
            remove=[f.path for fs in groups.values() for f in fs],
            add=add,
            partitions=partitions,
            properties={"lakehouse.operation": "zorder" if zorder else "compact"},
        )
    finally:
        lh.close()
    after = _open(foreign.location)
    assert len(after.files()) == len(groups)
    _reads(after, foreign.expected, "column mapping after a rewrite")
    assert_same_rows(_sql(after).select(foreign.expected.column_names), foreign.expected, "after a rewrite: SQL")
    stats = after.files()[0].stats
    assert "id" in stats and not any(k.startswith("col-") for k in stats)  # logged by physical name, read back


# ---- generated columns -------------------------------------------------------------------------------------------


def test_foreign_generated_columns_are_columns(tmp_path: Path) -> None:
    foreign = writers.deltars_features(str(tmp_path / "t"))
    table = _open(foreign.location)
    assert "id2" in table.schema.names and table.definition.partitioning == ()
    _reads(table, foreign.expected, "generated column")
    table.append(pa.table({"id": [100], "name": ["new"]}))  # delta-rs computes id2
    assert table.scan(filter="id = 100").column("id2").to_pylist() == [200]
    with pytest.raises(UnsupportedOperationError, match=r"generatedColumns|checkConstraints"):
        table.check_operation("mask")


# ---- table features ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("feature", sorted(writers.FEATURE_WRITERS))
def test_unsupported_features_are_refused_by_name_before_anything_is_written(feature: str, tmp_path: Path) -> None:
    build, _ = writers.FEATURE_WRITERS[feature]
    foreign = build(str(tmp_path / "t"))
    table = _open(foreign.location)
    _reads(table, foreign.expected, feature)
    for op in ("optimize", "dedup", "delete", "mask"):
        with pytest.raises(UnsupportedOperationError) as e:
            table.check_operation(op)
        assert feature in e.value.message and "concurrent" not in e.value.message and e.value.hint
    if feature == "v2Checkpoint":  # lakehouse does not read v2 checkpoints' sidecars: it cannot tell garbage
        with pytest.raises(UnsupportedOperationError, match="v2Checkpoint"):
            table.version_paths()
    else:
        table.check_operation("vacuum")
        assert table.version_paths()


def test_a_protocol_refusal_at_commit_is_not_retried_as_a_lost_race(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Were the allow-list to let a table through that delta-rs cannot write, the commit's refusal names the feature
    at once: no retries, no 'concurrent commit'."""
    foreign = writers.identity_columns(str(tmp_path / "t"))
    table = _open(foreign.location)
    monkeypatch.setattr(DeltaAdapter, "_check", lambda self, state, operation: None)
    attempts = []
    original = DeltaAdapter._files_of
    monkeypatch.setattr(DeltaAdapter, "_files_of", lambda self, *a: attempts.append(1) or original(self, *a))
    files = table.files()
    attempts.clear()
    with pytest.raises(UnsupportedOperationError, match="identityColumns") as e:
        table.replace_files(remove=[files[0].path], add=[], properties={"lakehouse.operation": "compact"})
    assert not isinstance(e.value, CommitConflictError) and "concurrent" not in e.value.message
    assert len(attempts) == 1


def _log(root: Path, protocol: dict[str, Any], *, configuration: dict[str, str] | None = None) -> Path:
    w = DeltaLogWriter(str(root))
    data = pa.table({"id": pa.array([1, 2, 3], pa.int64()), "s": ["a", "b", None]})
    w.commit([protocol, w.metadata(data.schema, configuration=configuration)], operation="CREATE TABLE")
    w.commit([w.add(w.write_parquet(data), stats={"numRecords": 3})])
    return root


def test_unknown_reader_features_refuse_reads_and_register(tmp_path: Path) -> None:
    """delta-rs refuses to load a table with a reader feature it does not know: that is a refusal naming it."""
    protocol = DeltaLogWriter.protocol(3, 7, reader_features=["futureFeature"], writer_features=["futureFeature"])
    root = _log(tmp_path / "t", protocol)
    ctx = StorageContext(warehouse=str(tmp_path / "wh"), catalog_url="sqlite://")
    with pytest.raises(UnsupportedOperationError, match="futureFeature"):
        DeltaAdapter.register(NAME, location=str(root), ctx=ctx)


def test_unknown_writer_features_refuse_writes_and_vacuum_only(tmp_path: Path) -> None:
    root = _log(tmp_path / "t", DeltaLogWriter.protocol(1, 7, writer_features=["futureWriterFeature"]))
    table = _open(root)
    table.check_operation("read")
    assert table.scan().num_rows == 3
    for op in ("optimize", "dedup", "delete", "mask", "vacuum"):
        with pytest.raises(UnsupportedOperationError, match="futureWriterFeature"):
            table.check_operation(op)


def test_legacy_protocols_imply_features_their_metadata_enables(tmp_path: Path) -> None:
    # writer version 6 implies identity columns and change data feed, but neither is in use here
    plain = _open(_log(tmp_path / "a", DeltaLogWriter.protocol(1, 6)))
    for op in OPERATIONS:
        plain.check_operation(op)
    # writer version 2 with delta.appendOnly: compaction yes, removing rows no
    append_only = _open(_log(tmp_path / "b", DeltaLogWriter.protocol(1, 2), configuration={"delta.appendOnly": "true"}))
    append_only.check_operation("optimize")
    for op in ("dedup", "delete", "mask"):
        with pytest.raises(UnsupportedOperationError, match="appendOnly"):
            append_only.check_operation(op)
    # a newer protocol than lakehouse knows
    with pytest.raises(UnsupportedOperationError, match="reader version 4"):  # delta-rs refuses to load it
        _open(_log(tmp_path / "c", {"protocol": {"minReaderVersion": 4, "minWriterVersion": 8}}))


def test_capabilities_declare_every_feature_per_operation() -> None:
    features = {f["feature"]: f for f in DeltaAdapter.capabilities.as_dict()["features"]}
    assert features["columnMapping"]["read"] == "yes" and features["columnMapping"]["optimize"] == "yes"
    assert features["deletionVectors"]["read"] == "yes"
    assert features["deletionVectors"]["optimize"].startswith("refused")
    assert features["v2Checkpoint"]["vacuum"].startswith("refused")
    assert all(set(OPERATIONS) <= set(f) for f in features.values())
    json.dumps(DeltaAdapter.capabilities.as_dict())


# ---- statistics of files lakehouse writes --------------------------------------------------------------------------


def test_statistics_of_a_plain_column_after_a_nested_one_are_its_own(tmp_path: Path) -> None:
    t = pa.table(
        {
            "st": pa.array([{"a": 1, "b": "x"}, None], pa.struct([("a", pa.int32()), ("b", pa.string())])),
            "n": pa.array([10, 20], pa.int64()),
            "s": pa.array([None, None], pa.string()),
        }
    )
    pq.write_table(t, tmp_path / "f.parquet")
    _, text = _parquet_stats(str(tmp_path / "f.parquet"), StorageContext(warehouse=str(tmp_path), catalog_url=""))
    stats = json.loads(text)
    assert stats["minValues"]["n"] == 10 and stats["maxValues"]["n"] == 20 and stats["nullCount"]["n"] == 0
    assert stats["nullCount"]["s"] == 2 and "st" not in stats["nullCount"]


# ---- partition values with special characters, through every job --------------------------------------------------


def test_partition_values_with_special_characters_through_every_job(tmp_path: Path) -> None:
    from deltalake import DeltaTable, write_deltalake

    from lakehouse.maintenance.compaction import optimize
    from lakehouse.maintenance.dedup import dedup
    from lakehouse.maintenance.retention import vacuum

    root = str(tmp_path / "t")
    values = ["a b", "a/b", "50%", "x=y", "é", "#?&", "日本", None, "%2F", "__HIVE_DEFAULT_PARTITION__x"]
    for i in range(3):
        ids = list(range(i * 20, i * 20 + 20))
        data = pa.table({"id": pa.array(ids, pa.int64()), "p": [values[j % len(values)] for j in ids]})
        write_deltalake(root, data, mode="append", partition_by=["p"])
    write_deltalake(root, DeltaTable(root).to_pyarrow_table().slice(0, 4), mode="append")  # duplicates

    def theirs() -> pa.Table:
        return DeltaTable(root).to_pyarrow_table()

    lh = Lakehouse(
        load_settings(config_file=False, warehouse=str(tmp_path / "wh"), catalog_url=f"sqlite:///{tmp_path}/c.db")
    )
    try:
        lh.register_table("t.p", location=root, format="delta")
        table = lh.table("t.p")
        assert_same_rows(table.scan(), theirs(), "register")
        assert_same_rows(lh.query("SELECT * FROM t.p").table, theirs(), "query")
        result = optimize(lh, "t.p", CompactionOptions(min_input_files=2))
        assert result.rows_in == result.rows_out == 64 and len(result.partitions) == len(values)
        assert_same_rows(table.scan(), theirs(), "optimize")
        done = dedup(lh, "t.p", keys=["id"], dry_run=False)
        assert done.rows_removed == 4 and theirs().num_rows == 60
        assert_same_rows(table.scan(), theirs(), "dedup")
        deleted = table.delete_rows("p = 'a/b' OR p = '50%'")
        assert deleted.rows_deleted == 12 and theirs().num_rows == 48
        vacuum(lh, "t.p", retain="0s", dry_run=False)
        assert_same_rows(table.scan(), theirs(), "vacuum")
        assert_same_rows(lh.query("SELECT * FROM t.p").table, theirs(), "query after all")
    finally:
        lh.close()


def test_statistics_follow_the_tables_data_skipping_settings(tmp_path: Path) -> None:
    pq.write_table(pa.table({"a": [1, 2], "b": [3, 4], "c": ["x", "y"]}), tmp_path / "f.parquet")
    ctx = StorageContext(warehouse=str(tmp_path), catalog_url="")
    for indexed, columns in ((None, {"a", "b", "c"}), (1, {"a"}), (2, {"a", "b"}), ({"c"}, {"c"})):
        stats = json.loads(_parquet_stats(str(tmp_path / "f.parquet"), ctx, indexed)[1])
        assert set(stats["nullCount"]) == set(stats["minValues"]) == columns and stats["numRecords"] == 2
    foreign = writers.deltars_options(str(tmp_path / "t"))  # delta.dataSkippingNumIndexedCols = 1
    assert _open(foreign.location)._stats_columns() == 1


def test_a_column_mapped_table_through_every_job(tmp_path: Path) -> None:
    """delta-rs's own column-mapped table (name mode, partitioned) registered, optimized, Z-ordered, deduplicated and
    vacuumed; each step checked against delta-rs's DataFusion reader, which reads column mapping."""
    from deltalake import DeltaTable, QueryBuilder, write_deltalake

    from lakehouse.maintenance.compaction import optimize
    from lakehouse.maintenance.dedup import dedup
    from lakehouse.maintenance.retention import vacuum

    root = str(tmp_path / "t")
    for i in range(4):
        ids = list(range(i * 10, i * 10 + 10))
        data = pa.table(
            {
                "id": pa.array(ids, pa.int64()),
                "v": [f"v{j % 4}" for j in ids],
                "p": [("x", "y", None)[j % 3] for j in ids],
            }
        )
        write_deltalake(
            root, data, mode="append", partition_by=["p"], configuration={"delta.columnMapping.mode": "name"}
        )
    write_deltalake(
        root, pa.table({"id": pa.array([1, 2], pa.int64()), "v": ["v1", "v2"], "p": ["y", None]}), mode="append"
    )

    def theirs() -> pa.Table:
        return pa.table(QueryBuilder().register("t", DeltaTable(root)).execute("SELECT * FROM t").read_all())

    lh = Lakehouse(
        load_settings(config_file=False, warehouse=str(tmp_path / "wh"), catalog_url=f"sqlite:///{tmp_path}/c.db")
    )
    try:
        lh.register_table("t.cm", location=root, format="delta")
        table = lh.table("t.cm")
        assert_same_rows(table.scan(), theirs(), "register")
        assert_same_rows(lh.query("SELECT * FROM t.cm").table, theirs(), "query")
        assert optimize(lh, "t.cm", CompactionOptions(min_input_files=2)).rows_out == 42
        assert_same_rows(table.scan(), theirs(), "optimize")
        table.append(pa.table({"id": pa.array([3], pa.int64()), "v": ["v3"], "p": ["x"]}))
        assert optimize(lh, "t.cm", CompactionOptions(min_input_files=1, zorder=("v", "id"))).rows_out == 43
        assert_same_rows(table.scan(), theirs(), "zorder")
        assert dedup(lh, "t.cm", keys=["id"], dry_run=False).rows_removed == 3 and theirs().num_rows == 40
        assert_same_rows(table.scan(), theirs(), "dedup")
        vacuum(lh, "t.cm", retain="0s", dry_run=False)
        assert_same_rows(table.scan(), theirs(), "vacuum")
        assert_same_rows(lh.query("SELECT * FROM t.cm").table, theirs(), "query after all")
        for f in table.files():
            assert not {"id", "v"} & set(pq.ParquetFile(f.path).schema_arrow.names)
    finally:
        lh.close()


def test_nanoseconds_delta_rs_would_truncate_are_refused(tmp_path: Path) -> None:
    """A table delta-rs made with nanosecond timestamps (its timestampNanos feature, which DuckDB's delta extension
    cannot read: lakehouse creates no such table, it refuses the column by name) takes appends of whole
    microseconds only."""
    from deltalake import DeltaTable

    from lakehouse.errors import InvalidSchemaError

    lh = Lakehouse(load_settings(config_file=False, warehouse=str(tmp_path / "wh"), catalog_url="sqlite://"))
    try:
        schema = pa.schema([("id", pa.int64()), ("t", pa.timestamp("ns", tz="UTC"))])
        with pytest.raises(InvalidSchemaError, match="'t' holds nanosecond timestamps"):
            lh.create_table("t.refused", schema=schema, format="delta")
        assert not lh.catalog.list_tables()
        made = DeltaTable.create(str(tmp_path / "ns"), schema)
        assert "timestampNanos" in (made.protocol().reader_features or [])
        table = lh.register_table("t.ns", location=str(tmp_path / "ns"), format="delta")
        with pytest.raises(SchemaMismatchError, match="finer than a microsecond"):
            table.append(pa.table({"id": [1], "t": pa.array([1001], pa.timestamp("ns", tz="UTC"))}))
        assert not table.files()
        table.append(pa.table({"id": [1], "t": pa.array([1000], pa.timestamp("ns", tz="UTC"))}))
        assert table.scan().column("t").cast(pa.int64()).to_pylist() == [1000]
        table.check_operation("optimize")  # the protocol passes; a zoned nanosecond column is refused by the rewrite
    finally:
        lh.close()


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**130), max_value=2**130)  # decimal(38) statistics go beyond 64 bits
    | st.floats(allow_nan=True, allow_infinity=True)  # Python writes (and reads) bare NaN and Infinity
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


PATHS = st.text(min_size=1, max_size=12)
ACTIONS = st.one_of(
    st.builds(lambda p, x: {"add": {"path": p, "stats": x}}, PATHS, JSON_VALUES),
    st.builds(lambda p, x: {"remove": {"path": p, "extra": x}}, PATHS, JSON_VALUES),
    st.builds(lambda x: {"commitInfo": {"operationMetrics": x, "n": x}}, JSON_VALUES),
    st.builds(lambda x: {"metaData": {"configuration": x}}, JSON_VALUES),
)


@settings(max_examples=300, deadline=None)  # a loaded CI machine takes a case past the default 200 ms
@given(actions=st.lists(ACTIONS, max_size=6))
def test_a_commit_file_reads_as_python_s_json_reader_reads_it(actions: list[dict[str, Any]]) -> None:
    """The log reader's fast path (orjson) with its fallbacks keeps what json.loads reads of a commit file: its
    first commitInfo and the paths it adds and removes, for any file Python's json writes (integers beyond 64
    bits, NaN and infinities anywhere, in statistics and in the commitInfo)."""
    from lakehouse.tables.delta import _commit_of

    body = b"\n".join(json.dumps(a).encode() for a in actions) + b"\n"
    expected = [json.loads(line) for line in body.splitlines() if line.strip()]
    got = _commit_of(body, None)
    info = next((a["commitInfo"] for a in expected if "commitInfo" in a), None)
    assert json.dumps(got.info) == json.dumps(info)
    assert got.added == tuple(a["add"]["path"] for a in expected if "add" in a)
    assert got.removed == tuple(a["remove"]["path"] for a in expected if "remove" in a)
