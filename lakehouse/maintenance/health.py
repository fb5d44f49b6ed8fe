"""File health of a table: counts, a size histogram, the small-file ratio, files per partition, and how much
data skipping file statistics allow for a predicate."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from lakehouse.expr import check_columns, may_match, normalize, parse_filter
from lakehouse.maintenance.planner import CompactionOptions, partition_key
from lakehouse.tables.base import DataFile, LakehouseTable

MB = 1024 * 1024
BUCKETS = ((1 * MB, "<1MB"), (8 * MB, "1-8MB"), (32 * MB, "8-32MB"), (128 * MB, "32-128MB"), (None, ">=128MB"))


def file_health(
    table: LakehouseTable,
    *,
    files: Sequence[DataFile] | None = None,
    predicate: str | None = None,
    options: CompactionOptions | None = None,
) -> dict[str, Any]:
    opts = options or CompactionOptions()
    live = list(files) if files is not None else table.files()
    histogram = {label: 0 for _, label in BUCKETS}
    for f in live:
        for limit, label in BUCKETS:
            if limit is None or f.size_bytes < limit:
                histogram[label] += 1
                break
    small = [f for f in live if f.size_bytes < opts.small_threshold]
    per_partition = Counter(partition_key(f.partition) for f in live)
    counts = sorted(per_partition.values())
    out: dict[str, Any] = {
        "files": len(live),
        "bytes": sum(f.size_bytes for f in live),
        "rows": sum(f.row_count for f in live),
        "size_histogram": histogram,
        "small_files": len(small),
        "small_file_ratio": round(len(small) / len(live), 4) if live else 0.0,
        "small_file_threshold": opts.small_threshold,
        "partitions": len(per_partition),
        "files_per_partition": {
            "min": counts[0] if counts else 0,
            "avg": round(sum(counts) / len(counts), 2) if counts else 0,
            "max": counts[-1] if counts else 0,
        },
    }
    if predicate:
        expr = parse_filter(predicate)
        check_columns(expr, table.schema)
        expr = normalize(expr, table.schema)
        prunable = [f for f in live if _prunable(expr, f)]
        out["data_skipping"] = {
            "predicate": predicate,
            "files_prunable": len(prunable),
            "files": len(live),
            "share_prunable": round(len(prunable) / len(live), 4) if live else 0.0,
        }
    return out


def _prunable(expr: Any, f: DataFile) -> bool:
    # partition values are statistics too: (v, v, nulls unknown)
    stats = {**{k: (v, v, None) for k, v in f.partition.items()}, **dict(f.stats)}
    return not may_match(expr, stats, f.row_count)
