"""Durations and sizes as people write them on a command line or in ``lakehouse.toml``.

>>> parse_duration("7d")
datetime.timedelta(days=7)
>>> parse_duration("1h30m")
datetime.timedelta(seconds=5400)
>>> format_duration(parse_duration("90d"))
'90d'
"""

from __future__ import annotations

import datetime as dt
import functools
import math
import re

from lakehouse.errors import InvalidInputError

_UNITS = {"w": 7 * 86400, "d": 86400, "h": 3600, "m": 60, "s": 1}
_PART = re.compile(r"(\d+(?:\.\d+)?)([wdhms])", re.ASCII)


def parse_duration(text: str | dt.timedelta) -> dt.timedelta:
    """``"7d"``, ``"12h"``, ``"1h30m"``, ``"45s"``, ``"2w"`` (or a bare number of seconds) -> timedelta."""
    if isinstance(text, dt.timedelta):
        return text
    return _parse_duration(str(text))


@functools.lru_cache(maxsize=256)
def _parse_duration(text: str) -> dt.timedelta:
    """Parsed once per spelling: a policy's durations are asked for per file of a plan."""
    t = text.strip().lower().replace(" ", "")
    if not t or not t.isascii() or (_PART.sub("", t) and not re.fullmatch(r"\d+(?:\.\d+)?", t)):
        raise InvalidInputError(f"invalid duration {text!r}", hint="write e.g. 7d, 12h, 30m, 45s or 1h30m")
    seconds = float(t) if re.fullmatch(r"\d+(?:\.\d+)?", t) else sum(float(n) * _UNITS[u] for n, u in _PART.findall(t))
    if seconds > 100 * 365 * 86400:
        raise InvalidInputError(f"duration {text!r} is longer than 100 years")
    return dt.timedelta(seconds=seconds)


def parse_age(text: str | dt.timedelta, what: str) -> dt.timedelta:
    """A duration that decides what is deleted (a retention window, an orphan or data age): with a unit,
    unless zero. A bare ``7`` is seven seconds to :func:`parse_duration`, and most likely meant as days here.

    >>> parse_age("7d", "--retain"), parse_age("0", "--retain")
    (datetime.timedelta(days=7), datetime.timedelta(0))
    >>> parse_age("7", "--retain")
    Traceback (most recent call last):
    lakehouse.errors.InvalidInputError: --retain 7 has no unit (write 7d for days, 7h, 7m or 7s)
    """
    if isinstance(text, dt.timedelta):
        return text
    bare = str(text).strip()
    if re.fullmatch(r"[0-9]+(?:\.[0-9]+)?", bare) and float(bare) != 0:
        raise InvalidInputError(
            f"{what} {bare} has no unit", hint=f"write {bare}d for days, {bare}h, {bare}m or {bare}s"
        )
    return parse_duration(text)


def format_duration(d: dt.timedelta) -> str:
    """The shortest exact spelling in one unit: ``7d``, ``36h``, ``90s``."""
    seconds = d.total_seconds()
    for unit in ("d", "h", "m"):
        if seconds and seconds % _UNITS[unit] == 0:
            return f"{int(seconds // _UNITS[unit])}{unit}"
    return f"{seconds:g}s"


def parse_size(text: str | int) -> int:
    """``64MB`` -> bytes (KB, MB, GB, TB are powers of 1024).

    >>> parse_size("1.5KB")
    1536
    >>> parse_size("nanMB")
    Traceback (most recent call last):
    lakehouse.errors.InvalidInputError: invalid size 'nanMB': not a finite number of bytes (write e.g. 64MB)
    """
    if isinstance(text, int):
        return text
    t = text.strip().upper().replace(" ", "")
    units = {"TB": 1024**4, "GB": 1024**3, "MB": 1024**2, "KB": 1024, "B": 1}
    unit = next((u for u in units if t.endswith(u)), "")
    number, factor = (t[: -len(unit)], units[unit]) if unit else (t, 1)
    try:
        value = float(number)
    except ValueError:
        raise InvalidInputError(f"invalid size {text!r}", hint="write e.g. 64MB or 512KB") from None
    if not math.isfinite(value) or value * factor >= 2**63:  # nan, inf, 1e400 (float() reads them all)
        raise InvalidInputError(f"invalid size {text!r}: not a finite number of bytes", hint="write e.g. 64MB")
    if value <= 0:
        raise InvalidInputError(f"size {text!r} must be positive")
    return int(value * factor)
