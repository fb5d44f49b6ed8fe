"""SQL over catalog tables through DuckDB (and Spark, see :mod:`lakehouse.engines.spark`).

* :mod:`~lakehouse.sql.rewrite`: from the SQL a user writes to the SQL that runs (catalog names become views,
  time travel becomes pinned versions, the query's structure is checked).
* :mod:`~lakehouse.sql.allowlist`: what a query may contain, checked on DuckDB's own parse of that SQL.
* :mod:`~lakehouse.sql.engine`: DuckDB in this process, with its own delta/iceberg/httpfs extensions (the CLI's
  own user; rewrites and jobs use its connections too).
* :mod:`~lakehouse.sql.worker`: DuckDB in a worker process with hard memory and time limits and no file or
  network access; the tables are bound into it, already masked for the caller (the API, ``query --masked``).
"""

from lakehouse.duck import EXTENSIONS, connect_duckdb, duck_inexact, duck_type, extension_path
from lakehouse.sql.engine import QueryResult, SqlEngine
from lakehouse.sql.rewrite import MAX_SQL_LENGTH, access_of, rewrite

__all__ = [
    "EXTENSIONS",
    "MAX_SQL_LENGTH",
    "QueryResult",
    "SqlEngine",
    "access_of",
    "connect_duckdb",
    "duck_inexact",
    "duck_type",
    "extension_path",
    "rewrite",
]
