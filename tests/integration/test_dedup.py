"""Deduplication on both formats, local and S3: duplicates injected across batches are removed, the latest
version of a key wins, other rows and untouched files stay exactly as they were, and a rerun does nothing."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pyarrow as pa
import pytest

from lakehouse.core import Lakehouse
from lakehouse.errors import InvalidInputError, StorageError
from lakehouse.maintenance.dedup import dedup
from lakehouse.schema import parse_partitioning
from tests.conftest import EVENTS, events, sorted_rows


def replayed(ids: list[int], *, bump: float) -> pa.Table:
    """Rows for ``ids`` as a replay would deliver them, with a later timestamp in the same day and a changed
    amount (``bump``), so "latest by ts" is well defined."""
    base = events(0, max(ids) + 1).to_pylist()
    rows = []
    for i in ids:
        r = dict(base[i])
        r["ts"] = r["ts"] + dt.timedelta(seconds=30 + bump)
        r["amount"] = r["amount"] + bump
        rows.append(r)
    return pa.Table.from_pylist(rows, schema=EVENTS)


def test_dedup_keeps_the_latest_row_per_key(lh: Lakehouse, fmt: str) -> None:
    table = lh.create_table("d.events", schema=EVENTS, format=fmt, partitioning=parse_partitioning("day(ts)"))
    for b in range(4):
        table.append(events(b * 100, 100))  # ids 0..399, each once
    untouched_batch = {f.path for f in table.files()}
    table.append(replayed(list(range(10, 20)), bump=1))  # a replay of ten ids
    table.append(replayed([*range(15, 25), 250], bump=2))  # overlapping replay: 15..19 now 3 copies
    table.append(events(50, 3))  # exact duplicates of ids 50..52
    assert table.row_count() == 400 + 10 + 11 + 3

    plan = dedup(lh, "d.events", keys=["id"], order="ts")
    assert plan.dry_run and plan.plan.duplicate_rows == 24 and plan.plan.duplicated_keys == 19
    assert table.row_count() == 424, "a dry run changes nothing"
    expected: dict[int, dict[str, Any]] = {}
    for r in sorted(table.scan().to_pylist(), key=lambda r: (r["id"], r["ts"])):
        expected[r["id"]] = r  # the latest ts per id wins
    done = dedup(lh, "d.events", keys=["id"], order="ts", dry_run=False)
    assert done.status == "committed" and done.rows_removed == 24 == done.rows_in - done.rows_out
    after = lh.table("d.events")
    assert sorted_rows(after.scan()) == [expected[i] for i in sorted(expected)]
    assert after.row_count() == 400
    by_id = {r["id"]: r for r in after.scan().to_pylist()}
    assert by_id[12]["amount"] == events(12, 1).to_pylist()[0]["amount"] + 1
    assert by_id[17]["amount"] == events(17, 1).to_pylist()[0]["amount"] + 2
    # exactly the files holding no duplicated key were left as they were
    dup_ids = set(range(10, 25)) | {250, 50, 51, 52}

    def ids_in(path: str) -> set[int]:
        import pyarrow.parquet as pq

        from lakehouse.storage import split_location

        filesystem, inner = split_location(path, lh.ctx)
        with filesystem.open_input_file(inner) as fh:
            return set(pq.read_table(fh, columns=["id"]).column("id").to_pylist())

    clean = {p for p in untouched_batch if not ids_in(p) & dup_ids}
    assert clean and len(clean) < len(untouched_batch)
    assert {f.path for f in after.files()} & untouched_batch == clean
    job = lh.jobs("d.events")[0]
    assert job.kind == "dedup" and job.metrics["rows_removed"] == 24
    again = dedup(lh, "d.events", keys=["id"], order="ts", dry_run=False)
    assert again.status == "skipped" and again.plan.duplicate_rows == 0, "idempotent"
    assert sorted_rows(lh.table("d.events").scan()) == [expected[i] for i in sorted(expected)]


def test_exact_duplicates_without_order_and_composite_keys(tmp_path: Any, fmt: str) -> None:
    from lakehouse.config import load_settings

    with Lakehouse(load_settings(config_file=False, warehouse=str(tmp_path / "wh"))) as lh:
        table = lh.create_table("d.events", schema=EVENTS, format=fmt, partitioning=parse_partitioning("country"))
        table.append(events(0, 40))
        table.append(events(0, 40))  # everything twice
        with pytest.raises(InvalidInputError, match="unknown column"):
            dedup(lh, "d.events", keys=["nope"])
        with pytest.raises(InvalidInputError, match="id given more than once"):
            dedup(lh, "d.events", keys=["id", "country", "id"])
        done = dedup(lh, "d.events", keys=["country", "id"], dry_run=False)
        # a NULL key is nobody's duplicate: the ten rows without a country stay twice
        assert done.rows_removed == 30
        assert {p.partition["country"] for p in done.plan.partitions} == {"DE", "FR", "US"}
        once = sorted_rows(events(0, 40))
        expected = sorted(once + [r for r in once if r["country"] is None], key=lambda r: r["id"])
        assert sorted_rows(lh.table("d.events").scan()) == expected


def test_a_file_whose_rows_all_lose_is_dropped(tmp_path: Any, fmt: str) -> None:
    from lakehouse.config import load_settings

    with Lakehouse(load_settings(config_file=False, warehouse=str(tmp_path / "wh"))) as lh:
        table = lh.create_table("d.events", schema=EVENTS, format=fmt, partitioning=parse_partitioning("day(ts)"))
        table.append(events(0, 60))
        first_files = {f.path for f in table.files()}
        table.append(events(60, 60))
        table.append(replayed(list(range(60)), bump=1))  # the whole first batch again, later: it all loses
        done = dedup(lh, "d.events", keys=["id"], order="ts", dry_run=False)
        assert done.rows_removed == 60 and done.files_added == 0, "nothing of the first batch is written again"
        after = lh.table("d.events")
        assert after.row_count() == 120 and not (first_files & {f.path for f in after.files()})
        assert {r["id"]: r["amount"] for r in after.scan(filter="id < 60").to_pylist()} == {
            r["id"]: r["amount"] + 1 for r in events(0, 60).to_pylist()
        }


@pytest.mark.parametrize("when", ["before-commit", "in-commit"])
def test_a_failed_dedup_leaves_no_written_file(
    tmp_path: Any, fmt: str, when: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failure that is not a commit conflict, raised by the adapter's validation or by its commit call that
    did not land, deletes the rewritten files (the table's history tells whether the commit landed)."""
    from lakehouse.config import load_settings
    from lakehouse.storage import list_files
    from tests.integration.test_governance import _fail_in_commit

    with Lakehouse(load_settings(config_file=False, warehouse=str(tmp_path / "wh"))) as lh:
        table = lh.create_table("d.events", schema=EVENTS, format=fmt, partitioning=parse_partitioning("day(ts)"))
        table.append(events(0, 60))
        table.append(replayed(list(range(10)), bump=1))
        before = sorted(f.path for f in list_files(table.location, lh.ctx) if f.path.endswith(".parquet"))
        if when == "in-commit":
            _fail_in_commit(monkeypatch, fmt)
        else:

            def failing(self: Any, **kw: Any) -> Any:
                raise StorageError(f"a rewritten file of {self.name} landed in another partition; nothing committed")

            monkeypatch.setattr(type(table), "replace_files", failing)
        with pytest.raises(StorageError):
            dedup(lh, "d.events", keys=["id"], order="ts", dry_run=False)
        monkeypatch.undo()
        after = sorted(f.path for f in list_files(table.location, lh.ctx) if f.path.endswith(".parquet"))
        assert after == before, "the rewritten files are deleted"
        job = lh.jobs("d.events")[0]
        assert job.kind == "dedup" and job.state == "failed" and job.metrics["status"] == "failed"
        assert lh.table("d.events").row_count() == 70
        assert dedup(lh, "d.events", keys=["id"], order="ts", dry_run=False).rows_removed == 10, "a rerun works"


def test_float_keys_group_as_sql_does(tmp_path: Any, fmt: str) -> None:
    """NaN keys are one key, -0.0 and 0.0 one key, infinities one key, NULL nobody's duplicate, as SQL groups
    them (the keys held more than once are found by a GROUP BY and their rows joined back to be ranked: a join
    that did not match NaN or -0.0 to its group would keep both copies). The latest row by ``ts`` of each key
    wins, wherever its copies sit."""
    from lakehouse.config import load_settings

    schema = pa.schema([("id", pa.int64()), ("k", pa.float64()), ("ts", pa.int64())])
    first = [(1, float("nan"), 1), (2, -0.0, 1), (3, None, 1), (4, 1.5, 1), (5, float("inf"), 1), (6, 7.0, 1)]
    later = [(11, float("nan"), 2), (12, 0.0, 2), (13, None, 2), (15, float("inf"), 2), (16, 8.0, 2)]
    with Lakehouse(load_settings(config_file=False, warehouse=str(tmp_path / "wh"))) as lh:
        table = lh.create_table("d.floats", schema=schema, format=fmt)
        for rows in (first, later):
            table.append(pa.Table.from_pylist([dict(zip(schema.names, r, strict=True)) for r in rows], schema=schema))
        done = dedup(lh, "d.floats", keys=["k"], order="ts", dry_run=False)
        assert done.rows_removed == 3
        assert sorted(lh.table("d.floats").scan().column("id").to_pylist()) == [3, 4, 6, 11, 12, 13, 15, 16]
