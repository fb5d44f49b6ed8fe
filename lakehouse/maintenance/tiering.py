"""Hot/warm/cold tiering of a table's partitions, and the storage-cost report.

A partition's age is the end of its time partition (``day(ts)`` of 2026-01-01 ends 2026-01-02), or, without
one, the newest value of the policy's time column in each file's statistics. The policy maps ages to tiers
(``warm_after``, ``cold_after``) and tiers to S3 storage classes. Moving a file to a tier means one of:

* **storage-class** (S3): the object gets the tier's storage class in place (same key, same bytes), so no
  path the table references changes and nothing is committed. Tiers listed in ``recompress`` are first
  rewritten with zstd at that level into ``<table>/tier-<tier>/`` and committed like a compaction.
* **prefix** (local storage, or S3 stores without storage classes such as a plain MinIO): the files are
  rewritten under ``<table>/tier-<tier>/`` and swapped in one commit per partition (rows checked before
  the commit, concurrent appends kept). A bucket lifecycle rule on that prefix (MinIO ILM transition to a
  remote tier, S3 lifecycle) or a mount point does the rest.

Queries keep working in every tier: only storage classes that serve reads immediately are accepted.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from lakehouse.errors import CommitConflictError, InvalidInputError, StorageError, UnsupportedOperationError, error_text
from lakehouse.maintenance.clustering import CURVES
from lakehouse.maintenance.planner import CompactionOptions, partition_key, partition_keys
from lakehouse.policy import TIERS, TablePolicy, TierPolicy
from lakehouse.storage import ObjectInfo, delete_tree, list_objects, set_storage_class
from lakehouse.tables.base import DataFile, LakehouseTable, partition_path
from lakehouse.units import parse_size

if TYPE_CHECKING:
    from lakehouse.workspace import Workspace

Progress = Callable[[int, int], None]
GB = 1024**3


def _now() -> dt.datetime:
    from lakehouse import clock

    return clock.now()


def tier_prefix(table: LakehouseTable, tier: str) -> str:
    return f"{table.location.rstrip('/')}/tier-{tier}"


def _prefix_tier(table: LakehouseTable, path: str) -> str:
    root = table.location.rstrip("/") + "/tier-"
    if path.startswith(root):
        name = path[len(root) :].split("/", 1)[0]
        if name in TIERS:
            return name
    return "hot"


def _class_tier(policy: TierPolicy, storage_class: str | None) -> str:
    if storage_class is None:
        return "hot"
    for tier in reversed(TIERS):  # the coldest tier wins when two tiers share a class
        if policy.storage_classes.get(tier) == storage_class:
            return tier
    return "hot" if storage_class == "STANDARD" else storage_class.lower()


def method_for(lh: Workspace, table: LakehouseTable, policy: TierPolicy) -> str:
    on_s3 = table.location.startswith(("s3://", "s3a://"))
    if policy.method == "auto":
        return "storage-class" if on_s3 else "prefix"
    if policy.method == "storage-class" and not on_s3:
        raise UnsupportedOperationError(
            f"table {table.name} is on local storage, which has no storage classes",
            hint="use tiering.method=prefix (tiers as directories) for local tables",
        )
    return policy.method


# ---- ages ---------------------------------------------------------------------------------------------------


def _period_end(value: Any, transform: str) -> dt.datetime | None:
    """The end of a time partition's period, from its value as either format reports it."""
    if value is None:
        return None
    start: dt.datetime
    if isinstance(value, dt.datetime):
        start = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    elif isinstance(value, dt.date):
        start = dt.datetime.combine(value, dt.time(), tzinfo=dt.UTC)
    else:
        text = str(value)
        try:
            if transform == "hour" and len(text) == 13:  # Iceberg: 2026-01-01-05
                start = dt.datetime.strptime(text, "%Y-%m-%d-%H").replace(tzinfo=dt.UTC)
            elif len(text) == 4:
                start = dt.datetime(int(text), 1, 1, tzinfo=dt.UTC)
            elif len(text) == 7:
                start = dt.datetime.strptime(text, "%Y-%m").replace(tzinfo=dt.UTC)
            else:
                start = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
                start = start if start.tzinfo else start.replace(tzinfo=dt.UTC)
        except ValueError:
            return None
    try:
        if transform == "hour":
            return start + dt.timedelta(hours=1)
        if transform == "month":
            return (start.replace(day=1) + dt.timedelta(days=32)).replace(day=1)
        if transform == "year":
            return start.replace(year=start.year + 1, month=1, day=1)
        return start + dt.timedelta(days=1)  # day, and identity partitions on a date
    except (OverflowError, ValueError):  # a period of year 9999 (9999-12-31 as "no end" is common) ends past it
        return dt.datetime.max.replace(tzinfo=dt.UTC)


def _time_source(table: LakehouseTable, policy: TierPolicy) -> tuple[str, str | None, str | None]:
    """(time column, partition field name, transform) that dates a file."""
    definition = table.definition
    schema = definition.schema
    timed = [p for p in definition.partitioning if p.is_time]
    column = policy.column or (timed[0].column if timed else None)
    if column is None:
        dated = [
            p
            for p in definition.partitioning
            if p.transform == "identity"
            and schema.get_field_index(p.column) >= 0  # a nested source (s.city) is no top-level time column
            and (pa.types.is_date(schema.field(p.column).type) or pa.types.is_timestamp(schema.field(p.column).type))
        ]
        if not dated:
            raise InvalidInputError(
                f"table {table.name} has no time partition to tier by",
                hint=f"set the time column: lakehouse policy set {table.name} tiering.column=<column>",
            )
        column = dated[0].column
    if schema.get_field_index(column) < 0:
        raise InvalidInputError(f"tiering.column {column} is not a column of {table.name}")
    for p in definition.partitioning:
        if p.column == column and (p.is_time or p.transform == "identity"):  # not bucket/truncate of it
            return column, p.name, p.transform if p.transform != "identity" else "day"
    return column, None, None


def file_newest(f: DataFile, column: str, part_name: str | None, transform: str | None) -> dt.datetime | None:
    """The latest time a file's rows can hold (its partition's end, or the column's max statistic)."""
    if part_name is not None and transform is not None and part_name in f.partition:
        return _period_end(f.partition[part_name], transform)
    stat = f.stats.get(column)
    if stat is None or stat[1] is None:
        return None
    hi = stat[1]
    if isinstance(hi, dt.datetime):
        return hi if hi.tzinfo else hi.replace(tzinfo=dt.UTC)
    if isinstance(hi, dt.date):
        return dt.datetime.combine(hi, dt.time(), tzinfo=dt.UTC) + dt.timedelta(days=1)
    return None


# ---- plan ---------------------------------------------------------------------------------------------------


@dataclass
class TierFile:
    path: str
    size: int
    rows: int
    tier: str
    storage_class: str | None


@dataclass
class TierGroup:
    """The files of one partition that belong in one tier."""

    partition: dict[str, Any]
    target: str
    age_days: float | None
    files: list[TierFile] = field(default_factory=list)
    action: str = "none"
    """none | set-class | rewrite | rewrite+set-class"""

    @property
    def moving(self) -> list[TierFile]:
        return [f for f in self.files if f.tier != self.target]

    def as_dict(self) -> dict[str, Any]:
        moving = self.moving
        return {
            "partition": {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in self.partition.items()},
            "target": self.target,
            "age_days": None if self.age_days is None else round(self.age_days, 2),
            "files": len(self.files),
            "bytes": sum(f.size for f in self.files),
            "files_to_move": len(moving),
            "bytes_to_move": sum(f.size for f in moving),
            "current": sorted({f.tier for f in self.files}),
            "action": self.action,
        }


@dataclass
class TierPlan:
    table: str
    method: str
    policy: dict[str, Any]
    now: dt.datetime
    groups: list[TierGroup] = field(default_factory=list)
    undated_files: int = 0
    external_files: int = 0
    """Live files outside the table's location (Iceberg's ``add_files``): someone else's objects, never moved
    nor reclassed (their bill is their owner's)."""
    read_hot_from: str | None = None
    """Queries asked for data from this time on lately: partitions after it stay hot."""

    @property
    def moves(self) -> list[TierGroup]:
        return [g for g in self.groups if g.action != "none"]

    def as_dict(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "method": self.method,
            "policy": self.policy,
            "now": self.now.isoformat(timespec="seconds"),
            "undated_files": self.undated_files,
            "external_files": self.external_files,
            "read_hot_from": self.read_hot_from,
            "partitions_to_move": len(self.moves),
            "files_to_move": sum(len(g.moving) for g in self.moves),
            "bytes_to_move": sum(f.size for g in self.moves for f in g.moving),
            "groups": [g.as_dict() for g in self.groups],
        }


def plan_tiering(
    lh: Workspace, name: str, *, policy: TablePolicy | None = None, now: dt.datetime | None = None
) -> TierPlan:
    table = lh.table(name)
    pol = (policy or lh.policy(table.name)).tiering
    method = method_for(lh, table, pol)
    column, part_name, transform = _time_source(table, pol)
    at = now or _now()
    plan = TierPlan(str(table.name), method, pol.model_dump(), at)
    # partitions that queries asked for lately stay hot, whatever their age
    read_from: dt.datetime | None = None
    if pol.keep_read_hot:
        from lakehouse.units import parse_duration

        asked = lh.catalog.access_summary(table.name, since=at - parse_duration(pol.keep_read_hot))["time_from"]
        if column in asked:
            read_from = dt.datetime.fromisoformat(asked[column])
            plan.read_hot_from = read_from.isoformat()
    files = table.files() if table.snapshots() else []
    classes = (
        {o.path: o.storage_class for o in list_objects(table.location, table.ctx, known=[f.path for f in files])}
        if method == "storage-class"
        else {}
    )
    groups: dict[tuple[str, str], TierGroup] = {}
    # a file's age and tier come from its partition's period where the table is partitioned by time: worked out
    # once per partition (a listing shares one partition mapping among its files), not per file
    by_period: dict[int, tuple[Mapping[str, Any], dt.datetime | None, str]] = {}
    class_tiers: dict[str | None, str] = {}

    def dated(f: DataFile) -> tuple[dt.datetime | None, str]:
        newest = file_newest(f, column, part_name, transform)
        if newest is None:
            return None, ""
        return newest, "hot" if read_from is not None and newest > read_from else pol.tier_for(at - newest)

    root = table.location.rstrip("/") + "/"
    for pkey, f in partition_keys(files):
        if not f.path.startswith(root):
            plan.external_files += 1
            continue
        if part_name is not None and transform is not None and part_name in f.partition:
            held = by_period.get(id(f.partition))
            if held is None:
                held = by_period[id(f.partition)] = (f.partition, *dated(f))
            newest, target = held[1], held[2]
        else:
            newest, target = dated(f)
        if newest is None:
            plan.undated_files += 1
            continue
        age = at - newest
        cls = classes.get(f.path)
        if method == "storage-class":
            tier = class_tiers.get(cls) or class_tiers.setdefault(cls, _class_tier(pol, cls))
        else:
            tier = _prefix_tier(table, f.path)
        key = (pkey, target)
        if key not in groups:
            groups[key] = TierGroup(dict(f.partition), target, max(age.total_seconds(), 0) / 86400)
        groups[key].files.append(TierFile(f.path, f.size_bytes, f.row_count, tier, cls))
    for g in groups.values():
        moving = g.moving
        if not moving:
            continue
        if method == "prefix":
            g.action = "rewrite"
        elif g.target in pol.recompress and any(_prefix_tier(table, f.path) != g.target for f in moving):
            g.action = "rewrite+set-class"
        else:
            g.action = "set-class"
    plan.groups = sorted(groups.values(), key=lambda g: (partition_key(g.partition), g.target))
    return plan


# ---- run ----------------------------------------------------------------------------------------------------


@dataclass
class TierResult:
    plan: TierPlan
    dry_run: bool
    job_id: int | None = None
    files_moved: int = 0
    bytes_moved: int = 0
    files_rewritten: int = 0
    bytes_before_rewrite: int = 0
    bytes_after_rewrite: int = 0
    versions: list[int] = field(default_factory=list)
    aborted: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in self.__dict__.items() if k != "plan"}
        d["seconds"] = round(self.seconds, 3)
        return {**d, **self.plan.as_dict()}


def tier(
    lh: Workspace,
    name: str,
    *,
    dry_run: bool = True,
    policy: TablePolicy | None = None,
    now: dt.datetime | None = None,
    progress: Progress | None = None,
) -> TierResult:
    """Plan, and unless ``dry_run`` move every partition to the tier its age calls for."""
    plan = plan_tiering(lh, name, policy=policy, now=now)
    result = TierResult(plan, dry_run)
    if dry_run:
        return result
    table = lh.table(name)
    params = {"method": plan.method, **plan.policy}
    if not plan.moves:
        result.job_id = lh.catalog.record_job(
            "tier", table=table.name, params=params, state="skipped", metrics=_job_metrics(result), actor=lh.actor
        )
        return result
    pol = TierPolicy.model_validate(plan.policy)
    job = lh.catalog.start_job("tier", table=table.name, params=params, actor=lh.actor)
    result.job_id = job
    started = time.perf_counter()
    total = sum(len(g.moving) for g in plan.moves)
    try:
        for g in plan.moves:
            moving = g.moving
            if g.action in ("rewrite", "rewrite+set-class"):
                to_rewrite = [f for f in moving if _prefix_tier(table, f.path) != g.target or g.action == "rewrite"]
                new_paths = _rewrite_into_tier(lh, table, g, to_rewrite, pol, job, result)
                if new_paths is None:
                    continue
                if g.action == "rewrite+set-class":
                    for p in new_paths:
                        set_storage_class(p, pol.storage_classes[g.target], table.ctx)
                    for f in moving:
                        if f not in to_rewrite and set_storage_class(f.path, pol.storage_classes[g.target], table.ctx):
                            result.files_moved += 1
                            result.bytes_moved += f.size
            else:
                for f in moving:
                    # same key, same bytes: a file a concurrent commit removed meanwhile is simply gone
                    if set_storage_class(f.path, pol.storage_classes[g.target], table.ctx):
                        result.files_moved += 1
                        result.bytes_moved += f.size
            if progress:
                progress(result.files_moved + result.files_rewritten, total)
    except BaseException as e:
        result.seconds = time.perf_counter() - started
        lh.catalog.finish_job(job, state="failed", metrics=_job_metrics(result), error=error_text(e))
        raise
    result.seconds = time.perf_counter() - started
    lh.catalog.finish_job(
        job,
        state="committed",
        metrics=_job_metrics(result),
        error="; ".join(a["error"] for a in result.aborted) or None,
    )
    lh.catalog.update_table(table.name)
    return result


def _job_metrics(result: TierResult) -> dict[str, Any]:
    d = result.as_dict()
    d["groups"] = [g for g in d["groups"] if g["action"] != "none"]
    return d


def _rewrite_into_tier(
    lh: Workspace,
    table: LakehouseTable,
    group: TierGroup,
    files: Sequence[TierFile],
    pol: TierPolicy,
    job: int,
    result: TierResult,
) -> list[str] | None:
    """Rewrite files of one partition into the tier's directory and swap them in one commit; None when a
    concurrent commit removed an input (nothing changed; the next run plans again)."""
    from lakehouse.maintenance.compaction import _parquet_rows, rewrite_files

    if not table.capabilities.file_replace:
        raise UnsupportedOperationError(f"{table.format} tables cannot swap files; use tiering.method=storage-class")
    table.check_rewrite()  # before anything is written
    rows = sum(f.rows for f in files)
    size = sum(f.size for f in files)
    # a partition a Z-order clustered is clustered again on the way (a plain rewrite merged its files into large
    # row groups in no order, and the next maintain clustered it again), and its layout follows the files
    key = partition_key(group.partition)
    layout = lh.catalog.layouts(table.name).get(key)
    moved = {f.path for f in files}
    how, _, by = layout[0].partition(":") if layout and moved & layout[1] else ("", "", "")
    clustered = how in CURVES and bool(by)
    options = CompactionOptions(
        target_file_size=parse_size(pol.target_file_size),
        compression_level=pol.recompress.get(group.target),
        zorder=tuple(by.split(",")) if clustered else (),
        curve=how if clustered else "hilbert",
    )
    if group.target == "hot":
        base = table.data_directory(group.partition)
    else:
        parts = partition_path(group.partition)
        base = tier_prefix(table, group.target) + (f"/{parts}" if parts else "")
    out_dir = f"{base}/lh-{job}-{uuid.uuid4().hex[:8]}"
    committing = False
    try:
        written = rewrite_files(
            lh,
            table,
            [f.path for f in files],
            out_dir,
            options,
            bytes_per_row=size / rows if rows else 0.0,
            columns=table.file_columns(),
            expected_rows=rows,
        )
        if _parquet_rows(written, table.ctx) != rows:
            raise StorageError(f"tier rewrite of {table.name} {group.partition} produced a different row count")
        committing = True  # from here a failure may have committed: leave the files to `orphans`
        commit = table.replace_files(
            remove=[f.path for f in files],
            add=written,
            properties={"lakehouse.job": str(job), "lakehouse.operation": "tier", "lakehouse.tier": group.target},
        )
    except CommitConflictError as e:
        delete_tree(out_dir, table.ctx)
        result.aborted.append({"partition": group.as_dict()["partition"], "error": str(e)})
        return None
    except BaseException:
        if not committing:
            delete_tree(out_dir, table.ctx)
        raise
    result.versions.append(commit.version)
    if clustered and layout is not None:
        lh.catalog.set_layout(table.name, key, layout[0], sorted((layout[1] - moved) | set(written)))
    result.files_rewritten += len(files)
    result.bytes_before_rewrite += size
    result.bytes_after_rewrite += sum(o.size for o in list_objects(out_dir, table.ctx))
    result.files_moved += len(files)
    result.bytes_moved += size
    return written


# ---- cost ---------------------------------------------------------------------------------------------------


@dataclass
class TierUsage:
    objects: int = 0
    bytes: int = 0
    storage_classes: dict[str, int] = field(default_factory=dict)
    monthly_cost: float = 0.0


@dataclass
class TableCost:
    table: str
    format: str
    location: str
    method: str
    tiers: dict[str, TierUsage]
    objects: int
    bytes: int
    live_data_bytes: int
    live_rows: int
    monthly_cost: float
    all_hot_monthly_cost: float
    json_bytes_estimate: int | None
    currency: str
    external_data_files: int = 0
    external_data_bytes: int = 0
    """Live data files outside the location (Iceberg's ``add_files``): not on its listing, so not in ``bytes``
    nor priced here (they are billed where they live); ``live_data_bytes`` counts those inside only."""
    classes: dict[str, TierUsage] = field(default_factory=dict)
    """The same objects by storage class."""
    activity: dict[str, Any] = field(default_factory=dict)
    """Requests and retrievals of the last 30 days' jobs (:func:`lakehouse.maintenance.bill.activity`)."""
    projection: dict[str, Any] = field(default_factory=dict)
    """The next 12 months under the table's policies and without maintenance (:mod:`lakehouse.maintenance.bill`)."""

    @property
    def savings(self) -> float:
        return self.all_hot_monthly_cost - self.monthly_cost

    @property
    def compression_ratio(self) -> float | None:
        parquet = self.live_data_bytes + self.external_data_bytes  # the estimate covers every live row
        if not self.json_bytes_estimate or not parquet:
            return None
        return self.json_bytes_estimate / parquet

    def as_dict(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "format": self.format,
            "location": self.location,
            "method": self.method,
            "currency": self.currency,
            "objects": self.objects,
            "bytes": self.bytes,
            "live_data_bytes": self.live_data_bytes,
            "other_bytes": self.bytes - self.live_data_bytes,
            "external_data_files": self.external_data_files,
            "external_data_bytes": self.external_data_bytes,
            "live_rows": self.live_rows,
            "monthly_cost": round(self.monthly_cost, 6),
            "all_hot_monthly_cost": round(self.all_hot_monthly_cost, 6),
            "savings": round(self.savings, 6),
            "savings_pct": round(100 * self.savings / self.all_hot_monthly_cost, 2) if self.all_hot_monthly_cost else 0,
            "json_bytes_estimate": self.json_bytes_estimate,
            "json_to_parquet_ratio": None if self.compression_ratio is None else round(self.compression_ratio, 2),
            "tiers": {
                k: {
                    "objects": v.objects,
                    "bytes": v.bytes,
                    "storage_classes": v.storage_classes,
                    "monthly_cost": round(v.monthly_cost, 6),
                }
                for k, v in self.tiers.items()
            },
            "storage_classes": {
                c: {"objects": v.objects, "bytes": v.bytes, "monthly_cost": round(v.monthly_cost, 6)}
                for c, v in sorted(self.classes.items())
            },
            "activity_30d": self.activity,
            "projection_12m": self.projection,
        }


def table_cost(lh: Workspace, name: str, *, sample_rows: int = 10_000, bill: bool = True) -> TableCost:
    """Bytes and objects per tier under a table's location (everything: data, old versions, metadata), what
    they cost a month at the configured prices (:mod:`lakehouse.pricing`: each object billed at least its class's
    minimum object size, or a flat price), what keeping all of it hot would cost, the requests and retrievals of
    the last 30 days' jobs, and the next 12 months projected under the table's policies against no maintenance
    (:mod:`lakehouse.maintenance.bill`; ``bill=False`` leaves those two out).

    With storage classes (S3), an object's tier and price follow the class the store lists for it. With tier
    prefixes (local storage, a plain MinIO), the prefix says the tier, and it is priced as the tier's configured
    storage class: a MinIO store lists its default class for every object, and after an ILM transition the
    remote tier's own name, neither of which says what the bytes cost.

    The location is listed once, paged; the projection's plans share that listing."""
    from lakehouse.storage import shared_listings

    with shared_listings():
        return _table_cost(lh, name, sample_rows=sample_rows, bill=bill)


def _table_cost(lh: Workspace, name: str, *, sample_rows: int, bill: bool) -> TableCost:
    table = lh.table(name)
    pol = lh.policy(table.name).tiering
    method = method_for(lh, table, pol)
    from lakehouse.maintenance.bill import activity, projection

    prices = lh.settings.cost.price_table()
    hot_class = pol.storage_classes["hot"]
    files = table.files() if table.snapshots() else []
    objects = list_objects(table.location, table.ctx, known=[f.path for f in files])  # split at the files: see there
    tiers: dict[str, TierUsage] = {}
    classes: dict[str, TierUsage] = {}
    for o in objects:
        if method == "storage-class" and o.storage_class is not None:
            tier_name, cls = _class_tier(pol, o.storage_class), o.storage_class
        else:
            tier_name = _prefix_tier(table, o.path)
            cls = pol.storage_classes.get(tier_name, hot_class)
        usage = tiers.setdefault(tier_name, TierUsage())
        usage.objects += 1
        usage.bytes += o.size
        usage.storage_classes[cls] = usage.storage_classes.get(cls, 0) + o.size
        month = prices.object_month(cls, o.size)
        usage.monthly_cost += month
        by_class = classes.setdefault(cls, TierUsage())
        by_class.objects += 1
        by_class.bytes += o.size
        by_class.monthly_cost += month
    total = sum(o.size for o in objects)
    root = table.location.rstrip("/") + "/"
    cost = TableCost(
        table=str(table.name),
        format=table.format,
        location=table.location,
        method=method,
        tiers=dict(sorted(tiers.items(), key=lambda kv: TIERS.index(kv[0]) if kv[0] in TIERS else 99)),
        objects=len(objects),
        bytes=total,
        live_data_bytes=sum(f.size_bytes for f in files if f.path.startswith(root)),
        live_rows=sum(f.row_count for f in files),
        monthly_cost=sum(t.monthly_cost for t in tiers.values()),
        all_hot_monthly_cost=sum(prices.object_month(hot_class, o.size) for o in objects),
        json_bytes_estimate=_json_estimate(lh, table, files, objects, sample_rows),
        currency=lh.settings.cost.currency,
    )
    outside = [f for f in files if not f.path.startswith(root)]
    cost.external_data_files, cost.external_data_bytes = len(outside), sum(f.size_bytes for f in outside)
    cost.classes = classes
    if bill:
        cost.activity = activity(lh, name, prices, pol.storage_classes).as_dict()
        try:  # ages come from a time partition: a table without one has no projection, and says why
            cost.projection = projection(lh, name, cost, prices).as_dict() if files else {}
        except InvalidInputError as e:
            cost.projection = {"error": e.message}
    return cost


JSON_SAMPLE_FILES = 16


def _json_estimate(
    lh: Workspace, table: LakehouseTable, files: Sequence[DataFile], objects: Sequence[ObjectInfo], limit: int
) -> int | None:
    """Raw NDJSON size of the live rows, extrapolated from up to ``limit`` rows of at most
    :data:`JSON_SAMPLE_FILES` data files spread over the table (a table of 100,000 tiny files is not read
    file by file for an estimate)."""
    import orjson
    import pyarrow.parquet as pq

    from lakehouse.storage import split_location

    total_rows = sum(f.row_count for f in files)
    if not total_rows:
        return None
    sampled = 0
    size = 0
    declared = set(table.schema.names)
    step = max(1, len(files) // JSON_SAMPLE_FILES)
    for f in list(files)[::step][:JSON_SAMPLE_FILES]:
        filesystem, inner = split_location(f.path, table.ctx)
        try:
            with filesystem.open_input_file(inner) as fh:
                batch = next(pq.ParquetFile(fh).iter_batches(batch_size=limit - sampled), None)
        except (OSError, pa.ArrowException):  # an unreadable file is skipped in an estimate
            continue
        if batch is None:
            continue
        rows = pa.Table.from_batches([batch]).to_pylist()
        extra = {k: v for k, v in f.partition.items() if k in declared}  # Delta keeps these out of files
        for r in rows:
            r.update({k: v for k, v in extra.items() if k not in r})
            size += len(orjson.dumps({k: v for k, v in r.items() if k in declared}, default=str)) + 1
        sampled += len(rows)
        if sampled >= limit:
            break
    if not sampled:
        return None
    return int(size / sampled * total_rows)
