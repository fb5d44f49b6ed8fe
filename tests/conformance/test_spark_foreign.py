"""Iceberg tables written by Spark with the Iceberg runtime, through every maintenance step lakehouse has:
register, read, show, optimize, Z-order, dedup, vacuum. Each step runs on a table of its own; after a job the
table is read back by Spark from the metadata lakehouse committed, and by lakehouse, and compared with Spark's
reading before the job, by fingerprint."""

from __future__ import annotations

import pytest

from tests.conformance import defects as d
from tests.conformance.harness import STEPS, Cli, Foreign, run_step
from tests.conformance.spark_writers import SPARK_WRITERS, SparkWriter

pytestmark = [pytest.mark.spark, pytest.mark.slow]

# (writer, step) -> the product defect that makes it fail today; each turns into a failure once fixed
XFAIL: dict[tuple[str, str], str] = {
    **{("v2_bucket_truncate", step): d.ICEBERG_TRANSFORMS for step in STEPS},
    **{("equality_deletes", step): d.EQUALITY_DELETES for step in STEPS},
    **{("nested_types", step): d.SCHEMA_TYPES for step in STEPS},
    ("v2_identity_day", "zorder"): d.ZORDER_SHORT_STRING,
    ("v1_identity_month", "zorder"): d.ZORDER_SHORT_STRING,
    ("merge_on_read_deletes", "show"): d.DELETE_FILE_ROWS,
    ("merge_on_read_deletes", "zorder"): d.ZORDER_BEFORE_CHECKS,
    ("merge_on_read_deletes", "dedup"): d.DEDUP_IGNORES_DELETES,
    ("schema_evolution", "optimize"): d.RENAMED_COLUMN,
    ("schema_evolution", "zorder"): d.ZORDER_SHORT_STRING,
    ("schema_evolution", "dedup"): d.RENAMED_COLUMN,
    ("add_files", "read"): d.FILES_OUTSIDE_LOCATION,
    ("add_files", "show"): d.FILES_OUTSIDE_LOCATION,
    ("add_files", "optimize"): d.METADATA_PARTITION,
    ("add_files", "zorder"): d.ZORDER_SHORT_STRING,
    ("add_files", "dedup"): d.METADATA_PARTITION,
    ("add_files", "vacuum"): d.FILES_OUTSIDE_LOCATION,
}

# tables with delete files: lakehouse may decline rewriting them (a raw rewrite would revive deleted rows)
MAY_REFUSE = {
    "merge_on_read_deletes": ("delete file",),
    "equality_deletes": ("delete file", "equality delete"),
}


def _cases() -> list[object]:
    out = []
    for writer in SPARK_WRITERS:
        for step in STEPS:
            reason = XFAIL.get((writer, step))
            marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
            out.append(pytest.param(writer, step, marks=marks, id=f"{writer}-{step}"))
    return out


_READ_ONLY: dict[str, Foreign] = {}
"""One table per writer and test process for the steps that change nothing (read, show): Spark's writes are the
suite's slowest part."""


@pytest.mark.parametrize(("writer", "step"), _cases())
def test_foreign_iceberg_from_spark(writer: str, step: str, cli: Cli, spark_writer: SparkWriter) -> None:
    if step in ("read", "show"):
        if writer not in _READ_ONLY:
            _READ_ONLY[writer] = SPARK_WRITERS[writer](spark_writer)
        foreign = _READ_ONLY[writer]
    else:
        foreign = SPARK_WRITERS[writer](spark_writer)
    run_step(cli, foreign, step, refuse=MAY_REFUSE.get(writer, ()))
