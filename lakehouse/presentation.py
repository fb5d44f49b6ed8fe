"""Views of the warehouse that the CLI and the REST API present alike (one definition, two renderings)."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pyarrow as pa

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
    from lakehouse.schema import plain_flavours, schema_to_dict

    return {
        **record.as_dict(),
        # the table's own schema and partitioning now (another writer may have evolved it since the catalog's copy),
        # in the types the schema spec names (Arrow's large flavours are one string and one list to the formats)
        "schema": schema_to_dict(pa.schema([f.with_type(plain_flavours(f.type)) for f in table.schema])),
        "partitioning": [str(p) for p in table.definition.partitioning],
        "capabilities": table.capabilities.as_dict(),
        "current_version": current.version if current else None,
        "versions": len(snaps),
        "files": len(files),
        "bytes": sum(f.size_bytes for f in files),
        "rows": table.live_rows(files),
        "partitions": len(partitions),
        "health": file_health(
            table, files=files, predicate=predicate, clustered=lh.catalog.clustered_paths(record.name)
        ),
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


COMPACTIONS = ("compact", "zorder")
"""``lakehouse.operation`` values of the commits the table page's "before the last optimize" histogram looks for."""

OVERVIEW_SORTS = ("name", "format", "bytes", "files", "small_file_share", "score", "last_maintenance")


def tables_overview(
    lh: Workspace,
    *,
    search: str | None = None,
    format: str | None = None,
    catalog: str | None = None,
    sort: str = "name",
    descending: bool = False,
    limit: int = 50,
    offset: int = 0,
) -> dict[str, Any]:
    """Every table (both formats, every connected catalog) with what the console's table list shows: size, files,
    small-file share, health score and its trend, tier mix (from the newest health measurement: ``health``,
    ``maintain``, the autopilot), last maintenance job and PII tags; filtered, sorted and paged on the server.
    Reads the catalog database only (no table is opened), so a page of 1,000 tables answers at once; a table
    never measured has ``score`` None."""
    from lakehouse.errors import InvalidInputError

    if sort not in OVERVIEW_SORTS:
        raise InvalidInputError(f"cannot sort by {sort!r}", hint=f"sort by one of: {', '.join(OVERVIEW_SORTS)}")
    stats = lh.catalog.stats_by_table()
    jobs = lh.catalog.last_maintenance()
    pii = lh.catalog.pii_kinds()
    rows = []
    needle = (search or "").strip().lower()
    records = lh.list_tables(format=format)
    catalogs = sorted({r.name.catalog or "lakehouse" for r in records})
    for r in records:
        name = str(r.name)
        if needle and needle not in name:
            continue
        if catalog is not None and (r.name.catalog or "lakehouse") != catalog:
            continue
        s = stats.get(name, {})
        rows.append(
            {
                "name": name,
                "catalog": r.name.catalog or None,
                "format": r.format,
                "location": r.location,
                "error": r.error,
                "measured_at": s.get("at"),
                "score": s.get("score"),
                "trend": s.get("trend", []),
                "bytes": s.get("bytes"),
                "files": s.get("files"),
                "rows": s.get("rows"),
                "small_file_share": s.get("small_file_share"),
                "tiers": s.get("tiers", {}),
                "last_maintenance": jobs.get(name),
                "pii": pii.get(name, []),
            }
        )

    def key(row: dict[str, Any]) -> tuple[bool, Any]:
        value = row[sort]
        if sort == "last_maintenance":
            value = (value or {}).get("at")
        return (value is None, value if value is not None else 0)  # unmeasured last, either way

    rows.sort(key=lambda row: row["name"])
    if sort != "name" or descending:
        known = [row for row in rows if key(row)[0] is False]
        unknown = [row for row in rows if key(row)[0] is True]
        known.sort(key=lambda row: key(row)[1], reverse=descending)
        rows = known + unknown
    return {
        "items": rows[offset : offset + limit],
        "total": len(rows),
        "limit": limit,
        "offset": offset,
        "catalogs": catalogs,
    }


def table_page(lh: Workspace, name: str) -> dict[str, Any]:
    """What the console's table page shows beyond ``GET /tables/{name}``: the file-size histogram before the
    newest compaction, partitions with bytes, files and tier, the data-skipping report for the predicates
    queries ran on the table, the policy, the health trend and the recent jobs."""
    from lakehouse.errors import LakehouseError

    table = lh.table(name)
    files = table.files()
    out: dict[str, Any] = {"name": str(table.name), "histogram": file_health(table, files=files)["size_histogram"]}
    history = version_history(table)
    before: dict[str, Any] | None = None
    for row in reversed(history):
        op = (row.get("summary") or {}).get("lakehouse.operation")
        if op in COMPACTIONS and row.get("parent_version") is not None and not row.get("expired"):
            try:
                old = table.files(as_of=row["parent_version"])
            except LakehouseError:
                break  # the version before it expired: nothing to compare with
            before = {
                "version": row["parent_version"],
                "after_version": row["version"],
                "operation": op,
                "histogram": file_health(table, files=old)["size_histogram"],
                "files": len(old),
            }
            break
    out["histogram_before_last_optimize"] = before
    out["partitions"] = _partitions(lh, table, files)
    out["skipping"] = []
    for entry in lh.catalog.recent_predicates(table.name):
        from lakehouse.maintenance.health import data_skipping

        try:
            report = data_skipping(table, files, entry["predicate"])
        except LakehouseError as e:  # a predicate on a column dropped since
            report = {"error": e.message}
        out["skipping"].append({**entry, **report})
    out["policy"] = {"effective": lh.policy(table.name).model_dump(), "stored": lh.catalog.policy(table.name)}
    out["trend"] = lh.catalog.stats_history(table.name)
    out["jobs"] = [j.as_dict() for j in lh.catalog.jobs(table=table.name, limit=20)]
    return out


def _partitions(lh: Workspace, table: LakehouseTable, files: list[Any]) -> list[dict[str, Any]]:
    """Per partition: files, bytes and the tier its bytes sit in (the tiering plan's, when the table has a time
    column to tier by; else every file is hot), oldest partition first."""
    from lakehouse.errors import LakehouseError
    from lakehouse.maintenance.planner import partition_key

    try:
        from lakehouse.maintenance.tiering import plan_tiering

        plan = plan_tiering(lh, str(table.name))
        groups: dict[str, dict[str, Any]] = {}
        for g in plan.groups:
            key = json.dumps(g.as_dict()["partition"], sort_keys=True, default=str)
            entry = groups.setdefault(
                key, {"partition": g.as_dict()["partition"], "files": 0, "bytes": 0, "tiers": {}, "target": g.target}
            )
            for f in g.files:
                entry["files"] += 1
                entry["bytes"] += f.size
                entry["tiers"][f.tier] = entry["tiers"].get(f.tier, 0) + f.size
        rows = list(groups.values())
    except LakehouseError:
        by: dict[str, dict[str, Any]] = {}
        for f in files:
            part = {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in dict(f.partition).items()}
            entry = by.setdefault(partition_key(f.partition), {"partition": part, "files": 0, "bytes": 0, "tiers": {}})
            entry["files"] += 1
            entry["bytes"] += f.size_bytes
            entry["tiers"]["hot"] = entry["tiers"].get("hot", 0) + f.size_bytes
        rows = list(by.values())
    for row in rows:
        row["tier"] = max(row["tiers"], key=lambda t: row["tiers"][t]) if row["tiers"] else "hot"
    return sorted(rows, key=lambda row: json.dumps(row["partition"], sort_keys=True, default=str))
