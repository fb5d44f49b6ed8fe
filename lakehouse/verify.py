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

A rewrite that removes rows (a row delete) checks the sum instead: the fingerprint of a file it read equals that
of the file it wrote plus that of the rows it removed (all three read by DuckDB from the files; the fingerprint
is a sum, so the rows kept and the rows removed add up to the rows read).

This module sits below the table adapters (it needs only :mod:`lakehouse.errors` and :mod:`lakehouse.sql`), so
that the adapters' own rewrites (row deletes) verify as the maintenance jobs do; :mod:`lakehouse.maintenance.verify`
re-exports it.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from lakehouse.errors import ContentMismatchError, StorageError
from lakehouse.schema import contains_type

if TYPE_CHECKING:
    import duckdb

    from lakehouse.storage import StorageContext


@dataclass(frozen=True)
class Fingerprint:
    rows: int
    digest: int

    def as_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "digest": f"{self.digest:032x}"}

    def __add__(self, other: Fingerprint) -> Fingerprint:
        """The fingerprint of both multisets of rows together."""
        return Fingerprint(self.rows + other.rows, self.digest + other.digest)


def _q(ident: str) -> str:
    return '"' + ident.replace('"', '""') + '"'


def canonical(column: str, t: pa.DataType) -> list[str]:
    """The SQL expressions a column contributes to a row's hash: its value in the declared type, and for floats
    the sign bit too (DuckDB hashes ``-0.0`` like ``0.0``)."""
    from lakehouse.duck import duck_type

    value = f"CAST({_q(column)} AS {duck_type(t)})"
    if pa.types.is_floating(t):
        return [value, f"signbit({value})"]
    # DuckDB's text of a nested value keeps -0.0 and NaN apart
    if pa.types.is_nested(t) and contains_type(t, pa.types.is_floating):
        return [value, f"CAST({value} AS VARCHAR)"]
    return [value]


def _row_sum(schema: pa.Schema, columns: Sequence[str]) -> str:
    """The SQL aggregate of a fingerprint's digest: the exact sum of the rows' hashes over ``columns``."""
    return f"coalesce(sum(hash({', '.join(e for c in columns for e in canonical(c, schema.field(c).type))})), 0)"


def _column_sums(schema: pa.Schema, columns: Sequence[str]) -> list[str]:
    """Per column, the SQL aggregate of :func:`column_sums`."""
    return [f"coalesce(sum(hash({', '.join(canonical(c, schema.field(c).type))})), 0)" for c in columns]


def fingerprint(con: duckdb.DuckDBPyConnection, source: str, schema: pa.Schema, columns: Sequence[str]) -> Fingerprint:
    """The fingerprint of ``columns`` (typed as in ``schema``) of the rows of the SQL relation ``source``."""
    row = con.execute(f"SELECT count(*), {_row_sum(schema, columns)} FROM {source}").fetchone()
    assert row is not None
    return Fingerprint(int(row[0]), int(row[1]))


def column_sums(
    con: duckdb.DuckDBPyConnection, source: str, schema: pa.Schema, columns: Sequence[str]
) -> dict[str, int]:
    """Per column, the exact sum of its value hashes (to tell which columns differ)."""
    row = con.execute(f"SELECT {', '.join(_column_sums(schema, columns))} FROM {source}").fetchone()
    assert row is not None
    return {c: int(v) for c, v in zip(columns, row, strict=True)}


def fingerprint_by_column(
    con: duckdb.DuckDBPyConnection, source: str, schema: pa.Schema, columns: Sequence[str]
) -> tuple[Fingerprint, dict[str, int]]:
    """The fingerprint of ``columns`` of ``source`` and the per-column sums of :func:`column_sums`, in one read:
    for rows seen piece by piece (each a sum, so the pieces' add up to the whole's)."""
    sums = ", ".join(_column_sums(schema, columns))
    row = con.execute(f"SELECT count(*), {_row_sum(schema, columns)}, {sums} FROM {source}").fetchone()
    assert row is not None
    return Fingerprint(int(row[0]), int(row[1])), {c: int(v) for c, v in zip(columns, row[2:], strict=True)}


def _differ(columns: Sequence[str]) -> str:
    """What a mismatch of equal row counts is, from the columns whose sums differ."""
    return f"values of column(s) {', '.join(columns)} differ" if columns else "rows were recombined across columns"


def verify(
    con: duckdb.DuckDBPyConnection,
    *,
    read: str,
    written: str,
    schema: pa.Schema,
    columns: Sequence[str],
    what: str,
    removed: str | None = None,
) -> Fingerprint:
    """Compare the fingerprints of the relations ``read`` (what the rewrite read, after what it was asked to
    remove) and ``written`` (the files it wrote); raise :class:`ContentMismatchError` naming the columns that
    differ. With ``removed`` (the rows of ``read`` the rewrite left out on purpose), ``read`` must equal
    ``written`` and ``removed`` together. Returns the fingerprint of ``read``."""
    before = fingerprint(con, read, schema, columns)
    after = fingerprint(con, written, schema, columns)
    gone = fingerprint(con, removed, schema, columns) if removed is not None else Fingerprint(0, 0)
    if before == after + gone:
        return before
    if before.rows != after.rows + gone.rows:
        detail = f"{before.rows} rows read, {after.rows} written" + (
            f" and {gone.rows} removed" if removed is not None else ""
        )
    else:
        a = column_sums(con, read, schema, columns)
        b = column_sums(con, written, schema, columns)
        r = column_sums(con, removed, schema, columns) if removed is not None else dict.fromkeys(columns, 0)
        detail = _differ([c for c in columns if a[c] != b[c] + r[c]])
    raise _mismatch(what, detail)


def _mismatch(what: str, detail: str) -> ContentMismatchError:
    return ContentMismatchError(
        f"{what}: the files written do not hold the rows read ({detail}); nothing was committed",
        hint="this is a defect: please report it with the table's writer and schema",
    )


def connect(ctx: StorageContext, *, location: str | None = None) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection for verifying the files of a table at ``location`` (a fingerprint is a streaming sum:
    little memory).

    DuckDB keeps the bytes of the files it reads in its buffer pool (its external file cache) up to its memory
    limit: worth a GET saved on an object store, where a verification reads a file written twice; on a local disk
    a second copy of the page cache, which made a masking job's peak RSS grow by the limit
    (``benchmarks/scale_bench.py --ops mask``: 0.7 -> 1.5 GB from 2 to 8 files). Off there."""
    from lakehouse.duck import connect_duckdb

    remote = location.startswith(("s3://", "s3a://")) if location is not None else ctx.reaches_s3
    return connect_duckdb(
        ctx,
        memory_limit="1GB",
        extensions=("httpfs",) if ctx.reaches_s3 else (),
        settings={"enable_external_file_cache": remote},
    )


def parquet_by_name(
    paths: Sequence[str],
    stored: Collection[str],
    schema: pa.Schema,
    columns: Sequence[str],
    *,
    row_numbers: bool = False,
) -> str:
    """A relation reading ``columns`` of Parquet files by name: those the files hold (``stored``) as they are,
    the others (added to the table after the files were written) as NULL of their declared type. With
    ``row_numbers`` the relation has ``file_row_number`` too (a row's 0-based position in its file)."""
    from lakehouse.duck import duck_type

    files = "[" + ", ".join(_s(_duck_path(p)) for p in paths) + "]"
    options = "hive_partitioning = false, union_by_name = true" + (", file_row_number = true" if row_numbers else "")
    cols = [
        f"{_q(c)}" if c in stored else f"CAST(NULL AS {duck_type(schema.field(c).type)}) AS {_q(c)}" for c in columns
    ]
    if row_numbers:
        cols.append("file_row_number")
    return f"(SELECT {', '.join(cols) or 'NULL AS lh_none'} FROM read_parquet({files}, {options}))"


def _s(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _duck_path(path: str) -> str:
    return path[len("file://") :] if path.startswith("file://") else path


class Verifier:
    """The DuckDB connection for the verifications of one job, opened on first use and closed with the job.

    Its checks raise :class:`ContentMismatchError` on a mismatch, and :class:`StorageError` when DuckDB cannot
    read a file (nothing is committed either way)."""

    def __init__(self, ctx: StorageContext, *, location: str | None = None) -> None:
        self._ctx = ctx
        self._location = location
        self._con: duckdb.DuckDBPyConnection | None = None

    @property
    def con(self) -> duckdb.DuckDBPyConnection:
        if self._con is None:
            self._con = connect(self._ctx, location=self._location)
        return self._con

    def check(
        self,
        *,
        read: str,
        written: str,
        schema: pa.Schema,
        columns: Sequence[str],
        what: str,
        removed: str | None = None,
    ) -> Fingerprint:
        """:func:`verify` on this connection."""
        con = self.con
        import duckdb

        try:
            return verify(con, read=read, written=written, schema=schema, columns=columns, what=what, removed=removed)
        except duckdb.Error as e:
            raise StorageError(f"{what}: cannot verify the files written: {' '.join(str(e).split())}") from e

    def check_against(
        self,
        expected: tuple[Fingerprint, dict[str, int]],
        *,
        written: str,
        schema: pa.Schema,
        columns: Sequence[str],
        what: str,
    ) -> None:
        """Like :meth:`check`, with the read side given as computed (:func:`fingerprint_by_column`, summed over
        the pieces a rewrite read): the files written must hold exactly those rows."""
        import duckdb

        before, sums = expected
        try:
            after = fingerprint(self.con, written, schema, columns)
            if before == after:
                return
            if before.rows != after.rows:
                detail = f"{before.rows} rows read, {after.rows} written"
            else:
                b = column_sums(self.con, written, schema, columns)
                detail = _differ([c for c in columns if sums[c] != b[c]])
        except duckdb.Error as e:
            raise StorageError(f"{what}: cannot verify the files written: {' '.join(str(e).split())}") from e
        raise _mismatch(what, detail)

    def removal(
        self,
        *,
        read: str,
        written: str,
        removed: pa.Array | pa.ChunkedArray,
        schema: pa.Schema,
        columns: Sequence[str],
        what: str,
    ) -> Fingerprint:
        """Verify a rewrite of one file that left out some of its rows: ``read`` (the file's rows, with their
        ``file_row_number``) must equal ``written`` plus the rows of ``read`` at the 0-based positions
        ``removed``."""
        import uuid

        if isinstance(removed, pa.ChunkedArray):
            removed = removed.combine_chunks()
        view = f"lh_removed_{uuid.uuid4().hex[:12]}"
        self.con.register(view, pa.table({"pos": removed.cast(pa.int64())}))
        try:
            gone = f"(SELECT * FROM {read} lh_r WHERE lh_r.file_row_number IN (SELECT pos FROM {view}))"
            return self.check(read=read, written=written, removed=gone, schema=schema, columns=columns, what=what)
        finally:
            self.con.unregister(view)

    def close(self) -> None:
        if self._con is not None:
            self._con.close()
            self._con = None

    def __enter__(self) -> Verifier:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
