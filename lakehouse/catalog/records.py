"""What the catalog returns: table, job and audit records."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from lakehouse.schema import schema_to_dict
from lakehouse.tables.base import TableDefinition, TableName


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _aware(t: dt.datetime | None) -> dt.datetime | None:
    if t is None:
        return None
    return t.replace(tzinfo=dt.UTC) if t.tzinfo is None else t


@dataclass(frozen=True)
class TableRecord:
    """A registered table as the catalog knows it."""

    name: TableName
    format: str
    location: str
    definition: TableDefinition
    created_at: dt.datetime
    updated_at: dt.datetime
    error: str | None = None
    """Why the stored definition cannot be read (an unknown type an older release wrote, corrupt JSON): the
    record then has an empty definition; ``table drop`` still removes it."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": str(self.name),
            "catalog": self.name.catalog or None,
            "format": self.format,
            "location": self.location,
            "schema": schema_to_dict(self.definition.schema),
            "partitioning": [str(p) for p in self.definition.partitioning],
            "keys": list(self.definition.keys),
            "properties": dict(self.definition.properties),
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
            "error": self.error,
        }


@dataclass(frozen=True)
class JobRecord:
    id: int
    table_name: str | None
    kind: str
    state: str
    actor: str
    started_at: dt.datetime
    finished_at: dt.datetime | None
    params: Mapping[str, Any] = field(default_factory=dict)
    metrics: Mapping[str, Any] = field(default_factory=dict)
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["started_at"] = self.started_at.isoformat()
        d["finished_at"] = self.finished_at.isoformat() if self.finished_at else None
        d["params"], d["metrics"] = dict(self.params), dict(self.metrics)
        return d


@dataclass(frozen=True)
class AuditRecord:
    id: int
    at: dt.datetime
    actor: str
    action: str
    table_name: str | None
    job_id: int | None
    outcome: str
    details: Mapping[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["at"] = self.at.isoformat()
        d["details"] = dict(self.details)
        return d


def _counts(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """The scalar figures of a job's metrics (counts, bytes, versions), not its file lists."""
    return {
        k: v for k, v in metrics.items() if isinstance(v, int | float | bool) or (isinstance(v, str) and len(v) < 80)
    }
