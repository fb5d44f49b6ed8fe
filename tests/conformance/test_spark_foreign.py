"""Iceberg tables written by Spark with the Iceberg runtime, through every maintenance step lakehouse has, in the
order a user runs them: register, read, show, optimize, Z-order, dedup, vacuum. Each writer's table is written
once (Spark's writes are the suite's slowest part) and every step runs on it in turn; after each job the table
is read back by Spark from the metadata lakehouse committed, and by lakehouse, and compared with Spark's reading
(without its exact duplicates once dedup ran), by fingerprint. A failure names its step."""

from __future__ import annotations

import pyarrow as pa
import pytest

from tests.conformance.harness import Cli, run_steps
from tests.conformance.spark_writers import SPARK_WRITERS, SparkWriter

pytestmark = [pytest.mark.spark, pytest.mark.slow]

# writer -> {step: the product defect that makes it fail today}; a listed step must fail (strict) and ends the
# run as an expected failure; each turns into a failure once fixed
XFAIL: dict[str, dict[str, str]] = {}

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


def test_merge_on_read_rewrite_retires_its_deletes(cli: Cli, spark_writer: SparkWriter) -> None:
    """A compaction of a merge-on-read table applies its position deletes, and its commit also removes the
    delete files that referenced only the files it rewrote (Spark reads the result); a rewrite whose inputs
    gained deletes since it read them does not commit."""
    from pyiceberg.manifest import DataFileContent

    from lakehouse.errors import CommitConflictError
    from lakehouse.maintenance.compaction import rewrite_files
    from lakehouse.maintenance.planner import CompactionOptions
    from tests.conformance.fingerprint import assert_same_rows
    from tests.conformance.harness import TABLE, register
    from tests.conformance.spark_writers import merge_on_read

    foreign = merge_on_read(spark_writer)
    register(cli, foreign)

    def live_delete_files(table: object) -> list[str]:
        ice = table._table  # type: ignore[attr-defined]
        ice.refresh()
        snap = ice.current_snapshot()
        return [
            e.data_file.file_path
            for m in snap.manifests(ice.io)
            for e in m.fetch_manifest_entry(ice.io, discard_deleted=True)
            if e.data_file.content != DataFileContent.DATA
        ]

    with cli.lakehouse() as lh:
        table = lh.table(TABLE)
        assert live_delete_files(table), "fixture error: no delete files"
        # the storage reconciliation counts the current version's delete files as current, not as retained
        from lakehouse.maintenance.reconcile import reconcile

        rec = reconcile(lh, TABLE)
        assert rec.classes["current"].files == len(table.files()) + len(live_delete_files(table)), rec.as_dict()
        # the check at commit: deletes an input gained after the rewrite read it
        inputs = [f.path for f in table.files() if f.partition.get("region") == "eu"]
        out = f"{table.location}/data/region=eu/lh-test"
        written = rewrite_files(lh, table, inputs, out, CompactionOptions())
        assert any(table._applied.values())  # type: ignore[attr-defined]
        table._applied = {p: frozenset() for p in table._applied}  # type: ignore[attr-defined]
        with pytest.raises(CommitConflictError):
            table.replace_files(remove=inputs, add=written)
        r = cli("optimize", TABLE, "--json")
        assert r.code == 0, r.line()
        table = lh.table(TABLE)
        assert live_delete_files(table) == [], "delete files of rewritten data files are still live"
        assert cli("table", "show", TABLE, "--json").json()["rows"] == foreign.expected.num_rows
        assert foreign.reread is not None
        assert_same_rows(foreign.reread(str(table.metadata_location)), foreign.expected, "Spark after optimize")  # type: ignore[attr-defined]


def test_equality_deletes_are_read_and_refused_by_name(cli: Cli, spark_writer: SparkWriter) -> None:
    from tests.conformance.fingerprint import assert_same_rows, distinct
    from tests.conformance.harness import TABLE
    from tests.conformance.spark_writers import equality_deletes

    foreign = equality_deletes(spark_writer)
    r = cli("table", "register", TABLE, foreign.location, "--format", "iceberg")
    assert r.code == 0, r.line()
    assert "warning:" in r.err and "equality delete" in r.err and "rewrite_data_files" in r.err, r.err
    with cli.lakehouse() as lh:
        assert_same_rows(lh.table(TABLE).scan(), foreign.expected, "scan")
        assert lh.table(TABLE).scan(filter="id > 5", columns=["id"]).num_rows == sum(
            1 for v in foreign.expected.column("id").to_pylist() if v is not None and v > 5
        )
    assert cli("policy", "set", TABLE, "tiering.column=ts").code == 0
    for args in (["optimize", TABLE], ["dedup", TABLE, "--key", "id", "--apply"], ["tier", TABLE, "--apply"]):
        r = cli(*args)
        assert r.code == 1 and "equality delete" in r.err, (args, r.line())
    r = cli("expire-data", TABLE, "--older-than", "1d", "--column", "ts", "--apply")
    assert r.code == 1 and "equality delete" in r.err, r.line()
    # what the refusal suggests: Spark's rewrite applies the equality deletes; then lakehouse rewrites too
    r = cli("optimize", TABLE, "--engine", "spark", "--min-files", "1", "--json")
    assert r.code == 0, r.line()
    r = cli("dedup", TABLE, "--key", "id", "--apply", "--json")
    assert r.code == 0, r.line()
    with cli.lakehouse() as lh:
        assert_same_rows(lh.table(TABLE).scan(), distinct(foreign.expected), "after Spark's optimize and dedup")


def test_a_row_delete_on_merge_on_read_applies_its_position_deletes(cli: Cli, spark_writer: SparkWriter) -> None:
    """lakehouse's own row delete (erase, expire-data) rewrites files that have position deletes: the rows those
    deletes removed stay removed, each rewritten file is verified against the input's live rows (its positions
    shifted by the deleted ones), and delete files that referenced only removed files are retired. Spark reads
    the result."""
    import pyarrow.compute as pc

    from tests.conformance.fingerprint import assert_same_rows
    from tests.conformance.harness import TABLE, register
    from tests.conformance.spark_writers import merge_on_read

    foreign = merge_on_read(spark_writer)
    register(cli, foreign)
    with cli.lakehouse() as lh:
        table = lh.table(TABLE)
        deleted_files = {p for t in table._plan().tasks for p in _position_delete_paths(t)}  # type: ignore[attr-defined]
        assert deleted_files, "fixture error: no delete files"
        result = table.delete_rows("id IN (3, 7, 15, 23, 25) OR name = 'm'")
        matched = pc.fill_null(
            pc.or_kleene(
                pc.is_in(foreign.expected["id"], pa.array([3, 7, 15, 23, 25], pa.int64())),
                pc.equal(foreign.expected["name"], "m"),
            ),
            False,
        )
        expected = foreign.expected.filter(pc.invert(matched))
        assert result.rows_deleted == pc.sum(matched).as_py() and result.files_added > 0
        fresh = lh.table(TABLE)
        assert_same_rows(fresh.scan(), expected, "lakehouse after the delete")
        assert foreign.reread is not None
        assert_same_rows(foreign.reread(str(fresh.metadata_location)), expected, "Spark after the delete")  # type: ignore[attr-defined]
        live = {p for t in fresh._plan().tasks for p in _position_delete_paths(t)}  # type: ignore[attr-defined]
        assert live < deleted_files, "delete files of removed data files are retired"


def _position_delete_paths(task: object) -> set[str]:
    return {str(d.file_path) for d in task.delete_files}  # type: ignore[attr-defined]
