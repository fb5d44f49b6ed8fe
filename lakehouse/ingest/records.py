"""Turning raw records into Arrow rows of a table's schema, or into quarantine entries with a reason.

Columns are converted vectorised first (pyarrow, C speed); only a column that fails falls back to per-value
coercion, which finds the offending rows. Coercions are lossless only: ints from integral strings or floats,
floats from ints or numeric strings, ISO-8601 timestamps with any zone normalised to UTC (a timestamp without
a zone is taken as UTC), dates from ISO dates, booleans from true/false/1/0. Everything else is an error
naming the field.

    >>> import pyarrow as pa
    >>> p = RecordParser(pa.schema([("id", pa.int64()), ("ts", pa.timestamp("us", tz="UTC"))]))
    >>> r = p.parse([RawRecord(b'{"id": "7", "ts": "2026-01-01T01:00:00+01:00"}', "s", 0),
    ...              RawRecord(b'{"id": "x"}', "s", 1)])
    >>> r.good.to_pylist()[0]["id"], r.bad[0].error
    (7, "field 'id': 'x' is not an integer")
"""

from __future__ import annotations

import datetime as dt
import io
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation, localcontext
from typing import Any, Literal

import orjson
import pyarrow as pa
import pyarrow.compute as pc
from pyarrow import json as pa_json

from lakehouse.schema import quote_name, type_name

NewFields = Literal["ignore", "add"]


@dataclass(frozen=True)
class RawRecord:
    """One record as it came from a source, with where it came from."""

    payload: bytes | str | Mapping[str, Any]
    source: str
    """Checkpoint key of the source stream, e.g. ``kafka:events:0`` or ``file:/data/x.ndjson``."""
    position: int
    """Offset (Kafka) or record number (file) within the source."""
    problem: str | None = None
    """Why the source could not make a record of it (a CSV row with more fields than its header, bytes that are
    not UTF-8): it goes to the quarantine with this reason."""

    def raw_text(self) -> str:
        if isinstance(self.payload, bytes):
            return self.payload.decode("utf-8", errors="replace")
        if isinstance(self.payload, str):
            return self.payload
        return orjson.dumps(self.payload, default=str).decode()

    def size(self) -> int:
        return len(self.payload) if isinstance(self.payload, bytes | str) else 64 * max(1, len(self.payload))


@dataclass(frozen=True)
class BadRecord:
    record: RawRecord
    error: str


@dataclass
class ParseResult:
    good: pa.Table
    good_positions: list[tuple[str, int]]
    bad: list[BadRecord]
    new_fields: list[pa.Field] = field(default_factory=list)


class _Reject(ValueError):
    def __init__(self, message: str, path: str = "") -> None:
        super().__init__(message)
        self.path = path
        """Where inside a nested value (``.inner.f``, ``[2]``, ``{'k'}``), empty at the top."""

    def inside(self, step: str) -> _Reject:
        return _Reject(str(self), step + self.path)


def _decode(record: RawRecord) -> dict[str, Any]:
    if record.problem is not None:
        raise _Reject(record.problem)
    payload = record.payload
    if isinstance(payload, Mapping):
        _holds_float(dict(payload))  # nested too deep: refused
        return dict(payload)
    try:
        value = orjson.loads(payload)
    except orjson.JSONDecodeError as e:
        raise _Reject(f"not valid JSON: {e}") from None
    if not isinstance(value, dict):
        raise _Reject(f"a record must be a JSON object, not {type(value).__name__}")
    if _holds_float(value):
        # orjson reads every number with a fraction or an exponent, and every integer past 64 bits, as a float:
        # 12345678901234567890.12 for a decimal(38,2) would arrive rounded. Read again with each such number
        # exact (a Decimal; integers as Python's), and let each column's conversion decide what fits
        import json

        value = json.loads(payload, parse_float=Decimal)
    return value


def _shown(v: Any) -> str:
    """A value in a quarantine reason: a JSON number as its digits (1.5, not Decimal('1.5')), else its repr."""
    return str(v) if isinstance(v, Decimal) else repr(v)


MAX_DEPTH = 32
"""Objects and arrays nested deeper than this in one record: the record is quarantined. A column of such a type
would be one the formats cannot store (delta-rs reads no schema nested past ~50 levels back, and a table whose
log holds one cannot be opened again), and deep values cost recursion in every reader."""


def _holds_float(value: Any) -> bool:
    """Whether a decoded record holds a float anywhere (walked without recursion); raises :class:`_Reject` for
    one nested more than :data:`MAX_DEPTH` levels."""
    found = False
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        v, depth = stack.pop()
        if isinstance(v, float):
            found = True
        elif isinstance(v, dict | list):
            if depth >= MAX_DEPTH:
                raise _Reject(f"the record nests objects or arrays more than {MAX_DEPTH} levels deep")
            stack.extend((x, depth + 1) for x in (v.values() if isinstance(v, dict) else v))
    return found


MAX_INT_DIGITS = 40
"""Digits beyond which a number is no integer any column holds (uint64 has 20): refused before it is expanded."""


def _to_int(v: Any) -> int:
    if isinstance(v, bool):
        raise _Reject(f"{_shown(v)} is a boolean, not an integer")
    if isinstance(v, int):
        return v
    if isinstance(v, float):
        if v.is_integer():
            return int(v)
        raise _Reject(f"{_shown(v)} is not an integer")
    if isinstance(v, Decimal | str):
        text = str(v).strip()
        if not text.isascii() or "_" in text:  # Python's int() takes "1_000" and digits of every script
            raise _Reject(f"{_shown(v)} is not an integer")
        try:
            return int(text)
        except ValueError:
            try:
                d = Decimal(text)  # exact: 1.0000000000000001 is no integer, 9007199254740993.0 is that one
            except InvalidOperation:
                raise _Reject(f"{_shown(v)} is not an integer") from None
            if d.is_finite() and d.adjusted() > MAX_INT_DIGITS:  # 1e99999999: int() of it would take hours
                raise _Reject(f"{_shown(v)} is too large for an integer column") from None
            if d.is_finite() and d == d.to_integral_value():
                return int(d)
            raise _Reject(f"{_shown(v)} is not an integer") from None
    raise _Reject(f"{_shown(v)} is not an integer")


def _to_float(v: Any) -> float:
    if isinstance(v, bool):
        raise _Reject(f"{_shown(v)} is a boolean, not a number")
    if isinstance(v, float):
        return v
    if isinstance(v, int | Decimal | str):
        try:
            f = float(v.strip()) if isinstance(v, str) else float(v)
        except (ValueError, OverflowError):
            raise _Reject(f"{_shown(v)} is not a number") from None
        # a finite number past float64's range would become an infinity: only "inf" spelled out is one
        if math.isinf(f) and not (isinstance(v, str) and "inf" in v.lower()):
            raise _Reject(f"{_shown(v)} is out of the range of a 64-bit float")
        return f
    raise _Reject(f"{_shown(v)} is not a number")


def _to_bool(v: Any) -> bool:
    if isinstance(v, bool):
        return v
    if isinstance(v, int) and v in (0, 1):
        return bool(v)
    if isinstance(v, str) and v.strip().lower() in ("true", "false", "1", "0", "t", "f", "yes", "no"):
        return v.strip().lower() in ("true", "1", "t", "yes")
    raise _Reject(f"{_shown(v)} is not a boolean")


_FRACTION = re.compile(r"\d[.,](\d{7,})")


def _to_timestamp(v: Any, tz: str | None) -> dt.datetime:
    if isinstance(v, dt.datetime):
        t = v
    elif isinstance(v, str):
        fraction = _FRACTION.search(v)
        if fraction and fraction.group(1)[6:].strip("0"):  # Python would drop the digits past microseconds
            raise _Reject(f"{_shown(v)} is finer than the microseconds a timestamp column holds")
        try:
            t = dt.datetime.fromisoformat(v.strip().replace("Z", "+00:00"))
        except ValueError:
            raise _Reject(f"{_shown(v)} is not an ISO-8601 timestamp") from None
    else:
        raise _Reject(f"{_shown(v)} is not an ISO-8601 timestamp string")
    if tz is None:
        return t.astimezone(dt.UTC).replace(tzinfo=None) if t.tzinfo else t
    return t.replace(tzinfo=dt.UTC) if t.tzinfo is None else t.astimezone(dt.UTC)


def _to_date(v: Any) -> dt.date:
    if isinstance(v, dt.date) and not isinstance(v, dt.datetime):
        return v
    if isinstance(v, str):
        try:
            return dt.date.fromisoformat(v.strip())
        except ValueError:
            raise _Reject(f"{_shown(v)} is not an ISO-8601 date") from None
    raise _Reject(f"{_shown(v)} is not an ISO-8601 date string")


def _to_str(v: Any) -> str:
    if isinstance(v, str):
        return v
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | Decimal):  # a JSON number's digits as they came (an integer past 64 bits too)
        return str(v)
    if isinstance(v, float):
        return orjson.dumps(v).decode()
    raise _Reject(f"{type(v).__name__} value is not a string")


def _to_decimal(v: Any, t: Any) -> Decimal:
    if isinstance(v, bool):
        raise _Reject(f"{_shown(v)} is not a decimal")
    try:
        d = Decimal(str(v).strip())
    except InvalidOperation:
        raise _Reject(f"{_shown(v)} is not a decimal") from None
    if not d.is_finite():
        raise _Reject(f"{_shown(v)} is not a finite decimal")
    if d and d.adjusted() >= t.precision - t.scale:  # more integer digits than the type holds (1e200)
        raise _Reject(f"{_shown(v)} does not fit decimal({t.precision},{t.scale})")
    with localcontext(prec=100):  # 38 digits and more: the default context (28) would round
        try:
            exact = d == d.quantize(Decimal(1).scaleb(-t.scale))
        except InvalidOperation:  # beyond the context's precision: not one of the type's values either
            exact = False
        if not exact:
            raise _Reject(f"{_shown(v)} has more than {t.scale} decimal places")
    return d


def _to_time(v: Any) -> dt.time:
    if isinstance(v, dt.time):
        return v
    if isinstance(v, str):
        try:
            t = dt.time.fromisoformat(v.strip())
        except ValueError:
            raise _Reject(f"{_shown(v)} is not an ISO-8601 time") from None
        if t.tzinfo is not None:
            raise _Reject(f"{_shown(v)} has a time zone; a time column holds local times")
        return t
    raise _Reject(f"{_shown(v)} is not an ISO-8601 time string")


def _name_step(name: str) -> str:
    from lakehouse.schema import quote_name

    return "." + quote_name(name)


def _coerce_nested(v: Any, t: pa.DataType) -> Any:
    """A JSON object into a struct (every key a field of it), a JSON array into a list, a JSON object (or an
    array of [key, value] pairs) into a map; each value coerced losslessly in turn."""
    if pa.types.is_struct(t):
        if not isinstance(v, Mapping):
            raise _Reject(f"{_short(v)} is not a JSON object")
        fields = {t.field(i).name: t.field(i) for i in range(t.num_fields)}
        unknown = [k for k in v if k not in fields]
        if unknown:
            raise _Reject(f"unknown field(s) {', '.join(repr(k) for k in unknown)} (a nested value must fit exactly)")
        out: dict[str, Any] = {}
        for name, f in fields.items():
            try:
                out[name] = _coerce_or_null(v.get(name), f)
            except _Reject as e:
                raise e.inside(_name_step(name)) from None
        return out
    if pa.types.is_map(t):
        if isinstance(v, Mapping):
            pairs = list(v.items())
        elif isinstance(v, list) and all(isinstance(p, list | tuple) and len(p) == 2 for p in v):
            pairs = [(p[0], p[1]) for p in v]
        else:
            raise _Reject(f"{_short(v)} is not a JSON object (or an array of [key, value] pairs)")
        items: list[tuple[Any, Any]] = []
        for k, x in pairs:
            if k is None:
                raise _Reject("a map key is null")
            try:
                key = coerce_value(k, t.key_type)
            except _Reject as e:
                raise e.inside(f"{{{k!r}}}") from None
            try:
                items.append((key, _coerce_or_null(x, t.item_field)))
            except _Reject as e:
                raise e.inside(f"[{k!r}]") from None
        return items
    if not isinstance(v, list):
        raise _Reject(f"{_short(v)} is not a JSON array")
    if pa.types.is_fixed_size_list(t) and len(v) != t.list_size:
        raise _Reject(f"an array of {len(v)} values does not fit a list of exactly {t.list_size}")
    values = []
    for i, x in enumerate(v):
        try:
            values.append(_coerce_or_null(x, t.value_field))
        except _Reject as e:
            raise e.inside(f"[{i}]") from None
    return values


def _coerce_or_null(v: Any, f: pa.Field) -> Any:
    if v is None:
        if not f.nullable:
            raise _Reject("a required value is null or missing")
        return None
    return coerce_value(v, f.type)


def _short(v: Any) -> str:
    text = orjson.dumps(v, default=str).decode()
    return text if len(text) <= 60 else text[:57] + "..."


FLOAT32_MAX = 3.4028234663852886e38


def coerce_value(v: Any, t: pa.DataType) -> Any:
    """Coerce one JSON value to a Python value of Arrow type ``t`` (lossless only; nested types recursively)."""
    if pa.types.is_nested(t):
        return _coerce_nested(v, t)
    if pa.types.is_integer(t):
        i = _to_int(v)
        info = (t.bit_width, pa.types.is_signed_integer(t))
        lo, hi = (-(2 ** (info[0] - 1)), 2 ** (info[0] - 1) - 1) if info[1] else (0, 2 ** info[0] - 1)
        if not lo <= i <= hi:
            raise _Reject(f"{_shown(v)} does not fit {type_name(t)}")
        return i
    if pa.types.is_floating(t):
        f = _to_float(v)
        if t.bit_width == 32 and math.isfinite(f) and abs(f) > FLOAT32_MAX:  # would be stored as an infinity
            raise _Reject(f"{_shown(v)} is out of the range of a 32-bit float")
        return f
    if pa.types.is_boolean(t):
        return _to_bool(v)
    if pa.types.is_timestamp(t):
        return _to_timestamp(v, t.tz)
    if pa.types.is_date(t):
        return _to_date(v)
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return _to_str(v)
    if pa.types.is_decimal(t):
        d = _to_decimal(v, t)
        with localcontext(prec=100):
            q = d.quantize(Decimal(1).scaleb(-t.scale))
        if q and len(q.as_tuple().digits) > t.precision:
            raise _Reject(f"{_shown(v)} does not fit {type_name(t)}")
        return d
    if pa.types.is_time(t):
        return _to_time(v)
    if (
        pa.types.is_binary(t)
        or pa.types.is_large_binary(t)
        or pa.types.is_binary_view(t)
        or pa.types.is_fixed_size_binary(t)
    ):
        if not isinstance(v, str):
            raise _Reject("binary values must be strings")
        b = v.encode()
        if pa.types.is_fixed_size_binary(t) and len(b) != t.byte_width:
            raise _Reject(f"{_shown(v)} is {len(b)} bytes, the column holds exactly {t.byte_width}")
        return b
    if pa.types.is_duration(t):
        if isinstance(v, bool) or not isinstance(v, int):
            raise _Reject(f"{_shown(v)} is not a whole number of {t.unit}")
        return v
    return pa.scalar(v, type=t).as_py()


def infer_type(values: Sequence[Any]) -> pa.DataType | None:
    """The Arrow type for a new column from its JSON values: strings for anything mixed, structs and lists for
    objects and arrays; None where no column type fits (only empty objects, or field names a column cannot
    have)."""
    present = [v for v in values if v is not None]
    try:
        t = pa.array(present).type if present else pa.string()
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return pa.string()
    return _widened(t)


def _widened(t: pa.DataType) -> pa.DataType | None:
    """A JSON value type as a column type: whole numbers int64, numbers float64, objects structs and arrays lists
    of the same (nested to any depth); None where no column type fits (nothing but nulls, an empty object)."""
    if pa.types.is_integer(t):
        return pa.int64()
    if pa.types.is_floating(t) or pa.types.is_decimal(t):  # JSON numbers with a fraction arrive as Decimals
        return pa.float64()
    if pa.types.is_boolean(t):
        return pa.bool_()
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return pa.string()
    if pa.types.is_struct(t):
        fields = [pa.field(f.name, _widened(f.type) or pa.string(), nullable=True) for f in t]
        names = [f.name for f in fields]
        # a struct's fields differing only in case are one to Delta and to DuckDB (which reads the second as `a_1`)
        distinct = len({n.lower() for n in names}) == len(names)
        return pa.struct(fields) if fields and distinct and all(_valid_name(n) for n in names) else None
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        item = _widened(t.value_type)
        return pa.list_(item or pa.string())
    return None


class RecordParser:
    """Parses raw records against a schema; unknown fields are ignored or proposed as new columns."""

    def __init__(self, schema: pa.Schema, *, new_fields: NewFields = "ignore") -> None:
        self.schema = schema
        self.new_fields = new_fields

    def parse(self, records: Sequence[RawRecord]) -> ParseResult:
        fast = self._parse_clean_batch(records)
        if fast is not None:
            return ParseResult(good=fast, good_positions=[(r.source, r.position) for r in records], bad=[])
        return self._parse_records(records)

    def _parse_clean_batch(self, records: Sequence[RawRecord]) -> pa.Table | None:
        """All-good batches of JSON bytes go through Arrow's C++ JSON reader in one call; any problem
        (a bad record, a type needing coercion, an unknown field under new_fields=add) returns None and
        the per-record path takes over, which finds and quarantines the offenders."""
        if not records or not all(
            isinstance(r.payload, bytes) and r.payload.strip() and b"\n" not in r.payload and b"\r" not in r.payload
            for r in records
        ):
            return None
        if any(pa.types.is_nested(f.type) for f in self.schema):
            return None  # the JSON reader would drop unknown nested keys and convert silently: value by value
        read_schema = pa.schema([pa.field(f.name, pa.string() if _needs_cast(f.type) else f.type) for f in self.schema])
        behavior = "error" if self.new_fields == "add" else "ignore"
        try:
            raw = pa_json.read_json(
                io.BytesIO(b"\n".join(r.payload for r in records)),  # type: ignore[misc]
                read_options=pa_json.ReadOptions(use_threads=True, block_size=1 << 24),
                parse_options=pa_json.ParseOptions(explicit_schema=read_schema, unexpected_field_behavior=behavior),
            )
            if raw.num_rows != len(records):
                return None
            # a record none of whose fields is a column reads as a row of NULLs: the per-record path decides
            if raw.num_columns and _any_all_null_row(raw):
                return None
            raw.validate(full=True)  # the reader copies string bytes as they are: invalid UTF-8 is refused here
            columns = []
            for f in self.schema:
                col = raw.column(f.name)
                if not col.type.equals(f.type):
                    col = pc.cast(col, f.type)
                if not f.nullable and col.null_count:
                    return None
                if not _in_python_range(col):
                    return None
                # the reader takes a bare NaN, and turns 1e39 into a 32-bit infinity: the per-value path decides
                if pa.types.is_floating(f.type) and pc.any(pc.invert(pc.is_finite(col))).as_py():
                    return None
                columns.append(col)
            return pa.Table.from_arrays(columns, schema=self.schema)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, KeyError):
            return None

    def _parse_records(self, records: Sequence[RawRecord]) -> ParseResult:
        dicts: list[dict[str, Any] | None] = []
        errors: dict[int, str] = {}
        known = set(self.schema.names)
        for i, r in enumerate(records):
            try:
                decoded = _decode(r)
            except _Reject as e:
                dicts.append(None)
                errors[i] = str(e)
                continue
            dicts.append(decoded)
            if decoded and self.new_fields == "ignore" and known.isdisjoint(decoded):  # each value would be dropped
                shown = ", ".join(map(repr, list(decoded)[:5])) + (", ..." if len(decoded) > 5 else "")
                errors[i] = f"none of its fields ({shown}) is a column of the table (names are case-sensitive)"
        columns: list[pa.Array] = []
        for f in self.schema:
            values = [d.get(f.name) if d is not None else None for d in dicts]
            columns.append(self._column(f, values, errors))
        new: list[pa.Field] = []
        if self.new_fields == "add":
            # proposed from the records that are otherwise good (a field only a quarantined record has adds no
            # column); a name that differs from a column, or another new name, only in case is no new column
            # (Delta's names are case-insensitive): its record goes to the quarantine
            folded = {n.lower(): n for n in self.schema.names}
            extra: dict[str, None] = {}
            for i, d in enumerate(dicts):
                if d is None or i in errors:
                    continue
                for k in d:
                    if k in folded.values() or k in extra or not _valid_name(k):
                        continue
                    if k.lower() in folded:
                        errors[i] = f"field {k!r} differs from column {folded[k.lower()]!r} only in case"
                        break
                    folded[k.lower()] = k
                    extra[k] = None
            for name in extra:
                values = [d.get(name) if d is not None and i not in errors else None for i, d in enumerate(dicts)]
                if all(v is None for v in values):
                    continue
                t = infer_type(values)
                if t is None:
                    for i, v in enumerate(values):
                        if v is not None:
                            errors[i] = (
                                f"no column type fits field {name!r} ({_shown(v)}: an empty object, a field name "
                                "a column cannot have, or names differing only in case); no column added for it"
                            )
                    continue
                f = pa.field(name, t, nullable=True)
                new.append(f)
                columns.append(self._column(f, values, errors))
        schema = pa.schema(list(self.schema) + new)
        keep = [i not in errors for i in range(len(records))]
        table = pa.Table.from_arrays(columns, schema=schema).filter(pa.array(keep, pa.bool_()))
        return ParseResult(
            good=table,
            good_positions=[(r.source, r.position) for r, k in zip(records, keep, strict=True) if k],
            bad=[BadRecord(records[i], msg) for i, msg in sorted(errors.items())],
            new_fields=new,
        )

    def _column(self, f: pa.Field, values: list[Any], errors: dict[int, str]) -> pa.Array:
        t = f.type
        arr = _fast_array(values, t)
        if arr is None:
            out: list[Any] = []
            for i, v in enumerate(values):
                if v is None or i in errors:
                    out.append(None)
                    continue
                try:
                    out.append(coerce_value(v, t))
                except _Reject as e:
                    where = quote_name(f.name) + e.path if e.path else f.name
                    errors.setdefault(i, f"field {where!r}: {e}")
                    out.append(None)
                except (pa.ArrowException, TypeError, ValueError, OverflowError) as e:
                    errors.setdefault(i, f"field {f.name!r}: {_shown(v)} does not fit {type_name(t)} ({e})")
                    out.append(None)
            arr = pa.array(out, type=t)
        if not f.nullable and arr.null_count:
            for i, valid in enumerate(arr.is_valid().to_pylist()):
                if not valid:
                    errors.setdefault(i, f"field {f.name!r} is required but missing or null")
        return arr


def _fast_array(values: list[Any], t: pa.DataType) -> pa.Array | None:
    """Vectorised conversion when every value already has a fitting JSON type; None to fall back."""
    if pa.types.is_nested(t):
        return None  # pa.array() would ignore unknown keys and truncate numbers inside: value by value
    try:
        if pa.types.is_timestamp(t) or pa.types.is_date(t):
            if not all(v is None or isinstance(v, str) for v in values):
                return None
            cast = pc.cast(pa.array(values, type=pa.string()), t)
            return cast if _in_python_range(cast) else None
        if pa.types.is_string(t):
            if not all(v is None or isinstance(v, str) for v in values):
                return None
            return pa.array(values, type=t)
        if pa.types.is_integer(t):
            # pa.array() would silently truncate 1.5 to 1: only exact ints take this path
            if not all(v is None or type(v) is int for v in values):
                return None
        if pa.types.is_floating(t) and any(isinstance(v, bool | str) for v in values):
            return None
        if pa.types.is_boolean(t) and not all(v is None or isinstance(v, bool) for v in values):
            return None
        return pa.array(values, type=t)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OverflowError, TypeError, ValueError):
        return None


def _any_all_null_row(table: pa.Table) -> bool:
    """Whether some row of ``table`` is NULL in every column."""
    if any(c.null_count == 0 for c in table.columns):
        return False
    every = pc.is_null(table.column(0))
    for c in table.columns[1:]:
        every = pc.and_(every, pc.is_null(c))
    return bool(pc.any(every).as_py())


def _in_python_range(col: pa.Array | pa.ChunkedArray) -> bool:
    """Whether a date or timestamp column's values lie in years 1 to 9999: Arrow's casts take year 0 and beyond
    9999, which Python (and lakehouse's readers) cannot hold; the per-value path quarantines such a record."""
    t = col.type
    if not (pa.types.is_date(t) or pa.types.is_timestamp(t)) or len(col) == col.null_count:
        return True
    if pa.types.is_date(t):
        lo, hi = pa.scalar(dt.date(1, 1, 1), t), pa.scalar(dt.date(9999, 12, 31), t)
    else:
        zone = dt.UTC if t.tz else None
        lo = pa.scalar(dt.datetime(1, 1, 1, tzinfo=zone), pa.timestamp("us", zone and "UTC")).cast(t)
        hi = pa.scalar(dt.datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=zone), lo.type).cast(t)
    bounds = pc.min_max(col)
    return bool(pc.greater_equal(bounds["min"], lo).as_py() and pc.less_equal(bounds["max"], hi).as_py())


def _needs_cast(t: pa.DataType) -> bool:
    """Types the JSON reader cannot produce from JSON text directly (read as strings, then cast)."""
    return pa.types.is_timestamp(t) or pa.types.is_date(t) or pa.types.is_decimal(t) or pa.types.is_binary(t)


def _valid_name(name: str) -> bool:
    from lakehouse.errors import InvalidSchemaError
    from lakehouse.schema import check_column_name

    try:
        check_column_name(name)
    except InvalidSchemaError:
        return False
    return True
