"""Content verification of rewrites: the rows a rewrite wrote must be the rows it read, value for value.

A row count cannot see a value that changed on the way (a legacy INT96 timestamp that overflowed, a cast that
rounded, a column read under the wrong name). Every rewrite (compaction, Z-order, dedup, masking, tiering moves,
data expiry) therefore compares an order-independent **fingerprint** of what it read with one of what it wrote,
before it commits:

* each value is taken in the column's declared type (so a file's physical encoding, INT96 or INT64, dictionary
  or plain, does not matter, but its value does), a float also by its sign bit (``-0.0`` is not ``0.0``), a
  nested value holding floats also by its text (which keeps ``-0.0`` and ``0.0`` apart at any depth);
* each row is hashed over all its values (DuckDB's ``hash``; NULL hashes apart from any value);
* the fingerprint is the row count and the exact sum of the row hashes: equal for the same multiset of rows in
  any order, different when a value, a row or a duplicate changes (up to a hash collision).

Both sides are computed by DuckDB reading Parquet, the read side in the same pass structure as the rewrite and
the write side from the files just written; on a mismatch the per-column sums name the columns that differ.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from lakehouse.errors import ContentMismatchError

if TYPE_CHECKING:
    import duckdb


@dataclass(frozen=True)
class Fingerprint:
    rows: int
    digest: int

    def as_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "digest": f"{self.digest:032x}"}


def _q(ident: str) -> str:
    return '"' + ident.replace('"', '""') + '"'


def canonical(column: str, t: pa.DataType) -> list[str]:
    """The SQL expressions a column contributes to a row's hash: its value in the declared type, and for floats
    the sign bit too (DuckDB hashes ``-0.0`` like ``0.0``)."""
    from lakehouse.sql import duck_type

    value = f"CAST({_q(column)} AS {duck_type(t)})"
    if pa.types.is_floating(t):
        return [value, f"signbit({value})"]
    if pa.types.is_nested(t) and _has_float(t):  # DuckDB's text of a nested value keeps -0.0 and NaN apart
        return [value, f"CAST({value} AS VARCHAR)"]
    return [value]


def _has_float(t: pa.DataType) -> bool:
    if pa.types.is_floating(t):
        return True
    if pa.types.is_struct(t):
        return any(_has_float(t.field(i).type) for i in range(t.num_fields))
    if pa.types.is_map(t):
        return _has_float(t.key_type) or _has_float(t.item_type)
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        return _has_float(t.value_type)
    return False


def fingerprint(con: duckdb.DuckDBPyConnection, source: str, schema: pa.Schema, columns: Sequence[str]) -> Fingerprint:
    """The fingerprint of ``columns`` (typed as in ``schema``) of the rows of the SQL relation ``source``."""
    parts = [e for c in columns for e in canonical(c, schema.field(c).type)]
    row = con.execute(f"SELECT count(*), coalesce(sum(hash({', '.join(parts)})), 0) FROM {source}").fetchone()
    assert row is not None
    return Fingerprint(int(row[0]), int(row[1]))


def column_sums(
    con: duckdb.DuckDBPyConnection, source: str, schema: pa.Schema, columns: Sequence[str]
) -> dict[str, int]:
    """Per column, the exact sum of its value hashes (to tell which columns differ)."""
    exprs = [f"coalesce(sum(hash({', '.join(canonical(c, schema.field(c).type))})), 0)" for c in columns]
    row = con.execute(f"SELECT {', '.join(exprs)} FROM {source}").fetchone()
    assert row is not None
    return {c: int(v) for c, v in zip(columns, row, strict=True)}


def verify(
    con: duckdb.DuckDBPyConnection,
    *,
    read: str,
    written: str,
    schema: pa.Schema,
    columns: Sequence[str],
    what: str,
) -> Fingerprint:
    """Compare the fingerprints of the relations ``read`` (what the rewrite read, after what it was asked to
    remove) and ``written`` (the files it wrote); raise :class:`ContentMismatchError` naming the columns that
    differ. Returns the (equal) fingerprint."""
    before = fingerprint(con, read, schema, columns)
    after = fingerprint(con, written, schema, columns)
    if before == after:
        return before
    if before.rows != after.rows:
        detail = f"{before.rows} rows read, {after.rows} written"
    else:
        a = column_sums(con, read, schema, columns)
        b = column_sums(con, written, schema, columns)
        differ = [c for c in columns if a[c] != b[c]]
        detail = f"values of column(s) {', '.join(differ)} differ" if differ else "rows were recombined across columns"
    raise ContentMismatchError(
        f"{what}: the files written do not hold the rows read ({detail}); nothing was committed",
        hint="this is a defect: please report it with the table's writer and schema",
    )
