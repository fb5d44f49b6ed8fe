"""Delta tables from writers other than lakehouse: logs assembled per the Delta protocol over pyarrow-written
Parquet (older writers, Spark-style INT96, column mapping, deletion vectors, table features), and delta-rs with
its writer options. Each builder writes into an empty directory and returns a :class:`Foreign` whose expected
rows are what was put in (hand-written logs) or delta-rs's own reading (delta-rs tables).
"""

from __future__ import annotations

import datetime as dt
import decimal
import os
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from tests.conformance.delta_log import (
    DeltaLogWriter,
    file_dv,
    inline_dv,
    mapped_schema_json,
    to_physical,
)
from tests.conformance.harness import Foreign, duckdb_delta

UTC = dt.UTC
NAMES = ["", "a", "ab", "abc", None, "é", "日本", "abcd", "zz", "a b"]
FLOATS = [1.5, float("nan"), -0.0, 0.0, float("inf"), float("-inf"), None, 2.25, -7.5, 1e300]


def events(start: int, n: int, *, region: bool = True) -> pa.Table:
    """Deterministic rows: a key, short strings (empty and 1-3 characters among them), awkward floats, times."""
    ids = list(range(start, start + n))
    cols: dict[str, pa.Array] = {
        "id": pa.array(ids, pa.int64()),
        "name": pa.array([NAMES[i % len(NAMES)] for i in ids], pa.string()),
        "amount": pa.array([FLOATS[i % len(FLOATS)] for i in ids], pa.float64()),
        "ts": pa.array(
            [
                None if i % 11 == 5 else dt.datetime(2024, 1, 1, tzinfo=UTC) + dt.timedelta(hours=7 * i, microseconds=i)
                for i in ids
            ],
            pa.timestamp("us", tz="UTC"),
        ),
    }
    if region:
        cols["region"] = pa.array([("eu", "us", None)[i % 3] for i in ids], pa.string())
    return pa.table(cols)


def _stats(table: pa.Table) -> dict[str, Any]:
    return {"numRecords": table.num_rows}


def _with_duplicates(parts: list[pa.Table], rows: int = 3) -> list[pa.Table]:
    """One more part holding exact copies of the first rows of the first part (for dedup)."""
    return [*parts, parts[0].slice(0, rows)]


def _chunks(table: pa.Table, n: int) -> list[pa.Table]:
    size = -(-table.num_rows // n)
    return [table.slice(i, size) for i in range(0, table.num_rows, size)]


# ---- hand-written logs -------------------------------------------------------------------------------------


def legacy_no_stats(root: str) -> Foreign:
    """An older writer's table: protocol 1/2, partitioned by a string (a NULL partition too), one commit per
    small file, no statistics at all in the add actions, and no commitInfo in the commits that add them (its
    times are the commit files' modification times)."""
    w = DeltaLogWriter(root)
    data = events(0, 36)
    w.commit([w.protocol(1, 2), w.metadata(data.schema, partition_columns=["region"])], operation="CREATE TABLE")
    parts: list[pa.Table] = []
    for region in ("eu", "us", None):
        rows = data.filter(
            pa.compute.is_null(data["region"]) if region is None else pa.compute.equal(data["region"], region)
        )
        parts.extend(_chunks(rows, 3))
    parts = _with_duplicates(parts)
    for part in parts:
        region = part["region"][0].as_py()
        rel = w.write_parquet(part.drop_columns(["region"]), partition={"region": region})
        w.commit([w.add(rel, partition={"region": region})], commit_info=False)
    return Foreign(root, "delta", pa.concat_tables(parts), zorder=("id", "name"), key="id", reread=duckdb_delta)


def int96(root: str) -> Foreign:
    """Spark's legacy INT96 timestamps written by pyarrow, with 9999-12-31 and 0001-01-01 among the values, in
    several small files of a protocol 1/2 table (statistics: row counts only)."""
    w = DeltaLogWriter(root)
    extremes = [
        dt.datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        dt.datetime(1, 1, 1, tzinfo=UTC),
        dt.datetime(1582, 10, 4, 12, 0, tzinfo=UTC),
        dt.datetime(1677, 9, 21, 0, 12, 43, 145224, tzinfo=UTC),
        dt.datetime(2262, 4, 11, 23, 47, 16, 854776, tzinfo=UTC),
        dt.datetime(1970, 1, 1, tzinfo=UTC),
        None,
        dt.datetime(2024, 2, 29, 12, 34, 56, 789012, tzinfo=UTC),
    ]
    base = events(0, 24, region=False)
    ts = [extremes[i % len(extremes)] for i in range(base.num_rows)]
    data = base.set_column(base.schema.get_field_index("ts"), "ts", pa.array(ts, pa.timestamp("us", tz="UTC")))
    w.commit([w.protocol(1, 2), w.metadata(data.schema)], operation="CREATE TABLE")
    parts = _with_duplicates(_chunks(data, 4))
    for i, part in enumerate(parts):
        # like Spark's files: no ARROW:schema in the footer (all but one), so a reader sees bare INT96
        rel = w.write_parquet(part, use_deprecated_int96_timestamps=True, store_schema=i == 1)
        back = pq.read_table(os.path.join(root, rel), coerce_int96_timestamp_unit="us")
        assert back["ts"].cast(pa.int64()).equals(part["ts"].cast(pa.int64())), "fixture: pyarrow's INT96 lost values"
        assert pq.ParquetFile(os.path.join(root, rel)).schema.column(3).physical_type == "INT96"
        w.commit([w.add(rel, stats=_stats(part))])
    return Foreign(root, "delta", pa.concat_tables(parts), zorder=("id", "name"), key="id", reread=duckdb_delta)


def _awkward(n: int) -> pa.Table:
    """Every type pyarrow writes that Delta declares, with the values that must survive exactly."""
    big = "x" * (1 << 20)
    strings = ["", "a", "ab", None, "ü", "nul\x00byte", "😀", big]
    f64 = [float("nan"), -0.0, 0.0, float("inf"), float("-inf"), None, 5e-324, 1.7976931348623157e308]
    f32 = [float("nan"), -0.0, 0.0, float("inf"), float("-inf"), None, 1.401298464324817e-45, 3.4028234663852886e38]
    D = decimal.Decimal
    decs = {
        "d1": (pa.decimal128(1, 0), [D("9"), D("-9"), D("0"), None]),
        "d9": (pa.decimal128(9, 4), [D("99999.9999"), D("-0.0001"), D("0.0000"), None]),
        "d10": (pa.decimal128(10, 0), [D("9999999999"), D("-9999999999"), D("1"), None]),
        "d18": (pa.decimal128(18, 9), [D("999999999.999999999"), D("-0.000000001"), D("0E-9"), None]),
        "d19": (pa.decimal128(19, 2), [D("99999999999999999.99"), D("-99999999999999999.99"), D("0.01"), None]),
        "d38": (pa.decimal128(38, 10), [D("9" * 28 + "." + "9" * 10), D("-1." + "0" * 9 + "1"), D("0E-10"), None]),
        "d38_0": (pa.decimal128(38, 0), [D("9" * 38), D("-" + "9" * 38), D("0"), None]),
    }
    ids = list(range(n))
    cols: dict[str, pa.Array] = {
        "id": pa.array(ids, pa.int64()),
        "s": pa.array([strings[i % len(strings)] if i % 16 < 8 else strings[i % 7] for i in ids], pa.string()),
        "f64": pa.array([f64[i % len(f64)] for i in ids], pa.float64()),
        "f32": pa.array([f32[i % len(f32)] for i in ids], pa.float32()),
        "i8": pa.array([(-128, 127, 0, None)[i % 4] for i in ids], pa.int8()),
        "i16": pa.array([(-32768, 32767, 0, None)[i % 4] for i in ids], pa.int16()),
        "i32": pa.array([(-(2**31), 2**31 - 1, 0, None)[i % 4] for i in ids], pa.int32()),
        "i64": pa.array([(-(2**63), 2**63 - 1, 0, None)[i % 4] for i in ids], pa.int64()),
        "flag": pa.array([(True, False, None)[i % 3] for i in ids], pa.bool_()),
        "bin": pa.array([(b"", b"\x00\xff", None, bytes(range(256)) * 1200)[i % 4] for i in ids], pa.binary()),
        "day": pa.array(
            [
                (dt.date(1, 1, 1), dt.date(9999, 12, 31), dt.date(1970, 1, 1), None, dt.date(1582, 10, 15))[i % 5]
                for i in ids
            ],
            pa.date32(),
        ),
        "ts_us": pa.array(
            [
                (
                    dt.datetime(1, 1, 1, tzinfo=UTC),
                    dt.datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
                    None,
                    dt.datetime(2000, 1, 1, 0, 0, 0, 1, tzinfo=UTC),
                )[i % 4]
                for i in ids
            ],
            pa.timestamp("us", tz="UTC"),
        ),
        # nanosecond files (whole microseconds: Delta's timestamp holds microseconds)
        "ts_ns": pa.array(
            [
                (
                    dt.datetime(1677, 9, 22, tzinfo=UTC),
                    dt.datetime(2262, 4, 11, tzinfo=UTC),
                    None,
                    dt.datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC),
                )[i % 4]
                for i in ids
            ],
            pa.timestamp("us", tz="UTC"),
        ).cast(pa.timestamp("ns", tz="UTC")),
        "a.b": pa.array([i * 3 if i % 5 else None for i in ids], pa.int32()),
        "ünï": pa.array([("ä", "", None, "ß")[i % 4] for i in ids], pa.string()),
    }
    for name, (t, values) in decs.items():
        cols[name] = pa.array([values[i % len(values)] for i in ids], t)
    inner = pa.struct([("v", pa.float64())])
    nested_t = pa.struct(
        [
            ("x", pa.int32()),
            ("y", pa.struct([("z", pa.string()), ("w", pa.list_(pa.map_(pa.string(), inner)))])),
        ]
    )
    nested_values = [
        None,
        {"x": None, "y": None},
        {"x": 1, "y": {"z": None, "w": None}},
        {"x": 2, "y": {"z": "", "w": []}},
        {"x": 3, "y": {"z": "q", "w": [None, [], [("k", None)], [("k", {"v": None}), ("", {"v": float("nan")})]]}},
        {"x": -1, "y": {"z": "deep", "w": [[("a", {"v": -0.0})]]}},
    ]
    cols["st"] = pa.array([nested_values[i % len(nested_values)] for i in ids], nested_t)
    cols["lst"] = pa.array(
        [(None, [], [None], [[1, None], [], None], [[2**62]])[i % 5] for i in ids], pa.list_(pa.list_(pa.int64()))
    )
    cols["mp"] = pa.array(
        [(None, [], [("a", None)], [("", ["x", None, ""]), ("b", [])])[i % 4] for i in ids],
        pa.map_(pa.string(), pa.list_(pa.string())),
    )
    return pa.table(cols)


def pyarrow_types(root: str) -> Foreign:
    """pyarrow-written files of every type Delta declares (decimals as INT32/INT64 and as fixed-length byte
    arrays, nanosecond timestamps, NaN/-0.0/inf, empty and 1 MB strings, binary, nested struct/list/map with
    NULLs at every level, column names with a dot and non-ASCII letters), each file with other writer settings."""
    w = DeltaLogWriter(root)
    data = _awkward(40)
    # the table declares microsecond timestamps; the ns file column is what some writers put in the files
    declared = data.schema.set(data.schema.get_field_index("ts_ns"), pa.field("ts_ns", pa.timestamp("us", tz="UTC")))
    w.commit([w.protocol(1, 2), w.metadata(declared)], operation="CREATE TABLE")
    settings: list[dict[str, Any]] = [
        {"store_decimal_as_integer": True, "compression": "zstd"},
        {"use_dictionary": False, "compression": "none", "data_page_version": "2.0", "row_group_size": 3},
        {"compression": "gzip", "write_statistics": False},
        {"compression": "snappy", "coerce_timestamps": None, "version": "2.6"},
    ]
    parts = _with_duplicates(_chunks(data, 4), rows=2)
    for i, part in enumerate(parts):
        rel = w.write_parquet(part, **settings[i % len(settings)])
        w.commit([w.add(rel, stats=_stats(part))])
    expected = pa.concat_tables(parts)
    return Foreign(root, "delta", expected, zorder=("f64", "s"), key="id", reread=duckdb_delta)


def _mapped(root: str, mode: str) -> Foreign:
    """Column mapping (``name`` or ``id`` mode): files hold physical names ``col-<uuid>`` (and field ids in id
    mode); logical names have spaces, dots and non-ASCII letters; the partition column's name has a space; a
    later version renames a column (same physical name) and adds one, so older files lack it."""
    w = DeltaLogWriter(root)
    base = events(0, 30)
    logical = pa.table(
        {
            "id": base["id"],
            "name": base["name"],
            "amount value": base["amount"],
            "a.b": pa.array([i % 7 for i in range(base.num_rows)], pa.int32()),
            "ü x": pa.array([("ä", "", None)[i % 3] for i in range(base.num_rows)], pa.string()),
            "nested col": pa.array(
                [None if i % 4 == 0 else {"in ner": NAMES[i % len(NAMES)], "x.y": i} for i in range(base.num_rows)],
                pa.struct([("in ner", pa.string()), ("x.y", pa.int64())]),
            ),
            "region name": base["region"],
        }
    )
    schema_json, physical, max_id = mapped_schema_json(logical.schema, mode)
    import json

    fields = json.loads(schema_json)["fields"]
    phys_of = {f["name"]: f["metadata"]["delta.columnMapping.physicalName"] for f in fields}
    config = {"delta.columnMapping.mode": mode, "delta.columnMapping.maxColumnId": str(max_id)}
    table_id = str(uuid.uuid4())
    w.commit(
        [
            w.protocol(2, 5),
            w.metadata(
                logical.schema,
                partition_columns=["region name"],
                configuration=config,
                schema_json=schema_json,
                table_id=table_id,
            ),
        ],
        operation="CREATE TABLE",
    )
    part_idx = logical.schema.get_field_index("region name")
    file_schema = physical.remove(part_idx)

    def write(rows: pa.Table, phys_schema: pa.Schema) -> None:
        for region in ("eu", "us", None):
            mask = (
                pa.compute.is_null(rows["region name"])
                if region is None
                else pa.compute.equal(rows["region name"], region)
            )
            sub = rows.filter(mask)
            if not sub.num_rows:
                continue
            data = to_physical(sub.drop_columns(["region name"]), phys_schema)
            rel = w.write_parquet(data, name=f"{uuid.uuid4().hex[:2]}/part-{uuid.uuid4()}")
            w.commit([w.add(rel, partition={phys_of["region name"]: region}, stats=_stats(sub))])

    first = logical.slice(0, 18)
    for chunk in _chunks(first, 2):
        write(chunk, file_schema)
    # version n: rename "name" -> "full name" (same physical name, same id) and add "added col"
    max_id += 1
    added_phys = f"col-{uuid.uuid4()}"
    fields = [dict(f, name="full name") if f["name"] == "name" else f for f in fields]
    fields.insert(
        len(fields) - 1,
        {
            "name": "added col",
            "type": "string",
            "nullable": True,
            "metadata": {"delta.columnMapping.id": max_id, "delta.columnMapping.physicalName": added_phys},
        },
    )
    config["delta.columnMapping.maxColumnId"] = str(max_id)
    w.commit(
        [
            w.metadata(
                logical.schema,
                partition_columns=["region name"],
                configuration=config,
                schema_json=json.dumps({"type": "struct", "fields": fields}),
                table_id=table_id,
            )
        ],
        operation="RENAME COLUMN",
    )
    rest = logical.slice(18).rename_columns(["full name" if c == "name" else c for c in logical.column_names])
    rest = rest.add_column(
        rest.num_columns - 1, "added col", pa.array([f"v{i}" if i % 2 else "" for i in range(rest.num_rows)])
    )
    added_meta = {b"PARQUET:field_id": str(max_id).encode()} if mode == "id" else None
    new_schema = file_schema.append(pa.field(added_phys, pa.string(), metadata=added_meta))
    for chunk in _chunks(rest, 2):
        write(chunk, new_schema)
    dup = rest.slice(0, 2)
    write(dup, new_schema)
    old = first.rename_columns(["full name" if c == "name" else c for c in first.column_names])
    old = old.add_column(old.num_columns - 1, "added col", pa.nulls(old.num_rows, pa.string()))
    expected = pa.concat_tables([old, rest, dup])
    # no independent reader: delta-rs reads column-mapped files as NULLs, DuckDB's delta_scan the partition
    return Foreign(root, "delta", expected, zorder=("id", "full name"), key="id")


def column_mapping_name(root: str) -> Foreign:
    return _mapped(root, "name")


def column_mapping_id(root: str) -> Foreign:
    return _mapped(root, "id")


def deletion_vectors(root: str) -> Foreign:
    """Deletion vectors (protocol 3/7, reader and writer feature ``deletionVectors``): one file's DV inline in the
    log, another's in a ``deletion_vector_<uuid>.bin`` file, a third file without one."""
    w = DeltaLogWriter(root)
    data = events(0, 30, region=False)
    w.commit(
        [
            w.protocol(3, 7, reader_features=["deletionVectors"], writer_features=["deletionVectors"]),
            w.metadata(data.schema, configuration={"delta.enableDeletionVectors": "true"}),
        ],
        operation="CREATE TABLE",
    )
    parts = _with_duplicates(_chunks(data, 3), rows=2)
    adds = []
    for part in parts:
        rel = w.write_parquet(part)
        adds.append(w.add(rel, stats=_stats(part)))
        w.commit([adds[-1]])
    deleted = {0: [1, 3, 5], 1: [0, 9]}
    kept = []
    for i, part in enumerate(parts):
        gone = set(deleted.get(i, []))
        kept.append(part.take([r for r in range(part.num_rows) if r not in gone]))
    # a DELETE: each file's add is removed and re-added with its deletion vector
    actions = []
    for i, rows in deleted.items():
        dv = inline_dv(rows) if i == 0 else file_dv(root, rows)
        actions.append(w.remove(adds[i]))
        readd = dict(adds[i]["add"], deletionVector=dv, dataChange=True)
        actions.append({"add": readd})
    w.commit(actions, operation="DELETE")
    return Foreign(root, "delta", pa.concat_tables(kept), zorder=("id", "name"), key="id", reread=duckdb_delta)


# ---- table features lakehouse does not support: it must refuse them by name --------------------------------


def _featured(
    root: str,
    *,
    reader: Sequence[str] = (),
    writer: Sequence[str],
    configuration: dict[str, str] | None = None,
    field_metadata: dict[str, dict[str, Any]] | None = None,
    extra_actions: Callable[[DeltaLogWriter], list[dict[str, Any]]] | None = None,
    add_extra: Callable[[int, pa.Table], dict[str, Any]] | None = None,
    info: Callable[[DeltaLogWriter], dict[str, Any]] | None = None,
) -> Foreign:
    w = DeltaLogWriter(root)
    data = events(0, 24, region=False)
    first = [
        w.protocol(3 if reader else 1, 7, reader_features=reader, writer_features=writer),
        w.metadata(data.schema, configuration=configuration, field_metadata=field_metadata),
    ]
    first += extra_actions(w) if extra_actions else []
    w.commit(first, operation="CREATE TABLE", info=info(w) if info else None)
    parts = _with_duplicates(_chunks(data, 3), rows=2)
    row = 0
    for part in parts:
        rel = w.write_parquet(part)
        w.commit(
            [w.add(rel, stats=_stats(part), extra=add_extra(row, part) if add_extra else None)],
            info=info(w) if info else None,
        )
        row += part.num_rows
    # Z-order without a short string: a refusal must come before any rewrite, whatever the columns
    return Foreign(root, "delta", pa.concat_tables(parts), zorder=("id", "ts"), key="id", reread=duckdb_delta)


def identity_columns(root: str) -> Foreign:
    meta = {
        "id": {
            "delta.identity.start": 0,
            "delta.identity.step": 1,
            "delta.identity.highWaterMark": 23,
            "delta.identity.allowExplicitInsert": False,
        }
    }
    return _featured(root, writer=["identityColumns"], field_metadata=meta)


def in_commit_timestamps(root: str) -> Foreign:
    now = int(dt.datetime.now(UTC).timestamp() * 1000) - 3_600_000
    config = {
        "delta.enableInCommitTimestamps": "true",
        "delta.inCommitTimestampEnablementVersion": "0",
        "delta.inCommitTimestampEnablementTimestamp": str(now + 1000),
    }
    return _featured(
        root,
        writer=["inCommitTimestamp"],
        configuration=config,
        info=lambda w: {"inCommitTimestamp": w.clock_ms + 1000},
    )


def row_tracking(root: str) -> Foreign:
    config = {
        "delta.enableRowTracking": "true",
        "delta.rowTracking.materializedRowIdColumnName": f"_row-id-col-{uuid.uuid4()}",
        "delta.rowTracking.materializedRowCommitVersionColumnName": f"_row-commit-version-col-{uuid.uuid4()}",
    }
    return _featured(
        root,
        writer=["rowTracking", "domainMetadata"],
        configuration=config,
        extra_actions=lambda w: [
            {
                "domainMetadata": {
                    "domain": "delta.rowTracking",
                    "configuration": '{"rowIdHighWaterMark":99}',
                    "removed": False,
                }
            }
        ],
        add_extra=lambda row, part: {"baseRowId": row, "defaultRowCommitVersion": 1},
    )


def v2_checkpoint(root: str) -> Foreign:
    return _featured(
        root,
        reader=["v2Checkpoint"],
        writer=["v2Checkpoint"],
        configuration={"delta.checkpointPolicy": "v2"},
    )


def liquid_clustering(root: str) -> Foreign:
    return _featured(
        root,
        writer=["clustering", "domainMetadata"],
        extra_actions=lambda w: [
            {
                "domainMetadata": {
                    "domain": "delta.clustering",
                    "configuration": '{"clusteringColumns":[["id"]],"domainName":"delta.clustering"}',
                    "removed": False,
                }
            }
        ],
    )


# ---- delta-rs with its writer options ----------------------------------------------------------------------


def _deltars_read(location: str) -> pa.Table:
    from deltalake import DeltaTable

    return DeltaTable(location).to_pyarrow_table()


def deltars_options(root: str) -> Foreign:
    """delta-rs with every writer option it has: partition_by, schema_mode="merge" (a column added later),
    writer properties per append (compression codecs and levels, statistics off, dictionary off, tiny row
    groups and pages, truncated statistics), table configuration (data skipping over one column, a checkpoint
    every 2 commits), target_file_size, a predicate overwrite, and delete / update / merge commits."""
    from deltalake import ColumnProperties, DeltaTable, WriterProperties, write_deltalake

    data = events(0, 60)
    chunks = _chunks(data, 6)
    config = {"delta.dataSkippingNumIndexedCols": "1", "delta.checkpointInterval": "2"}
    props = [
        WriterProperties(compression="ZSTD", compression_level=9),
        WriterProperties(compression="GZIP", default_column_properties=ColumnProperties(dictionary_enabled=False)),
        WriterProperties(
            compression="UNCOMPRESSED",
            default_column_properties=ColumnProperties(statistics_enabled="NONE"),
            max_row_group_size=2,
            data_page_row_count_limit=1,
        ),
        WriterProperties(compression="LZ4_RAW", statistics_truncate_length=1, data_page_size_limit=64),
        WriterProperties(compression="BROTLI", write_batch_size=3),
        WriterProperties(
            compression="SNAPPY",
            column_properties={"name": ColumnProperties(dictionary_enabled=False, statistics_enabled="CHUNK")},
        ),
    ]
    write_deltalake(
        root, chunks[0], partition_by=["region"], configuration=config, writer_properties=props[0], name="foreign"
    )
    for chunk, wp in zip(chunks[1:4], props[1:4], strict=True):
        write_deltalake(root, chunk, mode="append", writer_properties=wp, target_file_size=1024)
    # schema evolution: a new column from here on
    more = chunks[4].append_column("note", pa.array([None if i % 3 else f"n{i}" for i in range(chunks[4].num_rows)]))
    write_deltalake(root, more, mode="append", schema_mode="merge", writer_properties=props[4])
    # a predicate overwrite of one partition with the same rows plus a changed one
    table = DeltaTable(root)
    us = table.to_pyarrow_table(filters=[("region", "=", "us")])
    write_deltalake(root, us, mode="overwrite", predicate="region = 'us'", writer_properties=props[5])
    table = DeltaTable(root)
    table.delete("id = 7")
    table.update(updates={"amount": "amount * 2"}, predicate="id = 8")
    source = chunks[5].append_column("note", pa.array(["m"] * chunks[5].num_rows))
    (
        table.merge(source, predicate="t.id = s.id", source_alias="s", target_alias="t")
        .when_matched_update_all()
        .when_not_matched_insert_all()
        .execute()
    )
    # exact duplicates (an append of rows already there)
    write_deltalake(root, DeltaTable(root).to_pyarrow_table().slice(0, 3), mode="append")
    return Foreign(root, "delta", _deltars_read(root), zorder=("id", "name"), key="id", reread=_deltars_read)


def deltars_partition_values(root: str) -> Foreign:
    """delta-rs partitioning by values whose text is easy to get wrong: a double holding 0.0 and -0.0 (two
    partitions), a binary column (delta-rs keeps its \\u0061 escapes undecoded), a timestamp before year 1000
    and a decimal of scale 10 (str() writes 1E-7). A rewrite must add each file with its input's partition."""
    from decimal import Decimal

    from deltalake import write_deltalake

    n = 24
    data = events(0, n, region=False).append_column("pf", pa.array([(0.0, -0.0, 1.5)[i % 3] for i in range(n)]))
    data = data.append_column("pb", pa.array([(b"ab", b"xy")[i % 2] for i in range(n)], pa.binary()))
    old = [dt.datetime(999, 6, 1, 12, tzinfo=UTC), dt.datetime(2024, 1, 1, tzinfo=UTC)]
    data = data.append_column("pt", pa.array([old[i % 2] for i in range(n)], pa.timestamp("us", tz="UTC")))
    tiny = [Decimal("0.0000001000"), Decimal("0E-10")]
    data = data.append_column("pd", pa.array([tiny[i % 2] for i in range(n)], pa.decimal128(20, 10)))
    parts = ["pf", "pb", "pt", "pd"]
    for i, chunk in enumerate(_chunks(data, 4)):
        write_deltalake(root, chunk, mode="append" if i else "error", partition_by=parts)
    write_deltalake(root, data.slice(0, 3), mode="append")  # exact duplicates (for dedup)
    return Foreign(root, "delta", _deltars_read(root), zorder=("id", "name"), key="id", reread=_deltars_read)


def deltars_features(root: str) -> Foreign:
    """delta-rs writing the table features it supports: change data feed, a CHECK constraint, a generated
    column, timestamp_ntz, append-only off; then updates and deletes (change data files), a checkpoint, and
    the log cleaned up so it starts at the checkpoint."""
    from deltalake import DeltaTable, Field, Schema, write_deltalake
    from deltalake.schema import PrimitiveType

    data = events(0, 40, region=False)
    data = data.append_column(
        "local_ts", pa.array([dt.datetime(2020, 1, 1) + dt.timedelta(minutes=i) for i in range(40)], pa.timestamp("us"))
    )
    fields = list(Schema.from_arrow(data.schema).fields)
    fields.append(Field("id2", PrimitiveType("long"), nullable=True, metadata={"delta.generationExpression": "id * 2"}))
    DeltaTable.create(
        root,
        Schema(fields),
        configuration={
            "delta.enableChangeDataFeed": "true",
            "delta.logRetentionDuration": "interval 0 seconds",
            "delta.checkpointInterval": "100",
        },
    )
    table = DeltaTable(root)
    table.alter.add_constraint({"id_nonneg": "id >= 0"})
    for chunk in _chunks(data, 5):
        write_deltalake(table, chunk, mode="append")
    table = DeltaTable(root)
    table.update(updates={"name": "'upd'"}, predicate="id < 3")
    table.delete("id = 20")
    write_deltalake(
        table, DeltaTable(root).to_pyarrow_table(filters=[("id", "<", 4)]).drop_columns(["id2"]), mode="append"
    )
    table = DeltaTable(root)
    table.create_checkpoint()
    table.cleanup_metadata()
    return Foreign(root, "delta", _deltars_read(root), zorder=("id", "name"), key="id", reread=_deltars_read)


DELTA_WRITERS: dict[str, Callable[[str], Foreign]] = {
    "legacy_no_stats": legacy_no_stats,
    "int96": int96,
    "pyarrow_types": pyarrow_types,
    "column_mapping_name": column_mapping_name,
    "column_mapping_id": column_mapping_id,
    "deletion_vectors": deletion_vectors,
    "deltars_options": deltars_options,
    "deltars_partition_values": deltars_partition_values,
    "deltars_features": deltars_features,
}

FEATURE_WRITERS: dict[str, tuple[Callable[[str], Foreign], tuple[str, ...]]] = {
    "identityColumns": (identity_columns, ("identityColumns", "identity column")),
    "inCommitTimestamp": (in_commit_timestamps, ("inCommitTimestamp", "in-commit timestamp")),
    "rowTracking": (row_tracking, ("rowTracking", "row tracking")),
    "v2Checkpoint": (v2_checkpoint, ("v2Checkpoint", "v2 checkpoint")),
    "clustering": (liquid_clustering, ("clustering",)),
}
