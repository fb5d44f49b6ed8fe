"""What every part of the catalog store shares: the database engine, transactions and the state of leases and
running jobs this process holds (the parts are mixins of :class:`lakehouse.catalog.CatalogStore`)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from lakehouse.errors import StorageError


class StoreBase:
    url: str
    engine: Engine
    lease_holder: str | None
    lease_ttl: float
    _job_leases: dict[int, tuple[str, str, int]]
    _running: set[int]
    _leases_lock: threading.Lock
    _kept: dict[tuple[str, str], tuple[float, int]]
    _registrations: int
    _lost: set[tuple[str, str]]
    _keeper: threading.Thread | None
    _closing: threading.Event
    on_job: Callable[[str, int, str, str | None, Mapping[str, Any]], None] | None

    @contextmanager
    def _tx(self) -> Iterator[Connection]:
        try:
            with self.engine.begin() as conn:
                yield conn
        except sa.exc.OperationalError as e:
            raise StorageError(f"catalog database error: {e.orig}") from e
