"""File health of a table: counts, a size histogram, the small-file ratio, files per partition, and how much
data min/max statistics let a reader skip, for a predicate (files and row groups) or for a column."""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Sequence
from typing import Any

from lakehouse.expr import check_columns, may_match, normalize, parse_filter
from lakehouse.maintenance.planner import CompactionOptions, partition_keys
from lakehouse.tables.base import DataFile, LakehouseTable

MB = 1024 * 1024
BUCKETS = ((1 * MB, "<1MB"), (8 * MB, "1-8MB"), (32 * MB, "8-32MB"), (128 * MB, "32-128MB"), (None, ">=128MB"))


def file_health(
    table: LakehouseTable,
    *,
    files: Sequence[DataFile] | None = None,
    predicate: str | None = None,
    options: CompactionOptions | None = None,
    clustered: Collection[str] = frozenset(),
) -> dict[str, Any]:
    """``clustered``: paths of a Z-order's output (the catalog's layouts), small by design: not counted small."""
    opts = options or CompactionOptions()
    live = list(files) if files is not None else table.files()
    histogram = {label: 0 for _, label in BUCKETS}
    for f in live:
        for limit, label in BUCKETS:
            if limit is None or f.size_bytes < limit:
                histogram[label] += 1
                break
    small = [f for f in live if f.size_bytes < opts.small_threshold and f.path not in clustered]
    per_partition = Counter(key for key, _f in partition_keys(live))
    counts = sorted(per_partition.values())
    out: dict[str, Any] = {
        "files": len(live),
        "bytes": sum(f.size_bytes for f in live),
        "rows": sum(f.row_count for f in live),
        "size_histogram": histogram,
        "small_files": len(small),
        "small_file_ratio": round(len(small) / len(live), 4) if live else 0.0,
        "small_file_threshold": opts.small_threshold,
        "clustered_files": sum(1 for f in live if f.path in clustered),
        "partitions": len(per_partition),
        "files_per_partition": {
            "min": counts[0] if counts else 0,
            "avg": round(sum(counts) / len(counts), 2) if counts else 0,
            "max": counts[-1] if counts else 0,
        },
    }
    if predicate:
        out["data_skipping"] = data_skipping(table, live, predicate)
    return out


def data_skipping(table: LakehouseTable, files: Sequence[DataFile], predicate: str) -> dict[str, Any]:
    """What min/max statistics let a reader skip for ``predicate``: whole files by the table's file statistics
    (and partition values), then row groups by the Parquet footers of the files left. ``rows_read`` is the rows
    of the row groups a reader must still decode."""
    expr = normalize(parse_filter(predicate), table.schema)
    check_columns(expr, table.schema)
    files_skipped = groups = groups_skipped = rows_read = 0
    for f in files:
        footer = row_groups(table, f)
        groups += len(footer)
        if _prunable(table, expr, f):
            files_skipped += 1
            groups_skipped += len(footer)
            continue
        constants = {k: (v, v, None) for k, v in f.partition.items()}
        for rows, stats in footer:
            if may_match(expr, {**constants, **stats}, rows):
                rows_read += rows
            else:
                groups_skipped += 1
    total_rows = sum(f.row_count for f in files)
    return {
        "predicate": predicate,
        "files": len(files),
        "files_prunable": files_skipped,
        "share_prunable": round(files_skipped / len(files), 4) if files else 0.0,
        "row_groups": groups,
        "row_groups_prunable": groups_skipped,
        "share_row_groups_prunable": round(groups_skipped / groups, 4) if groups else 0.0,
        "rows": total_rows,
        "rows_read": rows_read,
    }


Footer = list[tuple[int, dict[str, tuple[Any, Any, int | None]]]]


def row_groups(table: LakehouseTable, f: DataFile) -> Footer:
    """Per row group of a data file: its rows and, per top-level column of the table, (min, max, nulls) where
    the footer records them. Columns are matched by field id where the format uses them, else by name."""
    import pyarrow.parquet as pq

    from lakehouse.storage import split_location

    filesystem, path = split_location(f.path, table.ctx)
    with filesystem.open_input_file(path) as fh:
        meta = pq.ParquetFile(fh).metadata
    ids = {v: k for k, v in table.field_ids().items()}
    names: dict[int, str] = {}
    arrow = meta.schema.to_arrow_schema()
    for i in range(meta.num_columns):
        column = meta.schema.column(i)
        top = column.path.split(".")[0]
        if "." in column.path:
            continue  # nested values: no range to compare with
        field = arrow.field(top)
        raw = (field.metadata or {}).get(b"PARQUET:field_id")
        name = ids.get(int(raw)) if raw is not None and ids else top
        if name is not None and table.schema.get_field_index(name) >= 0:
            names[i] = name
    out: Footer = []
    for g in range(meta.num_row_groups):
        rg = meta.row_group(g)
        stats: dict[str, tuple[Any, Any, int | None]] = {}
        for i, name in names.items():
            st = rg.column(i).statistics
            if st is not None and st.has_min_max:
                stats[name] = (st.min, st.max, st.null_count if st.has_null_count else None)
        out.append((rg.num_rows, stats))
    return out


def column_skipping(table: LakehouseTable, files: Sequence[DataFile], column: str) -> dict[str, Any]:
    """How well the layout serves narrow predicates on ``column``: for each row group, the share of the others
    whose min/max range does not overlap its own, averaged (1 - the "average overlap depth" over the row
    groups, as a share). A value inside one group's range is then, on average, outside that share of the
    groups. A column no layout orders scores near 0 however large the table; a well clustered one near 1."""
    import bisect

    ranges: list[tuple[Any, Any]] = []
    for f in files:
        if column in f.partition:
            v = f.partition[column]
            ranges += [(v, v)] * len(row_groups(table, f))
            continue
        for _, stats in row_groups(table, f):
            if column in stats:
                lo, hi, _ = stats[column]
                ranges.append((lo, hi))
    n = len(ranges)
    if n < 2:
        return {"column": column, "row_groups": n, "share_skippable": None}
    try:
        starts = sorted(lo for lo, _ in ranges)
        ends = sorted(hi for _, hi in ranges)
        # ranges j overlapping range i: start_j <= end_i and end_j >= start_i (i itself included)
        overlaps = [bisect.bisect_right(starts, hi) - bisect.bisect_left(ends, lo) for lo, hi in ranges]
    except TypeError:  # values without an order
        return {"column": column, "row_groups": n, "share_skippable": None}
    skipped = sum((n - k) / (n - 1) for k in overlaps) / n
    return {"column": column, "row_groups": n, "share_skippable": round(skipped, 4)}


def _prunable(table: LakehouseTable, expr: Any, f: DataFile) -> bool:
    # the statistics a reader may trust (partition values included): Delta's are widened or left out where its
    # writers round them
    return not may_match(expr, table.skipping_stats(f), f.row_count)
