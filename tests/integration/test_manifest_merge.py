"""Metadata that stays O(live files): an applied vacuum merges an Iceberg table's per-commit manifests (one per
append) in a ``replace`` commit that changes no data, and the manifests it replaced go with the versions that
used them. Delta needs no such step: its checkpoints fold the log (see test_storage_identity)."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from lakehouse.config import load_settings
from lakehouse.core import Lakehouse
from lakehouse.maintenance.reconcile import reconcile
from lakehouse.maintenance.retention import MANIFEST_MERGE_MIN, vacuum
from lakehouse.schema import parse_partitioning
from tests.conformance.fingerprint import assert_same_rows

SCHEMA = pa.schema([pa.field("id", pa.int64(), nullable=False), pa.field("part", pa.string())])


def _manifests(lh: Lakehouse) -> list[str]:
    table = lh.table("m.t")
    ice = table._table  # type: ignore[attr-defined]
    ice.refresh()
    return [m.manifest_path for m in ice.current_snapshot().manifests(ice.io)]


@pytest.mark.parametrize("partitioned", [False, True])
def test_vacuum_merges_per_commit_manifests_and_keeps_every_row(tmp_path: Path, partitioned: bool) -> None:
    settings = load_settings(config_file=False, warehouse=str(tmp_path / "wh"), catalog_url="sqlite://")
    with Lakehouse(settings) as lh:
        lh.create_table(
            "m.t",
            schema=SCHEMA,
            format="iceberg",
            partitioning=parse_partitioning("part" if partitioned else ""),
        )
        appends = MANIFEST_MERGE_MIN + 4
        for i in range(appends):
            rows = [{"id": i * 10 + k, "part": "ab"[k % 2]} for k in range(3)]
            lh.table("m.t").append(pa.Table.from_pylist(rows, schema=SCHEMA))
        before_rows = lh.table("m.t").scan()
        assert len(_manifests(lh)) == appends, "one manifest per append"

        small = vacuum(lh, "m.t", retain="7d", dry_run=False)  # nothing to expire: the merge alone
        assert small.manifests_merged == (appends, 1)
        job = next(j for j in lh.jobs("m.t") if j.kind == "vacuum")
        assert job.state == "committed"
        head = lh.table("m.t").snapshot()
        assert head.operation == "replace" and head.summary.get("lakehouse.operation") == "rewrite_manifests"
        assert len(_manifests(lh)) == 1
        assert_same_rows(lh.table("m.t").scan(), before_rows, "after the manifest merge")

        again = vacuum(lh, "m.t", retain="0s", dry_run=False)  # the old manifests go with the old versions
        assert again.manifests_merged == (0, 0), "a merged table is left alone"
        rec = reconcile(lh, "m.t", orphan_age="0s")
        manifests = [p for p in Path(lh.table("m.t").location, "metadata").iterdir() if p.name.endswith("-m0.avro")]
        assert len(manifests) == 1, sorted(p.name for p in manifests)
        assert rec.classes["unaccounted"].files == rec.classes["retained"].files == 0
        assert_same_rows(lh.table("m.t").scan(), before_rows, "after the vacuum")


def test_delta_has_no_manifests_to_merge(tmp_path: Path) -> None:
    settings = load_settings(config_file=False, warehouse=str(tmp_path / "wh"), catalog_url="sqlite://")
    with Lakehouse(settings) as lh:
        lh.create_table("m.t", schema=SCHEMA, format="delta")
        for i in range(MANIFEST_MERGE_MIN + 1):
            lh.table("m.t").append(pa.Table.from_pylist([{"id": i, "part": "a"}], schema=SCHEMA))
        assert vacuum(lh, "m.t", retain="0s", dry_run=False).manifests_merged == (0, 0)
