"""Deduplication: one row per key, the latest by an order column (or any one of exact duplicates).

DuckDB ranks every live row by key over the table's current files (``filename`` and ``file_row_number``
identify a row), so the plan knows exactly which rows lose. Only the files that hold a duplicated key are
rewritten (every other row of them copied as is), and the swap is one commit for the whole table: the
losers disappear and nothing else changes. Concurrent appends are kept (and deduplicated by the next run);
a concurrent removal of a rewritten file aborts the run, which deletes what it wrote, as does any other
failure before the commit (or of a commit that the table's history shows did not land).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from lakehouse.errors import CommitConflictError, InvalidInputError, StorageError, UnsupportedOperationError, error_text
from lakehouse.maintenance.compaction import _duck_path, _q, _s
from lakehouse.maintenance.planner import CompactionOptions, by_partition, partition_key
from lakehouse.scratch import scratch_directory
from lakehouse.storage import delete_tree
from lakehouse.tables.base import DataFile, LakehouseTable

if TYPE_CHECKING:
    from lakehouse.workspace import Workspace


@dataclass
class DedupPartition:
    partition: dict[str, Any]
    files: int
    rows: int
    duplicates: int
    keys: int

    def as_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["partition"] = {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in self.partition.items()}
        return d


@dataclass
class DedupPlan:
    table: str
    keys: list[str]
    order: str | None
    version: int | None
    rows: int = 0
    duplicate_rows: int = 0
    duplicated_keys: int = 0
    partitions: list[DedupPartition] = field(default_factory=list)
    files: list[DataFile] = field(default_factory=list, repr=False)
    losers: pa.Table | None = field(default=None, repr=False)

    def as_dict(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "keys": self.keys,
            "order": self.order,
            "version": self.version,
            "rows": self.rows,
            "duplicate_rows": self.duplicate_rows,
            "duplicated_keys": self.duplicated_keys,
            "files_to_rewrite": len(self.files),
            "partitions": [p.as_dict() for p in self.partitions],
        }


@dataclass
class DedupResult:
    plan: DedupPlan
    dry_run: bool
    job_id: int | None = None
    version: int | None = None
    rows_in: int = 0
    rows_out: int = 0
    rows_removed: int = 0
    files_removed: int = 0
    files_added: int = 0
    seconds: float = 0.0
    status: str = "planned"
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in self.__dict__.items() if k != "plan"}
        d["seconds"] = round(self.seconds, 3)
        return {**self.plan.as_dict(), **d}


def _check(table: LakehouseTable, keys: Sequence[str], order: str | None) -> None:
    names = table.schema.names
    if not keys:
        raise InvalidInputError("give the key columns: --key col[,col]")
    twice = sorted({k for k in keys if list(keys).count(k) > 1})
    if twice:
        raise InvalidInputError(f"key column(s) {', '.join(twice)} given more than once", hint="name each key once")
    unknown = [c for c in [*keys, *([order] if order is not None else [])] if c not in names]  # "" too
    if unknown:
        raise InvalidInputError(f"unknown column(s) {', '.join(map(repr, unknown))} in table {table.name}")
    named = [*keys, *([order] if order is not None else [])]
    nested = [c for c in named if pa.types.is_nested(table.schema.field(c).type)]
    if nested:
        raise InvalidInputError(
            f"{', '.join(nested)} of {table.name} hold nested values (struct, list or map): keys and the order must "
            "be plain columns",
            hint="dedup by the plain columns that identify a row",
        )
    if not table.capabilities.file_replace:
        raise UnsupportedOperationError(f"{table.format} tables cannot swap files, so lakehouse cannot dedup them")
    table.check_rewrite()  # before planning: a plan over files it cannot read right would name the wrong rows


def plan_dedup(
    lh: Workspace, name: str, *, keys: Sequence[str], order: str | None = None, memory_budget: int = 1 << 30
) -> DedupPlan:
    """Find the rows that lose: for each key with more than one row, all but the first by ``order`` descending
    (NULL orders last), then by file and row (so exact duplicates keep the oldest copy)."""
    from lakehouse.sql import connect_duckdb

    table = lh.table(name)
    _check(table, keys, order)
    snaps = table.snapshots()
    plan = DedupPlan(str(table.name), list(keys), order, table.snapshot().version if snaps else None)
    files = table.files(as_of=plan.version) if snaps else []
    plan.rows = sum(f.row_count for f in files)
    if not files:
        return plan
    by_path = {_duck_path(f.path): f for f in files}
    in_files = set(table.file_columns())
    needed = list(dict.fromkeys([*keys, *([order] if order else [])]))
    # columns a format keeps out of its files (Delta partition columns) come from each file's partition
    outside = [c for c in needed if c not in in_files]
    with scratch_directory("dedup") as spill:
        con = connect_duckdb(
            table.ctx,
            memory_limit=memory_budget,
            threads=None,
            temp_directory=spill,
            extensions=("httpfs",) if table.ctx.reaches_s3 else (),
        )
        try:
            # Iceberg: columns by field id, rows its position deletes remove left out (they are nobody's duplicate)
            own = table.rewrite_source(con, list(by_path), [c for c in needed if c in in_files])
            src = (
                f"({own})"
                if own is not None
                else "read_parquet(["
                + ", ".join(_s(p) for p in by_path)
                + "], hive_partitioning = false, union_by_name = true, filename = true, file_row_number = true)"
            )
            stored = table.file_schema()  # the files' own column names (Delta column mapping)
            physical = dict(zip(table.schema.names, stored.names, strict=True)) if stored is not None else {}
            inner = ", ".join(
                f"{_q(physical[c])} AS {_q(c)}" if c in physical else _q(c) for c in needed if c in in_files
            )
            select = f"SELECT filename AS file, file_row_number AS row{', ' + inner if inner else ''} FROM {src}"
            if outside:
                constants = pa.table(
                    {
                        "file": pa.array(list(by_path)),
                        **{
                            c: pa.array([f.partition.get(c) for f in by_path.values()], table.schema.field(c).type)
                            for c in outside
                        },
                    }
                )
                con.register("lh_file_partitions", constants)
                cols = ", ".join(f"p.{_q(c)}" for c in outside)
                select = f"SELECT s.*, {cols} FROM ({select}) s JOIN lh_file_partitions p USING (file)"
            key_list = ", ".join(_q(k) for k in keys)
            order_by = (f"{_q(order)} DESC NULLS LAST, " if order else "") + "file, row"
            # a row with a NULL key is nobody's duplicate (SQL's PARTITION BY would group the NULLs)
            known = " AND ".join(f"{_q(k)} IS NOT NULL" for k in keys)
            # only keys held by more than one row are ranked: a hash aggregate over the keys finds them first,
            # so the window (a sort that spills once the rows outgrow the budget) sees the duplicates alone. The
            # key columns are read twice rather than kept (NOT MATERIALIZED: DuckDB would otherwise hold every
            # row's file, position and key for the second use)
            losers = con.execute(
                f"WITH lh_rows AS NOT MATERIALIZED ({select}), "
                f"lh_dup AS (SELECT {key_list} FROM lh_rows WHERE {known} GROUP BY ALL HAVING count(*) > 1) "
                f"SELECT file, row, {key_list} FROM (SELECT *, row_number() OVER "
                f"(PARTITION BY {key_list} ORDER BY {order_by}) AS lh_rank FROM lh_rows SEMI JOIN lh_dup "
                f"USING ({key_list})) WHERE lh_rank > 1"
            ).to_arrow_table()
        except Exception as e:
            raise StorageError(f"dedup plan of {table.name} failed: {' '.join(str(e).split())}") from e
        finally:
            con.close()
    if losers.num_rows == 0:
        return plan
    plan.losers = losers.select(["file", "row"])
    plan.duplicate_rows = losers.num_rows
    plan.duplicated_keys = losers.group_by(list(keys)).aggregate([]).num_rows
    per_file: dict[str, int] = {}
    for path in losers.column("file").to_pylist():
        per_file[path] = per_file.get(path, 0) + 1
    # every file holding any row of a duplicated key is rewritten: the loser may sit in one file and the
    # winner in another, and only files with losers change
    affected = [by_path[p] for p in per_file]
    plan.files = affected
    groups = by_partition(affected)
    for fs in groups.values():
        dup = sum(per_file[_duck_path(f.path)] for f in fs)
        keys_here = losers.filter(pc.is_in(losers.column("file"), pa.array([_duck_path(f.path) for f in fs])))
        plan.partitions.append(
            DedupPartition(
                dict(fs[0].partition),
                files=len(fs),
                rows=sum(f.row_count for f in fs),
                duplicates=dup,
                keys=keys_here.group_by(list(keys)).aggregate([]).num_rows,
            )
        )
    plan.partitions.sort(key=lambda p: partition_key(p.partition))
    return plan


def dedup(
    lh: Workspace,
    name: str,
    *,
    keys: Sequence[str],
    order: str | None = None,
    dry_run: bool = True,
    memory_budget: int = 1 << 30,
) -> DedupResult:
    """Plan, and unless ``dry_run`` rewrite the files holding losers without them, in one commit."""
    from lakehouse.governance.ops import landed_version
    from lakehouse.maintenance.compaction import _parquet_rows, rewrite_files

    plan = plan_dedup(lh, name, keys=keys, order=order, memory_budget=memory_budget)
    result = DedupResult(plan, dry_run)
    if dry_run:
        return result
    table = lh.table(name)
    table.check_operation("dedup")  # a table feature lakehouse cannot rewrite: refused before the job starts
    params = {"keys": list(keys), "order": order, "version": plan.version}
    if plan.losers is None:
        result.status = "skipped"
        result.job_id = lh.catalog.record_job(
            "dedup", table=table.name, params=params, state="skipped", metrics=result.as_dict(), actor=lh.actor
        )
        return result
    job = lh.catalog.start_job("dedup", table=table.name, params=params, actor=lh.actor)
    result.job_id = job
    started = time.perf_counter()
    dirs: list[str] = []
    stage = "writing"  # -> "committing" (replace_files running) -> "not committed" | "committed"
    try:
        groups = by_partition(plan.files)
        written: list[str] = []
        partitions: dict[str, dict[str, Any]] = {}
        for fs in groups.values():
            rows = sum(f.row_count for f in fs)
            size = sum(f.size_bytes for f in fs)
            out_dir = f"{table.data_directory(fs[0].partition)}/lh-{job}-{uuid.uuid4().hex[:8]}"
            dirs.append(out_dir)
            new = rewrite_files(
                lh,
                table,
                [f.path for f in fs],
                out_dir,
                CompactionOptions(memory_budget=memory_budget),
                bytes_per_row=size / rows if rows else 0.0,
                columns=table.file_columns(),
                drop_rows=plan.losers,
            )
            written.extend(new)
            partitions.update({p: dict(fs[0].partition) for p in new})
        result.rows_in = sum(f.row_count for f in plan.files)
        result.rows_out = _parquet_rows(written, table.ctx)
        result.rows_removed = result.rows_in - result.rows_out
        if result.rows_removed != plan.duplicate_rows:  # checked before anything is committed
            raise StorageError(
                f"dedup of {table.name} would remove {result.rows_removed} rows, the plan found {plan.duplicate_rows}"
            )
        stage = "committing"
        properties = {"lakehouse.job": str(job), "lakehouse.operation": "dedup"}
        try:
            commit = table.replace_files(
                remove=[f.path for f in plan.files], add=written, properties=properties, partitions=partitions
            )
            version = commit.version
        except Exception as e:
            # raised: the adapter says nothing landed (its written files are garbage), unless the history shows
            # our commit after all (then it is a success); unknown (raised by landed_version) leaves them to
            # `orphans`
            landed = landed_version(table, properties, e)
            if landed is None:
                stage = "not committed"
                raise
            version = landed
        stage = "committed"
    except BaseException as e:
        if stage in ("writing", "not committed"):
            for d in dirs:
                delete_tree(d, table.ctx)
        result.status = "aborted" if isinstance(e, CommitConflictError) else "failed"
        result.error = error_text(e)
        result.seconds = time.perf_counter() - started
        lh.catalog.finish_job(job, state="failed", metrics=result.as_dict(), error=result.error)
        raise
    result.version = version
    result.files_removed = len(plan.files)
    result.files_added = len(written)
    result.status = "committed"
    result.seconds = time.perf_counter() - started
    lh.catalog.finish_job(job, state="committed", metrics=result.as_dict())
    lh.catalog.update_table(table.name)
    return result
