"""Masking reads, masks and writes a file piece by piece (the job holds one piece, not the file): the pieces are
the file's row groups, split where one is larger than the bound, and cover the file exactly in both formats'
column matching; a file of several pieces is masked with every other value kept, the masked values verified
across the pieces, and the file written keeps the source's row groups."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lakehouse.config import load_settings
from lakehouse.core import Lakehouse
from lakehouse.governance.masking import mask_array, parse_mask
from lakehouse.governance.ops import mask_table
from tests.conformance.fingerprint import assert_same_rows

SCHEMA = pa.schema([("id", pa.int64()), ("email", pa.string()), ("amount", pa.float64())])


def _rows(n: int) -> pa.Table:
    return pa.table(
        {
            "id": list(range(n)),
            "email": [None if i % 7 == 0 else f"user{i}@corp.example" for i in range(n)],
            "amount": [(-0.0 if i % 11 == 0 else i / 8) for i in range(n)],
        },
        schema=SCHEMA,
    )


@pytest.fixture
def lh(tmp_path: Path) -> Lakehouse:
    with Lakehouse(
        load_settings(config_file=False, warehouse=str(tmp_path / "wh"), catalog_url="sqlite://")
    ) as lakehouse:
        yield lakehouse


@pytest.mark.parametrize("fmt", ["delta", "iceberg"])
def test_pieces_cover_the_file_exactly(lh: Lakehouse, fmt: str) -> None:
    table = lh.create_table("m.t", schema=SCHEMA, format=fmt)
    data = _rows(10)
    table.append(data)
    (f,) = table.files()
    pieces = list(table.read_data_file(f.path, rows=3))
    assert [p.num_rows for p in pieces] == [3, 3, 3, 1]
    assert pa.concat_tables(pieces).select(SCHEMA.names).cast(SCHEMA).equals(data)
    whole = list(table.read_data_file(f.path))
    assert len(whole) == 1 and whole[0].num_rows == 10


@pytest.mark.parametrize("fmt", ["delta", "iceberg"])
def test_pieces_are_row_groups_split_at_the_bound(lh: Lakehouse, fmt: str, tmp_path: Path) -> None:
    table = lh.create_table("m.t", schema=SCHEMA, format=fmt)
    path = str(tmp_path / "groups.parquet")
    pq.write_table(_rows(10), path, row_group_size=4)  # row groups of 4, 4 and 2 rows
    assert [p.num_rows for p in table.read_data_file(path, rows=3)] == [3, 1, 3, 1, 2]
    assert [p.num_rows for p in table.read_data_file(path, rows=4)] == [4, 4, 2]
    pieces = list(table.read_data_file(path, rows=3))
    assert pa.concat_tables(pieces).select(SCHEMA.names).cast(SCHEMA).equals(_rows(10))


def _groups(path: str) -> list[int]:
    meta = pq.ParquetFile(path.removeprefix("file://")).metadata
    return [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]


@pytest.mark.parametrize("fmt", ["delta", "iceberg"])
def test_a_file_of_several_pieces_is_masked_exactly(lh: Lakehouse, fmt: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from lakehouse.governance import ops

    table = lh.create_table("m.t", schema=SCHEMA, format=fmt)
    data = _rows(150_000)
    table.append(data)
    (before,) = table.files()
    assert _groups(before.path) == [150_000]
    monkeypatch.setattr(ops, "MASK_PIECE_ROWS", 65_536)  # the one row group in three pieces
    done = mask_table(lh, "m.t", policies={"email": "redact"}, dry_run=False)
    assert done["files_rewritten"] == 1 and done["rows"] == 150_000
    expected = data.set_column(1, SCHEMA.field("email"), mask_array(data["email"], parse_mask("redact")))
    assert_same_rows(lh.table("m.t").scan(), expected, "after masking in pieces")
    (after,) = lh.table("m.t").files()
    assert _groups(after.path) == [65_536, 65_536, 18_928]
    monkeypatch.undo()
    # masked again (row groups under the bound): the file written keeps the source's row groups
    mask_table(lh, "m.t", policies={"amount": "null"}, dry_run=False)
    (again,) = lh.table("m.t").files()
    assert _groups(again.path) == [65_536, 65_536, 18_928]
    expected = expected.set_column(2, SCHEMA.field("amount"), pa.nulls(150_000, pa.float64()))
    assert_same_rows(lh.table("m.t").scan(), expected, "after masking again")
