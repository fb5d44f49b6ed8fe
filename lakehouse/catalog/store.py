"""The catalog store: the one place that lists tables, and the home of job history.

A SQLAlchemy database, SQLite inside the warehouse by default, PostgreSQL by URL (``postgresql+psycopg://...``).
pyiceberg's SQL catalog shares the same database (its ``iceberg_*`` tables); ours are prefixed ``lh_``
(:mod:`lakehouse.catalog.schema`) and upgraded in place by :mod:`lakehouse.catalog.migrations`. One module per
record kind holds its part of the store.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any

from lakehouse.catalog.access import AccessMixin
from lakehouse.catalog.audit import AuditMixin
from lakehouse.catalog.catalogs import CatalogsMixin
from lakehouse.catalog.jobs import JobsMixin
from lakehouse.catalog.leases import LeasesMixin
from lakehouse.catalog.lineage import LineageMixin
from lakehouse.catalog.migrations import upgrade
from lakehouse.catalog.policies import PoliciesMixin
from lakehouse.catalog.schema import make_engine
from lakehouse.catalog.stats import StatsMixin
from lakehouse.catalog.tables import TablesMixin
from lakehouse.errors import StorageError


class CatalogStore(
    CatalogsMixin,
    TablesMixin,
    JobsMixin,
    LeasesMixin,
    AccessMixin,
    LineageMixin,
    AuditMixin,
    PoliciesMixin,
    StatsMixin,
):
    """Tables, connected catalogs, job history, leases, keys, access log, lineage, audit log and policies in the
    catalog database."""

    def __init__(self, url: str, *, lease_ttl: float = 1800.0) -> None:
        self.url = url
        self.lease_holder: str | None = None
        """Set by a process that takes table leases itself (the autopilot); its jobs then run under them."""
        self.lease_ttl = lease_ttl
        self._job_leases: dict[int, tuple[str, str, int]] = {}  # job -> (table, holder, thread)
        self._running: set[int] = set()  # jobs this process started and has not finished
        self._leases_lock = threading.Lock()
        # leases this process keeps alive while it works ((table, holder) -> (ttl, registration)), and those it
        # lost; a registration number tells a lease released and taken again apart from the one a renewal saw
        self._kept: dict[tuple[str, str], tuple[float, int]] = {}
        self._registrations = 0
        self._lost: set[tuple[str, str]] = set()
        self._keeper: threading.Thread | None = None
        self._closing = threading.Event()
        self.on_job: Callable[[str, int, str, str | None, Mapping[str, Any]], None] | None = None
        """Called as (event type START|COMPLETE|FAIL|OTHER, job id, kind, table, metrics) when a job starts or ends
        (the lakehouse emits lineage from it)."""
        self.engine = make_engine(url)
        try:
            upgrade(self.engine)
        except StorageError as e:
            self.engine.dispose()
            shown = self.engine.url.render_as_string(hide_password=True)  # never the password in a message
            raise StorageError(f"cannot open the catalog database {shown}: {e.message}", hint=e.hint) from e

    def dispose(self) -> None:
        self._closing.set()
        keeper = self._keeper
        if keeper is not None:
            keeper.join(timeout=5)
        self.engine.dispose()
