"""Per-table maintenance policies, as governance sees them: the model itself lives in :mod:`lakehouse.policy`
(a low layer, so that the settings can validate ``[policy]`` and ``[tables."ns.t"]`` and the engines can read
a table's defaults); this name keeps working for callers that import it from here."""

from lakehouse.policy import (
    READABLE_CLASSES,
    TIERS,
    AutopilotPolicy,
    CompactionPolicy,
    DedupPolicy,
    RetentionPolicy,
    TablePolicy,
    TierPolicy,
    build_policy,
    merge,
    parse_assignments,
    unset,
    window_bounds,
)

__all__ = [
    "READABLE_CLASSES",
    "TIERS",
    "AutopilotPolicy",
    "CompactionPolicy",
    "DedupPolicy",
    "RetentionPolicy",
    "TablePolicy",
    "TierPolicy",
    "build_policy",
    "merge",
    "parse_assignments",
    "unset",
    "window_bounds",
]
