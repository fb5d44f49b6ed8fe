"""Delta tables written by others (hand-assembled logs over pyarrow files, delta-rs with its options), through
every maintenance step lakehouse has: register, read, show, optimize, Z-order, dedup, vacuum. Each step runs on
a fresh copy of the table and checks lakehouse's reads against the writer's own reading, by fingerprint."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conformance.delta_writers import DELTA_WRITERS, FEATURE_WRITERS
from tests.conformance.fingerprint import assert_same_rows
from tests.conformance.harness import STEPS, TABLE, Cli, register, run_step

# (writer, step) -> the product defect that makes it fail today; each turns into a failure once fixed
XFAIL: dict[tuple[str, str], str] = {}

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


# how lakehouse's engine reads each writer's table: as its files where that reads exactly what the format's scan
# reads (lakehouse.sql.planned), else through the format's scan; each "format" has its reason
ENGINE_READS = {
    "legacy_no_stats": "files",
    "int96": "format",  # INT96 values: their reading depends on a time zone
    "pyarrow_types": "files",
    "column_mapping_name": "format",  # physical names in the files
    "column_mapping_id": "format",
    "deletion_vectors": "format",  # a file's rows are not all live
    "deltars_options": "files",
    "deltars_partition_values": "format",  # float and binary partition values: their text form is not exact
    "deltars_features": "files",
}


@pytest.mark.parametrize("writer", sorted(DELTA_WRITERS))
def test_how_the_engine_reads_them(writer: str, cli: Cli, tmp_path: Path) -> None:
    foreign = DELTA_WRITERS[writer](str(tmp_path / "table"))
    register(cli, foreign)
    with cli.lakehouse() as lh:
        result = lh.query(f"SELECT * FROM {TABLE}", max_rows=10_000_000)
    assert [r["read"] for r in result.reads] == [ENGINE_READS[writer]]
    assert_same_rows(result.table, foreign.expected, f"{writer}: lakehouse query")
