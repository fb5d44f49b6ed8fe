"""Issue 15: every rewrite verifies content before it commits. Row deletes (erase, expire-data) and masking in
place rewrite files outside the maintenance jobs' ``rewrite_files``; here they must keep exactly the rows they
should (compared as full row multisets), and a write that changed a value must be caught before the commit,
naming the column, with the table's version unchanged and the file written removed."""

from __future__ import annotations

import datetime as dt
import math
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from lakehouse.config import load_settings
from lakehouse.core import Lakehouse
from lakehouse.errors import ContentMismatchError
from lakehouse.governance.masking import mask_array, parse_mask
from lakehouse.governance.ops import erase, mask_table
from lakehouse.maintenance.retention import expire_data
from lakehouse.schema import parse_partitioning, parse_schema
from lakehouse.storage import list_files
from tests.conformance.fingerprint import assert_same_rows

SCHEMA = parse_schema(
    "id:int64 not null, region:string, cust:int64, ts:timestamp, amount:float64, label:string, "
    "d:decimal(38,10), n:struct<a: int64, x: float64>"
)
NOW = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)  # expire-data's cutoff: 5 days before, 2026-05-27
OLD = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
NEW = dt.datetime(2026, 5, 30, tzinfo=dt.UTC)
EDGE_TS = [dt.datetime(1, 1, 1, tzinfo=dt.UTC), dt.datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=dt.UTC)]
FLOATS = [math.nan, -0.0, 0.0, math.inf, -math.inf, None, 1e300, 5e-324]
LABELS = ["", None, "ü", "x" * 40, "a b"]
DECIMALS = [Decimal("9999999999999999999999999999.9999999999"), Decimal("-0.0000000001"), None, Decimal(0)]
NESTED = [{"a": 1, "x": -0.0}, None, {"a": None, "x": math.nan}, {"a": -(2**63), "x": 0.0}]


def rows(ids: range, *, region: str, cust: Any, ts: Any) -> pa.Table:
    """Rows with awkward values in every column; ``cust`` and ``ts`` give a row's values from its id."""
    return pa.Table.from_pylist(
        [
            {
                "id": i,
                "region": region,
                "cust": cust(i),
                "ts": ts(i),
                "amount": FLOATS[i % len(FLOATS)],
                "label": LABELS[i % len(LABELS)],
                "d": DECIMALS[i % len(DECIMALS)],
                "n": NESTED[i % len(NESTED)],
            }
            for i in ids
        ],
        schema=SCHEMA,
    )


def _b_ts(i: int) -> dt.datetime | None:
    return [OLD, NEW, None, EDGE_TS[0], EDGE_TS[1]][i % 5]


BATCHES = {
    # every row matches both the erase (cust = 4) and the expiry (ts older than the cutoff)
    "whole": rows(range(0, 8), region="eu", cust=lambda i: 4, ts=lambda i: OLD + dt.timedelta(hours=i)),
    # some rows match, some do not, and for some the filter is NULL (cust or ts NULL): those stay
    "partial": rows(range(8, 28), region="us", cust=lambda i: (4, 5, None)[i % 3], ts=_b_ts),
    # no row matches
    "none": rows(range(28, 36), region="eu", cust=lambda i: 6, ts=lambda i: NEW + dt.timedelta(minutes=i)),
}


def _build(lh: Lakehouse, fmt: str, name: str = "v.events") -> tuple[Any, dict[str, str]]:
    """The table, one data file per batch; returns it and each batch's file."""
    table = lh.create_table(name, schema=SCHEMA, format=fmt, partitioning=parse_partitioning("region"))
    files: dict[str, str] = {}
    for key, batch in BATCHES.items():
        before = {f.path for f in table.files()}
        table.append(batch)
        (files[key],) = {f.path for f in table.files()} - before
    return table, files


def _all_rows() -> pa.Table:
    return pa.concat_tables(BATCHES.values())


def _tree(lh: Lakehouse, location: str) -> set[str]:
    return {f.path for f in list_files(location, lh.ctx)}


def _check_rewrite(lh: Lakehouse, name: str, files: dict[str, str], kept: pa.Table) -> None:
    """The whole file is gone, the untouched one stays, the partial one is replaced by one file of its own
    partition holding exactly its kept rows, and the table holds exactly ``kept``."""
    table = lh.table(name)
    assert_same_rows(table.scan(), kept, "after the delete")
    after = {f.path: f for f in table.files()}
    assert files["whole"] not in after and files["partial"] not in after, "matching files removed"
    assert files["none"] in after, "a file without a matching row is not rewritten"
    new = [f for p, f in after.items() if p not in files.values()]
    partial_kept = kept.filter(pc.equal(kept["region"], "us"))
    assert len(new) == 1 and new[0].partition == {"region": "us"}, [(f.path, f.partition) for f in new]
    assert new[0].row_count == partial_kept.num_rows


# ---- (a) the rows not matched are kept, exactly -----------------------------------------------------------------


def test_erase_keeps_exactly_the_rows_not_matched(make_lakehouse: Any, fmt: str) -> None:
    lh = make_lakehouse()
    _, files = _build(lh, fmt)
    everything = _all_rows()
    matched = pc.fill_null(pc.equal(everything["cust"], 4), False)
    kept = everything.filter(pc.invert(matched))
    assert kept.filter(pc.is_null(kept["cust"])).num_rows > 0, "fixture: rows whose filter is NULL"

    receipt = erase(lh, "cust = 4", tables=["v.events"], purge=False, dry_run=False)
    entry = receipt["tables"]["v.events"]
    assert entry["status"] == "erased" and entry["rows_deleted"] == everything.num_rows - kept.num_rows
    _check_rewrite(lh, "v.events", files, kept)


def test_expire_data_keeps_exactly_the_rows_not_matched(make_lakehouse: Any, fmt: str) -> None:
    lh = make_lakehouse()
    _, files = _build(lh, fmt)
    everything = _all_rows()
    cutoff = NOW - dt.timedelta(days=5)
    matched = pc.fill_null(pc.less(everything["ts"], pa.scalar(cutoff, pa.timestamp("us", tz="UTC"))), False)
    kept = everything.filter(pc.invert(matched))
    assert kept.filter(pc.is_null(kept["ts"])).num_rows > 0, "fixture: rows whose filter is NULL"

    done = expire_data(lh, "v.events", older_than="5d", column="ts", dry_run=False, now=NOW)
    assert done.rows_deleted == everything.num_rows - kept.num_rows
    assert done.files_removed == 2 and done.files_rewritten == 1
    _check_rewrite(lh, "v.events", files, kept)


def test_a_direct_delete_reports_what_it_did(tmp_path: Any, fmt: str) -> None:
    with Lakehouse(load_settings(config_file=False, warehouse=str(tmp_path / "wh"))) as lh:
        table, _ = _build(lh, fmt)
        version = table.snapshot().version
        result = table.delete_rows("cust = 4 OR label = 'ü'")
        everything = _all_rows()
        matched = pc.fill_null(pc.or_kleene(pc.equal(everything["cust"], 4), pc.equal(everything["label"], "ü")), False)
        assert result.version is not None and result.version > version
        assert result.rows_deleted == pc.sum(matched).as_py()
        assert (result.files_removed, result.files_added) == (3, 2), "every file had a match; one went whole"
        assert_same_rows(lh.table("v.events").scan(), everything.filter(pc.invert(matched)), "after the delete")
        assert len([s for s in lh.table("v.events").snapshots() if s.version > version]) == 1, "one commit"


# ---- (b) a corrupted write is caught before the commit ----------------------------------------------------------


def _corrupt_writes(monkeypatch: pytest.MonkeyPatch, column: str) -> list[int]:
    """Make every pyarrow Parquet write change the first value of ``column`` (row deletes write with
    ``pq.write_table``, masking piece by piece with ``pq.ParquetWriter``); returns the list the number of
    corrupted writes is appended to."""
    original = pq.write_table
    original_piece = pq.ParquetWriter.write_table
    done: list[int] = []

    def corrupt(table: pa.Table) -> pa.Table:
        i = table.schema.get_field_index(column)
        if i >= 0 and table.num_rows:
            field = table.schema.field(i)
            values = table.column(i).to_pylist()
            values[0] = 12345.0 if pa.types.is_floating(field.type) else "corrupted"
            table = table.set_column(i, field, pa.array(values, field.type))
            done.append(1)
        return table

    def corrupting(table: pa.Table, where: Any, *args: Any, **kwargs: Any) -> Any:
        return original(corrupt(table), where, *args, **kwargs)

    def corrupting_piece(self: pq.ParquetWriter, table: pa.Table, *args: Any, **kwargs: Any) -> Any:
        return original_piece(self, corrupt(table), *args, **kwargs)

    monkeypatch.setattr(pq, "write_table", corrupting)
    monkeypatch.setattr(pq.ParquetWriter, "write_table", corrupting_piece)
    return done


@pytest.mark.parametrize("job", ["erase", "expire-data"])
def test_a_delete_whose_write_changed_a_value_commits_nothing(
    tmp_path: Any, fmt: str, job: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Lakehouse(load_settings(config_file=False, warehouse=str(tmp_path / "wh"))) as lh:
        table, _ = _build(lh, fmt)
        version = table.snapshot().version
        tree = _tree(lh, table.location)
        corrupted = _corrupt_writes(monkeypatch, "amount")
        with pytest.raises(ContentMismatchError, match=r"column\(s\) amount differ") as e:
            if job == "erase":
                erase(lh, "cust = 4", tables=["v.events"], purge=False, dry_run=False)
            else:
                expire_data(lh, "v.events", older_than="5d", column="ts", dry_run=False, now=NOW)
        monkeypatch.undo()
        assert corrupted, "the rewrite wrote through pq.write_table"
        assert "nothing was committed" in e.value.message
        fresh = lh.table("v.events")
        assert fresh.snapshot().version == version, "no commit"
        assert _tree(lh, table.location) == tree, "the file written is removed, nothing else written"
        assert_same_rows(fresh.scan(), _all_rows(), "the table is unchanged")
        job_kind = "erase" if job == "erase" else "expire-data"
        assert [j.state for j in lh.jobs("v.events") if j.kind == job_kind] == ["failed"]


@pytest.mark.parametrize("column", ["amount", "label"])
def test_a_mask_whose_write_changed_a_value_commits_nothing(
    tmp_path: Any, fmt: str, column: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A changed value in a column that is not masked (compared with the source file) or in the masked column
    (compared with the masked values computed) is caught and named."""
    with Lakehouse(load_settings(config_file=False, warehouse=str(tmp_path / "wh"))) as lh:
        table, _ = _build(lh, fmt)
        version = table.snapshot().version
        tree = _tree(lh, table.location)
        corrupted = _corrupt_writes(monkeypatch, column)
        with pytest.raises(ContentMismatchError, match=rf"column\(s\) {column} differ"):
            mask_table(lh, "v.events", policies={"label": "redact"}, dry_run=False)
        monkeypatch.undo()
        assert corrupted
        fresh = lh.table("v.events")
        assert fresh.snapshot().version == version and _tree(lh, table.location) == tree
        assert_same_rows(fresh.scan(), _all_rows(), "the table is unchanged")
        assert lh.policy("v.events").masking == {}, "no policy stored"
        assert [j.state for j in lh.jobs("v.events") if j.kind == "pii.mask"] == ["failed"]


# ---- (c) masking keeps every other value exactly ----------------------------------------------------------------


def _masked(expected: pa.Table, policies: dict[str, str]) -> pa.Table:
    for column, policy in policies.items():
        i = expected.schema.get_field_index(column)
        expected = expected.set_column(i, expected.schema.field(i), mask_array(expected[column], parse_mask(policy)))
    return expected


def test_masking_keeps_edge_values_exactly(make_lakehouse: Any, fmt: str) -> None:
    lh = make_lakehouse()
    _build(lh, fmt)
    policies = {"label": "redact", "cust": "null"}
    done = mask_table(lh, "v.events", policies=policies, dry_run=False)
    assert done["files_rewritten"] == 3
    assert_same_rows(lh.table("v.events").scan(), _masked(_all_rows(), policies), "after masking")


def _int96_table(tmp_path: Any) -> tuple[Lakehouse, Any]:
    from tests.conformance import delta_writers as writers

    foreign = writers.int96(str(tmp_path / "int96"))
    lh = Lakehouse(load_settings(config_file=False, warehouse=str(tmp_path / "wh")))
    lh.register_table("v.int96", location=foreign.location, format="delta")
    return lh, foreign


def test_masking_a_delta_table_with_int96_timestamps_keeps_them_exactly(tmp_path: Any) -> None:
    """Spark's legacy INT96 timestamps (0001-01-01 and 9999-12-31 among them) overflowed when read as
    nanoseconds (9999-12-31 became 1816-03-30): masking another column rewrote them so."""
    lh, foreign = _int96_table(tmp_path)
    with lh:
        done = mask_table(lh, "v.int96", policies={"name": "redact"}, dry_run=False)
        assert done["files_rewritten"] == len(lh.table("v.int96").files()) > 1
        after = lh.table("v.int96").scan()
        assert_same_rows(after, _masked(foreign.expected, {"name": "redact"}), "after masking")
        assert set(EDGE_TS) <= set(after.column("ts").to_pylist())


def test_masking_verifies_against_the_source_file_not_what_it_read(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Read as nanoseconds (pyarrow's default for INT96) the far timestamps overflow in memory: the mask's own
    read is wrong, so comparing the file written with the table in memory would pass. The verification reads
    the source file itself, so it names the column and nothing is committed."""
    import pyarrow.parquet as pq

    lh, foreign = _int96_table(tmp_path)
    with lh:
        table = lh.table("v.int96")
        version, tree = table.snapshot().version, _tree(lh, table.location)
        parquet_file = pq.ParquetFile  # the adapter's read of the file, as pyarrow reads INT96 by default
        monkeypatch.setattr(
            pq, "ParquetFile", lambda *a, **k: parquet_file(*a, **{**k, "coerce_int96_timestamp_unit": "ns"})
        )
        with pytest.raises(ContentMismatchError, match=r"column\(s\) ts differ"):
            mask_table(lh, "v.int96", policies={"name": "redact"}, dry_run=False)
        assert lh.table("v.int96").snapshot().version == version and _tree(lh, table.location) == tree
        assert_same_rows(lh.table("v.int96").scan(), foreign.expected, "unchanged")


# ---- Iceberg: a commit that lost its race ----------------------------------------------------------------------


@pytest.mark.parametrize("meanwhile", ["matching", "not matching"])
def test_iceberg_delete_considers_rows_appended_meanwhile(
    tmp_path: Any, meanwhile: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Between the delete's plan and its commit another writer appends. Rows that may match make the delete plan
    again on the newer snapshot (so they are deleted too); rows that cannot match let the commit be rebased onto
    the append as it is. Either way one snapshot is committed."""
    from lakehouse.tables.iceberg import IcebergAdapter

    with Lakehouse(load_settings(config_file=False, warehouse=str(tmp_path / "wh"))) as lh:
        table, _ = _build(lh, "iceberg")
        version = table.snapshot().version
        extra = rows(range(100, 104), region="us", cust=lambda i: 4 if meanwhile == "matching" else 9, ts=_b_ts)
        original = IcebergAdapter._retired_deletes
        attempts: list[int] = []

        def racing(self: Any, *a: Any, **kw: Any) -> Any:
            attempts.append(1)
            if len(attempts) == 1:  # the other writer commits first
                lh.append("v.events", extra)
            return original(self, *a, **kw)

        monkeypatch.setattr(IcebergAdapter, "_retired_deletes", racing)
        result = table.delete_rows("cust = 4", properties={"lakehouse.operation": "test"})
        monkeypatch.undo()
        everything = pa.concat_tables([_all_rows(), extra])
        matched = pc.fill_null(pc.equal(everything["cust"], 4), False)
        assert_same_rows(lh.table("v.events").scan(), everything.filter(pc.invert(matched)), "after the delete")
        assert len(attempts) == (2 if meanwhile == "matching" else 1)
        assert result.rows_deleted == pc.sum(matched).as_py()
        ours = [s for s in lh.table("v.events").snapshots() if s.summary.get("lakehouse.operation") == "test"]
        assert [s.version for s in ours] == [result.version] and result.version > version + 1
        live = {f.path for f in lh.table("v.events").files()}
        stray = [p for p in _tree(lh, table.location) if "lh-delete" in p and p not in live]
        assert stray == [], "files written for an attempt that did not land are removed"


def test_iceberg_delete_keeps_each_files_spec_and_follows_renamed_columns(tmp_path: Any) -> None:
    """Files of an older partition spec are rewritten in their own spec and partition (pyiceberg's delete wrote
    them in the current one; pyiceberg records added files in the current spec), and columns renamed or added
    since a file was written are matched by field id."""
    with Lakehouse(load_settings(config_file=False, warehouse=str(tmp_path / "wh"))) as lh:
        table = lh.create_table("v.evolved", schema=SCHEMA, format="iceberg", partitioning=parse_partitioning("region"))
        table.append(BATCHES["partial"])
        ice = table._table  # type: ignore[attr-defined]
        with ice.update_schema() as update:
            update.rename_column("cust", "customer")
        table.add_columns([pa.field("extra", pa.string())])
        with ice.update_spec() as spec:
            spec.add_identity("label")
        newer = BATCHES["whole"].rename_columns(["customer" if c == "cust" else c for c in SCHEMA.names])
        table.append(newer.append_column("extra", pa.array([f"e{i % 2}" for i in range(newer.num_rows)])))
        before = {f.path: (f.partition, spec_id) for f, spec_id in _specs(table)}
        everything = lh.table("v.evolved").scan()
        matched = pc.fill_null(
            pc.or_kleene(pc.equal(everything["customer"], 5), pc.equal(everything["extra"], "e1")), False
        )

        result = lh.table("v.evolved").delete_rows("customer = 5 OR extra = 'e1'")
        assert_same_rows(lh.table("v.evolved").scan(), everything.filter(pc.invert(matched)), "after the delete")
        after = {f.path: (f.partition, spec_id) for f, spec_id in _specs(lh.table("v.evolved"))}
        new = [v for p, v in after.items() if p not in before]
        removed = [v for p, v in before.items() if p not in after]
        assert result.rows_deleted == pc.sum(matched).as_py()
        assert (result.files_added, result.files_removed) == (len(new), len(removed)) == (4, 5)
        assert all(v in removed for v in new), "each new file is in its input's spec and partition"
        assert len({spec_id for _, spec_id in new}) == 2, "files of both specs were rewritten"
        summary = lh.table("v.evolved").snapshot().summary
        assert (summary["added-data-files"], summary["deleted-data-files"]) == ("4", "5")
        kept = everything.num_rows - result.rows_deleted
        assert summary["total-records"] == str(kept), "the summary counts each file in its own spec"
        sql = lh.query("SELECT * FROM v.evolved").table  # DuckDB's iceberg_scan reads the manifests too
        assert_same_rows(sql, everything.filter(pc.invert(matched)), "SQL after the delete")


def _specs(table: Any) -> list[tuple[Any, int]]:
    """(DataFile, partition spec id) of each live file."""
    by_path = {str(t.file.file_path).removeprefix("file://"): t.file.spec_id for t in table._plan().tasks}
    return [(f, by_path[f.path]) for f in table.files()]


def test_masking_iceberg_files_without_field_ids_matches_columns_by_the_name_mapping(tmp_path: Any) -> None:
    """Files added with add_files carry no field ids: masking reads them through the table's name mapping (it
    once wrote every column as NULL there), masks the column and keeps the others exactly."""
    lh = Lakehouse(load_settings(config_file=False, warehouse=str(tmp_path / "wh"), catalog_url="sqlite://"))
    with lh:
        schema = pa.schema([("id", pa.int64()), ("email", pa.string())])
        table = lh.create_table("v.added", schema=schema, format="iceberg")
        plain = str(tmp_path / "plain.parquet")
        pq.write_table(pa.table({"id": [1, 2, None], "email": ["a@x.io", None, "c@x.io"]}), plain)
        table._table.add_files([plain])  # type: ignore[attr-defined]  # pyiceberg's own add_files
        before = lh.table("v.added").scan()
        mask_table(lh, "v.added", policies={"email": "redact"}, dry_run=False)
        after = lh.table("v.added").scan()
        assert_same_rows(after.select(["id"]), before.select(["id"]), "unmasked column kept")
        expected = mask_array(before.column("email"), parse_mask("redact"), None)
        assert sorted(after.column("email").to_pylist(), key=str) == sorted(expected.to_pylist(), key=str)
