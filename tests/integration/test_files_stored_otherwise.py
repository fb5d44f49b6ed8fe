"""Files of one table that store its columns differently (another column order, a column some files lack, another
codec), as a foreign writer leaves them: a rewrite reads them by name and keeps every value."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from lakehouse.config import load_settings
from lakehouse.core import Lakehouse
from lakehouse.maintenance.compaction import optimize
from lakehouse.maintenance.planner import CompactionOptions
from tests.conformance.delta_log import DeltaLogWriter

SCHEMA = pa.schema([("id", pa.int64()), ("name", pa.string()), ("amount", pa.float64())])


def _rows(start: int, n: int) -> pa.Table:
    ids = list(range(start, start + n))
    return pa.table(
        {"id": ids, "name": [f"n{i}" for i in ids], "amount": [i / 4 - 3 for i in ids]},
        schema=SCHEMA,
    )


@pytest.mark.parametrize("layout", ["alike", "reordered", "column_missing"])
def test_delta_files_storing_columns_otherwise_keep_every_value(layout: str, tmp_path: Path) -> None:
    root = str(tmp_path / "foreign")
    w = DeltaLogWriter(root)
    w.commit([w.protocol(1, 2), w.metadata(SCHEMA)], operation="CREATE TABLE")
    expected = []
    for i in range(4):
        part = _rows(i * 50, 50)
        expected.extend(part.to_pylist())
        stored = part
        if layout == "reordered" and i % 2:
            stored = part.select(["amount", "id", "name"])
        if layout == "column_missing" and i == 3:
            stored = part.select(["id", "name"])
            expected[-50:] = [dict(r, amount=None) for r in expected[-50:]]
        rel = w.write_parquet(stored, compression="snappy" if i % 2 else "zstd")
        w.commit([w.add(rel)])
    with Lakehouse(load_settings(config_file=False, warehouse=str(tmp_path / "wh"), catalog_url="sqlite://")) as lh:
        lh.register_table("f.t", location=root, format="delta")
        r = optimize(lh, "f.t", CompactionOptions(target_file_size=64 << 20))
        assert r.rows_in == r.rows_out == 200
        table = lh.table("f.t")
        assert len(table.files()) == 1
        got = table.scan().sort_by("id").to_pylist()
    assert got == sorted(expected, key=lambda r: r["id"])


def test_a_file_named_like_a_pattern_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    """``part-*.parquet`` would be expanded by DuckDB's read_parquet into every file its name matches (here a
    file of no commit): the rewrite is refused by name, the table left as it was."""
    from lakehouse.errors import UnsupportedOperationError

    root = str(tmp_path / "patterns")
    w = DeltaLogWriter(root)
    data = pa.table({"id": pa.array([1, 2], pa.int64())})
    w.commit([w.protocol(1, 2), w.metadata(data.schema)], operation="CREATE TABLE")
    w.write_parquet(pa.table({"id": pa.array([99], pa.int64())}), name="part-1")  # in no commit
    for name, rows in (("part-*", data), ("part-3", pa.table({"id": pa.array([3], pa.int64())}))):
        stats = {"numRecords": rows.num_rows, "nullCount": {"id": 0}}
        w.commit([w.add(w.write_parquet(rows, name=name), stats=stats)])
    before = sorted(p.name for p in Path(root).rglob("*") if p.is_file())
    settings = load_settings(
        config_file=False, warehouse=str(tmp_path / "wh"), catalog_url=f"sqlite:///{tmp_path}/c.db"
    )
    with Lakehouse(settings) as lh:
        lh.register_table("s.p", location=root, format="delta")
        with pytest.raises(UnsupportedOperationError, match=r"part-\*\.parquet .*file name pattern"):
            optimize(lh, "s.p", CompactionOptions(target_file_size=1 << 20))
        assert sorted(r["id"] for r in lh.query("SELECT id FROM s.p").table.to_pylist()) == [1, 2, 3]
    assert sorted(p.name for p in Path(root).rglob("*") if p.is_file()) == before
