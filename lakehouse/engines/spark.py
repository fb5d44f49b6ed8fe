"""The Spark engine: the heavy part of maintenance jobs, and SQL, on a Spark session.

This is the only module that imports ``pyspark``. The callers (``maintenance.compaction``, ``.retention``,
``core.Lakehouse.query``) keep planning, policies, dry runs, job history, lineage and audit; this module only
runs the calls that read and write data files:

* Iceberg, through a catalog Spark shares with pyiceberg: Spark's Iceberg ``JdbcCatalog`` on the same database
  and under the same catalog name as pyiceberg's ``SqlCatalog`` (schema version V1, catalog tables created by
  pyiceberg, caching off so Spark sees pyiceberg's commits at once). Compaction and Z-order run Iceberg's
  ``RewriteDataFiles`` action (bin-pack or Z-order, limited to the partitions the planner picked, committed with
  the job's snapshot properties); vacuum runs the ``expire_snapshots`` procedure for exactly the planned
  snapshots; orphan removal runs ``DeleteOrphanFiles`` over the planner's candidate list (Spark checks again that
  no snapshot references them); ``rewrite_manifests`` follows a compaction.
* Delta, through delta-spark (``OPTIMIZE ... [ZORDER BY]``, ``VACUUM``), when its jars are configured: no
  registry reachable from the project's CI ships them, so without them a Delta job says so and names the
  settings to set.

The session is process-wide (a JVM per process); a second lakehouse in the same process re-points the shared
catalog at its own database.
"""

from __future__ import annotations

import datetime as dt
import glob
import importlib.util
import json
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pyarrow as pa
from pyspark.sql import SparkSession

from lakehouse.errors import (
    DependencyMissingError,
    LakehouseError,
    QueryError,
    StorageError,
    UnsupportedOperationError,
)
from lakehouse.tables.base import AsOf, LakehouseTable, Snapshot, StorageContext, TableName

if TYPE_CHECKING:
    from lakehouse.config import Settings
    from lakehouse.maintenance.planner import CompactionOptions, PartitionPlan
    from lakehouse.sql import QueryResult
    from lakehouse.storage import ObjectInfo

ICEBERG_EXTENSIONS = "org.apache.iceberg.spark.extensions.IcebergSparkSessionExtensions"
DELTA_EXTENSIONS = "io.delta.sql.DeltaSparkSessionExtension"
DELTA_CATALOG = "org.apache.spark.sql.delta.catalog.DeltaCatalog"
ICEBERG_RUNTIME = "iceberg-spark-runtime-3.5_2.12"
DELTA_JARS_HINT = (
    "Delta on Spark needs the delta-spark jars (io.delta:delta-spark_2.12 and delta-storage 3.x): list them in "
    "the spark.jars setting (LAKEHOUSE_SPARK__JARS) or their Maven coordinates in spark.packages; without them "
    "run the job without --engine spark (delta-rs)"
)

_lock = threading.RLock()
_bound: dict[str, tuple[str, str]] = {}
"""Catalog name -> (JDBC URI, warehouse) the process's session currently points that catalog at."""


# ---- what the session loads ---------------------------------------------------------------------------------


def iceberg_runtime_jar(configured: Sequence[str] = ()) -> str:
    """The Iceberg Spark runtime jar: one listed in the settings, else the copy the ``spark`` extra installs
    (PyPI ``snowpark-connect-deps-iceberg``)."""
    for jar in configured:
        if "iceberg-spark-runtime" in os.path.basename(jar):
            return jar
    spec = importlib.util.find_spec("snowpark_connect_deps_iceberg")
    roots = list(spec.submodule_search_locations or []) if spec else []
    for root in roots:
        found = sorted(glob.glob(os.path.join(root, "**", f"{ICEBERG_RUNTIME}-*.jar"), recursive=True))
        if found:
            return found[-1]
    raise DependencyMissingError(
        f"no Iceberg Spark runtime jar ({ICEBERG_RUNTIME}-*.jar) found",
        hint="pip install 'lakehouse[spark]', or list the jar in the spark.jars setting",
    )


def jdbc_catalog(catalog_url: str) -> tuple[str, dict[str, str]]:
    """The JDBC URI (and user/password properties) of the catalog database's SQLAlchemy URL.

    >>> jdbc_catalog("sqlite:////tmp/wh/_catalog.db")
    ('jdbc:sqlite:/tmp/wh/_catalog.db', {})
    >>> jdbc_catalog("postgresql+psycopg://lh:pw@db:5433/cat")
    ('jdbc:postgresql://db:5433/cat', {'jdbc.user': 'lh', 'jdbc.password': 'pw'})
    """
    from sqlalchemy.engine import make_url

    url = make_url(catalog_url)
    if url.get_backend_name() == "sqlite":
        if not url.database or url.database == ":memory:":
            raise UnsupportedOperationError("Spark cannot share an in-memory SQLite catalog; use a file")
        return f"jdbc:sqlite:{os.path.abspath(url.database)}", {}
    if url.get_backend_name() == "postgresql":
        props = {}
        if url.username:
            props["jdbc.user"] = url.username
        if url.password:
            props["jdbc.password"] = str(url.password)
        return f"jdbc:postgresql://{url.host or 'localhost'}:{url.port or 5432}/{url.database}", props
    raise UnsupportedOperationError(f"Spark cannot share a {url.get_backend_name()} catalog database")


def jdbc_driver(catalog_url: str, configured: str | None = None) -> tuple[str, str | None]:
    """The catalog database's JDBC driver jar and the directory of its native library (SQLite), from the
    settings or the Debian packages ``scripts/install-system-deps.sh`` installs."""
    sqlite = catalog_url.startswith("sqlite")
    native = None
    if sqlite:
        libs = sorted(glob.glob("/usr/lib/*/jni/libsqlitejdbc.so"))
        native = os.path.dirname(libs[0]) if libs else None
    if configured:
        return configured, native
    jar = "/usr/share/java/sqlite-jdbc.jar" if sqlite else "/usr/share/java/postgresql.jar"
    if not os.path.exists(jar):
        package = "libxerial-sqlite-jdbc-java libxerial-sqlite-jdbc-jni" if sqlite else "libpostgresql-jdbc-java"
        raise DependencyMissingError(
            f"the Spark engine needs the catalog database's JDBC driver ({jar})",
            hint=f"run scripts/install-system-deps.sh (apt-get install {package}) or set spark.jdbc_driver",
        )
    return jar, native


def _is_local(master: str) -> bool:
    return master.startswith("local")


# ---- the engine ---------------------------------------------------------------------------------------------


class SparkEngine:
    """Runs jobs of one lakehouse on the process's Spark session (started on first use)."""

    def __init__(self, settings: Settings, ctx: StorageContext) -> None:
        self.settings = settings
        self.ctx = ctx
        self.catalog = ctx.catalog_name
        self._session: SparkSession | None = None

    @property
    def master(self) -> str:
        return self.settings.spark.master

    @property
    def delta_enabled(self) -> bool:
        s = self.settings.spark
        if s.delta is not None:
            return s.delta
        return any("delta-spark" in os.path.basename(j) for j in s.jars) or any(
            p.startswith("io.delta:delta-spark") for p in s.packages
        )

    def describe(self) -> dict[str, Any]:
        """What a job record says about the engine."""
        return {"engine": "spark", "spark_master": self.master}

    def check(self, table: LakehouseTable, job: str) -> None:
        """Refuse, with what to do, a job this session cannot run on ``table``."""
        if table.format == "delta" and not self.delta_enabled:
            raise UnsupportedOperationError(f"{job} of Delta table {table.name} on Spark: {DELTA_JARS_HINT}")
        if table.format not in ("delta", "iceberg"):
            raise UnsupportedOperationError(f"the Spark engine does not know {table.format} tables")

    # -- session -------------------------------------------------------------------------------------------

    def session(self) -> SparkSession:
        """The process's Spark session, configured for this lakehouse's catalog."""
        with _lock:
            if self._session is None:
                self._session = self._start()
            self._bind(self._session)
            return self._session

    def _conf(self) -> dict[str, str]:
        s = self.settings.spark
        jars = [iceberg_runtime_jar(s.jars), *[j for j in s.jars if "iceberg-spark-runtime" not in j]]
        driver, native = jdbc_driver(self.ctx.catalog_url, s.jdbc_driver)
        jars.append(driver)
        conf: dict[str, str] = {
            "spark.app.name": s.app_name,
            "spark.jars": ",".join(jars),
            "spark.driver.extraClassPath": driver,  # java.sql.DriverManager wants it on the system class path
            "spark.driver.memory": s.driver_memory,
            "spark.ui.enabled": "false",
            "spark.ui.showConsoleProgress": "false",
            "spark.sql.session.timeZone": "UTC",
            "spark.sql.execution.arrow.pyspark.enabled": "true",
            "spark.sql.extensions": ICEBERG_EXTENSIONS + ("," + DELTA_EXTENSIONS if self.delta_enabled else ""),
        }
        if native:
            conf["spark.driver.extraJavaOptions"] = f"-Djava.library.path={native}"
            conf["spark.executor.extraJavaOptions"] = f"-Djava.library.path={native}"
        if _is_local(self.master):
            conf["spark.driver.host"] = "127.0.0.1"
            conf["spark.driver.bindAddress"] = "127.0.0.1"
            conf["spark.sql.shuffle.partitions"] = str(max(2, 2 * (os.cpu_count() or 1)))
        if s.packages:
            conf["spark.jars.packages"] = ",".join(s.packages)
        if self.delta_enabled:
            conf["spark.sql.catalog.spark_catalog"] = DELTA_CATALOG
            conf["spark.databricks.delta.retentionDurationCheck.enabled"] = "false"  # the planner decides
        conf.update(self._catalog_conf())
        if self.ctx.credentials is not None:
            conf.update(self.ctx.credentials.spark_conf(self.catalog))
        conf.update(s.conf)
        return conf

    def _catalog_conf(self) -> dict[str, str]:
        uri, props = jdbc_catalog(self.ctx.catalog_url)
        c = f"spark.sql.catalog.{self.catalog}"
        conf = {
            c: "org.apache.iceberg.spark.SparkCatalog",
            c + ".catalog-impl": "org.apache.iceberg.jdbc.JdbcCatalog",
            c + ".uri": uri,
            c + ".warehouse": self._warehouse(),
            c + ".jdbc.schema-version": "V1",
            c + ".jdbc.init-catalog-tables": "false",  # pyiceberg creates them; Spark must not hold a lock
            c + ".cache-enabled": "false",  # see pyiceberg's commits at once
        }
        conf.update({f"{c}.{k}": v for k, v in props.items()})
        return conf

    def _warehouse(self) -> str:
        w = self.ctx.warehouse
        return w if StorageContext.is_s3(w) else f"file://{w}"

    def _start(self) -> SparkSession:
        if _is_local(self.master):
            os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        builder = SparkSession.builder.master(self.master)
        for key, value in self._conf().items():
            builder = builder.config(key, value)
        try:
            session = builder.getOrCreate()
        except Exception as e:  # py4j / JVM start errors come as many classes
            raise StorageError(f"cannot start Spark ({self.master}): {_first_line(e)}") from e
        session.sparkContext.setLogLevel("ERROR")
        return session

    def _bind(self, session: SparkSession) -> None:
        """Point the session's shared catalog at this lakehouse's database (another lakehouse of the same
        process may have used it before)."""
        conf = self._catalog_conf()
        wanted = (conf[f"spark.sql.catalog.{self.catalog}.uri"], conf[f"spark.sql.catalog.{self.catalog}.warehouse"])
        if _bound.get(self.catalog) == wanted:
            return
        for key, value in conf.items():
            session.conf.set(key, value)
        if self.catalog in _bound:  # a catalog loaded before keeps its old options until the manager forgets it
            session._jsparkSession.sessionState().catalogManager().reset()
        _bound[self.catalog] = wanted

    def stop(self) -> None:
        """Stop the process's Spark session (the next use starts a new one)."""
        with _lock:
            active = SparkSession.getActiveSession()
            if active is not None:
                active.stop()
            _bound.clear()
            self._session = None

    # -- helpers -------------------------------------------------------------------------------------------

    @property
    def _jvm(self) -> Any:
        return self.session().sparkContext._jvm

    def _ident(self, table: LakehouseTable) -> str:
        return f"`{self.catalog}`.`{table.name.namespace}`.`{table.name.table}`"

    def _java_table(self, table: LakehouseTable) -> Any:
        session = self.session()
        try:
            return self._jvm.org.apache.iceberg.spark.Spark3Util.loadIcebergTable(
                session._jsparkSession, f"{self.catalog}.{table.name.namespace}.{table.name.table}"
            )
        except Exception as e:
            raise StorageError(f"Spark cannot load {table.name} from the shared catalog: {_first_line(e)}") from e

    def _delta_path(self, table: LakehouseTable) -> str:
        loc = table.location
        if StorageContext.is_s3(loc):
            loc = "s3a://" + loc.split("://", 1)[1]
        return "delta.`" + loc.replace("`", "``") + "`"

    def _sql(self, statement: str) -> list[Any]:
        try:
            return list(self.session().sql(statement).collect())
        except LakehouseError:
            raise
        except Exception as e:
            raise StorageError(f"Spark failed: {_first_line(e)}") from e

    # -- compaction / Z-order ------------------------------------------------------------------------------

    def rewrite(
        self,
        table: LakehouseTable,
        parts: Sequence[PartitionPlan],
        options: CompactionOptions,
        properties: Mapping[str, str],
    ) -> dict[str, Any]:
        """Compact (or Z-order) the planned partitions in one commit carrying ``properties``."""
        self.check(table, "compaction")
        if table.format == "delta":
            return self._delta_optimize(table, parts, options, properties)
        jvm = self._jvm
        session = self.session()
        action = jvm.org.apache.iceberg.spark.actions.SparkActions.get(session._jsparkSession).rewriteDataFiles(
            self._java_table(table)
        )
        if options.zorder:
            gateway = session.sparkContext._gateway
            assert gateway is not None
            columns = gateway.new_array(jvm.java.lang.String, len(options.zorder))
            for i, c in enumerate(options.zorder):
                columns[i] = c
            action = action.zOrder(columns)
        else:
            action = action.binPack()
        action = action.filter(self._iceberg_filter(table, parts))
        spark_options = {
            "target-file-size-bytes": str(options.target_file_size),
            "min-input-files": str(options.min_input_files),
            "partial-progress.enabled": "false",  # one commit, like the local engine's
            "rewrite-all": "true" if options.zorder else "false",
        }
        if not options.zorder:
            spark_options["min-file-size-bytes"] = str(options.small_threshold)
            spark_options["max-file-size-bytes"] = str(2**62)  # never split a big file: the planner does not
        for key, value in spark_options.items():
            action = action.option(key, value)
        for key, value in properties.items():
            action = action.snapshotProperty(key, value)
        try:
            result = action.execute()
        except Exception as e:
            raise _spark_error(f"Spark rewrite of {table.name}", e) from e
        out = {
            "rewritten_files": int(result.rewrittenDataFilesCount()),
            "added_files": int(result.addedDataFilesCount()),
            "rewritten_bytes": int(result.rewrittenBytesCount()),
            "failed_files": int(result.failedDataFilesCount()),
        }
        if out["failed_files"]:
            raise StorageError(f"Spark rewrite of {table.name} failed for {out['failed_files']} files")
        return out

    def _iceberg_filter(self, table: LakehouseTable, parts: Sequence[PartitionPlan]) -> Any:
        """An Iceberg expression matching exactly the planned partitions (ranges for time transforms)."""
        e = self._jvm.org.apache.iceberg.expressions.Expressions
        either = e.alwaysFalse()
        for part in parts:
            both = e.alwaysTrue()
            for pf in table.definition.partitioning:
                if pf.name not in part.partition:
                    continue  # a file of an older partition spec: no narrowing by this field
                value = part.partition[pf.name]
                t = table.schema.field(pf.column).type
                if value is None:
                    term = e.isNull(pf.column)
                elif pf.transform == "identity":
                    term = e.equal(pf.column, _java_literal(value))
                else:
                    low, high = time_range(pf.transform, str(value))
                    term = getattr(e, "and")(
                        e.greaterThanOrEqual(pf.column, _time_literal(low, t)),
                        e.lessThan(pf.column, _time_literal(high, t)),
                    )
                both = getattr(e, "and")(both, term)
            either = getattr(e, "or")(either, both)
        return either

    def _delta_optimize(
        self,
        table: LakehouseTable,
        parts: Sequence[PartitionPlan],
        options: CompactionOptions,
        properties: Mapping[str, str],
    ) -> dict[str, Any]:
        session = self.session()
        session.conf.set("spark.databricks.delta.optimize.maxFileSize", str(options.target_file_size))
        session.conf.set("spark.databricks.delta.optimize.minFileSize", str(options.small_threshold))
        session.conf.set("spark.databricks.delta.commitInfo.userMetadata", json.dumps(dict(properties)))
        try:
            where = " OR ".join(f"({_delta_partition_sql(p.partition)})" for p in parts if p.partition)
            statement = f"OPTIMIZE {self._delta_path(table)}" + (f" WHERE {where}" if where else "")
            if options.zorder:
                statement += " ZORDER BY (" + ", ".join(f"`{c}`" for c in options.zorder) + ")"
            rows = self._sql(statement)
        finally:
            session.conf.unset("spark.databricks.delta.commitInfo.userMetadata")
        metrics = rows[0]["metrics"].asDict(recursive=True) if rows else {}
        return {
            "rewritten_files": int(metrics.get("numFilesRemoved", 0)),
            "added_files": int(metrics.get("numFilesAdded", 0)),
            "rewritten_bytes": int((metrics.get("filesRemoved") or {}).get("totalSize", 0) or 0),
            "failed_files": 0,
        }

    def rewrite_manifests(self, table: LakehouseTable) -> int:
        """Regroup an Iceberg table's manifests by partition (after a compaction); returns manifests rewritten."""
        if table.format != "iceberg":
            return 0
        ident = f"{table.name.namespace}.{table.name.table}"
        rows = self._sql(f"CALL `{self.catalog}`.system.rewrite_manifests(table => '{ident}')")
        return int(rows[0]["rewritten_manifests_count"]) if rows else 0

    # -- retention -----------------------------------------------------------------------------------------

    def expire(self, table: LakehouseTable, snapshots: Sequence[Snapshot]) -> dict[str, int]:
        """Expire exactly ``snapshots`` of an Iceberg table and delete the files only they referenced."""
        self.check(table, "vacuum")
        ids = [s.snapshot_id for s in snapshots if s.snapshot_id is not None and not s.is_current]
        if not ids:
            return {}
        ident = f"{table.name.namespace}.{table.name.table}"
        array = ", ".join(f"{int(i)}L" for i in ids)
        # older_than at the epoch: no snapshot expires for its age, only the listed ones
        rows = self._sql(
            f"CALL `{self.catalog}`.system.expire_snapshots(table => '{ident}', "
            f"older_than => TIMESTAMP '1970-01-01 00:00:00', snapshot_ids => array({array}))"
        )
        return {k: int(v) for k, v in rows[0].asDict().items()} if rows else {}

    def vacuum_delta(self, table: LakehouseTable, retain: dt.timedelta) -> None:
        """Delta's VACUUM with the retention window (files no version inside it needs)."""
        self.check(table, "vacuum")
        hours = retain.total_seconds() / 3600
        self._sql(f"VACUUM {self._delta_path(table)} RETAIN {hours:.6f} HOURS")

    def delete_orphans(self, table: LakehouseTable, candidates: Sequence[ObjectInfo], older_than: float) -> list[str]:
        """Delete those of the planner's ``candidates`` that no snapshot references and that are older than
        ``older_than`` (epoch seconds); Spark re-checks reachability over all metadata. Returns what it deleted."""
        self.check(table, "orphan removal")
        if table.format != "iceberg":
            raise UnsupportedOperationError("orphan removal on Spark is for Iceberg; Delta's runs locally")
        if not candidates:
            return []
        session = self.session()
        java_table = self._java_table(table)
        location = str(java_table.location())
        rows = [
            (_iceberg_uri(f.path, location), dt.datetime.fromtimestamp(f.mtime_s or 0, tz=dt.UTC).replace(tzinfo=None))
            for f in candidates
        ]
        listing = session.createDataFrame(rows, "file_path string, last_modified timestamp")
        action = (
            self._jvm.org.apache.iceberg.spark.actions.SparkActions.get(session._jsparkSession)
            .deleteOrphanFiles(java_table)
            .compareToFileList(listing._jdf)
            .olderThan(int(older_than * 1000))
        )
        try:
            result = action.execute()
        except Exception as e:
            raise _spark_error(f"Spark orphan removal of {table.name}", e) from e
        deleted: list[str] = []
        it = result.orphanFileLocations().iterator()
        while it.hasNext():
            deleted.append(str(it.next()))
        return deleted

    # -- SQL -----------------------------------------------------------------------------------------------

    def query(
        self,
        sql: str,
        *,
        resolve: Callable[[TableName], LakehouseTable],
        as_of: Mapping[str, AsOf] | None = None,
        max_rows: int | None = None,
    ) -> QueryResult:
        """Run one SELECT over catalog tables on Spark, with the same names and time travel as the DuckDB
        engine (``AT (VERSION => n)``, ``--as-of``)."""
        from lakehouse.sql import QueryResult, access_of, rewrite

        limit = max_rows or self.settings.query.max_rows
        pinned = {TableName.parse(k): v for k, v in (as_of or {}).items()}
        rewritten, views = rewrite(sql, pinned, dialect="spark")
        tables = {name: resolve(name) for name, _ in views.values()}
        session = self.session()
        created: list[str] = []
        try:
            for view, (name, when) in views.items():
                table = tables[name]
                self.check(table, "query")
                snapshot = table.snapshot(when) if when is not None else None
                if table.format == "iceberg":
                    source = self._ident(table) + (f" VERSION AS OF {snapshot.snapshot_id}" if snapshot else "")
                else:
                    source = self._delta_path(table) + (f" VERSION AS OF {snapshot.version}" if snapshot else "")
                self._sql(f"CREATE OR REPLACE TEMPORARY VIEW `{view}` AS SELECT * FROM {source}")
                created.append(view)
            try:
                batches = session.sql(rewritten).limit(limit + 1)._collect_as_arrow()
            except Exception as e:
                raise QueryError(f"query failed on Spark: {_first_line(e)}") from e
            result = pa.Table.from_batches(batches) if batches else pa.table({})
            truncated = result.num_rows > limit
            return QueryResult(
                result.slice(0, limit) if truncated else result, truncated, rewritten, tuple(access_of(sql))
            )
        finally:
            for view in created:
                session.catalog.dropTempView(view)


# ---- conversions --------------------------------------------------------------------------------------------


def time_range(transform: str, value: str) -> tuple[dt.datetime, dt.datetime]:
    """The half-open time range of a time partition's human value.

    >>> time_range("day", "2026-11-20")
    (datetime.datetime(2026, 11, 20, 0, 0), datetime.datetime(2026, 11, 21, 0, 0))
    >>> time_range("month", "2026-12")[1]
    datetime.datetime(2027, 1, 1, 0, 0)
    """
    if transform == "year":
        low = dt.datetime(int(value), 1, 1)
        return low, low.replace(year=low.year + 1)
    if transform == "month":
        y, m = (int(x) for x in value.split("-")[:2])
        low = dt.datetime(y, m, 1)
        return low, (dt.datetime(y + 1, 1, 1) if m == 12 else dt.datetime(y, m + 1, 1))
    if transform == "day":
        low = dt.datetime.fromisoformat(value[:10])
        return low, low + dt.timedelta(days=1)
    if transform == "hour":
        low = dt.datetime.strptime(value, "%Y-%m-%d-%H")
        return low, low + dt.timedelta(hours=1)
    raise UnsupportedOperationError(f"partition transform {transform} has no time range")


def _time_literal(when: dt.datetime, t: pa.DataType) -> str:
    """An ISO literal Iceberg binds to the column's type (timestamptz needs the offset)."""
    if pa.types.is_date(t):
        return when.date().isoformat()
    if pa.types.is_timestamp(t) and t.tz is not None:
        return when.replace(tzinfo=dt.UTC).isoformat()
    return when.isoformat()


def _java_literal(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, bool | int | float | str):
        return value
    return str(value)


def _delta_partition_sql(partition: Mapping[str, Any]) -> str:
    """A predicate over Delta partition columns (Delta partitions are identity columns).

    >>> _delta_partition_sql({"day": "2026-01-01", "n": None})
    "`day` = '2026-01-01' AND `n` IS NULL"
    """
    terms = []
    for k, v in partition.items():
        col = "`" + k.replace("`", "``") + "`"
        if v is None:
            terms.append(f"{col} IS NULL")
        elif isinstance(v, bool | int | float):
            terms.append(f"{col} = {v!r}")
        else:
            text = v.isoformat() if isinstance(v, dt.date | dt.datetime) else str(v)
            terms.append(f"{col} = '" + text.replace("\\", "\\\\").replace("'", "\\'") + "'")
    return " AND ".join(terms)


def _iceberg_uri(path: str, location: str) -> str:
    """A listed path spelled like the table's location: Spark keeps only listed files whose text starts with
    it (``file:///x`` and ``file:/x`` differ there).

    >>> _iceberg_uri("/wh/t/data/a.parquet", "file:///wh/t"), _iceberg_uri("/wh/t/a", "file:/wh/t")
    ('file:///wh/t/data/a.parquet', 'file:/wh/t/a')
    >>> _iceberg_uri("s3://b/t/a", "s3a://b/t")
    's3a://b/t/a'
    """
    if "://" in path and not path.startswith("file:"):
        scheme = location.split("://", 1)[0] if "://" in location else "s3"
        return f"{scheme}://{path.split('://', 1)[1]}"
    plain = path[len("file:") :].lstrip("/") if path.startswith("file:") else path.lstrip("/")
    if location.startswith("file:///"):
        return "file:///" + plain
    if location.startswith("file:/"):
        return "file:/" + plain
    return "/" + plain


def _first_line(e: BaseException) -> str:
    r"""The message of a Spark / py4j error without the JVM stack (py4j puts the Java exception on the second
    line: ``An error occurred while calling o65.sql.`` then ``: org.apache...Exception: message``).

    >>> _first_line(RuntimeError("An error occurred while calling o1.sql.\n: a.b.ValidationException: boom\n\tat x"))
    'a.b.ValidationException: boom'
    """
    text = str(e).strip()
    for raw in text.splitlines():
        line = raw.strip().removeprefix(": ").strip()
        if line and not line.startswith(("at ", "Traceback", "An error occurred while calling")):
            return line[:500]
    return type(e).__name__


def _spark_error(what: str, e: Exception) -> LakehouseError:
    """Commit conflicts (a concurrent writer removed an input) become CommitConflictError."""
    from lakehouse.errors import CommitConflictError

    text = str(e)
    if "ValidationException" in text or "CommitFailedException" in text or "conflict" in text.lower():
        return CommitConflictError(f"{what}: {_first_line(e)}")
    return StorageError(f"{what}: {_first_line(e)}")
