"""Clustering keys and the layout of clustered output, chosen so that min/max statistics can skip data.

**Keys from quantiles.** Each clustering column is replaced by its quantile bucket in the partition: boundaries
from a reservoir sample of :data:`SAMPLE_ROWS` rows, NULLs in a bucket of their own before every value, as many
buckets as the key has cells per side. A skewed column therefore spreads over the whole curve instead of
collapsing into a few cells, and strings, dates and times rank like numbers. (Delta's Z-order does the same
with sampled range-partition ids.)

**Curves.** The bucket coordinates are mapped to one sort key by a Morton curve (the classic Z-order: bits
interleaved), or a Hilbert curve (:func:`hilbert_index`), whose consecutive cells are always neighbours: fewer jumps, so
tighter min/max per row group for the same number of groups.

**Layout.** Statistics skip whole row groups. With ``k`` clustering columns on an ideal curve, a range that
selects a fraction *s* of one column touches about ``max(s, G^(-1/k))`` of the ``G`` row groups of a partition,
so skipping 90 % of a 1 % range needs ``G`` of about 10 for one column, 100 for two, 1,000 for three.
(Measured, row groups are less regular than curve cells: two columns want about 250.)
:func:`row_group_rows` picks the group size from the partition's rows and ``k`` (never below
:data:`MIN_ROW_GROUP_ROWS`, whose per-group overhead is measured by the clustering benchmark).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Generator, Sequence
from typing import TYPE_CHECKING, Literal

import numpy as np
import pyarrow as pa

from lakehouse.errors import InvalidInputError

if TYPE_CHECKING:
    import duckdb

Curve = Literal["hilbert", "morton"]
CURVES: tuple[str, ...] = ("hilbert", "morton")
MAX_COLUMNS = 4
MIN_ROW_GROUP_ROWS = 4_096
"""The smallest row group clustered output gets (two DuckDB vectors). Measured on a 1 M-row partition clustered
by two columns (benchmarks/clustering_bench.py): 4,096-row groups took the file from 20.6 MB (131,072-row
groups of the same sorted rows) to 20.9 MB and a full scan from 32.5 to 31.2 ms, and skipped 91 % of a 1 % range
where 8,192-row groups skipped 86 %; the sort itself costs more (compaction alone: 16.9 MB)."""
GROUPS_FOR = {1: 16, 2: 256, 3: 1024, 4: 1024}
"""Row groups per partition wanted for ``k`` clustering columns (about 10 ** k for 90 % skipping of a 1 %
range, with a margin, rounded to a power of two; capped where the groups would get too small to matter)."""
GROUPS_PER_FILE = 64
"""Row groups per clustered file at most: a partition's output is cut into consecutive stretches of the curve, so
a reader that plans by file statistics (the Delta log's, Iceberg's manifests, lakehouse's own planned reads)
leaves out whole files before opening a footer, and the engine weighs the row groups of the few files left only.
Measured on a 1 M-row partition of 245 row groups clustered by two columns (benchmarks/clustering_bench.py)."""


def check_curve(curve: str) -> Curve:
    if curve not in CURVES:
        raise InvalidInputError(f"unknown clustering curve {curve!r}", hint=f"use one of: {', '.join(CURVES)}")
    return curve  # type: ignore[return-value]


def bits_for(columns: int, rows: int = 0) -> int:
    """Bits per column of the key: enough for about one row per cell of the curve (and one bit more), within
    64 bits shared, at most 21 each; fewer bits make the curve cheaper to compute.

    >>> bits_for(2, 1_000_000), bits_for(1, 1_000_000), bits_for(2), bits_for(4, 10)
    (11, 21, 21, 4)
    """
    most = min(21, 64 // max(1, columns))
    if rows <= 0:
        return most
    return max(4, min(most, math.ceil(math.log2(rows + 1) / columns) + 1))


def row_group_rows(rows: int, columns: int, *, ceiling: int) -> int:
    """Rows per row group of a clustered partition of ``rows`` rows over ``columns`` columns: enough groups for
    90 % skipping of a 1 % range (:data:`GROUPS_FOR`), each at least :data:`MIN_ROW_GROUP_ROWS` and at most
    ``ceiling``.

    >>> row_group_rows(1_000_000, 2, ceiling=131_072)
    4096
    >>> row_group_rows(1_000_000, 1, ceiling=131_072)
    62500
    >>> row_group_rows(50_000, 2, ceiling=131_072), row_group_rows(50_000, 2, ceiling=2_048)
    (4096, 2048)
    """
    wanted = GROUPS_FOR.get(columns, GROUPS_FOR[MAX_COLUMNS])
    size = math.ceil(rows / wanted) if rows else ceiling
    return max(min(MIN_ROW_GROUP_ROWS, ceiling), min(ceiling, size))


def _q(ident: str) -> str:
    return '"' + ident.replace('"', '""') + '"'


SAMPLE_ROWS = 100_000
"""Rows sampled (reservoir) to find each column's quantile boundaries."""


def numeric(column: str, t: pa.DataType) -> str:
    """A SQL expression that orders like ``column`` as a DOUBLE (exact where it matters for ranking): numbers
    and decimals as themselves, times as microseconds, dates as days, booleans as 0/1, strings and binary by
    their first six bytes (big-endian: exact in a double's 53 bits)."""
    c = _q(column)
    if pa.types.is_timestamp(t):
        return f"CAST(epoch_us({c}) AS DOUBLE)"
    if pa.types.is_date(t):
        return f"CAST(date_diff('day', DATE '1970-01-01', {c}) AS DOUBLE)"
    if pa.types.is_time(t):
        return f"CAST(epoch_us(TIMESTAMP '1970-01-01' + {c}) AS DOUBLE)"
    if pa.types.is_boolean(t):
        return f"CAST(CAST({c} AS INTEGER) AS DOUBLE)"
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t):
        return f"CAST({c} AS DOUBLE)"
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_binary(t) or pa.types.is_large_binary(t):
        # the first six bytes (UTF-8 for text) as a big-endian number; shorter values pad with zero bytes
        return f"CAST(CAST('0x' || rpad(left(hex({c}), 12), 12, '0') AS UBIGINT) AS DOUBLE)"
    raise InvalidInputError(f"cannot cluster by column {column} of type {t}: it has no order to rank")


def boundaries(con: duckdb.DuckDBPyConnection, rows_sql: str, exprs: Sequence[str], count: int) -> list[np.ndarray]:
    """Per expression, ``count - 1`` quantile boundaries of its non-NULL values in a reservoir sample."""
    if count < 2:
        return [np.array([], dtype=np.float64) for _ in exprs]
    cols = ", ".join(f"{e} AS __lh_x{i}" for i, e in enumerate(exprs))
    sample = con.execute(f"SELECT {cols} FROM ({rows_sql}) USING SAMPLE reservoir({SAMPLE_ROWS} ROWS)").to_arrow_table()
    fractions = np.arange(1, count) / count
    out = []
    for column in sample.columns:
        values = column.to_numpy().astype(np.float64)  # NULL -> NaN
        values = values[~np.isnan(values)]
        out.append(np.quantile(values, fractions, method="inverted_cdf") if len(values) else values)
    return out


KEY_BATCH_ROWS = 1 << 16
"""Rows whose curve indexes are computed in one call (a DuckDB scalar function is called per 2,048-row vector:
its per-call costs took most of a Z-order's time)."""


def _coordinates(values: pa.Array | pa.ChunkedArray, bounds: np.ndarray, cells: float) -> np.ndarray:
    """A column's quantile buckets as curve coordinates (NULL first, in bucket 0)."""
    v = values.to_numpy(zero_copy_only=False).astype(np.float64, copy=False)  # NULL -> NaN
    bucket = np.searchsorted(bounds, v, side="right").astype(np.float64) + 1.0
    bucket[np.isnan(v)] = 0.0
    return np.minimum(bucket * cells / (len(bounds) + 2), cells - 1).astype(np.uint64)


def fill_curve_keys(
    con: duckdb.DuckDBPyConnection,
    rows_sql: str,
    exprs: Sequence[str],
    curve: Curve,
    bounds: Sequence[np.ndarray],
    bits: int,
    keys_table: str,
    key_column: str,
) -> None:
    """Create the temporary table ``keys_table`` holding, row for row in the order ``rows_sql`` yields them (the
    connection must keep insertion order), the curve index (``key_column``, UBIGINT) of the rows' quantile
    buckets of ``exprs`` (their :func:`numeric` values); computed by numpy over batches of
    :data:`KEY_BATCH_ROWS` rows, the rows' values read on a cursor of their own and the indexes kept by DuckDB
    (which spills them beyond its budget). ``rows_sql POSITIONAL JOIN keys_table`` gives each row its index."""
    cells = float(2**bits)
    con.execute(f"CREATE TEMP TABLE {keys_table} ({key_column} UBIGINT)")
    cursor = con.cursor()
    try:
        reader = cursor.execute(f"SELECT {', '.join(exprs)} FROM ({rows_sql})").to_arrow_reader(KEY_BATCH_ROWS)
        batch_view = f"{keys_table}_batch"
        with contextlib.closing(_read_ahead(reader)) as batches:  # its reading ends before the cursor closes
            for batch in batches:
                coords = [_coordinates(c, b, cells) for c, b in zip(batch.columns, bounds, strict=True)]
                index = hilbert_index(coords, bits) if curve == "hilbert" else morton_index(coords, bits)
                con.register(batch_view, pa.table({key_column: pa.array(index, pa.uint64())}))
                try:
                    con.execute(f"INSERT INTO {keys_table} SELECT {key_column} FROM {batch_view}")
                finally:
                    con.unregister(batch_view)
    finally:
        cursor.close()


def _read_ahead(reader: pa.RecordBatchReader) -> Generator[pa.RecordBatch, None, None]:
    """The batches of ``reader`` in order, each next one read by a thread of its own while the caller works on the
    one it has (DuckDB reading the rows' values beside numpy computing and DuckDB storing the indexes: both release
    the GIL). At most one batch is read ahead; leaving early waits for that one, then stops."""
    from concurrent.futures import ThreadPoolExecutor

    def next_batch() -> pa.RecordBatch | None:
        try:
            return reader.read_next_batch()
        except StopIteration:
            return None

    with ThreadPoolExecutor(1, thread_name_prefix="lakehouse-curve-read") as pool:
        pending = pool.submit(next_batch)
        while (batch := pending.result()) is not None:
            pending = pool.submit(next_batch)
            yield batch


_SPREAD2 = (
    (16, 0x0000FFFF0000FFFF),
    (8, 0x00FF00FF00FF00FF),
    (4, 0x0F0F0F0F0F0F0F0F),
    (2, 0x3333333333333333),
    (1, 0x5555555555555555),
)


def _interleave(coords: Sequence[np.ndarray], bits: int) -> np.ndarray:
    """Bit ``i`` of coordinate ``j`` goes to bit ``i * n + (n - 1 - j)`` (two coordinates: by spreading each
    one's bits apart with masks, five steps instead of a step per bit)."""
    n = len(coords)
    if n == 1:
        return np.array(coords[0], dtype=np.uint64, copy=True)
    if n == 2:
        spread = []
        for c in coords:
            v = np.bitwise_and(c, np.uint64(0xFFFFFFFF))
            for shift, mask in _SPREAD2:
                v = (v | (v << np.uint64(shift))) & np.uint64(mask)
            spread.append(v)
        return (spread[0] << np.uint64(1)) | spread[1]
    out = np.zeros(len(coords[0]), dtype=np.uint64)
    one = np.uint64(1)
    for i in range(bits):
        for j, c in enumerate(coords):
            out |= ((c >> np.uint64(i)) & one) << np.uint64(i * n + (n - 1 - j))
    return out


def morton_index(coords: Sequence[np.ndarray], bits: int) -> np.ndarray:
    """Bit ``i`` of coordinate ``j`` goes to bit ``i * n + (n - 1 - j)``: the first column leads.

    >>> morton_index([np.array([0b11], np.uint64), np.array([0b00], np.uint64)], 2).tolist()
    [10]
    """
    return _interleave(coords, bits)


def hilbert_index(coords: Sequence[np.ndarray], bits: int) -> np.ndarray:
    """The index along an ``n``-dimensional Hilbert curve of ``2**bits`` cells per side (J. Skilling,
    "Programming the Hilbert curve", AIP Conf. Proc. 707, 2004: axes to transpose, then the transpose's bits
    interleaved), vectorised over arrays of coordinates: branch-free masks and in-place operations (the curve is
    computed per batch of rows, where allocating a temporary per step cost as much as the arithmetic).

    Consecutive indices are neighbouring cells:

    >>> xs, ys = np.meshgrid(np.arange(4, dtype=np.uint64), np.arange(4, dtype=np.uint64))
    >>> h = hilbert_index([xs.ravel(), ys.ravel()], 2)
    >>> cells = sorted(zip(h.tolist(), xs.ravel().tolist(), ys.ravel().tolist()))
    >>> all(abs(a[1] - b[1]) + abs(a[2] - b[2]) == 1 for a, b in zip(cells, cells[1:]))
    True
    """
    n = len(coords)
    x = [np.array(c, dtype=np.uint64, copy=True) for c in coords]
    one, zero = np.uint64(1), np.uint64(0)
    size = len(x[0])
    hit = np.empty(size, np.uint64)  # all ones where the level's bit of x[i] is set, else 0
    t = np.empty(size, np.uint64)
    for level in range(bits - 1, 0, -1):  # inverse undo, from the top bit down to bit 1
        low = np.uint64((1 << level) - 1)
        for i in range(n):
            np.right_shift(x[i], np.uint64(level), out=hit)
            np.bitwise_and(hit, one, out=hit)
            np.subtract(zero, hit, out=hit)
            # bit set: invert x[0]'s low bits; else exchange the low bits of x[0] and x[i]
            np.bitwise_and(hit, low, out=t)
            np.bitwise_xor(x[0], t, out=x[0])
            if i == 0:
                continue
            np.bitwise_xor(x[0], x[i], out=t)
            np.bitwise_and(t, low, out=t)
            np.bitwise_and(t, np.bitwise_not(hit, out=hit), out=t)
            np.bitwise_xor(x[0], t, out=x[0])
            np.bitwise_xor(x[i], t, out=x[i])
    for i in range(1, n):  # Gray encode
        np.bitwise_xor(x[i], x[i - 1], out=x[i])
    t.fill(0)
    for level in range(bits - 1, 0, -1):
        np.right_shift(x[n - 1], np.uint64(level), out=hit)
        np.bitwise_and(hit, one, out=hit)
        np.subtract(zero, hit, out=hit)
        np.bitwise_and(hit, np.uint64((1 << level) - 1), out=hit)
        np.bitwise_xor(t, hit, out=t)
    for i in range(n):
        np.bitwise_xor(x[i], t, out=x[i])
    return _interleave(x, bits)


def curve_keys(
    con: duckdb.DuckDBPyConnection,
    rows_sql: str,
    columns: Sequence[str],
    schema: pa.Schema,
    curve: Curve,
    *,
    keys_table: str,
    key_column: str,
    rows: int = 0,
) -> int:
    """Fill ``keys_table`` with the index along ``curve`` over the quantile buckets of ``columns`` (sampled from
    ``rows_sql``) of each row of ``rows_sql`` (:func:`fill_curve_keys`); returns how many bits the index has."""
    bits = bits_for(len(columns), rows)
    exprs = [numeric(c, schema.field(c).type) for c in columns]
    bounds = boundaries(con, rows_sql, exprs, min(2**bits, 4096))
    fill_curve_keys(con, rows_sql, exprs, curve, bounds, bits, keys_table, key_column)
    return bits * len(columns)


def cell_shift(key_bits: int, columns: int, files: int) -> int:
    """How far to shift a curve index right to leave the number of its cell at the level of the curve whose
    number of cells is nearest ``files`` (on a log scale; at least the first level), Morton and Hilbert alike:
    a level's cells are the index's top ``columns`` bits per level, each cell one box of the clustering
    columns' quantile buckets and one stretch of the curve.

    >>> cell_shift(22, 2, 4), cell_shift(22, 2, 5), cell_shift(22, 2, 8), cell_shift(22, 2, 1), cell_shift(21, 1, 4)
    (20, 20, 18, 20, 19)
    """
    level = max(1, round(math.log2(max(files, 1)) / columns))
    return max(0, key_bits - columns * level)
