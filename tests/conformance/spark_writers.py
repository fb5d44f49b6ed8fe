"""Iceberg tables written by Spark 3.5 with the Iceberg runtime (the jar the ``spark`` extra ships), in a Hadoop
catalog directory: partition transforms (identity, bucket, truncate, day, month), format v1 and v2,
merge-on-read position deletes, equality deletes committed through Iceberg's Java API, schema evolution, nested
types and awkward values, and files adopted with ``add_files`` (identity partition values only in metadata).
The expected rows are Spark's own reading of each table.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from typing import Any

import pyarrow as pa

from tests.conformance.harness import Foreign

CATALOG = "foreign"

NAMES = ["''", "'a'", "'ab'", "'abc'", "NULL", "'é'", "'日本'", "'abcd'", "'zz'", "'a b'"]
FLOATS = [
    "1.5D",
    "CAST('NaN' AS DOUBLE)",
    "CAST('-0.0' AS DOUBLE)",
    "0.0D",
    "CAST('Infinity' AS DOUBLE)",
    "CAST('-Infinity' AS DOUBLE)",
    "NULL",
    "2.25D",
    "-7.5D",
    "1e300D",
]


def _row(i: int) -> str:
    ts = "NULL" if i % 11 == 5 else f"TIMESTAMP '2024-01-01 00:00:00' + make_interval(0, 0, 0, 0, {i}, 0, {i / 1e6})"
    region = ("'eu'", "'us'", "NULL")[i % 3]
    return f"({i}L, {NAMES[i % len(NAMES)]}, {FLOATS[i % len(FLOATS)]}, {ts}, {region})"


def _values(start: int, n: int) -> str:
    return ", ".join(_row(i) for i in range(start, start + n))


def spark_read(spark: Any, source: str) -> pa.Table:
    """Spark's own reading (``source``: a table name, or a metadata JSON path lakehouse committed)."""
    if source.endswith(".metadata.json"):
        frame = spark.read.format("iceberg").load(source)
    else:
        frame = spark.table(source)
    batches = frame._collect_as_arrow()
    return pa.Table.from_batches(batches) if batches else pa.table({})


class SparkWriter:
    """Creates tables in a Hadoop catalog ``foreign`` of a running session; one table per call."""

    def __init__(self, spark: Any, warehouse: str) -> None:
        self.spark = spark
        self.warehouse = warehouse

    def sql(self, *statements: str) -> None:
        for s in statements:
            self.spark.sql(s).collect()

    def table(self, prefix: str) -> tuple[str, str]:
        name = f"{prefix}_{uuid.uuid4().hex[:8]}"
        return f"{CATALOG}.db.{name}", os.path.join(self.warehouse, "db", name)

    def foreign(self, ident: str, location: str, **kw: Any) -> Foreign:
        expected = spark_read(self.spark, ident)
        return Foreign(location, "iceberg", expected, reread=lambda meta: spark_read(self.spark, meta), **kw)


EVENTS = "id BIGINT, name STRING, amount DOUBLE, ts TIMESTAMP, region STRING"


def _events_table(
    w: SparkWriter, prefix: str, partitioned_by: str, props: dict[str, str], batches: int = 3
) -> tuple[str, str]:
    ident, location = w.table(prefix)
    tbl = ", ".join(f"'{k}'='{v}'" for k, v in props.items())
    w.sql(f"CREATE TABLE {ident} ({EVENTS}) USING iceberg {partitioned_by} TBLPROPERTIES ({tbl})")
    for b in range(batches):
        w.sql(f"INSERT INTO {ident} VALUES {_values(b * 10, 10)}")
    # exact duplicates of some rows, in a commit of their own
    w.sql(f"INSERT INTO {ident} SELECT * FROM {ident} WHERE id < 3")
    return ident, location


def v2_identity_day(w: SparkWriter) -> Foreign:
    ident, location = _events_table(w, "v2_day", "PARTITIONED BY (region, days(ts))", {"format-version": "2"})
    return w.foreign(ident, location, zorder=("id", "name"), key="id")


def v2_bucket_truncate(w: SparkWriter) -> Foreign:
    ident, location = _events_table(
        w, "v2_bucket", "PARTITIONED BY (bucket(4, id), truncate(2, name))", {"format-version": "2"}
    )
    return w.foreign(ident, location, zorder=("amount", "name"), key="id")


def v1_month(w: SparkWriter) -> Foreign:
    ident, location = _events_table(w, "v1_month", "PARTITIONED BY (region, months(ts))", {"format-version": "1"})
    return w.foreign(ident, location, zorder=("id", "name"), key="id")


def merge_on_read(w: SparkWriter) -> Foreign:
    """Format v2 merge-on-read: DELETE, UPDATE and MERGE leave position delete files."""
    mor = {
        "format-version": "2",
        "write.delete.mode": "merge-on-read",
        "write.update.mode": "merge-on-read",
        "write.merge.mode": "merge-on-read",
    }
    ident, location = _events_table(w, "v2_mor", "PARTITIONED BY (region)", mor)
    w.sql(
        f"DELETE FROM {ident} WHERE id IN (4, 13, 22)",
        f"UPDATE {ident} SET amount = 42.0D WHERE id IN (5, 14)",
        f"MERGE INTO {ident} t USING (SELECT 6L AS id, 'm' AS name) s ON t.id = s.id "
        "WHEN MATCHED THEN UPDATE SET t.name = s.name",
    )
    return w.foreign(ident, location, zorder=("id", "name"), key="id")


def equality_deletes(w: SparkWriter) -> Foreign:
    """Format v2 with an equality delete file (as Flink writes them): a Parquet file of ``id`` values written
    by pyarrow with Iceberg field ids, committed by Iceberg's Java API (``newRowDelta``) through Spark's JVM."""
    import pyarrow.parquet as pq

    ident, location = _events_table(w, "v2_eqdel", "", {"format-version": "2"})
    path = os.path.join(location, "data", f"eq-deletes-{uuid.uuid4().hex}.parquet")
    ids = pa.table({"id": pa.array([1, 10, 19], pa.int64())})
    ids = ids.cast(pa.schema([pa.field("id", pa.int64(), metadata={b"PARQUET:field_id": b"1"})]))
    pq.write_table(ids, path)
    jvm = w.spark.sparkContext._jvm
    gateway = w.spark.sparkContext._gateway
    table = jvm.org.apache.iceberg.spark.Spark3Util.loadIcebergTable(w.spark._jsparkSession, ident)
    field_ids = gateway.new_array(gateway.jvm.int, 1)
    field_ids[0] = table.schema().findField("id").fieldId()
    delete_file = (
        jvm.org.apache.iceberg.FileMetadata.deleteFileBuilder(table.spec())
        .ofEqualityDeletes(field_ids)
        .withPath("file://" + path)
        .withFormat(jvm.org.apache.iceberg.FileFormat.PARQUET)
        .withFileSizeInBytes(os.path.getsize(path))
        .withRecordCount(ids.num_rows)
        .build()
    )
    table.newRowDelta().addDeletes(delete_file).commit()
    w.sql(f"REFRESH TABLE {ident}")
    return w.foreign(ident, location, zorder=("id", "name"), key="id")


def schema_evolution(w: SparkWriter) -> Foreign:
    """Columns added, renamed, widened (int -> bigint, float -> double) and dropped between commits: older
    files hold old names and types, resolved by field id."""
    ident, location = w.table("v2_evolve")
    w.sql(
        f"CREATE TABLE {ident} (id BIGINT, name STRING, amount FLOAT, cnt INT, gone STRING) USING iceberg "
        "TBLPROPERTIES ('format-version'='2')",
        f"INSERT INTO {ident} VALUES (0, 'a', 1.5, 1, 'x'), (1, '', CAST('NaN' AS FLOAT), NULL, NULL), "
        "(2, 'ab', -0.0, 3, 'y')",
        f"INSERT INTO {ident} VALUES (3, NULL, 2.5, 4, 'z')",
        f"ALTER TABLE {ident} ADD COLUMN note STRING",
        f"INSERT INTO {ident} VALUES (4, 'abc', 3.5, 5, 'w', 'n1'), (5, 'é', NULL, 6, NULL, '')",
        f"ALTER TABLE {ident} RENAME COLUMN name TO full_name",
        f"INSERT INTO {ident} VALUES (6, 'zz', 4.5, 7, 'v', 'n2')",
        f"ALTER TABLE {ident} ALTER COLUMN cnt TYPE BIGINT",
        f"ALTER TABLE {ident} ALTER COLUMN amount TYPE DOUBLE",
        f"INSERT INTO {ident} VALUES (7, 'a', 1e300, 9223372036854775807, 'u', 'n3')",
        f"ALTER TABLE {ident} DROP COLUMN gone",
        f"INSERT INTO {ident} VALUES (8, 'q', -7.25, -1, NULL)",
        f"INSERT INTO {ident} SELECT * FROM {ident} WHERE id < 2",
    )
    return w.foreign(ident, location, zorder=("id", "full_name"), key="id")


def nested_types(w: SparkWriter) -> Foreign:
    """Nested struct/list/map (NULLs at every level), decimals of several precisions, binary, timestamp_ntz,
    NaN/-0.0, empty and long strings, and column names with a space, a dot and non-ASCII letters."""
    ident, location = w.table("v2_nested")
    w.sql(
        f"CREATE TABLE {ident} (id BIGINT, s STRING, `a b` INT, `c.d` STRING, `ü` DOUBLE, "
        "st STRUCT<x: INT, y: STRUCT<z: STRING, w: ARRAY<MAP<STRING, STRUCT<v: DOUBLE>>>>>, "
        "lst ARRAY<ARRAY<BIGINT>>, mp MAP<STRING, ARRAY<STRING>>, "
        "d1 DECIMAL(1,0), d9 DECIMAL(9,4), d18 DECIMAL(18,9), d19 DECIMAL(19,2), d38 DECIMAL(38,10), "
        "bin BINARY, ntz TIMESTAMP_NTZ, tz TIMESTAMP, day DATE) USING iceberg TBLPROPERTIES ('format-version'='2')"
    )
    rows = []
    structs = [
        "NULL",
        "named_struct('x', NULL, 'y', NULL)",
        "named_struct('x', 1, 'y', named_struct('z', NULL, 'w', NULL))",
        "named_struct('x', 2, 'y', named_struct('z', '', 'w', array()))",
        "named_struct('x', 3, 'y', named_struct('z', 'q', 'w', array(NULL, map(), map('k', NULL), "
        "map('k', named_struct('v', NULL), '', named_struct('v', CAST('NaN' AS DOUBLE))))))",
        "named_struct('x', -1, 'y', named_struct('z', 'deep', 'w', "
        "array(map('a', named_struct('v', CAST('-0.0' AS DOUBLE))))))",
    ]
    lists = [
        "NULL",
        "array()",
        "array(NULL)",
        "array(array(1L, NULL), array(), NULL)",
        "array(array(4611686018427387904L))",
    ]
    maps = ["NULL", "map()", "map('a', NULL)", "map('', array('x', NULL, ''), 'b', array())"]
    decs = [
        ("9", "99999.9999", "999999999.999999999", "99999999999999999.99", "9" * 28 + "." + "9" * 10),
        ("-9", "-0.0001", "-0.000000001", "-99999999999999999.99", "-1.0000000001"),
        ("0", "0", "0", "0.01", "0"),
    ]
    long_text = "'" + "L" * 100_000 + "'"
    for i in range(24):
        d = decs[i % 3] if i % 4 else None
        dec_sql = (
            ", ".join(
                f"CAST('{v}' AS DECIMAL({p}))" for v, p in zip(d, ("1,0", "9,4", "18,9", "19,2", "38,10"), strict=True)
            )
            if d
            else "NULL, NULL, NULL, NULL, NULL"
        )
        s = long_text if i == 7 else NAMES[i % len(NAMES)]
        binv = ("X''", "X'00FF'", "NULL", "X'" + "AB" * 3000 + "'")[i % 4]
        ntz = (
            "TIMESTAMP_NTZ '0001-01-01 00:00:00'",
            "TIMESTAMP_NTZ '9999-12-31 23:59:59.999999'",
            "NULL",
            "TIMESTAMP_NTZ '2024-02-29 12:00:00.000001'",
        )[i % 4]
        tz = (
            "TIMESTAMP '1900-01-01 00:00:00'",
            "NULL",
            "TIMESTAMP '2262-04-11 23:47:16.854776'",
            "TIMESTAMP '2024-01-01 00:00:00.5'",
        )[i % 4]
        day = ("DATE '0001-01-01'", "DATE '9999-12-31'", "NULL", "DATE '1970-01-01'", "DATE '1582-10-15'")[i % 5]
        rows.append(
            f"({i}L, {s}, {i if i % 5 else 'NULL'}, {NAMES[(i + 3) % len(NAMES)]}, {FLOATS[i % len(FLOATS)]}, "
            f"{structs[i % len(structs)]}, {lists[i % len(lists)]}, {maps[i % len(maps)]}, {dec_sql}, {binv}, "
            f"{ntz}, {tz}, {day})"
        )
    for chunk in range(0, len(rows), 6):
        w.sql(f"INSERT INTO {ident} VALUES {', '.join(rows[chunk : chunk + 6])}")
    w.sql(f"INSERT INTO {ident} SELECT * FROM {ident} WHERE id < 2")
    return w.foreign(ident, location, zorder=("ü", "s"), key="id")


def add_files(w: SparkWriter) -> Foreign:
    """Files adopted with the ``add_files`` procedure from a Hive-style directory (``day=2024-01-01/``): the
    identity partition's values live only in Iceberg's metadata, not in the data files."""
    ident, location = w.table("v2_added")
    source = location + "_source"
    frame = w.spark.sql(
        f"SELECT id, name, amount, ts, CAST(date_add(DATE '2024-01-01', CAST(id % 3 AS INT)) AS DATE) AS day "
        f"FROM VALUES {_values(0, 27)} AS t(id, name, amount, ts, region)"
    )
    frame.repartition(3).write.partitionBy("day").parquet("file://" + source)
    w.sql(
        f"CREATE TABLE {ident} (id BIGINT, name STRING, amount DOUBLE, ts TIMESTAMP, day DATE) USING iceberg "
        "PARTITIONED BY (day) TBLPROPERTIES ('format-version'='2')",
        f"CALL {CATALOG}.system.add_files(table => 'db.{ident.rsplit('.', 1)[1]}', "
        f"source_table => '`parquet`.`file://{source}`')",
        f"INSERT INTO {ident} SELECT * FROM {ident} WHERE id < 3",
    )
    return w.foreign(ident, location, zorder=("id", "name"), key="id")


SPARK_WRITERS: dict[str, Callable[[SparkWriter], Foreign]] = {
    "v2_identity_day": v2_identity_day,
    "v2_bucket_truncate": v2_bucket_truncate,
    "v1_identity_month": v1_month,
    "merge_on_read_deletes": merge_on_read,
    "equality_deletes": equality_deletes,
    "schema_evolution": schema_evolution,
    "nested_types": nested_types,
    "add_files": add_files,
}
