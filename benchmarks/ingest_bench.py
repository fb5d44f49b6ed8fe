"""Ingest benchmark: Kafka (a local Tansu broker) -> Delta / Iceberg on a local warehouse.

Prints, for each format: sustained records/s through the whole pipeline (consume, parse, validate, commit),
the same against a baseline that only consumes and JSON-decodes (the practical limit of the client), their
ratio, and freshness (produce time -> committed, i.e. visible to a query) p50/p99 for a flush interval.

    .venv/bin/python benchmarks/ingest_bench.py [--records 300000] [--flush-seconds 1.0]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import tempfile
import threading
import time
import uuid

import orjson
from confluent_kafka import Consumer, Producer

from lakehouse.config import load_settings
from lakehouse.core import Lakehouse
from lakehouse.ingest.broker import LocalBroker
from lakehouse.ingest.pipeline import FlushPolicy, FlushResult, Ingestor
from lakehouse.ingest.sources import KafkaIngest, StopConditions
from lakehouse.schema import parse_partitioning, parse_schema

SCHEMA = parse_schema(
    "event_id:int64 not null, ts:timestamp not null, device_id:int64, kind:string, temperature:float64, "
    "produced_us:int64"
)
FAST = {"session.timeout.ms": "1500", "heartbeat.interval.ms": "200"}
KINDS = ["reading", "alert", "heartbeat"]


def event(i: int) -> bytes:
    now = time.time()
    return orjson.dumps(
        {
            "event_id": i,
            "ts": dt.datetime.fromtimestamp(now - (i % 86400), dt.UTC).isoformat(),
            "device_id": i % 5000,
            "kind": KINDS[i % 3],
            "temperature": 20.0 + (i % 100) / 10,
            "produced_us": int(now * 1e6),
        }
    )


def produce(bootstrap: str, topic: str, n: int, rate: float | None = None) -> float:
    p = Producer({"bootstrap.servers": bootstrap, "broker.address.family": "v4", "linger.ms": 5})
    t0 = time.perf_counter()
    for i in range(n):
        if rate:
            target = t0 + i / rate
            delay = target - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
        p.produce(topic, value=event(i))
        if i % 2000 == 0:
            p.poll(0)
    p.flush(60)
    return time.perf_counter() - t0


def baseline(bootstrap: str, topic: str, n: int) -> float:
    """Consume and JSON-decode only: records/s."""
    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "broker.address.family": "v4",
            "group.id": uuid.uuid4().hex,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            **FAST,
        }
    )
    c.subscribe([topic])
    got, t0 = 0, None
    while got < n:
        msgs = c.consume(num_messages=10_000, timeout=0.5)
        if msgs and t0 is None:
            t0 = time.perf_counter()
        for m in msgs:
            orjson.loads(m.value())
        got += len(msgs)
    elapsed = time.perf_counter() - (t0 or time.perf_counter())
    c.close()
    return n / elapsed


def ours(lh: Lakehouse, fmt: str, bootstrap: str, topic: str, n: int) -> tuple[float, int]:
    name = f"bench.events_{fmt}_{uuid.uuid4().hex[:6]}"
    lh.create_table(name, schema=SCHEMA, format=fmt, partitioning=parse_partitioning("day(ts)"))
    ing = Ingestor(lh, name, policy=FlushPolicy(max_rows=100_000, max_seconds=5))
    marks: dict[str, float] = {}

    def on_flush(r: FlushResult) -> None:
        if r.records:
            marks.setdefault("first", time.perf_counter())
            marks["last"] = time.perf_counter()

    runner = KafkaIngest(ing, bootstrap=bootstrap, topic=topic, group=uuid.uuid4().hex, config=FAST)
    start = {"t": 0.0}
    orig = runner.ingestor.add

    def add(records):  # start the clock at the first consumed record
        if not start["t"]:
            start["t"] = time.perf_counter()
        orig(records)

    runner.ingestor.add = add  # type: ignore[method-assign]
    runner.run(conditions=StopConditions(max_records=n), on_flush=on_flush)
    assert ing.stats.rows == n, ing.stats.as_dict()
    return n / (marks["last"] - start["t"]), ing.stats.batches


def freshness(lh: Lakehouse, fmt: str, bootstrap: str, flush_s: float, rate: float, seconds: float) -> list[float]:
    broker_topic = f"fresh-{uuid.uuid4().hex[:6]}"
    name = f"bench.fresh_{fmt}_{uuid.uuid4().hex[:6]}"
    lh.create_table(name, schema=SCHEMA, format=fmt, partitioning=parse_partitioning("day(ts)"))
    ing = Ingestor(lh, name, policy=FlushPolicy(max_rows=1_000_000, max_seconds=flush_s))
    latencies: list[float] = []
    orig = ing.commit_records

    def commit(records):  # type: ignore[no-untyped-def]
        result = orig(records)
        visible_us = time.time() * 1e6  # committed: a query started now sees these rows
        for r in records:
            latencies.append((visible_us - orjson.loads(r.payload)["produced_us"]) / 1e6)
        return result

    ing.commit_records = commit  # type: ignore[method-assign]
    n = int(rate * seconds)
    runner = KafkaIngest(ing, bootstrap=bootstrap, topic=broker_topic, group=uuid.uuid4().hex, config=FAST)
    # create the topic and let the consumer join before producing, so join time is not counted
    LocalBroker.create_topic_at(bootstrap, broker_topic)
    t = threading.Thread(target=runner.run, kwargs={"conditions": StopConditions(max_records=n)})
    t.start()
    while not runner.assigned_once:
        time.sleep(0.05)
    produce(bootstrap, broker_topic, n, rate=rate)
    t.join()
    return latencies


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=300_000)
    ap.add_argument("--flush-seconds", type=float, default=1.0)
    ap.add_argument("--fresh-rate", type=float, default=5_000, help="records/s produced in the freshness run")
    ap.add_argument("--fresh-seconds", type=float, default=10)
    args = ap.parse_args()
    print(f"machine: {os.cpu_count()} cores; {args.records:,} events; local warehouse")
    with (
        tempfile.TemporaryDirectory() as wh,
        LocalBroker() as broker,
        Lakehouse(load_settings(config_file=False, warehouse=wh)) as lh,
    ):
        topic = "events"
        broker.create_topic(topic, partitions=3)
        secs = produce(broker.bootstrap, topic, args.records)
        print(f"produced {args.records:,} in {secs:.1f} s ({args.records / secs:,.0f}/s)")
        base = baseline(broker.bootstrap, topic, args.records)
        print(f"baseline (consume + JSON decode only): {base:,.0f} records/s")
        for fmt in ("delta", "iceberg"):
            rate, batches = ours(lh, fmt, broker.bootstrap, topic, args.records)
            print(f"{fmt:8} ingest: {rate:,.0f} records/s in {batches} commits; ratio to baseline {rate / base:.2f}")
        for fmt in ("delta", "iceberg"):
            lat = freshness(lh, fmt, broker.bootstrap, args.flush_seconds, args.fresh_rate, args.fresh_seconds)
            p50, p99 = pct(lat, 50), pct(lat, 99)
            print(
                f"{fmt:8} freshness at {args.fresh_rate:,.0f} rec/s, flush every {args.flush_seconds:g} s: "
                f"p50 {p50:.2f} s, p99 {p99:.2f} s ({p99 / args.flush_seconds:.2f}x the flush interval)"
            )


if __name__ == "__main__":
    main()
