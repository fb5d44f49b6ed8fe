"""Compaction planning: which partitions to rewrite, into how many files, and why (or why not).

A file is *small* below ``small_file_fraction`` x ``target_file_size``. A partition is picked when it holds at
least ``min_input_files`` small files (bin-packing them into files near the target), or, with Z-order, when
its files are not already the output of a Z-order on the same columns. Partitions are taken largest win
first until ``max_bytes_per_job``. A second run right after the first finds nothing to do.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from lakehouse.errors import InvalidInputError
from lakehouse.expr import Expr, evaluate, parse_filter
from lakehouse.tables.base import DataFile

MB = 1024 * 1024


@dataclass(frozen=True)
class CompactionOptions:
    """Thresholds of the planner (settings, overridable per call)."""

    target_file_size: int = 128 * MB
    small_file_fraction: float = 0.75
    min_input_files: int = 2
    max_bytes_per_job: int = 50 * 1024 * MB
    memory_budget: int = 1024 * MB
    zorder: tuple[str, ...] = ()
    curve: str = "hilbert"
    """The clustering curve of a Z-order: ``hilbert`` or ``morton``; see :mod:`lakehouse.maintenance.clustering`."""
    row_group_rows: int = 131_072
    compression_level: int | None = None
    """zstd level of rewritten files (None: DuckDB's default, 3); tiering rewrites cold data harder."""
    commit_interval: float = 30.0
    """Seconds: the partitions a job rewrites within this long share one commit (0: each commits on its own)."""

    def __post_init__(self) -> None:
        if self.target_file_size < 1024:
            raise InvalidInputError("target file size must be at least 1 KB")
        if not 0 < self.small_file_fraction <= 1:
            raise InvalidInputError("small-file fraction must be in (0, 1]")
        if self.min_input_files < 1:
            raise InvalidInputError("minimum input files must be at least 1")
        if self.curve not in ("hilbert", "morton"):
            raise InvalidInputError(f"unknown clustering curve {self.curve!r}", hint="use hilbert or morton")
        if self.commit_interval < 0:
            raise InvalidInputError("the commit interval cannot be negative")

    @property
    def small_threshold(self) -> int:
        return int(self.target_file_size * self.small_file_fraction)


INCREMENTAL_SHARE = 0.25
"""A partition clustered on the same columns whose new (unclustered) rows are at most this share of its rows
gets only the new files clustered, as a run of their own beside the existing layout; more, and it is
clustered again as a whole."""


def layout_name(options: CompactionOptions, engine: str = "local") -> str:
    """What a Z-order's output is recorded as (``hilbert:a,b``): a partition is clustered again when asked for
    other columns, another curve or another engine's layout."""
    how = options.curve if engine == "local" else engine
    return f"{how}:{','.join(options.zorder)}"


def partition_key(partition: Mapping[str, Any]) -> str:
    """A stable text key of a partition's values."""
    # with each value's type: True, 1 and 1.0 are equal keys of a cache but different partitions; and a float's
    # sign: 0.0 and -0.0 are equal keys too, and different partitions
    items = tuple(
        (k, type(v), v, math.copysign(1.0, v) if isinstance(v, float) else None) for k, v in sorted(partition.items())
    )
    try:
        return _partition_key(items)
    except TypeError:  # a value that cannot be hashed
        return json.dumps(dict(partition), default=str, sort_keys=True)


def partition_keys(files: Iterable[DataFile]) -> Iterator[tuple[str, DataFile]]:
    """Each file with its :func:`partition_key`, made once per partition mapping rather than once per file: a
    table's listing shares one mapping among the files of a partition (100,000 files in 100 partitions: 100 keys
    made). A mapping is held until the iteration ends, so its id is not reused meanwhile."""
    made: dict[int, tuple[Mapping[str, Any], str]] = {}
    for f in files:
        partition = f.partition
        held = made.get(id(partition))
        if held is None:
            held = made[id(partition)] = (partition, partition_key(partition))
        yield held[1], f


def by_partition(files: Iterable[DataFile]) -> dict[str, list[DataFile]]:
    """Files grouped by :func:`partition_key`, each group in the files' order (see :func:`partition_keys`)."""
    groups: dict[str, list[DataFile]] = {}
    for key, f in partition_keys(files):
        groups.setdefault(key, []).append(f)
    return groups


@functools.lru_cache(maxsize=65_536)
def _partition_key(items: tuple[tuple[str, type, Any, float | None], ...]) -> str:
    """:func:`partition_key`, once per distinct partition (a plan asks it for every file)."""
    return json.dumps({k: v for k, _t, v, _sign in items}, default=str, sort_keys=True)


@dataclass
class PartitionPlan:
    key: str
    partition: dict[str, Any]
    files: list[DataFile]
    inputs: list[DataFile]
    picked: bool
    reason: str
    expected_output_files: int = 0

    @property
    def input_bytes(self) -> int:
        return sum(f.size_bytes for f in self.inputs)

    def as_dict(self) -> dict[str, Any]:
        return {
            "partition": {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in self.partition.items()},
            "picked": self.picked,
            "reason": self.reason,
            "files": len(self.files),
            "bytes": sum(f.size_bytes for f in self.files),
            "input_files": len(self.inputs),
            "input_bytes": self.input_bytes,
            "expected_output_files": self.expected_output_files,
        }


@dataclass
class CompactionPlan:
    table: str
    options: CompactionOptions
    partitions: list[PartitionPlan] = field(default_factory=list)

    @property
    def picked(self) -> list[PartitionPlan]:
        return [p for p in self.partitions if p.picked]

    def as_dict(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "target_file_size": self.options.target_file_size,
            "zorder": list(self.options.zorder),
            "partitions_picked": len(self.picked),
            "input_files": sum(len(p.inputs) for p in self.picked),
            "input_bytes": sum(p.input_bytes for p in self.picked),
            "expected_output_files": sum(p.expected_output_files for p in self.picked),
            "partitions": [p.as_dict() for p in self.partitions],
        }


def plan_compaction(
    table: str,
    files: Sequence[DataFile],
    options: CompactionOptions,
    *,
    partition_filter: str | Expr | None = None,
    layouts: Mapping[str, tuple[str, frozenset[str]]] | None = None,
    runs: Mapping[str, frozenset[str]] | None = None,
    engine: str = "local",
) -> CompactionPlan:
    """Plan a compaction (and Z-order) of ``files``.

    Args:
        partition_filter: a SQL predicate over partition fields (``"ts_day = '2026-01-01'"``).
        layouts: per partition key, the layout its files were last written with (``"hilbert:a,b"``) and the
            file paths of that output; a partition whose files are all that output is skipped, one with few new
            files beside it (:data:`INCREMENTAL_SHARE`) gets only those clustered. A compaction without Z-order
            leaves that output alone too (its files are cut for readers to skip, not small by mistake).
        runs: per partition key, the layout's files that incremental runs wrote: their rows count with the new
            ones against :data:`INCREMENTAL_SHARE` (runs beside a clustering skip less, and pile up otherwise).
        engine: the engine that will run the rewrite (its layouts differ).
    """
    expr = parse_filter(partition_filter) if isinstance(partition_filter, str) else partition_filter
    groups = by_partition(files)
    plan = CompactionPlan(table, options)
    wanted_layout = layout_name(options, engine) if options.zorder else None
    candidates: list[PartitionPlan] = []
    for key, group in sorted(groups.items()):
        partition = dict(group[0].partition)
        if expr is not None:
            unknown = expr.columns() - set(partition)
            if unknown:
                raise InvalidInputError(
                    f"--partition refers to {', '.join(sorted(unknown))}, not partition fields",
                    hint="partition fields are: "
                    + (", ".join(sorted(partition)) or "(none: the table is unpartitioned)"),
                )
            if evaluate(expr, partition) is not True:
                plan.partitions.append(PartitionPlan(key, partition, group, [], False, "excluded by --partition"))
                continue
        total = sum(f.size_bytes for f in group)
        if wanted_layout:
            layout = (layouts or {}).get(key)
            clustered = [f for f in group if layout and layout[0] == wanted_layout and f.path in layout[1]]
            fresh = [f for f in group if f not in clustered]
            if not fresh:
                plan.partitions.append(
                    PartitionPlan(key, partition, group, [], False, f"already clustered as {wanted_layout}")
                )
                continue
            if len(group) == 1 and group[0].row_count <= 1:
                plan.partitions.append(PartitionPlan(key, partition, group, [], False, "a single row"))
                continue
            rows = sum(f.row_count for f in group)
            new_rows = sum(f.row_count for f in fresh)
            earlier = (runs or {}).get(key, frozenset())
            run_rows = sum(f.row_count for f in clustered if f.path in earlier)
            if clustered and new_rows + run_rows <= INCREMENTAL_SHARE * rows:
                fresh_bytes = sum(f.size_bytes for f in fresh)
                candidates.append(
                    PartitionPlan(
                        key,
                        partition,
                        group,
                        fresh,
                        True,
                        f"cluster {len(fresh)} new file(s) ({new_rows:,} of {rows:,} rows"
                        + (f"; {run_rows:,} in earlier runs" if run_rows else "")
                        + f") beside the {wanted_layout} layout",
                        max(1, math.ceil(fresh_bytes / options.target_file_size)),
                    )
                )
                continue
            expected = max(1, math.ceil(total / options.target_file_size))
            candidates.append(
                PartitionPlan(
                    key,
                    partition,
                    group,
                    list(group),
                    True,
                    f"cluster {len(group)} files as {wanted_layout}"
                    + (
                        f" again (new rows and earlier runs: {new_rows + run_rows:,} of {rows:,}, over "
                        f"{INCREMENTAL_SHARE:.0%})"
                        if clustered
                        else ""
                    ),
                    expected,
                )
            )
            continue
        # a Z-order's files are cut to stretches of its curve for readers to skip by their statistics: as
        # intended, not small by mistake (merging them would undo what the clustering bought)
        layout = (layouts or {}).get(key)
        kept = [f for f in group if layout and f.path in layout[1]]
        small = [f for f in group if f.size_bytes < options.small_threshold and not (layout and f.path in layout[1])]
        if len(small) < options.min_input_files:
            reason = (
                "compact already" if not small else f"{len(small)} small file(s), fewer than {options.min_input_files}"
            )
            if kept and layout:
                reason += f"; {len(kept)} file(s) clustered as {layout[0]} left as they are"
            plan.partitions.append(PartitionPlan(key, partition, group, [], False, reason))
            continue
        small_bytes = sum(f.size_bytes for f in small)
        expected = max(1, math.ceil(small_bytes / options.target_file_size))
        if expected >= len(small):
            plan.partitions.append(
                PartitionPlan(key, partition, group, [], False, "small files would not bin-pack into fewer files")
            )
            continue
        candidates.append(
            PartitionPlan(
                key,
                partition,
                group,
                small,
                True,
                f"{len(small)} small files ({small_bytes:,} bytes) -> {expected}",
                expected,
            )
        )
    # biggest reduction first, within the byte budget
    budget = options.max_bytes_per_job
    for p in sorted(candidates, key=lambda p: (len(p.inputs) - p.expected_output_files, p.input_bytes), reverse=True):
        if p.input_bytes > budget:
            p.picked = False
            p.reason = f"over this job's byte budget ({options.max_bytes_per_job:,}); next run"
        else:
            budget -= p.input_bytes
        plan.partitions.append(p)
    plan.partitions.sort(key=lambda p: p.key)
    return plan
