"""The product defects the conformance suite finds today, one line each (the reasons of its strict xfails).
Remove a test's mark when its defect is fixed: a strict xfail that passes fails the suite."""

ZORDER_SHORT_STRING = (
    "Z-order key: DuckDB ord('') is -1 and CAST(-1 AS UBIGINT) fails for a string shorter than the key's bytes "
    "(maintenance/compaction.py:zorder_expression)"
)
NO_STATS_ROWS = (
    "Delta files without statistics count 0 rows (tables/delta.py:DeltaAdapter._files_of: num_records or 0): "
    "table show rows=0, optimize commits then fails 'changed the row count 0 -> N', dedup 'would remove -1 rows'"
)
INT96_READ = (
    "Delta scan of Spark-style INT96 files (no ARROW:schema) reads them as ns and the cast to us raises a raw "
    "ArrowInvalid for 9999-12-31/0001-01-01 (tables/delta.py:DeltaAdapter._scan, base.py:scan cast)"
)
SCHEMA_TYPES = (
    "the catalog's schema language has no int8/int16/struct/list/map (lakehouse/schema.py:parse_type via "
    "governance/catalog.py) so register/create refuse such tables"
)
COLUMN_MAPPING = (
    "Delta column mapping (name/id) is not supported: register refuses the logical names ('invalid column "
    "name'); delta-rs's pyarrow dataset would read mapped columns as NULLs (tables/delta.py:definition/_scan)"
)
DV_ROWS = (
    "table show counts rows hidden by deletion vectors (tables/delta.py:DeltaAdapter._files_of ignores the "
    "deletion vector's cardinality)"
)
DV_VACUUM = (
    "vacuum of a table with deletion vectors dies with a raw DeltaProtocolError traceback (deletionVectors not "
    "supported by the deltalake reader) instead of a refusal by name (maintenance/retention.py:plan_vacuum)"
)
GENERATED_COLUMN = (
    "a foreign generated column (delta.generationExpression on a non-partition column) disappears from every "
    "read (tables/delta.py:DeltaAdapter.definition drops all generated columns, not only its own ts_day ...)"
)
FEATURE_AS_CONFLICT = (
    "an unsupported writer feature is reported as 'a concurrent commit won and retries ran out' after the "
    "rewrite ran (tables/delta.py:_translate maps delta-rs CommitFailedError; no protocol check before jobs)"
)
FEATURE_DEDUP_RETRIES = (
    "dedup retries an unsupported-feature commit failure 15 times and reports 'other commits kept winning' "
    "(tables/delta.py:DeltaAdapter.replace_files treats every CommitFailedError as a lost race)"
)
READER_FEATURE_RAW = (
    "a table with an unsupported reader feature (v2Checkpoint) registers, then jobs die with a raw "
    "DeltaProtocolError traceback (tables/delta.py: DeltaError not translated outside open/_scan)"
)
