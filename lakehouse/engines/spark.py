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
catalog at its own database. Before a JVM starts, the master URL, Java and the configured jar files are checked
(one-line errors saying what to do); the JVM's own console output (log4j, spark-submit) goes to a log file, not
to this process's stdout/stderr (``$LAKEHOUSE_SPARK_LOG`` names a file to keep it in; otherwise a temporary file
removed at exit, or kept and named in the error when the start failed), and a start-up failure is raised with
the cause found there.
"""

from __future__ import annotations

import atexit
import contextlib
import datetime as dt
import glob
import importlib.util
import json
import logging
import os
import re
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import pyarrow as pa
from pyspark.sql import SparkSession

from lakehouse.errors import (
    ConfigError,
    DependencyMissingError,
    InvalidInputError,
    LakehouseError,
    QueryError,
    StorageError,
    UnsupportedOperationError,
)
from lakehouse.storage import ObjectInfo, list_files
from lakehouse.tables.base import AsOf, LakehouseTable, Snapshot, StorageContext, TableName
from lakehouse.units import format_duration

if TYPE_CHECKING:
    from lakehouse.config import Settings
    from lakehouse.sql import QueryResult


class RewriteOptions(Protocol):
    """What a rewrite on Spark reads of the planner's thresholds (:class:`lakehouse.maintenance.planner.
    CompactionOptions`, which the engine, a layer below maintenance, does not import)."""

    @property
    def zorder(self) -> tuple[str, ...]: ...
    @property
    def target_file_size(self) -> int: ...
    @property
    def min_input_files(self) -> int: ...
    @property
    def small_threshold(self) -> int: ...


class PlannedPartition(Protocol):
    """What a rewrite on Spark reads of a picked partition (:class:`lakehouse.maintenance.planner.PartitionPlan`):
    its partition values."""

    @property
    def partition(self) -> Mapping[str, Any]: ...


ICEBERG_EXTENSIONS = "org.apache.iceberg.spark.extensions.IcebergSparkSessionExtensions"
DELTA_EXTENSIONS = "io.delta.sql.DeltaSparkSessionExtension"
DELTA_CATALOG = "org.apache.spark.sql.delta.catalog.DeltaCatalog"
ICEBERG_RUNTIME = "iceberg-spark-runtime-3.5_2.12"
DELTA_JARS_HINT = (
    "Delta on Spark needs the delta-spark jars (io.delta:delta-spark_2.12 and delta-storage 3.x): list them in "
    "the spark.jars setting (LAKEHOUSE_SPARK__JARS) or their Maven coordinates in spark.packages; without them "
    "run the job without --engine spark (delta-rs)"
)

JAVA_HINT = (
    "install Java 17, e.g. apt-get install openjdk-17-jre-headless on Debian/Ubuntu or scripts/install-system-deps.sh "
    "as root, and put java on PATH or set JAVA_HOME"
)
MASTER_FORMS = "local, local[N], local[*], spark://HOST:PORT, yarn, k8s://URL, mesos://HOST:PORT"
_MASTER = re.compile(r"local(\[(\*|[1-9][0-9]*)(,[1-9][0-9]*)?\])?|yarn|(spark|k8s|mesos)://\S+")
LOG_ENV = "LAKEHOUSE_SPARK_LOG"
"""Environment variable naming a file for the JVM's console output (default: a temporary file, removed at exit)."""

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


# ---- checks before a JVM starts -----------------------------------------------------------------------------


def check_master(master: str) -> str:
    """A Spark master URL of a form Spark accepts (checked before a JVM is started for it).

    >>> check_master("local[2]"), check_master("spark://h:7077"), check_master("k8s://https://h:443")
    ('local[2]', 'spark://h:7077', 'k8s://https://h:443')
    >>> check_master("bogus://x")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    lakehouse.errors.InvalidInputError: Spark master 'bogus://x' is not a master URL (use one of: local, ...
    """
    if not _MASTER.fullmatch(master.strip()):
        raise InvalidInputError(
            f"Spark master {master!r} is not a master URL",
            hint=f"use one of: {MASTER_FORMS}; set it with --spark-master or the spark.master setting",
        )
    return master.strip()


def java_major(version_output: str) -> int | None:
    """The major version in ``java -version``'s output (Java 8 spells itself 1.8).

    >>> java_major('openjdk version "17.0.15" 2025-04-15'), java_major('java version "1.8.0_392"')
    (17, 8)
    """
    m = re.search(r'version "(\d+)(?:\.(\d+))?', version_output)
    if not m:
        return None
    major = int(m.group(1))
    return int(m.group(2) or 0) if major == 1 else major


_java_checked: dict[str, int | None] = {}


def check_java() -> str:
    """The java Spark's launcher will run (``$JAVA_HOME/bin/java``, else ``java`` on PATH), checked to run and
    to be Java 11 or newer (Iceberg 1.10's runtime needs 11; Java 17 is what this project tests)."""
    home = os.environ.get("JAVA_HOME")
    if home:
        java, where = os.path.join(home, "bin", "java"), f"JAVA_HOME={home}"
        if not os.access(java, os.X_OK):
            raise DependencyMissingError(
                f"the Spark engine needs Java 17, and {where} has no runnable bin/java", hint=JAVA_HINT
            )
    else:
        found = shutil.which("java")
        if not found:
            raise DependencyMissingError("the Spark engine needs Java 17 and finds no java on PATH", hint=JAVA_HINT)
        java = found
    if java in _java_checked:
        return java
    try:
        proc = subprocess.run(  # noqa: S603 - the java Spark's own launcher would run
            [java, "-version"], capture_output=True, text=True, timeout=60, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        raise DependencyMissingError(f"the Spark engine cannot run {java}: {e}", hint=JAVA_HINT) from e
    text = (proc.stderr or "") + (proc.stdout or "")
    if proc.returncode != 0:
        raise DependencyMissingError(
            f"the Spark engine cannot run {java}: {' '.join(text.split())[:300] or f'exit {proc.returncode}'}",
            hint=JAVA_HINT,
        )
    major = java_major(text)
    if major is not None and major < 11:
        raise DependencyMissingError(f"{java} is Java {major}; the Spark engine needs Java 11 or newer", hint=JAVA_HINT)
    _java_checked[java] = major
    return java


def missing_jars(jars: Sequence[str]) -> list[str]:
    """The local jar paths (plain, ``file:`` or globs) among ``jars`` that match no file; remote URLs (``hdfs:``,
    ``https:``, ``s3a:``, ``local:`` ...) are Spark's to fetch and are not checked.

    >>> missing_jars(["/nope/delta-spark_2.12-3.3.2.jar", "https://repo/x.jar", "local:/opt/x.jar"])
    ['/nope/delta-spark_2.12-3.3.2.jar']
    """
    missing = []
    for jar in jars:
        path = jar[len("file:") :] if jar.startswith("file:") else jar
        if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", path):
            continue
        if path.startswith("//"):
            path = "/" + path.lstrip("/")
        found = glob.glob(path) if glob.has_magic(path) else ([path] if os.path.isfile(path) else [])
        if not found:
            missing.append(jar)
    return missing


def startup_cause(text: str) -> str | None:
    r"""The cause of a failed Spark start in the JVM's output or a py4j error: the deepest ``Caused by``, else
    the exception the launcher died of, else spark-submit's ``Error:`` line.

    >>> startup_cause('WARN x\nException in thread "main" org.apache.spark.SparkException: Master must be yarn\n\tat a')
    'org.apache.spark.SparkException: Master must be yarn'
    >>> startup_cause("java.lang.Exception: outer\n\tat a\nCaused by: java.io.IOException: disk full\n\tat b")
    'java.io.IOException: disk full'
    >>> startup_cause("Error: Missing application resource.\nUsage: spark-submit ...")
    'Error: Missing application resource.'
    >>> startup_cause("Invalid maximum heap size: -Xmxlots\nError: Could not create the Java Virtual Machine.")
    'Invalid maximum heap size: -Xmxlots (the JVM did not start)'
    """
    lines = [raw.strip() for raw in text.splitlines() if raw.strip()]
    caused = [ln.removeprefix("Caused by:").strip() for ln in lines if ln.startswith("Caused by:")]
    if caused:
        return caused[-1][:500]
    for ln in lines:
        m = re.match(r'Exception in thread "[^"]*" (.+)', ln)
        if m:
            return m.group(1)[:500]
    for i, ln in enumerate(lines):
        if ln.startswith("Error: ") or re.match(r"^[\w.$]+(Exception|Error): ", ln):
            if "Could not create the Java Virtual Machine" in ln and i > 0:  # the JVM said why just before
                return f"{lines[i - 1][:400]} (the JVM did not start)"
            return ln[:500]
    return None


def _quiet_py4j() -> None:
    """py4j logs connection errors with stack traces through Python's logging (shown on stderr without any
    logging set up); the errors reach the caller as exceptions anyway. Left alone when the application set a
    level."""
    logger = logging.getLogger("py4j")
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.CRITICAL)


def _launch_gateway(conf: Any) -> str:
    """Launch the JVM (spark-submit) as pyspark does, with its console output in a log file instead of this
    process's stdout/stderr; returns the log's path. A JVM that exits before it answers is a StorageError
    naming the cause found in its output."""
    from pyspark import SparkContext
    from pyspark.java_gateway import launch_gateway

    path = os.environ.get(LOG_ENV)
    if not path:
        fd, path = tempfile.mkstemp(prefix=f"lakehouse-spark-{os.getpid()}-", suffix=".log")
        os.close(fd)
    with open(path, "ab") as out:
        try:
            gateway = launch_gateway(conf, popen_kwargs={"stdout": out, "stderr": subprocess.STDOUT})
        except Exception as e:  # JAVA_GATEWAY_EXITED (PySparkRuntimeError), OSError
            out.flush()
            with open(path, errors="replace") as f:
                cause = startup_cause(f.read()[-200_000:])
            raise StorageError(
                f"cannot start Spark ({conf.get('spark.master')}): {cause or _first_line(e)}",
                hint=f"Spark's output: {path}",
            ) from e
    if not os.environ.get(LOG_ENV):
        _temporary_logs.add(path)
        atexit.register(_remove, path)
    SparkContext._ensure_initialized(gateway=gateway)
    return path


_temporary_logs: set[str] = set()
"""Temporary JVM logs removed at exit; one a failed start names in its error is taken out (kept)."""


def _remove(path: str) -> None:
    if path in _temporary_logs:
        with contextlib.suppress(OSError):
            os.remove(path)


def _keep(path: str | None) -> str | None:
    """Keep a temporary JVM log past exit (a start-up error names it)."""
    if path is not None:
        _temporary_logs.discard(path)
    return path


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
        """The master URL (``spark.master``, or ``--spark-master`` for a CLI run), checked for its form."""
        return check_master(self.settings.spark.master)

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
        if table.name.external:
            raise UnsupportedOperationError(
                f"{job} of {table.name} on Spark: the session is configured for lakehouse's own catalog, not "
                f"external catalog {table.name.catalog}",
                hint="run it on the local engine (--engine local), which commits through the owner catalog",
            )
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
            # Delta's check wants 7 days; check_vacuum_window holds the window to the table's orphan age instead
            conf["spark.databricks.delta.retentionDurationCheck.enabled"] = "false"
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

    def preflight(self) -> dict[str, str]:
        """What a session start needs, checked before a JVM is started: the master URL's form, a runnable Java
        11+ and every configured jar file. Returns the configuration the session starts with."""
        master = self.master
        conf = self._conf()
        s = self.settings.spark
        missing = missing_jars([*s.jars, *([s.jdbc_driver] if s.jdbc_driver else [])])
        if missing:
            raise ConfigError(
                f"Spark jar(s) not found: {', '.join(missing)}",
                hint="fix or remove them in the spark.jars setting, LAKEHOUSE_SPARK__JARS, or spark.jdbc_driver",
            )
        check_java()
        conf["spark.master"] = master
        return conf

    def _start(self) -> SparkSession:
        from pyspark import SparkConf, SparkContext

        conf = self.preflight()
        master = conf["spark.master"]
        if _is_local(master):
            os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        _quiet_py4j()
        log = None
        with SparkContext._lock:
            if SparkContext._gateway is None and "PYSPARK_GATEWAY_PORT" not in os.environ:
                log = _launch_gateway(SparkConf().setAll(list(conf.items())))
        builder = SparkSession.builder.master(master)
        for key, value in conf.items():
            builder = builder.config(key, value)
        try:
            session = builder.getOrCreate()
        except Exception as e:  # py4j / JVM start errors come as many classes
            cause = startup_cause(str(e)) or _first_line(e)
            raise StorageError(
                f"cannot start Spark ({master}): {cause}", hint=f"Spark's output: {_keep(log)}" if log else None
            ) from e
        session.sparkContext.setLogLevel("ERROR")
        return session

    def jvm_pid(self) -> int | None:
        """The process id of the session's JVM when this process launched it (None before a session starts)."""
        from pyspark import SparkContext

        proc = getattr(SparkContext._gateway, "proc", None) if SparkContext._gateway is not None else None
        return int(proc.pid) if proc is not None else None

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
        if table.name.external:
            self.check(table, "reading")
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
        parts: Sequence[PlannedPartition],
        options: RewriteOptions,
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
            # a file with a delete file (position or equality) is rewritten with its deletes applied
            "delete-file-threshold": "1",
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

    def _iceberg_filter(self, table: LakehouseTable, parts: Sequence[PlannedPartition]) -> Any:
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
                elif pf.transform == "bucket":  # Iceberg binds a transform term: bucket(col, n) = value
                    term = e.equal(e.bucket(pf.column, int(pf.width or 0)), int(value))
                elif pf.transform == "truncate":
                    t_value = int(value) if pa.types.is_integer(t) else _java_literal(value)
                    term = e.equal(e.truncate(pf.column, int(pf.width or 0)), t_value)
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
        parts: Sequence[PlannedPartition],
        options: RewriteOptions,
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

    def rewrite_manifests(self, table: LakehouseTable, properties: Mapping[str, str] | None = None) -> int:
        """Regroup an Iceberg table's manifests by partition (after a compaction); returns manifests rewritten.

        Runs Iceberg's ``RewriteManifests`` action rather than the ``rewrite_manifests`` procedure, which takes
        no snapshot properties: its snapshot carries ``properties`` (the job's ``lakehouse.job`` ...) with
        ``lakehouse.operation=rewrite_manifests``, so the job's last commit can be found by its properties."""
        if table.format != "iceberg":
            return 0
        session = self.session()
        action = self._jvm.org.apache.iceberg.spark.actions.SparkActions.get(session._jsparkSession).rewriteManifests(
            self._java_table(table)
        )
        for key, value in {**(properties or {}), "lakehouse.operation": "rewrite_manifests"}.items():
            action = action.snapshotProperty(key, value)
        try:
            result = action.execute()
        except Exception as e:
            raise _spark_error(f"Spark manifest rewrite of {table.name}", e) from e
        return sum(1 for _ in _java_iter(result.rewrittenManifests()))

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

    def default_orphan_age(self, table: LakehouseTable) -> dt.timedelta:
        """``retention.orphan_age`` from the settings alone (defaults < [policy] < [tables."ns.t"]); callers that
        know the table's stored policy pass its orphan age instead."""
        from lakehouse.policy import build_policy
        from lakehouse.units import parse_duration

        policy = build_policy(self.settings.policy, self.settings.tables.get(str(table.name), {}))
        return parse_duration(policy.retention.orphan_age)

    def check_vacuum_window(self, table: LakehouseTable, retain: dt.timedelta, orphan_age: dt.timedelta) -> None:
        """Refuse a Delta VACUUM window shorter than the table's orphan age.

        delta-spark's ``VACUUM ... RETAIN`` deletes, besides the files of expired versions, every file under the
        table that the log does not track and that is older than the window, such as the data files of a
        commit still in flight. The orphan age is this project's promise about those files (orphan removal
        never deletes younger ones); Delta's own ``retentionDurationCheck`` guards the same way (this engine
        turns that one off, as its 7-day default would refuse every shorter policy)."""
        if table.format == "delta" and retain < orphan_age:
            raise InvalidInputError(
                f"vacuum of Delta table {table.name} on Spark with a {format_duration(retain)} window: delta-spark's "
                f"VACUUM also deletes every untracked file older than the window (e.g. files of a write not yet "
                f"committed), and it is shorter than the table's orphan age {format_duration(orphan_age)} "
                "(retention.orphan_age)",
                hint=f"retain at least {format_duration(orphan_age)}, lower retention.orphan_age when no writer "
                "is active, or run without --engine spark (delta-rs deletes only the planned files)",
            )

    def vacuum_delta(
        self, table: LakehouseTable, retain: dt.timedelta, *, orphan_age: dt.timedelta | None = None
    ) -> list[ObjectInfo]:
        """Delta's VACUUM with the retention window (files no version inside it needs), refused for a window
        shorter than the orphan age (:meth:`check_vacuum_window`; default: :meth:`default_orphan_age`).

        Returns every file that disappeared from the table location while VACUUM ran (listed before and after):
        what it really deleted, the files of expired versions and untracked ones alike, so the job reports
        them all (a file another process deleted meanwhile would be counted too)."""
        self.check(table, "vacuum")
        if orphan_age is None:
            orphan_age = self.default_orphan_age(table)
        self.check_vacuum_window(table, retain, orphan_age)
        hours = retain.total_seconds() / 3600
        before = list_files(table.location, self.ctx)
        self._sql(f"VACUUM {self._delta_path(table)} RETAIN {hours:.6f} HOURS")
        left = {f.path for f in list_files(table.location, self.ctx)}
        return [f for f in before if f.path not in left]

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
        # modification times travel as epoch milliseconds and become timestamps inside Spark: a Python datetime
        # would be converted with this process's local time zone (a naive one) and shift every age by it
        listing = session.createDataFrame(
            orphan_listing(candidates, location), "file_path string, last_modified_ms long"
        ).selectExpr("file_path", "timestamp_millis(last_modified_ms) AS last_modified")
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
        return [str(p) for p in _java_iter(result.orphanFileLocations())]

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
        sources: dict[str, tuple[LakehouseTable, Snapshot | None]] = {}
        for view, (name, when) in views.items():  # refusals and unknown versions before a JVM starts
            table = tables[name]
            self.check(table, "query")
            sources[view] = (table, table.snapshot(when) if when is not None else None)
        session = self.session()
        created: list[str] = []
        try:
            for view, (table, snapshot) in sources.items():
                if table.format == "iceberg":
                    source = self._ident(table) + (f" VERSION AS OF {snapshot.snapshot_id}" if snapshot else "")
                else:
                    source = self._delta_path(table) + (f" VERSION AS OF {snapshot.version}" if snapshot else "")
                self._sql(f"CREATE OR REPLACE TEMPORARY VIEW `{view}` AS SELECT * FROM {source}")
                created.append(view)
            try:
                frame = session.sql(rewritten).limit(limit + 1)
                batches = frame._collect_as_arrow()
                # no rows come as no batches, hence no schema: take it from the plan
                result = pa.Table.from_batches(batches) if batches else _arrow_schema(frame.schema).empty_table()
            except Exception as e:
                raise QueryError(f"query failed on Spark: {_first_line(e)}") from e
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


def orphan_listing(candidates: Sequence[ObjectInfo], location: str) -> list[tuple[str, int]]:
    """``DeleteOrphanFiles``' file list: each candidate spelled like the table location, with its modification
    time as epoch milliseconds (an instant, whatever the process's time zone).

    >>> orphan_listing([ObjectInfo("/wh/t/data/a.parquet", 1, 1767225600.5)], "file:/wh/t")
    [('file:/wh/t/data/a.parquet', 1767225600500)]
    """
    return [(_iceberg_uri(f.path, location), round((f.mtime_s or 0.0) * 1000)) for f in candidates]


def _arrow_schema(schema: Any) -> pa.Schema:
    """A Spark result schema as Arrow's (as Spark's Arrow collection spells it: timestamps in UTC, the session
    time zone); a type pyspark cannot convert keeps its column, typed null."""
    from pyspark.sql.pandas.types import to_arrow_type

    fields = []
    for f in schema.fields:
        try:
            t = to_arrow_type(f.dataType)
        except (TypeError, ValueError):  # a type without an Arrow mapping in this pyspark
            t = pa.null()
        fields.append(pa.field(f.name, t, nullable=f.nullable))
    return pa.schema(fields)


def _java_iter(iterable: Any) -> Iterator[Any]:
    it = iterable.iterator()
    while it.hasNext():
        yield it.next()


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
