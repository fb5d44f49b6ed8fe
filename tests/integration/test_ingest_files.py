"""File ingestion through the pipeline: parsing, quarantine, exactly-once across restarts and SIGKILLs."""

from __future__ import annotations

import csv
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lakehouse.config import load_settings
from lakehouse.core import Lakehouse
from lakehouse.ingest.pipeline import FlushPolicy, Ingestor, ingest_records, quarantine_name
from lakehouse.ingest.records import RawRecord
from lakehouse.ingest.sources import ingest_file
from lakehouse.schema import format_type, parse_partitioning, parse_schema, plain_flavours
from lakehouse.tables.base import TableName

SCHEMA = parse_schema("id:int64 not null, ts:timestamp not null, device:string, temp:float64, ok:bool")


def make_records(n: int, *, bad_every: int = 13) -> tuple[list[str], dict[int, dict[str, Any]], int]:
    """NDJSON lines; returns (lines, expected good rows by id, number of bad lines)."""
    lines: list[str] = []
    good: dict[int, dict[str, Any]] = {}
    bad = 0
    for i in range(n):
        if i % bad_every == 5:
            lines.append(
                random.Random(i).choice(
                    [
                        '{"id": 1,',
                        "[1, 2]",
                        '{"id": "x1", "ts": "2026-01-01T00:00:00Z"}',
                        '{"ts": "2026-01-01T00:00:00Z"}',
                        '{"id": 3, "ts": "yesterday"}',
                    ]
                )
            )
            bad += 1
            continue
        day = 1 + i % 3
        hour = i % 24
        rec = {
            "id": str(i) if i % 2 else i,
            "ts": f"2026-02-0{day}T{hour:02d}:30:00+01:00",
            "device": f"d{i % 7}",
            "temp": f"{i / 10}" if i % 3 == 0 else i / 10,
            "ok": i % 4 == 0,
        }
        lines.append(json.dumps(rec))
        utc_hour = hour - 1
        utc_day = day if utc_hour >= 0 else day - 1
        good[i] = {
            "id": i,
            "day": f"2026-0{2 if utc_day >= 1 else 1}-{utc_day if utc_day >= 1 else 31:02d}",
            "device": f"d{i % 7}",
            "temp": i / 10,
            "ok": i % 4 == 0,
        }
    return lines, good, bad


def _table(lh: Lakehouse, fmt: str, name: str = "iot.readings") -> None:
    lh.create_table(name, schema=SCHEMA, format=fmt, partitioning=parse_partitioning("day(ts)"))


def _check(lh: Lakehouse, good: dict[int, dict[str, Any]], bad: int, name: str = "iot.readings") -> None:
    rows = lh.table(name).scan().to_pylist()
    assert len(rows) == len(good), "every good record exactly once"
    assert sorted(r["id"] for r in rows) == sorted(good)
    for r in rows:
        g = good[r["id"]]
        assert (r["device"], r["temp"], r["ok"]) == (g["device"], g["temp"], g["ok"])
        assert r["ts"].isoformat()[:10] == g["day"]
    per_day = Counter(r["ts"].date().isoformat() for r in rows)
    files_per_day = Counter()
    for f in lh.table(name).files():
        files_per_day[str(f.partition["ts_day"])] += f.row_count
    assert per_day == files_per_day
    q = lh.table(quarantine_name(TableName.parse(name))).scan()
    assert q.num_rows == bad, "every bad record quarantined exactly once"
    assert len(set(q["position"].to_pylist())) == bad
    assert all(e for e in q["error"].to_pylist())


def test_ndjson_good_and_bad_records(lh: Lakehouse, fmt: str, tmp_path: Path) -> None:
    _table(lh, fmt)
    lines, good, bad = make_records(400)
    path = tmp_path / "readings.ndjson"
    path.write_text("\n".join(lines) + "\n")
    ing = Ingestor(lh, "iot.readings", policy=FlushPolicy(max_rows=120))
    ingest_file(ing, str(path))
    assert ing.stats.records == 400 and ing.stats.rows == len(good) and ing.stats.quarantined == bad
    assert ing.stats.rows + ing.stats.quarantined == 400
    _check(lh, good, bad)
    # exactly once: the same file again adds nothing
    again = Ingestor(lh, "iot.readings")
    ingest_file(again, str(path))
    assert again.stats.records == 0
    # the file grows: only the new records land
    more, more_good, more_bad = make_records(460)
    path.write_text("\n".join(more) + "\n")
    ingest_file(Ingestor(lh, "iot.readings"), str(path))
    _check(lh, more_good, more_bad)


def test_a_rerun_reports_a_record_quarantined_before_as_skipped(lh: Lakehouse, fmt: str, tmp_path: Path) -> None:
    """A file whose last record is bad: the table's checkpoint stops before it (no rows to commit with it), so a
    rerun reads it again. It was reported as quarantined on every rerun (a false alert), though nothing was
    written; it is reported as skipped."""
    _table(lh, fmt)
    path = tmp_path / "readings.ndjson"
    path.write_text('{"id": 1, "ts": "2026-02-01T00:00:00Z"}\n')
    ingest_file(Ingestor(lh, "iot.readings"), str(path))
    with path.open("a") as f:  # the file grows by a bad record only: nothing to commit to the table with it
        f.write('{"id": "bad", "ts": "2026-02-01T00:00:00Z"}\n')
    first = Ingestor(lh, "iot.readings")
    ingest_file(first, str(path))
    assert (first.stats.rows, first.stats.quarantined) == (0, 1)
    for _ in range(2):
        again = Ingestor(lh, "iot.readings")
        ingest_file(again, str(path))
        assert (again.stats.rows, again.stats.quarantined, again.stats.skipped) == (0, 0, 1)
    assert lh.table(quarantine_name(TableName.parse("iot.readings"))).scan().num_rows == 1


def test_one_ingest_of_a_source_at_a_time_and_stdin_runs_are_sources_of_their_own(
    lh: Lakehouse, fmt: str, tmp_path: Path
) -> None:
    """Two ingests of one file at once both committed what they read (the rows doubled): the second is refused
    while the first runs, and its rerun afterwards adds nothing. Each run piped through stdin is a stream of its
    own: the second was skipped up to the first's record count."""
    from lakehouse.errors import CommitConflictError

    _table(lh, fmt)
    lines, good, bad = make_records(300)
    path = tmp_path / "readings.ndjson"
    path.write_text("\n".join(lines) + "\n")
    refused: list[str] = []

    def meanwhile(_: Any) -> None:  # while the first ingest runs (after its first micro-batch), a second starts
        if refused:
            return
        with pytest.raises(CommitConflictError, match="another ingest of file:") as e:
            ingest_file(Ingestor(lh, "iot.readings"), str(path))
        refused.append(e.value.message)

    ingest_file(Ingestor(lh, "iot.readings", policy=FlushPolicy(max_rows=100)), str(path), on_flush=meanwhile)
    assert refused
    ingest_file(Ingestor(lh, "iot.readings"), str(path))
    _check(lh, good, bad)
    assert lh.catalog.leases() == [], "the ingests let go of the source"
    _table(lh, fmt, "iot.piped")
    for ids in ([1, 2, 3], [4, 5]):  # Monday's records, then Tuesday's
        data = "".join(json.dumps({"id": i, "ts": "2026-02-01T00:00:00Z"}) + "\n" for i in ids)
        run = subprocess.run(
            [os.path.join(os.path.dirname(sys.executable), "lakehouse"), "ingest", "iot.piped", "--file", "-"],
            input=data,
            text=True,
            capture_output=True,
            env=_env_for(lh),
        )
        assert run.returncode == 0, run.stderr
    assert sorted(lh.table("iot.piped").scan().column("id").to_pylist()) == [1, 2, 3, 4, 5]


def test_a_record_breaking_a_delta_check_constraint_is_quarantined(lh: Lakehouse, tmp_path: Path) -> None:
    """A Delta table another writer gave a CHECK constraint: the record that breaks it goes to the quarantine
    with the constraint named; the batch's other records land (delta-rs refused the whole micro-batch, on every
    rerun). A NULL result breaks it too, as delta-rs checks it."""
    from deltalake import DeltaTable, write_deltalake

    location = str(tmp_path / "ext")
    write_deltalake(location, pa.table({"id": pa.array([1], pa.int64()), "amount": pa.array([5.0])}))
    DeltaTable(location).alter.add_constraint({"amount_positive": "amount >= 0"})
    lh.register_table("t.ext", location=location, format="delta")
    path = tmp_path / "in.ndjson"
    path.write_text('{"id": 2, "amount": 1.5}\n{"id": 3, "amount": -4}\n{"id": 4}\n{"id": 5, "amount": 2.5}\n')
    for run in range(2):
        ingest = Ingestor(lh, "t.ext")
        ingest_file(ingest, str(path))
        assert (ingest.stats.rows, ingest.stats.quarantined) == ((2, 2) if run == 0 else (0, 0))
    assert sorted(lh.table("t.ext").scan().column("id").to_pylist()) == [1, 2, 5]
    quarantined = lh.table("t.ext__quarantine").scan().to_pylist()
    assert len(quarantined) == 2 and all("CHECK constraint amount_positive" in q["error"] for q in quarantined)


def test_a_type_another_writer_widens_mid_run_takes_the_records_it_now_fits(lh: Lakehouse) -> None:
    """An int column widened to long by another writer while ingestion runs: a record past int32 that the old
    type refused lands (it was quarantined, and a rerun then skipped it for good)."""
    from pyiceberg.types import LongType

    lh.create_table("t.widen", schema=parse_schema("id:int32, s:string"), format="iceberg")
    ingest = Ingestor(lh, "t.widen")
    ingest.commit_records([RawRecord(json.dumps({"id": 1, "s": "a"}).encode(), "src", 0)])
    other = lh.table("t.widen")._table
    with other.update_schema() as update:
        update.update_column("id", LongType())
    result = ingest.commit_records([RawRecord(json.dumps({"id": 3_000_000_000, "s": "b"}).encode(), "src", 1)])
    assert (result.rows, result.quarantined) == (1, 0), result.errors
    assert sorted(lh.table("t.widen").scan().column("id").to_pylist()) == [1, 3_000_000_000]
    refused = ingest.commit_records([RawRecord(json.dumps({"id": "x", "s": "c"}).encode(), "src", 2)])
    assert refused.quarantined == 1  # a record no type fits is still quarantined


def test_an_idle_stdin_still_flushes_at_max_seconds_and_stops_on_sigterm(lh: Lakehouse) -> None:
    """A pipe that stays open and idle (``tail -f log | lakehouse ingest T --file -``): the record it sent lands
    after --max-seconds, and SIGTERM flushes and exits 0 (the blocked read held both until the next line)."""
    _table(lh, "delta", "iot.piped")
    exe = os.path.join(os.path.dirname(sys.executable), "lakehouse")
    proc = subprocess.Popen(
        [exe, "ingest", "iot.piped", "--file", "-", "--max-seconds", "0.5"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=_env_for(lh),
    )
    try:
        assert proc.stdin is not None
        proc.stdin.write(b'{"id": 1, "ts": "2026-02-01T00:00:00Z"}\n')
        proc.stdin.flush()  # and the pipe stays open
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and lh.table("iot.piped").row_count() == 0:
            time.sleep(0.2)
        assert lh.table("iot.piped").row_count() == 1, "the record landed while the pipe was idle"
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
        assert proc.returncode == 0, err.decode()[-1000:]
    finally:
        if proc.poll() is None:
            proc.kill()


@pytest.mark.parametrize("kind", ["csv", "parquet"])
def test_csv_and_parquet(kind: str, tmp_path: Path) -> None:
    # storage-independent parsing: local only (S3 is covered by the NDJSON and SIGKILL tests)
    lh = Lakehouse(load_settings(config_file=False, warehouse=str(tmp_path / "wh")))
    _table(lh, "delta")
    rows = [
        {"id": i, "ts": f"2026-02-01T0{i % 10}:00:00Z", "device": f"d{i}", "temp": i / 2, "ok": "true"}
        for i in range(50)
    ]
    rows[7]["temp"] = "hot"
    path = tmp_path / f"in.{kind}"
    if kind == "csv":
        with path.open("w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
    else:
        pq.write_table(pa.Table.from_pylist([{**r, "temp": str(r["temp"])} for r in rows]), path)
    ing = Ingestor(lh, "iot.readings")
    ingest_file(ing, str(path))
    assert (ing.stats.rows, ing.stats.quarantined) == (49, 1)
    got = lh.table("iot.readings").scan().sort_by("id")
    assert got["id"].to_pylist() == [i for i in range(50) if i != 7]
    assert got["temp"].to_pylist()[:3] == [0.0, 0.5, 1.0] and all(got["ok"].to_pylist())
    q = lh.table("iot.readings__quarantine").scan().to_pylist()
    assert q[0]["position"] == 7 and "'hot' is not a number" in q[0]["error"]


def test_new_fields_add_a_column(lh: Lakehouse, fmt: str) -> None:
    _table(lh, fmt)
    recs = [{"id": 1, "ts": "2026-02-01T00:00:00Z"}, {"id": 2, "ts": "2026-02-01T00:00:00Z", "site": "berlin"}]
    r = ingest_records(lh, "iot.readings", recs, source="http:req-1")
    assert r.rows == 2 and r.new_columns == []  # ignored by default
    assert "site" not in lh.table("iot.readings").schema.names
    r = ingest_records(
        lh,
        "iot.readings",
        [
            *recs,
            {"id": 3, "ts": "2026-02-02T00:00:00Z", "site": "paris", "n": 4, "geo": {"lat": 48.9, "to": [{"a": 1}]}},
        ],
        source="http:req-2",
        new_fields="add",
    )
    assert sorted(r.new_columns) == ["geo", "n", "site"] and r.rows == 3
    table = lh.table("iot.readings")
    assert table.schema.field("site").type == pa.string() and table.schema.field("n").type == pa.int64()
    assert (
        format_type(plain_flavours(table.schema.field("geo").type))
        == "struct<lat: float64, to: list<struct<a: int64>>>"
    )
    got = {row["id"]: (row["site"], row["n"], row["geo"]) for row in table.scan(filter="id = 3 OR id = 2").to_pylist()}
    assert got[3] == ("paris", 4, {"lat": 48.9, "to": [{"a": 1}]}) and (None, None, None) in got.values()
    # the same request again is skipped (idempotent per source id)
    r = ingest_records(lh, "iot.readings", recs, source="http:req-2", new_fields="add")
    assert r.skipped == 2 and r.rows == 0
    assert lh.table_record("iot.readings").definition.schema.names == table.schema.names


def _env_for(lh: Lakehouse) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LAKEHOUSE_", "AWS_"))}
    env["LAKEHOUSE_WAREHOUSE"] = lh.settings.warehouse
    env["LAKEHOUSE_CATALOG_URL"] = lh.ctx.catalog_url
    creds = lh.ctx.credentials
    if creds is not None:
        env.update(
            {
                "LAKEHOUSE_S3__ENDPOINT": creds.endpoint_url or "",
                "LAKEHOUSE_S3__ACCESS_KEY_ID": creds.access_key_id or "",
                "LAKEHOUSE_S3__SECRET_ACCESS_KEY": creds.secret_access_key or "",
                "LAKEHOUSE_S3__REGION": creds.region,
            }
        )
    return env


@pytest.mark.slow
def test_sigkill_at_random_moments_loses_and_doubles_nothing(lh: Lakehouse, fmt: str, tmp_path: Path) -> None:
    _table(lh, fmt)
    lines, good, bad = make_records(5000, bad_every=29)
    path = tmp_path / "big.ndjson"
    path.write_text("\n".join(lines) + "\n")
    cmd = [
        os.path.join(os.path.dirname(sys.executable), "lakehouse"),
        "ingest",
        "iot.readings",
        "--file",
        str(path),
        "--max-rows",
        "250",  # 20 commits of the good records: kills land between them
        "--json",
    ]
    sigkill_then_finish(cmd, _env_for(lh), lh.table("iot.readings"), len(good), runs=4, seed=42)
    _check(lh, good, bad)


def sigkill_then_finish(cmd: list[str], env: dict[str, str], table: Any, total: int, *, runs: int, seed: int) -> None:
    """Run the ingestor ``runs`` times, each killed with SIGKILL at a random moment after it committed
    something; then let one run finish. Asserts that some kill left the table part-way."""
    rng = random.Random(seed)
    partial = []
    for _ in range(runs):
        before = table.row_count()
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while proc.poll() is None and table.row_count() == before and time.monotonic() < deadline:
            time.sleep(0.1)  # each look reads the table's metadata: a tight loop would slow the ingestor down
        time.sleep(rng.uniform(0, 0.15))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=60)
        rows = table.row_count()
        if proc.returncode == -signal.SIGKILL and 0 < rows < total:
            partial.append(rows)
    final = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert final.returncode == 0, final.stderr
    assert partial, "no kill landed mid-ingestion; give it more records"


def test_a_delta_append_after_another_writer_added_a_column_lands_with_it_null(tmp_path: Path) -> None:
    """Another writer added a nullable column while ingestion ran (deltalake's alter.add_columns): the next
    append failed ("number of fields does not match: 3 vs 4") and the stream stopped; Iceberg's fills it. The
    append now fills the new column with NULL."""
    from deltalake import DeltaTable, Field

    settings = load_settings(config_file=False, warehouse=str(tmp_path / "wh"))
    with Lakehouse(settings) as lh:
        lh.create_table("iot.readings", schema=SCHEMA, format="delta")
        ingest = Ingestor(lh, "iot.readings")

        def record(i: int) -> RawRecord:
            return RawRecord(json.dumps({"id": i, "ts": "2026-02-01T00:00:00Z"}), "t:stream", i)

        assert ingest.commit_records([record(1)]).rows == 1  # the stream's position is known from here on
        DeltaTable(lh.table("iot.readings").location).alter.add_columns([Field("added", "string", nullable=True)])
        assert ingest.commit_records([record(2)]).rows == 1
        written = DeltaTable(lh.table("iot.readings").location).to_pyarrow_table().to_pylist()
        rows = sorted(written, key=lambda r: r["id"])
        assert [(r["id"], r["added"]) for r in rows] == [(1, None), (2, None)]
