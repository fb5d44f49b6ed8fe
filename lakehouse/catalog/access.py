"""API keys (hashed secrets and roles) and the access log queries write (which columns are filtered on)."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import sqlalchemy as sa

from lakehouse.catalog.base import StoreBase
from lakehouse.catalog.records import _aware, _now
from lakehouse.catalog.schema import access_t, keys_t
from lakehouse.tables.base import TableName


class AccessMixin(StoreBase):
    def add_key(self, key_id: str, *, name: str, role: str, secret_sha256: str, actor: str) -> None:
        with self._tx() as conn:
            conn.execute(
                keys_t.insert().values(
                    id=key_id, name=name, role=role, secret_sha256=secret_sha256, created_at=_now(), created_by=actor
                )
            )

    def key(self, key_id: str) -> dict[str, Any] | None:
        with self._tx() as conn:
            row = conn.execute(sa.select(keys_t).where(keys_t.c.id == key_id)).first()
        return dict(row._mapping) if row is not None else None

    def keys(self) -> list[dict[str, Any]]:
        with self._tx() as conn:
            rows = conn.execute(sa.select(keys_t).order_by(keys_t.c.created_at)).all()
        return [{k: v for k, v in r._mapping.items() if k != "secret_sha256"} for r in rows]

    def revoke_key(self, key_id: str) -> bool:
        with self._tx() as conn:
            result = conn.execute(
                keys_t.update().where((keys_t.c.id == key_id) & keys_t.c.revoked_at.is_(None)).values(revoked_at=_now())
            )
        return bool(result.rowcount)

    def record_access(self, entries: list[dict[str, Any]]) -> None:
        """One row per table a query read: the columns its predicates compare with literals, and for each
        column compared with a time the earliest time it asked for."""
        if not entries:
            return
        now = _now()
        with self._tx() as conn:
            conn.execute(
                access_t.insert(),
                [
                    {
                        "at": now,
                        "table_name": e["table"],
                        "predicate_columns_json": json.dumps(sorted(e.get("predicate_columns", []))),
                        "time_from_json": json.dumps(e.get("time_from", {}), default=str),
                        "predicates_json": json.dumps(e.get("predicates", [])),
                    }
                    for e in entries
                ],
            )

    def recent_predicates(self, table: TableName | str, *, limit: int = 5) -> list[dict[str, Any]]:
        """The predicates queries ran on the table lately, most frequent first (each with how often)."""
        with self._tx() as conn:
            rows = conn.execute(
                sa.select(access_t.c.predicates_json)
                .where(access_t.c.table_name == str(table), access_t.c.predicates_json.isnot(None))
                .order_by(access_t.c.id.desc())
                .limit(1000)
            ).all()
        counts: dict[str, int] = {}
        for r in rows:
            for p in json.loads(r.predicates_json or "[]"):
                counts[p] = counts.get(p, 0) + 1
        top = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]
        return [{"predicate": p, "queries": n} for p, n in top]

    def access_summary(self, table: TableName | str, *, since: dt.datetime) -> dict[str, Any]:
        """Reads since a time: how many, predicate columns by frequency, earliest time asked per column."""
        with self._tx() as conn:
            rows = conn.execute(
                sa.select(access_t.c.at, access_t.c.predicate_columns_json, access_t.c.time_from_json).where(
                    (access_t.c.table_name == str(table)) & (access_t.c.at >= since)
                )
            ).all()
        columns: dict[str, int] = {}
        time_from: dict[str, str] = {}
        last: dt.datetime | None = None
        for at, cols_json, times_json in rows:
            for c in json.loads(cols_json):
                columns[c] = columns.get(c, 0) + 1
            for c, t in json.loads(times_json).items():
                time_from[c] = min(time_from.get(c, t), t)
            at = _aware(at)
            last = at if last is None or (at is not None and at > last) else last
        return {
            "reads": len(rows),
            "last_read": last.isoformat() if last else None,
            "predicate_columns": dict(sorted(columns.items(), key=lambda kv: -kv[1])),
            "time_from": time_from,
        }
