"""How a rewrite reads nested fields a writer renamed (pyiceberg's ``y_x20z`` for ``y z``): by field id, never by
a guess that would turn a renamed field into NULLs."""

from __future__ import annotations

import pyarrow as pa
import pytest

from lakehouse.errors import UnsupportedOperationError
from lakehouse.maintenance.compaction import _ids_option, _match


def fid(i: int) -> dict[bytes, bytes]:
    return {b"PARQUET:field_id": str(i).encode()}


STORED = pa.struct([pa.field("y_x20z", pa.string(), metadata=fid(5)), pa.field("x", pa.int64(), metadata=fid(6))])


def test_renamed_and_added_nested_fields_are_matched_by_id() -> None:
    declared = pa.struct(
        [
            pa.field("y z", pa.string(), metadata=fid(5)),
            pa.field("x", pa.int64(), metadata=fid(6)),
            pa.field("added", pa.list_(pa.int32()), metadata=fid(7)),
        ]
    )
    typed, rename = _match(declared, STORED, "t.s")
    assert rename('"s"') == (
        'CASE WHEN ("s") IS NULL THEN NULL ELSE struct_pack("y z" := ("s")."y_x20z", "x" := ("s")."x", '
        '"added" := CAST(NULL AS INTEGER[])) END'
    )
    assert _ids_option(pa.field("s", typed, metadata=fid(4))) == '{__duckdb_field_id: 4, "y z": 5, "x": 6, "added": 7}'


def test_a_field_without_its_id_that_the_files_name_otherwise_is_refused() -> None:
    declared = pa.struct([("y z", pa.string()), ("x", pa.int64())])
    with pytest.raises(UnsupportedOperationError, match="'y z' is not in the files under that name"):
        _match(declared, STORED, "t.s")


def test_same_names_need_no_rewriting() -> None:
    declared = pa.struct([pa.field("x", pa.int64(), metadata=fid(6))])
    stored = pa.struct([pa.field("x", pa.int64(), metadata=fid(6))])
    _, rename = _match(pa.list_(declared), pa.list_(stored), "t.l")
    assert rename('"l"') == '"l"'
