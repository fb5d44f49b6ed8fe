"""Per-table policies, PII tags, and the versions retention expired."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from lakehouse.catalog.base import StoreBase
from lakehouse.catalog.records import _aware, _now
from lakehouse.catalog.schema import expired_t, pii_t, policies_t
from lakehouse.tables.base import ExpiredVersions, TableName


class PoliciesMixin(StoreBase):
    def set_pii_tags(self, table: TableName, tags: list[dict[str, Any]], *, job_id: int | None) -> None:
        """Replace a table's tags with the findings of a scan."""
        now = _now()
        with self._tx() as conn:
            conn.execute(pii_t.delete().where(pii_t.c.table_name == str(table)))
            if tags:
                conn.execute(
                    pii_t.insert(),
                    [
                        {
                            "table_name": str(table),
                            "column_name": t["column"],
                            "kind": t["kind"],
                            "method": t["method"],
                            "confidence": float(t["confidence"]),
                            "matches": int(t["matches"]),
                            "sampled": int(t["sampled"]),
                            "job_id": job_id,
                            "scanned_at": now,
                        }
                        for t in tags
                    ],
                )

    def pii_tags(self, table: TableName) -> list[dict[str, Any]]:
        with self._tx() as conn:
            rows = conn.execute(
                sa.select(pii_t).where(pii_t.c.table_name == str(table)).order_by(pii_t.c.column_name, pii_t.c.kind)
            ).all()
        return [
            {
                "column": r.column_name,
                "kind": r.kind,
                "method": r.method,
                "confidence": r.confidence,
                "matches": r.matches,
                "sampled": r.sampled,
                "scanned_at": (_aware(r.scanned_at) or _now()).isoformat(),
            }
            for r in rows
        ]

    def add_expired(
        self,
        table: TableName,
        versions: list[int],
        *,
        retention: str,
        job_id: int | None,
        current_since: Mapping[int, Sequence[dt.datetime]] | None = None,
        snapshot_ids: Mapping[int, int] | None = None,
    ) -> None:
        if not versions:
            return
        since = current_since or {}
        now = _now()
        with self._tx() as conn:
            known = {
                r.version
                for r in conn.execute(
                    sa.select(expired_t.c.version).where(
                        (expired_t.c.table_name == str(table)) & expired_t.c.version.in_(versions)
                    )
                )
            }
            rows = [
                {
                    "table_name": str(table),
                    "version": v,
                    "retention": retention,
                    "job_id": job_id,
                    "expired_at": now,
                    "current_since": json.dumps(sorted(t.isoformat() for t in since.get(v, ()))),
                    "snapshot_id": (snapshot_ids or {}).get(v),
                }
                for v in sorted(set(versions) - known)
            ]
            if rows:
                conn.execute(expired_t.insert(), rows)

    def expired(self, table: TableName) -> ExpiredVersions | None:
        """The versions retention removed from one table (with the retention, job and time of the latest run,
        and when each version was current), or None."""
        with self._tx() as conn:
            rows = conn.execute(
                sa.select(expired_t).where(expired_t.c.table_name == str(table)).order_by(expired_t.c.expired_at)
            ).all()
        if not rows:
            return None
        last = rows[-1]
        since = {
            int(r.version): tuple(dt.datetime.fromisoformat(t) for t in json.loads(r.current_since or "[]"))
            for r in rows
        }
        return ExpiredVersions(
            frozenset(int(r.version) for r in rows),
            last.retention,
            last.job_id,
            _aware(last.expired_at),
            since,
            {int(r.snapshot_id): int(r.version) for r in rows if r.snapshot_id is not None},
        )

    def policy(self, table: TableName) -> dict[str, Any]:
        with self._tx() as conn:
            row = conn.execute(sa.select(policies_t).where(policies_t.c.table_name == str(table))).first()
        return dict(json.loads(row.policy_json)) if row is not None else {}

    def set_policy(self, table: TableName, policy: Mapping[str, Any], *, actor: str) -> None:
        with self._tx() as conn:
            conn.execute(policies_t.delete().where(policies_t.c.table_name == str(table)))
            if policy:
                conn.execute(
                    policies_t.insert().values(
                        table_name=str(table),
                        policy_json=json.dumps(dict(policy), sort_keys=True),
                        actor=actor,
                        updated_at=_now(),
                    )
                )
