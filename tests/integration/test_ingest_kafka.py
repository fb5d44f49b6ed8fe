"""Kafka ingestion against a real Kafka-protocol broker (Tansu) on loopback: counts, values, quarantine,
consumer-group offsets after the table commit, and exactly-once across SIGKILLs."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from lakehouse.core import Lakehouse
from lakehouse.ingest.broker import LocalBroker
from lakehouse.ingest.pipeline import FlushPolicy, Ingestor
from lakehouse.ingest.sources import KafkaIngest, StopConditions
from lakehouse.schema import parse_partitioning
from tests.integration.test_ingest_files import SCHEMA, _env_for, sigkill_then_finish

pytestmark = pytest.mark.kafka
# Tansu takes about half the session timeout to complete a group join; keep tests quick
FAST_JOIN = {"session.timeout.ms": "1500", "heartbeat.interval.ms": "200"}
FAST_JOIN_ARGS = [a for k, v in FAST_JOIN.items() for a in ("--kafka-config", f"{k}={v}")]


@pytest.fixture(scope="module")
def broker() -> Iterator[LocalBroker]:
    with LocalBroker() as b:
        yield b


def produce(broker: LocalBroker, n: int, *, bad_every: int = 17) -> tuple[str, dict[int, dict[str, Any]], int]:
    """A fresh 3-partition topic with n messages; returns (topic, good rows by id, bad count)."""
    topic = f"readings-{uuid.uuid4().hex[:8]}"
    broker.create_topic(topic, partitions=3)
    p = Producer({"bootstrap.servers": broker.bootstrap, "broker.address.family": "v4", "linger.ms": 5})
    good: dict[int, dict[str, Any]] = {}
    bad = 0
    for i in range(n):
        if i % bad_every == 3:
            value = random.Random(i).choice(
                [b"{not json", b'{"id": "seven", "ts": "2026-02-01T00:00:00Z"}', b"42", b""]
            )
            bad += 1
        else:
            rec = {
                "id": i,
                "ts": f"2026-02-0{1 + i % 3}T{i % 24:02d}:00:00Z",
                "device": f"d{i % 5}",
                "temp": i / 4,
                "ok": bool(i % 2),
            }
            good[i] = rec
            value = json.dumps(rec).encode()
        p.produce(topic, key=str(i % 11).encode(), value=value)
        if i % 1000 == 0:
            p.poll(0)
    assert p.flush(30) == 0
    return topic, good, bad


def _check(lh: Lakehouse, good: dict[int, dict[str, Any]], bad: int) -> None:
    rows = lh.table("iot.readings").scan().to_pylist()
    assert len(rows) == len(good)
    assert sorted(r["id"] for r in rows) == sorted(good)
    for r in rows:
        g = good[r["id"]]
        assert (r["device"], r["temp"], r["ok"]) == (g["device"], g["temp"], g["ok"])
        assert r["ts"].strftime("%Y-%m-%dT%H:00:00Z") == g["ts"]
    by_day = Counter(r["ts"].date().isoformat() for r in rows)
    expected_by_day = Counter(g["ts"][:10] for g in good.values())
    assert by_day == expected_by_day
    q = lh.table("iot.readings__quarantine").scan()
    assert q.num_rows == bad
    assert len({(s, p) for s, p in zip(q["source"].to_pylist(), q["position"].to_pylist(), strict=True)}) == bad


def test_kafka_to_table_with_quarantine(lh: Lakehouse, fmt: str, broker: LocalBroker) -> None:
    lh.create_table("iot.readings", schema=SCHEMA, format=fmt, partitioning=parse_partitioning("day(ts)"))
    n = 3000
    topic, good, bad = produce(broker, n)
    ingestor = Ingestor(lh, "iot.readings", policy=FlushPolicy(max_rows=700, max_seconds=1))
    group = f"g-{uuid.uuid4().hex[:6]}"
    runner = KafkaIngest(ingestor, bootstrap=broker.bootstrap, topic=topic, group=group, config=FAST_JOIN)
    runner.run(conditions=StopConditions(until_idle=3))
    assert ingestor.stats.records == n
    assert ingestor.stats.rows + ingestor.stats.quarantined == n
    _check(lh, good, bad)
    # the group's committed offsets equal the table's checkpoints (committed after the table commit)
    table = lh.table("iot.readings")
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group, "broker.address.family": "v4"})
    committed = {
        tp.partition: tp.offset for tp in c.committed([TopicPartition(topic, p) for p in range(3)], timeout=10)
    }
    c.close()
    checkpoints = {p: table.checkpoint(f"kafka:{topic}:{p}") for p in range(3)}
    assert sum(checkpoints.values()) == n
    assert committed == checkpoints
    # a second run in another group resumes from the table, not from its own (empty) group offsets
    again = Ingestor(lh, "iot.readings")
    KafkaIngest(again, bootstrap=broker.bootstrap, topic=topic, group="fresh-" + group, config=FAST_JOIN).run(
        conditions=StopConditions(until_idle=2)
    )
    assert again.stats.records == 0
    _check(lh, good, bad)
    # a new table read by the first group starts at the beginning: the group's committed offsets (all of the
    # topic) are not the new table's positions
    lh.create_table("iot.copy", schema=SCHEMA, format=fmt)
    copy = Ingestor(lh, "iot.copy")
    KafkaIngest(copy, bootstrap=broker.bootstrap, topic=topic, group=group, config=FAST_JOIN).run(
        conditions=StopConditions(until_idle=2)
    )
    assert copy.stats.records == n and lh.table("iot.copy").scan().num_rows == len(good)


@pytest.mark.slow
def test_kafka_sigkill_exactly_once(lh: Lakehouse, fmt: str, broker: LocalBroker, storage: str) -> None:
    lh.create_table("iot.readings", schema=SCHEMA, format=fmt, partitioning=parse_partitioning("day(ts)"))
    topic, good, bad = produce(broker, 6000, bad_every=23)
    cmd = [
        os.path.join(os.path.dirname(sys.executable), "lakehouse"),
        "ingest",
        "iot.readings",
        "--kafka",
        broker.bootstrap,
        "--topic",
        topic,
        "--group",
        "killme",
        "--max-rows",
        "300",  # about 19 commits of the good records: kills land between them
        "--until-idle",
        "3",
        "--json",
        *FAST_JOIN_ARGS,
    ]
    sigkill_then_finish(cmd, _env_for(lh), lh.table("iot.readings"), len(good), runs=3, seed=7)
    _check(lh, good, bad)


def test_sigterm_flushes_and_exits_cleanly(lh: Lakehouse, broker: LocalBroker) -> None:
    lh.create_table("iot.readings", schema=SCHEMA, format="delta")
    topic, good, bad = produce(broker, 500, bad_every=1000)
    cmd = [
        os.path.join(os.path.dirname(sys.executable), "lakehouse"),
        "ingest",
        "iot.readings",
        "--kafka",
        broker.bootstrap,
        "--topic",
        topic,
        "--max-seconds",
        "60",
        "--json",
        *FAST_JOIN_ARGS,
    ]
    proc = subprocess.Popen(cmd, env=_env_for(lh), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(6)  # consumed, but the 60 s flush interval has not passed: nothing committed yet
    assert lh.table("iot.readings").row_count() == 0
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    summary = json.loads(out)
    assert summary["stopped_by_signal"] is True
    assert summary["rows"] == len(good) == 499 and summary["quarantined"] == bad == 1
    assert lh.table("iot.readings").row_count() == len(good)


def test_a_bad_consumer_setting_or_an_unreachable_broker_is_one_error_soon(lh: Lakehouse) -> None:
    """An unknown or malformed --kafka-config property was a traceback; a broker nobody listens at printed a
    librdkafka line per retry for a minute before the error."""
    from lakehouse.errors import InvalidInputError, StorageError

    lh.create_table("iot.readings", schema=SCHEMA, format="delta")
    for bad in ({"foo": "bar"}, {"session.timeout.ms": "abc"}):
        with pytest.raises(InvalidInputError, match="refused its configuration"):
            KafkaIngest(Ingestor(lh, "iot.readings"), bootstrap="127.0.0.1:1", topic="t", group="g", config=bad)
    started = time.monotonic()
    runner = KafkaIngest(Ingestor(lh, "iot.readings"), bootstrap="127.0.0.1:1", topic="t", group="g")
    with pytest.raises(StorageError, match="cannot be reached"):
        runner.run(conditions=StopConditions(until_idle=2))
    assert time.monotonic() - started < 30
