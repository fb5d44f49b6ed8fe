"""Delta tables assembled by hand, per the Delta protocol (PROTOCOL.md of delta-io/delta), for what delta-rs
cannot write: logs of older writers without statistics, column mapping (name and id modes), deletion vectors
and table features lakehouse must refuse.

Data files are written with pyarrow; the log is JSON lines that this module writes itself (``protocol``,
``metaData``, ``add``, ``remove``, ``commitInfo``, ``domainMetadata``). Nothing of lakehouse is used here.
"""

from __future__ import annotations

import json
import os
import struct
import time
import uuid
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

# ---- Delta schema JSON from Arrow types ----------------------------------------------------------------------


def delta_type(t: pa.DataType) -> Any:
    """The Delta schema type (JSON) of an Arrow type."""
    if pa.types.is_boolean(t):
        return "boolean"
    if pa.types.is_int8(t):
        return "byte"
    if pa.types.is_int16(t):
        return "short"
    if pa.types.is_int32(t):
        return "integer"
    if pa.types.is_int64(t):
        return "long"
    if pa.types.is_float32(t):
        return "float"
    if pa.types.is_float64(t):
        return "double"
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return "string"
    if pa.types.is_binary(t) or pa.types.is_large_binary(t):
        return "binary"
    if pa.types.is_date32(t):
        return "date"
    if pa.types.is_timestamp(t):
        return "timestamp" if t.tz else "timestamp_ntz"
    if pa.types.is_decimal(t):
        return f"decimal({t.precision},{t.scale})"
    if pa.types.is_struct(t):
        return {"type": "struct", "fields": [delta_field(t.field(i)) for i in range(t.num_fields)]}
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return {"type": "array", "elementType": delta_type(t.value_type), "containsNull": True}
    if pa.types.is_map(t):
        return {
            "type": "map",
            "keyType": delta_type(t.key_type),
            "valueType": delta_type(t.item_type),
            "valueContainsNull": True,
        }
    raise TypeError(f"no Delta type for {t}")


def delta_field(f: pa.Field, metadata: Mapping[str, Any] | None = None) -> dict[str, Any]:
    return {"name": f.name, "type": delta_type(f.type), "nullable": f.nullable, "metadata": dict(metadata or {})}


def schema_string(schema: pa.Schema, metadata: Mapping[str, Mapping[str, Any]] | None = None) -> str:
    metadata = metadata or {}
    return json.dumps({"type": "struct", "fields": [delta_field(f, metadata.get(f.name)) for f in schema]})


# ---- deletion vectors (PROTOCOL.md "Deletion Vector Format") -----------------------------------------------

Z85 = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#"
DV_MAGIC = 1681511377


def z85_encode(data: bytes) -> str:
    """Z85 as Delta's Base85Codec does it: input padded with zeros to a multiple of 4 bytes."""
    padded = data + b"\0" * (-len(data) % 4)
    out = []
    for i in range(0, len(padded), 4):
        (value,) = struct.unpack(">I", padded[i : i + 4])
        chars = []
        for _ in range(5):
            value, rem = divmod(value, 85)
            chars.append(Z85[rem])
        out.append("".join(reversed(chars)))
    return "".join(out)


def roaring_bitmap_array(rows: Sequence[int]) -> bytes:
    """A RoaringBitmapArray in Delta's "portable" layout: magic, bitmap count (int64), then per 32-bit high key
    the key (int32) and a portable 32-bit roaring bitmap of the low halves (all little endian)."""
    from pyroaring import BitMap

    by_key: dict[int, list[int]] = {}
    for r in sorted(set(rows)):
        by_key.setdefault(r >> 32, []).append(r & 0xFFFFFFFF)
    out = struct.pack("<i", DV_MAGIC) + struct.pack("<q", len(by_key))
    for key in sorted(by_key):
        out += struct.pack("<i", key) + BitMap(by_key[key]).serialize()
    return out


def inline_dv(rows: Sequence[int]) -> dict[str, Any]:
    """A deletion vector descriptor of storage type ``i`` (inline in the log)."""
    data = roaring_bitmap_array(rows)
    return {
        "storageType": "i",
        "pathOrInlineDv": z85_encode(data),
        "sizeInBytes": len(data),
        "cardinality": len(set(rows)),
    }


def file_dv(table_dir: str, rows: Sequence[int]) -> dict[str, Any]:
    """A deletion vector written to ``deletion_vector_<uuid>.bin`` at the table root (storage type ``u``): format
    version byte 1, then the DV's size (int32 big endian), the DV, and its CRC-32 (big endian)."""
    data = roaring_bitmap_array(rows)
    ident = uuid.uuid4()
    with open(os.path.join(table_dir, f"deletion_vector_{ident}.bin"), "wb") as fh:
        fh.write(b"\x01" + struct.pack(">i", len(data)) + data + struct.pack(">I", zlib.crc32(data)))
    return {
        "storageType": "u",
        "pathOrInlineDv": z85_encode(ident.bytes),
        "offset": 1,
        "sizeInBytes": len(data),
        "cardinality": len(set(rows)),
    }


# ---- the log ------------------------------------------------------------------------------------------------


@dataclass
class DeltaLogWriter:
    """Writes a Delta table commit by commit: data files with pyarrow, log JSON by hand."""

    root: str
    version: int = -1
    clock_ms: int = field(default_factory=lambda: int(time.time() * 1000) - 3_600_000)

    def __post_init__(self) -> None:
        os.makedirs(os.path.join(self.root, "_delta_log"), exist_ok=True)

    def write_parquet(
        self,
        table: pa.Table,
        *,
        partition: Mapping[str, str | None] | None = None,
        name: str | None = None,
        **parquet_options: Any,
    ) -> str:
        """Write one data file (relative path returned) under hive-style partition directories."""
        rel_dir = "/".join(
            f"{k}={'__HIVE_DEFAULT_PARTITION__' if v is None else v}" for k, v in (partition or {}).items()
        )
        rel = f"{rel_dir + '/' if rel_dir else ''}{name or 'part-' + uuid.uuid4().hex}.parquet"
        path = os.path.join(self.root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        pq.write_table(table, path, **parquet_options)
        return rel

    def add(
        self,
        rel: str,
        *,
        partition: Mapping[str, str | None] | None = None,
        stats: Mapping[str, Any] | None = None,
        deletion_vector: Mapping[str, Any] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        action: dict[str, Any] = {
            "path": rel,
            "partitionValues": dict(partition or {}),
            "size": os.path.getsize(os.path.join(self.root, rel)),
            "modificationTime": self.clock_ms,
            "dataChange": True,
        }
        if stats is not None:
            action["stats"] = json.dumps(stats)
        if deletion_vector is not None:
            action["deletionVector"] = dict(deletion_vector)
        action.update(extra or {})
        return {"add": action}

    def remove(self, add_action: Mapping[str, Any]) -> dict[str, Any]:
        a = add_action["add"]
        out = {
            "path": a["path"],
            "deletionTimestamp": self.clock_ms,
            "dataChange": True,
            "extendedFileMetadata": True,
            "partitionValues": a["partitionValues"],
            "size": a["size"],
        }
        if "deletionVector" in a:
            out["deletionVector"] = a["deletionVector"]
        return {"remove": out}

    @staticmethod
    def protocol(
        reader: int = 1, writer: int = 2, *, reader_features: Sequence[str] = (), writer_features: Sequence[str] = ()
    ) -> dict[str, Any]:
        p: dict[str, Any] = {"minReaderVersion": reader, "minWriterVersion": writer}
        if reader >= 3:
            p["readerFeatures"] = list(reader_features)
        if writer >= 7:
            p["writerFeatures"] = list(writer_features)
        return {"protocol": p}

    def metadata(
        self,
        schema: pa.Schema,
        *,
        partition_columns: Sequence[str] = (),
        configuration: Mapping[str, str] | None = None,
        field_metadata: Mapping[str, Mapping[str, Any]] | None = None,
        table_id: str | None = None,
        schema_json: str | None = None,
    ) -> dict[str, Any]:
        return {
            "metaData": {
                "id": table_id or str(uuid.uuid4()),
                "format": {"provider": "parquet", "options": {}},
                "schemaString": schema_json or schema_string(schema, field_metadata),
                "partitionColumns": list(partition_columns),
                "configuration": dict(configuration or {}),
                "createdTime": self.clock_ms,
            }
        }

    def commit(
        self,
        actions: Sequence[Mapping[str, Any]],
        *,
        operation: str = "WRITE",
        info: Mapping[str, Any] | None = None,
        commit_info: bool = True,
    ) -> int:
        """Write the next commit file; ``commitInfo`` comes first (in-commit timestamps require it). Without
        ``commit_info`` (the protocol makes it optional; older and minimal writers leave it out) the commit's time
        is only its file's modification time, which is set to the writer's clock."""
        self.version += 1
        self.clock_ms += 1000
        lines = [json.dumps(a) for a in actions]
        if commit_info:
            provenance = {
                "timestamp": self.clock_ms,
                "operation": operation,
                "operationParameters": {},
                "engineInfo": "conformance-suite hand-written log",
                **(info or {}),
            }
            lines.insert(0, json.dumps({"commitInfo": provenance}))
        path = os.path.join(self.root, "_delta_log", f"{self.version:020d}.json")
        with open(path, "x") as fh:
            fh.write("\n".join(lines) + "\n")
        os.utime(path, (self.clock_ms / 1000, self.clock_ms / 1000))
        return self.version


def mapped_schema_json(schema: pa.Schema, mode: str) -> tuple[str, pa.Schema, int]:
    """The Delta schema string with column mapping metadata on every (nested) field, and the physical schema of
    the data files."""
    next_id = 0

    def walk(f: pa.Field) -> tuple[dict[str, Any], pa.Field]:
        nonlocal next_id
        next_id += 1
        fid = next_id
        pname = f"col-{uuid.uuid4()}"
        t = f.type
        if pa.types.is_struct(t):
            kids = [walk(t.field(i)) for i in range(t.num_fields)]
            dtype: Any = {"type": "struct", "fields": [k[0] for k in kids]}
            ptype: pa.DataType = pa.struct([k[1] for k in kids])
        else:
            dtype, ptype = delta_type(t), t
        meta = {"delta.columnMapping.id": fid, "delta.columnMapping.physicalName": pname}
        arrow_meta = {b"PARQUET:field_id": str(fid).encode()} if mode == "id" else None
        return (
            {"name": f.name, "type": dtype, "nullable": f.nullable, "metadata": meta},
            pa.field(pname, ptype, f.nullable, metadata=arrow_meta),
        )

    walked = [walk(f) for f in schema]
    return (
        json.dumps({"type": "struct", "fields": [w[0] for w in walked]}),
        pa.schema([w[1] for w in walked]),
        next_id,
    )


def _rename(arr: pa.Array, ptype: pa.DataType) -> pa.Array:
    if pa.types.is_struct(ptype):
        children = [_rename(arr.field(i), ptype.field(i).type) for i in range(ptype.num_fields)]
        return pa.StructArray.from_arrays(children, fields=list(ptype), mask=arr.is_null())
    return arr.cast(ptype)


def to_physical(table: pa.Table, physical: pa.Schema) -> pa.Table:
    """``table``'s columns under the physical names (same positions; struct fields renamed recursively)."""
    arrays = [_rename(c.combine_chunks(), f.type) for c, f in zip(table.columns, physical, strict=True)]
    return pa.Table.from_arrays(arrays, schema=physical)
