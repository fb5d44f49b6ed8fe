"""Compaction and Z-ordering: plan, then rewrite the picked partitions and swap them in with one commit per job.

Both formats go through the one verified rewrite (a format's own optimizer, delta-rs's, commits by itself, before
anything could compare what it wrote with what it read): DuckDB streams each partition's input files into new
Parquet files near the target size (Iceberg field ids, zstd, row groups of ~128k rows, min/max statistics),
clustered along a Hilbert or Morton curve when Z-ordering, memory bounded by DuckDB's ``memory_limit`` with
spilling to a temporary directory, all partitions of a job on one DuckDB database. The fingerprint of the rows
read must equal that of the files written (:mod:`lakehouse.maintenance.verify`) before one commit removes
exactly the input files and adds the new ones; a concurrent append survives, a concurrent removal of an input
aborts the job.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from lakehouse.duck import FIELD_ID as _FIELD_ID
from lakehouse.duck import field_id as _field_id
from lakehouse.duck import is_list_type as _is_list_type
from lakehouse.duck import match_field_ids as _match
from lakehouse.errors import (
    CommitConflictError,
    CommitOutcomeUnknownError,
    CommitTimeoutError,
    ContentMismatchError,
    LakehouseError,
    StorageError,
    UnsupportedOperationError,
    VersionNotFoundError,
    error_text,
)
from lakehouse.maintenance.clustering import (
    GROUPS_PER_FILE,
    cell_shift,
    check_curve,
    curve_keys,
    row_group_rows,
)
from lakehouse.maintenance.clustering import MAX_COLUMNS as MAX_CLUSTER_COLUMNS
from lakehouse.maintenance.planner import (
    CompactionOptions,
    CompactionPlan,
    PartitionPlan,
    by_partition,
    layout_name,
    plan_compaction,
)
from lakehouse.maintenance.verify import verify
from lakehouse.schema import contains_type
from lakehouse.scratch import scratch_directory
from lakehouse.storage import StorageContext, delete_tree, list_files, schema_cache
from lakehouse.tables.base import LakehouseTable

if TYPE_CHECKING:
    import duckdb

    from lakehouse.workspace import Workspace

DICTIONARY_ENTRIES = 4096
"""Most distinct values per row group a rewritten column keeps dictionary-encoded (DuckDB's own default is a
fifth of the row group: 26,214 entries for groups of 131,072 rows). A column with more is written plain (and
zstd-compressed) without first filling a dictionary it then abandons: the COPY of
``benchmarks/verify_pass_bench.py`` took 14 % less time, and ``benchmarks/compaction_bench.py --rows-per-file
25000`` 12-14 % less in all and wrote 18 % fewer bytes.
Columns of few values (countries, flags, enums) stay dictionary-encoded, with DuckDB's Bloom filters."""


def dictionary_limit(group_rows: int) -> int:
    """DuckDB's ``DICTIONARY_SIZE_LIMIT`` for row groups of ``group_rows`` rows: its default, capped at
    :data:`DICTIONARY_ENTRIES`."""
    return max(1, min(DICTIONARY_ENTRIES, group_rows // 5))


@dataclass
class PartitionResult:
    partition: dict[str, Any]
    files_before: int
    bytes_before: int
    files_after: int = 0
    bytes_after: int = 0
    rows_in: int = 0
    rows_out: int = 0
    version: int | None = None
    status: str = "committed"
    error: str | None = None
    commit_attempts: int = 0
    """Commit attempts until it landed (each after the first rebased onto concurrent commits)."""
    commit_wait_seconds: float = 0.0
    """Time from its first lost commit race until it landed."""
    bytes_discarded: int = 0
    """Bytes written for it and deleted because its commit did not land (aborted)."""

    def as_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["partition"] = {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in self.partition.items()}
        return d


@dataclass
class OptimizeResult:
    table: str
    dry_run: bool
    plan: CompactionPlan
    partitions: list[PartitionResult] = field(default_factory=list)
    seconds: float = 0.0
    version: int | None = None
    job_id: int | None = None
    engine: dict[str, Any] = field(default_factory=lambda: {"engine": "local"})
    """Which engine ran the rewrite, with what it reported (Spark: files rewritten, manifests regrouped)."""

    @property
    def rows_in(self) -> int:
        return sum(p.rows_in for p in self.partitions)

    @property
    def rows_out(self) -> int:
        return sum(p.rows_out for p in self.partitions)

    def as_dict(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "dry_run": self.dry_run,
            "job_id": self.job_id,
            "seconds": round(self.seconds, 3),
            "version": self.version,
            "engine": self.engine,
            "files_before": sum(p.files_before for p in self.partitions),
            "files_after": sum(p.files_after for p in self.partitions),
            "bytes_before": sum(p.bytes_before for p in self.partitions),
            "bytes_after": sum(p.bytes_after for p in self.partitions),
            "rows_in": self.rows_in,
            "rows_out": self.rows_out,
            "partitions": [p.as_dict() for p in self.partitions],
            "plan": self.plan.as_dict(),
        }


def optimize(
    lh: Workspace,
    name: str,
    options: CompactionOptions,
    *,
    partition_filter: str | None = None,
    dry_run: bool = False,
    on_partition: Callable[[PartitionResult], None] | None = None,
    engine: str = "local",
) -> OptimizeResult:
    """Plan and (unless ``dry_run``) run a compaction / Z-order of one table; recorded in the job history.

    ``engine="spark"`` runs the rewrite of the planned partitions on Spark (see :mod:`lakehouse.engines.spark`);
    planning, the row-count check and the records are the same."""
    from lakehouse.engines import check_engine

    table = lh.table(name)
    spark = lh.spark() if check_engine(engine) == "spark" else None
    if spark is not None:
        spark.check(table, "compaction")
    if len(options.zorder) > MAX_CLUSTER_COLUMNS:
        from lakehouse.errors import InvalidInputError

        raise InvalidInputError(f"Z-order takes at most {MAX_CLUSTER_COLUMNS} columns; more dilute the clustering")
    if options.zorder:
        missing = [c for c in options.zorder if c not in table.schema.names]
        if missing:
            from lakehouse.errors import InvalidInputError

            raise InvalidInputError(f"--zorder column(s) {', '.join(missing)} not in table {table.name}")
        nested = [c for c in options.zorder if pa.types.is_nested(table.schema.field(c).type)]
        if nested:
            from lakehouse.errors import InvalidInputError

            raise InvalidInputError(
                f"cannot Z-order by the nested column(s) {', '.join(nested)} of table {table.name}",
                hint="Z-order by plain columns (numbers, times, dates, strings, booleans)",
            )
    try:  # the current version alone: a Delta table's history of every commit is not read for it
        planned_version: int | None = table.snapshot().version
    except VersionNotFoundError:  # no version yet
        planned_version = None
    pruning = None
    if partition_filter is not None:
        from lakehouse.expr import parse_filter

        pruning = parse_filter(partition_filter)
    files = table.files(as_of=planned_version, partitions=pruning) if planned_version is not None else []
    partition_columns = {p.column for p in table.definition.partitioning if p.transform == "identity"}
    partition_columns |= {p.name for p in table.definition.partitioning}
    if set(options.zorder) & partition_columns:
        from lakehouse.errors import InvalidInputError

        raise InvalidInputError("Z-order by a partition column clusters nothing: every file holds one value of it")
    layouts = lh.catalog.layouts(table.name)
    runs = lh.catalog.layout_runs(table.name)
    plan = plan_compaction(
        str(table.name),
        files,
        options,
        partition_filter=pruning,
        layouts=layouts,
        runs=runs,
        engine="spark" if spark is not None else "local",
    )
    result = OptimizeResult(str(table.name), dry_run, plan)
    if spark is not None:
        result.engine = spark.describe()
    if dry_run:
        return result
    if not plan.picked:  # a run that found nothing to do is in the history too, as skipped
        result.job_id = lh.catalog.record_job(
            "optimize",
            table=table.name,
            params={**_params(options, partition_filter), **result.engine},
            state="skipped",
            metrics={k: v for k, v in result.as_dict().items() if k != "plan"},
            actor=lh.actor,
        )
        return result
    table.check_operation("optimize")  # a table feature lakehouse cannot rewrite: refused before the job starts
    if spark is None:
        table.check_rewrite()  # before anything is written: what the rewrite cannot read right is refused by name
    params = {**_params(options, partition_filter), **result.engine}
    job = lh.catalog.start_job("optimize", table=table.name, params=params, actor=lh.actor)
    result.job_id = job
    started = time.perf_counter()
    try:
        if spark is not None:
            result.partitions.extend(_spark_rewrite(lh, table, plan.picked, options, job, result))
        elif table.capabilities.file_replace:
            # every format through the one verified rewrite: a format's own optimizer (delta-rs) commits by
            # itself, before anything could compare what it wrote with what it read
            _rewrite_job(
                lh,
                table,
                plan.picked,
                options,
                job,
                result.partitions,
                commit_timeout=lh.settings.commit_timeout_seconds,
            )
        else:
            raise UnsupportedOperationError(f"{table.format} tables cannot swap files: lakehouse cannot rewrite them")
        for pr in result.partitions:
            if pr.version is not None:
                result.version = pr.version
            if on_partition:
                on_partition(pr)
        if spark is not None:  # the job's last commit: Spark's manifest rewrite commits after the rewrite
            mine = [s.version for s in table.snapshots() if _is_job_commit(s, job)]  # in commit order
            result.version = mine[-1] if mine else result.version
    except BaseException as e:
        result.seconds = time.perf_counter() - started
        error = error_text(e)
        landed = [p for p in result.partitions if p.status == "committed"]
        if landed:  # they stay committed: a commit that landed is the job's outcome, whatever failed after it
            result.version = landed[-1].version
        if not isinstance(e, Exception):  # stopped: perhaps inside a commit, or right after one; the table says
            with contextlib.suppress(Exception):
                mine = [s.version for s in lh.table(table.name).snapshots() if _is_job_commit(s, job)]
                result.version = max(mine, default=result.version)
        if landed:
            error += (
                f" (after its commit landed: {len(landed)} partition(s) committed, the last as version "
                f"{result.version})"
            )
        elif result.version is not None:
            error += f" (after its commit landed, as version {result.version})"
        lh.catalog.finish_job(
            job,
            state="committed" if result.version is not None else "failed",
            metrics={k: v for k, v in result.as_dict().items() if k != "plan"},
            error=error,
        )
        raise
    result.seconds = time.perf_counter() - started
    failed = [p for p in result.partitions if p.status not in ("committed", "skipped")]
    lh.catalog.finish_job(
        job,
        state="failed" if failed and len(failed) == len(result.partitions) else "committed",
        metrics={k: v for k, v in result.as_dict().items() if k != "plan"},
        error="; ".join(p.error or "" for p in failed) or None,
    )
    lh.catalog.update_table(table.name)
    return result


def _params(options: CompactionOptions, partition_filter: str | None) -> dict[str, Any]:
    return {
        "target_file_size": options.target_file_size,
        "small_file_fraction": options.small_file_fraction,
        "min_input_files": options.min_input_files,
        "zorder": list(options.zorder),
        "partition": partition_filter,
    }


def _commit_properties(options: CompactionOptions, job: int) -> dict[str, str]:
    """What a rewrite commit records about itself (Delta commit info, Iceberg snapshot summary)."""
    props = {"lakehouse.job": str(job), "lakehouse.operation": "zorder" if options.zorder else "compact"}
    if options.zorder:
        props["lakehouse.zorder"] = ",".join(options.zorder)
    return props


def _spark_rewrite(
    lh: Workspace,
    table: LakehouseTable,
    parts: Sequence[PartitionPlan],
    options: CompactionOptions,
    job: int,
    result: OptimizeResult,
) -> list[PartitionResult]:
    """Rewrite the planned partitions on Spark in one commit, then measure that commit from the table itself:
    per partition, the rows of the files it removed must equal the rows of the files it added."""
    from lakehouse.maintenance.planner import partition_key

    spark = lh.spark()
    props = {**_commit_properties(options, job), "lakehouse.engine": "spark"}
    known = {s.version for s in table.snapshots()}
    result.engine.update(spark.rewrite(table, parts, options, props))
    commits = [s for s in table.snapshots() if s.version not in known and _is_job_commit(s, job)]
    planned = {p.key: p for p in parts}
    results = {
        p.key: PartitionResult(p.partition, len(p.files), sum(f.size_bytes for f in p.files), status="skipped")
        for p in parts
    }
    ours: set[str] = set()
    removed_paths: set[str] = set()
    for snap in commits:
        before = {f.path: f for f in table.files(as_of=snap.parent_version)} if snap.parent_version else {}
        after = {f.path: f for f in table.files(as_of=snap.version)}
        for path, f in before.items():
            if path not in after:
                pr = results.setdefault(partition_key(f.partition), PartitionResult(dict(f.partition), 0, 0))
                pr.rows_in += f.row_count
                pr.status, pr.version = "committed", snap.version
                removed_paths.add(path)
        for path, f in after.items():
            if path not in before:
                pr = results.setdefault(partition_key(f.partition), PartitionResult(dict(f.partition), 0, 0))
                pr.rows_out += f.row_count
                pr.status, pr.version = "committed", snap.version
                ours.add(path)
    now = by_partition(table.files())
    for key, pr in results.items():
        before_paths = {f.path for f in planned[key].files} if key in planned else removed_paths
        mine = [f for f in now.get(key, []) if f.path in ours or f.path in before_paths]
        pr.files_after = len(mine) if pr.status == "committed" else pr.files_before
        pr.bytes_after = sum(f.size_bytes for f in mine) if pr.status == "committed" else pr.bytes_before
        if pr.status == "skipped":
            pr.error = "Spark found nothing to rewrite here"
        if pr.rows_out != pr.rows_in:
            # the inputs' row counts include rows equality deletes remove (only reading tells), which Spark's
            # rewrite applied: then the table's rows before and after each commit must be equal
            if not _rows_kept(table, commits):
                raise StorageError(
                    f"Spark rewrite of {table.name} {pr.partition} changed the row count {pr.rows_in} -> {pr.rows_out}"
                )
            pr.rows_in = pr.rows_out
        if options.zorder and pr.status == "committed":
            lh.catalog.set_layout(table.name, key, layout_name(options, "spark"), sorted(ours))
    if commits and table.format == "iceberg":
        # regrouping manifests only speeds up planning; losing that race to a writer costs nothing but the
        # speed-up, so it never fails the job
        try:
            result.engine["manifests_rewritten"] = spark.rewrite_manifests(table, props)
        except LakehouseError as e:
            result.engine["manifests_rewritten"] = 0
            result.engine["manifests_note"] = f"manifests not regrouped: {e.message}"
    return list(results.values())


def _rows_kept(table: LakehouseTable, commits: Sequence[Any]) -> bool:
    """Whether each of ``commits`` left the table's (live) row count as its parent had it."""
    return all(
        c.parent_version is not None and table.row_count(as_of=c.parent_version) == table.row_count(as_of=c.version)
        for c in commits
    )


def _is_job_commit(snap: Any, job: int) -> bool:
    """Whether a commit carries job ``job``'s properties (Iceberg snapshot summary, Delta userMetadata)."""
    import json

    if snap.summary.get("lakehouse.job") == str(job):
        return True
    try:
        meta = json.loads(snap.summary.get("userMetadata") or "{}")
    except ValueError:
        return False
    return isinstance(meta, dict) and meta.get("lakehouse.job") == str(job)


@dataclass
class _Rewritten:
    """A partition rewritten and verified, waiting for its commit."""

    part: PartitionPlan
    result: PartitionResult
    out_dir: str
    written: list[str]
    rows: int


def _rewrite_job(
    lh: Workspace,
    table: LakehouseTable,
    parts: Sequence[PartitionPlan],
    options: CompactionOptions,
    job: int,
    results: list[PartitionResult],
    *,
    commit_timeout: float,
) -> None:
    """Rewrite the picked partitions one by one and commit them in groups, appending each one's result to
    ``results`` as it is done (so a failure still reports what committed before it).

    Each partition is rewritten and verified on its own. The partitions rewritten within ``options.
    commit_interval`` seconds share one commit (delta-rs's ``min_commit_interval``; Iceberg's partial progress
    commits file groups alike): a job of many small partitions commits once, a long one every interval, so a
    job killed half-way loses the rewrites since its last commit (at most an interval's and the one running)
    and leaves the table as its last commit left it. A conflict in a shared commit (a concurrent commit removed
    one of its inputs or deleted rows in them) commits its partitions one by one, so the conflict aborts only the
    partition it concerns. A commit that loses its race to concurrent appends rebases onto them without
    rewriting anything (see ``replace_files``); the job's commits together wait at most ``commit_timeout``
    seconds for concurrent writers, after which the partitions being committed and those not rewritten yet are
    aborted, saying why. An aborted partition's new files are deleted."""
    props = _commit_properties(options, job)
    earlier_runs = lh.catalog.layout_runs(table.name) if options.zorder else {}
    waited = 0.0
    gave_up: str | None = None
    columns = table.file_columns()  # Delta keeps partition values in its log only
    pending: list[_Rewritten] = []
    opened = 0.0  # when the first rewrite of the pending group was done

    def abort(group: Sequence[_Rewritten], error: str) -> None:
        for g in group:
            g.result.bytes_discarded = sum(f.size for f in list_files(g.out_dir, table.ctx)) if g.written else 0
            delete_tree(g.out_dir, table.ctx)  # referenced by no version: remove now
            g.result.status, g.result.error = "aborted", error

    def commit(group: Sequence[_Rewritten]) -> None:
        nonlocal waited, gave_up
        if not group:
            return
        try:
            landed = table.replace_files(
                remove=[f.path for g in group for f in g.part.inputs],
                add=[w for g in group for w in g.written],
                properties=props,
                partitions={w: dict(g.part.partition) for g in group for w in g.written},
                timeout=max(0.0, commit_timeout - waited),
            )
        except CommitConflictError as e:  # nothing committed: a conflict here, or the job's wait is spent
            if len(group) > 1 and not isinstance(e, CommitTimeoutError):
                for i, g in enumerate(group):  # the conflict concerns some of them: each on its own
                    if gave_up is not None:  # the job's wait ran out on one of them: the rest are not tried
                        abort(group[i:], f"not committed: {gave_up}")
                        return
                    try:
                        commit([g])
                    except BaseException:
                        rest = [h for h in group[i + 1 :] if h.result.status == "pending"]
                        abort(rest, "not committed: the job stopped at an error committing another partition")
                        raise
                return
            abort(group, str(e))
            if isinstance(e, CommitTimeoutError):
                waited = commit_timeout
                gave_up = (
                    f"the job gave up after its commits waited {commit_timeout:g} s for concurrent writers "
                    "(the commit_timeout setting)"
                )
            return
        except CommitOutcomeUnknownError:
            for g in group:
                g.result.status, g.result.error = "unknown", "the commit failed and whether it landed cannot be told"
            raise  # the files may be referenced: `lakehouse orphans` removes them if it did not land
        except Exception as e:
            for g in group:
                delete_tree(g.out_dir, table.ctx)
                g.result.status, g.result.error = "failed", error_text(e)
            raise
        except BaseException as e:
            # stopped (Ctrl-C, SIGTERM) inside the commit: it may have landed, so its files stay (`lakehouse
            # orphans` removes them if it did not); the job's record is told from the table's history
            for g in group:
                g.result.status, g.result.error = "unknown", f"{error_text(e)} during its commit"
            raise
        waited += landed.waited_seconds
        # should the process die now, its job is closed as committed, with this version (not as failed)
        lh.catalog.note_commit(
            job, {"version": landed.version, "partitions_committed": sum(1 for p in results if p.version) + len(group)}
        )
        # as the commit left the partitions: a writer may rewrite them since
        now = by_partition(table.files(as_of=landed.version))
        for g in group:
            pr, part = g.result, g.part
            ours = set(g.written)
            before_paths = {f.path for f in part.files}
            here = now.get(part.key, [])
            mine = [f for f in here if f.path in ours or f.path in before_paths]
            pr.status = "committed"
            pr.files_after = len(mine)
            pr.bytes_after = sum(f.size_bytes for f in mine)
            # what the verified files hold: the table's own statistics may lack row counts (older writers)
            pr.rows_out = g.rows
            pr.version = landed.version
            pr.commit_attempts = landed.attempts
            pr.commit_wait_seconds = landed.waited_seconds
            if options.zorder:  # the new run, and the clustered files an incremental run kept beside it
                inputs = {f.path for f in part.inputs}
                live = {f.path for f in here}
                kept = {f.path for f in part.files if f.path not in inputs and f.path in live}
                runs = (earlier_runs.get(part.key, frozenset()) & kept) | ours if kept else set()
                lh.catalog.set_layout(
                    table.name, part.key, layout_name(options), sorted(ours | kept), runs=sorted(runs)
                )

    with rewrite_connection(table, options) as con:  # one database for every partition of the job
        try:
            for part in parts:
                in_rows = sum(f.row_count for f in part.inputs)
                pr = PartitionResult(
                    part.partition,
                    files_before=len(part.files),
                    bytes_before=sum(f.size_bytes for f in part.files),
                    rows_in=in_rows,
                    status="pending",
                )
                results.append(pr)
                if gave_up is not None:
                    pr.status, pr.error = "aborted", f"not rewritten: {gave_up}"
                    continue
                bpr = sum(f.size_bytes for f in part.inputs) / in_rows if in_rows else 0.0
                out_dir = f"{_output_base(table, part.partition, part.inputs)}/lh-{job}-{uuid.uuid4().hex[:8]}"
                try:
                    written = rewrite_files(
                        lh,
                        table,
                        [f.path for f in part.inputs],
                        out_dir,
                        options,
                        bytes_per_row=bpr,
                        columns=columns,
                        expected_rows=in_rows,
                        con=con,
                        check=False,  # optimize checked the protocol before the job started
                    )
                    rows_written = _parquet_rows(written, table.ctx)
                    if rows_written != in_rows:  # checked before anything is committed
                        raise StorageError(f"rewrite of {table.name} {part.partition} produced a different row count")
                except BaseException as e:
                    delete_tree(out_dir, table.ctx)
                    pr.status, pr.error = "failed", error_text(e)
                    raise
                if not pending:
                    opened = time.monotonic()
                pending.append(_Rewritten(part, pr, out_dir, written, rows_written))
                if time.monotonic() - opened >= options.commit_interval:
                    group, pending = pending, []
                    commit(group)
        except BaseException:
            # what was rewritten and verified before the failure still commits (a failed commit leaves the
            # error that stopped the job as the one reported)
            group, pending = pending, []
            with contextlib.suppress(Exception):
                commit(group)
            raise
        group, pending = pending, []
        commit(group)


def _output_base(table: LakehouseTable, partition: Mapping[str, Any], inputs: Sequence[Any]) -> str:
    """Where a partition's rewrite goes: the tier directory all its inputs sit in (tiering moved them to
    ``tier-warm/`` or ``tier-cold/``), else the partition's data directory. Written back to the hot directory,
    the next tiering would move the files again, and the layout recorded by their paths (a Z-order) would be
    forgotten: maintain and the autopilot then clustered and moved the same partitions on every pass."""
    from lakehouse.maintenance.tiering import _prefix_tier, tier_prefix
    from lakehouse.tables.base import partition_path

    tiers = {_prefix_tier(table, f.path) for f in inputs}
    tier = next(iter(tiers)) if len(tiers) == 1 else "hot"
    if tier == "hot":
        return table.data_directory(partition)
    parts = partition_path(partition)
    return tier_prefix(table, tier) + (f"/{parts}" if parts else "")


@contextlib.contextmanager
def rewrite_connection(table: LakehouseTable, options: CompactionOptions) -> Iterator[duckdb.DuckDBPyConnection]:
    """The DuckDB connection rewrites run on: ``options.memory_budget`` with spilling to a temporary directory
    (removed on exit), and Parquet footers cached, so the rewrite's reads and its verification open each footer
    once. One per job: opening and closing a database costs about as much as rewriting a small partition."""
    from lakehouse.duck import connect_duckdb

    with scratch_directory("spill") as spill:
        con = connect_duckdb(
            table.ctx,
            memory_limit=options.memory_budget,
            # every thread holds its own sort and write buffers: small budgets get one thread
            threads=1 if options.memory_budget < 256 * 1024 * 1024 else None,
            temp_directory=spill,
            extensions=("httpfs",) if table.ctx.reaches_s3 else (),
            settings={
                "parquet_metadata_cache": True,
                # DuckDB keeps the bytes it read in its buffer pool (up to the budget) for the verification's
                # second read: worth it against an object store, a second copy of the page cache on a local
                # disk, where it made a compaction's peak RSS grow with the partition (benchmarks/scale_bench.py)
                "enable_external_file_cache": StorageContext.is_s3(table.location),
                # a Z-order's rows written in the curve's order: without it DuckDB's threads write the sorted
                # stream's chunks into row groups and files as each thread gets them, and every file (even a
                # row group) holds stretches from all over the curve, which file statistics cannot leave out
                **({"preserve_insertion_order": True} if options.zorder else {}),
            },
        )
        try:
            yield con
        finally:
            con.close()


def _keyed(
    con: duckdb.DuckDBPyConnection,
    stack: contextlib.ExitStack,
    rows: str,
    options: CompactionOptions,
    schema: pa.Schema,
    expected_rows: int,
    tag: str,
    key_column: str,
) -> tuple[str, int]:
    """The SQL of ``rows`` with each row's curve index as ``key_column`` (computed in batches into a temporary
    table, dropped when ``stack`` closes, and joined to the rows by position: the connection keeps insertion
    order for a Z-order, so both reads of ``rows`` yield the rows in the same order), and the index's bits."""
    keys = f"lh_curve_keys_{tag}"
    kept = con.execute("SELECT current_setting('preserve_insertion_order')").fetchone()
    if not (kept and kept[0]):  # what the positional join stands on: rewrite_connection sets it for a Z-order
        raise StorageError("a Z-order needs a DuckDB connection that keeps insertion order (rewrite_connection)")
    stack.callback(con.execute, f"DROP TABLE IF EXISTS {keys}")
    bits = curve_keys(
        con,
        rows,
        options.zorder,
        schema,
        check_curve(options.curve),
        keys_table=keys,
        key_column=key_column,
        rows=expected_rows,
    )
    return f"SELECT r.*, k.{key_column} FROM ({rows}) AS r POSITIONAL JOIN {keys} AS k", bits


def rewrite_files(
    lh: Workspace,
    table: LakehouseTable,
    inputs: Sequence[str],
    out_dir: str,
    options: CompactionOptions,
    *,
    bytes_per_row: float = 0.0,
    output_ctx: Any = None,
    constants: dict[str, Any] | None = None,
    columns: Sequence[str] | None = None,
    drop_rows: pa.Table | None = None,
    expected_rows: int = 0,
    con: duckdb.DuckDBPyConnection | None = None,
    check: bool = True,
) -> list[str]:
    """Stream ``inputs`` into new Parquet files under ``out_dir``; returns their paths.

    ``columns`` are the columns the new files hold (default: every column of the table). ``drop_rows`` (columns
    ``file``, ``row``: an input path as given and a 0-based row number in it) are left out (deduplication).
    With ``options.zorder`` the rows are clustered (:mod:`lakehouse.maintenance.clustering`) into row groups
    sized for the ``expected_rows`` of the inputs. ``con``: a connection from :func:`rewrite_connection` to run
    on (a job rewriting many partitions opens one); by default the rewrite opens and closes its own. The table's
    protocol is checked first, unless ``check`` is false (a job that has just checked it; the commit checks it
    again on the version it commits on)."""
    if check:
        table.check_operation("dedup" if drop_rows is not None else "optimize")  # before anything is written
    patterned = next((p for p in inputs if _PATTERN.search(_duck_path(p))), None)
    if patterned is not None:  # read_parquet would expand it, and read every other file its name matches too
        raise UnsupportedOperationError(
            f"cannot rewrite {patterned} of table {table.name}: its path holds a character DuckDB reads as a file "
            "name pattern (* ? [ ] { })",
            hint="rewrite the table's files with its own writer (Spark, delta-rs), which names files plainly",
        )
    with contextlib.ExitStack() as stack:
        stack.enter_context(schema_cache())  # the layout and the format's reader each read the inputs' footers
        if con is None:
            con = stack.enter_context(rewrite_connection(table, options))
        try:
            logical = list(columns) if columns is not None else table.schema.names
            # how the files hold the columns (Iceberg writers may rename them; ids tie them to the table's),
            # read under the table's names, group by group
            layout = file_layout(table, inputs, logical, output_ctx=None)
            schema = layout.schema
            consts = dict(constants or {})
            names = logical
            # a format that keeps some of a file's rows or values beside it (Iceberg: position deletes, identity
            # partition values kept in metadata only, files without field ids) reads its files itself
            own = table.rewrite_source(con, [_duck_path(p) for p in inputs], names, located=drop_rows is not None)
            parts = []
            for paths, select in layout.groups if own is None else [([], {})]:
                # the columns come from the files themselves, never from directory names (hive_partitioning
                # off); columns a format keeps out of its files (Delta partition columns) are given as
                # constants; union_by_name: files written before a column was added read it as NULL
                src = (
                    f"({own})"
                    if own is not None
                    else "read_parquet(["
                    + ", ".join(_s(_duck_path(p)) for p in paths)
                    + "], hive_partitioning = false, union_by_name = true"
                    + (", filename = true, file_row_number = true)" if drop_rows is not None else ")")
                )
                cols = ", ".join(
                    f"{_constant(consts[c], schema.field(c).type)} AS {_q(c)}"
                    if c in consts
                    else f"{select.get(c, _q(c))} AS {_q(c)}"
                    for c in names
                )
                part = f"SELECT {cols} FROM {src}"
                if drop_rows is not None:
                    part += (
                        " WHERE NOT EXISTS (SELECT 1 FROM lh_drop_rows d"
                        " WHERE d.file = filename AND d.row = file_row_number)"
                    )
                parts.append(part)
            if drop_rows is not None:
                con.register("lh_drop_rows", drop_rows)
            rows = parts[0] if len(parts) == 1 else " UNION ALL BY NAME ".join(f"({p})" for p in parts)
            field_ids = layout.field_ids
            stored = layout.stored

            def as_stored(query: str) -> str:
                if stored is None:
                    return query
                # written under the names the files use (Delta column mapping)
                return (
                    "SELECT "
                    + ", ".join(
                        f"{_relabel(_q(c), schema.field(c).type, stored.field(i).type)} AS {_q(stored.field(i).name)}"
                        for i, c in enumerate(names)
                    )
                    + f" FROM ({query})"
                )

            # files near the target size: rows per file from the inputs' bytes per row (zstd output is
            # usually no larger than the inputs), in whole row groups
            rows_per_file = max(1, int(options.target_file_size / bytes_per_row)) if bytes_per_row else 1 << 62
            ceiling = options.row_group_rows
            if options.zorder:  # small enough groups for statistics to skip most of them
                ceiling = row_group_rows(expected_rows, len(options.zorder), ceiling=ceiling)
            group = max(1, min(ceiling, rows_per_file))
            per_file = max(1, rows_per_file // group)
            if options.zorder:  # stretches of the curve a reader can leave out by file statistics
                per_file = min(per_file, GROUPS_PER_FILE)
            files_wanted = -(-expected_rows // (group * per_file)) if expected_rows else 1
            cells: list[tuple[str, int]] = []  # a Z-order cut into files: per cell of the curve, its rows
            if options.zorder and files_wanted > 1:
                # DuckDB writes the row groups of a COPY that starts new files as its threads produce them, so
                # each file (and row group) would hold stretches from all over the curve: the rows go into a
                # table in curve order once, then each cell of the curve's level nearest the files wanted (a
                # box of the clustering columns' quantile buckets) is written in order as a file of its own
                tag = uuid.uuid4().hex[:12]
                sorted_rows = f"lh_curve_{tag}"
                # the curve index between the sort and the files (not written), named apart from any column
                key_column = f"__lakehouse_curve_index_{tag}"
                keyed, key_bits = _keyed(con, stack, rows, options, schema, expected_rows, tag, key_column)
                stack.callback(con.execute, f"DROP TABLE IF EXISTS {sorted_rows}")
                con.execute(f"CREATE TEMP TABLE {sorted_rows} AS SELECT * FROM ({keyed}) ORDER BY {key_column}")
                # the table and each cell's rows are in curve order: _keyed checked that insertion order is kept
                shift = cell_shift(key_bits, len(options.zorder), files_wanted)
                found = con.execute(
                    f"SELECT {key_column} >> {shift}, count(*) FROM {sorted_rows} GROUP BY 1 ORDER BY 1"
                )
                for cell, count in found.fetchall():
                    lo, hi = int(cell) << shift, (int(cell) + 1) << shift
                    where = f"{key_column} >= {lo}" + (f" AND {key_column} < {hi}" if hi < 1 << 64 else "")
                    picked = f"SELECT * FROM {sorted_rows} WHERE {where}"
                    cells.append((as_stored(f"SELECT * EXCLUDE ({key_column}) FROM ({picked})"), int(count)))
            query = rows
            if options.zorder and not cells:  # one file: the rows in curve order
                tag = uuid.uuid4().hex[:12]
                key_column = f"__lakehouse_curve_index_{tag}"
                keyed, _bits = _keyed(con, stack, rows, options, schema, expected_rows, tag, key_column)
                query = f"SELECT * EXCLUDE ({key_column}) FROM ({keyed}) ORDER BY {key_column}"
            query = as_stored(query)
            opts = [
                "FORMAT parquet",
                "COMPRESSION zstd",
                *([f"COMPRESSION_LEVEL {options.compression_level}"] if options.compression_level else []),
                f"ROW_GROUP_SIZE {group}",
                f"ROW_GROUPS_PER_FILE {per_file}",
                "FILENAME_PATTERN 'part-{uuid}'",
            ]
            if field_ids:
                opts.append(f"FIELD_IDS {field_ids}")
            if not out_dir.startswith(("s3://", "s3a://")):
                os.makedirs(os.path.dirname(_duck_path(out_dir)), exist_ok=True)  # DuckDB creates one level only

            def write(dictionary: int) -> list[str]:
                options = ", ".join([*opts, f"DICTIONARY_SIZE_LIMIT {dictionary}"])
                if cells:  # one file per cell, its row groups in curve order (a COPY to one file keeps the order)
                    # a COPY to one file creates no directory (made again after a retry's delete_tree)
                    if not out_dir.startswith(("s3://", "s3a://")):
                        os.makedirs(_duck_path(out_dir), exist_ok=True)
                    one = ", ".join(
                        o
                        for o in [*opts, f"DICTIONARY_SIZE_LIMIT {dictionary}"]
                        if not o.startswith(("ROW_GROUPS_PER_FILE", "FILENAME_PATTERN"))
                    )
                    for n, (cell, count) in enumerate(cells):
                        if count <= 2 * group * per_file:
                            target = f"{out_dir.rstrip('/')}/part-{uuid.uuid4()}.parquet"
                            con.execute(f"COPY ({cell}) TO {_s(_duck_path(target))} ({one})")
                        else:  # a cell the skew filled (a column of one value): files of the target size
                            target = f"{out_dir.rstrip('/')}/cell-{n}"
                            con.execute(f"COPY ({cell}) TO {_s(_duck_path(target))} ({options})")
                else:
                    con.execute(f"COPY ({query}) TO {_s(_duck_path(out_dir))} ({options})")
                done = sorted(
                    f.path for f in list_files(out_dir, output_ctx or table.ctx) if f.path.endswith(".parquet")
                )
                # the rows written must be the rows read, value for value, before anything is committed
                out = (
                    "read_parquet(["
                    + ", ".join(_s(_duck_path(p)) for p in done)
                    + "], hive_partitioning = false, union_by_name = true)"
                    if done
                    else f"(SELECT * FROM ({rows}) WHERE false)"
                )
                if stored is not None and done:  # read back under the table's names
                    renamed = ", ".join(
                        f"{_relabel(_q(stored.field(i).name), stored.field(i).type, schema.field(c).type)} AS {_q(c)}"
                        for i, c in enumerate(names)
                    )
                    out = f"(SELECT {renamed} FROM {out})"
                verify(
                    con, read=f"({rows})", written=out, schema=schema, columns=names, what=f"rewrite of {table.name}"
                )
                return done

            try:
                written = write(dictionary_limit(group))
            except ContentMismatchError:
                if not any(contains_type(schema.field(c).type, pa.types.is_floating) for c in names):
                    raise
                # DuckDB's Parquet dictionaries hold -0.0 and 0.0 as one value (whichever came first in the row
                # group): write once more without dictionaries
                delete_tree(out_dir, output_ctx or table.ctx)
                written = write(0)
        except LakehouseError:
            raise
        except Exception as e:
            raise StorageError(f"rewrite of {table.name} failed: {' '.join(str(e).split())}") from e
    # a rewrite that drops rows (dedup) can leave a file with none: it would carry no partition; remove it
    empty = [p for p in written if _parquet_rows([p], output_ctx or table.ctx) == 0]
    if empty:
        from lakehouse.storage import delete_files

        delete_files(empty, output_ctx or table.ctx)
    return [p for p in written if p not in empty]


@dataclass(frozen=True)
class FileLayout:
    """How a rewrite's input files hold the table's columns."""

    groups: list[tuple[list[str], dict[str, str]]]
    """Input files that store the columns alike, each group with, per table column, the SQL expression that
    reads it from those files under the table's names (a plain column reference, or one that renames what a
    writer renamed)."""
    schema: pa.Schema
    """The declared columns."""
    field_ids: str
    """DuckDB's FIELD_IDS option for the files written, every nested field included (empty when the format
    has no field ids)."""
    stored: pa.Schema | None = None
    """The columns as the files written must name them (nested fields too), where that is not the table's names
    (Delta column mapping: physical names); None: the table's names."""


def file_layout(
    table: LakehouseTable, inputs: Sequence[str], columns: Sequence[str], *, output_ctx: Any = None
) -> FileLayout:
    """The layout of ``columns`` in the input files, checked before anything is written.

    Iceberg resolves columns by field id, and its writers may store a column under another name than the
    table's (pyiceberg writes ``first name`` as ``first_x20name``, nested fields too; lakehouse's rewrites
    write the table's names): files are grouped by how they store the columns, each group read under the
    table's names, and the files written give every field, nested ones included, its id. Column types DuckDB
    cannot carry exactly (see :func:`lakehouse.sql.duck_inexact`) are refused, naming the column.

    Raises:
        UnsupportedOperationError: naming the column and why.
    """
    from lakehouse.errors import UnsupportedOperationError
    from lakehouse.sql import duck_inexact

    declared = table.schema
    for c in columns:
        why = duck_inexact(declared.field(c).type)
        if why:
            raise UnsupportedOperationError(f"cannot rewrite column {c!r} of table {table.name}: {why}")
    schema = pa.schema([declared.field(c) for c in columns])
    stored_schema = table.file_schema()
    if stored_schema is not None:  # the files name columns and nested fields otherwise (Delta column mapping)
        physical = {f.name: pf for f, pf in zip(declared, stored_schema, strict=True)}
        present = {n for path in inputs for n in _file_schema(path, output_ctx or table.ctx).names}
        renamed = {
            c: _relabel(_q(physical[c].name), physical[c].type, declared.field(c).type)
            if physical[c].name in present
            else _null(declared.field(c).type)
            for c in columns
        }
        ids_option = "{" + ", ".join(f"{_q(physical[c].name)}: {_ids_option(physical[c])}" for c in columns) + "}"
        return FileLayout([(list(inputs), renamed)], schema, ids_option, pa.schema([physical[c] for c in columns]))
    ids = table.field_ids()
    if not ids:  # by name; a column no input file holds (added since) reads as NULL of its type
        present = {n for path in inputs for n in _file_schema(path, output_ctx or table.ctx).names}
        by_name = {c: _q(c) if c in present else _null(declared.field(c).type) for c in columns}
        return FileLayout([(list(inputs), by_name)], schema, "")
    grouped: dict[str, tuple[list[str], pa.Schema]] = {}
    for path in inputs:
        stored = _file_schema(path, output_ctx or table.ctx)
        grouped.setdefault(stored.to_string(show_field_metadata=True), ([], stored))[0].append(path)
    groups: list[tuple[list[str], dict[str, str]]] = []
    id_of: dict[str, str] = {}
    for paths, stored_schema in grouped.values():
        by_id = {_field_id(f): f for f in stored_schema if _field_id(f) is not None}
        select: dict[str, str] = {}
        for c in columns:
            f = declared.field(c)
            stored = by_id.get(ids[c]) if c in ids else None
            if stored is None:  # a column these files do not hold (added since): NULL of its type
                select[c] = _null(f.type)
                if c in ids:
                    id_of.setdefault(c, str(ids[c]))
                continue
            with_ids, rename = _match(f.type, stored.type, f"{table.name}.{c}")
            select[c] = rename(_q(stored.name))
            column = pa.field(c, with_ids, metadata={_FIELD_ID: str(ids[c])})
            if c not in id_of or id_of[c] == str(ids[c]):  # the first group that holds it has its nested ids
                id_of[c] = _ids_option(column)
        groups.append((paths, select))
    field_ids = "{" + ", ".join(f"{_q(c)}: {id_of[c]}" for c in columns if c in id_of) + "}"
    return FileLayout(groups, schema, field_ids)


def _null(t: pa.DataType) -> str:
    from lakehouse.sql import duck_type

    return f"CAST(NULL AS {duck_type(t)})"


def _file_schema(path: str, ctx: Any) -> pa.Schema:
    import pyarrow.parquet as pq

    from lakehouse.storage import cached_schema, split_location

    def read() -> pa.Schema:
        filesystem, inner = split_location(path, ctx)
        with filesystem.open_input_file(inner) as fh:
            return pq.ParquetFile(fh).schema_arrow

    return cached_schema(path, read)


def _ids_option(f: pa.Field) -> str:
    """DuckDB's FIELD_IDS value of one column: its id, or ``{__duckdb_field_id: id, child: ...}``."""
    fid = _field_id(f)
    t = f.type
    children: list[tuple[str, pa.Field]] = []
    if pa.types.is_struct(t):
        children = [(t.field(i).name, t.field(i)) for i in range(t.num_fields)]
    elif pa.types.is_map(t):
        children = [("key", t.key_field), ("value", t.item_field)]
    elif _is_list_type(t):
        children = [("element", t.value_field)]
    parts = [f"{_q(name)}: {_ids_option(child)}" for name, child in children if _has_ids(child)]
    if not parts:
        return str(fid) if fid is not None else "{}"
    head = [f"__duckdb_field_id: {fid}"] if fid is not None else []
    return "{" + ", ".join(head + parts) + "}"


def _has_ids(f: pa.Field) -> bool:
    if _field_id(f) is not None:
        return True
    t = f.type
    if pa.types.is_struct(t):
        return any(_has_ids(t.field(i)) for i in range(t.num_fields))
    if pa.types.is_map(t):
        return _has_ids(t.key_field) or _has_ids(t.item_field)
    if _is_list_type(t):
        return _has_ids(t.value_field)
    return False


def _relabel(expr: str, source: pa.DataType, target: pa.DataType, depth: int = 0) -> str:
    """SQL turning ``expr`` of type ``source`` into ``target``, the same type under other nested field names
    (DuckDB casts structs by name)."""
    if pa.types.is_struct(target):
        kids = [(source.field(i), target.field(i)) for i in range(target.num_fields)]
        parts = [f"{_q(t.name)} := {_relabel(f'({expr}).{_q(s.name)}', s.type, t.type, depth + 1)}" for s, t in kids]
        if all(
            s.name == t.name and p.endswith(f"({expr}).{_q(s.name)}") for (s, t), p in zip(kids, parts, strict=True)
        ):
            return expr
        return f"CASE WHEN ({expr}) IS NULL THEN NULL ELSE struct_pack({', '.join(parts)}) END"
    if pa.types.is_map(target):
        var = f"lh_kv{depth}"
        key = _relabel(f"{var}.key", source.key_type, target.key_type, depth + 1)
        value = _relabel(f"{var}.value", source.item_type, target.item_type, depth + 1)
        if key == f"{var}.key" and value == f"{var}.value":
            return expr
        return (
            f"map_from_entries(list_transform(map_entries({expr}), lambda {var}: "
            f"struct_pack(key := {key}, value := {value})))"
        )
    if pa.types.is_list(target) or pa.types.is_large_list(target) or pa.types.is_fixed_size_list(target):
        var = f"lh_e{depth}"
        inner = _relabel(var, source.value_type, target.value_type, depth + 1)
        return expr if inner == var else f"list_transform({expr}, lambda {var}: {inner})"
    return expr


def _constant(value: Any, t: pa.DataType) -> str:
    """A typed SQL constant of a partition value."""
    from lakehouse.sql import duck_type

    duck = duck_type(t)
    if value is None:
        return f"CAST(NULL AS {duck})"
    text = value.isoformat() if hasattr(value, "isoformat") else str(value)
    return f"CAST({_s(text)} AS {duck})"


def _parquet_rows(paths: Sequence[str], ctx: Any) -> int:
    import pyarrow.parquet as pq

    from lakehouse.storage import split_location

    total = 0
    for p in paths:
        filesystem, path = split_location(p, ctx)
        with filesystem.open_input_file(path) as fh:
            total += pq.ParquetFile(fh).metadata.num_rows
    return total


def _q(ident: str) -> str:
    return '"' + ident.replace('"', '""') + '"'


def _s(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


_PATTERN = re.compile(r"[*?\[\]{}]")
"""Characters of DuckDB's file name patterns (``read_parquet`` expands a path holding one)."""


def _duck_path(path: str) -> str:
    return path[len("file://") :] if path.startswith("file://") else path
