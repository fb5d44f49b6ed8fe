"""Schemas and partitioning in a format-neutral form (pyarrow), plus checks on incoming data.

A schema spec is the text form the CLI takes: ``"id:int64 not null, ts:timestamp, country:string"``.
A partition spec is a comma list of identity columns, transforms of a timestamp column and Iceberg's
``bucket(N, col)`` / ``truncate(W, col)``: ``"day(ts), country, bucket(16, id)"``.

**Type strings.** Every Arrow type a Delta or Iceberg table can hold has one canonical text form
(:func:`format_type`) that :func:`parse_type` turns back into the same Arrow type
(``format_type(parse_type(s)) == s`` for a canonical ``s``; Arrow -> text -> Arrow is lossless, up to the
names Arrow gives list items and map entries, which Arrow itself ignores):

* ``bool``; ``int8`` … ``int64``, ``uint8`` … ``uint64``; ``float16``, ``float32``, ``float64``;
* ``decimal(p,s)`` (precision 1..38 is Arrow's decimal128, 39..76 decimal256; ``decimal256(p,s)``,
  ``decimal32(p,s)`` and ``decimal64(p,s)`` name the other widths);
* ``string``, ``large_string``, ``string_view``; ``binary``, ``large_binary``, ``binary_view``,
  ``fixed_size_binary(n)``;
* ``date`` (days), ``date64`` (milliseconds); ``time`` (µs) or ``time(s|ms|us|ns)``;
* ``timestamp`` (µs, UTC), ``timestamp(s|ms|ns)`` (UTC), ``timestamp(us, Europe/Paris)`` (another zone),
  ``timestamp_ntz`` / ``timestamp_ntz(s|ms|ns)`` (no zone); ``duration(s|ms|us|ns)``;
* ``struct<a: int64, b: string not null>``, ``list<int64>``, ``list<string not null>``, ``large_list<…>``,
  ``fixed_size_list<float32, 3>``, ``map<string, int64>`` (``map<K, V, sorted>`` for sorted keys); nested to
  any depth.

A column or field name that is not a plain identifier (``[A-Za-z_][A-Za-z0-9_]*``) is written in backticks, a
backtick inside doubled: ```` `first name`:string, `a.b`:int64, `it``s`:bool ````. On input a name without
spaces or punctuation (``ü``, ``1st``, ``a.b``) may also go unquoted. Aliases such as ``int``, ``long``,
``double``, ``text`` and Arrow's own spellings (``timestamp[ns, tz=UTC]``, ``list<item: int64>``,
``decimal128(38, 4)``) are accepted on input.

    >>> parse_schema("id:int64 not null, ts:timestamp").field("ts").type
    TimestampType(timestamp[us, tz=UTC])
    >>> format_type(parse_type("struct<`first name`: string, tags: list<string>>"))
    'struct<`first name`: string, tags: list<string>>'
    >>> [str(f) for f in parse_partitioning("day(ts), country")]
    ['day(ts)', 'country']
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import pyarrow as pa
import pyarrow.compute as pc

from lakehouse.errors import InvalidSchemaError, SchemaMismatchError

Transform = Literal["identity", "year", "month", "day", "hour", "bucket", "truncate"]
TRANSFORMS: tuple[Transform, ...] = ("identity", "year", "month", "day", "hour", "bucket", "truncate")
TIME_TRANSFORMS = frozenset({"year", "month", "day", "hour"})
WIDTH_TRANSFORMS = frozenset({"bucket", "truncate"})
"""Transforms with a parameter (Iceberg only): ``bucket(N, col)``, ``truncate(W, col)``."""

UTC_TIMESTAMP = pa.timestamp("us", tz="UTC")

_TYPES: dict[str, pa.DataType] = {
    "string": pa.string(),
    "str": pa.string(),
    "utf8": pa.string(),
    "varchar": pa.string(),
    "text": pa.string(),
    "large_string": pa.large_string(),
    "large_utf8": pa.large_string(),
    "string_view": pa.string_view(),
    "utf8_view": pa.string_view(),
    "int": pa.int64(),
    "int64": pa.int64(),
    "long": pa.int64(),
    "bigint": pa.int64(),
    "int32": pa.int32(),
    "integer": pa.int32(),
    "int16": pa.int16(),
    "short": pa.int16(),
    "smallint": pa.int16(),
    "int8": pa.int8(),
    "byte": pa.int8(),
    "tinyint": pa.int8(),
    "uint8": pa.uint8(),
    "uint16": pa.uint16(),
    "uint32": pa.uint32(),
    "uint64": pa.uint64(),
    "float16": pa.float16(),
    "halffloat": pa.float16(),
    "float": pa.float32(),
    "float32": pa.float32(),
    "real": pa.float32(),
    "double": pa.float64(),
    "float64": pa.float64(),
    "bool": pa.bool_(),
    "boolean": pa.bool_(),
    "date": pa.date32(),
    "date32": pa.date32(),
    "date64": pa.date64(),
    "timestamp": UTC_TIMESTAMP,
    "timestamptz": UTC_TIMESTAMP,
    "timestamp_ntz": pa.timestamp("us"),
    "time": pa.time64("us"),
    "binary": pa.binary(),
    "large_binary": pa.large_binary(),
    "binary_view": pa.binary_view(),
}
_CANONICAL: dict[pa.DataType, str] = {
    pa.string(): "string",
    pa.large_string(): "large_string",
    pa.string_view(): "string_view",
    pa.int8(): "int8",
    pa.int16(): "int16",
    pa.int32(): "int32",
    pa.int64(): "int64",
    pa.uint8(): "uint8",
    pa.uint16(): "uint16",
    pa.uint32(): "uint32",
    pa.uint64(): "uint64",
    pa.float16(): "float16",
    pa.float32(): "float32",
    pa.float64(): "float64",
    pa.bool_(): "bool",
    pa.date32(): "date",
    pa.date64(): "date64",
    pa.binary(): "binary",
    pa.large_binary(): "large_binary",
    pa.binary_view(): "binary_view",
}
_UNITS = ("s", "ms", "us", "ns")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PLAIN_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_BARE_NAME = re.compile(r"[^\s:<>,()\[\]`]+")
_TYPE_HINT = (
    "use one of: string, int8/16/32/64, uint8/16/32/64, float16/32/64, bool, date, time, timestamp, "
    "timestamp_ntz, duration(us), binary, fixed_size_binary(n), decimal(p,s), struct<name: type, ...>, list<type>, "
    "map<key type, value type>"
)


def quote_name(name: str) -> str:
    """A column or field name as written in a type string: bare when a plain identifier, else in backticks.

    >>> quote_name("id"), quote_name("first name"), quote_name("it`s")
    ('id', '`first name`', '`it``s`')
    """
    return name if _PLAIN_NAME.match(name) else "`" + name.replace("`", "``") + "`"


class _Parser:
    """Recursive descent over a type string, a schema spec or a partition spec."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def fail(self, message: str) -> InvalidSchemaError:
        return InvalidSchemaError(f"{message} in {self.text.strip()!r} at position {self.pos}", hint=_TYPE_HINT)

    def ws(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def peek(self) -> str:
        self.ws()
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def at_end(self) -> bool:
        return self.peek() == ""

    def accept(self, ch: str) -> bool:
        if self.peek() == ch:
            self.pos += 1
            return True
        return False

    def expect(self, ch: str) -> None:
        if not self.accept(ch):
            found = self.peek()
            raise self.fail(f"expected {ch!r}, found {found!r}" if found else f"expected {ch!r} at the end")

    def word(self) -> str:
        self.ws()
        m = _IDENT.match(self.text, self.pos)
        if not m:
            found = self.peek()
            raise self.fail(f"expected a type name, found {found!r}" if found else "expected a type name")
        self.pos = m.end()
        return m.group(0)

    def try_word(self, *words: str) -> str | None:
        """Consume the next word when it is one of ``words`` (case-insensitive)."""
        save = self.pos
        self.ws()
        m = _IDENT.match(self.text, self.pos)
        if m and m.group(0).lower() in words:
            self.pos = m.end()
            return m.group(0).lower()
        self.pos = save
        return None

    def number(self) -> int:
        self.ws()
        m = re.compile(r"\d+").match(self.text, self.pos)
        if not m:
            raise self.fail("expected a number")
        self.pos = m.end()
        return int(m.group(0))

    def name(self) -> str:
        """A column or field name: in backticks (doubled inside), or bare."""
        self.ws()
        if self.text.startswith("`", self.pos):
            out: list[str] = []
            i = self.pos + 1
            while True:
                j = self.text.find("`", i)
                if j < 0:
                    raise self.fail("unterminated ` quote")
                out.append(self.text[i:j])
                if self.text.startswith("``", j):
                    out.append("`")
                    i = j + 2
                    continue
                self.pos = j + 1
                break
            name = "".join(out)
        else:
            m = _BARE_NAME.match(self.text, self.pos)
            if not m:
                found = self.peek()
                raise self.fail(f"expected a name, found {found!r}" if found else "expected a name")
            self.pos = m.end()
            name = m.group(0)
        check_column_name(name)
        return name

    def unit(self) -> str:
        u = self.word().lower()
        if u not in _UNITS:
            raise self.fail(f"unknown time unit {u!r} (s, ms, us or ns)")
        return u

    def args(self) -> tuple[str, list[str]] | None:
        """``(a, b)`` or ``[a, b]`` after a type word, as raw comma-separated texts."""
        opening = self.peek()
        if opening not in ("(", "["):
            return None
        closing = ")" if opening == "(" else "]"
        self.pos += 1
        end = self.text.find(closing, self.pos)
        if end < 0:
            raise self.fail(f"expected {closing!r}")
        parts = [p.strip() for p in self.text[self.pos : end].split(",")]
        self.pos = end + 1
        return opening, parts

    def not_null(self) -> bool:
        save = self.pos
        if self.try_word("not"):
            if self.try_word("null"):
                return True
            self.pos = save
        return False

    def element(self) -> pa.Field:
        """A list item or map value: ``[name:] type [not null]`` (the name, Arrow's spelling, is dropped)."""
        save = self.pos
        try:
            self.name()
            has_name = self.accept(":")
        except InvalidSchemaError:
            has_name = False
        if not has_name:
            self.pos = save
        t = self.type()
        return pa.field("item", t, nullable=not self.not_null())

    def type(self) -> pa.DataType:
        self.ws()
        start = self.pos
        w = self.word().lower()
        if w in ("struct", "row"):
            self.expect("<")
            fields: list[pa.Field] = []
            seen: set[str] = set()
            if not self.accept(">"):
                while True:
                    name = self.name()
                    self.expect(":")
                    t = self.type()
                    if name in seen:
                        raise self.fail(f"struct field {name!r} appears twice")
                    seen.add(name)
                    fields.append(pa.field(name, t, nullable=not self.not_null()))
                    if self.accept(">"):
                        break
                    self.expect(",")
            return pa.struct(fields)
        if w in ("list", "array", "large_list", "fixed_size_list"):
            self.expect("<")
            item = self.element()
            size: int | None = None
            if w == "fixed_size_list" and self.accept(","):
                size = self.number()
            self.expect(">")
            if w == "fixed_size_list":
                a = self.args()
                if a is not None:
                    size = int(a[1][0]) if a[1][0].isdigit() else None
                if size is None:
                    raise self.fail("fixed_size_list needs a size: fixed_size_list<type, n>")
                return pa.list_(item, size)
            return pa.large_list(item) if w == "large_list" else pa.list_(item)
        if w == "map":
            self.expect("<")
            key = self.type()
            self.not_null()  # map keys are never null
            self.expect(",")
            value = self.element()
            keys_sorted = bool(self.accept(",") and self.try_word("sorted", "keys_sorted"))
            self.expect(">")
            return pa.map_(pa.field("key", key, nullable=False), value.with_name("value"), keys_sorted=keys_sorted)
        if w in ("decimal", "numeric", "decimal32", "decimal64", "decimal128", "decimal256"):
            a = self.args()
            if a is None or len(a[1]) != 2 or not all(p.isdigit() for p in a[1]):
                raise self.fail(f"{w} needs a precision and a scale: {w}(p,s)")
            return _decimal(w, int(a[1][0]), int(a[1][1]), self)
        if w in ("timestamp", "timestamptz", "timestamp_ntz", "time", "time32", "time64", "duration"):
            a = self.args()
            if a is None:
                if w in ("time32", "time64", "duration"):
                    raise self.fail(f"{w} needs a unit: {w}(us)")
                return _TYPES[w]
            unit = a[1][0].lower()
            if unit not in _UNITS:
                raise self.fail(f"unknown time unit {a[1][0]!r} (s, ms, us or ns)")
            if w == "duration":
                return pa.duration(unit)
            if w.startswith("time") and not w.startswith("timestamp"):
                if (w == "time32" and unit not in ("s", "ms")) or (w == "time64" and unit not in ("us", "ns")):
                    raise self.fail(f"{w} takes {'s or ms' if w == 'time32' else 'us or ns'}, not {unit}")
                return pa.time32(unit) if unit in ("s", "ms") else pa.time64(unit)
            tz: str | None = None if w == "timestamp_ntz" else "UTC"
            if len(a[1]) > 2:
                raise self.fail(f"{w} takes a unit and a time zone")
            if len(a[1]) == 2:
                if w == "timestamp_ntz":
                    raise self.fail("timestamp_ntz has no time zone")
                tz = a[1][1].removeprefix("tz=").strip()
                if not tz:
                    raise self.fail("empty time zone")
            elif a[0] == "[" and w == "timestamp":
                tz = None  # Arrow's own spelling: timestamp[us] has no zone
            try:
                return pa.timestamp(unit, tz=tz)
            except (pa.ArrowInvalid, ValueError) as e:
                raise self.fail(f"invalid time zone {tz!r}: {e}") from None
        if w in ("fixed_size_binary", "fixed"):
            a = self.args()
            if a is None or len(a[1]) != 1 or not a[1][0].isdigit() or int(a[1][0]) < 1:
                raise self.fail(f"{w} needs a byte width: fixed_size_binary(16)")
            return pa.binary(int(a[1][0]))
        if w in ("date32", "date64"):
            self.args()  # Arrow's date32[day], date64[ms]
            return _TYPES[w]
        if w in _TYPES:
            return _TYPES[w]
        typed = self.text[start : self.pos]
        self.pos = start
        raise InvalidSchemaError(f"unknown type {typed!r}", hint=_TYPE_HINT)


def _decimal(kind: str, precision: int, scale: int, parser: _Parser) -> pa.DataType:
    limits = {"decimal32": 9, "decimal64": 18, "decimal128": 38, "decimal256": 76}
    top = limits.get(kind, 76)
    if not 1 <= precision <= top or scale > precision:
        raise InvalidSchemaError(
            f"{kind}({precision},{scale}) is out of range (precision 1..{top}, scale 0..precision)"
        )
    if kind == "decimal32":
        return pa.decimal32(precision, scale)
    if kind == "decimal64":
        return pa.decimal64(precision, scale)
    if kind == "decimal256" or precision > 38:
        return pa.decimal256(precision, scale)
    return pa.decimal128(precision, scale)


def parse_type(text: str) -> pa.DataType:
    """Parse a type string such as ``int64``, ``timestamp``, ``decimal(10,2)`` or ``map<string, list<int32>>``."""
    p = _Parser(text)
    t = p.type()
    if not p.at_end():
        raise p.fail("unexpected text after the type")
    return t


def format_type(t: pa.DataType) -> str:
    """The canonical type string of an Arrow type (the inverse of :func:`parse_type`).

    Raises:
        InvalidSchemaError: for an Arrow type no Delta or Iceberg table has (dictionary, union, interval, null,
            extension types), naming it.
    """
    if isinstance(t, pa.ExtensionType):
        raise InvalidSchemaError(f"type {t} (an Arrow extension type) is not supported by lakehouse yet")
    canonical = _CANONICAL.get(t)
    if canonical is not None:
        return canonical
    if pa.types.is_timestamp(t):
        if t.tz is None:
            return "timestamp_ntz" if t.unit == "us" else f"timestamp_ntz({t.unit})"
        if t.tz == "UTC":
            return "timestamp" if t.unit == "us" else f"timestamp({t.unit})"
        return f"timestamp({t.unit}, {t.tz})"
    if pa.types.is_time(t):
        return "time" if t.unit == "us" else f"time({t.unit})"
    if pa.types.is_duration(t):
        return f"duration({t.unit})"
    if pa.types.is_decimal(t):
        width = {32: "decimal32", 64: "decimal64", 128: "decimal", 256: "decimal256"}[t.bit_width]
        if width == "decimal256" and t.precision > 38:
            width = "decimal"
        return f"{width}({t.precision},{t.scale})"
    if pa.types.is_fixed_size_binary(t):
        return f"fixed_size_binary({t.byte_width})"
    if pa.types.is_struct(t):
        return "struct<" + ", ".join(_format_field(t.field(i), ": ") for i in range(t.num_fields)) + ">"
    if pa.types.is_map(t):
        sorted_ = ", sorted" if t.keys_sorted else ""
        return f"map<{format_type(t.key_type)}, {_format_element(t.item_field)}{sorted_}>"
    if pa.types.is_fixed_size_list(t):
        return f"fixed_size_list<{_format_element(t.value_field)}, {t.list_size}>"
    if pa.types.is_large_list(t):
        return f"large_list<{_format_element(t.value_field)}>"
    if pa.types.is_list(t):
        return f"list<{_format_element(t.value_field)}>"
    raise InvalidSchemaError(f"type {t} is not supported by lakehouse yet")


def type_name(t: pa.DataType) -> str:
    """The canonical spec name of an Arrow type (see :func:`format_type`)."""
    return format_type(t)


def _format_element(f: pa.Field) -> str:
    return format_type(f.type) + ("" if f.nullable else " not null")


def _format_field(f: pa.Field, sep: str = ":") -> str:
    try:
        text = format_type(f.type)
    except InvalidSchemaError as e:
        raise InvalidSchemaError(f"column {f.name!r}: {e.message}", hint=e.hint) from None
    return f"{quote_name(f.name)}{sep}{text}" + ("" if f.nullable else " not null")


def format_schema(schema: pa.Schema) -> str:
    """The schema spec of a schema (the inverse of :func:`parse_schema`).

    >>> format_schema(parse_schema("id:int64 not null, `first name`:string"))
    'id:int64 not null, `first name`:string'
    """
    return ", ".join(_format_field(f) for f in schema)


def parse_schema(spec: str) -> pa.Schema:
    """Parse ``"name:type [not null], ..."`` into an Arrow schema (names in backticks when not plain)."""
    p = _Parser(spec)
    fields: list[pa.Field] = []
    seen: set[str] = set()
    while not p.at_end():
        if p.accept(","):
            continue
        start = p.pos
        name = p.name()
        if not p.accept(":"):
            p.pos = start
            part = spec[start:].split(",", 1)[0].strip()
            raise InvalidSchemaError(f"column {part!r} has no type", hint="write name:type, e.g. id:int64")
        t = p.type()
        nullable = not p.not_null()
        if name.lower() in seen:
            raise InvalidSchemaError(f"column {name!r} appears twice")
        seen.add(name.lower())
        fields.append(pa.field(name, t, nullable=nullable))
        if not p.at_end():
            p.expect(",")
    if not fields:
        raise InvalidSchemaError("the schema has no columns")
    return pa.schema(fields)


def check_column_name(name: str) -> None:
    """Any non-empty name without control characters (Delta with column mapping and Iceberg allow spaces, dots,
    quotes, unicode and leading digits)."""
    if not name or not name.strip():
        raise InvalidSchemaError(f"invalid column name {name!r}", hint="a column name cannot be empty")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
        raise InvalidSchemaError(f"invalid column name {name!r}", hint="a column name cannot hold control characters")


def schema_to_dict(schema: pa.Schema) -> list[dict[str, Any]]:
    """A JSON-friendly description of a schema."""
    out = []
    for f in schema:
        _format_field(f)  # names the column of an unsupported type
        out.append({"name": f.name, "type": format_type(f.type), "nullable": f.nullable})
    return out


def schema_from_dict(items: Sequence[dict[str, Any]]) -> pa.Schema:
    fields = []
    for i in items:
        try:
            t = parse_type(i["type"])
        except InvalidSchemaError as e:
            raise InvalidSchemaError(f"column {i['name']!r}: {e.message}", hint=e.hint) from None
        fields.append(pa.field(i["name"], t, nullable=i["nullable"]))
    return pa.schema(fields)


def plain_flavours(t: pa.DataType) -> pa.DataType:
    """``t`` with Arrow's large and view flavours of strings, binaries and lists replaced by the plain ones, at
    every depth (Delta and Iceberg have one string, one binary and one list type).

    >>> format_type(plain_flavours(parse_type("map<large_string, large_list<string_view>>")))
    'map<string, list<string>>'
    """
    if pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return pa.string()
    if pa.types.is_large_binary(t) or pa.types.is_binary_view(t):
        return pa.binary()
    if pa.types.is_struct(t):
        return pa.struct([t.field(i).with_type(plain_flavours(t.field(i).type)) for i in range(t.num_fields)])
    if pa.types.is_map(t):
        return pa.map_(
            t.key_field.with_type(plain_flavours(t.key_type)),
            t.item_field.with_type(plain_flavours(t.item_type)),
            keys_sorted=t.keys_sorted,
        )
    if pa.types.is_fixed_size_list(t):
        return pa.list_(t.value_field.with_type(plain_flavours(t.value_type)), t.list_size)
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return pa.list_(t.value_field.with_type(plain_flavours(t.value_type)))
    return t


def contains_type(t: pa.DataType, kind: Callable[[pa.DataType], bool]) -> bool:
    """Whether ``t`` or any type nested in it (struct fields, list items, map keys and values) is of ``kind``.

    >>> contains_type(pa.map_(pa.string(), pa.list_(pa.float32())), pa.types.is_floating)
    True
    """
    if kind(t):
        return True
    if pa.types.is_struct(t):
        return any(contains_type(t.field(i).type, kind) for i in range(t.num_fields))
    if pa.types.is_map(t):
        return contains_type(t.key_type, kind) or contains_type(t.item_type, kind)
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        return contains_type(t.value_type, kind)
    return False


def case_clashes(schema: pa.Schema) -> list[str]:
    """Names of one level (the columns, a struct's fields, at any depth) that differ only in case, each clash as
    ``path`` of its names: DuckDB and Spark resolve names without case, so they cannot tell them apart.

    >>> s = pa.struct([("B", pa.int8()), ("b", pa.int8())])
    >>> case_clashes(pa.schema([("A", pa.int64()), ("a", pa.int64()), ("s", s), ("l", pa.list_(s))]))
    ['A / a', 's.B / s.b', 'l[].B / l[].b']
    """
    out: list[str] = []

    def level(fields: Sequence[pa.Field], prefix: str) -> None:
        seen: dict[str, list[str]] = {}
        for f in fields:
            seen.setdefault(f.name.lower(), []).append(f.name)
        out.extend(" / ".join(prefix + n for n in names) for names in seen.values() if len(names) > 1)
        for f in fields:
            nested(f.type, f"{prefix}{f.name}")

    def nested(t: pa.DataType, path: str) -> None:
        if pa.types.is_struct(t):
            level([t.field(i) for i in range(t.num_fields)], path + ".")
        elif pa.types.is_map(t):
            nested(t.key_type, path + ".key")
            nested(t.item_type, path + ".value")
        elif pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
            nested(t.value_type, path + "[]")

    level(list(schema), "")
    return out


def check_storable(schema: pa.Schema) -> None:
    """Raise :class:`InvalidSchemaError` naming the first column whose type has no type string, or whose
    type string does not read back as the same type (so nothing is stored that cannot be read back)."""
    back = schema_from_dict(schema_to_dict(schema))
    for f, g in zip(schema, back, strict=True):
        if not (f.type.equals(g.type) and f.name == g.name and f.nullable == g.nullable):
            raise InvalidSchemaError(
                f"column {f.name!r}: type {f.type} reads back as {g.type}; lakehouse cannot store it yet"
            )


@dataclass(frozen=True)
class PartitionField:
    """One partition column: an identity column, a time transform of a timestamp/date column, or (Iceberg) a
    ``bucket``/``truncate`` of a column with its ``width`` (number of buckets, truncation width)."""

    column: str
    transform: Transform = "identity"
    width: int | None = None

    @property
    def name(self) -> str:
        """The partition field's name: the column for identity, ``<column>_<transform>`` otherwise (Iceberg's
        ``<column>_bucket`` / ``<column>_trunc``)."""
        if self.transform == "truncate":
            return f"{self.column}_trunc"
        return self.column if self.transform == "identity" else f"{self.column}_{self.transform}"

    @property
    def is_time(self) -> bool:
        return self.transform in TIME_TRANSFORMS

    def __str__(self) -> str:
        column = quote_name(self.column)
        if self.transform in WIDTH_TRANSFORMS:
            return f"{self.transform}({self.width}, {column})"
        return column if self.transform == "identity" else f"{self.transform}({column})"


def parse_partitioning(spec: str | Sequence[str] | None) -> tuple[PartitionField, ...]:
    """Parse ``"day(ts), country"`` (or a list of such items) into partition fields; a column name that is not
    a plain identifier is written in backticks: ``"day(`event time`), `country code`"``."""
    if spec is None:
        return ()
    items = [spec] if isinstance(spec, str) else list(spec)
    out: list[PartitionField] = []
    for item in items:
        p = _Parser(item)
        while not p.at_end():
            if p.accept(","):
                continue
            name = p.name()
            if p.accept("("):
                transform = name.lower()
                width: int | None = None
                if transform in WIDTH_TRANSFORMS:  # bucket(N, col), truncate(W, col)
                    raw = p.name()
                    if not raw.isdigit() or int(raw) < 1:
                        raise p.fail(f"the width of {transform}() must be a whole number of at least 1")
                    width = int(raw)
                    p.expect(",")
                elif transform not in TIME_TRANSFORMS:
                    raise InvalidSchemaError(
                        f"unknown partition transform {name!r}",
                        hint="use year(), month(), day(), hour(), bucket(N, col) or truncate(W, col)",
                    )
                column = p.name()
                p.expect(")")
                out.append(PartitionField(column, transform, width))  # type: ignore[arg-type]
            else:
                out.append(PartitionField(name))
            if not p.at_end():
                p.expect(",")
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
        elif pf.transform in WIDTH_TRANSFORMS:
            _check_width_transform(pf, t)
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


def _check_width_transform(pf: PartitionField, t: pa.DataType) -> None:
    """Iceberg's bucket accepts ints, longs, decimals, dates, times, timestamps, strings and binary; truncate
    ints, longs, decimals, strings and binary."""
    if pf.width is None or pf.width < 1:
        raise InvalidSchemaError(f"{pf.transform}({pf.column}) needs a width: {pf.transform}(N, {pf.column})")
    ok = pa.types.is_integer(t) or pa.types.is_decimal(t) or pa.types.is_string(t) or pa.types.is_binary(t)
    if pf.transform == "bucket":
        ok = ok or pa.types.is_date(t) or pa.types.is_timestamp(t) or pa.types.is_time(t)
    if not ok:
        raise InvalidSchemaError(f"cannot partition by {pf}: {pf.column!r} is {type_name(t)}")


def validate_keys(schema: pa.Schema, keys: Sequence[str]) -> None:
    twice = sorted({k for k in keys if list(keys).count(k) > 1})
    if twice:
        raise InvalidSchemaError(f"key column(s) {', '.join(twice)} given more than once")
    for k in keys:
        if schema.get_field_index(k) < 0:
            raise InvalidSchemaError(f"key column {k!r} is not in the schema")


def _castable(src: pa.DataType, dst: pa.DataType) -> bool:
    """Casts we accept without asking: widening numbers, string and binary flavours, timestamp units/zones,
    list flavours, and the same casts inside structs (by field name; a field missing from the data is NULL),
    lists and maps."""
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
    if (any(f(src) for f in binaryish) or pa.types.is_fixed_size_binary(src)) and any(f(dst) for f in binaryish):
        return True
    if pa.types.is_timestamp(src) and pa.types.is_timestamp(dst):
        return (src.tz is None) == (dst.tz is None)
    if pa.types.is_time(src) and pa.types.is_time(dst):
        return True
    if pa.types.is_struct(src) and pa.types.is_struct(dst):
        wanted = {dst.field(i).name: dst.field(i) for i in range(dst.num_fields)}
        given = [src.field(i) for i in range(src.num_fields)]
        return all(f.name in wanted and _castable(f.type, wanted[f.name].type) for f in given)
    if pa.types.is_map(src) and pa.types.is_map(dst):
        return _castable(src.key_type, dst.key_type) and _castable(src.item_type, dst.item_type)
    if _is_list(src) and (pa.types.is_list(dst) or pa.types.is_large_list(dst)):
        return _castable(src.value_type, dst.value_type)
    if pa.types.is_fixed_size_list(src) and pa.types.is_fixed_size_list(dst):
        return src.list_size == dst.list_size and _castable(src.value_type, dst.value_type)
    return pa.types.is_date(src) and pa.types.is_date(dst)


def _is_list(t: pa.DataType) -> bool:
    return pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)


def _nested_nulls(arr: pa.Array, t: pa.DataType, path: str) -> str | None:
    """The path of the first field declared ``not null`` inside a nested column that holds a NULL."""
    if isinstance(arr, pa.ChunkedArray):
        for chunk in arr.chunks:
            found = _nested_nulls(chunk, t, path)
            if found:
                return found
        return None
    if pa.types.is_struct(t):
        for i in range(t.num_fields):
            f = t.field(i)
            child = arr.field(i)
            valid = child.is_valid()
            if not f.nullable:  # a NULL inside a NULL struct is no value at all
                if pc.any(pc.and_(pc.invert(valid), arr.is_valid())).as_py():
                    return f"{path}.{f.name}"
            found = _nested_nulls(child, f.type, f"{path}.{f.name}")
            if found:
                return found
    elif _is_list(t) or pa.types.is_map(t):
        values = arr.flatten() if not pa.types.is_map(t) else arr.items
        item = t.item_field if pa.types.is_map(t) else t.value_field
        if not item.nullable and values.null_count:
            return f"{path}[]"
        return _nested_nulls(values, item.type, f"{path}[]")
    return None


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
        if pa.types.is_nested(field.type):
            inner = _nested_nulls(col, field.type, field.name)
            if inner:
                problems.append(f"{inner} is declared not null but holds null(s)")
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
