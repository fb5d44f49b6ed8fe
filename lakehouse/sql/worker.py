"""Isolated queries: SQL from callers not trusted with the machine or the raw data runs in a worker process.

The isolation model, by construction rather than by a list of forbidden things:

* **A process with hard limits.** Each worker is a separate Python process whose address space is capped with
  ``RLIMIT_AS`` (its size once warm plus ``query.worker_memory``). A query that needs more fails inside the worker
  (DuckDB's allocation fails, or the process dies); the caller gets HTTP 413 and the worker is replaced. The
  parent waits for an answer only until the query's time limit, then kills the worker (HTTP 408). The server's
  own memory never holds more than one answer (at most ``query.max_result_bytes``). Address space grows with
  every thread (a stack, an allocator heap), so the worker's thread pools (DuckDB's, Arrow's, delta-rs's runtime)
  have a fixed size (``query.threads``, at most :data:`MAX_WORKER_THREADS`), whatever the machine's core count,
  and are started before the size is measured: the limit means the same on 2 cores as on 64.
* **An engine that cannot touch files.** The worker's DuckDB loads no extension and runs with external access
  switched off, no temporary directory, and its configuration locked before the query runs: no function of
  DuckDB, present or future, can open a path or a URL there. Lakehouse binds the tables the query may read into
  it as Arrow streams that the worker's Python code reads through the table adapters (the same code as every
  other read), with masked columns already masked for the caller's role, so DuckDB never holds a raw value of
  a masked column.
* **An allow-list.** The SQL is one query whose every function, expression and table is named by
  :mod:`lakehouse.sql.allowlist` (checked here on DuckDB's own parse of the SQL that runs, and once more before
  the query is sent).

Limits: the worker can read every table of the warehouse through the adapters (it needs the catalog and the
storage credentials to bind them), so the barrier between a caller and tables it was not given is the binding
itself (only the views lakehouse creates exist in the worker's DuckDB), not the operating system. CPU is bounded
by the time limit, not by a share.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import resource
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from lakehouse import errors
from lakehouse.errors import (
    ForbiddenError,
    LakehouseError,
    QueryError,
    QueryResourceError,
    QueryTimeoutError,
    StorageError,
)
from lakehouse.expr import Expr
from lakehouse.sql import allowlist
from lakehouse.sql.engine import QueryResult
from lakehouse.sql.pushdown import pushable
from lakehouse.sql.rewrite import access_of, needed_columns, rewrite
from lakehouse.tables.base import AsOf, Snapshot, TableName
from lakehouse.units import parse_size

if TYPE_CHECKING:
    from lakehouse.config import QuerySettings
    from lakehouse.masking import MaskPolicy
    from lakehouse.tables.base import LakehouseTable, StorageContext

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ViewSpec:
    """One table bound into the worker under a view name."""

    view: str
    table: str
    format: str
    location: str
    snapshot: Snapshot | None
    """The version to read (None: the current one when the worker reads it)."""
    columns: tuple[str, ...] | None
    """The columns the query can refer to (None: all)."""
    masks: Mapping[str, str] = field(default_factory=dict)
    """Column -> masking policy, applied before DuckDB sees a value."""
    ctx: StorageContext | None = None
    """Where the table lives when not in the worker's own context (an external catalog's table, another
    store)."""
    filter: Expr | None = None
    """The part of the query's WHERE clause the table's reader applies (see :mod:`lakehouse.sql.pushdown`)."""


@dataclass(frozen=True)
class Job:
    sql: str
    views: tuple[ViewSpec, ...]
    limit: int


@dataclass(frozen=True)
class WorkerConfig:
    """What a worker needs to bind tables and run queries; sent once when it starts."""

    ctx: StorageContext
    mask_secret: bytes | None
    memory_budget: int
    duckdb_memory: int
    threads: int | None
    max_result_bytes: int


class IsolatedEngine:
    """Runs queries in a pool of worker processes (see the module docstring)."""

    def __init__(self, ctx: StorageContext, settings: QuerySettings, *, mask_secret: bytes | None = None) -> None:
        self.settings = settings
        budget = parse_size(settings.worker_memory)
        self.config = WorkerConfig(
            ctx=ctx,
            mask_secret=mask_secret,
            memory_budget=budget,
            duckdb_memory=min(parse_size(settings.memory_limit), budget // 2),
            threads=settings.threads,
            max_result_bytes=parse_size(settings.max_result_bytes),
        )
        self.pool = WorkerPool(self.config, size=settings.workers)

    def close(self) -> None:
        self.pool.close()

    def query(
        self,
        sql: str,
        *,
        resolve: Callable[[TableName], LakehouseTable],
        as_of: Mapping[str, AsOf] | None = None,
        max_rows: int | None = None,
        masks: Callable[[LakehouseTable], Mapping[str, MaskPolicy]] | None = None,
        timeout: float | None = None,
    ) -> QueryResult:
        """Run one SELECT over catalog tables in a worker.

        Args:
            masks: masking policies per table for a caller without the PII-read permission; the worker masks
                those columns before its engine sees them. Such a caller cannot read quarantine tables at all
                (they hold raw input).
            timeout: seconds, counted from this call (default ``query.timeout_seconds``): past it the worker is
                killed (:class:`QueryTimeoutError`).
        """
        deadline = time.monotonic() + (timeout or self.settings.timeout_seconds)
        limit = max_rows or self.settings.max_rows
        pinned = {TableName.parse(k): v for k, v in (as_of or {}).items()}
        rewritten, views = rewrite(sql, pinned)
        allowlist.check_sql(rewritten, tables=views)
        tables = {name: resolve(name) for name, _ in views.values()}
        if masks is not None:
            _refuse_quarantine(tables)
        wanted = needed_columns(rewritten)
        specs = []
        with contextlib.ExitStack() as pins:  # the schema asked for several times per table: not reloaded each time
            for table in tables.values():
                pins.enter_context(table.pinned(refresh=False))
            for view, (name, when) in views.items():
                table = tables[name]
                masked = {c: str(p) for c, p in (masks(table) if masks is not None else {}).items()}
                columns = None if wanted is None else _columns_of(table, wanted)
                # the current version only: an older one may lack a column the filter names (it reads as NULL)
                pushed = pushable(rewritten, view, table.schema, masked) if when is None else None
                specs.append(
                    ViewSpec(
                        view=view,
                        table=str(name),
                        format=table.format,
                        location=table.location,
                        snapshot=table.snapshot(when) if when is not None else None,
                        columns=columns,
                        masks={c: p for c, p in masked.items() if columns is None or c in columns},
                        ctx=table.ctx if table.ctx != self.config.ctx else None,
                        filter=pushed,
                    )
                )
        result, truncated = self.pool.run(Job(rewritten, tuple(specs), limit), deadline)
        return QueryResult(result, truncated, rewritten, tuple(access_of(sql)))


def _columns_of(table: LakehouseTable, wanted: set[str]) -> tuple[str, ...]:
    """The table's columns a query names (at least one, so that rows keep their count)."""
    names = [c for c in table.schema.names if c.lower() in wanted]
    return tuple(names or table.schema.names[:1])


def _refuse_quarantine(tables: Mapping[TableName, LakehouseTable]) -> None:
    """Quarantine tables hold raw input (payloads, and errors that quote values): no masking policy can know
    which part of a payload is PII, so a caller without the PII-read permission cannot read them at all."""
    from lakehouse.names import is_quarantine

    for name in tables:
        if is_quarantine(name):
            raise ForbiddenError(
                f"{name} is a quarantine table: it holds raw input, readable only with the PII-read permission",
                hint="ask an admin, or query the target table",
            )


# ---- the parent's side ---------------------------------------------------------------------------------------


class _Worker:
    """A running worker process and the parent's end of its socket."""

    def __init__(self, config: WorkerConfig, deadline: float | None = None) -> None:
        parent, child = socket.socketpair()
        import lakehouse

        # the worker imports the same lakehouse as this process, wherever that came from
        root = os.path.dirname(os.path.dirname(os.path.abspath(lakehouse.__file__)))
        env = {
            **os.environ,
            **worker_environment(worker_threads(config.threads)),
            "PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p),
        }
        try:
            self.process = subprocess.Popen(  # noqa: S603 - our own interpreter and module, no user input
                [sys.executable, "-m", "lakehouse.sql.worker", str(child.fileno())],
                pass_fds=(child.fileno(),),
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # a Ctrl-C at the terminal is the parent's to handle
                cwd="/",
                env=env,
            )
        finally:
            child.close()
        self.conn = Connection(parent.detach())
        self.queries = 0
        wait = 60.0 if deadline is None else min(60.0, max(0.0, deadline - time.monotonic()))
        try:
            self.conn.send(config)
            if not self.conn.poll(wait):
                self.kill()
                if deadline is not None and time.monotonic() >= deadline:
                    raise QueryTimeoutError("the time limit was reached while a query worker started")
                raise QueryError("a query worker did not start within 60 s", hint="see the server's log")
            reply = self.conn.recv()
        except (OSError, EOFError) as e:
            self.kill()
            raise QueryError(f"a query worker could not start ({e})", hint="see the server's log") from e
        if reply[0] != "ready":
            self.kill()
            raise QueryError(f"a query worker could not start: {reply[1]}")

    def kill(self) -> None:
        with contextlib.suppress(OSError):
            self.process.kill()
        with contextlib.suppress(OSError, subprocess.TimeoutExpired):
            self.process.wait(timeout=10)
        with contextlib.suppress(OSError):
            self.conn.close()

    def alive(self) -> bool:
        return self.process.poll() is None


RECYCLE_AFTER = 500
"""Queries a worker answers before it is replaced (memory a long-lived process fragments stays bounded)."""


class WorkerPool:
    """Up to ``size`` workers, one query each at a time; an idle one is kept warm."""

    def __init__(self, config: WorkerConfig, *, size: int) -> None:
        self.config = config
        self.size = size
        self._slots = threading.BoundedSemaphore(size)
        self._idle: list[_Worker] = []
        self._lock = threading.Lock()
        self._closed = False
        self._warming: threading.Thread | None = None

    def warm(self) -> None:
        """Start one worker in the background so the first query does not wait for it."""
        with self._lock:
            if self._closed or self._idle or (self._warming is not None and self._warming.is_alive()):
                return
            self._warming = threading.Thread(target=self._warm, name="lakehouse-query-worker-start", daemon=True)
            self._warming.start()

    def _warm(self) -> None:
        try:
            worker = _Worker(self.config)
        except LakehouseError:
            logger.exception("could not start a query worker ahead of time")
            return
        self._give_back(worker)

    def _take(self, deadline: float) -> _Worker:
        """An idle worker; else the one starting in the background, if it is ready in time; else a new one."""
        while True:
            with self._lock:
                while self._idle:
                    worker = self._idle.pop()
                    if worker.alive():
                        return worker
                    worker.kill()
                warming = self._warming if self._warming is not None and self._warming.is_alive() else None
            if warming is None:
                return _Worker(self.config, deadline)
            warming.join(max(0.0, deadline - time.monotonic()))
            if time.monotonic() >= deadline:
                raise QueryTimeoutError("the time limit was reached while a query worker started")

    def _give_back(self, worker: _Worker) -> None:
        with self._lock:
            if not self._closed and worker.alive() and worker.queries < RECYCLE_AFTER:
                self._idle.append(worker)
                return
        worker.kill()

    def run(self, job: Job, deadline: float) -> tuple[pa.Table, bool]:
        """Send ``job`` to a worker; its rows (at most ``job.limit``) and whether there were more."""
        if not self._slots.acquire(timeout=max(0.0, deadline - time.monotonic())):
            raise QueryTimeoutError("the time limit was reached while every query worker was busy")
        try:
            worker = self._take(deadline)
            try:
                reply = self._ask(worker, job, deadline)
            except BaseException:
                worker.kill()
                self.warm()
                raise
            worker.queries += 1
            if reply[0] == "memory":
                worker.kill()
                self.warm()
            else:
                self._give_back(worker)
        finally:
            self._slots.release()
        return _answer(reply)

    def _ask(self, worker: _Worker, job: Job, deadline: float) -> tuple[Any, ...]:
        try:
            worker.conn.send(job)
            if not worker.conn.poll(max(0.0, deadline - time.monotonic())):
                raise QueryTimeoutError("the query was stopped at its time limit")
            reply: tuple[Any, ...] = worker.conn.recv()
        except (EOFError, OSError) as e:
            code = worker.process.poll() if worker.process.poll() is not None else worker.process.wait(timeout=10)
            raise QueryResourceError(
                f"the query's worker process ended (exit status {code}) before answering; most likely the query "
                "needed more memory than a query may use",
                hint="select fewer rows or columns, or aggregate",
            ) from e
        return reply

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for worker in idle:
            worker.kill()


def _answer(reply: tuple[Any, ...]) -> tuple[pa.Table, bool]:
    kind = reply[0]
    if kind == "ok":
        with pa.ipc.open_stream(pa.py_buffer(reply[1])) as stream:
            return stream.read_all(), bool(reply[2])
    if kind == "memory":
        raise QueryResourceError(
            f"the query needed more memory than a query may use ({reply[1]})",
            hint="select fewer rows or columns, or aggregate",
        )
    cls = getattr(errors, str(reply[1]), None)
    if not (isinstance(cls, type) and issubclass(cls, LakehouseError)):
        cls = QueryError
    raise cls(str(reply[2]), hint=reply[3])


# ---- the worker's side ---------------------------------------------------------------------------------------

MAX_WORKER_THREADS = 4
"""Threads per pool in a worker unless ``query.threads`` says otherwise; the tables reach DuckDB as Arrow
streams read in the worker, which more threads hardly speed up."""


def worker_threads(configured: int | None) -> int:
    return configured or min(os.cpu_count() or 1, MAX_WORKER_THREADS)


def worker_environment(threads: int) -> dict[str, str]:
    """Variables a worker starts with: the pools that size themselves by the core count at start-up (glibc's
    malloc arenas, delta-rs's tokio runtime, Arrow's pools) sized by ``threads`` instead."""
    return {
        "MALLOC_ARENA_MAX": "2",
        "TOKIO_WORKER_THREADS": str(threads),
        "OMP_NUM_THREADS": str(threads),
        "ARROW_IO_THREADS": str(threads),
    }


def _address_space() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


def serve(conn: Connection) -> None:
    """The worker's loop: one configuration, then jobs until the parent goes."""
    try:
        config: WorkerConfig = conn.recv()
    except (EOFError, OSError):
        return  # the parent went before the worker started (a server shutting down)
    try:
        import duckdb

        from lakehouse import masking  # noqa: F401 (imported before the limit applies)
        from lakehouse.tables.registry import adapter_class

        for fmt in ("delta", "iceberg"):
            with contextlib.suppress(LakehouseError):  # a missing SDK fails the query that needs it
                adapter_class(fmt)
        limit = _warm(config) + config.memory_budget
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    except Exception as e:  # noqa: BLE001 - reported to the parent, which refuses to use this worker
        with contextlib.suppress(OSError):
            conn.send(("failed", f"{type(e).__name__}: {e}"))
        return
    try:
        conn.send(("ready", os.getpid()))
    except OSError:
        return
    while True:
        try:
            job: Job = conn.recv()
        except (EOFError, OSError):
            return
        try:
            reply: tuple[Any, ...] = ("ok", *_run(config, job))
        except (MemoryError, duckdb.OutOfMemoryException) as e:
            conn.send(("memory", _first_line(e)))
            return  # a process that ran out of memory is not trusted with the next query
        except LakehouseError as e:
            reply = ("error", type(e).__name__, e.message, e.hint)
        except Exception as e:  # noqa: BLE001 - the parent answers with a problem document
            if _out_of_address_space(e):
                conn.send(("memory", _first_line(e)))
                return
            if isinstance(e, duckdb.Error):
                reply = ("error", "QueryError", f"query failed: {_first_line(e)}", None)
            else:
                reply = ("error", "StorageError", f"query failed: {type(e).__name__}: {_first_line(e)}", None)
        try:
            conn.send(reply)
        except (MemoryError, OSError):
            return


def _warm(config: WorkerConfig) -> int:
    """Start every thread pool a query uses and return the address space with all of them running."""
    import pyarrow.parquet as pq

    threads = worker_threads(config.threads)
    pa.set_cpu_count(threads)
    pa.set_io_thread_count(threads)
    sink = io.BytesIO()  # a threaded Parquet read starts Arrow's pools and their allocator heaps
    pq.write_table(pa.table({"n": pa.array(range(threads * 1024), pa.int64())}), sink, row_group_size=1024)
    pq.read_table(io.BytesIO(sink.getvalue()), use_threads=True)
    con = _connect(config)  # DuckDB's own start-up cost and its threads, measured while they run
    try:
        allowlist.reserved_names(con)
        con.execute("SELECT sum(range) FROM range(1000000)").fetchall()
        return _address_space()
    finally:
        con.close()


def _q(ident: str) -> str:
    return '"' + ident.replace('"', '""') + '"'


def _connect(config: WorkerConfig) -> Any:
    import duckdb

    settings: dict[str, Any] = {
        "autoinstall_known_extensions": False,
        "autoload_known_extensions": False,
        "enable_external_access": False,
        "memory_limit": f"{config.duckdb_memory}B",
        "temp_directory": "",  # no spilling: the engine writes no file either
    }
    settings["threads"] = worker_threads(config.threads)
    return duckdb.connect(config=settings)


def _run(config: WorkerConfig, job: Job) -> tuple[bytes, bool]:
    import duckdb

    con = _connect(config)
    try:
        sources = [_Source(spec, config) for spec in job.views]
        for i, (spec, source) in enumerate(zip(job.views, sources, strict=True)):
            floats = source.float_columns()
            if not floats:
                con.register(spec.view, source)
                continue
            # DuckDB hands a registered stream's filters to pyarrow, where NaN compares false (`f > 1` lost
            # the NaN rows DuckDB's own comparison keeps): float columns reach the query through `* 1` (exact:
            # NaN, -0.0, infinity and NULL stay themselves), which DuckDB filters itself
            raw = f"lh_stream_{i}"
            con.register(raw, source)
            exact = ", ".join(f"{_q(c)} * 1 AS {_q(c)}" for c in floats)
            con.execute(f"CREATE TEMP VIEW {_q(spec.view)} AS SELECT * REPLACE ({exact}) FROM {raw}")
        con.execute("SET lock_configuration = true")
        allowlist.check(allowlist.parse(con, job.sql), tables=[s.view for s in job.views], reserved=_reserved(con))
        try:
            reader = con.execute(job.sql).to_arrow_reader(min(job.limit + 1, 100_000))
            batches: list[pa.RecordBatch] = []
            rows = 0
            for batch in reader:
                batches.append(batch)
                rows += batch.num_rows
                if rows > job.limit:
                    break
        except duckdb.Error as e:
            _raise_source_failure(sources, e)
            raise
        table = pa.Table.from_batches(batches, schema=reader.schema)
        truncated = table.num_rows > job.limit
        if truncated:
            table = table.slice(0, job.limit)
        sink = io.BytesIO()
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
        payload = sink.getvalue()
        if len(payload) > config.max_result_bytes:
            raise QueryResourceError(
                f"the answer is {len(payload):,} bytes; at most {config.max_result_bytes:,} are sent",
                hint="ask for fewer rows (max_rows) or columns",
            )
        return payload, truncated
    finally:
        con.close()


def _raise_source_failure(sources: Sequence[_Source], error: BaseException) -> None:
    """A table read that failed inside DuckDB's scan reaches DuckDB as its own error ("arrow_scan: ..."): raise
    what the read raised instead (a storage failure is the store's, HTTP 502, not a bad query's 400)."""
    failure = next((s.failure for s in sources if s.failure is not None), None)
    if failure is None:
        return
    if isinstance(failure, MemoryError) or _out_of_address_space(failure):
        raise MemoryError(_first_line(failure)) from error
    if isinstance(failure, LakehouseError):
        raise failure from error
    raise StorageError(f"reading a table failed: {type(failure).__name__}: {_first_line(failure)}") from error


def _reserved(con: Any) -> frozenset[str]:
    return allowlist.reserved_names(con)


class _Source:
    """A table bound into DuckDB as an Arrow stream; each scan DuckDB starts reads it anew (a self-join reads
    twice), masked columns masked batch by batch."""

    def __init__(self, spec: ViewSpec, config: WorkerConfig) -> None:
        from lakehouse.masking import parse_mask
        from lakehouse.tables.registry import adapter_class

        self.spec = spec
        self.failure: BaseException | None = None
        """What reading the table raised (DuckDB reports it as its own error)."""
        self.secret = config.mask_secret
        self.masks = {c: parse_mask(p) for c, p in spec.masks.items()}
        self.table = adapter_class(spec.format).open(
            TableName.parse(spec.table), location=spec.location, ctx=spec.ctx or config.ctx
        )

    def float_columns(self) -> list[str]:
        """The stream's float columns as the table declares them (masked ones excepted: a mask may change the
        type)."""
        schema = self.table.schema
        names = self.spec.columns if self.spec.columns is not None else schema.names
        return [c for c in names if c not in self.masks and pa.types.is_floating(schema.field(c).type)]

    def __arrow_c_stream__(self, requested_schema: Any = None) -> Any:
        try:
            reader = self.table.batches(self.spec.snapshot, columns=self.spec.columns, filter=self.spec.filter)
        except Exception as e:
            self.failure = e
            raise
        batches = self._masked(reader) if self.masks else reader
        return pa.RecordBatchReader.from_batches(reader.schema, self._watched(batches)).__arrow_c_stream__(
            requested_schema
        )

    def _watched(self, batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        try:
            yield from batches
        except Exception as e:  # remembered: DuckDB turns it into an error of its own
            self.failure = e
            raise

    def _masked(self, reader: pa.RecordBatchReader) -> Iterator[pa.RecordBatch]:
        from lakehouse.masking import mask_array

        schema = reader.schema
        for batch in reader:
            columns = []
            for i, f in enumerate(schema):
                column = batch.column(i)
                policy = self.masks.get(f.name)
                if policy is not None:
                    if policy.kind == "null":
                        column = pa.nulls(batch.num_rows, f.type)
                    else:
                        column = mask_array(column, policy, self.secret)
                        column = column.cast(f.type) if column.type != f.type else column
                columns.append(column)
            yield pa.RecordBatch.from_arrays(columns, schema=schema)


_EXHAUSTED = ("can't start new thread", "Failed to launch worker thread", "std::bad_alloc", "Cannot allocate memory")


def _out_of_address_space(e: BaseException) -> bool:
    """Whether an error is the address-space limit showing through another layer (a thread or an allocation
    refused inside Arrow or DuckDB, reported as their own error): the limit's answer (413), not a bad query."""
    text = str(e)
    return any(marker in text for marker in _EXHAUSTED)


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def main(argv: Sequence[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    serve(Connection(int(args[0])))


if __name__ == "__main__":
    main()
