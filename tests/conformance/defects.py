"""The product defects the conformance suite finds today, one line each (the reasons of its strict xfails).
Remove a test's mark when its defect is fixed: a strict xfail that passes fails the suite."""

ZORDER_SHORT_STRING = (
    "Z-order key: DuckDB ord('') is -1 and CAST(-1 AS UBIGINT) fails for a string shorter than the key's bytes "
    "(maintenance/compaction.py:zorder_expression)"
)
ZORDER_BEFORE_CHECKS = (
    "Z-order rewrites before it checks the table (features, deletion vectors, delete files) and dies in the "
    "Z-order key (ord('')) instead of refusing by name (maintenance/compaction.py:_rewrite_partition)"
)
SCHEMA_TYPES = (
    "the catalog's schema language has no int8/int16/struct/list/map (lakehouse/schema.py:parse_type via "
    "governance/catalog.py) so register/create refuse such tables"
)
DELTA_NANOSECONDS = (
    "lakehouse's Delta tables cannot hold timestamps finer than a microsecond: delta-rs truncates them on write "
    "(also into timestamp_nanos columns), so appends of such values are refused by name (tables/delta.py:"
    "_check_nanoseconds); and the property Z-orders by its last column, which may be nested (refused by name)"
)
ICEBERG_TRANSFORMS = (
    "register refuses Iceberg bucket/truncate partitions: 'partition transform bucket[4] is not supported' "
    "(tables/iceberg.py:_transform_name)"
)
EQUALITY_DELETES = (
    "equality deletes: pyiceberg's raw ValueError 'does not yet support equality deletes' escapes from scans "
    "and jobs (tables/iceberg.py:_scan/files); neither read nor refused by name"
)
DELETE_FILE_ROWS = (
    "table show counts rows removed by position deletes (tables/iceberg.py:files uses record_count, ignoring "
    "delete files)"
)
DEDUP_IGNORES_DELETES = (
    "dedup ranks rows hidden by position deletes as duplicates and removes live updated rows, then commits "
    "(maintenance/dedup.py:plan_dedup reads raw data files; silent data loss)"
)
RENAMED_COLUMN = (
    "optimize/dedup of an Iceberg table with a renamed column write NULLs for it: DuckDB read_parquet matches "
    "by name, not field id (maintenance/compaction.py:rewrite_files; silent data loss)"
)
METADATA_PARTITION = (
    "identity partition values that live only in metadata (add_files): optimize writes NULL for the column "
    "(union_by_name), dedup fails 'Referenced column \"day\" not found' (maintenance/compaction.py:rewrite_files)"
)
FILES_OUTSIDE_LOCATION = (
    "data files outside the table location (add_files): queries fail with DuckDB 'Permission Error' "
    "(sql/engine.py allowed paths), vacuum and health fail 'not where the listing shows' (retention.py)"
)
