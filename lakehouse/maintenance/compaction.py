"""Compaction and Z-ordering: plan, then rewrite each picked partition and commit it atomically.

Delta uses delta-rs's own optimizer (``optimize.compact`` / ``optimize.z_order``) on the partitions the planner
picked. Iceberg has no optimizer in pyiceberg, so the rewrite is ours: DuckDB streams the input files into
new Parquet files near the target size (with Iceberg field ids, zstd, row groups of ~128k rows and min/max
statistics), sorting by a Morton (Z-order) key when asked; memory is bounded by DuckDB's ``memory_limit``
with spilling to a temporary directory. One Iceberg commit per partition then removes exactly the input files
and adds the new ones; a concurrent append survives, a concurrent removal of an input aborts that partition.
"""

from __future__ import annotations

import os
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from lakehouse.errors import CommitConflictError, LakehouseError, StorageError, UnsupportedOperationError
from lakehouse.maintenance.clustering import MAX_COLUMNS as MAX_CLUSTER_COLUMNS
from lakehouse.maintenance.clustering import check_curve, clustered, row_group_rows
from lakehouse.maintenance.planner import (
    CompactionOptions,
    CompactionPlan,
    PartitionPlan,
    layout_name,
    plan_compaction,
)
from lakehouse.maintenance.verify import verify
from lakehouse.storage import delete_tree, list_files
from lakehouse.tables.base import LakehouseTable

if TYPE_CHECKING:
    from lakehouse.core import Lakehouse


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
    lh: Lakehouse,
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
    planned_version = table.snapshot().version if table.snapshots() else None
    files = table.files(as_of=planned_version) if planned_version is not None else []
    partition_columns = {p.column for p in table.definition.partitioning if p.transform == "identity"}
    partition_columns |= {p.name for p in table.definition.partitioning}
    if set(options.zorder) & partition_columns:
        from lakehouse.errors import InvalidInputError

        raise InvalidInputError("Z-order by a partition column clusters nothing: every file holds one value of it")
    layouts = lh.catalog.layouts(table.name)
    plan = plan_compaction(
        str(table.name),
        files,
        options,
        partition_filter=partition_filter,
        layouts=layouts,
        engine="spark" if spark is not None else "local",
    )
    result = OptimizeResult(str(table.name), dry_run, plan)
    if spark is not None:
        result.engine = spark.describe()
    if dry_run or not plan.picked:
        return result
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
            result.partitions.extend(_rewrite_job(lh, table, plan.picked, options, job))
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
        lh.catalog.finish_job(job, state="failed", metrics=result.as_dict(), error=str(e) or type(e).__name__)
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
    lh: Lakehouse,
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
    now: dict[str, list[Any]] = {}
    for f in table.files():
        now.setdefault(partition_key(f.partition), []).append(f)
    for key, pr in results.items():
        before_paths = {f.path for f in planned[key].files} if key in planned else removed_paths
        mine = [f for f in now.get(key, []) if f.path in ours or f.path in before_paths]
        pr.files_after = len(mine) if pr.status == "committed" else pr.files_before
        pr.bytes_after = sum(f.size_bytes for f in mine) if pr.status == "committed" else pr.bytes_before
        if pr.status == "skipped":
            pr.error = "Spark found nothing to rewrite here"
        if pr.rows_out != pr.rows_in:
            raise StorageError(
                f"Spark rewrite of {table.name} {pr.partition} changed the row count {pr.rows_in} -> {pr.rows_out}"
            )
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


def _rewrite_job(
    lh: Lakehouse, table: LakehouseTable, parts: Sequence[PartitionPlan], options: CompactionOptions, job: int
) -> list[PartitionResult]:
    """Rewrite every picked partition, then swap all of them in ONE commit (one snapshot per job: manifest
    rewriting dominates the cost of an Iceberg commit). A concurrent removal of any input aborts the job and
    deletes what it wrote; concurrent appends are kept."""
    props = _commit_properties(options, job)
    written: dict[str, list[str]] = {}
    rows_written: dict[str, int] = {}
    dirs: list[str] = []
    results: list[PartitionResult] = []
    try:
        for part in parts:
            in_rows = sum(f.row_count for f in part.inputs)
            bpr = sum(f.size_bytes for f in part.inputs) / in_rows if in_rows else 0.0
            out_dir = f"{table.data_directory(part.partition)}/lh-{job}-{uuid.uuid4().hex[:8]}"
            dirs.append(out_dir)
            written[part.key] = rewrite_files(
                lh,
                table,
                [f.path for f in part.inputs],
                out_dir,
                options,
                bytes_per_row=bpr,
                columns=table.file_columns(),  # Delta keeps partition values in its log only
                expected_rows=in_rows,
            )
            rows_written[part.key] = _parquet_rows(written[part.key], lh.ctx)
            if rows_written[part.key] != in_rows:  # checked before anything is committed
                raise StorageError(f"rewrite of {table.name} {part.partition} produced a different row count")
        commit = table.replace_files(
            remove=[f.path for p in parts for f in p.inputs],
            add=[w for paths in written.values() for w in paths],
            properties=props,
            partitions={w: dict(p.partition) for p in parts for w in written[p.key]},
        )
    except CommitConflictError as e:
        for d in dirs:
            delete_tree(d, lh.ctx)  # referenced by no version: remove now
        return [
            PartitionResult(
                p.partition,
                len(p.files),
                sum(f.size_bytes for f in p.files),
                rows_in=sum(f.row_count for f in p.inputs),
                status="aborted",
                error=str(e),
            )
            for p in parts
        ]
    except BaseException:
        for d in dirs:
            delete_tree(d, lh.ctx)
        raise
    from lakehouse.maintenance.planner import partition_key

    after: dict[str, list[Any]] = {}
    for f in table.files(as_of=commit.version):  # as the commit left them: a writer may rewrite them since
        after.setdefault(partition_key(f.partition), []).append(f)
    for part in parts:
        ours = set(written[part.key])
        before_paths = {f.path for f in part.files}
        now = after.get(part.key, [])
        mine = [f for f in now if f.path in ours or f.path in before_paths]
        pr = PartitionResult(
            part.partition,
            files_before=len(part.files),
            bytes_before=sum(f.size_bytes for f in part.files),
            files_after=len(mine),
            bytes_after=sum(f.size_bytes for f in mine),
            rows_in=sum(f.row_count for f in part.inputs),
            # what the verified files hold: the table's own statistics may lack row counts (older writers)
            rows_out=rows_written[part.key],
            version=commit.version,
        )
        if options.zorder:  # the new run, and the clustered files an incremental run kept beside it
            inputs = {f.path for f in part.inputs}
            kept = {f.path for f in part.files if f.path not in inputs and f.path in {g.path for g in now}}
            lh.catalog.set_layout(table.name, part.key, layout_name(options), sorted(ours | kept))
        results.append(pr)
    return results


def rewrite_files(
    lh: Lakehouse,
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
) -> list[str]:
    """Stream ``inputs`` into new Parquet files under ``out_dir``; returns their paths.

    ``columns`` are the columns the new files hold (default: every column of the table). ``drop_rows`` (columns
    ``file``, ``row``: an input path as given and a 0-based row number in it) are left out (deduplication).
    With ``options.zorder`` the rows are clustered (:mod:`lakehouse.maintenance.clustering`) into row groups
    sized for the ``expected_rows`` of the inputs."""
    from lakehouse.sql import connect_duckdb

    with tempfile.TemporaryDirectory(prefix="lakehouse-spill-") as spill:
        con = connect_duckdb(
            lh.ctx,
            memory_limit=options.memory_budget,
            # every thread holds its own sort and write buffers: small budgets get one thread
            threads=1 if options.memory_budget < 256 * 1024 * 1024 else None,
            temp_directory=spill,
            extensions=("httpfs",) if lh.ctx.credentials is not None else (),
        )
        try:
            schema = table.schema
            # the columns come from the files themselves, never from directory names (hive_partitioning off);
            # columns a format keeps out of its files (Delta partition columns) are given as constants
            # union_by_name: files written before a column was added read it as NULL
            src = (
                "read_parquet(["
                + ", ".join(_s(_duck_path(p)) for p in inputs)
                + "], hive_partitioning = false, union_by_name = true"
                + (", filename = true, file_row_number = true)" if drop_rows is not None else ")")
            )
            consts = dict(constants or {})
            names = list(columns) if columns is not None else schema.names
            cols = ", ".join(
                f"{_constant(consts[c], schema.field(c).type)} AS {_q(c)}" if c in consts else _q(c) for c in names
            )
            rows = f"SELECT {cols} FROM {src}"
            if drop_rows is not None:
                con.register("lh_drop_rows", drop_rows)
                rows += (
                    " WHERE NOT EXISTS (SELECT 1 FROM lh_drop_rows d"
                    " WHERE d.file = filename AND d.row = file_row_number)"
                )
            query = (
                clustered(con, rows, options.zorder, schema, check_curve(options.curve), rows=expected_rows)
                if options.zorder
                else rows
            )
            ids = table.field_ids()
            field_ids = "{" + ", ".join(f"{_q(c)}: {ids[c]}" for c in names if c in ids) + "}"
            # files near the target size: rows per file from the inputs' bytes per row (zstd output is
            # usually no larger than the inputs), in whole row groups
            rows_per_file = max(1, int(options.target_file_size / bytes_per_row)) if bytes_per_row else 1 << 62
            ceiling = options.row_group_rows
            if options.zorder:  # small enough groups for statistics to skip most of them
                ceiling = row_group_rows(expected_rows, len(options.zorder), ceiling=ceiling)
            group = max(1, min(ceiling, rows_per_file))
            opts = [
                "FORMAT parquet",
                "COMPRESSION zstd",
                *([f"COMPRESSION_LEVEL {options.compression_level}"] if options.compression_level else []),
                f"ROW_GROUP_SIZE {group}",
                f"ROW_GROUPS_PER_FILE {max(1, rows_per_file // group)}",
                "FILENAME_PATTERN 'part-{uuid}'",
            ]
            if ids:
                opts.append(f"FIELD_IDS {field_ids}")
            if not out_dir.startswith(("s3://", "s3a://")):
                os.makedirs(os.path.dirname(_duck_path(out_dir)), exist_ok=True)  # DuckDB creates one level only
            con.execute(f"COPY ({query}) TO {_s(_duck_path(out_dir))} ({', '.join(opts)})")
            written = sorted(f.path for f in list_files(out_dir, output_ctx or lh.ctx) if f.path.endswith(".parquet"))
            # the rows written must be the rows read, value for value, before anything is committed
            out = (
                "read_parquet(["
                + ", ".join(_s(_duck_path(p)) for p in written)
                + "], hive_partitioning = false, union_by_name = true)"
                if written
                else f"(SELECT {cols} FROM {src} WHERE false)"
            )
            verify(
                con,
                read=f"({rows})",
                written=out,
                schema=schema,
                columns=names,
                what=f"rewrite of {table.name}",
            )
        except LakehouseError:
            raise
        except Exception as e:
            raise StorageError(f"rewrite of {table.name} failed: {' '.join(str(e).split())}") from e
        finally:
            con.close()
    # a rewrite that drops rows (dedup) can leave a file with none: it would carry no partition; remove it
    empty = [p for p in written if _parquet_rows([p], output_ctx or lh.ctx) == 0]
    if empty:
        from lakehouse.storage import delete_files

        delete_files(empty, output_ctx or lh.ctx)
    return [p for p in written if p not in empty]


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


def _duck_path(path: str) -> str:
    return path[len("file://") :] if path.startswith("file://") else path
