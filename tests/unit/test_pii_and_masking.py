"""PII detectors and masking policies, without a table."""

from __future__ import annotations

import datetime as dt
import random
import uuid

import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lakehouse.errors import ConfigError, InvalidInputError
from lakehouse.governance.masking import check_column, mask_array, parse_mask
from lakehouse.governance.pii import find_in_value, luhn, scan_values

CARDS = ["4111 1111 1111 1111", "5500-0000-0000-0004", "340000000000009", "6011000990139424", "4012888888881881"]
IBANS = ["DE89 3704 0044 0532 0130 00", "GB29NWBK60161331926819", "FR1420041010050500013M02606", "NL91ABNA0417164300"]


def notes(n: int, seed: int = 1) -> list[str | None]:
    rng = random.Random(seed)
    out: list[str | None] = []
    for i in range(n):
        r = rng.random()
        if r < 0.1:
            out.append(f"customer wrote from user{i}@example.org about order {i}")
        elif r < 0.2:
            out.append(f"paid with {rng.choice(CARDS)} on {i}")
        elif r < 0.3:
            out.append(f"refund to {rng.choice(IBANS)} please")
        elif r < 0.35:
            out.append(None)
        else:
            out.append(f"delivered parcel {i} to the front door, order total {rng.randint(1, 999)}.{i % 100:02d}")
    return out


def kinds(findings: list) -> set[str]:
    return {f.kind for f in findings}


def test_planted_pii_in_an_innocent_column_is_found() -> None:
    found = {f.kind: f for f in scan_values("notes", notes(2000))}
    assert {"email", "card", "iban"} <= set(found)
    assert all(f.method == "content" for f in found.values())
    assert 0.05 < found["email"].confidence < 0.2 and found["card"].matches > 100
    assert "phone" not in found and "ssn" not in found


def test_random_ids_are_not_flagged() -> None:
    rng = random.Random(3)
    sixteen = [str(rng.randrange(10**15, 10**16)) for _ in range(5000)]
    assert sum(luhn(s) for s in sixteen) > 300, "a tenth of random numbers pass Luhn by chance"
    assert kinds(scan_values("ref", sixteen)) == set()
    assert kinds(scan_values("id", [str(uuid.UUID(int=rng.getrandbits(128))) for _ in range(2000)])) == set()
    assert kinds(scan_values("n", [str(rng.randrange(10**9)) for _ in range(2000)])) == set()
    amounts = [f"{rng.randrange(10**6)}.{rng.randrange(100):02d}" for _ in range(2000)]
    assert kinds(scan_values("amount_text", amounts)) == set()


def test_other_kinds_and_names() -> None:
    assert "ssn" in kinds(scan_values("x", [f"ssn 123-45-{6789 + i}" for i in range(10)]))
    assert "ipv4" in kinds(scan_values("x", [f"10.0.{i}.7" for i in range(10)]))
    assert "ipv6" in kinds(scan_values("x", [f"2001:db8::{i:x}" for i in range(1, 10)]))
    assert "phone" in kinds(scan_values("x", [f"+49 30 1234 {5600 + i}" for i in range(10)]))
    by_name = scan_values("first_name", ["Ada", "Grace"])
    assert [(f.kind, f.method) for f in by_name] == [("person_name", "name")]
    both = {f.kind: f for f in scan_values("email", [f"a{i}@x.io" for i in range(5)])}
    assert both["email"].method == "content+name"
    assert scan_values("city", ["Berlin", "Paris"]) == []


TIMESTAMPS = [
    "2024-03-15 12:11:12",
    "2024-03-15",
    "2024-03-15T12:11:12Z",
    "2024-03-15T12:11:12.123456+01:00",
    "2024-03-15 12:11:12.5 UTC",
    "2024-03-15 12:11",
    "2024/03/15 08:00:00",
    "15.03.2024",
    "15.03.2024 12:11:12",
    "03/15/2024 1:05",
    "12:11:12",
]
PHONES = [
    "+49 30 1234 5678",
    "030 1234 5678",
    "(030) 1234-5678",
    "+1 202-555-0143",
    "555-123-4567",
    "+44 20 7946 0958",
    "01 23 45 67 89",
    "+49 170 4992383",  # a group of 7 digits: the shapes above missed it
    "+14155559709",  # E.164 written together
]


def test_timestamps_are_not_phone_numbers() -> None:
    rng = random.Random(5)
    base = dt.datetime(2024, 1, 1)
    stamps = [str(base + dt.timedelta(seconds=rng.randrange(10**8))) for _ in range(2000)]  # "2024-03-15 12:11:12"
    assert kinds(scan_values("created", stamps)) == set()
    assert kinds(scan_values("created", [s.replace(" ", "T") + "Z" for s in stamps])) == set()
    assert kinds(scan_values("day", [s[:10] for s in stamps])) == set()
    for value in TIMESTAMPS:
        assert find_in_value(value) == [], value
        assert find_in_value(f"shipped {value}, thanks") == [], value


def test_phone_numbers_are_still_found_beside_timestamps() -> None:
    for phone in PHONES:
        assert find_in_value(phone) == [("phone", True)], phone
        for stamp in ("2024-03-15 12:11:12", "2024-03-15", "12:11"):
            assert find_in_value(f"call {phone} on {stamp}") == [("phone", True)], (phone, stamp)
            assert find_in_value(f"{stamp}: called {phone}") == [("phone", True)], (phone, stamp)
    found = {
        f.kind: f
        for f in scan_values("log", [f"2024-03-{i + 1:02d} 09:00 call +49 30 1234 {5600 + i}" for i in range(20)])
    }
    assert set(found) == {"phone"} and found["phone"].matches == 20


def test_masking_policies() -> None:
    secret = b"s3cret"
    emails = pa.array(["a@x.io", None, "b@y.io", "a@x.io"])
    tokens = mask_array(emails, parse_mask("hash"), secret).to_pylist()
    assert tokens[0] == tokens[3] != tokens[2] and tokens[1] is None and tokens[0].startswith("tok_")
    assert mask_array(pa.array(tokens), parse_mask("hash"), secret).to_pylist() == tokens, "idempotent"
    assert mask_array(emails, parse_mask("hash"), b"other").to_pylist()[0] != tokens[0]
    with pytest.raises(ConfigError, match="mask_secret"):
        mask_array(emails, parse_mask("hash"), None)
    assert mask_array(emails, parse_mask("redact")).to_pylist() == ["[REDACTED]", None, "[REDACTED]", "[REDACTED]"]
    assert mask_array(pa.array(["DE89 3704 0044"]), parse_mask("partial:2")).to_pylist() == ["**** **** **44"]
    ts = pa.array([dt.datetime(2026, 3, 17, 13, 45, tzinfo=dt.UTC)], pa.timestamp("us", tz="UTC"))
    assert mask_array(ts, parse_mask("generalize:month")).to_pylist() == [dt.datetime(2026, 3, 1, tzinfo=dt.UTC)]
    assert mask_array(ts, parse_mask("generalize")).to_pylist() == [dt.datetime(2026, 3, 17, tzinfo=dt.UTC)]
    assert mask_array(pa.array(["2001:db8:1:2::7", "nope"]), parse_mask("generalize")).to_pylist() == [
        "2001:db8:1::/48",
        "[REDACTED]",
    ]
    assert mask_array(pa.array([1, 2], pa.int64()), parse_mask("null")).to_pylist() == [None, None]
    assert mask_array(pa.array(["10.1.2.3"]), parse_mask("generalize:48")).to_pylist() == ["10.1.2.0/24"]
    for bad in ("scramble", "partial:x", "hash:3", "generalize:week"):
        with pytest.raises(InvalidInputError):
            parse_mask(bad)
    with pytest.raises(InvalidInputError, match="string columns"):
        check_column(parse_mask("hash"), pa.field("id", pa.int64()))
    with pytest.raises(InvalidInputError, match="NOT NULL"):
        check_column(parse_mask("null"), pa.field("id", pa.int64(), nullable=False))


@given(
    st.lists(st.one_of(st.none(), st.text(max_size=30), st.ip_addresses().map(str)), max_size=20),
    st.sampled_from(["partial", "redact", "hash", "generalize", "generalize:16", "generalize:48"]),
)
def test_masks_are_idempotent(values: list[str | None], policy: str) -> None:
    p = parse_mask(policy)
    once = mask_array(pa.array(values, pa.string()), p, b"k")
    assert mask_array(once, p, b"k").to_pylist() == once.to_pylist()
    assert [v is None for v in once.to_pylist()] == [v is None for v in values]
