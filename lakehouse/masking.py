"""Masking policies for PII columns, applied to Arrow arrays: at ingestion, in place (a rewrite), and on read
for callers without the PII-read permission.

A policy is written ``name[:argument]``:

==================  ===========================================================================================
``hash``            keyed HMAC-SHA256 token ``tok_<32 hex>`` (secret from ``governance.mask_secret``):
                    deterministic, so joins on the column still match across tables
``redact``          ``[REDACTED]``
``partial[:N]``     every letter and digit but the last N (default 4) becomes ``*``; separators stay
``null``            NULL (the column must be nullable)
``generalize[:G]``  timestamps and dates truncated to ``day`` (default) or ``month``; IP addresses to their
                    network (``/24`` for IPv4 and ``/48`` for IPv6 by default, or ``generalize:16``)
==================  ===========================================================================================

Every policy is idempotent on its own output (masking a masked value again changes nothing), so an in-place
run can be repeated safely.

    >>> import pyarrow as pa
    >>> mask_array(pa.array(["4111 1111 1111 1111", None]), parse_mask("partial")).to_pylist()
    ['**** **** **** 1111', None]
    >>> mask_array(pa.array(["10.1.2.3"]), parse_mask("generalize")).to_pylist()
    ['10.1.2.0/24']
"""

from __future__ import annotations

import hmac
import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import pyarrow as pa
import pyarrow.compute as pc

from lakehouse.errors import ConfigError, InvalidInputError

MaskKind = Literal["hash", "redact", "partial", "null", "generalize"]
KINDS: tuple[str, ...] = ("hash", "redact", "partial", "null", "generalize")
REDACTED = "[REDACTED]"
_TOKEN = re.compile(r"^tok_[0-9a-f]{32}$")


@dataclass(frozen=True)
class MaskPolicy:
    kind: MaskKind
    argument: str | None = None

    def __str__(self) -> str:
        return self.kind + (f":{self.argument}" if self.argument else "")


def parse_mask(text: str) -> MaskPolicy:
    """``"partial:4"`` -> MaskPolicy("partial", "4"), validated."""
    kind, _, arg = str(text).strip().lower().partition(":")
    if kind not in KINDS:
        raise InvalidInputError(f"unknown masking policy {text!r}", hint=f"use one of {', '.join(KINDS)}")
    if kind == "partial" and arg and not (arg.isdigit() and 0 <= int(arg) <= 64):
        raise InvalidInputError(f"partial:{arg}: give how many trailing characters to keep, e.g. partial:4")
    if kind == "generalize" and arg and arg not in ("day", "month") and not (arg.isdigit() and int(arg) <= 128):
        raise InvalidInputError(f"generalize:{arg}: use day, month or an IP prefix length such as 16")
    if kind in ("hash", "redact", "null") and arg:
        raise InvalidInputError(f"{kind} takes no argument")
    return MaskPolicy(kind, arg or None)  # type: ignore[arg-type]


def check_column(policy: MaskPolicy, field: pa.Field) -> None:
    """Refuse a policy that cannot apply to a column's type."""
    t = field.type
    text = pa.types.is_string(t) or pa.types.is_large_string(t)
    if policy.kind in ("hash", "redact", "partial") and not text:
        raise InvalidInputError(f"{policy} applies to string columns; {field.name} is {t}", hint="use null")
    if policy.kind == "null" and not field.nullable:
        raise InvalidInputError(f"column {field.name} is NOT NULL, so it cannot be masked with null")
    if policy.kind == "generalize" and not (text or pa.types.is_timestamp(t) or pa.types.is_date(t)):
        raise InvalidInputError(f"generalize applies to timestamps, dates and IP strings; {field.name} is {t}")
    if policy.kind == "generalize" and not text and policy.argument not in (None, "day", "month"):
        raise InvalidInputError(f"{policy} is for IP strings; use generalize:day or generalize:month for {field.name}")


def token(value: str, secret: bytes) -> str:
    if value.startswith("tok_") and _TOKEN.match(value):
        return value  # already a token
    return "tok_" + hmac.digest(secret, value.encode("utf-8"), "sha256").hex()[:32]


def _partial(value: str, keep: int) -> str:
    positions = [i for i, ch in enumerate(value) if ch.isalnum()]
    hidden = set(positions[: max(0, len(positions) - keep)])
    return "".join("*" if i in hidden else ch for i, ch in enumerate(value))


def _network(value: str, prefix: int | None) -> str:
    parts = value.split(".")
    if len(parts) == 4 and "/" not in value and all(p.isdigit() and len(p) <= 3 for p in parts):
        octets = [int(p) for p in parts]
        if all(o <= 255 for o in octets):  # the common case, without ipaddress objects
            bits = 24 if prefix is None or prefix > 32 else prefix  # a v6 prefix length means the v4 default
            number = (octets[0] << 24 | octets[1] << 16 | octets[2] << 8 | octets[3]) >> (32 - bits) << (32 - bits)
            return f"{number >> 24}.{number >> 16 & 255}.{number >> 8 & 255}.{number & 255}/{bits}"
    try:
        if "/" in value:
            net = ipaddress.ip_network(value, strict=False)
            bits = prefix if prefix is not None else (24 if net.version == 4 else 48)
            return str(net.supernet(new_prefix=min(bits, net.prefixlen))) if net.prefixlen > bits else str(net)
        ip = ipaddress.ip_address(value.strip())
    except ValueError:
        return REDACTED
    default = 24 if ip.version == 4 else 48
    bits = prefix if prefix is not None and prefix <= ip.max_prefixlen else default
    return str(ipaddress.ip_network(f"{ip}/{bits}", strict=False))


def mask_array(array: pa.Array | pa.ChunkedArray, policy: MaskPolicy, secret: bytes | None = None) -> pa.Array:
    """Mask one column's values (NULL stays NULL), keeping the column's type."""
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    t = array.type
    if policy.kind == "null":
        return pa.nulls(len(array), t)
    if policy.kind == "generalize" and (pa.types.is_timestamp(t) or pa.types.is_date(t)):
        unit = policy.argument or "day"
        if pa.types.is_date(t):
            if unit == "day":
                return array
            as_ts = pc.cast(array, pa.timestamp("s"))
            return pc.cast(pc.floor_temporal(as_ts, unit=unit), t)
        return pc.floor_temporal(array, unit=unit)
    # strings: mask each distinct value once, then spread the results back
    encoded = pc.dictionary_encode(array)
    values = encoded.dictionary.to_pylist()
    if policy.kind == "hash":
        if not secret:
            raise ConfigError(
                "the hash masking policy needs a secret",
                hint="set governance.mask_secret in lakehouse.toml or LAKEHOUSE_GOVERNANCE__MASK_SECRET",
            )
        out = [None if v is None else token(v, secret) for v in values]
    elif policy.kind == "redact":
        out = [None if v is None else REDACTED for v in values]
    elif policy.kind == "partial":
        keep = int(policy.argument) if policy.argument else 4
        out = [None if v is None else _partial(v, keep) for v in values]
    else:  # generalize an IP string
        prefix = int(policy.argument) if policy.argument and policy.argument.isdigit() else None
        out = [None if v is None else _network(v, prefix) for v in values]
    return pc.take(pa.array(out, t), encoded.indices)


def apply_masks(table: pa.Table, masks: Mapping[str, MaskPolicy], secret: bytes | None) -> pa.Table:
    """Mask the named columns of a table (columns it does not have are skipped)."""
    for name, policy in masks.items():
        i = table.schema.get_field_index(name)
        if i >= 0:
            table = table.set_column(i, table.schema.field(i), mask_array(table.column(i), policy, secret))
    return table
