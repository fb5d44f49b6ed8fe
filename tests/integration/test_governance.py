"""PII masking in place with purge, erasure, masked reads, and ingestion that masks and upserts, on both formats,
local and S3. "Gone" is checked in the files themselves: every object under the table location is decoded
(Parquet pages, Avro blocks, JSON logs, checkpoints) and searched for the raw values."""

from __future__ import annotations

import datetime as dt
import json
import re
import zlib
from collections.abc import Iterable, Iterator
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lakehouse.core import Lakehouse
from lakehouse.errors import InvalidInputError, StorageError, UnsupportedOperationError, VersionNotFoundError
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


def email(i: int) -> str:
    """Longer than Iceberg's 16-character bound truncation (and Delta's 32), distinct from the first character."""
    return f"u{i:04d}.customer.{i * 7919 % 10007:05d}@example-mail.io"


def note(i: int) -> str:
    return f"s{i % 7}-private-note-of-the-subject-{i:04d}" if i % 7 == 4 else f"order {i}"


def rows(start: int, n: int) -> pa.Table:
    base = dt.datetime(2026, 5, 1, tzinfo=dt.UTC)
    return pa.Table.from_pylist(
        [
            {
                "id": i,
                "customer_id": i % 7,
                "ts": base + dt.timedelta(hours=i * 5),
                "email": email(i),
                "card": CARDS[i % 3],
                "ip": f"10.{i % 200}.7.{i % 250 + 1}",
                "note": note(i),
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


# Formats keep string statistics truncated: Iceberg's default metrics mode is truncate(16) (the lower bound is
# the 16-character prefix, the upper bound the 15-character prefix with its last character incremented), and
# Delta writers may cap min/max at 32 characters (delta-rs 1.6 writes them whole). So a leaked long value may
# survive only as a prefix: search for those too.
PREFIXES = (15, 16, 32)


def needles(value: str) -> set[bytes]:
    raw = value.encode()
    return {raw} | {raw[:n] for n in PREFIXES if n < len(raw)}


def raw_values_found(lh: Lakehouse, location: str, values: Iterable[str]) -> set[str]:
    """Which of ``values`` appear, whole or as a truncated statistics prefix, in any file under ``location``,
    decoded (Parquet rows and raw footers, Avro blocks, JSON logs)."""
    wanted = {v: needles(v) for v in values}
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
        for v, ns in wanted.items():
            if any(n in b for n in ns for b in blobs):
                found.add(v)
    return found


def test_the_checker_finds_truncated_prefixes(tmp_path: Any) -> None:
    """A value left only as Iceberg's truncated lower bound (its first 16 characters) or upper bound (the first
    15, then the 16th incremented) is found; a value sharing a shorter prefix is not."""
    from lakehouse.config import load_settings

    with Lakehouse(load_settings(config_file=False, warehouse=str(tmp_path / "wh"))) as lh:
        value = email(3)
        assert len(value) > 32
        d = tmp_path / "wh" / "t"
        d.mkdir(parents=True)
        bound = d / "manifest.json"
        for kept in (value[:16], value[:15] + chr(ord(value[15]) + 1), value[:32]):
            bound.write_text(json.dumps({"bound": kept}))
            assert raw_values_found(lh, str(d), [value, email(4)]) == {value}, kept
        bound.write_text(json.dumps({"bound": value[:14]}))
        assert raw_values_found(lh, str(d), [value]) == set()


def _current_metadata(lh: Lakehouse, name: str) -> str:
    from lakehouse.storage import normalize_path

    return normalize_path(str(lh.table(name).metadata_location))  # type: ignore[attr-defined]


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
    if fmt == "iceberg":  # the older metadata JSON files (listing the old snapshots) are gone too
        metadata = [f.path for f in list_files(f"{table.location}/metadata", lh.ctx) if f.path.endswith(".json")]
        assert _current_metadata(lh, "g.customers") in metadata and len(metadata) <= 3
        current = {s.snapshot_id for s in lh.table("g.customers").snapshots()}
        for path in metadata:  # the one or two the metadata log still names list only the current snapshot
            filesystem, inner = split_location(path, lh.ctx)
            with filesystem.open_input_stream(inner) as fh:
                listed = {s["snapshot-id"] for s in json.loads(fh.read()).get("snapshots", [])}
            assert listed <= current, path
    fresh = lh.table("g.customers")
    assert len([s for s in fresh.snapshots() if not (fresh.expired and s.version in fresh.expired.versions)]) == 1
    with pytest.raises(VersionNotFoundError):
        fresh.scan(as_of=fresh.snapshot().version - 1)

    # ingestion masks from now on, and tokens join across tables
    ingest_records(lh, "g.customers", [rows(100, 1).to_pylist()[0] | {"ts": "2026-05-02T00:00:00Z"}], source="api")
    added = lh.table("g.customers").scan(filter="id = 100").to_pylist()[0]
    assert added["email"] == token(email(100), SECRET.encode()) and added["card"] == "*" * 12 + "0004"
    orders = lh.create_table("g.orders", schema=parse_schema("order_id:int64, email:string"), format=fmt)
    lh.set_policy("g.orders", {"masking": {"email": "hash"}})
    lh.append("g.orders", pa.table({"order_id": pa.array([1, 2], pa.int64()), "email": [email(3), "nobody@x.io"]}))
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
                    "what": [f"s4-click-on-the-checkout-page-{b}", "other", f"s4-view-of-the-product-page-{b}"],
                    "ts": pa.array([dt.datetime(2026, 5, 1, tzinfo=dt.UTC)] * 3, pa.timestamp("us", tz="UTC")),
                }
            )
        )
    in_customers = [f(i) for i in range(60) if i % 7 == 4 for f in (note, email)]
    in_events = [f"s4-{w}-{b}" for w in ("click-on-the-checkout-page", "view-of-the-product-page") for b in (0, 1)]
    subject = in_customers + in_events
    assert all(len(v) > 16 for v in subject), "longer than the truncated bounds, so prefixes are searched too"
    assert raw_values_found(lh, customers.location, in_customers) == set(in_customers)
    assert raw_values_found(lh, events.location, in_events) == set(in_events)
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
        # a condition on a masked column is the masked values' (the worker's reader is never handed it): no
        # masked value equals the raw one, so every row passes
        raw = "call me at ada0@example.com"
        sql = f"SELECT count(*) AS n FROM g.tickets WHERE notes <> '{raw}' AND id >= 0"
        assert lh.query(sql, masked=True).table.to_pylist() == [{"n": n}]
        assert lh.query(sql).table.to_pylist() == [{"n": n - 1}]


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
        # an update that moves a row to another day partition (Delta: its generated ts_day follows the new ts)
        moved = [{"id": 3, "state": "moved", "ts": "2026-06-02T23:30:00Z"}]
        ingest_records(lh, "g.devices", moved, source="s", start_position=8)
        got = {r["id"]: (r["state"], r["ts"].isoformat()) for r in lh.table("g.devices").scan().to_pylist()}
        assert got[3] == ("moved", "2026-06-02T23:30:00+00:00") and len(got) == 6
        june = "SELECT id, state FROM g.devices WHERE ts >= TIMESTAMPTZ '2026-06-01 00:00:00+00'"
        assert lh.query(june).table.to_pylist() == [{"id": 3, "state": "moved"}], "read through its partition"
        assert lh.query("SELECT count(*) AS n FROM g.devices WHERE ts < TIMESTAMPTZ '2026-06-01 00:00:00+00'").table[
            "n"
        ].to_pylist() == [5]
        lh.set_policy("g.devices", {"dedup": {"on_ingest": "append"}})
        ingest_records(lh, "g.devices", [{"id": 2, "state": "dup", "ts": ts}], source="s", start_position=9)
        assert lh.table("g.devices").row_count() == 7, "append mode lets duplicates land"


def test_upsert_recomputes_another_writer_s_generated_columns(tmp_path: Any) -> None:
    """A Delta table whose generated columns another writer declared (one over a column with a space in its
    name, one a date of a timestamp): an upsert that changes their sources writes the values they generate."""
    from deltalake import DeltaTable, Field, Schema
    from deltalake.schema import PrimitiveType

    from lakehouse.config import load_settings

    location = str(tmp_path / "foreign")
    gen = "delta.generationExpression"
    DeltaTable.create(
        location,
        Schema(
            [
                Field("id", PrimitiveType("long")),
                Field("unit price", PrimitiveType("long")),
                Field("ts", PrimitiveType("timestamp")),
                Field("double", PrimitiveType("long"), metadata={gen: "`unit price` * 2"}),
                Field("day", PrimitiveType("date"), metadata={gen: "CAST(ts AS DATE)"}),
            ]
        ),
        partition_by=["day"],
    )
    utc = dt.UTC
    first = pa.table(
        {
            "id": pa.array([1, 2], pa.int64()),
            "unit price": pa.array([10, 20], pa.int64()),
            "ts": pa.array([dt.datetime(2026, 3, 1, tzinfo=utc)] * 2, pa.timestamp("us", tz="UTC")),
        }
    )
    from deltalake import write_deltalake

    write_deltalake(location, first, mode="append")
    with Lakehouse(load_settings(config_file=False, warehouse=str(tmp_path / "wh"))) as lh:
        table = lh.register_table("f.gen", location=location)
        change = {"id": [2, 3], "unit price": [25, 30], "ts": [dt.datetime(2026, 4, 9, tzinfo=utc)] * 2}
        schema = pa.schema([table.schema.field(c) for c in change])
        table.upsert(pa.table(change, schema=schema), keys=["id"])
    rows = sorted(DeltaTable(location).to_pyarrow_table().to_pylist(), key=lambda r: r["id"])
    assert [(r["id"], r["unit price"], r["double"], r["day"].isoformat()) for r in rows] == [
        (1, 10, 20, "2026-03-01"),
        (2, 25, 50, "2026-04-09"),
        (3, 30, 60, "2026-04-09"),
    ]


# ---- refusals and failures leave the table as it was ----------------------------------------------------------


@pytest.fixture
def llh(tmp_path: Any) -> Iterator[Lakehouse]:
    """A local Lakehouse with a mask secret (the refusals and failures below do not depend on the storage)."""
    from lakehouse.config import load_settings

    with Lakehouse(
        load_settings(config_file=False, warehouse=str(tmp_path / "wh"), governance={"mask_secret": SECRET})
    ) as lh:
        yield lh


def _mask_leftovers(lh: Lakehouse, location: str) -> list[str]:
    return sorted(f.path for f in list_files(location, lh.ctx) if "-mask/" in f.path)


def test_masking_a_partition_source_column_is_refused(llh: Lakehouse, fmt: str) -> None:
    lh = llh
    for i, spec in enumerate(["day(ts)", "hour(ts)", "month(ts)", "year(ts)", "card"]):
        name, column = f"g.parts{i}", "card" if spec == "card" else "ts"
        policy = "partial" if column == "card" else "generalize:month"
        table = lh.create_table(name, schema=SCHEMA, format=fmt, partitioning=parse_partitioning(spec))
        table.append(rows(0, 12))
        before = sorted(f.path for f in table.files())
        for dry_run in (True, False):  # refused by the plan: the dry run says so, the run changes nothing
            with pytest.raises(InvalidInputError, match=re.escape(f"{column} (partitioned by {spec})")) as e:
                mask_table(lh, name, policies={column: policy, "email": "hash"}, purge=True, dry_run=dry_run)
            assert e.value.hint and "not partitioned by it" in e.value.hint
        fresh = lh.table(name)
        assert sorted(f.path for f in fresh.files()) == before and _mask_leftovers(lh, table.location) == []
        assert lh.policy(name).masking == {} and not [j for j in lh.jobs(name) if j.kind == "pii.mask"]
    # a stored policy on a partition source is refused when set
    with pytest.raises(InvalidInputError, match=re.escape("ts (partitioned by day(ts))")):
        lh.set_policy("g.parts0", {"masking": {"ts": "generalize:month"}})
    assert lh.policy("g.parts0").masking == {}
    # one from lakehouse.toml is not checked against the table when settings load: ingestion stops the write
    # instead of landing rows
    toml_policy = {"tables": {"g.parts0": {"masking": {"ts": "generalize:month"}}}}
    with Lakehouse(lh.settings.model_copy(update=toml_policy)) as other:
        rows_before = other.table("g.parts0").row_count()
        with pytest.raises(InvalidInputError, match=re.escape("ts (partitioned by day(ts))")):
            other.append("g.parts0", rows(100, 1))
        with pytest.raises(InvalidInputError, match="partitioned by"):
            ingest_records(
                other, "g.parts0", [rows(101, 1).to_pylist()[0] | {"ts": "2026-05-02T03:04:05Z"}], source="a"
            )
        assert other.table("g.parts0").row_count() == rows_before
        # reading masked is fine: the view masks the column
        got = other.query("SELECT DISTINCT ts FROM g.parts0", masked=True).table.column("ts").to_pylist()
        assert got == [dt.datetime(2026, 5, 1, tzinfo=dt.UTC)]


def _fail_in_commit(monkeypatch: pytest.MonkeyPatch, fmt: str) -> None:
    """Make the adapter's own commit call fail (after its validation, before anything lands)."""
    if fmt == "delta":
        import deltalake
        from deltalake.exceptions import DeltaError

        def broken(self: Any, *a: Any, **kw: Any) -> None:
            raise DeltaError("simulated storage failure while committing")

        monkeypatch.setattr(deltalake.DeltaTable, "create_write_transaction", broken)
    else:
        from pyiceberg.table import Table

        def broken_commit(self: Any, *a: Any, **kw: Any) -> None:
            raise OSError("simulated storage failure while committing")

        # every pyiceberg commit goes through it (transactions, and the rewrites lakehouse commits itself)
        monkeypatch.setattr(Table, "_do_commit", broken_commit)


@pytest.mark.parametrize("when", ["before-commit", "in-commit", "after-commit"])
def test_a_failed_mask_leaves_no_policy_and_no_written_file(
    llh: Lakehouse, fmt: str, when: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    lh = llh
    table = _build(lh, fmt)
    files = sorted(f.path for f in table.files())
    emails = sorted(table.scan(columns=["email"]).column("email").to_pylist())
    if when == "in-commit":
        _fail_in_commit(monkeypatch, fmt)
    else:
        cls = type(table)
        original = cls.replace_files

        def failing(self: Any, **kw: Any) -> Any:
            if when == "after-commit":
                original(self, **kw)
            # what the adapters raise from their validation (a file in another partition, no field id ...)
            raise StorageError(f"simulated failure of {self.name}; nothing committed")

        monkeypatch.setattr(cls, "replace_files", failing)
    if when == "after-commit":  # the commit landed although the call raised: that is the outcome
        done = mask_table(lh, "g.customers", policies={"email": "hash"}, dry_run=False)
        assert "simulated failure" in done["commit_error"] and "warning" not in done
    else:
        with pytest.raises(StorageError):
            mask_table(lh, "g.customers", policies={"email": "hash"}, dry_run=False)
    monkeypatch.undo()
    job = next(j for j in lh.jobs("g.customers") if j.kind == "pii.mask")
    assert job.state == ("committed" if when == "after-commit" else "failed")
    fresh = lh.table("g.customers")
    if when != "after-commit":
        assert lh.policy("g.customers").masking == {}, "no policy: ingestion does not mask with it"
        assert lh.catalog.policy(fresh.name).get("masking") is None
        assert _mask_leftovers(lh, table.location) == [], "every file the run wrote is deleted"
        assert sorted(f.path for f in fresh.files()) == files
        assert sorted(fresh.scan(columns=["email"]).column("email").to_pylist()) == emails
        lh.append("g.customers", rows(100, 1))
        assert fresh.scan(filter="id = 100").column("email").to_pylist() == [email(100)]
    else:
        assert done["version"] == fresh.snapshot().version and job.metrics["version"] == done["version"]
        assert lh.policy("g.customers").masking == {"email": "hash"}, "the table is masked: so is ingestion"
        live = sorted(f.path for f in fresh.files())
        assert live == _mask_leftovers(lh, table.location), "the written files are the live ones: kept"
        assert all(v.startswith("tok_") for v in fresh.scan(columns=["email"]).column("email").to_pylist())


def test_rows_appended_while_a_mask_runs_are_masked_too(
    llh: Lakehouse, fmt: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Appends that land while the mask rewrites (lakehouse's ingestion, before the policy is stored, and another
    writer through the format's library) are masked by the job's next rounds; the rows are the same otherwise."""
    lh = llh
    table = _build(lh, fmt)
    before = table.scan().num_rows
    cls = type(table)
    original = cls.replace_files
    calls = []

    def racing(self: Any, **kw: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:  # the job's first commit: two writers append before it lands
            from lakehouse.config import load_settings

            with Lakehouse(load_settings(config_file=False, warehouse=str(lh.settings.warehouse))) as other:
                other.append("g.customers", rows(200, 3))
            foreign = rows(300, 2)
            if fmt == "delta":
                from deltalake import write_deltalake

                write_deltalake(self.location, foreign, mode="append")
            else:
                self._table.refresh()
                self._table.append(foreign)
        return original(self, **kw)

    monkeypatch.setattr(cls, "replace_files", racing)
    done = mask_table(lh, "g.customers", policies={"email": "redact"}, dry_run=False)
    monkeypatch.undo()
    assert done["latecomer_files"] >= 2 and done["latecomer_rows"] == 5 and "warning" not in done, done
    fresh = lh.table("g.customers")
    got = fresh.scan().sort_by("id")
    assert got.num_rows == before + 5
    assert set(got.column("email").to_pylist()) == {"[REDACTED]"}
    assert got.column("id").to_pylist() == sorted([*range(60), 200, 201, 202, 300, 301])
    job = next(j for j in lh.jobs("g.customers") if j.kind == "pii.mask")
    assert job.state == "committed" and job.metrics["latecomer_rows"] == 5


def test_mask_follows_iceberg_renamed_and_added_columns(llh: Lakehouse) -> None:
    lh = llh
    table = lh.create_table("g.evolved", schema=SCHEMA, format="iceberg", partitioning=parse_partitioning("day(ts)"))
    table.append(rows(0, 10))
    with table._table.update_schema() as update:  # type: ignore[attr-defined]
        update.rename_column("email", "contact")
    table.add_columns([pa.field("extra", pa.string())])
    newer = rows(10, 5).rename_columns(["contact" if c == "email" else c for c in SCHEMA.names])
    table.append(newer.append_column("extra", pa.array(["x"] * 5)))
    before = {r["id"]: r for r in table.scan().to_pylist()}
    done = mask_table(lh, "g.evolved", policies={"contact": "hash"}, dry_run=False)
    assert done["files_rewritten"] == len(table.files())
    after = {r["id"]: r for r in lh.table("g.evolved").scan().to_pylist()}
    assert after.keys() == before.keys()
    for i, r in after.items():
        assert r["contact"] == token(email(i), SECRET.encode())
        assert {k: v for k, v in r.items() if k != "contact"} == {k: v for k, v in before[i].items() if k != "contact"}


@pytest.mark.parametrize("ref", ["tag", "branch"])
def test_purge_refuses_iceberg_tags_and_branches_up_front(llh: Lakehouse, ref: str) -> None:
    lh = llh
    table = _build(lh, "iceberg")
    ice = table._table  # type: ignore[attr-defined]
    sid = ice.current_snapshot().snapshot_id
    manage = ice.manage_snapshots()
    (manage.create_tag(sid, "audit-2026") if ref == "tag" else manage.create_branch(sid, "audit-2026")).commit()
    versions, count = len(table.snapshots()), table.row_count()
    subject = [f(i) for i in range(60) if i % 7 == 4 for f in (note, email)]
    for dry_run in (True, False):
        with pytest.raises(UnsupportedOperationError, match=f"{ref} 'audit-2026'") as e:
            erase(lh, "customer_id = 4", dry_run=dry_run)
        assert e.value.hint and f"remove_{ref}('audit-2026')" in e.value.hint and "--no-purge" in e.value.hint
        with pytest.raises(UnsupportedOperationError, match="audit-2026"):
            mask_table(lh, "g.customers", policies={"email": "hash"}, purge=True, dry_run=dry_run)
    fresh = lh.table("g.customers")
    assert (len(fresh.snapshots()), fresh.row_count()) == (versions, count), "nothing deleted, nothing committed"
    assert lh.audit_log(action="erase.receipt") == [] and lh.policy("g.customers").masking == {}
    assert [j.kind for j in lh.jobs("g.customers") if j.kind in ("erase", "pii.mask", "vacuum")] == []
    # without a purge the erasure runs (the tagged snapshot keeps the rows, as the hint says)
    kept = erase(lh, "customer_id = 4", purge=False, dry_run=False)
    assert kept["tables"]["g.customers"]["rows_deleted"] > 0 and raw_values_found(lh, table.location, subject)
    # once the reference is gone, the purge runs and the values are gone
    manage = fresh._table.manage_snapshots()  # type: ignore[attr-defined]
    (manage.remove_tag("audit-2026") if ref == "tag" else manage.remove_branch("audit-2026")).commit()
    erase(lh, "customer_id = 4", dry_run=False)
    assert raw_values_found(lh, table.location, subject) == set()


def test_erase_and_mask_refuse_ambiguous_arguments(llh: Lakehouse, tmp_path: Any) -> None:
    from typer.testing import CliRunner

    from lakehouse.cli import app

    lh = llh
    table = _build(lh, "delta")
    count = table.row_count()
    with pytest.raises(InvalidInputError, match="no table given"):
        erase(lh, "customer_id = 4", tables=[], dry_run=False)
    runner = CliRunner()
    wh = str(tmp_path / "wh")
    mask_email = ["-w", wh, "pii", "mask", "g.customers", "--column", "email", "--policy", "hash"]
    for tables in (",", "", " , "):
        result = runner.invoke(app, ["-w", wh, "erase", "--where", "customer_id = 4", "--tables", tables, "--apply"])
        assert isinstance(result.exception, InvalidInputError), result.output
        assert "--tables names no table" in str(result.exception)
    result = runner.invoke(
        app,
        [*mask_email, "--column", "email", "--policy", "redact", "--apply"],
    )
    assert isinstance(result.exception, InvalidInputError) and "--column email given more than once" in str(
        result.exception
    )
    assert lh.table("g.customers").row_count() == count and lh.policy("g.customers").masking == {}
    # several distinct pairs are all applied
    result = runner.invoke(
        app,
        [*mask_email, "--column", "ip", "--policy", "generalize", "--apply", "--json"],
        env={"LAKEHOUSE_GOVERNANCE__MASK_SECRET": SECRET},
    )
    assert result.exit_code == 0, result.output
    assert lh.policy("g.customers").masking == {"email": "hash", "ip": "generalize"}


def test_erase_finds_columns_other_writers_added_and_refuses_another_spelling(llh: Lakehouse, fmt: str) -> None:
    """Without --tables, an erasure picks tables by their schema now, not the catalog's copy from when they were
    registered: a column another writer added since (delta-rs schema merge, pyiceberg update_schema) is found.
    A table that has the column only under another case (the same column to SQL) is refused by name."""
    lh = llh
    table = lh.create_table("crm.grown", schema=pa.schema([("id", pa.int64())]), format=fmt)
    table.append(pa.table({"id": pa.array([1], pa.int64())}))
    later = pa.table({"id": pa.array([2, 3], pa.int64()), "subject": pa.array([42, 7], pa.int64())})
    if fmt == "delta":
        from deltalake import write_deltalake

        write_deltalake(table.location, later, mode="append", schema_mode="merge")
    else:
        from pyiceberg.types import LongType

        ice = table._table
        with ice.update_schema() as update:
            update.add_column("subject", LongType())
        ice.refresh()
        ice.append(later.select(["id", "subject"]).cast(ice.schema().as_arrow()))
    assert lh.catalog.get_table(table.name).definition.schema.get_field_index("subject") < 0  # the catalog's copy
    plan = erase(lh, "subject = 42", dry_run=True)
    assert plan["tables"] == {"crm.grown": {"rows_matching": 1}}, plan
    done = erase(lh, "subject = 42", dry_run=False)
    assert done["complete"] and done["tables"]["crm.grown"]["rows_deleted"] == 1
    assert sorted(lh.table("crm.grown").scan().column("id").to_pylist()) == [1, 3]
    lh.create_table("crm.spelt", schema=pa.schema([("Subject", pa.int64())]), format=fmt).append(
        pa.table({"Subject": pa.array([42], pa.int64())})
    )
    with pytest.raises(InvalidInputError, match=r"spelt otherwise.*crm\.spelt: Subject"):
        erase(lh, "subject = 42", dry_run=True)
    assert lh.table("crm.spelt").scan().num_rows == 1


def test_an_erase_killed_after_its_commit_is_recorded_committed(tmp_path: Any, fmt: str) -> None:
    """SIGKILL after the delete committed, in the purge: the job is closed as committed (that is what happened),
    with the unfinished steps named, not as failed; the jobs record counts the deleted row."""
    import json
    import os
    import subprocess
    import sys
    import textwrap
    import time

    from lakehouse.config import load_settings

    warehouse = str(tmp_path / "wh")
    with Lakehouse(load_settings(config_file=False, warehouse=warehouse)) as lh:
        table = lh.create_table("crm.c", schema=pa.schema([("cid", pa.int64()), ("email", pa.string())]), format=fmt)
        table.append(pa.table({"cid": pa.array([42, 7], pa.int64()), "email": ["s@secret.example", "x@y.z"]}))
    child = textwrap.dedent(
        f"""
        import os
        import lakehouse.governance.ops as ops
        from lakehouse.config import load_settings
        from lakehouse.core import Lakehouse
        ops.purge_history = lambda *a, **k: os._exit(137)  # the process dies in the purge
        lh = Lakehouse(load_settings(config_file=False, warehouse={warehouse!r}))
        ops.erase(lh, "cid = 42", tables=["crm.c"], dry_run=False)
        """
    )
    env = {**os.environ, "LAKEHOUSE_AUTOPILOT__LEASE_TTL": "1s"}
    assert subprocess.run([sys.executable, "-c", child], env=env, check=False).returncode == 137
    time.sleep(1.5)  # the dead process's lease lapses
    with Lakehouse(load_settings(config_file=False, warehouse=warehouse)) as lh:
        job = next(j for j in lh.jobs("crm.c") if j.kind == "erase")
        assert job.state == "committed" and "abandoned after its commit landed" in (job.error or ""), job
        assert job.metrics["rows_deleted"] == 1 and "lakehouse.commit_landed" not in json.dumps(job.metrics)
        assert lh.table("crm.c").scan().column("cid").to_pylist() == [7]


def test_erase_compares_nan_as_sql_does(llh: Lakehouse, fmt: str) -> None:
    """``erase --where "f = 'NaN'"`` planned 0 rows (IEEE: NaN equals nothing) while ``lakehouse query`` counted
    2 and ``f IN ('NaN')`` planned 2; the erasure then reported itself done with the NaN rows still there. The
    filter language now orders floats as SQL does (NaN equals NaN and sorts above every number), in plans, in
    file pruning (bounds leave NaN out) and in the check after the delete."""
    lh = llh
    schema = parse_schema("id:int64, f:float64")
    table = lh.create_table("g.floats", schema=schema, format=fmt)
    values = [float("nan"), 1.5, -0.0, None, float("nan"), float("inf")]
    for i, v in enumerate(values):  # a file each: pruning by each file's bounds is exercised
        table.append(pa.table({"id": [i], "f": [v]}, schema=schema))
    sql = "SELECT count(*) AS n FROM g.floats WHERE {}"
    cases = (("f = 'NaN'", 2), ("f > 1e308", 3), ("f >= 'NaN'", 2), ("f < 'NaN'", 3), ("f IN ('NaN')", 2))
    for where, n in (*cases, ("f IN (0)", 1), ("f NOT IN (0, 'NaN')", 2)):  # -0.0 equals 0, as in SQL
        assert lh.query(sql.format(where)).table.column("n")[0].as_py() == n, where
        assert erase(lh, where, tables=["g.floats"])["tables"]["g.floats"]["rows_matching"] == n, where
        for clause in (where, f"NOT ({where})"):  # the format library's scan too (pyiceberg: IsNaN / NotNaN)
            expected = n if clause == where else 5 - n  # NULL matches neither
            assert lh.table("g.floats").scan(filter=clause).num_rows == expected, clause
    receipt = erase(lh, "f = 'NaN'", tables=["g.floats"], purge=False, dry_run=False)["tables"]["g.floats"]
    assert receipt["rows_deleted"] == 2 and receipt["rows_matching_after"] == 0
    assert sorted(r["id"] for r in lh.table("g.floats").scan().to_pylist()) == [1, 2, 3, 5]


def test_pii_inside_nested_columns_is_found_and_read_masked(llh: Lakehouse, fmt: str) -> None:
    """A scan sampled only plain string columns: addresses inside a struct, a list or a map were never tagged,
    and masked readers saw them. Now a nested column holding PII is tagged as a whole and read as NULL."""
    lh = llh
    schema = parse_schema("id:int64, contact:struct<mail: string, n: int64>, aliases:list<string>, note:string")
    table = lh.create_table("g.nested", schema=schema, format=fmt)
    rows = [
        {"id": i, "contact": {"mail": f"p{i}@corp-example.com", "n": i}, "aliases": [f"a{i}@x.org"], "note": "ok"}
        for i in range(30)
    ]
    table.append(pa.Table.from_pylist(rows, schema=schema))
    report = scan_table(lh, "g.nested")
    assert {f["column"] for f in report["findings"]} == {"contact", "aliases"}
    masked = lh.query("SELECT contact, aliases, note FROM g.nested LIMIT 3", masked=True).table.to_pylist()
    assert masked == [{"contact": None, "aliases": None, "note": "ok"}] * 3


def test_a_pii_scan_of_a_file_it_cannot_read_is_one_error(llh: Lakehouse, fmt: str) -> None:
    """A data file that cannot be read (cut short here; on S3 also one a lifecycle rule archived): the scan
    stops with a storage error naming the file, not a pyarrow traceback (a 500 through the API)."""
    from lakehouse.governance.pii import scan_table

    table = llh.create_table("g.cut", schema=pa.schema([("id", pa.int64()), ("email", pa.string())]), format=fmt)
    table.append(pa.table({"id": pa.array([1], pa.int64()), "email": ["a@b.example"]}))
    path = table.files()[0].path
    with open(path, "r+b") as fh:
        fh.truncate(10)
    with pytest.raises(StorageError, match="cannot sample"):
        scan_table(llh, "g.cut", dry_run=True)
