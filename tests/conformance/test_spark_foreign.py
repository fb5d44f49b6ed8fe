"""Iceberg tables written by Spark with the Iceberg runtime, through every maintenance step lakehouse has, in the
order a user runs them: register, read, show, optimize, Z-order, dedup, vacuum. Each writer's table is written
once (Spark's writes are the suite's slowest part) and every step runs on it in turn; after each job the table
is read back by Spark from the metadata lakehouse committed, and by lakehouse, and compared with Spark's reading
(without its exact duplicates once dedup ran), by fingerprint. A failure names its step."""

from __future__ import annotations

import pytest

from tests.conformance import defects as d
from tests.conformance.harness import Cli, run_steps
from tests.conformance.spark_writers import SPARK_WRITERS, SparkWriter

pytestmark = [pytest.mark.spark, pytest.mark.slow]

# writer -> {step: the product defect that makes it fail today}; a listed step must fail (strict) and ends the
# run as an expected failure; each turns into a failure once fixed
XFAIL: dict[str, dict[str, str]] = {
    "nested_types": {"register": d.SCHEMA_TYPES},
}

# tables with delete files lakehouse cannot rewrite: a refusal naming them is expected of the jobs that rewrite
MAY_REFUSE = {
    "equality_deletes": ("equality delete",),
}
MUST_REFUSE = {
    "equality_deletes": ("optimize", "zorder", "dedup"),
}


@pytest.mark.parametrize("writer", list(SPARK_WRITERS))
def test_foreign_iceberg_from_spark(writer: str, cli: Cli, spark_writer: SparkWriter) -> None:
    foreign = SPARK_WRITERS[writer](spark_writer)
    refused = run_steps(cli, foreign, refuse=MAY_REFUSE.get(writer, ()), xfail=XFAIL.get(writer))
    assert refused == list(MUST_REFUSE.get(writer, ())), f"steps refused by name: {refused}"
