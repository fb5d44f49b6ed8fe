"""Health measurements per table (score, files, bytes, small files, rows, tier mix), kept for the console's table
list and each score's trend; the newest :data:`KEEP` per table."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from lakehouse.catalog.base import StoreBase
from lakehouse.catalog.records import _aware, _now
from lakehouse.catalog.schema import jobs_t, pii_t, stats_t
from lakehouse.tables.base import TableName

KEEP = 30
"""Measurements kept per table (older ones are deleted when a new one is recorded)."""

MAINTENANCE_KINDS = ("optimize", "vacuum", "orphans", "expire-data", "tier", "dedup", "pii.mask", "erase", "maintain")


class StatsMixin(StoreBase):
    def record_stats(
        self,
        table: TableName | str,
        *,
        score: float,
        files: int,
        bytes: int,
        small_files: int,
        rows: int,
        tiers: Mapping[str, int] | None = None,
    ) -> None:
        name = str(table)
        with self._tx() as conn:
            conn.execute(
                stats_t.insert().values(
                    table_name=name,
                    at=_now(),
                    score=float(score),
                    files=int(files),
                    bytes=int(bytes),
                    small_files=int(small_files),
                    rows=int(rows),
                    tiers_json=json.dumps(dict(tiers or {}), sort_keys=True),
                )
            )
            old = (
                sa.select(stats_t.c.id)
                .where(stats_t.c.table_name == name)
                .order_by(stats_t.c.id.desc())
                .offset(KEEP)
                .limit(1)
                .scalar_subquery()
            )
            conn.execute(stats_t.delete().where(stats_t.c.table_name == name, stats_t.c.id <= old))

    def stats_by_table(self) -> dict[str, dict[str, Any]]:
        """Per table: its newest measurement and the scores of the kept ones, oldest first (``trend``)."""
        with self._tx() as conn:
            rows = conn.execute(sa.select(stats_t).order_by(stats_t.c.table_name, stats_t.c.id)).all()
        out: dict[str, dict[str, Any]] = {}
        for r in rows:
            entry = out.setdefault(r.table_name, {"trend": []})
            entry["trend"].append(round(r.score, 1))
            entry.update(
                at=(_aware(r.at) or _now()).isoformat(),
                score=round(r.score, 1),
                files=r.files,
                bytes=r.bytes,
                small_files=r.small_files,
                small_file_share=round(r.small_files / r.files, 4) if r.files else 0.0,
                rows=r.rows,
                tiers=json.loads(r.tiers_json or "{}"),
            )
        return out

    def stats_history(self, table: TableName | str) -> list[dict[str, Any]]:
        with self._tx() as conn:
            rows = conn.execute(
                sa.select(stats_t).where(stats_t.c.table_name == str(table)).order_by(stats_t.c.id)
            ).all()
        return [
            {"at": (_aware(r.at) or _now()).isoformat(), "score": round(r.score, 1), "files": r.files, "bytes": r.bytes}
            for r in rows
        ]

    def last_maintenance(self) -> dict[str, dict[str, Any]]:
        """Per table: its newest finished maintenance job (kind, state, when)."""
        newest = (
            sa.select(sa.func.max(jobs_t.c.id).label("id"))
            .where(
                jobs_t.c.kind.in_(MAINTENANCE_KINDS),
                jobs_t.c.state.notin_(("running", "planned")),
                jobs_t.c.table_name.isnot(None),
            )
            .group_by(jobs_t.c.table_name)
            .subquery()
        )
        with self._tx() as conn:
            rows = conn.execute(
                sa.select(jobs_t.c.table_name, jobs_t.c.kind, jobs_t.c.state, jobs_t.c.finished_at).where(
                    jobs_t.c.id.in_(sa.select(newest.c.id))
                )
            ).all()
        return {
            r.table_name: {
                "kind": r.kind,
                "state": r.state,
                "at": (_aware(r.finished_at) or _now()).isoformat() if r.finished_at else None,
            }
            for r in rows
        }

    def pii_kinds(self) -> dict[str, list[str]]:
        """Per table: the PII kinds its tags name."""
        with self._tx() as conn:
            rows = conn.execute(sa.select(pii_t.c.table_name, pii_t.c.kind).distinct()).all()
        out: dict[str, set[str]] = {}
        for r in rows:
            out.setdefault(r.table_name, set()).add(r.kind)
        return {k: sorted(v) for k, v in out.items()}
