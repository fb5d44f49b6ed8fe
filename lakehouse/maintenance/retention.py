"""Retention: vacuum old versions, delete orphan files, expire old rows. Each plans first and deletes only when
asked to (``dry_run=False``); every real run is recorded in the job history with what it removed.

Rules that hold for both formats:

* **vacuum** keeps every version committed inside the retention window, the version that was current at the
  start of the window (so every point in time inside the window stays readable), the current version and the
  versions named with ``keep``. It deletes the files that only versions outside that set reference. Iceberg
  expires those snapshots from its metadata first; Delta keeps its commit log, so the catalog records the
  versions as expired and time travel to them names the retention.
* **orphans** deletes files under the table location that no version the table still records references,
  and only when they are older than the orphan age (a younger file may belong to a write in flight).
  The listing is taken before the references are read, and the references are read again just before
  deleting, so a file committed meanwhile is never deleted.
* **expire-data** deletes rows older than an age in one commit per step; partitions that are entirely older
  are dropped from the metadata without rewriting a file.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from lakehouse.errors import (
    InvalidInputError,
    LakehouseError,
    UnsupportedOperationError,
    VersionNotFoundError,
    error_text,
)
from lakehouse.expr import Compare, to_sql
from lakehouse.storage import ObjectInfo, delete_files, list_files, normalize_path
from lakehouse.tables.base import LakehouseTable, version_ranges
from lakehouse.units import format_duration, parse_age, parse_duration

if TYPE_CHECKING:
    from lakehouse.workspace import Workspace

Progress = Callable[[int, int], None]
"""Called with (done, total) while files are deleted."""


def _now() -> dt.datetime:
    from lakehouse import clock

    return clock.now()


def _files_dict(files: Sequence[ObjectInfo]) -> list[dict[str, Any]]:
    return [{"path": f.path, "size_bytes": f.size} for f in files]


def _delete(table: LakehouseTable, files: Sequence[ObjectInfo], progress: Progress | None) -> None:
    batch = 200
    for i in range(0, len(files), batch):
        delete_files([f.path for f in files[i : i + batch]], table.ctx)
        if progress:
            progress(min(i + batch, len(files)), len(files))


def _nested_locations(lh: Workspace, table: LakehouseTable, listing: Iterable[ObjectInfo] = ()) -> list[str]:
    """Locations of other tables inside this table's location (never this table's garbage): the catalog's, and
    any directory of ``listing`` (the location's) that holds a table of its own, registered here or not: a Delta
    log (``<dir>/_delta_log/``) or Iceberg metadata (``<dir>/metadata/*.metadata.json``)."""
    own = table.location.rstrip("/") + "/"
    others = {r.location.rstrip("/") + "/" for r in lh.list_tables()}
    for o in listing:
        if "/_delta_log/" not in o.path and not o.path.endswith(".metadata.json"):
            continue
        rel = o.path[len(own) :] if o.path.startswith(own) else ""
        parts = rel.split("/")
        for i in range(1, len(parts) - 1):
            if parts[i] == "_delta_log" or (
                parts[i] == "metadata" and i == len(parts) - 2 and parts[-1].endswith(".metadata.json")
            ):
                others.add(own + "/".join(parts[:i]) + "/")
                break
    return sorted(o for o in others if o != own and o.startswith(own))


def _checked_listing(lh: Workspace, table: LakehouseTable) -> list[ObjectInfo]:
    """List the table's location, refusing to go on when the listing does not contain the current version's
    files: the paths the table records are spelled differently from the listing (or live elsewhere), so
    "unreferenced" cannot be trusted.

    The current files are read *before* the listing: a writer that commits between the two adds files the
    listing may not have yet, which is no disagreement (and must not fail a job beside live ingestion)."""
    root = table.location.rstrip("/") + "/"
    # files a table keeps outside its location (Iceberg's add_files) are not in the listing, and retention never
    # deletes them: only the files under the location must be where the listing shows them
    current = {f.path for f in table.files() if f.path.startswith(root)} if table.snapshots() else set()
    listing = list_files(table.location, table.ctx, known=current)  # split at current files: ranges side by side
    listed = {f.path for f in listing}
    missing = sorted(current - listed)
    if missing:
        from lakehouse.errors import StorageError

        raise StorageError(
            f"{len(missing)} file(s) of the current version of {table.name} are not where the listing of "
            f"{table.location} shows files (first: {missing[0]}); nothing deleted",
            hint="the table's metadata and the store disagree about paths; check the table location and settings",
        )
    return listing


# ---- vacuum -------------------------------------------------------------------------------------------------


@dataclass
class VacuumPlan:
    table: str
    format: str
    retain: dt.timedelta
    cutoff: dt.datetime
    current_version: int | None
    retained_versions: list[int]
    expired_versions: list[int]
    files: list[ObjectInfo] = field(default_factory=list)

    @property
    def bytes(self) -> int:
        return sum(f.size for f in self.files)

    def as_dict(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "format": self.format,
            "retain": format_duration(self.retain),
            "cutoff": self.cutoff.isoformat(timespec="seconds"),
            "current_version": self.current_version,
            "retained_versions": self.retained_versions,
            "expired_versions": self.expired_versions,
            "files_to_delete": len(self.files),
            "bytes_to_delete": self.bytes,
            "files": _files_dict(self.files),
        }


@dataclass
class VacuumResult:
    plan: VacuumPlan
    dry_run: bool
    job_id: int | None = None
    versions_expired: int = 0
    files_deleted: int = 0
    bytes_deleted: int = 0
    files_kept: list[str] = field(default_factory=list)
    """Planned files that a version committed meanwhile references (not deleted)."""
    metadata_files_deleted: int = 0
    """Log/metadata files only the expired versions needed (Delta commits and checkpoints, Iceberg metadata)."""
    metadata_bytes_deleted: int = 0
    """Their bytes (``bytes_deleted`` counts data, delete and manifest files)."""
    metadata_error: str | None = None
    """Why the metadata was not trimmed, when that failed after the data files went."""
    manifests_merged: tuple[int, int] = (0, 0)
    """Iceberg: small data manifests of the current version before and after the merge that preceded the plan."""
    engine: dict[str, Any] = field(default_factory=lambda: {"engine": "local"})

    def as_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "job_id": self.job_id,
            "engine": self.engine,
            "versions_expired": self.versions_expired,
            "files_deleted": self.files_deleted,
            "bytes_deleted": self.bytes_deleted,
            "files_kept": self.files_kept,
            "metadata_files_deleted": self.metadata_files_deleted,
            "metadata_bytes_deleted": self.metadata_bytes_deleted,
            "metadata_error": self.metadata_error,
            "manifests_merged": {"before": self.manifests_merged[0], "after": self.manifests_merged[1]},
            **self.plan.as_dict(),
        }


MANIFEST_MERGE_MIN = 16
"""An applied vacuum first merges the current version's data manifests of a partition spec when at least this
many are below the target manifest size (Iceberg: every append writes one): planning and every reader then open
a few manifests instead of one per commit, and the old ones go with the versions that used them."""


def plan_vacuum(lh: Workspace, name: str, *, retain: str | dt.timedelta, keep: Sequence[int] = ()) -> VacuumPlan:
    """Which versions stay readable and which files only expired versions reference."""
    return _plan_vacuum(lh, lh.table(name), retain=retain, keep=keep)


def _plan_vacuum(
    lh: Workspace, table: LakehouseTable, *, retain: str | dt.timedelta, keep: Sequence[int] = ()
) -> VacuumPlan:
    window = parse_age(retain, "--retain")
    if window.total_seconds() < 0:
        raise InvalidInputError("--retain must not be negative")
    table.check_operation("vacuum")  # another catalog committing to the table: its files are not ours to judge
    cutoff = _now() - window
    already = table.expired.versions if table.expired else frozenset()
    snaps = [s for s in table.snapshots() if s.version not in already]
    plan = VacuumPlan(str(table.name), table.format, window, cutoff, None, [], [])
    if not snaps:
        return plan
    current = table.snapshot()
    plan.current_version = current.version
    retained = {s.version for s in snaps if s.timestamp >= cutoff} | {current.version}
    retained |= set(table.ref_versions().values())  # the heads of branches and tags (Iceberg protects them)
    try:
        retained.add(table.snapshot(cutoff).version)  # the state at the start of the window
    except VersionNotFoundError:
        pass
    versions = {s.version for s in snaps}
    for v in keep:
        if v not in versions:
            raise InvalidInputError(
                f"--keep {v}: table {table.name} has no readable version {v}",
                hint=f"readable versions: {version_ranges(versions)}",
            )
        retained.add(v)
    plan.retained_versions = sorted(retained)
    plan.expired_versions = sorted(versions - retained)
    if not plan.expired_versions and not already:
        return plan
    # files that only versions expired now or by an earlier vacuum reference (Delta's log keeps listing expired
    # versions: their files are planned until they are gone, also when nothing new expires)
    needed = table.version_paths(retained) | table.metadata_paths()
    candidates = table.version_paths(None) - needed
    if not candidates:
        # no file to look for, so no listing (a table of 100,000 files is 100 pages on S3) and no check of the
        # table's paths against it: that check guards the files lakehouse deletes, and it deletes none here
        return plan
    listing = {f.path: f for f in _checked_listing(lh, table)}
    plan.files = sorted((listing[p] for p in candidates if p in listing), key=lambda f: f.path)
    return plan


def vacuum(
    lh: Workspace,
    name: str,
    *,
    retain: str | dt.timedelta,
    keep: Sequence[int] = (),
    dry_run: bool = True,
    progress: Progress | None = None,
    engine: str = "local",
) -> VacuumResult:
    """Plan, and unless ``dry_run``: expire the versions, delete their files, record the job.

    ``engine="spark"``: Iceberg expires exactly the planned snapshots with Spark's ``expire_snapshots`` (which
    deletes the files only they reference); Delta runs delta-spark's ``VACUUM`` with the window (``keep`` is
    refused there: VACUUM knows only a window)."""
    from lakehouse.engines import check_engine

    spark = lh.spark() if check_engine(engine) == "spark" else None
    # opened once: each step below refreshes it to the newest version itself (a Delta open replays the log)
    table = lh.table(name)
    if spark is not None:
        spark.check(table, "vacuum")
        if keep and table.format == "delta":
            raise UnsupportedOperationError(
                "--keep with Delta on Spark: delta-spark's VACUUM keeps a time window only",
                hint="drop --keep, or run without --engine spark",
            )
        # before any version is recorded as expired (dry runs too): VACUUM's window must cover the orphan age
        spark.check_vacuum_window(table, parse_duration(retain), _orphan_age(lh, name))
    merged = (0, 0)
    if not dry_run and spark is None:  # first: the manifests it replaces are then the older versions' alone
        merged = table.rewrite_manifests(min_manifests=MANIFEST_MERGE_MIN)
    plan = _plan_vacuum(lh, table, retain=retain, keep=keep)
    result = VacuumResult(plan, dry_run)
    result.manifests_merged = merged
    if spark is not None:
        result.engine = spark.describe()
    if dry_run:
        return result
    params = {
        "retain": format_duration(plan.retain),
        "keep": list(keep),
        "cutoff": plan.cutoff.isoformat(),
        **result.engine,
    }
    if not plan.expired_versions and not plan.files:
        state = "committed" if merged != (0, 0) else "skipped"
        result.job_id = lh.catalog.record_job(
            "vacuum", table=table.name, params=params, state=state, metrics=_metrics(result), actor=lh.actor
        )
        if merged != (0, 0):
            lh.catalog.update_table(table.name)
        return result
    job = lh.catalog.start_job("vacuum", table=table.name, params=params, actor=lh.actor)
    result.job_id = job
    try:
        if spark is not None:
            _vacuum_on_spark(lh, table, plan, result, job)
            lh.catalog.finish_job(job, state="committed", metrics=_metrics(result))
            lh.catalog.update_table(table.name)
            return result
        if plan.expired_versions:
            since = table.current_since()  # before expiring: Iceberg forgets when expired snapshots were current
            ids = {s.version: s.snapshot_id for s in table.snapshots() if s.snapshot_id is not None}
            result.versions_expired = table.expire_versions(plan.expired_versions) or len(plan.expired_versions)
            # record before deleting: from here on those versions are gone for time travel
            lh.catalog.add_expired(
                table.name,
                plan.expired_versions,
                retention=format_duration(plan.retain),
                job_id=job,
                current_since=since,
                snapshot_ids=ids,
            )
        # what every version still readable needs now: those committed since planning, and an older one a
        # restore made current again meanwhile (versions an earlier vacuum expired need nothing: Delta's log
        # still lists them)
        table.expired = lh.catalog.expired(table.name)  # as recorded just now
        expired = set(plan.expired_versions) | (set(table.expired.versions) if table.expired else set())
        remaining = {s.version for s in table.snapshots() if s.version not in expired or s.is_current}
        needed = table.version_paths(remaining) | table.metadata_paths()
        doomed = [f for f in plan.files if f.path not in needed]
        result.files_kept = [f.path for f in plan.files if f.path in needed]
        _delete(table, doomed, progress)
        result.files_deleted = len(doomed)
        result.bytes_deleted = sum(f.size for f in doomed)
        if remaining and (expired or plan.expired_versions):
            _trim_metadata(table, min(remaining), plan.cutoff, result)
    except BaseException as e:
        lh.catalog.finish_job(job, state="failed", metrics=_metrics(result), error=error_text(e))
        raise
    lh.catalog.finish_job(job, state="committed", metrics=_metrics(result))
    lh.catalog.update_table(table.name)
    return result


def _trim_metadata(table: LakehouseTable, oldest: int, cutoff: dt.datetime, result: VacuumResult) -> None:
    """The format metadata only expired versions needed goes too (metadata stays O(readable versions)). The
    vacuum's deletions stand whatever happens here: a failure is reported with the result, not as the job's."""
    try:
        trimmed = table.trim_metadata(oldest, cutoff)
        result.metadata_files_deleted = len(trimmed)
        result.metadata_bytes_deleted = sum(f.size for f in trimmed)
    except LakehouseError as e:
        result.metadata_error = e.message


def _vacuum_on_spark(lh: Workspace, table: LakehouseTable, plan: VacuumPlan, result: VacuumResult, job: int) -> None:
    spark = lh.spark()
    expired = set(plan.expired_versions)
    since = table.current_since()
    retention = format_duration(plan.retain)
    if table.format == "iceberg":
        snaps = [s for s in table.snapshots() if s.version in expired and not s.is_current]
        result.engine.update(spark.expire(table, snaps))
        result.versions_expired = len(snaps)
        lh.catalog.add_expired(
            table.name,
            [s.version for s in snaps],
            retention=retention,
            job_id=job,
            current_since=since,
            snapshot_ids={s.version: s.snapshot_id for s in snaps if s.snapshot_id is not None},
        )
    else:  # Delta keeps its log: record the versions as expired first, then VACUUM removes their files
        lh.catalog.add_expired(table.name, plan.expired_versions, retention=retention, job_id=job, current_since=since)
        result.versions_expired = len(plan.expired_versions)
        gone = spark.vacuum_delta(table, plan.retain, orphan_age=_orphan_age(lh, str(table.name)))
        deleted, planned = {f.path for f in gone}, {f.path for f in plan.files}
        result.files_kept = [f.path for f in plan.files if f.path not in deleted]
        result.files_deleted = len(gone)
        result.bytes_deleted = sum(f.size for f in gone)
        result.engine["unplanned_files_deleted"] = len(deleted - planned)
        return
    left = {f.path for f in list_files(table.location, table.ctx)}
    gone = [f for f in plan.files if f.path not in left]
    result.files_kept = [f.path for f in plan.files if f.path in left]
    result.files_deleted = len(gone)
    result.bytes_deleted = sum(f.size for f in gone)


def _orphan_age(lh: Workspace, name: str) -> dt.timedelta:
    return parse_duration(lh.policy(name).retention.orphan_age)


def _metrics(result: VacuumResult | OrphanResult) -> dict[str, Any]:
    d = result.as_dict()
    d.pop("files", None)
    return d


# ---- orphans ------------------------------------------------------------------------------------------------


@dataclass
class OrphanPlan:
    table: str
    older_than: dt.timedelta
    files: list[ObjectInfo] = field(default_factory=list)
    young: list[ObjectInfo] = field(default_factory=list)
    """Unreferenced but younger than the age: kept (may belong to a write in flight)."""
    referenced_files: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "older_than": format_duration(self.older_than),
            "referenced_files": self.referenced_files,
            "orphans": len(self.files),
            "orphan_bytes": sum(f.size for f in self.files),
            "young_unreferenced": len(self.young),
            "files": _files_dict(self.files),
            "young": _files_dict(self.young),
        }


@dataclass
class OrphanResult:
    plan: OrphanPlan
    dry_run: bool
    job_id: int | None = None
    files_deleted: int = 0
    bytes_deleted: int = 0
    files_kept: list[str] = field(default_factory=list)
    engine: dict[str, Any] = field(default_factory=lambda: {"engine": "local"})

    def as_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "job_id": self.job_id,
            "engine": self.engine,
            "files_deleted": self.files_deleted,
            "bytes_deleted": self.bytes_deleted,
            "files_kept": self.files_kept,
            **self.plan.as_dict(),
        }


def plan_orphans(lh: Workspace, name: str, *, older_than: str | dt.timedelta) -> OrphanPlan:
    return _plan_orphans(lh, lh.table(name), older_than=older_than)


def _plan_orphans(lh: Workspace, table: LakehouseTable, *, older_than: str | dt.timedelta) -> OrphanPlan:
    age = parse_age(older_than, "--older-than")
    table.check_operation("vacuum")  # another catalog committing to the table: its files are not ours to judge
    plan = OrphanPlan(str(table.name), age)
    listing = _checked_listing(lh, table)  # before the references: a file committed after it is not in it
    nested = _nested_locations(lh, table, listing)
    referenced = table.version_paths(None) | table.metadata_paths()
    plan.referenced_files = len(referenced)
    now = time.time()
    for f in listing:
        if f.path in referenced or not table.garbage_candidate(f.path) or any(f.path.startswith(n) for n in nested):
            continue
        if f.mtime_s is not None and now - f.mtime_s >= age.total_seconds():
            plan.files.append(f)
        else:
            plan.young.append(f)
    return plan


def remove_orphans(
    lh: Workspace,
    name: str,
    *,
    older_than: str | dt.timedelta,
    dry_run: bool = True,
    progress: Progress | None = None,
    engine: str = "local",
) -> OrphanResult:
    """Plan, and unless ``dry_run``: delete the orphans, record the job.

    ``engine="spark"``: for Iceberg, Spark's ``DeleteOrphanFiles`` deletes those of the planned files that no
    snapshot references (Spark checks reachability again over all metadata). Delta's orphan removal is a
    listing and a delete with nothing for Spark to compute; it runs locally and the job record says so."""
    from lakehouse.engines import check_engine

    spark = lh.spark() if check_engine(engine) == "spark" else None
    table = lh.table(name)  # opened once: the references are read again (refreshed) right before deleting
    plan = _plan_orphans(lh, table, older_than=older_than)
    result = OrphanResult(plan, dry_run)
    if spark is not None:
        if table.format == "iceberg":
            spark.check(table, "orphan removal")
            result.engine = spark.describe()
        else:
            result.engine = {"engine": "local", "note": "Delta orphan removal runs locally (nothing to compute)"}
    if dry_run:
        return result
    params = {"older_than": format_duration(plan.older_than), **result.engine}
    if not plan.files:
        result.job_id = lh.catalog.record_job(
            "orphans", table=table.name, params=params, state="skipped", metrics=_metrics(result), actor=lh.actor
        )
        return result
    job = lh.catalog.start_job("orphans", table=table.name, params=params, actor=lh.actor)
    result.job_id = job
    try:
        referenced = table.version_paths(None) | table.metadata_paths()  # again, right before deleting
        doomed = [f for f in plan.files if f.path not in referenced]
        result.files_kept = [f.path for f in plan.files if f.path in referenced]
        if result.engine.get("engine") == "spark" and spark is not None:
            cutoff = time.time() - plan.older_than.total_seconds()
            deleted = {normalize_path(p) for p in spark.delete_orphans(table, doomed, cutoff)}
            result.files_kept += [f.path for f in doomed if f.path not in deleted]
            doomed = [f for f in doomed if f.path in deleted]
        else:
            _delete(table, doomed, progress)
        result.files_deleted = len(doomed)
        result.bytes_deleted = sum(f.size for f in doomed)
    except BaseException as e:
        lh.catalog.finish_job(job, state="failed", metrics=_metrics(result), error=error_text(e))
        raise
    lh.catalog.finish_job(job, state="committed", metrics=_metrics(result))
    return result


# ---- data expiry ---------------------------------------------------------------------------------------------


@dataclass
class ExpireDataResult:
    table: str
    column: str
    older_than: dt.timedelta
    cutoff: dt.datetime
    dry_run: bool
    rows_before: int = 0
    rows_to_delete: int = 0
    partitions_whole: list[dict[str, Any]] = field(default_factory=list)
    partitions_partial: list[dict[str, Any]] = field(default_factory=list)
    rows_deleted: int = 0
    rows_after: int | None = None
    files_removed: int = 0
    files_rewritten: int = 0
    commits: list[dict[str, Any]] = field(default_factory=list)
    job_id: int | None = None

    def as_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["older_than"] = format_duration(self.older_than)
        d["cutoff"] = self.cutoff.isoformat(timespec="seconds")
        return d


def _time_column(table: LakehouseTable, column: str | None) -> str:
    schema = table.schema
    if column:
        if schema.get_field_index(column) < 0:
            raise InvalidInputError(f"--column {column}: no such column in {table.name}")
        col = column
    else:
        timed = [p.column for p in table.definition.partitioning if p.is_time]
        timed += [
            p.column
            for p in table.definition.partitioning
            if p.transform == "identity"
            and schema.get_field_index(p.column) >= 0  # a nested source (s.city) is no top-level time column
            and _is_time(schema.field(p.column).type)
        ]
        if not timed:
            raise InvalidInputError(
                f"table {table.name} has no time partition to expire by", hint="name the time column with --column"
            )
        col = timed[0]
    if not _is_time(schema.field(col).type):
        raise InvalidInputError(f"column {col} of {table.name} is {schema.field(col).type}, not a date or timestamp")
    return col


def _is_time(t: pa.DataType) -> bool:
    return bool(pa.types.is_timestamp(t) or pa.types.is_date(t))


def expire_data(
    lh: Workspace,
    name: str,
    *,
    older_than: str | dt.timedelta,
    column: str | None = None,
    dry_run: bool = True,
    now: dt.datetime | None = None,
) -> ExpireDataResult:
    """Delete rows whose ``column`` is older than ``older_than`` at ``now`` (default: the clock; NULL times are
    kept)."""
    table = lh.table(name)
    age = parse_age(older_than, "--older-than")
    col = _time_column(table, column)
    cutoff = (now or _now()) - age
    t = table.schema.field(col).type
    literal: Any = cutoff.date() if pa.types.is_date(t) else (cutoff if t.tz else cutoff.replace(tzinfo=None))
    expr = Compare(col, "<", literal)
    result = ExpireDataResult(str(table.name), col, age, cutoff, dry_run)
    files = table.files()
    result.rows_before = sum(f.row_count for f in files)
    result.rows_to_delete = table.scan(filter=expr, columns=[col]).num_rows
    by_partition: dict[str, list[Any]] = {}
    for f in files:
        key = repr(sorted(f.partition.items()))
        by_partition.setdefault(key, []).append(f)
    for parts in by_partition.values():
        maxes = [f.stats.get(col, (None, None, None))[1] for f in parts]
        mins = [f.stats.get(col, (None, None, None))[0] for f in parts]
        partition = {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in parts[0].partition.items()}
        if all(m is not None and _lt(m, literal) for m in maxes) and all(
            f.stats.get(col, (None, None, 0))[2] == 0 for f in parts
        ):
            result.partitions_whole.append(partition)
        elif any(m is not None and _lt(m, literal) for m in mins):
            result.partitions_partial.append(partition)
    if dry_run:
        return result
    params = {"older_than": format_duration(age), "column": col, "cutoff": cutoff.isoformat()}
    if result.rows_to_delete == 0:
        result.rows_after = result.rows_before
        result.job_id = lh.catalog.record_job(
            "expire-data", table=table.name, params=params, state="skipped", metrics=result.as_dict(), actor=lh.actor
        )
        return result
    from lakehouse.governance.ops import digest_properties, predicate_digest

    table.check_delete()  # before the job: a refusal changes nothing
    digest = digest_properties(*predicate_digest(lh, to_sql(expr, table.schema)))
    job = lh.catalog.start_job("expire-data", table=table.name, params=params, actor=lh.actor)
    result.job_id = job
    try:
        res = table.delete_rows(
            expr, properties={"lakehouse.job": str(job), "lakehouse.operation": "expire-data", **digest}
        )
        result.commits.append(res.as_dict())
        if res.version is not None:
            with contextlib.suppress(LakehouseError):  # the clustered files it rewrote stay clustered
                lh.catalog.follow_rewrites(table.name, res.rewritten)
        result.rows_deleted = res.rows_deleted
        result.files_removed = res.files_removed
        result.files_rewritten = res.files_added
        result.rows_after = table.row_count()
    except BaseException as e:
        lh.catalog.finish_job(job, state="failed", metrics=result.as_dict(), error=error_text(e))
        raise
    lh.catalog.finish_job(job, state="committed", metrics=result.as_dict())
    lh.catalog.update_table(table.name)
    return result


def _lt(a: Any, b: Any) -> bool:
    if isinstance(a, dt.datetime) and isinstance(b, dt.datetime):
        if (a.tzinfo is None) != (b.tzinfo is None):
            a = a.replace(tzinfo=dt.UTC) if a.tzinfo is None else a
            b = b.replace(tzinfo=dt.UTC) if b.tzinfo is None else b
    elif isinstance(b, dt.datetime) and isinstance(a, dt.date):
        return dt.datetime.combine(a, dt.time(), tzinfo=b.tzinfo) < b
    try:
        return bool(a < b)
    except TypeError:
        return False
