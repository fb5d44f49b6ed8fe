"""Reading an old version by a column it predates: every row of that version, the column NULL (the SQL worker
binds tables this way, so ``count(*)`` over such a column once answered 0)."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from lakehouse.config import load_settings
from lakehouse.core import Lakehouse


@pytest.mark.parametrize("fmt", ["delta", "iceberg"])
def test_an_old_version_read_by_a_later_column_keeps_its_rows(fmt: str, tmp_path: Path) -> None:
    with Lakehouse(load_settings(config_file=False, warehouse=str(tmp_path / "wh"), catalog_url="sqlite://")) as lh:
        table = lh.create_table("t.x", schema=pa.schema([("id", pa.int64())]), format=fmt)
        table.append(pa.table({"id": list(range(7))}))
        old = table.snapshot().version
        table.add_columns([pa.field("extra", pa.string())])
        table = lh.table("t.x")
        read = table.batches(table.snapshot(old), columns=["extra"]).read_all()
        assert read.num_rows == 7 and read.column("extra").null_count == 7
