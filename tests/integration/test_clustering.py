"""Clustering measured by what it buys: row groups a predicate skips, for every key type, and the health signal
that notices a table queried by a column no layout serves."""

from __future__ import annotations

import datetime as dt
import decimal
import itertools
from typing import Any

import pyarrow as pa
import pytest

from lakehouse.core import Lakehouse
from lakehouse.maintenance.compaction import optimize
from lakehouse.maintenance.health import column_skipping, data_skipping
from lakehouse.maintenance.maintain import health
from lakehouse.maintenance.planner import CompactionOptions

ROWS = 40_000


def typed(start: int, n: int) -> pa.Table:
    """One column per key kind, each a shuffle of its range (so that only a clustering can order it)."""
    ids = list(range(start, start + n))
    mix = [(i * 7919) % ROWS for i in ids]
    return pa.table(
        {
            "id": pa.array(ids, pa.int64()),
            "name": pa.array(["" if m % 97 == 0 else f"n{m:05d}" for m in mix]),  # short strings too
            "day": pa.array([dt.date(2020, 1, 1) + dt.timedelta(days=m % 3000) for m in mix]),
            "price": pa.array([decimal.Decimal(m) / 100 for m in mix], pa.decimal128(12, 2)),
            "flag": pa.array([m % 2 == 0 for m in mix]),
            "raw": pa.array([m.to_bytes(4, "big") for m in mix], pa.binary()),
        }
    )


# which key types and curves cluster is not a matter of storage: on local files only (Z-order's output on S3, and
# what it lets a reader skip there, is test_optimize.py::test_zorder_prunes_by_statistics)
@pytest.mark.parametrize("storage", ["local"], indirect=True)
@pytest.mark.parametrize("curve", ["hilbert", "morton"])
@pytest.mark.parametrize(
    ("columns", "predicate"),
    [
        (("name", "day"), "name BETWEEN 'n10000' AND 'n10400'"),
        (("day", "price"), "day BETWEEN '2021-01-01' AND '2021-01-30'"),
        (("price", "name"), "price BETWEEN 100 AND 104"),
    ],
)
def test_every_key_type_clusters_into_skippable_row_groups(
    lh: Lakehouse, fmt: str, curve: str, columns: tuple[str, ...], predicate: str
) -> None:
    table = lh.create_table("c.t", schema=typed(0, 1).schema, format=fmt)
    for i in range(4):
        table.append(typed(i * ROWS // 4, ROWS // 4))
    expected = table.scan().sort_by("id")
    optimize(lh, "c.t", CompactionOptions(target_file_size=64 << 20))
    before = data_skipping(table, table.files(), predicate)
    optimize(lh, "c.t", CompactionOptions(target_file_size=64 << 20, zorder=columns, curve=curve, row_group_rows=2048))
    assert table.scan().sort_by("id").equals(expected)
    after = data_skipping(table, table.files(), predicate)
    assert before["share_row_groups_prunable"] == 0.0  # the shuffled column: every group spans it
    assert after["share_row_groups_prunable"] >= 0.6, after
    assert after["rows_read"] < 0.4 * after["rows"]
    assert lh.query(f"SELECT count(*) AS n FROM c.t WHERE {predicate}").table.to_pylist()[0]["n"] == len(
        [r for r in expected.to_pylist() if _holds(predicate, r)]
    )


def _holds(predicate: str, row: dict[str, Any]) -> bool:
    column, _, rest = predicate.partition(" BETWEEN ")
    low, _, high = rest.partition(" AND ")
    value = row[column]
    cast = {str: str, dt.date: dt.date.fromisoformat, decimal.Decimal: decimal.Decimal}[type(value)]
    return bool(cast(low.strip("'")) <= value <= cast(high.strip("'")))


def test_health_notices_a_filtered_column_no_layout_serves(lh: Lakehouse) -> None:
    table = lh.create_table("c.q", schema=typed(0, 1).schema, format="iceberg")
    for i in range(8):
        table.append(typed(i * ROWS // 8, ROWS // 8))
    optimize(lh, "c.q", CompactionOptions(target_file_size=64 << 20, row_group_rows=1024))
    for _ in range(3):  # queries filter on price: the access log knows
        lh.query("SELECT count(*) FROM c.q WHERE price BETWEEN 10 AND 11")
    assert column_skipping(table, table.files(), "price")["share_skippable"] < 0.2
    sick = health(lh, "c.q", check_duplicates=False)
    finding = next(f for f in sick.findings if f.signal == "pruning")
    assert finding.penalty > 5 and "price" in finding.evidence and "optimize" in sick.fixes
    optimize(lh, "c.q", CompactionOptions(target_file_size=64 << 20, zorder=("price",), row_group_rows=1024))
    cured = health(lh, "c.q", check_duplicates=False)
    assert next(f for f in cured.findings if f.signal == "pruning").penalty == 0
    assert cured.score > sick.score


@pytest.mark.parametrize("storage", ["local"], indirect=True)
def test_clustered_output_is_cut_into_files_a_reader_skips_whole(
    lh: Lakehouse, fmt: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A partition's Z-order is written as cells of its curve, a few row groups each, every cell one box of the
    clustering columns: file statistics leave most files out before any footer is read, and a compaction
    without Z-order leaves them be. (Written by one statement that starts new files as it goes, DuckDB's threads
    put stretches from all over the curve into every file: boxes that overlap.)"""
    import lakehouse.maintenance.compaction as compaction

    monkeypatch.setattr(compaction, "GROUPS_PER_FILE", 4)  # 20 row groups of 2,048 rows: 4 cells, not 1 file
    table = lh.create_table("c.s", schema=typed(0, 1).schema, format=fmt)
    for i in range(4):
        table.append(typed(i * ROWS // 4, ROWS // 4))
    expected = table.scan().sort_by("id")
    predicate = "day BETWEEN '2021-01-01' AND '2021-01-30'"
    opts = CompactionOptions(target_file_size=64 << 20, zorder=("day", "name"), row_group_rows=2048)
    optimize(lh, "c.s", opts)
    assert table.scan().sort_by("id").equals(expected)
    files = table.files()
    assert len(files) == 4, [f.row_count for f in files]  # the curve's first level: four quadrants
    for a, b in itertools.combinations(files, 2):  # apart in one clustering column at least
        assert any(a.stats[c][1] < b.stats[c][0] or b.stats[c][1] < a.stats[c][0] for c in ("day", "name")), (
            {c: a.stats[c][:2] for c in ("day", "name")},
            {c: b.stats[c][:2] for c in ("day", "name")},
        )
    skip = data_skipping(table, files, predicate)
    groups = sum(-(-f.row_count // 2048) for f in files)  # each file's last row group may be short
    assert skip["files_prunable"] >= 2 and skip["row_groups"] == groups, skip  # by the files' own statistics
    assert lh.query(f"SELECT count(*) AS n FROM c.s WHERE {predicate}").table.to_pylist()[0]["n"] == len(
        [r for r in expected.to_pylist() if _holds(predicate, r)]
    )
    # small by design, not by mistake: no compaction, no health penalty, nothing for the autopilot to undo
    plain = optimize(lh, "c.s", CompactionOptions(target_file_size=64 << 20))
    assert plain.partitions == [] and "4 file(s) clustered as hilbert:day,name" in plain.plan.partitions[0].reason
    assert {f.path for f in table.files()} == {f.path for f in files}
    assert next(f for f in health(lh, "c.s", check_duplicates=False).findings if f.signal == "small_files").value == 0
    from lakehouse.presentation import table_summary

    shown = table_summary(lh, "c.s")["health"]  # what `table show` and GET /tables/{name} report
    assert (shown["small_files"], shown["clustered_files"]) == (0, 4), shown
    # new small files beside them are compacted among themselves
    table.append(typed(ROWS, 100))
    table.append(typed(ROWS + 100, 100))
    again = optimize(lh, "c.s", CompactionOptions(target_file_size=64 << 20))
    assert [len(p.inputs) for p in again.plan.picked] == [2]
    assert {f.path for f in files} <= {f.path for f in table.files()}


@pytest.mark.parametrize("storage", ["local"], indirect=True)
def test_a_cell_the_skew_filled_is_still_cut_into_files_of_the_target_size(
    lh: Lakehouse, fmt: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Clustering columns of one value put every row into one cell of the curve: written as one file, the
    partition would be one file whatever the target; it is cut like an unclustered rewrite instead."""
    import lakehouse.maintenance.compaction as compaction

    monkeypatch.setattr(compaction, "GROUPS_PER_FILE", 4)  # files of 4 row groups of 2,048 rows at most
    rows = typed(0, ROWS)
    rows = rows.set_column(rows.schema.get_field_index("day"), "day", pa.array([dt.date(2024, 1, 1)] * ROWS))
    rows = rows.set_column(rows.schema.get_field_index("name"), "name", pa.array(["same"] * ROWS))
    table = lh.create_table("c.k", schema=rows.schema, format=fmt)
    for i in range(4):
        table.append(rows.slice(i * ROWS // 4, ROWS // 4))
    expected = table.scan().sort_by("id")
    optimize(lh, "c.k", CompactionOptions(target_file_size=64 << 20, zorder=("day", "name"), row_group_rows=2048))
    assert table.scan().sort_by("id").equals(expected)
    files = table.files()
    assert len(files) >= 4 and max(f.row_count for f in files) <= 4 * 2048, [f.row_count for f in files]


@pytest.mark.parametrize("storage", ["local"], indirect=True)
@pytest.mark.parametrize("case", ["nulls", "signed-zeros", "a-column-named-like-the-key"])
def test_cells_keep_nulls_signed_zeros_and_any_column_name(
    lh: Lakehouse, fmt: str, monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    """Written as several cells: NULLs in a clustering column are a coordinate of their own (first), not a
    missing cell; -0.0 beside 0.0 makes the rewrite write every cell again without dictionaries (the output
    directory removed in between); a column with the curve index's base name is the table's own."""
    import math

    import lakehouse.maintenance.compaction as compaction

    monkeypatch.setattr(compaction, "GROUPS_PER_FILE", 1)  # several cells on small data
    n = 5_000

    def batch(i: int) -> pa.Table:
        ids = range(i * n, (i + 1) * n)
        cols = {
            "id": pa.array(ids, pa.int64()),
            "x": pa.array([None if case == "nulls" and k % 10 == 0 else (k * 7919) % 20_000 for k in ids], pa.int64()),
            "y": pa.array([(k * 104729) % 20_000 for k in ids], pa.int64()),
            "f": pa.array([(0.0, -0.0, 1.5)[k % 3] if case == "signed-zeros" else float(k) for k in ids]),
        }
        if case == "a-column-named-like-the-key":
            cols["__lakehouse_curve_index"] = pa.array(ids, pa.int64())
        return pa.table(cols)

    table = lh.create_table("c.n", schema=batch(0).schema, format=fmt)
    for i in range(4):
        table.append(batch(i))
    expected = table.scan().sort_by("id")
    opts = CompactionOptions(zorder=("x", "y"), row_group_rows=2048, target_file_size=1 << 20, min_input_files=2)
    result = optimize(lh, "c.n", opts)
    assert result.rows_in == result.rows_out == 4 * n
    after = table.scan().sort_by("id")
    assert after.equals(expected)
    assert len(table.files()) > 2
    negative = [math.copysign(1, v) < 0 for v in after.column("f").to_pylist()]
    assert negative == [math.copysign(1, v) < 0 for v in expected.column("f").to_pylist()]
    assert any(negative) == (case == "signed-zeros")


@pytest.mark.parametrize("storage", ["local"], indirect=True)
def test_incremental_runs_add_up_until_the_partition_is_clustered_again(lh: Lakehouse, fmt: str) -> None:
    """Each incremental Z-order clusters only the new files, as a run beside the layout; the runs' rows count
    with the next new ones against the 25 % share, so once they pass it the partition is clustered again as a
    whole (each pass compared its own 5-10 % only: runs that skip little piled up for ever)."""
    from lakehouse.maintenance.planner import INCREMENTAL_SHARE

    table = lh.create_table("c.r", schema=typed(0, 1).schema, format=fmt)
    table.append(typed(0, 20_000))
    opts = CompactionOptions(target_file_size=64 << 20, zorder=("day", "name"), row_group_rows=2048)
    optimize(lh, "c.r", opts)
    expected = table.scan().to_pylist()
    key = next(iter(lh.catalog.layouts(table.name)))
    reasons = []
    for i in range(4):  # 2,000 rows each: runs of 2k, 4k, 6k (23 %), then 8k of 28k (29 %)
        new = typed(20_000 + 2_000 * i, 2_000)
        table.append(new)
        expected += new.to_pylist()
        done = optimize(lh, "c.r", opts)
        reasons.append(done.plan.picked[0].reason)
        assert sorted(table.scan().to_pylist(), key=lambda r: r["id"]) == sorted(expected, key=lambda r: r["id"])
        runs = lh.catalog.layout_runs(table.name)[key]
        layout = lh.catalog.layouts(table.name)[key][1]
        assert layout == {f.path for f in table.files()}, "every live file is in the layout"
        if i < 3:
            assert "new file(s)" in reasons[-1] and len(runs) == i + 1, (i, reasons[-1], runs)
        else:
            assert " again (" in reasons[-1] and f"over {INCREMENTAL_SHARE:.0%}" in reasons[-1], reasons[-1]
            assert runs == frozenset(), "a whole clustering starts without runs"
    assert "2,000 in earlier runs" in reasons[1] and "4,000 in earlier runs" in reasons[2], reasons


@pytest.mark.parametrize("storage", ["local"], indirect=True)
def test_a_clustering_survives_the_deletes_and_masks_that_rewrite_its_files(lh: Lakehouse, fmt: str) -> None:
    """An erasure, a data expiry and a mask rewrite a clustered file as itself less some rows (or with a column
    masked): the file written keeps its row groups, so a reader skips within it as before, and the layout follows
    it under its new name, so the next Z-order finds the partition clustered instead of taking every rewritten
    file for new data and clustering it all again."""
    from lakehouse.governance.ops import erase, mask_table
    from lakehouse.maintenance.retention import expire_data

    table = lh.create_table("c.e", schema=typed(0, 1).schema, format=fmt)
    for i in range(4):
        table.append(typed(i * ROWS // 4, ROWS // 4))
    opts = CompactionOptions(target_file_size=64 << 20, zorder=("day", "name"), row_group_rows=2048)
    optimize(lh, "c.e", opts)
    predicate = "name BETWEEN 'n10000' AND 'n10400'"
    clustered = data_skipping(table, table.files(), predicate)
    assert clustered["share_row_groups_prunable"] >= 0.6, clustered
    expected = {r["id"]: r for r in table.scan().to_pylist()}

    done = erase(lh, "id = 5", tables=["c.e"], purge=False, dry_run=False)
    assert done["tables"]["c.e"]["rows_deleted"] == 1
    expired = expire_data(lh, "c.e", older_than="1d", column="day", now=dt.datetime(2020, 1, 9), dry_run=False)
    assert expired.rows_deleted > 0 and expired.files_rewritten > 0
    mask_table(lh, "c.e", policies={"raw": "null"}, dry_run=False)
    kept = {i: r for i, r in expected.items() if i != 5 and r["day"] >= dt.date(2020, 1, 8)}
    assert len(kept) == ROWS - 1 - expired.rows_deleted
    assert {r["id"]: r for r in table.scan().to_pylist()} == {i: {**r, "raw": None} for i, r in kept.items()}

    after = data_skipping(table, table.files(), predicate)
    assert after["row_groups"] >= clustered["row_groups"] - 1, (clustered, after)  # the same groups, less rows
    assert after["share_row_groups_prunable"] >= clustered["share_row_groups_prunable"] - 0.05, (clustered, after)
    layouts = lh.catalog.layouts(table.name)
    assert {p for _, paths in layouts.values() for p in paths} == {f.path for f in table.files()}
    again = optimize(lh, "c.e", opts)
    assert not again.plan.picked and all("already clustered" in p.reason for p in again.plan.partitions), [
        p.reason for p in again.plan.partitions
    ]

    # a mask of a clustering column rewrites the values the files were ordered by: the layout is forgotten
    mask_table(lh, "c.e", policies={"name": "redact"}, dry_run=False)
    assert lh.catalog.layouts(table.name) == {}
    assert optimize(lh, "c.e", opts).plan.picked, "clustered again"
    # a delete that leaves a file a small part of its rows: a small file, in row groups of the same size
    before = data_skipping(table, table.files(), "day >= '2027-06-01'")
    expire_data(lh, "c.e", older_than="1d", column="day", now=dt.datetime(2027, 6, 2), dry_run=False)
    left = table.row_count()
    assert 0 < 2 * left < len(kept), left
    after = data_skipping(table, table.files(), "day >= '2027-06-01'")
    assert after["row_groups"] <= -(-left // 2048) + len(table.files()), (before, after)
    assert lh.catalog.layouts(table.name) == {}, "less than half of its rows left: not counted as clustered"
    assert optimize(lh, "c.e", opts).plan.picked


def test_carrying_a_layout_never_fails_the_job_whose_commit_landed(lh: Lakehouse) -> None:
    """follow_rewrites runs after a commit landed: a layout row it cannot read is left as it is, not an error
    that would record a committed erase or expiry as failed."""
    import sqlalchemy as sa

    from lakehouse.names import TableName

    name = TableName.parse("c.l")
    lh.catalog.set_layout(name, "a", "hilbert:x,y", ["f1", "f2"])
    lh.catalog.set_layout(name, "b", "hilbert:x,y", ["f3"])
    lh.catalog.set_layout(name, "c", "hilbert:x,y", ["f5"])
    with lh.catalog.engine.begin() as conn:
        conn.execute(sa.text("UPDATE lh_layouts SET files_json = '[[1], \"f4\"]' WHERE partition_key = 'b'"))
        conn.execute(sa.text("UPDATE lh_layouts SET files_json = '[not json' WHERE partition_key = 'c'"))
    lh.catalog.follow_rewrites(name, {"f1": "g1", "f4": None})
    layouts = lh.catalog.layouts(name)
    assert layouts["a"] == ("hilbert:x,y", frozenset({"g1", "f2"}))
    assert "b" not in layouts, "its one file removed whole (the entry that is not a path counts for nothing)"
    assert layouts["c"] == ("hilbert:x,y", frozenset()), "a row that cannot be read: no file counts as clustered"
    lh.catalog.follow_rewrites(name, {"g1": "h1"}, changed=["y"])
    assert "a" not in lh.catalog.layouts(name), "clustered by a column whose values the commit rewrote"
