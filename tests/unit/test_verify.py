"""The rewrite fingerprint: equal for the same multiset of rows in any order, different for any changed value."""

from __future__ import annotations

import datetime as dt
import math

import duckdb
import pyarrow as pa
import pytest

from lakehouse.errors import ContentMismatchError
from lakehouse.maintenance.verify import fingerprint, verify

SCHEMA = pa.schema(
    [
        ("id", pa.int64()),
        ("x", pa.float64()),
        ("s", pa.string()),
        ("ts", pa.timestamp("us", tz="UTC")),
        ("d", pa.decimal128(38, 10)),
        ("n", pa.struct([("a", pa.int32()), ("l", pa.list_(pa.string()))])),
    ]
)
ROWS = [
    {"id": 1, "x": 0.0, "s": "", "ts": dt.datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=dt.UTC),
     "d": "12345678901234567890.0123456789", "n": {"a": 1, "l": ["x", None]}},
    {"id": 2, "x": math.nan, "s": None, "ts": dt.datetime(1, 1, 1, tzinfo=dt.UTC), "d": None, "n": None},
    {"id": 3, "x": -1.5, "s": "ü x", "ts": None, "d": "-0.0000000001", "n": {"a": None, "l": []}},
]  # fmt: skip


def relation(con: duckdb.DuckDBPyConnection, name: str, rows: list[dict]) -> str:
    from decimal import Decimal

    fixed = [{**r, "d": Decimal(r["d"]) if r["d"] is not None else None} for r in rows]
    con.register(name, pa.Table.from_pylist(fixed, schema=SCHEMA))
    return name


def check(a: list[dict], b: list[dict]) -> None:
    con = duckdb.connect()
    verify(
        con, read=relation(con, "a", a), written=relation(con, "b", b), schema=SCHEMA, columns=SCHEMA.names, what="t"
    )


def test_same_rows_in_any_order_match() -> None:
    check(ROWS, list(reversed(ROWS)))
    con = duckdb.connect()
    assert fingerprint(con, relation(con, "a", ROWS), SCHEMA, SCHEMA.names).rows == 3


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("x", -0.0),  # the sign of zero is a value
        ("s", None),  # an empty string is not NULL
        ("ts", dt.datetime(1816, 3, 30, 5, 56, 8, 66276, tzinfo=dt.UTC)),  # the INT96 overflow seen in the wild
        ("d", "12345678901234567890.0123456788"),
        ("n", {"a": 1, "l": ["x"]}),
    ],
)
def test_one_changed_value_is_named(column: str, value: object) -> None:
    changed = [dict(r) for r in ROWS]
    changed[0][column] = value
    with pytest.raises(ContentMismatchError, match=f"column\\(s\\) {column} differ"):
        check(ROWS, changed)


def test_lost_doubled_and_recombined_rows_are_caught() -> None:
    with pytest.raises(ContentMismatchError, match="3 rows read, 2 written"):
        check(ROWS, ROWS[:2])
    with pytest.raises(ContentMismatchError, match="rows read"):
        check(ROWS, [*ROWS[:2], ROWS[0]])  # one row doubled, one lost: same count
    swapped = [dict(r) for r in ROWS]
    swapped[0]["id"], swapped[2]["id"] = swapped[2]["id"], swapped[0]["id"]  # every column's values the same
    with pytest.raises(ContentMismatchError, match="recombined"):
        check(ROWS, swapped)


def test_rows_removed_on_purpose_add_up_with_the_rows_written() -> None:
    """A row delete's check: what it read equals what it wrote plus what it removed (the fingerprint is a sum)."""
    con = duckdb.connect()
    args = {"schema": SCHEMA, "columns": SCHEMA.names, "what": "t"}
    read, kept, gone = relation(con, "r", ROWS), relation(con, "k", ROWS[1:]), relation(con, "g", ROWS[:1])
    assert verify(con, read=read, written=kept, removed=gone, **args).rows == 3
    with pytest.raises(ContentMismatchError, match="3 rows read, 2 written and 2 removed"):
        verify(con, read=read, written=kept, removed=relation(con, "g2", ROWS[:2]), **args)
    changed = [dict(r) for r in ROWS[1:]]
    changed[0]["s"] = "changed"
    with pytest.raises(ContentMismatchError, match=r"column\(s\) s differ"):
        verify(con, read=read, written=relation(con, "k2", changed), removed=gone, **args)
    swapped = [dict(ROWS[0], id=ROWS[1]["id"])], [dict(ROWS[1], id=ROWS[0]["id"]), ROWS[2]]  # removed the wrong row
    with pytest.raises(ContentMismatchError, match="recombined"):
        verify(con, read=read, written=relation(con, "k3", swapped[1]), removed=relation(con, "g3", swapped[0]), **args)
