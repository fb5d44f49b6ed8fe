"""The append-only audit log (the database refuses updates and deletes)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from lakehouse.catalog.base import StoreBase
from lakehouse.catalog.records import AuditRecord, _aware, _now
from lakehouse.catalog.schema import audit_t
from lakehouse.tables.base import TableName


class AuditMixin(StoreBase):
    def audit(
        self,
        action: str,
        *,
        table: TableName | str | None,
        actor: str,
        outcome: str = "ok",
        details: Mapping[str, Any] | None = None,
        job_id: int | None = None,
    ) -> None:
        """Append one entry: who did what to which table, with counts (never row values)."""
        with self._tx() as conn:
            self._audit_row(conn, action, table=table, actor=actor, outcome=outcome, details=details, job_id=job_id)

    @staticmethod
    def _audit_row(
        conn: Connection,
        action: str,
        *,
        table: TableName | str | None,
        actor: str,
        outcome: str = "ok",
        details: Mapping[str, Any] | None = None,
        job_id: int | None = None,
    ) -> None:
        conn.execute(
            audit_t.insert().values(
                at=_now(),
                actor=actor,
                action=action,
                table_name=str(table) if table is not None else None,
                job_id=job_id,
                outcome=outcome,
                details_json=json.dumps(dict(details or {}), default=str, sort_keys=True),
            )
        )

    def audit_log(
        self, *, table: TableName | None = None, action: str | None = None, limit: int = 100
    ) -> list[AuditRecord]:
        query = sa.select(audit_t).order_by(audit_t.c.id.desc()).limit(limit)
        if table is not None:
            query = query.where(audit_t.c.table_name == str(table))
        if action is not None:
            query = query.where(audit_t.c.action == action)
        with self._tx() as conn:
            rows = conn.execute(query).all()
        return [
            AuditRecord(
                id=r.id,
                at=_aware(r.at) or _now(),
                actor=r.actor,
                action=r.action,
                table_name=r.table_name,
                job_id=r.job_id,
                outcome=r.outcome,
                details=json.loads(r.details_json),
            )
            for r in rows
        ]
