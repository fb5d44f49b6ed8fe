"""The time maintenance decides by: the system clock, or a simulated one.

Jobs that decide by age (vacuum's retention window, data expiry, tiering, the health findings that call for
them) read :func:`now`. A simulation (``benchmarks/cost_bench.py`` runs a year of a table in minutes) sets the
time with :func:`simulated`; commit timestamps, job records and lineage keep the system clock.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
from collections.abc import Iterator

_lock = threading.Lock()
_simulated: dt.datetime | None = None


def now() -> dt.datetime:
    """The current time (UTC): the simulated time when one is set, else the system clock."""
    at = _simulated
    return at if at is not None else dt.datetime.now(dt.UTC)


@contextlib.contextmanager
def simulated(at: dt.datetime) -> Iterator[None]:
    """Within the block (in every thread of the process), :func:`now` is ``at`` (UTC if naive)."""
    global _simulated
    with _lock:
        before = _simulated
        _simulated = at if at.tzinfo is not None else at.replace(tzinfo=dt.UTC)
    try:
        yield
    finally:
        with _lock:
            _simulated = before
