"""Reading a table as the Parquet files lakehouse lists for its current version, instead of the format's scan.

DuckDB's ``delta_scan`` and ``iceberg_scan`` replay the table's log or manifests for every query: on a table
clustered for a selective predicate that fixed cost (7-15 ms) is most of the query. Lakehouse already keeps each
version's file list with its statistics (:meth:`lakehouse.tables.base.LakehouseTable.files`), so for the current
version the engine reads the files itself with ``read_parquet`` (and DuckDB's footer cache), after leaving out
the files whose statistics rule out the query's pushable WHERE clause (:mod:`lakehouse.sql.pushdown`).

Only where that reads exactly what the format's scan reads, by construction:

* the version's rows are its files' rows (:meth:`~lakehouse.tables.base.LakehouseTable.plain_files`: no
  deletion vectors, delete files or column mapping);
* every file's column that holds a table column has exactly the type DuckDB gives the declared column (checked
  per distinct file schema with DuckDB's own ``DESCRIBE``, so no cast is ever added) and no INT96 value is
  anywhere (its reading depends on a time zone); the column is found by name, or where the format resolves
  columns by field id (Iceberg) as the one column carrying its id (a renamed column too), in a file without ids
  as the one column of a name the table's name mapping gives it; on Iceberg no column may be missing from a
  file (it might be a partition value kept in metadata);
* a column the format keeps out of its files (Delta partition columns) is each file's partition value, as a
  typed constant, for the types whose text form is exact (strings, integers, booleans, dates, timestamps,
  decimals);
* files are left out only by statistics that bound every value, by the rule the format's own row deletes decide
  files by (:attr:`~lakehouse.tables.base.PlainFiles.bounds`): partition values; integer, date, boolean and
  string columns (Delta: strings shorter than the 32 characters writers truncate at; Iceberg's truncated bounds
  still bound); timestamps (Delta's widened by a millisecond: writers truncate them), which
  :func:`~lakehouse.sql.pushdown.pushable` compares only with literals naming their offset. Never floats (NaN)
  or decimals.

Anything else reads through the format's scan: time travel, more than :data:`MAX_FILES` files left to read,
and a file whose path holds a character of DuckDB's file name patterns (``read_parquet`` would expand it).
Files of one schema and partition value are one ``read_parquet``, the groups a ``UNION ALL`` (at most
:data:`MAX_GROUPS` of them).
"""

from __future__ import annotations

import datetime as dt
import decimal
import re
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from lakehouse.duck import duck_type
from lakehouse.expr import Expr, may_match

if TYPE_CHECKING:
    import duckdb

    from lakehouse.tables.base import LakehouseTable, PlainFiles

MAX_GROUPS = 256
"""Groups of files (one schema, one partition value) read as one UNION ALL at most; more read through the
format's scan."""

MAX_FILES = 2048
"""Files left to read at most: each one's footer is read once per process to check its schema before DuckDB
reads it, which for a query such as ``SELECT * ... LIMIT 10`` over a table of 100,000 files is far more than
the format's scan reads."""

_GLOB = re.compile(r"[*?\[\]{}]")
"""Characters of DuckDB's file name patterns: a path holding one is never handed to ``read_parquet``."""

_SCHEMA_BATCH = 512
"""Files whose footers one ``parquet_schema`` statement reads."""


@dataclass(frozen=True)
class PlannedRead:
    """How the engine reads one table: ``source`` is a DuckDB relation of its rows (every declared column)."""

    source: str
    files: int
    """Files read."""
    files_total: int
    """Live files of the version."""

    def as_dict(self) -> dict[str, Any]:
        return {"read": "files", "files": self.files, "files_total": self.files_total}


@dataclass(frozen=True)
class _Layout:
    """One file schema as DuckDB reads it: top-level column -> DuckDB type, -> field id; INT96 anywhere."""

    types: dict[str, str]
    ids: dict[str, int | None]
    int96: bool


class _Cache:
    """Bounded, thread-safe: data file path -> its schema's key; schema key -> :class:`_Layout`. Data files are
    never written over (every format writes a new name), so a path's schema never changes."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.lock = threading.Lock()
        self.keys: OrderedDict[str, tuple[Any, ...]] = OrderedDict()
        self.layouts: dict[tuple[Any, ...], _Layout] = {}

    def key(self, path: str) -> tuple[Any, ...] | None:
        with self.lock:
            return self.keys.get(path)

    def put_key(self, path: str, key: tuple[Any, ...]) -> None:
        with self.lock:
            self.keys[path] = key
            while len(self.keys) > self.size:
                self.keys.popitem(last=False)
            if len(self.layouts) > self.size:
                self.layouts.clear()


_cache = _Cache(200_000)


def plan_read(con: duckdb.DuckDBPyConnection, table: LakehouseTable, where: Expr | None) -> PlannedRead | None:
    """The current version of ``table`` as a relation over the files its statistics leave for ``where`` (None:
    every file), or None where reading the files directly might not read what the format's scan reads (see
    the module docstring)."""
    plain = table.plain_files()
    if plain is None:
        return None
    declared = table.schema
    # partition columns the table declares (a generated one lakehouse hides, such as ts_day, is not read)
    constant_columns = [c for c in plain.partition_columns if declared.get_field_index(c) >= 0]
    kept = [f for f in plain.files if where is None or may_match(where, plain.bounds(f), f.row_count)]
    if not kept:
        cols = ", ".join(f"CAST(NULL AS {duck_type(f.type)}) AS {_q(f.name)}" for f in declared)
        return PlannedRead(f"(SELECT {cols} WHERE false)", 0, len(plain.files))
    if len(kept) > MAX_FILES:
        return None
    paths = [_duck_path(f.path) for f in kept]
    if any(_GLOB.search(p) for p in paths):
        return None  # DuckDB would expand the name as a pattern, and read other files that match it too
    layouts = _layouts(con, paths)
    if layouts is None:
        return None
    groups: dict[tuple[Any, ...], list[str]] = {}
    selects: dict[tuple[Any, ...], str] = {}
    for f in kept:
        path = _duck_path(f.path)
        key, layout = layouts[path]
        consts = tuple(f.partition.get(c) for c in constant_columns)
        group = (key, consts)
        if group not in groups:
            if len(groups) >= MAX_GROUPS:
                return None
            select = _select(con, layout, plain, declared, dict(zip(constant_columns, consts, strict=True)))
            if select is None:
                return None
            groups[group], selects[group] = [], select
        groups[group].append(path)
    parts = [
        f"SELECT {selects[g]} FROM read_parquet([{', '.join(_s(p) for p in paths)}], hive_partitioning = false)"
        for g, paths in groups.items()
    ]
    return PlannedRead("(" + " UNION ALL ".join(parts) + ")", len(kept), len(plain.files))


def _layouts(con: duckdb.DuckDBPyConnection, paths: Sequence[str]) -> dict[str, tuple[tuple[Any, ...], _Layout]] | None:
    """Per path: its schema's key and layout (footers read once per path and process, by DuckDB)."""
    out: dict[str, tuple[tuple[Any, ...], _Layout]] = {}
    missing = []
    for p in paths:
        key = _cache.key(p)
        layout = _cache.layouts.get(key) if key is not None else None
        if key is None or layout is None:
            missing.append(p)
        else:
            out[p] = (key, layout)
    for i in range(0, len(missing), _SCHEMA_BATCH):
        batch = missing[i : i + _SCHEMA_BATCH]
        rows = con.execute(
            "SELECT file_name, name, type, type_length, repetition_type, num_children, converted_type, scale, "
            "precision, field_id, logical_type FROM parquet_schema([" + ", ".join(_s(p) for p in batch) + "])"
        ).fetchall()
        per_file: dict[str, list[tuple[Any, ...]]] = {}
        for r in rows:
            per_file.setdefault(r[0], []).append(tuple(r[1:]))
        for p in batch:
            file_rows = per_file.get(p)
            if not file_rows:
                return None  # DuckDB named the file otherwise: no way to tell which schema is whose
            key = tuple(file_rows)
            layout = _cache.layouts.get(key)
            if layout is None:
                layout = _layout(con, p, file_rows)
                with _cache.lock:
                    _cache.layouts[key] = layout
            _cache.put_key(p, key)
            out[p] = (key, layout)
    return out


def _layout(con: duckdb.DuckDBPyConnection, path: str, rows: Sequence[tuple[Any, ...]]) -> _Layout:
    """A file's layout from its ``parquet_schema`` rows (depth first: the root, then each top-level column and
    its subtree) and DuckDB's own reading of its types."""
    ids: dict[str, int | None] = {}
    i, top = 1, rows[0][4] or 0
    for _ in range(top):
        name, field_id = rows[i][0], rows[i][8]
        ids[name] = int(field_id) if field_id is not None else None
        i = _skip(rows, i)
    int96 = any(r[1] == "INT96" for r in rows)
    described = con.execute(f"DESCRIBE SELECT * FROM read_parquet({_s(path)}, hive_partitioning = false)").fetchall()
    return _Layout({r[0]: str(r[1]) for r in described}, ids, int96)


def _skip(rows: Sequence[tuple[Any, ...]], i: int) -> int:
    """The index after the subtree starting at row ``i``."""
    children = rows[i][4] or 0
    i += 1
    for _ in range(children):
        i = _skip(rows, i)
    return i


def _select(
    con: duckdb.DuckDBPyConnection, layout: _Layout, plain: PlainFiles, declared: pa.Schema, consts: dict[str, Any]
) -> str | None:
    """The declared columns from files of ``layout`` with partition values ``consts``; None where a column
    cannot be read exactly by name."""
    if layout.int96:
        return None
    cols = []
    for f in declared:
        want = _canonical(con, duck_type(f.type))
        if f.name in consts:
            literal = _constant(consts[f.name], f.type)
            if literal is None:
                return None
            cols.append(f"{literal} AS {_q(f.name)}")
            continue
        if plain.field_ids:  # by field id, or by the name mapping where the file has no ids
            source = _by_id(layout, plain, f.name)
            if source is None:
                return None
        else:
            source = f.name
        have = layout.types.get(source)
        if have is None:
            if f.name.lower() in {n.lower() for n in layout.types}:
                return None  # the file spells it otherwise: which one a reader matches is the format's business
            cols.append(f"CAST(NULL AS {want}) AS {_q(f.name)}")  # added since the file was written, as the scan
            continue
        if have != want:
            return None
        if pa.types.is_floating(f.type):
            # DuckDB's Parquet reader skips row groups by min/max statistics that leave NaN out (`f = 'NaN'`, or
            # `f > 100` where NaN sorts above every number, found no row in a file holding one): floats reach
            # the query through `* 1` (exact: NaN, -0.0, infinity and NULL stay themselves), filtered row by row
            cols.append(f"{_q(source)} * 1 AS {_q(f.name)}")
            continue
        cols.append(_q(f.name) if source == f.name else f"{_q(source)} AS {_q(f.name)}")
    return ", ".join(cols)


_CANONICAL: dict[str, str] = {}


def _by_id(layout: _Layout, plain: PlainFiles, column: str) -> str | None:
    """The one column of a file that holds ``column`` where columns are resolved by field id: the one with its
    id, or in a file without ids the one of a name the name mapping gives it; None where there is none (a
    column added since, or a partition value kept in metadata) or more than one."""
    if column not in plain.field_ids:
        return None
    if all(i is None for i in layout.ids.values()):
        found = [n for n in plain.mapped_names.get(column, ()) if n in layout.ids]
    else:
        found = [n for n, i in layout.ids.items() if i == plain.field_ids[column]]
    return found[0] if len(found) == 1 and found[0] in layout.types else None


def _canonical(con: duckdb.DuckDBPyConnection, type_sql: str) -> str:
    """A DuckDB type as ``DESCRIBE`` spells it (``TIMESTAMPTZ`` is ``TIMESTAMP WITH TIME ZONE``)."""
    known = _CANONICAL.get(type_sql)
    if known is None:
        row = con.execute(f"DESCRIBE SELECT CAST(NULL AS {type_sql}) AS x").fetchone()
        known = _CANONICAL[type_sql] = str(row[1]) if row else type_sql
    return known


def _constant(value: Any, t: pa.DataType) -> str | None:
    """A partition value as a typed DuckDB constant, or None where the value is not of the column's kind or its
    text form might not be exact."""
    duck = duck_type(t)
    if value is None:
        return f"CAST(NULL AS {duck})"
    if pa.types.is_boolean(t) and isinstance(value, bool):
        text = "true" if value else "false"
    elif pa.types.is_timestamp(t) and isinstance(value, dt.datetime):
        if (value.tzinfo is None) != (t.tz is None):
            return None
        text = value.isoformat()  # with its offset where it has one: no session time zone involved
    elif pa.types.is_date32(t) and isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        text = value.isoformat()
    elif pa.types.is_integer(t) and isinstance(value, int) and not isinstance(value, bool):
        text = str(value)
    elif (pa.types.is_string(t) or pa.types.is_large_string(t)) and isinstance(value, str):
        text = value
    elif pa.types.is_decimal(t) and isinstance(value, decimal.Decimal | int) and not isinstance(value, bool):
        text = str(value)
    else:
        return None
    return f"CAST({_s(text)} AS {duck})"


def _duck_path(path: str) -> str:
    if path.startswith("file://"):
        return path[len("file://") :]
    if path.startswith(("s3a://", "s3n://")):
        return "s3://" + path.split("://", 1)[1]
    return path


def _s(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _q(ident: str) -> str:
    return '"' + ident.replace('"', '""') + '"'
