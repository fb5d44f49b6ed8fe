"""Job history (every maintenance and ingestion run, its parameters and metrics), clustering layouts per partition,
and the figures the health score and metrics read from them."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from lakehouse.catalog.audit import AuditMixin
from lakehouse.catalog.leases import LeasesMixin
from lakehouse.catalog.records import JobRecord, _aware, _counts, _now
from lakehouse.catalog.schema import LEASED_KINDS, audit_t, jobs_t, layouts_t, lineage_t
from lakehouse.errors import (
    CommitConflictError,
    LakehouseError,
)
from lakehouse.tables.base import TableName

MAX_PLAN_BYTES = 256 * 1024
"""A dry run's plan kept whole in the job history up to this size."""

COMMITTED = "lakehouse.commit_landed"
"""The key :meth:`JobsMixin.note_commit` marks a running job's metrics with (never shown)."""


class JobsMixin(LeasesMixin, AuditMixin):
    def start_job(self, kind: str, *, table: TableName | None, params: Mapping[str, Any], actor: str = "cli") -> int:
        """Record a running job. A job that changes a table's files needs the table's lease: the process's own
        (``lease_holder``, the autopilot) or one taken for this job alone and released when it finishes.

        Raises:
            CommitConflictError: another holder has the lease (an autopilot or another job is at work).
        """
        own: str | None = None
        if table is not None and kind in LEASED_KINDS:
            if self.lease_holder is not None:
                lease = self.lease(table)
                if lease is None or lease["holder"] != self.lease_holder:
                    raise CommitConflictError(f"{self.lease_holder} does not hold the lease of {table}")
            elif not self._held_by_this_thread(str(table)):  # a job inside a job (a purge's vacuum) shares its lease
                own = f"job:{actor}:{uuid.uuid4().hex[:8]}"
                if not self.acquire_lease(table, own, ttl=self.lease_ttl, keep_alive=True):
                    lease = self.lease(table) or {}
                    raise CommitConflictError(
                        f"table {table} is being maintained by {lease.get('holder')} (lease until "
                        f"{lease.get('expires_at')})",
                        hint="wait for it to finish, or stop the autopilot for this table",
                    )
        job_id = self._insert_job(kind, table=table, params=params, actor=actor, state="running", started_at=_now())
        with self._leases_lock:
            self._running.add(job_id)
            if own is not None and table is not None:
                self._job_leases[job_id] = (str(table), own, threading.get_ident())
        if self.on_job is not None:
            self.on_job("START", job_id, kind, str(table) if table else None, {})
        return job_id

    def finish_job(
        self,
        job_id: int,
        *,
        state: str,
        metrics: Mapping[str, Any] | None = None,
        error: str | None = None,
        only_running: bool = False,
    ) -> None:
        """Close a job and write its audit entry (who, what, which table, the counts) in one transaction.

        ``only_running``: leave a job alone that its own process finished meanwhile (abandoning a job races its
        process finishing it)."""
        with self._tx() as conn:
            if only_running:
                closing = conn.execute(
                    jobs_t.update()
                    .where((jobs_t.c.id == job_id) & (jobs_t.c.state == "running"))
                    .values(state=state, finished_at=_now())
                ).rowcount
                if not closing:
                    return
            job = conn.execute(sa.select(jobs_t).where(jobs_t.c.id == job_id)).first()
            if job is not None:
                details = {"counts": _counts(metrics or {}), "params": json.loads(job.params_json)}
                if error:
                    details["error"] = " ".join(error.split())
                conn.execute(
                    audit_t.insert().values(
                        at=_now(),
                        actor=job.actor,
                        action=job.kind,
                        table_name=job.table_name,
                        job_id=job_id,
                        outcome=state,
                        details_json=json.dumps(details, default=str, sort_keys=True),
                    )
                )
            conn.execute(
                jobs_t.update()
                .where(jobs_t.c.id == job_id)
                .values(
                    state=state,
                    finished_at=_now(),
                    metrics_json=json.dumps(dict(metrics or {}), default=str, sort_keys=True),
                    error=" ".join(error.split()) if error else None,
                )
            )
        with self._leases_lock:
            held = self._job_leases.pop(job_id, None)
            self._running.discard(job_id)
        if held is not None:
            self.release_lease(held[0], held[1])
        if self.on_job is not None and job is not None:
            # a job that found nothing to do completed (OpenLineage consumers wait for a run's end otherwise)
            event = {"committed": "COMPLETE", "skipped": "COMPLETE", "failed": "FAIL"}.get(state, "OTHER")
            self.on_job(event, job_id, job.kind, job.table_name, dict(metrics or {}))

    def record_plan(
        self, kind: str, *, table: TableName | None, params: Mapping[str, Any], plan: Mapping[str, Any], actor: str
    ) -> int:
        """A dry run, kept in the history as a ``planned`` job with its plan (no lease: it changes nothing; no
        lineage run). A plan too large to keep whole keeps its top-level numbers."""
        text = json.dumps(dict(plan), default=str, sort_keys=True)
        if len(text) > MAX_PLAN_BYTES:
            kept = {k: v for k, v in plan.items() if isinstance(v, int | float | str | bool) or v is None}
            text = json.dumps({**kept, "truncated": True}, default=str, sort_keys=True)
        now = _now()
        return self._insert_job(
            kind,
            table=table,
            params=params,
            actor=actor,
            state="planned",
            started_at=now,
            finished_at=now,
            metrics_json=text,
        )

    def _insert_job(
        self, kind: str, *, table: TableName | None, params: Mapping[str, Any], actor: str, **values: Any
    ) -> int:
        with self._tx() as conn:
            result = conn.execute(
                jobs_t.insert().values(
                    table_name=str(table) if table else None,
                    kind=kind,
                    actor=actor,
                    params_json=json.dumps(dict(params), default=str, sort_keys=True),
                    **values,
                )
            )
            pk = result.inserted_primary_key
            assert pk is not None
            return int(pk[0])

    def record_job(
        self,
        kind: str,
        *,
        table: TableName | None,
        params: Mapping[str, Any],
        state: str,
        metrics: Mapping[str, Any],
        actor: str = "cli",
    ) -> int:
        """A job that finished as it started (for example a run that found nothing to do: ``skipped``)."""
        job = self.start_job(kind, table=table, params=params, actor=actor)
        self.finish_job(job, state=state, metrics=metrics)
        return job

    def jobs(self, *, table: TableName | None = None, limit: int = 100) -> list[JobRecord]:
        """The newest jobs; a leased job whose process died (its lease lapsed) shows as failed, abandoned, not as
        running for ever (a job's lease is taken before its row is written, so a live job is never taken for
        one)."""
        self.abandon_stale_jobs()
        query = sa.select(jobs_t).order_by(jobs_t.c.id.desc()).limit(limit)
        if table is not None:
            query = query.where(jobs_t.c.table_name == str(table))
        with self._tx() as conn:
            rows = conn.execute(query).all()
        return self._job_records(rows)

    def job(self, job_id: int) -> JobRecord | None:
        """One job by its id (as :meth:`jobs` shows it: a dead process's job abandoned), or None."""
        if not 0 < job_id < 2**63:  # no job has it, and a database's integer cannot hold it
            return None
        self.abandon_stale_jobs()
        with self._tx() as conn:
            rows = conn.execute(sa.select(jobs_t).where(jobs_t.c.id == job_id)).all()
        records = self._job_records(rows)
        return records[0] if records else None

    def latest_jobs(self, kind: str) -> dict[str, JobRecord]:
        """The latest finished job of one kind per table (e.g. each table's last autopilot pass)."""
        newest = (
            sa.select(sa.func.max(jobs_t.c.id))
            .where((jobs_t.c.kind == kind) & jobs_t.c.finished_at.is_not(None) & jobs_t.c.table_name.is_not(None))
            .group_by(jobs_t.c.table_name)
        )
        with self._tx() as conn:
            rows = conn.execute(sa.select(jobs_t).where(jobs_t.c.id.in_(newest))).all()
        return {str(r.table_name): r for r in self._job_records(rows)}

    @staticmethod
    def _job_records(rows: Sequence[Any]) -> list[JobRecord]:
        return [
            JobRecord(
                id=r.id,
                table_name=r.table_name,
                kind=r.kind,
                state=r.state,
                actor=r.actor,
                started_at=_aware(r.started_at) or _now(),
                finished_at=_aware(r.finished_at),
                params=json.loads(r.params_json),
                metrics={k: v for k, v in json.loads(r.metrics_json).items() if k != COMMITTED},
                error=r.error,
            )
            for r in rows
        ]

    def set_layout(
        self, table: TableName, partition_key: str, layout: str, files: list[str], *, runs: Sequence[str] = ()
    ) -> None:
        """Record a partition's clustered files (``files``: every one of them), of which ``runs`` are incremental
        runs clustered beside the partition's whole clustering (:data:`INCREMENTAL_SHARE`)."""
        with self._tx() as conn:
            conn.execute(
                layouts_t.delete().where(
                    (layouts_t.c.table_name == str(table)) & (layouts_t.c.partition_key == partition_key)
                )
            )
            conn.execute(
                layouts_t.insert().values(
                    table_name=str(table),
                    partition_key=partition_key,
                    layout=layout,
                    files_json=json.dumps({"files": sorted(files), "runs": sorted(runs)} if runs else sorted(files)),
                    updated_at=_now(),
                )
            )

    def follow_rewrites(
        self, table: TableName, rewritten: Mapping[str, str | None], *, changed: Collection[str] = ()
    ) -> None:
        """Carry ``table``'s clustered layouts over a commit that replaced files one for one, each by its own rows
        in their order and row groups less some removed (a row delete, a mask): ``rewritten`` maps each file the
        commit removed to its replacement (None: removed whole, or not to be counted as clustered any more). A
        layout's file stays clustered under its new name, so the next Z-order of the partition does not take it
        for new data and rewrite it again. A layout clustered by a column in ``changed`` (values the commit
        rewrote, such as a hashing mask) is forgotten: its files are no longer ordered by what they hold.

        Best effort, after a commit that landed: a layout row that cannot be read or written is left as it is
        (the next Z-order then clusters the partition again), never an error."""
        if not rewritten:
            return
        try:
            with self._tx() as conn:
                rows = conn.execute(sa.select(layouts_t).where(layouts_t.c.table_name == str(table))).all()
                for r in rows:
                    try:
                        files, runs = _layout_files(r.files_json)
                        if not any(f in rewritten for f in files):
                            continue
                        kept, kept_runs = _carried(files, rewritten), _carried(runs, rewritten)
                    except (ValueError, TypeError):  # a row no release wrote
                        continue
                    row = (layouts_t.c.table_name == str(table)) & (layouts_t.c.partition_key == r.partition_key)
                    by = str(r.layout).partition(":")[2].split(",")
                    if not kept or set(by) & set(changed):
                        conn.execute(layouts_t.delete().where(row))
                        continue
                    conn.execute(
                        layouts_t.update()
                        .where(row)
                        .values(
                            files_json=json.dumps({"files": kept, "runs": kept_runs} if kept_runs else kept),
                            updated_at=_now(),
                        )
                    )
        except (LakehouseError, sa.exc.SQLAlchemyError):
            return  # the layout stays as it was: the partition is clustered again, nothing is lost

    def layouts(self, table: TableName) -> dict[str, tuple[str, frozenset[str]]]:
        with self._tx() as conn:
            rows = conn.execute(sa.select(layouts_t).where(layouts_t.c.table_name == str(table))).all()
        return {r.partition_key: (r.layout, frozenset(_layout_files(r.files_json)[0])) for r in rows}

    def layout_runs(self, table: TableName) -> dict[str, frozenset[str]]:
        """Per partition key, the files of its layout that incremental runs wrote (see :meth:`set_layout`)."""
        with self._tx() as conn:
            rows = conn.execute(sa.select(layouts_t).where(layouts_t.c.table_name == str(table))).all()
        return {r.partition_key: frozenset(_layout_files(r.files_json)[1]) for r in rows}

    def clustered_paths(self, table: TableName) -> frozenset[str]:
        """Every file a Z-order of ``table`` wrote (as :meth:`layouts` records them, all partitions)."""
        return frozenset(p for _, paths in self.layouts(table).values() for p in paths)

    def note_commit(self, job_id: int, metrics: Mapping[str, Any]) -> None:
        """Record, on a running job, that its table commit landed (``metrics`` must hold ``version``) before the
        steps after it (a purge, a verification): if its process dies in them, :meth:`abandon_stale_jobs` closes
        the job as committed, which it is, not as failed."""
        with self._tx() as conn:
            conn.execute(
                jobs_t.update()
                .where((jobs_t.c.id == job_id) & (jobs_t.c.state == "running"))
                .values(metrics_json=json.dumps({**dict(metrics), COMMITTED: True}, default=str, sort_keys=True))
            )

    def abandon_stale_jobs(self) -> int:
        """Close jobs still 'running' whose table no holder leases any more (their process died): as failed,
        or, when the job noted that its commit landed (:meth:`note_commit`), as committed with the steps after it
        not run. A job killed before its commit is safe to redo (nothing it did is committed without it)."""
        with self._tx() as conn:
            rows = conn.execute(
                sa.select(jobs_t.c.id, jobs_t.c.table_name, jobs_t.c.kind, jobs_t.c.metrics_json).where(
                    jobs_t.c.state == "running"
                )
            ).all()
        stale = [r for r in rows if r.kind in LEASED_KINDS and r.table_name and self.lease(r.table_name) is None]
        for r in stale:
            noted = json.loads(r.metrics_json) if r.metrics_json else {}
            if isinstance(noted, dict) and noted.pop(COMMITTED, False):
                self.finish_job(
                    r.id,
                    state="committed",
                    metrics=noted,
                    error=f"abandoned after its commit landed (version {noted.get('version')}): its process stopped "
                    "before the steps after it; run the job again to finish them",
                    only_running=True,
                )
            else:
                self.finish_job(
                    r.id, state="failed", error="abandoned: its process stopped before it finished", only_running=True
                )
        return len(stale)

    def job_stats(self) -> dict[tuple[str, str], tuple[int, float, int]]:
        """(kind, state) -> (jobs, seconds of the finished ones, finished ones)."""
        self.abandon_stale_jobs()
        with self._tx() as conn:
            rows = conn.execute(
                sa.select(jobs_t.c.kind, jobs_t.c.state, jobs_t.c.started_at, jobs_t.c.finished_at)
            ).all()
        out: dict[tuple[str, str], tuple[int, float, int]] = {}
        for kind, state, started, finished in rows:
            n, seconds, done = out.get((kind, state), (0, 0.0, 0))
            if finished is not None and started is not None:
                seconds += ((_aware(finished) or _now()) - (_aware(started) or _now())).total_seconds()
                done += 1
            out[(kind, state)] = (n + 1, seconds, done)
        return out

    def files_rewritten(self) -> int:
        keys = {"optimize": "files_before", "tier": "files_rewritten", "dedup": "files_removed", "pii.mask": "files"}
        total = 0
        with self._tx() as conn:
            rows = conn.execute(
                sa.select(jobs_t.c.kind, jobs_t.c.metrics_json).where(
                    jobs_t.c.kind.in_(list(keys)) & (jobs_t.c.state == "committed")
                )
            ).all()
        for kind, metrics_json in rows:
            value = json.loads(metrics_json).get(keys[kind])
            total += int(value) if isinstance(value, int) else 0
        return total

    def ingested_rows(self, *, namespace: str) -> int:
        """Rows committed by ingestion: the output row counts of lakehouse's own ingest events (job namespace
        ``namespace``); another tool's events, and values that are not counts, count nothing."""
        from lakehouse.catalog.lineage import output_rows

        with self._tx() as conn:
            rows = conn.execute(
                sa.select(lineage_t.c.event_json).where(
                    (lineage_t.c.job_namespace == namespace) & (lineage_t.c.job_name == "lakehouse.ingest")
                )
            ).all()
        total = 0
        for (event_json,) in rows:
            try:
                event = json.loads(event_json)
            except ValueError:  # a row that is not JSON counts nothing
                continue
            total += output_rows(event) if isinstance(event, dict) else 0
        return total

    def _noted_commit(self, job_id: int) -> dict[str, Any] | None:
        """What :meth:`note_commit` recorded on a running job (without its marker), or None."""
        with self._tx() as conn:
            text = conn.execute(
                sa.select(jobs_t.c.metrics_json).where((jobs_t.c.id == job_id) & (jobs_t.c.state == "running"))
            ).scalar()
        noted = json.loads(text) if text else {}
        return noted if isinstance(noted, dict) and noted.pop(COMMITTED, False) else None

    def interrupt_running(self, reason: str) -> int:
        """Close the jobs this process started and did not finish (it is being stopped: Ctrl-C, SIGTERM) as
        failed, and release their leases; what they committed stays committed, the rest is safe to redo."""
        with self._leases_lock:
            running = sorted(self._running)
        for job_id in running:
            noted = self._noted_commit(job_id)
            if noted is not None:  # its commit landed: that is its outcome
                self.finish_job(
                    job_id,
                    state="committed",
                    metrics=noted,
                    error=f"interrupted: {reason}, after its commit landed (version {noted.get('version')}); run the "
                    "job again to finish the rest",
                    only_running=True,
                )
            else:
                self.finish_job(job_id, state="failed", error=f"interrupted: {reason}", only_running=True)
            with self._leases_lock:  # only_running returns early for a job finished meanwhile: forget it too
                self._running.discard(job_id)
                held = self._job_leases.pop(job_id, None)
            if held is not None:
                self.release_lease(held[0], held[1])
        return len(running)


def _carried(paths: Sequence[str], rewritten: Mapping[str, str | None]) -> list[str]:
    """``paths`` with each rewritten file under its replacement's name, those removed whole left out."""
    out = [rewritten[p] if p in rewritten else p for p in paths]
    return sorted(str(p) for p in out if p is not None)


def _layout_files(text: str) -> tuple[list[str], list[str]]:
    """(every file, the incremental runs' files) of a layout row (a plain list: no runs, as older rows hold)."""
    try:
        held = json.loads(text)
    except (ValueError, TypeError):
        return [], []  # a row no release wrote: no file counts as clustered, the partition is clustered again
    if isinstance(held, dict):
        files, runs = held.get("files", ()), held.get("runs", ())
    else:
        files, runs = held, ()
    return [f for f in files if isinstance(f, str)], [f for f in runs if isinstance(f, str)]
