"""Table leases: at most one holder runs the jobs that change a table's files (LEASED_KINDS); kept alive while the
holder works."""

from __future__ import annotations

import datetime as dt
import threading
from typing import Any

import sqlalchemy as sa

from lakehouse.catalog.base import StoreBase
from lakehouse.catalog.records import _aware, _now
from lakehouse.catalog.schema import leases_t
from lakehouse.errors import (
    StorageError,
)
from lakehouse.tables.base import TableName


class LeasesMixin(StoreBase):
    def _held_by_this_thread(self, table: str) -> bool:
        with self._leases_lock:
            return any(t == table and th == threading.get_ident() for t, _, th in self._job_leases.values())

    def acquire_lease(self, table: TableName | str, holder: str, *, ttl: float, keep_alive: bool = False) -> bool:
        """Take (or renew) a table's lease for ``ttl`` seconds; False when another holder has a live one.

        ``keep_alive``: a background thread of this process renews the lease every ``ttl / 3`` until it is
        released, so a job longer than the TTL keeps it, while a process that dies stops renewing and its
        lease lapses after at most ``ttl``."""
        taken = self._take_lease(table, holder, ttl=ttl)
        if taken and keep_alive:
            self._keep_alive(str(table), holder, ttl)
        return taken

    def lease_lost(self, table: TableName | str, holder: str) -> bool:
        """True when a kept-alive lease could not be renewed (it lapsed and another holder took it)."""
        with self._leases_lock:
            return (str(table), holder) in self._lost

    def _keep_alive(self, table: str, holder: str, ttl: float) -> None:
        with self._leases_lock:
            self._registrations += 1
            self._kept[(table, holder)] = (ttl, self._registrations)
            self._lost.discard((table, holder))
            if self._keeper is None or not self._keeper.is_alive():
                self._keeper = threading.Thread(target=self._renew_kept, name="lakehouse-lease-keeper", daemon=True)
                self._keeper.start()

    def _renew_kept(self) -> None:
        while True:
            with self._leases_lock:
                if not self._kept:
                    self._keeper = None
                    return
                pause = max(0.05, min(60.0, min(ttl for ttl, _ in self._kept.values()) / 3))
            if self._closing.wait(pause):
                return
            with self._leases_lock:
                kept = dict(self._kept)
            for (table, holder), (ttl, registration) in kept.items():
                try:
                    renewed = self._renew_lease(table, holder, ttl=ttl)
                except (StorageError, sa.exc.SQLAlchemyError):  # the database busy or away a moment: next beat
                    continue
                if not renewed:
                    with self._leases_lock:
                        # lost only if it is still the registration this renewal was for (not released, or
                        # released and taken again, meanwhile)
                        if self._kept.get((table, holder), (0.0, -1))[1] == registration:
                            del self._kept[(table, holder)]
                            self._lost.add((table, holder))

    def _renew_lease(self, table: str, holder: str, *, ttl: float) -> bool:
        """Extend a lease this holder still has (never re-creates a released one)."""
        now = _now()
        with self._tx() as conn:
            return bool(
                conn.execute(
                    leases_t.update()
                    .where((leases_t.c.table_name == table) & (leases_t.c.holder == holder))
                    .values(expires_at=now + dt.timedelta(seconds=ttl))
                ).rowcount
            )

    def _take_lease(self, table: TableName | str, holder: str, *, ttl: float) -> bool:
        now = _now()
        until = now + dt.timedelta(seconds=ttl)
        with self._tx() as conn:
            taken = conn.execute(
                leases_t.update()
                .where(
                    (leases_t.c.table_name == str(table))
                    & ((leases_t.c.holder == holder) | (leases_t.c.expires_at < now))
                )
                .values(holder=holder, acquired_at=now, expires_at=until)
            ).rowcount
            if taken:
                return True
            exists = conn.execute(sa.select(leases_t.c.holder).where(leases_t.c.table_name == str(table))).first()
            if exists is not None:
                return False
        try:
            with self._tx() as conn:
                conn.execute(
                    leases_t.insert().values(table_name=str(table), holder=holder, acquired_at=now, expires_at=until)
                )
            return True
        except (StorageError, sa.exc.IntegrityError):  # another holder inserted first (the table name is unique)
            return False

    def release_lease(self, table: TableName | str, holder: str) -> None:
        with self._leases_lock:
            self._kept.pop((str(table), holder), None)
            self._lost.discard((str(table), holder))
        with self._tx() as conn:
            conn.execute(leases_t.delete().where((leases_t.c.table_name == str(table)) & (leases_t.c.holder == holder)))

    def lease(self, table: TableName | str) -> dict[str, Any] | None:
        with self._tx() as conn:
            row = conn.execute(sa.select(leases_t).where(leases_t.c.table_name == str(table))).first()
        if row is None or (_aware(row.expires_at) or _now()) < _now():
            return None
        return {"holder": row.holder, "acquired_at": _aware(row.acquired_at), "expires_at": _aware(row.expires_at)}

    def leases(self) -> list[dict[str, Any]]:
        with self._tx() as conn:
            rows = conn.execute(sa.select(leases_t)).all()
        return [
            {"table": r.table_name, "holder": r.holder, "expires_at": _aware(r.expires_at)}
            for r in rows
            if (_aware(r.expires_at) or _now()) >= _now()
        ]
