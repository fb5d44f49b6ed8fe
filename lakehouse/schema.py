"""Schemas and partitioning in a format-neutral form (pyarrow), plus checks on incoming data.

A schema spec is the text form the CLI takes: ``"id:int64 not null, ts:timestamp, country:string"``.
A partition spec is a comma list of identity columns and transforms of a timestamp column:
``"day(ts), country"``.

    >>> parse_schema("id:int64 not null, ts:timestamp").field("ts").type
    TimestampType(timestamp[us, tz=UTC])
    >>> [str(f) for f in parse_partitioning("day(ts), country")]
    ['day(ts)', 'country']
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import pyarrow as pa
import pyarrow.compute as pc

from lakehouse.errors import InvalidSchemaError, SchemaMismatchError

Transform = Literal["identity", "year", "month", "day", "hour"]
TRANSFORMS: tuple[Transform, ...] = ("identity", "year", "month", "day", "hour")

UTC_TIMESTAMP = pa.timestamp("us", tz="UTC")

_TYPES: dict[str, pa.DataType] = {
    "string": pa.string(),
    "str": pa.string(),
    "utf8": pa.string(),
    "varchar": pa.string(),
    "text": pa.string(),
    "int": pa.int64(),
    "int64": pa.int64(),
    "long": pa.int64(),
    "bigint": pa.int64(),
    "int32": pa.int32(),
    "integer": pa.int32(),
    "float": pa.float32(),
    "float32": pa.float32(),
    "real": pa.float32(),
    "double": pa.float64(),
    "float64": pa.float64(),
    "bool": pa.bool_(),
    "boolean": pa.bool_(),
    "date": pa.date32(),
    "timestamp": UTC_TIMESTAMP,
    "timestamptz": UTC_TIMESTAMP,
    "timestamp_ntz": pa.timestamp("us"),
    "binary": pa.binary(),
}
_DECIMAL = re.compile(r"^decimal\((\d+)\s*,\s*(\d+)\)$")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")


def parse_type(text: str) -> pa.DataType:
    """Parse a type name such as ``int64``, ``timestamp`` or ``decimal(10,2)``."""
    t = text.strip().lower()
    if t in _TYPES:
        return _TYPES[t]
    m = _DECIMAL.match(t)
    if m:
        precision, scale = int(m.group(1)), int(m.group(2))
        if not 1 <= precision <= 38 or scale > precision:
            raise InvalidSchemaError(f"decimal({precision},{scale}) is out of range (precision 1..38)")
        return pa.decimal128(precision, scale)
    raise InvalidSchemaError(
        f"unknown type {text!r}",
        hint="use one of: string, int32, int64, float32, float64, bool, date, timestamp, "
        "timestamp_ntz, binary, decimal(p,s)",
    )


def type_name(t: pa.DataType) -> str:
    """The canonical spec name of an Arrow type (inverse of :func:`parse_type` where one exists)."""
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return "string"
    if pa.types.is_timestamp(t):
        return "timestamp" if t.tz is not None else "timestamp_ntz"
    if pa.types.is_decimal(t):
        return f"decimal({t.precision},{t.scale})"
    if pa.types.is_binary(t) or pa.types.is_large_binary(t):
        return "binary"
    if pa.types.is_date32(t):
        return "date"
    if pa.types.is_boolean(t):
        return "bool"
    return str(t)


def parse_schema(spec: str) -> pa.Schema:
    """Parse ``"name:type [not null], ..."`` into an Arrow schema."""
    fields: list[pa.Field] = []
    seen: set[str] = set()
    for raw in _split_top_level(spec):
        part = raw.strip()
        if not part:
            continue
        if ":" not in part:
            raise InvalidSchemaError(f"column {part!r} has no type", hint="write name:type, e.g. id:int64")
        name, type_text = (s.strip() for s in part.split(":", 1))
        nullable = True
        if re.search(r"\s+not\s+null$", type_text, re.IGNORECASE):
            nullable = False
            type_text = re.sub(r"\s+not\s+null$", "", type_text, flags=re.IGNORECASE)
        check_column_name(name)
        if name.lower() in seen:
            raise InvalidSchemaError(f"column {name!r} appears twice")
        seen.add(name.lower())
        fields.append(pa.field(name, parse_type(type_text), nullable=nullable))
    if not fields:
        raise InvalidSchemaError("the schema has no columns")
    return pa.schema(fields)


def _split_top_level(spec: str) -> Iterable[str]:
    depth, start = 0, 0
    for i, ch in enumerate(spec):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "," and depth == 0:
            yield spec[start:i]
            start = i + 1
    yield spec[start:]


def check_column_name(name: str) -> None:
    if not _NAME.match(name):
        raise InvalidSchemaError(
            f"invalid column name {name!r}", hint="use letters, digits and _ and start with a letter or _"
        )


def schema_to_dict(schema: pa.Schema) -> list[dict[str, Any]]:
    """A JSON-friendly description of a schema."""
    return [{"name": f.name, "type": type_name(f.type), "nullable": f.nullable} for f in schema]


def schema_from_dict(items: Sequence[dict[str, Any]]) -> pa.Schema:
    return pa.schema([pa.field(i["name"], parse_type(i["type"]), nullable=i["nullable"]) for i in items])


@dataclass(frozen=True)
class PartitionField:
    """One partition column: an identity column or a time transform of a timestamp/date column."""

    column: str
    transform: Transform = "identity"

    @property
    def name(self) -> str:
        """The partition field's name: the column for identity, ``<column>_<transform>`` otherwise."""
        return self.column if self.transform == "identity" else f"{self.column}_{self.transform}"

    def __str__(self) -> str:
        return self.column if self.transform == "identity" else f"{self.transform}({self.column})"


_TRANSFORM_RE = re.compile(r"^(\w+)\s*\(\s*(\w+)\s*\)$")


def parse_partitioning(spec: str | Sequence[str] | None) -> tuple[PartitionField, ...]:
    """Parse ``"day(ts), country"`` (or a list of such items) into partition fields."""
    if spec is None:
        return ()
    items = list(_split_top_level(spec)) if isinstance(spec, str) else list(spec)
    out: list[PartitionField] = []
    for raw in items:
        item = raw.strip()
        if not item:
            continue
        m = _TRANSFORM_RE.match(item)
        if m:
            transform, column = m.group(1).lower(), m.group(2)
            if transform not in TRANSFORMS or transform == "identity":
                raise InvalidSchemaError(
                    f"unknown partition transform {m.group(1)!r}", hint="use year(), month(), day() or hour()"
                )
            out.append(PartitionField(column, transform))
        else:
            check_column_name(item)
            out.append(PartitionField(item))
    return tuple(out)


def validate_partitioning(schema: pa.Schema, partitioning: Sequence[PartitionField]) -> None:
    """Check that partition fields refer to columns of a fitting type."""
    names: set[str] = set()
    for pf in partitioning:
        idx = schema.get_field_index(pf.column)
        if idx < 0:
            raise InvalidSchemaError(f"partition column {pf.column!r} is not in the schema")
        t = schema.field(idx).type
        if pf.transform == "identity":
            if pa.types.is_floating(t) or pa.types.is_binary(t) or pa.types.is_nested(t):
                raise InvalidSchemaError(f"cannot partition by {pf.column!r} of type {type_name(t)}")
        elif not (pa.types.is_timestamp(t) or pa.types.is_date(t)):
            raise InvalidSchemaError(
                f"{pf.transform}({pf.column}) needs a timestamp or date column, {pf.column!r} is {type_name(t)}"
            )
        elif pf.transform == "hour" and pa.types.is_date(t):
            raise InvalidSchemaError(f"hour({pf.column}) needs a timestamp column, not a date")
        if pf.name in names:
            raise InvalidSchemaError(f"partition field {pf.name!r} appears twice")
        if pf.transform != "identity" and schema.get_field_index(pf.name) >= 0:
            raise InvalidSchemaError(f"partition field {pf.name!r} clashes with a column of that name")
        names.add(pf.name)


def validate_keys(schema: pa.Schema, keys: Sequence[str]) -> None:
    for k in keys:
        if schema.get_field_index(k) < 0:
            raise InvalidSchemaError(f"key column {k!r} is not in the schema")


def _castable(src: pa.DataType, dst: pa.DataType) -> bool:
    """Casts we accept without asking: widening numbers, string flavours, timestamp units/zones."""
    if src.equals(dst):
        return True
    if pa.types.is_null(src):
        return True
    if pa.types.is_integer(src) and (pa.types.is_integer(dst) or pa.types.is_floating(dst)):
        return True
    if pa.types.is_floating(src) and pa.types.is_floating(dst):
        return True
    if pa.types.is_decimal(src) and pa.types.is_decimal(dst):
        return True
    stringish = (pa.types.is_string, pa.types.is_large_string, pa.types.is_string_view)
    if any(f(src) for f in stringish) and any(f(dst) for f in stringish):
        return True
    binaryish = (pa.types.is_binary, pa.types.is_large_binary, pa.types.is_binary_view)
    if any(f(src) for f in binaryish) and any(f(dst) for f in binaryish):
        return True
    if pa.types.is_timestamp(src) and pa.types.is_timestamp(dst):
        return (src.tz is None) == (dst.tz is None)
    return pa.types.is_date(src) and pa.types.is_date(dst)


def conform(data: pa.Table, schema: pa.Schema) -> pa.Table:
    """Return ``data`` with exactly ``schema``'s columns, order and types, or raise.

    Missing nullable columns are filled with nulls; casts must be lossless for the values at hand
    (an int64 that does not fit int32 is an error, not a wrap-around).

    Raises:
        SchemaMismatchError: naming every offending column.
    """
    problems: list[str] = []
    extra = [n for n in data.column_names if schema.get_field_index(n) < 0]
    if extra:
        problems.append(f"unknown column(s) {', '.join(extra)}")
    columns: list[pa.ChunkedArray] = []
    for field in schema:
        if field.name not in data.column_names:
            if not field.nullable:
                problems.append(f"required column {field.name!r} is missing")
                continue
            columns.append(pa.chunked_array([pa.nulls(data.num_rows, field.type)], type=field.type))
            continue
        col = data.column(field.name)
        if not _castable(col.type, field.type):
            problems.append(f"column {field.name!r} is {type_name(col.type)}, the table wants {type_name(field.type)}")
            continue
        if not col.type.equals(field.type):
            try:
                col = pc.cast(col, field.type, safe=True)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
                problems.append(f"column {field.name!r} cannot be cast to {type_name(field.type)}: {e}")
                continue
        if not field.nullable and col.null_count:
            problems.append(f"column {field.name!r} is required but has {col.null_count} null(s)")
            continue
        columns.append(col)
    if problems:
        raise SchemaMismatchError("data does not match the table schema: " + "; ".join(problems))
    return pa.Table.from_arrays(columns, schema=schema)


def without_view_types(table: pa.Table) -> pa.Table:
    """``table`` with ``string_view`` / ``binary_view`` columns as ``string`` / ``binary``. delta-rs's delete and
    merge write Parquet files whose stored Arrow schema says ``string_view``; pyarrow reads them so, and many of
    its kernels (filter, take, most string functions) have no view variant.

    >>> without_view_types(pa.table({"s": pa.array(["a"], pa.string_view())})).schema.field("s").type
    DataType(string)
    """
    fields = []
    for f in table.schema:
        if pa.types.is_string_view(f.type):
            f = f.with_type(pa.string())
        elif pa.types.is_binary_view(f.type):
            f = f.with_type(pa.binary())
        fields.append(f)
    target = pa.schema(fields, metadata=table.schema.metadata)
    return table if target.equals(table.schema, check_metadata=True) else table.cast(target)
