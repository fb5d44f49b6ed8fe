"""Sources that feed an :class:`~lakehouse.ingest.pipeline.Ingestor`: files (NDJSON, CSV, Parquet, stdin)
and Kafka topics (confluent-kafka). Each record carries a source key and a position, so a restart resumes
exactly where the table's last commit ended.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import hashlib
import io
import logging
import os
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from lakehouse.errors import (
    CommitConflictError,
    DependencyMissingError,
    InvalidInputError,
    LakehouseError,
    StorageError,
)
from lakehouse.ingest.pipeline import FlushResult, Ingestor
from lakehouse.ingest.records import RawRecord

FileFormat = Literal["ndjson", "csv", "parquet"]
JOIN_TIMEOUT_S = 60.0
UNREACHABLE_GRACE_S = 5.0
"""Seconds a consumer keeps trying while librdkafka reports every broker down, before the run stops."""
_EXTENSIONS: dict[str, FileFormat] = {
    ".ndjson": "ndjson",
    ".jsonl": "ndjson",
    ".json": "ndjson",
    ".csv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
}


@dataclass
class StopConditions:
    """When a run ends by itself (besides a signal or the end of a file)."""

    max_records: int | None = None
    until_idle: float | None = None


def file_format(path: str, given: str | None) -> FileFormat:
    if given:
        if given not in ("ndjson", "csv", "parquet"):
            raise InvalidInputError(f"unknown file format {given!r}", hint="use ndjson, csv or parquet")
        return given  # type: ignore[return-value]
    if path == "-":
        return "ndjson"
    fmt = _EXTENSIONS.get(Path(path).suffix.lower())
    if fmt is None:
        raise InvalidInputError(f"cannot tell the format of {path!r} from its name", hint="pass --input-format")
    return fmt


def file_records(path: str, fmt: FileFormat, source: str, start: int = 0) -> Iterator[RawRecord]:
    """Records of a file from position ``start`` (record number; blank NDJSON lines count but yield nothing)."""
    if fmt == "parquet":
        if path == "-":
            raise InvalidInputError("Parquet cannot be read from stdin", hint="give a file path")
        import pyarrow.parquet as pq

        try:
            pf = pq.ParquetFile(path)
        except (OSError, ValueError) as e:
            raise InvalidInputError(f"cannot read Parquet file {path!r}: {e}") from e
        position = 0
        for batch in pf.iter_batches(batch_size=10_000):
            if position + batch.num_rows <= start:
                position += batch.num_rows
                continue
            batch, finer = _microseconds(batch)
            for i, row in enumerate(batch.to_pylist()):
                if position >= start:
                    problem = f"column(s) {', '.join(finer[i])} hold nanoseconds" if finer.get(i) else None
                    yield RawRecord(row, source, position, problem=problem)
                position += 1
        return
    try:
        # stdin through a reader of its own over the descriptor: the thread reading it (see _polled) may still be
        # blocked in a read at exit, which sys.stdin's own buffer, flushed at shutdown, does not survive
        handle = open(sys.stdin.fileno(), "rb", closefd=False) if path == "-" else open(path, "rb")
    except OSError as e:
        raise InvalidInputError(f"cannot open {path!r}: {e.strerror}") from e
    try:
        if fmt == "ndjson":
            for position, line in enumerate(handle):
                if position < start:
                    continue
                if position == 0 and line.startswith(codecs.BOM_UTF8):  # a byte-order mark is no part of the record
                    line = line[len(codecs.BOM_UTF8) :]
                stripped = line.strip()
                if stripped:
                    yield RawRecord(stripped, source, position)
        else:
            yield from _csv_records(handle, source, start)
    finally:
        if path != "-":
            handle.close()


def _microseconds(batch: Any) -> tuple[Any, dict[int, list[str]]]:
    """A Parquet batch with its nanosecond timestamps as microseconds (what Python's datetime and the tables hold),
    and per row the columns whose value had a nanosecond part (its record goes to the quarantine)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    finer: dict[int, list[str]] = {}
    columns = []
    for name, col in zip(batch.schema.names, batch.columns, strict=True):
        if pa.types.is_timestamp(col.type) and col.type.unit == "ns":
            ticks = col.cast(pa.int64())
            rest = pc.subtract(ticks, pc.multiply(pc.divide(ticks, 1000), 1000))
            for i in pc.indices_nonzero(pc.fill_null(pc.not_equal(rest, 0), False)).to_pylist():
                finer.setdefault(i, []).append(name)
            col = col.cast(pa.timestamp("us", col.type.tz), safe=False)  # exact for every row kept
        columns.append(col)
    return pa.RecordBatch.from_arrays(columns, names=batch.schema.names), finer


MAX_CSV_FIELD = 64 << 20
"""Characters a CSV field may have; a longer one sends its row to the quarantine."""


def _csv_records(handle: Any, source: str, start: int) -> Iterator[RawRecord]:
    """A CSV file's rows as records keyed by its header. A byte-order mark is no part of the first name; a
    header naming a column twice is refused; a row with more or fewer fields than the header, or with bytes
    that are not UTF-8, goes to the quarantine (its fields would otherwise be dropped or read as NULL)."""
    text = io.TextIOWrapper(handle, encoding="utf-8-sig", errors="surrogateescape", newline="")
    if csv.field_size_limit() < MAX_CSV_FIELD:  # Python's default, 131,072 characters, is less than a note holds
        csv.field_size_limit(MAX_CSV_FIELD)
    reader = csv.reader(text)
    header = next(reader, None)
    if header is None:
        return
    twice = sorted({h for h in header if header.count(h) > 1})
    if twice:
        raise InvalidInputError(f"the CSV header names column(s) {', '.join(map(repr, twice))} more than once")
    position = -1
    while True:
        try:
            fields = next(reader, None)
        except csv.Error as e:  # a field beyond MAX_CSV_FIELD: that row to the quarantine, the reading goes on
            position += 1
            if position >= start:
                yield RawRecord(f"<a CSV row of {source}: {e}>", source, position, problem=f"unreadable CSV row: {e}")
            continue
        if fields is None:
            break
        if not fields:  # a blank line is no row (and no position), as csv.DictReader has it
            continue
        position += 1
        if position < start:
            continue
        problem = None
        if len(fields) != len(header):
            more = "more" if len(fields) > len(header) else "fewer"
            problem = f"the row has {len(fields)} fields, {more} than the header's {len(header)}"
        elif any(_not_utf8(v) for v in fields):
            problem = "the row holds bytes that are not UTF-8"
        if problem is not None:
            raw = ",".join(v.encode("utf-8", "surrogateescape").decode("utf-8", "replace") for v in fields)
            yield RawRecord(raw, source, position, problem=problem)
            continue
        yield RawRecord({k: (v if v != "" else None) for k, v in zip(header, fields, strict=True)}, source, position)


def _not_utf8(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # a byte surrogateescape kept
        return True
    return False


def ingest_file(
    ingestor: Ingestor,
    path: str,
    *,
    fmt: str | None = None,
    source_id: str | None = None,
    stop: threading.Event | None = None,
    conditions: StopConditions | None = None,
    on_flush: Callable[[FlushResult], None] | None = None,
) -> None:
    """Ingest a file (or ``-`` for stdin) through the pipeline, resuming after its last committed record.

    A file's position is saved under ``file:<absolute path>`` (or ``source_id``), and one ingest of a source
    runs at a time (a lease on the table and source: two at once would both commit what they read). stdin has
    no name of its own: without ``source_id`` each run is a new source (``stdin:<time>-<random>``), since what
    is piped in next is another stream, not the rest of the last one."""
    kind = file_format(path, fmt)
    if path != "-" and not os.path.exists(path):
        raise InvalidInputError(f"no such file {path!r}")
    if source_id:
        source = source_id
    elif path == "-":
        source = f"stdin:{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{uuid.uuid4().hex[:8]}"
    else:
        source = f"file:{os.path.abspath(path)}"
    with _source_lease(ingestor, source):
        start = ingestor.resume_position(source) or 0
        cond = conditions or StopConditions()
        seen = 0
        records: Iterator[RawRecord | None] = iter(file_records(path, kind, source, start))
        if path == "-":  # a pipe may stay open and idle: max-seconds and a stop still apply meanwhile
            records = _polled(records, every=0.2)
        for record in records:
            if record is not None:
                ingestor.add([record])
                seen += 1
            if ingestor.due():
                result = ingestor.flush()
                if on_flush:
                    on_flush(result)
            if (stop is not None and stop.is_set()) or (cond.max_records and seen >= cond.max_records):
                break
        result = ingestor.flush()
        if on_flush:
            on_flush(result)


def _polled(items: Iterator[RawRecord | None], *, every: float) -> Iterator[RawRecord | None]:
    """``items``, read by a thread of their own, with a None whenever ``every`` seconds pass without one (a
    blocking read of stdin would otherwise hold the loop: no flush at max-seconds, no stop on a signal)."""
    import queue

    box: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=10_000)

    def read() -> None:
        try:
            for item in items:
                box.put(("item", item))
        except BaseException as e:  # noqa: BLE001 - handed to the consumer, which raises it
            box.put(("error", e))
        box.put(("end", None))

    threading.Thread(target=read, name="lakehouse-stdin", daemon=True).start()
    while True:
        try:
            kind, value = box.get(timeout=every)
        except queue.Empty:
            yield None
            continue
        if kind == "end":
            return
        if kind == "error":
            raise value
        yield value


SOURCE_LEASE_TTL = 30.0
"""Seconds a source's lease outlives a killed ingest (a live one renews it every third of that)."""


def _dead_here(holder: str) -> bool:
    """True when ``holder`` (``ingest:<host>:<pid>:<id>``) names a process of this machine that no longer runs:
    its lease need not lapse before a rerun takes the source (a restart right after a kill)."""
    parts = holder.split(":")
    if len(parts) != 4 or parts[0] != "ingest" or parts[1] != socket.gethostname() or not parts[2].isdigit():
        return False
    try:
        os.kill(int(parts[2]), 0)
    except ProcessLookupError:
        return True
    except OSError:  # it exists (another user's): alive
        return False
    return False


@contextlib.contextmanager
def _source_lease(ingestor: Ingestor, source: str) -> Iterator[None]:
    """Hold the lease of ``source`` into the ingestor's table while the block runs; another ingest holding it is
    a :class:`CommitConflictError` (a lease outlives a killed process by :data:`SOURCE_LEASE_TTL` at most)."""
    catalog = ingestor.lh.catalog
    key = "ingest:" + hashlib.sha256(f"{ingestor.table.name}\0{source}".encode()).hexdigest()[:40]
    holder = f"ingest:{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    taken = catalog.acquire_lease(key, holder, ttl=SOURCE_LEASE_TTL, keep_alive=True)
    if not taken and _dead_here((catalog.lease(key) or {}).get("holder", "")):  # a killed run on this machine
        catalog.release_lease(key, (catalog.lease(key) or {}).get("holder", ""))
        taken = catalog.acquire_lease(key, holder, ttl=SOURCE_LEASE_TTL, keep_alive=True)
    if not taken:
        other = (catalog.lease(key) or {}).get("holder", "another process")
        raise CommitConflictError(
            f"another ingest of {source} into {ingestor.table.name} is running ({other}): two at once would both "
            "commit what they read",
            hint=f"wait for it to end (a killed one lets go within {SOURCE_LEASE_TTL:.0f} s), or give this run its "
            "own --source-id",
        )
    try:
        yield
    finally:
        with contextlib.suppress(LakehouseError):
            catalog.release_lease(key, holder)


_kafka_log = logging.getLogger("lakehouse.kafka")
_kafka_log.addHandler(logging.NullHandler())
_kafka_log.propagate = False


class KafkaIngest:
    """Consume a Kafka topic into a table. Partition positions come from the table on every assignment;
    consumer-group offsets are committed only after the table commit (they serve lag monitoring)."""

    def __init__(
        self,
        ingestor: Ingestor,
        *,
        bootstrap: str,
        topic: str,
        group: str,
        config: dict[str, Any] | None = None,
    ) -> None:
        try:
            from confluent_kafka import Consumer, KafkaError, KafkaException
        except ImportError as e:
            raise DependencyMissingError(
                "Kafka ingestion needs confluent-kafka", hint="pip install 'lakehouse[kafka]'"
            ) from e
        self.ingestor = ingestor
        self.topic = topic
        self.bootstrap = bootstrap
        conf: dict[str, Any] = {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "enable.partition.eof": False,
            "broker.address.family": "v4",
            # a group join takes about half the session timeout on some brokers; 6 s is Kafka's minimum
            "session.timeout.ms": 6_000,
            "heartbeat.interval.ms": 500,
            "topic.metadata.refresh.interval.ms": 5_000,
            "socket.timeout.ms": 10_000,
        }
        conf.update(config or {})
        # where a partition the table holds no position for starts: the table's, not the group's committed
        # offset (a table dropped and made again, or a new table read by an old group, starts at the beginning)
        reset = str(conf["auto.offset.reset"]).lower()
        self.start_at = "end" if reset in ("latest", "largest", "end") else "beginning"
        # librdkafka's own log lines (a broker down: one per retry) go to Python's logging, not the terminal;
        # what stops the run is said once, by the error that ends it
        conf.setdefault("logger", _kafka_log)
        self.unreachable: str | None = None

        def on_error(error: Any) -> None:  # librdkafka's: every broker of the bootstrap list is down
            if error.code() == KafkaError._ALL_BROKERS_DOWN:
                self.unreachable = str(error.str())

        conf.setdefault("error_cb", on_error)
        try:
            self.consumer = Consumer(conf)
        except (KafkaException, ValueError, TypeError) as e:  # an unknown property, a value of the wrong kind
            raise InvalidInputError(
                f"the Kafka consumer refused its configuration: {e}",
                hint="see --kafka-config (librdkafka's property names, e.g. security.protocol=SASL_SSL)",
            ) from None
        self.assigned: list[int] = []
        self.assigned_once = False
        self.records = 0

    def source(self, partition: int) -> str:
        return f"kafka:{self.topic}:{partition}"

    def _on_assign(self, consumer: Any, partitions: list[Any]) -> None:
        from confluent_kafka import OFFSET_BEGINNING, OFFSET_END

        for p in partitions:
            pos = self.ingestor.resume_position(self.source(p.partition))
            if pos is not None:
                p.offset = pos
            else:  # never the group's committed offset: those feed lag monitoring only
                p.offset = OFFSET_END if self.start_at == "end" else OFFSET_BEGINNING
        self.assigned = sorted(p.partition for p in partitions)
        self.assigned_once = True
        consumer.assign(partitions)

    def _on_revoke(self, consumer: Any, partitions: list[Any]) -> None:
        self.flush()
        self.assigned = []

    def flush(self) -> FlushResult:
        from confluent_kafka import KafkaException, TopicPartition

        result = self.ingestor.flush()
        if result.checkpoints:
            offsets = [
                TopicPartition(self.topic, int(source.rsplit(":", 1)[1]), pos)
                for source, pos in result.checkpoints.items()
            ]
            try:
                self.consumer.commit(offsets=offsets, asynchronous=False)
            except KafkaException:
                pass  # the table holds the truth; group offsets only feed lag monitoring
        return result

    def lag(self) -> int | None:
        """Messages not yet read on the assigned partitions (None when unknown)."""
        from confluent_kafka import TopicPartition

        total = 0
        try:
            positions = self.consumer.position([TopicPartition(self.topic, p) for p in self.assigned])
            for tp in positions:
                # cached: taken from fetch responses (some brokers answer a fresh query with a batch's base)
                _, high = self.consumer.get_watermark_offsets(tp, cached=True)
                if tp.offset >= 0:
                    total += max(0, high - tp.offset)
        except Exception:  # noqa: BLE001 - lag is informational; never stop ingestion for it
            return None
        return total

    def run(
        self,
        *,
        stop: threading.Event | None = None,
        conditions: StopConditions | None = None,
        on_flush: Callable[[FlushResult], None] | None = None,
        on_tick: Callable[[], None] | None = None,
    ) -> None:
        from confluent_kafka import KafkaError, KafkaException

        cond = conditions or StopConditions()
        self.consumer.subscribe([self.topic], on_assign=self._on_assign, on_revoke=self._on_revoke)
        started = last_message = time.monotonic()
        last_tick = 0.0
        try:
            while not (stop is not None and stop.is_set()):
                want = max(1, min(10_000, self.ingestor.policy.max_rows - self.ingestor.pending))
                if cond.max_records is not None:
                    want = min(want, cond.max_records - self.records)
                    if want <= 0:
                        break
                try:
                    messages = self.consumer.consume(num_messages=want, timeout=0.2)
                except KafkaException as e:
                    raise StorageError(f"Kafka error: {e}") from e
                batch = []
                for m in messages:
                    err = m.error()
                    if err is not None:
                        if err.code() == KafkaError._PARTITION_EOF:
                            continue
                        if err.fatal():
                            raise StorageError(f"Kafka error: {err.str()}")
                        continue
                    partition, offset = m.partition(), m.offset()
                    if partition is None or offset is None:
                        continue
                    batch.append(RawRecord(m.value() or b"", self.source(partition), offset))
                if batch:
                    self.records += len(batch)
                    self.ingestor.add(batch)
                    last_message = time.monotonic()
                if self.ingestor.due():
                    result = self.flush()
                    if on_flush:
                        on_flush(result)
                now = time.monotonic()
                if on_tick and now - last_tick >= 1.0:
                    last_tick = now
                    on_tick()
                if not self.assigned_once:
                    # idle time counts from the group join, which can take seconds
                    last_message = now
                    if self.unreachable is not None and now - started > UNREACHABLE_GRACE_S:
                        raise StorageError(
                            f"the Kafka broker(s) {self.bootstrap} cannot be reached: {self.unreachable}",
                            hint="check --kafka (host:port) and that the broker runs",
                        )
                    if now - started > JOIN_TIMEOUT_S:
                        raise StorageError(
                            f"no partitions of topic {self.topic!r} were assigned within {JOIN_TIMEOUT_S:.0f} s",
                            hint="check the topic exists and the broker is reachable",
                        )
                elif cond.until_idle is not None and now - last_message >= cond.until_idle:
                    break
            result = self.flush()
            if on_flush:
                on_flush(result)
        finally:
            self.consumer.close()
