"""PII masking in place with purge, erasure, masked reads, and ingestion that masks and upserts, on both formats,
local and S3. "Gone" is checked in the files themselves: every object under the table location is decoded
(Parquet pages, Avro blocks, JSON logs, checkpoints) and searched for the raw values."""

from __future__ import annotations

import datetime as dt
import zlib
from collections.abc import Iterable
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lakehouse.core import Lakehouse
from lakehouse.errors import VersionNotFoundError
from lakehouse.governance.masking import token
from lakehouse.governance.ops import erase, mask_table
from lakehouse.governance.pii import scan_table
from lakehouse.ingest.pipeline import ingest_records
from lakehouse.maintenance.compaction import optimize
from lakehouse.maintenance.planner import CompactionOptions
from lakehouse.schema import parse_partitioning, parse_schema
from lakehouse.storage import list_files, split_location

SCHEMA = parse_schema(
    "id:int64 not null, customer_id:int64, ts:timestamp not null, email:string, card:string, ip:string, note:string"
)
SECRET = "test-mask-secret"
CARDS = ["4111111111111111", "5500000000000004", "4012888888881881"]


def rows(start: int, n: int) -> pa.Table:
    base = dt.datetime(2026, 5, 1, tzinfo=dt.UTC)
    return pa.Table.from_pylist(
        [
            {
                "id": i,
                "customer_id": i % 7,
                "ts": base + dt.timedelta(hours=i * 5),
                "email": f"u{i}@x.io",
                "card": CARDS[i % 3],
                "ip": f"10.{i % 200}.7.{i % 250 + 1}",
                "note": f"s{i % 7}-private" if i % 7 == 4 else f"order {i}",
            }
            for i in range(start, start + n)
        ],
        schema=SCHEMA,
    )


def _avro_blocks(data: bytes) -> Iterable[bytes]:
    """The decoded data blocks of an Avro container file (null or deflate codec)."""

    def varint(pos: int) -> tuple[int, int]:
        shift = result = 0
        while True:
            b = data[pos]
            pos += 1
            result |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                return (result >> 1) ^ -(result & 1), pos

    if not data.startswith(b"Obj\x01"):
        return
    pos, meta = 4, {}
    while True:
        count, pos = varint(pos)
        if count == 0:
            break
        if count < 0:
            _, pos = varint(pos)
            count = -count
        for _ in range(count):
            klen, pos = varint(pos)
            key = data[pos : pos + klen]
            pos += klen
            vlen, pos = varint(pos)
            meta[key] = data[pos : pos + vlen]
            pos += vlen
    pos += 16
    codec = meta.get(b"avro.codec", b"null")
    while pos < len(data):
        _, pos = varint(pos)
        size, pos = varint(pos)
        block = data[pos : pos + size]
        pos += size + 16
        yield zlib.decompress(block, -15) if codec == b"deflate" else block


def raw_values_found(lh: Lakehouse, location: str, values: Iterable[str]) -> set[str]:
    """Which of ``values`` appear in any file under ``location``, decoded."""
    wanted = [v.encode() for v in values]
    found: set[str] = set()
    for info in list_files(location, lh.ctx):
        filesystem, inner = split_location(info.path, lh.ctx)
        with filesystem.open_input_stream(inner) as fh:
            data = fh.read()
        blobs = [data]
        if info.path.endswith(".avro"):
            blobs += list(_avro_blocks(data))
        if info.path.endswith(".parquet"):
            try:
                blobs.append(repr(pq.read_table(pa.BufferReader(data)).to_pylist()).encode())
            except pa.ArrowInvalid:
                pass
        for v in wanted:
            if any(v in b for b in blobs):
                found.add(v.decode())
    return found


@pytest.fixture
def glh(make_lakehouse: Any) -> Lakehouse:
    return make_lakehouse(governance={"mask_secret": SECRET})


def _build(lh: Lakehouse, fmt: str, name: str = "g.customers") -> Any:
    table = lh.create_table(name, schema=SCHEMA, format=fmt, partitioning=parse_partitioning("day(ts)"))
    for b in range(3):
        table.append(rows(b * 20, 20))
    optimize(lh, name, CompactionOptions(target_file_size=64 * 1024 * 1024))  # older versions keep raw files
    return table


def test_mask_in_place_and_purge_leaves_no_raw_value_in_any_file(glh: Lakehouse, fmt: str) -> None:
    lh = glh
    table = _build(lh, fmt)
    before = {r["id"]: r for r in table.scan().to_pylist()}
    raw = [r["email"] for r in before.values()] + CARDS + [r["ip"] for r in before.values()]
    assert raw_values_found(lh, table.location, raw) == set(raw), "the checker sees raw values before masking"

    plan = mask_table(lh, "g.customers", policies={"email": "hash", "card": "partial", "ip": "generalize"})
    assert plan["dry_run"] and plan["rows"] == 60
    assert raw_values_found(lh, table.location, CARDS) == set(CARDS), "a dry run changes nothing"

    done = mask_table(
        lh, "g.customers", policies={"email": "hash", "card": "partial", "ip": "generalize"}, purge=True, dry_run=False
    )
    assert done["files_rewritten"] >= 1 and done["purge_report"]["versions_expired"] >= 4
    after = {r["id"]: r for r in lh.table("g.customers").scan().to_pylist()}
    assert after.keys() == before.keys()
    for i, r in after.items():
        b = before[i]
        assert (r["customer_id"], r["ts"], r["note"]) == (b["customer_id"], b["ts"], b["note"]), "other columns kept"
        assert r["email"] == token(b["email"], SECRET.encode())
        assert r["card"] == "*" * 12 + b["card"][-4:]
        assert r["ip"] == ".".join(b["ip"].split(".")[:3]) + ".0/24"
    assert raw_values_found(lh, table.location, raw) == set(), "no live or retained file holds a raw value"
    fresh = lh.table("g.customers")
    assert len([s for s in fresh.snapshots() if not (fresh.expired and s.version in fresh.expired.versions)]) == 1
    with pytest.raises(VersionNotFoundError):
        fresh.scan(as_of=fresh.snapshot().version - 1)

    # ingestion masks from now on, and tokens join across tables
    ingest_records(lh, "g.customers", [rows(100, 1).to_pylist()[0] | {"ts": "2026-05-02T00:00:00Z"}], source="api")
    added = lh.table("g.customers").scan(filter="id = 100").to_pylist()[0]
    assert added["email"] == token("u100@x.io", SECRET.encode()) and added["card"] == "*" * 12 + "0004"
    orders = lh.create_table("g.orders", schema=parse_schema("order_id:int64, email:string"), format=fmt)
    lh.set_policy("g.orders", {"masking": {"email": "hash"}})
    lh.append("g.orders", pa.table({"order_id": pa.array([1, 2], pa.int64()), "email": ["u3@x.io", "nobody@x.io"]}))
    assert orders.scan().column("email").to_pylist()[0].startswith("tok_")
    joined = lh.query("SELECT o.order_id, c.id FROM g.orders o JOIN g.customers c USING (email)").table.to_pylist()
    assert joined == [{"order_id": 1, "id": 3}]
    kinds = [a.action for a in lh.audit_log("g.customers")]
    assert "pii.mask" in kinds and "vacuum" in kinds and "policy.set" in kinds


def test_erase_a_subject_everywhere(glh: Lakehouse, fmt: str) -> None:
    lh = glh
    customers = _build(lh, fmt)
    events = lh.create_table(
        "g.events", schema=parse_schema("customer_id:int64, what:string, ts:timestamp"), format=fmt
    )
    for b in range(2):
        events.append(
            pa.table(
                {
                    "customer_id": pa.array([4, 5, 4], pa.int64()),
                    "what": [f"s4-click-{b}", "other", f"s4-view-{b}"],
                    "ts": pa.array([dt.datetime(2026, 5, 1, tzinfo=dt.UTC)] * 3, pa.timestamp("us", tz="UTC")),
                }
            )
        )
    subject = ["s4-private", "s4-click-0", "s4-view-1"]
    assert raw_values_found(lh, customers.location, subject[:1]) and raw_values_found(lh, events.location, subject[1:])
    keep_customers = sorted((r for r in customers.scan().to_pylist() if r["customer_id"] != 4), key=lambda r: r["id"])
    old_version = customers.snapshot().version

    plan = erase(lh, "customer_id = 4")
    assert plan["dry_run"] and set(plan["tables"]) == {"g.customers", "g.events"}
    assert plan["tables"]["g.events"]["rows_matching"] == 4
    receipt = erase(lh, "customer_id = 4", dry_run=False)
    assert receipt["tables"]["g.customers"]["rows_deleted"] == len([i for i in range(60) if i % 7 == 4])
    assert all(t["rows_matching_after"] == 0 for t in receipt["tables"].values())
    assert sorted(lh.table("g.customers").scan().to_pylist(), key=lambda r: r["id"]) == keep_customers
    assert lh.table("g.events").scan().column("customer_id").to_pylist() == [5, 5]
    for table in (customers, events):
        assert raw_values_found(lh, table.location, subject) == set(), f"{table.name} still holds the subject"
        assert raw_values_found(lh, table.location, ["customer_id = 4"]) == set(), "no predicate left in a log"
    with pytest.raises(VersionNotFoundError):
        lh.table("g.customers").scan(as_of=old_version)
    entry = lh.audit_log(action="erase.receipt")[0]
    assert entry.details["receipt_id"] == receipt["receipt_id"] and "customer_id = 4" not in str(entry.details)
    assert entry.details["predicate_digest"] == receipt["predicate_digest"] and receipt["digest"] == "hmac-sha256"


def test_scan_tags_and_masked_reads(tmp_path: Any, fmt: str) -> None:
    from lakehouse.config import load_settings

    with Lakehouse(load_settings(config_file=False, warehouse=str(tmp_path / "wh"))) as lh:
        table = lh.create_table(
            "g.tickets", schema=parse_schema("id:int64, ref:string, notes:string, first_name:string"), format=fmt
        )
        n = 400
        notes = [
            f"call me at ada{i}@example.com"
            if i % 9 == 0
            else f"card {CARDS[i % 3]} declined"
            if i % 9 == 1
            else "IBAN DE89 3704 0044 0532 0130 00 for the refund"
            if i % 9 == 2
            else f"printer jam number {i}"
            for i in range(n)
        ]
        import random

        refs = [str(random.Random(i).randrange(10**15, 10**16)) for i in range(n)]
        table.append(
            pa.table({"id": pa.array(range(n), pa.int64()), "ref": refs, "notes": notes, "first_name": ["Ada"] * n})
        )
        report = scan_table(lh, "g.tickets")
        kinds = {(f["column"], f["kind"]) for f in report["findings"]}
        assert {("notes", "email"), ("notes", "card"), ("notes", "iban"), ("first_name", "person_name")} <= kinds
        assert not any(c == "ref" for c, _ in kinds), "random ids are not PII"
        tags = lh.catalog.pii_tags(table.name)
        assert tags and all("@" not in str(t) for t in tags), "tags hold counts, never values"

        plain = lh.query("SELECT notes FROM g.tickets WHERE id = 0").table.to_pylist()
        assert plain == [{"notes": "call me at ada0@example.com"}]
        for sql in (
            "SELECT notes, first_name FROM g.tickets WHERE id = 0",
            "SELECT upper(notes) AS notes, first_name FROM g.tickets WHERE id = 0",
            "WITH t AS (SELECT * FROM g.tickets) SELECT notes, first_name FROM t WHERE id = 0",
        ):
            got = lh.query(sql, masked=True).table.to_pylist()[0]
            assert "ada0" not in str(got).lower() and "[REDACTED]" in got["notes"].upper(), sql
        assert lh.query(
            "SELECT count(*) AS n FROM g.tickets WHERE notes LIKE '%@%'", masked=True
        ).table.to_pylist() == [{"n": 0}]


def test_ingestion_upserts_by_declared_keys(tmp_path: Any, fmt: str) -> None:
    from lakehouse.config import load_settings

    with Lakehouse(load_settings(config_file=False, warehouse=str(tmp_path / "wh"))) as lh:
        lh.create_table(
            "g.devices",
            schema=parse_schema("id:int64 not null, state:string, ts:timestamp"),
            format=fmt,
            keys=["id"],
            partitioning=parse_partitioning("day(ts)"),
        )
        ts = "2026-05-01T10:00:00Z"
        first = ingest_records(lh, "g.devices", [{"id": i, "state": "new", "ts": ts} for i in range(5)], source="s")
        assert first.rows == 5
        # a replay of the same batch is skipped by position; a new batch with duplicates and updates upserts
        assert ingest_records(lh, "g.devices", [{"id": 0, "state": "x", "ts": ts}], source="s").skipped == 1
        batch = [
            {"id": 1, "state": "on", "ts": ts},
            {"id": 1, "state": "off", "ts": ts},
            {"id": 9, "state": "new", "ts": ts},
        ]
        ingest_records(lh, "g.devices", batch, source="s", start_position=5)
        got = {r["id"]: r["state"] for r in lh.table("g.devices").scan().to_pylist()}
        assert got == {0: "new", 1: "off", 2: "new", 3: "new", 4: "new", 9: "new"}
        lh.set_policy("g.devices", {"dedup": {"on_ingest": "append"}})
        ingest_records(lh, "g.devices", [{"id": 2, "state": "dup", "ts": ts}], source="s", start_position=8)
        assert lh.table("g.devices").row_count() == 7, "append mode lets duplicates land"
