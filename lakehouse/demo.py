"""``lakehouse demo``: the end-to-end walk through on the embedded default (a local warehouse directory).

It creates one Delta and one Iceberg table with the same schema, partitioned by ``day(ts)``, streams
generated IoT events (and a few malformed ones) through a real Kafka-protocol broker (Tansu, started
locally) into both tables in small micro-batches, and shows partitions, files, versions, the quarantine, a
SQL query over both tables and a time-travel query. The many small files it leaves are what the
maintenance jobs are for.
"""

from __future__ import annotations

import datetime as dt
import random
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import orjson
import pyarrow as pa
from rich.console import Console
from rich.progress import Progress
from rich.table import Table as RichTable
from rich.text import Text

from lakehouse.errors import LakehouseError, TableNotFoundError
from lakehouse.schema import parse_partitioning, parse_schema
from lakehouse.storage import delete_tree
from lakehouse.tables.base import TableName
from lakehouse.tables.registry import adapter_class

if TYPE_CHECKING:
    from lakehouse.core import Lakehouse
    from lakehouse.ingest.broker import LocalBroker

EVENT_SCHEMA = parse_schema(
    "event_id:int64 not null, ts:timestamp not null, device_id:int64, kind:string, temperature:float64, country:string"
)
DEMO_TABLES = {"delta": "demo.events_delta", "iceberg": "demo.events_iceberg"}
KINDS = ("reading", "reading", "reading", "alert", "heartbeat")
COUNTRIES = ("DE", "FR", "NL", "US", "JP", "BR")


def generate_events(n: int, *, start_id: int, rng: random.Random, start: dt.datetime, days: int = 3) -> pa.Table:
    """``n`` IoT events with ids from ``start_id``, spread over ``days`` days from ``start``."""
    span = days * 86_400
    ts = [start + dt.timedelta(seconds=rng.randrange(span)) for _ in range(n)]
    return pa.table(
        {
            "event_id": pa.array(range(start_id, start_id + n), pa.int64()),
            "ts": pa.array(ts, pa.timestamp("us", tz="UTC")),
            "device_id": pa.array([rng.randrange(1, 200) for _ in range(n)], pa.int64()),
            "kind": pa.array([rng.choice(KINDS) for _ in range(n)]),
            "temperature": pa.array([round(rng.gauss(21.0, 4.0), 2) for _ in range(n)]),
            "country": pa.array([rng.choice(COUNTRIES) for _ in range(n)]),
        },
        schema=EVENT_SCHEMA,
    )


def run_demo(
    lh: Lakehouse, *, batches: int, rows: int, seed: int, console: Console, autopilot_rounds: int = 3
) -> dict[str, int]:
    """Run the demo; returns the row count per table (the same for both)."""
    console.rule("lakehouse demo")
    info = lh.init()
    console.print(f"warehouse: {info['warehouse']}\ncatalog:   {info['catalog_url']}")

    for fmt, name in DEMO_TABLES.items():
        reset_table(lh, name, fmt)
        reset_table(lh, f"{name}__quarantine", fmt)
    for fmt, name in DEMO_TABLES.items():
        lh.create_table(
            name,
            schema=EVENT_SCHEMA,
            format=fmt,
            partitioning=parse_partitioning("day(ts)"),
            keys=["event_id"],
        )
        console.print(f"created {fmt:7} table {name} partitioned by day(ts)")

    rng = random.Random(seed)
    start = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
    t0 = time.perf_counter()
    broker = _local_broker(console)  # one for the whole demo, stopped at its end
    try:
        return _run_demo(
            lh,
            broker,
            batches=batches,
            rows=rows,
            rng=rng,
            start=start,
            t0=t0,
            console=console,
            autopilot_rounds=autopilot_rounds,
        )
    finally:
        if broker is not None:
            broker.stop()


def _run_demo(
    lh: Lakehouse,
    broker: LocalBroker | None,
    *,
    batches: int,
    rows: int,
    rng: random.Random,
    start: dt.datetime,
    t0: float,
    console: Console,
    autopilot_rounds: int,
) -> dict[str, int]:
    total = batches * rows
    after_second: dict[str, int] = {}
    if broker is not None:
        stats = _stream_through_kafka(lh, broker, batches=batches, rows=rows, rng=rng, start=start, console=console)
        for name, st in stats.items():
            console.print(
                f"streamed {st['records']:,} events via Kafka into {name}: {st['rows']:,} rows in "
                f"{st['batches']} micro-batches, {st['quarantined']} malformed events quarantined"
            )
        for name in DEMO_TABLES.values():
            data_commits = [s for s in lh.table(name).snapshots() if s.operation not in ("create-table", "create")]
            after_second[name] = data_commits[min(1, len(data_commits) - 1)].version
    else:
        with Progress(console=console, transient=True) as progress:
            task = progress.add_task("appending micro-batches", total=batches)
            for b in range(batches):
                batch = generate_events(rows, start_id=b * rows, rng=rng, start=start)
                for name in DEMO_TABLES.values():
                    result = lh.append(name, batch, properties={"demo.batch": str(b)})
                    if b == 1:
                        after_second[name] = result.version
                progress.advance(task)
    console.print(f"{total:,} events into both tables in {time.perf_counter() - t0:.1f} s")

    overview = RichTable("table", "format", "versions", "partitions", "files", "rows", "bytes")
    for fmt, name in DEMO_TABLES.items():
        table = lh.table(name)
        files = table.files()
        parts = {tuple(sorted((k, str(v)) for k, v in f.partition.items())) for f in files}
        overview.add_row(
            name,
            fmt,
            str(len(table.snapshots())),
            str(len(parts)),
            str(len(files)),
            f"{sum(f.row_count for f in files):,}",
            f"{sum(f.size_bytes for f in files):,}",
        )
    console.print(overview)

    for name in DEMO_TABLES.values():
        history = RichTable("version", "time (UTC)", "operation", title=f"history of {name}")
        for s in lh.table(name).snapshots()[-4:]:
            history.add_row(str(s.version), s.timestamp.strftime("%H:%M:%S.%f")[:-3], s.operation)
        console.print(history)

    sql = (
        "SELECT CAST(d.ts AS DATE) AS day, count(*) AS delta_rows, "
        "(SELECT count(*) FROM demo.events_iceberg i WHERE CAST(i.ts AS DATE) = CAST(d.ts AS DATE)) AS iceberg_rows, "
        "round(avg(d.temperature), 2) AS avg_temp FROM demo.events_delta d GROUP BY 1 ORDER BY 1"
    )
    console.print(Text.assemble("\n", ("SQL", "bold"), f" {sql}"), highlight=False)
    _print(console, lh.query(sql).table)

    delta_v, ice_v = after_second[DEMO_TABLES["delta"]], after_second[DEMO_TABLES["iceberg"]]
    tt_sql = (
        f"SELECT 'delta' AS tbl, count(*) AS rows_then FROM demo.events_delta AT (VERSION => {delta_v}) "
        f"UNION ALL SELECT 'iceberg', count(*) FROM demo.events_iceberg AT (VERSION => {ice_v})"
    )
    heading = Text.assemble("\n", ("time travel", "bold"), f" (after the 2nd micro-batch) {tt_sql}")
    console.print(heading, highlight=False)
    _print(console, lh.query(tt_sql).table)

    counts = {name: lh.table(name).row_count() for name in DEMO_TABLES.values()}
    console.print(
        f"\nnow: {counts[DEMO_TABLES['delta']]:,} rows in Delta, {counts[DEMO_TABLES['iceberg']]:,} in Iceberg. "
        "Try: lakehouse table show demo.events_iceberg; lakehouse table history demo.events_delta"
    )
    if autopilot_rounds:
        start_id = max(counts.values())
        _autopilot_beside_stream(
            lh, broker, rounds=autopilot_rounds, rows=rows, start_id=start_id, rng=rng, console=console
        )
        counts = {name: lh.table(name).row_count() for name in DEMO_TABLES.values()}
    return counts


def _autopilot_beside_stream(
    lh: Lakehouse,
    broker: LocalBroker | None,
    *,
    rounds: int,
    rows: int,
    start_id: int,
    rng: random.Random,
    console: Console,
) -> None:
    """Stream events into both tables (through the local Kafka broker when there is one) while an autopilot
    maintains them in a thread of its own, all at the same time; every few seconds print per table the file
    count, the health score measured right then, the jobs the autopilot ran since the last line, and a
    query's time. Ends by checking that both tables hold exactly what was streamed."""
    from lakehouse.maintenance.autopilot import Autopilot

    console.rule("autopilot beside a live stream")
    names = list(DEMO_TABLES.values())
    stop_stream, stop_pilot = threading.Event(), threading.Event()
    lock = threading.Lock()
    ran: dict[str, list[str]] = {n: [] for n in names}
    produced = [0]
    failures: list[BaseException] = []

    def collect(entry: dict[str, Any]) -> None:
        with lock:
            if entry.get("table") in ran:
                ran[entry["table"]] += [j["job"] for j in entry.get("jobs", []) if "error" not in j]

    def guarded(work: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                work()
            except BaseException as e:  # noqa: BLE001 - re-raised in the main thread
                failures.append(e)
                stop_stream.set()

        return run

    def next_batch() -> pa.Table:
        with lock:
            first = start_id + produced[0]
            produced[0] += rows
            return generate_events(rows, start_id=first, rng=rng, start=dt.datetime(2026, 11, 1, tzinfo=dt.UTC))

    pilot_lh = type(lh)(lh.settings, actor="demo-autopilot")
    pilot = Autopilot(pilot_lh, interval=1.0, tables=names)
    threads = [threading.Thread(target=guarded(lambda: pilot.run(stop=stop_pilot, on_table=collect)), daemon=True)]
    writers: list[Lakehouse] = []
    try:
        if broker is not None:
            threads += _kafka_stream(lh, broker, next_batch, stop_stream, writers, guarded)
            how = f"through Kafka ({broker.bootstrap})"
        else:
            threads += _direct_stream(lh, next_batch, stop_stream, writers, guarded)
            how = "by direct appends (no local broker)"
        console.print(f"streaming {rows} events every 0.5 s into both tables {how}; the autopilot runs beside it")
        for t in threads:
            t.start()
        report = RichTable("t (s)", "table", "rows", "files", "health now", "autopilot ran since", "query ms")
        t0 = time.perf_counter()
        for r in range(rounds + 1):
            if r == rounds:  # the stream stops; the ingesters drain the topic; the autopilot keeps going
                stop_stream.set()
                for t in threads[1:]:
                    t.join(timeout=120)
            time.sleep(4.0)
            at = f"{time.perf_counter() - t0:.0f}" + (" (stream stopped)" if r == rounds else "")
            _report_round(lh, report, names, ran, lock, at)
    finally:
        stop_stream.set()
        stop_pilot.set()
        for t in threads:
            t.join(timeout=120)
        for w in writers:
            w.close()
        pilot_lh.close()
    if failures:
        raise failures[0]
    console.print(report)
    expected = start_id + produced[0]
    counts = {n: lh.table(n).row_count() for n in names}
    same = all(c == expected for c in counts.values())
    console.print(
        Text(
            f"{expected:,} events streamed in all; rows now: "
            + ", ".join(f"{n} {c:,}" for n, c in counts.items())
            + (" (nothing lost, nothing doubled)" if same else " (MISMATCH)"),
            style="green" if same else "red",
        )
    )
    if not same:
        raise LakehouseError(f"the tables do not hold exactly the {expected:,} events streamed: {counts}")
    console.print("the autopilot keeps running with: lakehouse autopilot --interval 5m")


def _report_round(
    lh: Lakehouse, report: RichTable, names: list[str], ran: dict[str, list[str]], lock: threading.Lock, at: str
) -> None:
    from lakehouse.maintenance.maintain import health

    for name in names:
        t1 = time.perf_counter()
        lh.query(f"SELECT count(*), avg(temperature) FROM {name} WHERE country = 'DE'")
        ms = (time.perf_counter() - t1) * 1000
        table = lh.table(name)
        with lock:
            jobs, ran[name] = ran[name], []
        summary = ", ".join(f"{j} x{jobs.count(j)}" for j in dict.fromkeys(jobs)) or "-"
        report.add_row(
            at,
            name,
            f"{table.row_count():,}",
            str(len(table.files())),
            f"{health(lh, name, check_duplicates=False).score:.0f}",
            summary,
            f"{ms:.0f}",
        )


def _local_broker(console: Console) -> LocalBroker | None:
    try:
        from lakehouse.ingest.broker import LocalBroker

        return LocalBroker().start()
    except LakehouseError as e:
        console.print(Text(f"no local Kafka broker ({e}); appending batches directly instead", style="yellow"))
        return None


def _producer(broker: LocalBroker) -> Any:
    from confluent_kafka import Producer

    return Producer({"bootstrap.servers": broker.bootstrap, "broker.address.family": "v4", "linger.ms": 5})


def _produce(producer: Any, topic: str, batch: pa.Table) -> int:
    for rec in batch.to_pylist():
        rec["ts"] = rec["ts"].isoformat()
        producer.produce(topic, key=str(rec["device_id"]).encode(), value=orjson.dumps(rec))
    return batch.num_rows


def _kafka_ingest(lh: Lakehouse, broker: LocalBroker, name: str, topic: str, policy: Any) -> tuple[Any, Any]:
    """An ingestor of ``name`` and the consumer (its own group) feeding it from ``topic``."""
    from lakehouse.ingest.pipeline import Ingestor
    from lakehouse.ingest.sources import KafkaIngest

    ingestor = Ingestor(lh, name, policy=policy)
    runner = KafkaIngest(
        ingestor,
        bootstrap=broker.bootstrap,
        topic=topic,
        group=f"{topic}-{name}",
        config={"session.timeout.ms": "1500", "heartbeat.interval.ms": "200"},
    )
    return ingestor, runner


def _kafka_stream(
    lh: Lakehouse,
    broker: LocalBroker,
    next_batch: Callable[[], pa.Table],
    stop: threading.Event,
    writers: list[Lakehouse],
    guarded: Callable[[Callable[[], None]], Callable[[], None]],
) -> list[threading.Thread]:
    """A producer thread (a micro-batch every 0.5 s until ``stop``) and one ingesting consumer per table (until
    the topic has been idle for 3 s after the producer stopped)."""
    from lakehouse.ingest.pipeline import FlushPolicy
    from lakehouse.ingest.sources import StopConditions

    topic = "demo-live"
    broker.create_topic(topic, partitions=2)

    def produce() -> None:
        producer = _producer(broker)
        while not stop.is_set():
            _produce(producer, topic, next_batch())
            producer.flush(30)
            stop.wait(0.5)
        producer.flush(30)

    def consume(name: str) -> Callable[[], None]:
        writer = type(lh)(lh.settings, actor="demo-stream")
        writers.append(writer)
        _, runner = _kafka_ingest(writer, broker, name, topic, FlushPolicy(max_seconds=1.0))
        # ends once the topic has been idle for 3 s, which only happens after the producer stopped
        return lambda: runner.run(conditions=StopConditions(until_idle=3.0))

    return [threading.Thread(target=guarded(produce), daemon=True)] + [
        threading.Thread(target=guarded(consume(n)), daemon=True) for n in DEMO_TABLES.values()
    ]


def _direct_stream(
    lh: Lakehouse,
    next_batch: Callable[[], pa.Table],
    stop: threading.Event,
    writers: list[Lakehouse],
    guarded: Callable[[Callable[[], None]], Callable[[], None]],
) -> list[threading.Thread]:
    """Without a broker: one thread appends a micro-batch to both tables every 0.5 s until ``stop``."""
    from lakehouse.ingest.pipeline import ingest_records

    writer = type(lh)(lh.settings, actor="demo-stream")
    writers.append(writer)

    def write() -> None:
        position = 0
        while not stop.is_set():
            batch = next_batch().to_pylist()
            for name in DEMO_TABLES.values():
                ingest_records(writer, name, batch, source="demo-live", start_position=position)
            position += len(batch)
            stop.wait(0.5)

    return [threading.Thread(target=guarded(write), daemon=True)]


def _stream_through_kafka(
    lh: Lakehouse,
    broker: LocalBroker,
    *,
    batches: int,
    rows: int,
    rng: random.Random,
    start: dt.datetime,
    console: Console,
) -> dict[str, dict[str, int]]:
    """Produce generated events (and a few malformed ones) to a topic; ingest it into both tables."""
    from lakehouse.ingest.pipeline import FlushPolicy
    from lakehouse.ingest.sources import StopConditions

    topic = "demo-events"
    broker.create_topic(topic, partitions=3)
    producer = _producer(broker)
    sent = 0
    for b in range(batches):
        sent += _produce(producer, topic, generate_events(rows, start_id=b * rows, rng=rng, start=start))
        producer.produce(topic, value=b'{"event_id": "not-a-number", "ts": "yesterday"}')  # for the quarantine
        sent += 1
    producer.flush(30)
    console.print(f"produced {sent:,} events to Kafka topic {topic!r} on a local broker ({broker.bootstrap})")
    stats: dict[str, dict[str, int]] = {}
    for name in DEMO_TABLES.values():
        ingestor, runner = _kafka_ingest(
            lh, broker, name, topic, FlushPolicy(max_rows=max(1, rows // 2), max_seconds=2)
        )
        with console.status(f"ingesting {topic} into {name} ..."):
            runner.run(conditions=StopConditions(max_records=sent))
        stats[name] = ingestor.stats.as_dict()
    return stats


def reset_table(lh: Lakehouse, name: str, fmt: str) -> None:
    """Drop a demo table with its files, including leftovers of an interrupted run."""
    try:
        lh.drop_table(name, purge=True)
        return
    except TableNotFoundError:
        pass
    tname = TableName.parse(name)
    location = lh.ctx.default_location(tname)
    try:
        adapter_class(fmt).open(tname, location=location, ctx=lh.ctx).drop(purge=True)
    except TableNotFoundError:
        pass
    delete_tree(location, lh.ctx)


def _print(console: Console, table: pa.Table) -> None:
    t = RichTable(*table.column_names)
    for row in table.to_pylist():
        t.add_row(*[str(v) for v in row.values()])
    console.print(t)
