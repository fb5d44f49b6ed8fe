"""Maintenance and governance jobs for the API: the same library calls as the CLI commands."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lakehouse.errors import InvalidInputError

if TYPE_CHECKING:
    from lakehouse.core import Lakehouse


def run(lh: Lakehouse, name: str, kind: str, options: dict[str, Any]) -> dict[str, Any]:
    """Plan (``dry_run``, the default) or run one job on a table; returns its plan or result. A dry run is kept
    in the job history as a ``planned`` job with its plan (what the console's Jobs page shows)."""
    result = _run(lh, name, kind, options)
    if bool(options.get("dry_run", True)):
        params = {k: v for k, v in options.items() if v not in (None, [], {}, False)}
        result["planned_job"] = lh.catalog.record_plan(
            kind, table=lh.table_record(name).name, params=params, plan=result, actor=lh.actor
        )
    return result


def _run(lh: Lakehouse, name: str, kind: str, options: dict[str, Any]) -> dict[str, Any]:
    dry_run = bool(options.get("dry_run", True))
    policy = lh.policy(name)
    if kind == "optimize":
        from lakehouse.maintenance.compaction import optimize
        from lakehouse.maintenance.planner import CompactionOptions
        from lakehouse.units import parse_size

        opts = CompactionOptions(
            target_file_size=parse_size(options.get("target_file_size") or "128MB"),
            zorder=tuple(options.get("zorder") or ()),
            curve=options.get("curve") or policy.compaction.curve,
        )
        return optimize(lh, name, opts, dry_run=dry_run).as_dict()
    if kind == "vacuum":
        from lakehouse.maintenance.retention import vacuum

        retain = options.get("retain") or policy.retention.retain
        return vacuum(lh, name, retain=retain, keep=options.get("keep") or [], dry_run=dry_run).as_dict()
    if kind == "orphans":
        from lakehouse.maintenance.retention import remove_orphans

        age = options.get("older_than") or policy.retention.orphan_age
        return remove_orphans(lh, name, older_than=age, dry_run=dry_run).as_dict()
    if kind == "expire-data":
        from lakehouse.maintenance.retention import expire_data

        age = options.get("older_than") or policy.retention.expire_after
        if not age:
            raise InvalidInputError("expire-data needs older_than (or retention.expire_after in the policy)")
        column = options.get("column") or policy.retention.expire_column
        return expire_data(lh, name, older_than=age, column=column, dry_run=dry_run).as_dict()
    if kind == "tier":
        from lakehouse.maintenance.tiering import tier

        return tier(lh, name, dry_run=dry_run).as_dict()
    if kind == "dedup":
        from lakehouse.maintenance.dedup import dedup

        keys = options.get("keys") or policy.dedup.keys or list(lh.table(name).definition.keys)
        return dedup(lh, name, keys=keys, order=options.get("order") or policy.dedup.order, dry_run=dry_run).as_dict()
    if kind == "pii-scan":
        from lakehouse.governance.pii import scan_table

        return scan_table(lh, name, dry_run=dry_run)
    if kind == "pii-mask":
        from lakehouse.governance.ops import mask_table

        return mask_table(
            lh, name, policies=options.get("masks") or {}, purge=bool(options.get("purge")), dry_run=dry_run
        )
    raise InvalidInputError(f"unknown job {kind}")
