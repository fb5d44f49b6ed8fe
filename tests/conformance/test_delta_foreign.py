"""Delta tables written by others (hand-assembled logs over pyarrow files, delta-rs with its options), through
every maintenance step lakehouse has: register, read, show, optimize, Z-order, dedup, vacuum. Each step runs on
a fresh copy of the table and checks lakehouse's reads against the writer's own reading, by fingerprint."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conformance import defects as d
from tests.conformance.delta_writers import DELTA_WRITERS, FEATURE_WRITERS
from tests.conformance.harness import STEPS, Cli, run_step

# (writer, step) -> the product defect that makes it fail today; each turns into a failure once fixed
XFAIL: dict[tuple[str, str], str] = {
    **{
        (w, step): d.COLUMN_MAPPING
        for w in ("column_mapping_name", "column_mapping_id")
        for step in STEPS
        if step != "show"  # passes since the schema branch's merge
    },
    **{("pyarrow_types", step): d.SCHEMA_TYPES for step in ("optimize", "zorder")},
    ("legacy_no_stats", "show"): d.NO_STATS_ROWS,
    ("legacy_no_stats", "optimize"): d.NO_STATS_ROWS,
    ("legacy_no_stats", "dedup"): d.NO_STATS_ROWS,
    ("legacy_no_stats", "zorder"): d.ZORDER_SHORT_STRING,
    ("int96", "read"): d.INT96_READ,
    ("int96", "dedup"): d.INT96_READ,
    ("int96", "vacuum"): d.INT96_READ,
    ("deletion_vectors", "show"): d.DV_ROWS,
    ("deletion_vectors", "vacuum"): d.DV_VACUUM,
    ("deltars_features", "read"): d.GENERATED_COLUMN,
    ("deltars_features", "optimize"): d.GENERATED_COLUMN,
    ("deltars_features", "zorder"): d.ZORDER_SHORT_STRING,
    ("deltars_features", "dedup"): d.GENERATED_COLUMN,
    ("deltars_features", "vacuum"): d.GENERATED_COLUMN,
    **{
        (f, step): d.FEATURE_AS_CONFLICT
        for f in ("identityColumns", "inCommitTimestamp", "rowTracking", "clustering")
        for step in ("optimize", "zorder")
    },
    **{
        (f, "dedup"): d.FEATURE_DEDUP_RETRIES
        for f in ("identityColumns", "inCommitTimestamp", "rowTracking", "clustering")
    },
    **{("v2Checkpoint", step): d.READER_FEATURE_RAW for step in ("optimize", "zorder", "dedup")},
}

# writers whose table uses a feature lakehouse may decline: a refusal naming it is acceptable
MAY_REFUSE = {"deletion_vectors": ("deletionVectors", "deletion vector")}


def _cases() -> list[object]:
    out = []
    for writer in DELTA_WRITERS:
        for step in STEPS:
            reason = XFAIL.get((writer, step))
            marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
            out.append(pytest.param(writer, step, marks=marks, id=f"{writer}-{step}"))
    return out


@pytest.mark.parametrize(("writer", "step"), _cases())
def test_foreign_delta(writer: str, step: str, cli: Cli, tmp_path: Path) -> None:
    foreign = DELTA_WRITERS[writer](str(tmp_path / "table"))
    run_step(cli, foreign, step, refuse=MAY_REFUSE.get(writer, ()))


def _feature_cases() -> list[object]:
    out = []
    for feature in FEATURE_WRITERS:
        for step in ("read", "optimize", "zorder", "dedup"):
            reason = XFAIL.get((feature, step))
            marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
            out.append(pytest.param(feature, step, marks=marks, id=f"{feature}-{step}"))
    return out


@pytest.mark.parametrize(("feature", "step"), _feature_cases())
def test_unsupported_feature_is_refused_by_name(feature: str, step: str, cli: Cli, tmp_path: Path) -> None:
    """A table using a Delta table feature lakehouse does not support: any job that writes must be refused
    naming the feature, before anything is written (files, log and catalog unchanged); reading works, or is
    refused by name too (reader features)."""
    build, names = FEATURE_WRITERS[feature]
    foreign = build(str(tmp_path / "table"))
    if step == "read":
        run_step(cli, foreign, "read", refuse=names)
        return
    run_step(cli, foreign, step, refuse=names)
    # a write step that was not refused would have passed run_step: it must have been refused
    jobs = cli("jobs", "--json")
    assert jobs.code == 0, jobs.line()
    committed = [j for j in jobs.json() if j.get("state") == "committed"]
    assert not committed, f"{step} committed to a table with the unsupported feature {feature}: {committed}"
