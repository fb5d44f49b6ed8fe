"""Views of the warehouse that the CLI and the REST API present alike (one definition, two renderings)."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from lakehouse.maintenance.health import file_health
from lakehouse.tables.base import LakehouseTable
from lakehouse.workspace import Workspace


def table_summary(lh: Workspace, name: str, predicate: str | None = None) -> dict[str, Any]:
    """What ``lakehouse table show`` and ``GET /tables/{name}`` report: the catalog record, capabilities,
    versions, files, bytes, live rows, partitions, file health (with ``predicate``: data skipping for it), PII
    tags and masking."""
    record = lh.table_record(name)
    table = lh.table(name)
    files = table.files()
    snaps = table.snapshots()
    current = next((s for s in reversed(snaps) if s.is_current), snaps[-1] if snaps else None)
    partitions = Counter(json.dumps(dict(f.partition), sort_keys=True, default=str) for f in files)
    return {
        **record.as_dict(),
        "capabilities": table.capabilities.as_dict(),
        "current_version": current.version if current else None,
        "versions": len(snaps),
        "files": len(files),
        "bytes": sum(f.size_bytes for f in files),
        "rows": table.live_rows(files),
        "partitions": len(partitions),
        "health": file_health(table, files=files, predicate=predicate),
        "pii": lh.catalog.pii_tags(record.name),
        "masking": lh.policy(record.name).masking,
    }


def version_history(table: LakehouseTable) -> list[dict[str, Any]]:
    """A table's versions, oldest first, each marked ``expired`` when retention removed it. Versions whose
    format forgot them on expiry (Iceberg drops expired snapshots from its metadata) are listed from the
    catalog's record, with the time they became current and no operation."""
    expired = table.expired
    gone = expired.versions if expired else frozenset()
    rows = [{**s.as_dict(), "expired": s.version in gone} for s in table.snapshots()]
    listed = {r["version"] for r in rows}
    for v in sorted(gone - listed):
        since = expired.current_since.get(v, ()) if expired else ()
        rows.append(
            {
                "version": v,
                "snapshot_id": None,
                "timestamp": min(since).isoformat() if since else None,
                "operation": None,
                "parent_version": None,
                "is_current": False,
                "summary": {},
                "expired": True,
            }
        )
    return sorted(rows, key=lambda r: (r["timestamp"] or "", r["version"]))
