"""Health scores and policy-driven maintenance: what is wrong with a table, which job fixes it, and running
those jobs in a sensible order.

A table starts at 100 and loses points per measured signal (each capped), with the job that would fix it:

=====================  ===========================================================  ====  ============
signal                 measured as                                                  max   fix
=====================  ===========================================================  ====  ============
small files            share of files below the small-file threshold, in            30    optimize
                       partitions with enough of them to compact
files per partition    the largest partition's file count over 16                   10    optimize
duplicates             duplicate rows by the declared/policy keys (DuckDB pass)     20    dedup
old versions           readable versions older than the retention window            10    vacuum
orphan files           unaccounted files older than the orphan age (storage         5     orphans
                       reconciliation: leftovers, leaks, stale metadata)
expired files          files only expired versions reference, still on storage      5     vacuum
wrong tier             bytes whose tier differs from what their age calls for       10    tier
unmasked PII           scan-tagged columns without a masking policy                 15    pii mask
expired data           rows older than retention.expire_after                       5     expire-data
pruning                for the (up to two) columns queries filter on most, the      10    optimize
                       share of row groups min/max let a narrow predicate skip
                       (below 50 %, with 16+ row groups)
=====================  ===========================================================  ====  ============

``maintain`` runs the jobs the findings call for, in this order: dedup (fewer rows to compact), expire-data,
optimize (compaction, then Z-order when the policy names columns), tier (after compaction, so moved files are
already big), vacuum and orphans last (they delete what the others replaced).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from lakehouse import clock
from lakehouse.errors import LakehouseError

if TYPE_CHECKING:
    from lakehouse.workspace import Workspace

ORDER = ("dedup", "expire-data", "optimize", "tier", "vacuum", "orphans")


@dataclass
class Finding:
    signal: str
    value: float
    penalty: float
    fix: str
    evidence: str

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "value": round(self.value, 4), "penalty": round(self.penalty, 2)}


@dataclass
class Health:
    table: str
    score: float
    findings: list[Finding] = field(default_factory=list)
    signals: dict[str, Any] = field(default_factory=dict)

    @property
    def fixes(self) -> list[str]:
        wanted = {f.fix for f in self.findings if f.penalty > 0}
        return [job for job in ORDER if job in wanted] + sorted(wanted - set(ORDER))

    def as_dict(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "score": round(self.score, 1),
            "fixes": self.fixes,
            "findings": [f.as_dict() for f in self.findings],
            "signals": self.signals,
        }


def health(lh: Workspace, name: str, *, check_duplicates: bool = True) -> Health:
    """Measure a table's signals and score it 0-100 (the table's location is listed once, paged: the orphan
    reconciliation and the tiering plan share that listing)."""
    from lakehouse.storage import shared_listings

    with shared_listings():
        return _health(lh, name, check_duplicates=check_duplicates)


def _health(lh: Workspace, name: str, *, check_duplicates: bool) -> Health:
    from lakehouse.maintenance.health import file_health
    from lakehouse.maintenance.planner import plan_compaction
    from lakehouse.storage import prefetch_listing
    from lakehouse.units import parse_duration

    table = lh.table(name)
    policy = lh.policy(table.name)
    options = compaction_options(lh, name)
    result = Health(str(table.name), 100.0)
    files = table.files()  # none for a table without versions
    # the orphan reconciliation's listing (below), made in the background while the history and the plans read
    # metadata
    prefetch_listing(table.location, table.ctx, known=[f.path for f in files])
    snaps = table.snapshots()
    layouts = lh.catalog.layouts(table.name)
    fh = file_health(table, files=files, options=options, clustered={p for _, paths in layouts.values() for p in paths})
    result.signals["files"] = fh
    plan = plan_compaction(str(table.name), files, dataclasses.replace(options, zorder=()), layouts=layouts)
    compactable = sum(len(p.inputs) for p in plan.picked)
    if files:
        share = compactable / len(files)
        result.findings.append(
            Finding(
                "small_files",
                share,
                30 * share,
                "optimize",
                f"{compactable} of {len(files)} files are small and sit in {len(plan.picked)} partition(s) worth "
                f"compacting (threshold {options.small_threshold} bytes)",
            )
        )
        if options.zorder:
            runs = lh.catalog.layout_runs(table.name)
            pending = plan_compaction(str(table.name), files, options, layouts=layouts, runs=runs).picked
            result.findings.append(
                Finding(
                    "zorder_pending",
                    float(len(pending)),
                    5.0 if pending else 0.0,
                    "optimize",
                    f"{len(pending)} partition(s) not yet Z-ordered by {', '.join(options.zorder)}",
                )
            )
        most = fh["files_per_partition"]["max"]
        result.findings.append(
            Finding(
                "files_per_partition",
                float(most),
                min(10.0, max(0.0, (most - 16) / 16 * 10)) if plan.picked else 0.0,
                "optimize",
                f"the largest partition has {most} files",
            )
        )
    keys = list(policy.dedup.keys or table.definition.keys)
    if check_duplicates and keys and files:
        from lakehouse.maintenance.dedup import plan_dedup

        dplan = plan_dedup(lh, name, keys=keys, order=policy.dedup.order)
        ratio = dplan.duplicate_rows / dplan.rows if dplan.rows else 0.0
        result.findings.append(
            Finding(
                "duplicates",
                ratio,
                min(20.0, ratio * 200),
                "dedup",
                f"{dplan.duplicate_rows} duplicate rows of {dplan.duplicated_keys} keys ({', '.join(keys)})",
            )
        )
    window = parse_duration(policy.retention.retain)
    cutoff = clock.now() - window
    expired = table.expired.versions if table.expired else frozenset()
    old = [s for s in snaps if s.timestamp < cutoff and not s.is_current and s.version not in expired]
    result.findings.append(
        Finding(
            "old_versions",
            float(len(old)),
            min(10.0, len(old) / 10),
            "vacuum",
            f"{len(old)} readable versions are older than the retention window ({policy.retention.retain})",
        )
    )
    from lakehouse.maintenance.reconcile import reconcile

    storage = reconcile(lh, name, orphan_age=policy.retention.orphan_age)
    result.signals["storage"] = {k: v for k, v in storage.as_dict().items() if k != "unaccounted_examples"}
    removable = storage.unaccounted["removable"]
    result.findings.append(
        Finding(
            "orphan_files",
            float(removable.files),
            min(5.0, removable.files / 2),
            "orphans",
            f"{removable.files} unreferenced files older than {policy.retention.orphan_age} ({removable.bytes} bytes: "
            "failed jobs' leftovers, leaks, stale metadata)",
        )
    )
    expired_files = storage.classes["expired"]
    result.findings.append(
        Finding(
            "expired_files",
            float(expired_files.files),
            min(5.0, expired_files.files / 2),
            "vacuum",
            f"{expired_files.files} files ({expired_files.bytes} bytes) only expired versions reference are still on "
            "storage",
        )
    )
    tplan = None
    try:
        from lakehouse.maintenance.tiering import plan_tiering

        tplan = plan_tiering(lh, name)
        wrong = sum(f.size for g in tplan.moves for f in g.moving)
        total = sum(f.size_bytes for f in files) or 1
        result.findings.append(
            Finding(
                "wrong_tier",
                wrong / total,
                10 * wrong / total,
                "tier",
                f"{wrong} of {total} bytes sit in a tier their age does not call for",
            )
        )
    except LakehouseError as e:  # no time column to tier by: not a health problem
        result.signals["tiering"] = e.message
    tags = lh.catalog.pii_tags(table.name)
    unmasked = sorted({t["column"] for t in tags} - set(policy.masking))
    result.findings.append(
        Finding(
            "unmasked_pii",
            float(len(unmasked)),
            min(15.0, 7.5 * len(unmasked)),
            "pii mask",
            f"PII found in {', '.join(unmasked)} without a masking policy" if unmasked else "no unmasked PII tags",
        )
    )
    access = lh.catalog.access_summary(table.name, since=dt.datetime.now(dt.UTC) - dt.timedelta(days=30))
    result.signals["access_30d"] = access
    suggestion = zorder_suggestion(lh, name, access)
    if suggestion:
        adopted = policy.compaction.adopt_zorder and not policy.compaction.zorder
        result.findings.append(
            Finding(
                "zorder_suggestion",
                float(access["predicate_columns"].get(suggestion[0], 0)),
                0.0,
                "optimize",
                f"{access['reads']} queries in 30 days filtered on "
                + ", ".join(f"{c} ({access['predicate_columns'][c]}x)" for c in suggestion)
                + (
                    ": adopted (compaction.adopt_zorder)"
                    if adopted
                    else f": suggest compaction.zorder={','.join(suggestion)}"
                ),
            )
        )
    filtered = [
        c for c, n in access["predicate_columns"].items() if n >= MIN_QUERIES_FOR_ZORDER and c in table.schema.names
    ][:2]
    if filtered and len(files) <= MAX_FILES_FOR_PRUNING_CHECK:
        from lakehouse.maintenance.health import column_skipping

        skipping = [column_skipping(table, files, c) for c in filtered]
        result.signals["pruning"] = skipping
        poor = [s for s in skipping if s["share_skippable"] is not None and s["row_groups"] >= MIN_ROW_GROUPS_TO_PRUNE]
        worst = min(poor, key=lambda s: s["share_skippable"], default=None)
        if worst is not None:
            share = worst["share_skippable"]
            result.findings.append(
                Finding(
                    "pruning",
                    share,
                    max(0.0, 10.0 * (1 - share / GOOD_SKIPPING)),
                    "optimize",
                    f"queries filter on {worst['column']}, and min/max statistics let a narrow predicate on it skip "
                    f"{share:.0%} of {worst['row_groups']} row groups"
                    + ("" if share >= GOOD_SKIPPING else ": cluster the table by it (compaction.zorder)"),
                )
            )
    if policy.retention.expire_after and files:
        from lakehouse.maintenance.retention import expire_data

        exp = expire_data(lh, name, older_than=policy.retention.expire_after, column=policy.retention.expire_column)
        share = exp.rows_to_delete / exp.rows_before if exp.rows_before else 0.0
        result.findings.append(
            Finding(
                "expired_data",
                share,
                min(5.0, 50 * share),
                "expire-data",
                f"{exp.rows_to_delete} rows are older than {policy.retention.expire_after}",
            )
        )
    result.score = max(0.0, 100.0 - sum(f.penalty for f in result.findings))
    tiers: dict[str, int] = {}
    if tplan is not None:
        for g in tplan.groups:
            for f in g.files:
                tiers[f.tier] = tiers.get(f.tier, 0) + f.size
    with contextlib.suppress(LakehouseError):  # a measurement that cannot be kept is still the answer
        lh.catalog.record_stats(
            table.name,
            score=result.score,
            files=fh["files"],
            bytes=fh["bytes"],
            small_files=fh["small_files"],
            rows=fh["rows"],
            tiers=tiers,
        )
    return result


MIN_QUERIES_FOR_ZORDER = 3
MAX_FILES_FOR_PRUNING_CHECK = 5_000
"""The pruning signal reads every file's footer: skipped on larger tables (their planning reads metadata only)."""
MIN_ROW_GROUPS_TO_PRUNE = 16
"""Below this many row groups a table is small enough to read whole: skipping is no health signal."""
GOOD_SKIPPING = 0.5
"""A filtered column whose row groups a narrow predicate skips at least this share of costs no points."""


def zorder_suggestion(lh: Workspace, name: str, access: dict[str, Any] | None = None) -> list[str]:
    """Up to two columns queries filtered on most (at least 3 times in 30 days), that are not partition
    columns (a partition column clusters nothing inside a partition)."""
    table = lh.table(name)
    access = access or lh.catalog.access_summary(table.name, since=dt.datetime.now(dt.UTC) - dt.timedelta(days=30))
    partitioned = {p.column for p in table.definition.partitioning if p.transform == "identity"}
    ranked = [
        c
        for c, n in access["predicate_columns"].items()
        if n >= MIN_QUERIES_FOR_ZORDER and c not in partitioned and c in table.schema.names
    ]
    return ranked[:2]


def compaction_options(lh: Workspace, name: str) -> Any:
    from lakehouse.maintenance.planner import CompactionOptions
    from lakehouse.units import parse_size

    c = lh.policy(name).compaction
    zorder = list(c.zorder) or (zorder_suggestion(lh, name) if c.adopt_zorder else [])
    return CompactionOptions(
        target_file_size=parse_size(c.target_file_size),
        small_file_fraction=c.small_file_fraction,
        min_input_files=c.min_input_files,
        zorder=tuple(zorder),
        curve=c.curve,
    )


def maintain(
    lh: Workspace,
    name: str,
    *,
    dry_run: bool = True,
    before_job: Callable[[str], None] | None = None,
    engine: str = "local",
) -> dict[str, Any]:
    """Run, in order, the jobs the table's health and policy call for; health before and after.
    ``before_job`` is called with each job's name first (the autopilot renews its lease there).

    ``engine="spark"`` runs compaction, vacuum and orphan removal on Spark (see ``optimize``, ``vacuum`` and
    ``remove_orphans``); dedup, data expiry and tiering stay local, and each job's entry names its engine."""
    from lakehouse.engines import check_engine

    check_engine(engine)
    before = health(lh, name)
    report: dict[str, Any] = {
        "table": before.table,
        "dry_run": dry_run,
        "engine": engine,
        "before": before.as_dict(),
        "jobs": [],
    }
    policy = lh.policy(name)
    wanted = set(before.fixes)
    for job in ORDER:
        if job not in wanted:
            continue
        entry: dict[str, Any] = {"job": job}
        if before_job is not None:
            before_job(job)
        try:
            entry["result"] = _run(lh, name, job, policy, dry_run, engine if job in SPARK_JOBS else "local")
        except LakehouseError as e:  # one job failing does not stop the others; it is recorded
            entry["error"] = e.message
        report["jobs"].append(entry)
    if "pii mask" in wanted:
        report["jobs"].append(
            {"job": "pii mask", "skipped": "choose a masking policy per column (lakehouse pii mask), not automatic"}
        )
    if not dry_run:
        report["after"] = health(lh, name).as_dict()
    return report


SPARK_JOBS = ("optimize", "vacuum", "orphans")
"""The jobs ``maintain`` runs on Spark when asked to; the others have no Spark implementation."""


def _run(lh: Workspace, name: str, job: str, policy: Any, dry_run: bool, engine: str) -> dict[str, Any]:
    if job == "dedup":
        from lakehouse.maintenance.dedup import dedup

        keys = list(policy.dedup.keys or lh.table(name).definition.keys)
        r = dedup(lh, name, keys=keys, order=policy.dedup.order, dry_run=dry_run)
        return {"duplicate_rows": r.plan.duplicate_rows, "rows_removed": r.rows_removed, "status": r.status}
    if job == "expire-data":
        from lakehouse.maintenance.retention import expire_data

        e = expire_data(
            lh,
            name,
            older_than=policy.retention.expire_after,
            column=policy.retention.expire_column,
            dry_run=dry_run,
        )
        return {"rows_to_delete": e.rows_to_delete, "rows_deleted": e.rows_deleted}
    if job == "optimize":
        from lakehouse.maintenance.compaction import optimize

        done = optimize(lh, name, compaction_options(lh, name), dry_run=dry_run, engine=engine).as_dict()
        plan = done["plan"]
        if dry_run:  # what the plan would rewrite (nothing ran, so no before/after counts)
            return {
                k: plan[k] for k in ("partitions_picked", "input_files", "input_bytes", "expected_output_files")
            } | {"engine": done["engine"]["engine"]}
        return {k: done[k] for k in ("files_before", "files_after", "rows_in", "rows_out", "version")} | {
            "partitions_picked": plan["partitions_picked"],
            "engine": done["engine"]["engine"],
        }
    if job == "tier":
        from lakehouse.maintenance.tiering import tier

        t = tier(lh, name, dry_run=dry_run).as_dict()
        return {k: t[k] for k in ("files_to_move", "files_moved", "files_rewritten")}
    if job == "vacuum":
        from lakehouse.maintenance.retention import vacuum

        v = vacuum(lh, name, retain=policy.retention.retain, dry_run=dry_run, engine=engine)
        return {
            "expired_versions": len(v.plan.expired_versions),
            "files_deleted": v.files_deleted,
            "engine": v.engine["engine"],
        }
    if job == "orphans":
        from lakehouse.maintenance.retention import remove_orphans

        o = remove_orphans(lh, name, older_than=policy.retention.orphan_age, dry_run=dry_run, engine=engine)
        return {"orphans": len(o.plan.files), "files_deleted": o.files_deleted, "engine": o.engine["engine"]}
    raise LakehouseError(f"unknown job {job}")
