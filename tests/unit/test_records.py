"""Record parsing: lossless coercion, clear errors, and the batch fast path agreeing with the per-record path."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

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
        # a value the type cannot hold, in any spelling, is that record's problem (was a traceback, or hours of
        # CPU expanding 1e99999999)
        ({"id": 1, "p": "1e200"}, "does not fit decimal"),
        (b'{"id": 1, "p": 1e200}', "does not fit decimal"),
        ({"id": "1e99999999"}, "too large for an integer column"),
        ({"id": "1_000"}, "'1_000' is not an integer"),
        ({"id": "\u0663"}, "is not an integer"),
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


@pytest.mark.parametrize("fast", [True, False])
def test_json_numbers_arrive_exact_or_are_refused(fast: bool) -> None:
    """A JSON number is taken at its digits: a decimal past float64's precision, an integer past 64 bits, a
    fraction hidden in the 17th digit, a number into a string column. Each batch once alone (the batch path may
    take it) and once beside a bad record (the per-record path)."""
    schema = parse_schema("id:int64 not null, big:decimal(38,2), n:int64, s:string, f:float32, g:float64")
    cases: list[tuple[bytes, dict | str]] = [
        (b'{"id": 1, "big": 12345678901234567890.12}', {"big": "12345678901234567890.12"}),
        (b'{"id": 2, "big": 0.1000000000000000055511151231257827}', "more than 2 decimal places"),
        (b'{"id": 3, "n": -9223372036854775809}', "does not fit int64"),
        (b'{"id": 4, "n": 1.0000000000000001}', "is not an integer"),
        (b'{"id": 5, "n": 9007199254740993.0}', {"n": 9007199254740993}),
        (b'{"id": 6, "s": 12345678901234567890123}', {"s": "12345678901234567890123"}),
        (b'{"id": 7, "s": 1.50}', {"s": "1.50"}),
        (b'{"id": 8, "f": 1e39}', "out of the range of a 32-bit float"),
        (b'{"id": 9, "g": 1e400}', "not valid JSON"),
        (b'{"id": 10, "g": NaN}', "not valid JSON"),
    ]
    for payload, want in cases:
        recs = [RawRecord(payload, "t", 0)] + ([] if fast else [RawRecord(b'{"id": "x"}', "t", 1)])
        result = RecordParser(schema).parse(recs)
        if isinstance(want, str):
            assert result.good.num_rows == 0 and want in result.bad[0].error, (payload, result.bad)
        else:
            row = result.good.to_pylist()[0]
            assert {k: (str(v) if k == "big" else v) for k, v in row.items() if k in want} == want, (payload, row)


def test_a_clean_batch_with_what_the_reader_lets_through_goes_value_by_value() -> None:
    """Arrow's JSON reader copies string bytes as they are and casts year 0 and sub-microsecond fractions its
    own way: such a batch goes through the per-record path, which quarantines the record and keeps the rest."""
    schema = parse_schema("id:int64 not null, s:string, d:date, ts:timestamptz")
    for bad, error in [
        (b'{"id": 2, "s": "caf\xe9"}', "not valid JSON"),
        (b'{"id": 2, "d": "0000-01-01"}', "not an ISO-8601 date"),
        (b'{"id": 2, "ts": "2026-01-01T00:00:00.123456789Z"}', "finer than the microseconds"),
    ]:
        recs = [RawRecord(b'{"id": 1, "s": "ok", "d": "2026-01-01"}', "t", 0), RawRecord(bad, "t", 1)]
        parser = RecordParser(schema)
        assert parser._parse_clean_batch(recs) is None, bad
        result = parser.parse(recs)
        assert [r["id"] for r in result.good.to_pylist()] == [1] and error in result.bad[0].error, result.bad
    ok = RecordParser(schema).parse([RawRecord(b'{"id": 3, "ts": "2026-01-01T00:00:00.123456000Z"}', "t", 0)])
    assert ok.good.column("ts").to_pylist()[0].microsecond == 123456 and not ok.bad


def test_file_sources_quarantine_what_they_cannot_make_a_record_of(tmp_path: Any) -> None:
    """CSV: a byte-order mark is no part of the first column's name; a row with more or fewer fields than the
    header, or with bytes that are not UTF-8, is a record with its problem; a header naming a column twice is
    refused. Parquet: a nanosecond timestamp is a record with its problem unless it is whole microseconds."""
    import pyarrow.parquet as pq

    from lakehouse.errors import InvalidInputError
    from lakehouse.ingest.sources import file_records

    path = tmp_path / "a.csv"
    path.write_bytes(b'\xef\xbb\xbfid,s\n1,a\n\n2,b,extra\n3\n4,\xff\n5,"x,\ny"\n')
    records = list(file_records(str(path), "csv", "f", 0))
    assert [(r.position, r.problem) for r in records] == [
        (0, None),
        (1, "the row has 3 fields, more than the header's 2"),
        (2, "the row has 1 fields, fewer than the header's 2"),
        (3, "the row holds bytes that are not UTF-8"),
        (4, None),
    ]
    assert records[0].payload == {"id": "1", "s": "a"} and records[4].payload == {"id": "5", "s": "x,\ny"}
    assert [r.position for r in file_records(str(path), "csv", "f", 3)] == [3, 4], "resumes by row"
    twice = tmp_path / "b.csv"
    twice.write_text("id,s,s\n1,a,b\n")
    with pytest.raises(InvalidInputError, match="'s' more than once"):
        list(file_records(str(twice), "csv", "f", 0))
    long = tmp_path / "long.csv"  # a field past Python's csv limit (131,072 characters)
    long.write_text("id,s\n1," + "x" * 200_000 + "\n2,b\n")
    assert [len(r.payload["s"]) for r in file_records(str(long), "csv", "f", 0)] == [200_000, 1]
    bom = tmp_path / "bom.ndjson"  # a byte-order mark is no part of the first record, whichever path parses it
    bom.write_bytes(b'\xef\xbb\xbf{"id": 1}\n{"id": 2}\n')
    assert [json.loads(r.payload)["id"] for r in file_records(str(bom), "ndjson", "f", 0)] == [1, 2]
    nanos = tmp_path / "a.parquet"
    ticks = [1_700_000_000_123_456_789, 1_700_000_000_123_456_000, None]
    pq.write_table(pa.table({"id": [1, 2, 3], "v": pa.array(ticks, pa.timestamp("ns", tz="UTC"))}), nanos)
    rows = list(file_records(str(nanos), "parquet", "f", 0))
    assert [r.problem for r in rows] == ["column(s) v hold nanoseconds", None, None]
    assert rows[1].payload["v"] == dt.datetime(2023, 11, 14, 22, 13, 20, 123456, tzinfo=dt.UTC)


def test_new_fields_come_from_good_records_and_never_differ_only_in_case() -> None:
    schema = parse_schema("id:int64 not null, s:string")
    recs = [
        RawRecord(b'{"id": 1, "s": "a", "extra": 5}', "t", 0),
        RawRecord(b'{"id": "x", "only_in_bad": 1}', "t", 1),
        RawRecord(b'{"id": 3, "S": "b"}', "t", 2),
        RawRecord(b'{"id": 4, "Extra": 6}', "t", 3),
    ]
    result = RecordParser(schema, new_fields="add").parse(recs)
    assert [f.name for f in result.new_fields] == ["extra"], "no column from a quarantined record's field"
    assert result.good.to_pylist() == [{"id": 1, "s": "a", "extra": 5}]
    assert [b.error for b in result.bad] == [
        "field 'id': 'x' is not an integer",
        "field 'S' differs from column 's' only in case",
        "field 'Extra' differs from column 'extra' only in case",
    ]


def test_new_fields_take_their_values_types_nested_included() -> None:
    """``--new-fields add`` made a number with a fraction a string column (JSON numbers arrive as Decimals, kept
    exact), and any object or array a string column that then refused the very record it came from."""
    schema = parse_schema("id:int64 not null")
    payloads = [
        {"id": 1, "x": 1.5, "geo": {"city": "Oslo", "pos": {"lat": 59.9, "lon": 10}}, "tags": ["a"], "n": [[1], []]},
        {"id": 2, "x": 2, "geo": {"city": "Rome"}, "tags": [], "k": [{"p": 1}, {"q": "s"}]},
        {"id": 3, "geo": None, "tags": None},
        {"id": 4, "e": {}},
        {"id": 5, "g": {"A": 1, "a": 2}},
        {"id": 6, "h": {"": 1}},
    ]
    recs = [RawRecord(json.dumps(p).encode(), "t", i) for i, p in enumerate(payloads)]
    result = RecordParser(schema, new_fields="add").parse(recs)
    types = {f.name: str(f.type) for f in result.new_fields}
    assert types == {
        "x": "double",
        "geo": "struct<city: string, pos: struct<lat: double, lon: int64>>",
        "tags": "list<item: string>",
        "n": "list<item: list<item: int64>>",
        "k": "list<item: struct<p: int64, q: string>>",
    }
    rows = result.good.to_pylist()
    assert [r["id"] for r in rows] == [1, 2, 3]
    assert rows[0]["x"] == 1.5 and rows[0]["geo"] == {"city": "Oslo", "pos": {"lat": 59.9, "lon": 10}}
    assert rows[1]["geo"] == {"city": "Rome", "pos": None} and rows[1]["k"] == [
        {"p": 1, "q": None},
        {"p": None, "q": "s"},
    ]
    assert rows[2]["geo"] is None and rows[2]["tags"] is None and rows[0]["n"] == [[1], []]
    reasons = {b.record.position: b.error for b in result.bad}
    assert sorted(reasons) == [3, 4, 5]
    assert reasons[3].startswith("no column type fits field 'e' ({}:")
    assert "field 'g'" in reasons[4] and "differing only in case" in reasons[4]
    assert "field 'h'" in reasons[5]


def test_a_record_of_no_known_field_is_quarantined_not_a_row_of_nulls() -> None:
    """``{"ID": 1, "S": "a"}`` for columns ``id, s`` (a CSV header in other case, a renamed producer field) would
    land as a row of NULLs: it is quarantined, on the batch path and on the per-record path."""
    schema = parse_schema("id:int64, s:string")
    for extra in ([], [RawRecord(b'{"id": "x"}', "t", 2)]):
        recs = [RawRecord(b'{"id": 1, "s": "a"}', "t", 0), RawRecord(b'{"ID": 2, "S": "b"}', "t", 1), *extra]
        result = RecordParser(schema).parse(recs)
        assert result.good.to_pylist() == [{"id": 1, "s": "a"}]
        assert "none of its fields ('ID', 'S') is a column of the table" in result.bad[0].error
    nulls = RecordParser(schema).parse([RawRecord(b'{"id": null, "s": null}', "t", 0), RawRecord(b"{}", "t", 1)])
    assert nulls.good.num_rows == 2 and not nulls.bad, "NULLs given, or no field at all, are rows as before"


def test_a_record_nested_past_the_limit_is_quarantined_not_made_a_column() -> None:
    """A 50-level object under ``--new-fields add`` became a column delta-rs could not read back: the table never
    opened again. At 1,000 levels the parser overflowed Python's recursion (a traceback)."""
    from lakehouse.ingest.records import MAX_DEPTH

    schema = parse_schema("id:int64 not null")

    def nested(levels: int) -> dict[str, Any]:
        value: Any = 1
        for _ in range(levels):
            value = {"a": value}
        return {"id": levels, "x": value}

    def text(levels: int) -> bytes:  # json.dumps itself overflows Python's recursion at 1,000 levels
        return ('{"id": 1, "x": ' + '{"a": ' * levels + "1" + "}" * levels + "}").encode()

    for payload in (text(MAX_DEPTH - 1), nested(MAX_DEPTH - 1)):
        ok = RecordParser(schema, new_fields="add").parse([RawRecord(payload, "t", 0)])
        assert ok.good.num_rows == 1 and [f.name for f in ok.new_fields] == ["x"]
    for levels in (MAX_DEPTH, 1000):
        for payload in (text(levels), nested(levels)):
            result = RecordParser(schema, new_fields="add").parse([RawRecord(payload, "t", 0)])
            assert result.good.num_rows == 0 and result.new_fields == []
            assert f"more than {MAX_DEPTH} levels deep" in result.bad[0].error
