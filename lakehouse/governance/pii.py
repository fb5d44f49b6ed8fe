"""PII detection by content and by column name.

Every string column is sampled and each value searched for e-mail addresses, phone numbers, payment card
numbers (issuer prefix, length and Luhn checksum), IBANs (country length and mod-97 checksum), US social
security numbers, and IPv4/IPv6 addresses (phone numbers only outside dates and times, which share their
shape: ``2024-03-15 12:11:12`` is not a phone number). Person names cannot be told from content reliably, so they are
found by column name (``first_name``, ``surname``, ``customer_name`` ...), as are columns whose name says
``email``, ``phone``, ``ssn``, ``iban`` and so on.

A content finding needs at least two matching values, and for checksummed kinds the checksum must hold for
nearly all candidates: random numbers pass Luhn one time in ten and mod-97 one time in a hundred, real card
numbers and IBANs always do. So an id column of random digits is not flagged. Results hold counts and a
confidence, never the values.

    >>> sorted(k for k, _ in find_in_value("mail jane.doe@example.com, card 4111 1111 1111 1111"))
    ['card', 'email']
    >>> find_in_value("2024-03-15 12:11:12"), find_in_value("call +49 30 1234 5678 on 2024-03-15")
    ([], [('phone', True)])
"""

from __future__ import annotations

import ipaddress
import random
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from lakehouse.errors import StorageError, error_text

if TYPE_CHECKING:
    from lakehouse.tables.base import LakehouseTable
    from lakehouse.workspace import Workspace

KINDS = ("email", "phone", "card", "iban", "ssn", "ipv4", "ipv6", "person_name")

_EMAIL = re.compile(r"(?<![\w.+-])[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,24}(?![\w-])")
_CARD = re.compile(r"(?<![\d\w])(?:\d[ -]?){12,18}\d(?![\d\w])")
_IBAN = re.compile(r"(?<![A-Za-z0-9])([A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30})(?![A-Za-z0-9])")
_SSN = re.compile(r"(?<![\d-])(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}(?![\d-])")
_IPV4 = re.compile(r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?![\d.])")
_IPV6 = re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])")
_PHONE = re.compile(r"(?<![\w.+])(\+\d{1,3}[\s.-]?)?\(?\d{2,4}\)?(?:[\s.-]\d{2,4}){2,4}(?![\w.])")
# international numbers with a leading +: E.164 written together (+14155559709), or in groups of any length
# (+49 170 4992383, +44 20 7946 0958)
_INTERNATIONAL = re.compile(r"(?<![\w.+])\+\d{1,3}(?:[\s.-]?\(?\d{1,8}\)?){1,5}(?![\w.])")
_TIME = r"(?:[01]?\d|2[0-3]):[0-5]\d(?::[0-5]\d(?:[.,]\d{1,9})?)?"
_ZONE = r"(?:\s?(?:Z|UTC|GMT|[+-](?:[01]\d|2[0-3])(?::?[0-5]\d)?))?"
_MONTH, _DAY = r"(?:0?[1-9]|1[0-2])", r"(?:0?[1-9]|[12]\d|3[01])"
# dates, times and datetimes: ISO 8601 (2024-03-15, 2024-03-15 12:11:12, 2024-03-15T12:11:12.5+01:00), the
# same with / or ., day or month first with a 4-digit year (15.03.2024, 03/15/2024), and bare times (12:11)
_DATETIME = re.compile(
    r"(?<![\w.+-])(?:"
    rf"(?:\d{{4}}([-/.]){_MONTH}\1{_DAY}|{_DAY}([-/.]){_MONTH}\2\d{{4}}|{_MONTH}([-/.]){_DAY}\3\d{{4}})"
    rf"(?:[T\s]{_TIME}{_ZONE})?"
    rf"|{_TIME}{_ZONE}"
    r")(?![\w.:-])"
)

IBAN_LENGTHS = {
    "AD": 24, "AT": 20, "BE": 16, "BG": 22, "CH": 21, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "EE": 20,
    "ES": 24, "FI": 18, "FR": 27, "GB": 22, "GR": 27, "HR": 21, "HU": 28, "IE": 22, "IS": 26, "IT": 27,
    "LI": 21, "LT": 20, "LU": 20, "LV": 21, "MC": 27, "MT": 31, "NL": 18, "NO": 15, "PL": 28, "PT": 25,
    "RO": 24, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "TR": 26,
}  # fmt: skip

_NAME_HINTS: dict[str, re.Pattern[str]] = {
    "person_name": re.compile(
        r"^(name|(first|last|full|given|family|middle|sur|maiden|customer|contact|person|patient|employee|"
        r"holder|card_holder|account_holder)_?name)$"
    ),
    "email": re.compile(r"(^|_)e_?mail(_address)?($|_)"),
    "phone": re.compile(r"(^|_)(phone|mobile|msisdn|tel|telephone)(_number|_no)?($|_)"),
    "card": re.compile(r"(^|_)(card|cc|pan|credit_card)(_number|_no|_num)?$"),
    "iban": re.compile(r"(^|_)iban($|_)"),
    "ssn": re.compile(r"(^|_)(ssn|social_security(_number)?|national_id|tax_id)($|_)"),
    "ipv4": re.compile(r"(^|_)(ip|ip_address|ipv4|client_ip|remote_addr)($|_)"),
}


def luhn(digits: str) -> bool:
    """The Luhn checksum of a digit string.

    >>> luhn("4111111111111111"), luhn("4111111111111112")
    (True, False)
    """
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def card_issuer_ok(digits: str) -> bool:
    """Issuer prefix and length of Visa, Mastercard, Amex, Discover, JCB, Diners."""
    n = len(digits)
    if digits.startswith("4"):
        return n in (13, 16, 19)
    two, four = int(digits[:2]), int(digits[:4])
    if 51 <= two <= 55 or 2221 <= four <= 2720:
        return n == 16
    if two in (34, 37):
        return n == 15
    if digits.startswith("6011") or two == 65 or 644 <= int(digits[:3]) <= 649:
        return 16 <= n <= 19
    if 3528 <= four <= 3589:
        return 16 <= n <= 19
    if two in (36, 38, 39) or 300 <= int(digits[:3]) <= 305:
        return 14 <= n <= 19
    return False


def iban_ok(text: str) -> bool:
    """Country length and the ISO 13616 mod-97 checksum.

    >>> iban_ok("DE89 3704 0044 0532 0130 00"), iban_ok("DE89 3704 0044 0532 0130 01")
    (True, False)
    """
    s = text.replace(" ", "").upper()
    expected = IBAN_LENGTHS.get(s[:2])
    if expected is not None and len(s) != expected:
        return False
    if not 15 <= len(s) <= 34:
        return False
    rearranged = s[4:] + s[:4]
    number = "".join(str(int(ch, 36)) for ch in rearranged)
    return int(number) % 97 == 1


def find_in_value(value: str) -> list[tuple[str, bool]]:
    """(kind, valid) for every PII candidate in one value; ``valid`` is False for a card or IBAN candidate
    whose checksum fails (it counts against the column's confidence)."""
    found: list[tuple[str, bool]] = []
    if "@" in value:
        found += [("email", True) for _ in _EMAIL.finditer(value)]
    for m in _CARD.finditer(value):
        digits = re.sub(r"\D", "", m.group(0))
        if 13 <= len(digits) <= 19 and card_issuer_ok(digits):
            found.append(("card", luhn(digits)))
    for m in _IBAN.finditer(value):
        found.append(("iban", iban_ok(m.group(1))))
    found += [("ssn", True) for _ in _SSN.finditer(value)]
    for m in _IPV4.finditer(value):
        try:
            ipaddress.IPv4Address(m.group(0))
            found.append(("ipv4", True))
        except ValueError:
            pass
    if value.count(":") >= 2:
        for m in _IPV6.finditer(value):
            try:
                ipaddress.IPv6Address(m.group(0))
                found.append(("ipv6", True))
            except ValueError:
                pass
    # dates and times have the shape of a phone number with separators ("2024-03-15 12" has 10 digits): blank
    # them out first, so a timestamp is never a phone number and a phone number next to one still is
    undated = _DATETIME.sub(" | ", value) if any(c in value for c in "-/.:") else value
    phones = False
    for m in _PHONE.finditer(undated):
        text = m.group(0)
        digits = re.sub(r"\D", "", text)
        # a separator or a leading + is required, so bare numbers (ids, amounts) do not count
        if 8 <= len(digits) <= 15 and (text.startswith("+") or re.search(r"[\s.()-]", text)):
            if not _SSN.fullmatch(text) and not _IPV4.fullmatch(text) and not re.fullmatch(r"[\d-]{10}", text):
                found.append(("phone", True))
                phones = True
    if not phones and "+" in undated:
        for m in _INTERNATIONAL.finditer(undated):
            if 8 <= len(re.sub(r"\D", "", m.group(0))) <= 15:
                found.append(("phone", True))
                break
    return found


@dataclass
class ColumnFinding:
    column: str
    kind: str
    method: str
    """content, name, or content+name"""
    confidence: float
    matches: int
    sampled: int

    def as_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["confidence"] = round(self.confidence, 3)
        return d


def scan_values(column: str, values: Sequence[str | None]) -> list[ColumnFinding]:
    """Findings for one column from sampled values and its name."""
    present = [v for v in values if v is not None and v != ""]
    n = len(present)
    hits: dict[str, int] = {}
    valid: dict[str, int] = {}
    candidates: dict[str, int] = {}
    for v in present:
        seen: set[str] = set()
        ok: set[str] = set()
        for kind, good in find_in_value(v):
            candidates[kind] = candidates.get(kind, 0) + 1
            if good:
                valid[kind] = valid.get(kind, 0) + 1
                ok.add(kind)
            seen.add(kind)
        for kind in ok:
            hits[kind] = hits.get(kind, 0) + 1
    findings: dict[str, ColumnFinding] = {}
    for kind, count in hits.items():
        if count < 2:
            continue
        if kind in ("card", "iban") and valid[kind] / candidates[kind] < 0.8:
            continue  # checksums hold by chance for random numbers, always for real ones
        if kind == "phone" and count / n < 0.05:
            continue  # phone shapes are loose: need a steady share of the column
        findings[kind] = ColumnFinding(column, kind, "content", count / n if n else 0.0, count, n)
    lowered = column.lower()
    for kind, pattern in _NAME_HINTS.items():
        if pattern.search(lowered):
            if kind in findings:
                f = findings[kind]
                f.method, f.confidence = "content+name", max(f.confidence, 0.9)
            else:
                findings[kind] = ColumnFinding(column, kind, "name", 0.6, 0, n)
    return sorted(findings.values(), key=lambda f: f.kind)


def sample_strings(
    lh: Workspace, table: LakehouseTable, columns: Sequence[str], limit: int, seed: int = 7
) -> dict[str, list[str | None]]:
    """Up to ``limit`` values per column, spread over the live files (a seeded shuffle, a slice of each)."""
    import pyarrow.parquet as pq

    from lakehouse.storage import split_location

    files = table.files() if table.snapshots() else []
    random.Random(seed).shuffle(files)
    per_file = max(limit // max(len(files), 1), min(limit, 1000))
    out: dict[str, list[str | None]] = {c: [] for c in columns}
    in_files = set(table.file_columns())
    taken = 0
    for f in files:
        if taken >= limit:
            break
        want = min(per_file, limit - taken)
        filesystem, inner = split_location(f.path, table.ctx)
        try:
            with filesystem.open_input_file(inner) as fh:
                pf = pq.ParquetFile(fh)
                present = [c for c in columns if c in in_files and c in pf.schema_arrow.names]
                batch = next(pf.iter_batches(batch_size=want, columns=present), None) if present else None
        except (OSError, pa.ArrowException) as e:  # gone, unreadable, archived by a lifecycle rule (GLACIER)
            raise StorageError(
                f"cannot sample {f.path} of {table.name}: {' '.join(str(e).split())}",
                hint="an object in an archive storage class must be restored before it can be read",
            ) from e
        rows = batch.num_rows if batch is not None else min(want, f.row_count)
        for c in columns:
            if batch is not None and c in batch.schema.names:
                out[c].extend(batch.column(c).to_pylist())
            elif c in f.partition:  # a partition column Delta keeps out of its files
                out[c].extend([f.partition[c]] * rows)
        taken += rows
    return out


def string_columns(schema: pa.Schema) -> list[str]:
    """Columns that hold text: strings, and structs, lists and maps with strings anywhere inside (a finding
    there tags the whole column, which readers then get masked as NULL)."""
    from lakehouse.schema import contains_type

    def text(t: pa.DataType) -> bool:
        return pa.types.is_string(t) or pa.types.is_large_string(t)

    return [f.name for f in schema if contains_type(f.type, text)]


def _texts(value: Any) -> str | None:
    """A sampled value as text to scan: a string itself; the strings inside a nested value, one per line."""
    if value is None or isinstance(value, str):
        return value
    found: list[str] = []

    def walk(v: Any) -> None:
        if isinstance(v, str):
            found.append(v)
        elif isinstance(v, dict):
            for x in v.values():
                walk(x)
        elif isinstance(v, list | tuple):
            for x in v:
                walk(x)

    walk(value)
    return "\n".join(found) if found else None


def scan_table(lh: Workspace, name: str, *, sample_rows: int | None = None, dry_run: bool = False) -> dict[str, Any]:
    """Scan one table, store the findings as column tags in the catalog, record the job; returns the report.

    ``dry_run``: the findings only, no tags stored and no job recorded (so nothing gets masked for readers
    because of it)."""
    table = lh.table(name)
    limit = sample_rows or lh.settings.governance.pii_sample_rows
    texts = string_columns(table.schema)

    def scan() -> tuple[dict[str, list[Any]], list[ColumnFinding]]:
        samples = sample_strings(lh, table, texts, limit)
        findings: list[ColumnFinding] = []
        for c in table.schema.names:
            values = samples.get(c, []) if c in texts else []
            findings.extend(scan_values(c, [_texts(v) for v in values]))
        return samples, findings

    def report(samples: dict[str, list[Any]], findings: list[ColumnFinding], job: int | None) -> dict[str, Any]:
        return {
            "table": str(table.name),
            "dry_run": dry_run,
            "job_id": job,
            "sampled_rows": max((len(v) for v in samples.values()), default=0),
            "columns_scanned": texts,
            "findings": [f.as_dict() for f in findings],
        }

    if dry_run:
        return report(*scan(), None)
    job = lh.catalog.start_job("pii.scan", table=table.name, params={"sample_rows": limit}, actor=lh.actor)
    try:
        samples, findings = scan()
        lh.catalog.set_pii_tags(table.name, [f.as_dict() for f in findings], job_id=job)
    except BaseException as e:
        lh.catalog.finish_job(job, state="failed", error=error_text(e))
        raise
    done = report(samples, findings, job)
    lh.catalog.finish_job(
        job,
        state="committed",
        metrics={"columns_scanned": len(texts), "findings": len(findings), "sampled_rows": done["sampled_rows"]},
    )
    return done


def pii_columns(tags: Iterable[dict[str, Any]]) -> set[str]:
    return {t["column"] for t in tags}
