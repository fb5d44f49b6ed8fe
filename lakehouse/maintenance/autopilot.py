"""The autopilot: ``maintain`` every table again and again, beside live ingestion, safely.

* **One maintainer per table.** Before touching a table the autopilot takes its lease in the catalog database
  (``lh_leases``); a second autopilot, or a manual job (which takes a lease of its own for its duration), finds
  it taken and skips the table this pass. A thread of the holding process renews the lease every third of
  ``autopilot.lease_ttl`` while it works, however long a job takes; a killed process stops renewing, so its
  tables become free again at most ``lease_ttl`` later.
* **Restart-safe.** Every job commits atomically or not at all; a job killed half-way left at most unreferenced
  files (which orphan removal deletes later) and a ``running`` entry in the job history, which any autopilot
  marks as abandoned (failed) once the dead process's lease has lapsed.
* **Backoff.** A table whose maintenance (or one of its jobs) fails waits ``interval * 2^failures`` (at
  least 1 s as the base, at most ``autopilot.max_backoff``) before the next attempt.
* **State** is in the job history (one ``maintain`` job per table and pass, with the health before and after,
  plus the jobs it ran) and in ``GET /metrics`` (leases, jobs).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from lakehouse.errors import LakehouseError, error_text, interruption
from lakehouse.units import parse_duration

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from lakehouse.workspace import Workspace


@dataclass
class TableState:
    failures: int = 0
    next_attempt: float = 0.0
    last_score: float | None = None


@dataclass
class Autopilot:
    lh: Workspace
    interval: float
    holder: str = field(
        default_factory=lambda: f"autopilot:{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
    )
    tables: list[str] | None = None
    states: dict[str, TableState] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.lh.catalog.lease_holder = self.holder
        self.ttl = parse_duration(self.lh.settings.autopilot.lease_ttl).total_seconds()
        self.max_backoff = parse_duration(self.lh.settings.autopilot.max_backoff).total_seconds()

    def run(
        self,
        *,
        passes: int | None = None,
        until: float | None = None,
        on_table: Callable[[dict[str, Any]], None] | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        """Run passes until ``passes`` are done, ``until`` (monotonic time) is reached or ``stop`` is set
        (forever without any)."""
        done = 0
        while (passes is None or done < passes) and (until is None or time.monotonic() < until):
            if stop is not None and stop.is_set():
                break
            started = time.monotonic()
            for entry in self.one_pass():
                if on_table:
                    on_table(entry)
            done += 1
            if (passes is not None and done >= passes) or (until is not None and time.monotonic() >= until):
                break
            pause = self.interval - (time.monotonic() - started)
            if until is not None:
                pause = min(pause, until - time.monotonic())
            if pause > 0:
                if stop is not None:
                    stop.wait(pause)
                else:
                    time.sleep(pause)

    def one_pass(self) -> list[dict[str, Any]]:
        try:
            self.lh.catalog.abandon_stale_jobs()  # jobs of a dead process whose lease has lapsed since
            # external catalogs' new and dropped tables; one that cannot be reached keeps its tables as last seen
            synced = self.lh.sync_catalogs()
            names = self.tables or [str(r.name) for r in self.lh.list_tables()]
        except LakehouseError as e:  # the catalog database busy or away: this pass is lost, the next one tries
            return [{"table": None, "error": e.message}]
        entries: list[dict[str, Any]] = [
            {"table": None, "catalog": r.catalog, "error": r.error} for r in synced if r.error
        ]
        for name in names:
            try:
                entry = self.maintain_one(name)
            except Exception as e:  # any one table's failure (the catalog busy, a table dropped): next pass
                why = e.message if isinstance(e, LakehouseError) else f"{type(e).__name__}: {e}"
                if not isinstance(e, LakehouseError):
                    log.exception("autopilot: %s failed", name)
                entry = {"table": name, "error": why, "failures": self._failed(name, time.monotonic())}
            if entry is not None:
                entries.append(entry)
        return entries

    def _failed(self, name: str, now: float) -> int:
        """Count a failure and back off: ``interval * 2^failures`` (at least one second as the base, so a zero
        interval still backs off), at most ``max_backoff``."""
        state = self.states.setdefault(name, TableState())
        state.failures += 1
        state.next_attempt = now + min(self.max_backoff, max(self.interval, 1.0) * 2**state.failures)
        return state.failures

    def maintain_one(self, name: str) -> dict[str, Any] | None:
        state = self.states.setdefault(name, TableState())
        now = time.monotonic()
        policy = self.lh.policy(name).autopilot
        if not policy.enabled:
            return {"table": name, "skipped": "autopilot.enabled is false for this table"}
        if not policy.in_window(dt.datetime.now(dt.UTC)):
            return {"table": name, "skipped": f"outside its maintenance window {policy.window} (UTC)"}
        if policy.interval:
            last = next(
                (
                    j
                    for j in self.lh.catalog.jobs(table=_name(name), limit=50)
                    if j.kind == "maintain" and j.finished_at
                ),
                None,
            )
            gap = parse_duration(policy.interval)
            if last is not None and last.finished_at is not None and dt.datetime.now(dt.UTC) - last.finished_at < gap:
                return {"table": name, "skipped": f"maintained less than {policy.interval} ago"}
        if policy.skip_unread_after:
            window = parse_duration(policy.skip_unread_after)
            record = self.lh.table_record(name)
            since = dt.datetime.now(dt.UTC) - window
            if record.created_at < since and not self.lh.catalog.access_summary(name, since=since)["reads"]:
                return {"table": name, "skipped": f"no query read it in {policy.skip_unread_after}"}
        if now < state.next_attempt:
            return {"table": name, "skipped": "backing off after a failure", "failures": state.failures}
        catalog = self.lh.catalog
        if not catalog.acquire_lease(name, self.holder, ttl=self.ttl, keep_alive=True):
            lease = catalog.lease(name) or {}
            return {"table": name, "skipped": f"leased by {lease.get('holder', 'another holder')}"}
        try:
            result = self._maintain_leased(name, state, now)
        except BaseException:
            # on the way out (Ctrl-C, SIGTERM): a catalog error here must not replace the interruption
            with contextlib.suppress(LakehouseError):
                catalog.release_lease(name, self.holder)
            raise
        catalog.release_lease(name, self.holder)
        return result

    def _maintain_leased(self, name: str, state: TableState, now: float) -> dict[str, Any]:
        from lakehouse.maintenance.maintain import maintain

        catalog = self.lh.catalog
        job = catalog.start_job("maintain", table=_name(name), params={"holder": self.holder}, actor=self.lh.actor)
        try:
            report = maintain(self.lh, name, dry_run=False, before_job=lambda _: self._renew(name))
        except Exception as e:  # one table's failure, whatever it is, must not stop the others
            stop = interruption(e)
            if stop is not None:  # a signal Python wrapped (raised inside a lazy import's class creation)
                with contextlib.suppress(LakehouseError):
                    catalog.finish_job(job, state="failed", error=error_text(e))
                raise stop from e
            why = str(e) if isinstance(e, LakehouseError) else f"{type(e).__name__}: {e}"
            if not isinstance(e, LakehouseError):  # a defect: its traceback goes to the log for a report
                log.exception("autopilot: maintaining %s failed", name)
            failures = self._failed(name, now)
            catalog.finish_job(job, state="failed", error=why, metrics={"failures": failures})
            return {"table": name, "error": why, "failures": failures}
        except BaseException as e:  # Ctrl-C, SIGTERM (the CLI turns it into SystemExit): close the record first
            # best effort: an interruption in the middle of a catalog call can leave this connection unusable, and
            # the record of a dead holder is closed by the next autopilot (abandon_stale_jobs) anyway
            with contextlib.suppress(LakehouseError):
                catalog.finish_job(job, state="failed", error=error_text(e))
            raise
        after = report.get("after", report["before"])
        state.last_score = after["score"]
        errors = [j for j in report["jobs"] if "error" in j]
        if errors:  # a job that failed is retried after a backoff, not on every pass
            self._failed(name, now)
        else:
            state.failures = 0
            state.next_attempt = 0.0
        catalog.finish_job(
            job,
            state="committed",
            metrics={
                "score_before": report["before"]["score"],
                "score_after": after["score"],
                "jobs": [j["job"] for j in report["jobs"]],
                "job_errors": len(errors),
            },
        )
        return {
            "table": name,
            "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "score_before": report["before"]["score"],
            "score_after": after["score"],
            "jobs": report["jobs"],
        }

    def _renew(self, name: str) -> None:
        """Before each job: the lease must still be ours (the keeper thread renews it between these checks)."""
        catalog = self.lh.catalog
        if catalog.lease_lost(name, self.holder) or not catalog.acquire_lease(
            name, self.holder, ttl=self.ttl, keep_alive=True
        ):
            raise LakehouseError(f"lost the lease of {name} (it lapsed and another holder took it)")


def _name(name: str) -> Any:
    from lakehouse.tables.base import TableName

    return TableName.parse(name)
