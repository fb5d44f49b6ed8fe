"""Record parsing: lossless coercion, clear errors, and the batch fast path agreeing with the per-record path."""

from __future__ import annotations

import datetime as dt
import json

import pyarrow as pa
import pytest

from lakehouse.ingest.records import RawRecord, RecordParser
from lakehouse.schema import parse_schema

SCHEMA = parse_schema("id:int64 not null, ts:timestamp, d:date, x:float64, ok:bool, s:string, n:int32, p:decimal(6,2)")


def _parse(*payloads: object, schema: pa.Schema = SCHEMA) -> tuple[list[dict], list[str]]:
    recs = [RawRecord(p if isinstance(p, bytes) else json.dumps(p).encode(), "t", i) for i, p in enumerate(payloads)]
    r = RecordParser(schema).parse(recs)
    return r.good.to_pylist(), [b.error for b in r.bad]


def test_lossless_coercions() -> None:
    good, bad = _parse(
        {
            "id": "12",
            "ts": "2026-01-01T10:00:00+02:00",
            "d": "2026-01-02",
            "x": "1.5",
            "ok": "true",
            "s": 5,
            "n": 7.0,
            "p": "12.34",
        }
    )
    assert bad == []
    row = good[0]
    assert row["id"] == 12 and row["ts"] == dt.datetime(2026, 1, 1, 8, tzinfo=dt.UTC)
    assert row["d"] == dt.date(2026, 1, 2) and row["x"] == 1.5 and row["ok"] is True and row["s"] == "5"
    assert row["n"] == 7 and str(row["p"]) == "12.34"
    good, _ = _parse({"id": 1, "ts": "2026-01-01T10:00:00"})
    assert good[0]["ts"] == dt.datetime(2026, 1, 1, 10, tzinfo=dt.UTC)  # no zone: taken as UTC


@pytest.mark.parametrize(
    ("payload", "error"),
    [
        (b"{nope", "not valid JSON"),
        (b"[1]", "must be a JSON object"),
        ({"ts": "2026-01-01T00:00:00Z"}, "field 'id' is required"),
        ({"id": 1.5}, "'id': 1.5 is not an integer"),
        ({"id": True}, "boolean, not an integer"),
        ({"id": 1, "n": 2**40}, "does not fit int32"),
        ({"id": 1, "ts": "tomorrow"}, "not an ISO-8601 timestamp"),
        ({"id": 1, "x": "warm"}, "'warm' is not a number"),
        ({"id": 1, "ok": "maybe"}, "not a boolean"),
        ({"id": 1, "p": "1.234"}, "more than 2 decimal places"),
        ({"id": 1, "s": {"a": 1}}, "not a string"),
    ],
)
def test_bad_records_name_the_problem(payload: object, error: str) -> None:
    good, bad = _parse({"id": 99}, payload)
    assert [g["id"] for g in good] == [99]
    assert len(bad) == 1 and error in bad[0], bad


def test_fast_path_equals_per_record_path() -> None:
    schema = parse_schema("id:int64 not null, ts:timestamp not null, kind:string, temp:float64, ok:bool, d:date")
    recs = [
        RawRecord(
            json.dumps(
                {
                    "id": i,
                    "ts": f"2026-03-0{1 + i % 5}T0{i % 10}:00:00+01:00",
                    "kind": f"k{i}",
                    "temp": i / 3,
                    "ok": i % 2 == 0,
                    "d": "2026-01-05",
                    "extra": 1,
                }
            ).encode(),
            "t",
            i,
        )
        for i in range(500)
    ]
    parser = RecordParser(schema)
    fast = parser._parse_clean_batch(recs)
    assert fast is not None, "a clean batch takes the fast path"
    slow = parser._parse_records(recs)
    assert slow.bad == [] and fast.equals(slow.good)
    # one bad record sends the whole batch down the per-record path, which keeps the good ones
    mixed = [*recs, RawRecord(b'{"id": "x"}', "t", 500)]
    assert parser._parse_clean_batch(mixed) is None
    result = parser.parse(mixed)
    assert result.good.num_rows == 500 and len(result.bad) == 1
