"""OpenLineage run events, stored as emitted, and what the catalog reads of them (output row counts).

The event model itself (building, validating, emitting events, the lineage graph) is
:mod:`lakehouse.governance.lineage`."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from lakehouse.catalog.base import StoreBase
from lakehouse.catalog.records import _now
from lakehouse.catalog.schema import lineage_t


class LineageMixin(StoreBase):
    def add_lineage(self, event: Mapping[str, Any]) -> int:
        def names(kind: str) -> list[str]:
            return [f"{d.get('namespace', '')}::{d.get('name', '')}" for d in event.get(kind) or []]

        job = event.get("job") or {}
        run = event.get("run") or {}
        when = event.get("eventTime")
        try:
            at = dt.datetime.fromisoformat(str(when).replace("Z", "+00:00")) if when else _now()
        except ValueError:
            at = _now()
        with self._tx() as conn:
            result = conn.execute(
                lineage_t.insert().values(
                    event_time=at if at.tzinfo else at.replace(tzinfo=dt.UTC),
                    event_type=str(event.get("eventType") or "OTHER")[:16],
                    job_namespace=str(job.get("namespace", ""))[:256],
                    job_name=str(job.get("name", ""))[:256],
                    run_id=str(run.get("runId", ""))[:64],
                    inputs_json=json.dumps(names("inputs")),
                    outputs_json=json.dumps(names("outputs")),
                    event_json=json.dumps(dict(event), default=str),
                )
            )
            pk = result.inserted_primary_key
            assert pk is not None
            return int(pk[0])

    def lineage_runs(self) -> list[tuple[str, str, str, list[str], list[str], str]]:
        """(job namespace, job name, run id, inputs, outputs, last event time) per run and dataset lists of its
        events (a run's events may name different datasets: union them per run), newest first."""
        columns = (
            lineage_t.c.job_namespace,
            lineage_t.c.job_name,
            lineage_t.c.run_id,
            lineage_t.c.inputs_json,
            lineage_t.c.outputs_json,
        )
        with self._tx() as conn:
            rows = conn.execute(
                sa.select(*columns, sa.func.max(lineage_t.c.event_time))
                .group_by(*columns)
                .order_by(sa.func.max(lineage_t.c.event_time).desc())
            ).all()
        return [(r[0], r[1], r[2], json.loads(r[3]), json.loads(r[4]), str(r[5])) for r in rows]

    def lineage_events(self, *, limit: int = 100) -> list[dict[str, Any]]:
        with self._tx() as conn:
            rows = conn.execute(sa.select(lineage_t.c.event_json).order_by(lineage_t.c.id.desc()).limit(limit)).all()
        return [json.loads(r[0]) for r in rows]


def as_count(value: Any) -> int | None:
    """``value`` if it is a count (a non-negative integer, not a bool), else None."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def output_rows(event: Mapping[str, Any]) -> int:
    """The rows an event says its outputs received (its output statistics); 0 for anything malformed.

    >>> output_rows({"outputs": [{"outputFacets": {"outputStatistics": {"rowCount": 3}}}, {"name": "x"}]})
    3
    >>> output_rows({"outputs": [{"outputFacets": {"outputStatistics": {"rowCount": "lots"}}}]})
    0
    """
    outputs = event.get("outputs")
    total = 0
    for out in outputs if isinstance(outputs, list) else []:
        facets = out.get("outputFacets") if isinstance(out, dict) else None
        stats = facets.get("outputStatistics") if isinstance(facets, dict) else None
        total += (as_count(stats.get("rowCount")) or 0) if isinstance(stats, dict) else 0
    return total
