"""Order-independent fingerprints of table contents, computed from Arrow data only (no lakehouse code).

Every value gets a canonical encoding that keeps what must survive exactly:

* floats by their bits' meaning: ``-0.0`` differs from ``0.0``, every NaN is ``nan``, infinities are kept;
* timestamps as integer nanoseconds since the epoch (Python ints: no overflow for year 1 or 9999), whatever the
  unit; a time zone marks the type, not the value, so it is not part of the encoding;
* decimals as their exact text, dates as days, binary as hex, strings as themselves (long ones hashed);
* structs by field name, lists in order, maps as the sorted set of their entries.

A table's fingerprint is the multiset of its rows (columns matched by name) plus one multiset per column, so a
comparison tells which column differs. Long values are hashed so a 1 MB string costs 32 bytes in the multiset.
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

_LONG = 256
_NS_PER = {"s": 1_000_000_000, "ms": 1_000_000, "us": 1_000, "ns": 1}


def _short(kind: str, text: str) -> tuple[str, str]:
    if len(text) > _LONG:
        return (kind + "#", f"{len(text)}:{hashlib.sha256(text.encode('utf-8', 'surrogatepass')).hexdigest()}")
    return (kind, text)


def _float(v: float) -> tuple[str, str]:
    if math.isnan(v):
        return ("f", "nan")
    return ("f", float(v).hex())


def canonical_array(arr: pa.Array | pa.ChunkedArray) -> list[Any]:
    """Canonical, hashable encodings of every value of ``arr`` (None for NULL)."""
    if isinstance(arr, pa.ChunkedArray):
        out: list[Any] = []
        for chunk in arr.chunks:
            out.extend(canonical_array(chunk))
        return out
    t = arr.type
    n = len(arr)
    valid = arr.is_valid().to_pylist() if n else []
    if pa.types.is_dictionary(t):
        return canonical_array(arr.dictionary_decode())
    if isinstance(t, pa.ExtensionType):
        return canonical_array(arr.storage)
    if pa.types.is_null(t):
        return [None] * n
    if pa.types.is_timestamp(t):
        factor = _NS_PER[t.unit]
        ints = arr.view(pa.int64()).to_pylist()
        return [("t", v * factor) if ok else None for v, ok in zip(ints, valid, strict=True)]
    if pa.types.is_date32(t):
        return [("d", v) if ok else None for v, ok in zip(arr.view(pa.int32()).to_pylist(), valid, strict=True)]
    if pa.types.is_date64(t):
        ints = arr.view(pa.int64()).to_pylist()
        return [("d", v // 86_400_000) if ok else None for v, ok in zip(ints, valid, strict=True)]
    if pa.types.is_time(t):
        factor = _NS_PER[t.unit]
        ints = arr.cast(pa.int64() if t.bit_width == 64 else pa.int32()).to_pylist()
        return [("tm", v * factor) if ok else None for v, ok in zip(ints, valid, strict=True)]
    if pa.types.is_floating(t):
        if pa.types.is_float16(t):
            arr = arr.cast(pa.float32())
        return [_float(v) if v is not None else None for v in arr.to_pylist()]
    if pa.types.is_boolean(t):
        return [("b", v) if v is not None else None for v in arr.to_pylist()]
    if pa.types.is_integer(t):
        return [("i", v) if v is not None else None for v in arr.to_pylist()]
    if pa.types.is_decimal(t):
        return [("dec", str(v)) if v is not None else None for v in arr.to_pylist()]
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return [_short("s", v) if v is not None else None for v in arr.to_pylist()]
    if (
        pa.types.is_binary(t)
        or pa.types.is_large_binary(t)
        or pa.types.is_fixed_size_binary(t)
        or pa.types.is_binary_view(t)
    ):
        return [_short("x", v.hex()) if v is not None else None for v in arr.to_pylist()]
    if pa.types.is_struct(t):
        names = [t.field(i).name for i in range(t.num_fields)]
        children = [canonical_array(arr.field(i)) for i in range(t.num_fields)]
        return [
            ("st", tuple(sorted(zip(names, [c[i] for c in children], strict=True)))) if valid[i] else None
            for i in range(n)
        ]
    if pa.types.is_map(t):
        offsets = arr.offsets.to_pylist()
        keys = canonical_array(arr.keys)
        items = canonical_array(arr.items)
        out = []
        for i in range(n):
            if not valid[i]:
                out.append(None)
                continue
            lo, hi = offsets[i], offsets[i + 1]
            entries = [(keys[j], items[j]) for j in range(lo, hi)]
            out.append(("m", tuple(sorted(entries, key=repr))))
        return out
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        offsets = arr.offsets.to_pylist()
        values = canonical_array(arr.values)
        return [("l", tuple(values[offsets[i] : offsets[i + 1]])) if valid[i] else None for i in range(n)]
    if pa.types.is_fixed_size_list(t):
        size = t.list_size
        values = canonical_array(arr.values)
        start = arr.offset * size
        return [("l", tuple(values[start + i * size : start + (i + 1) * size])) if valid[i] else None for i in range(n)]
    if pa.types.is_list_view(t) or pa.types.is_large_list_view(t):
        return canonical_array(arr.cast(pa.large_list(t.value_type)))
    raise TypeError(f"fingerprint: no canonical encoding for {t}")


@dataclass(frozen=True)
class Fingerprint:
    columns: tuple[str, ...]
    rows: Counter[tuple[Any, ...]]
    per_column: dict[str, Counter[Any]]

    @property
    def num_rows(self) -> int:
        return sum(self.rows.values())

    @property
    def digest(self) -> str:
        h = hashlib.sha256()
        for row, count in sorted(((repr(r), c) for r, c in self.rows.items())):
            h.update(f"{row}*{count}\n".encode())
        return h.hexdigest()[:16]


def fingerprint(table: pa.Table | pa.RecordBatch, columns: Sequence[str] | None = None) -> Fingerprint:
    """The fingerprint of ``table`` over ``columns`` (default: all, matched by name, order ignored)."""
    if isinstance(table, pa.RecordBatch):
        table = pa.Table.from_batches([table])
    names = sorted(columns if columns is not None else table.column_names)
    encoded = {c: canonical_array(table.column(c)) for c in names}
    rows = Counter(zip(*(encoded[c] for c in names), strict=True)) if names else Counter()
    if not names:
        rows = Counter({(): table.num_rows}) if table.num_rows else Counter()
    return Fingerprint(tuple(names), rows, {c: Counter(v) for c, v in encoded.items()})


def _show(row: Any, limit: int = 300) -> str:
    text = repr(row)
    return text if len(text) <= limit else text[:limit] + "..."


def differences(actual: Fingerprint, expected: Fingerprint, *, limit: int = 5) -> list[str]:
    """Human-readable differences, empty when the fingerprints are equal."""
    out: list[str] = []
    if actual.columns != expected.columns:
        out.append(f"columns differ: got {list(actual.columns)}, expected {list(expected.columns)}")
        return out
    if actual.rows == expected.rows:
        return out
    out.append(f"rows: got {actual.num_rows}, expected {expected.num_rows}")
    for c in actual.columns:
        if actual.per_column[c] != expected.per_column[c]:
            extra = list((actual.per_column[c] - expected.per_column[c]).elements())[:limit]
            missing = list((expected.per_column[c] - actual.per_column[c]).elements())[:limit]
            out.append(f"column {c!r}: unexpected {_show(extra)}; missing {_show(missing)}")
    extra_rows = list((actual.rows - expected.rows).elements())[:limit]
    missing_rows = list((expected.rows - actual.rows).elements())[:limit]
    if extra_rows:
        out.append(f"unexpected rows: {_show(extra_rows, 1000)}")
    if missing_rows:
        out.append(f"missing rows: {_show(missing_rows, 1000)}")
    return out


def assert_same_rows(actual: pa.Table, expected: pa.Table, what: str, columns: Iterable[str] | None = None) -> None:
    """Fail with the differing columns and rows unless ``actual`` holds exactly ``expected``'s rows."""
    cols = list(columns) if columns is not None else None
    a, e = fingerprint(actual, cols), fingerprint(expected, cols)
    diff = differences(a, e)
    assert not diff, f"{what}: contents differ from the writer's own reading\n  " + "\n  ".join(diff)


def distinct(table: pa.Table) -> pa.Table:
    """``table`` with exact duplicate rows (by canonical encoding) collapsed to one, first occurrence kept."""
    fp_rows = list(zip(*(canonical_array(table.column(c)) for c in table.column_names), strict=True))
    seen: set[Any] = set()
    keep = []
    for i, r in enumerate(fp_rows):
        if r not in seen:
            seen.add(r)
            keep.append(i)
    return table.take(pa.array(keep, pa.int64()))


def null_count(table: pa.Table) -> int:
    return sum(pc.sum(pc.is_null(c)).as_py() or 0 for c in table.columns)
