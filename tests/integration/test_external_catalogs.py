"""External Iceberg catalogs (#21): tables that AWS Glue, another lakehouse's Iceberg REST catalog or a foreign
pyiceberg SQL catalog owns are maintained where they live. Writers go through the owner catalog with pyiceberg
directly; our jobs commit through the same catalog; the owner then sees our snapshots and no append is lost.

Glue is moto's server on loopback with Glue's table-version check (``tests/fixtures/glue_server.py``); its S3
holds the Glue tables while the lakehouse's warehouse is on the suite's S3 server: two endpoints, each reached
with its own credentials."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pyarrow as pa
import pytest
from pyiceberg.catalog import Catalog, load_catalog
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.table.snapshots import Operation
from pyiceberg.transforms import DayTransform

from lakehouse import external
from lakehouse.config import load_settings
from lakehouse.core import Lakehouse
from lakehouse.errors import ConfigError, InvalidInputError, StorageError, UnsupportedOperationError
from lakehouse.governance.ops import mask_table
from lakehouse.maintenance.compaction import optimize
from lakehouse.maintenance.dedup import dedup
from lakehouse.maintenance.maintain import health
from lakehouse.maintenance.planner import CompactionOptions
from lakehouse.maintenance.retention import vacuum
from lakehouse.maintenance.tiering import tier
from lakehouse.names import TableName
from tests.conftest import EVENTS, S3Endpoint, events, moto_server, s3_settings, sorted_rows
from tests.integration.conftest import EXE, serving
from tests.integration.test_tiering import aged_events

ROOT = Path(__file__).resolve().parents[2]
KEY, SECRET = "glue-key", "glue-secret"


@pytest.fixture(scope="module")
def glue_url() -> Iterator[str]:
    """moto's server with Glue's optimistic concurrency, for Glue and the S3 bucket of the Glue tables."""
    with moto_server([sys.executable, str(ROOT / "tests" / "fixtures" / "glue_server.py")]) as url:
        boto3.client(
            "s3", endpoint_url=url, region_name="us-east-1", aws_access_key_id=KEY, aws_secret_access_key=SECRET
        ).create_bucket(Bucket="glue-tables")
        yield url


def glue_props(url: str) -> dict[str, str]:
    return {
        "glue.endpoint": url,
        "glue.region": "us-east-1",
        "glue.access-key-id": KEY,
        "glue.secret-access-key": SECRET,
        "s3.endpoint": url,
        "s3.region": "us-east-1",
        "s3.access-key-id": KEY,
        "s3.secret-access-key": SECRET,
    }


def make_events_table(catalog: Catalog, ident: str, location: str | None, batches: int, start: int = 0) -> Any:
    """A day-partitioned events table created and filled through ``catalog`` by pyiceberg itself (one snapshot per
    batch: small files)."""
    namespace = ident.split(".")[0]
    if (namespace,) not in catalog.list_namespaces():
        catalog.create_namespace(namespace)
    table = catalog.create_table(ident, schema=EVENTS, **({"location": location} if location else {}))
    with table.update_spec() as spec:
        spec.add_field("ts", DayTransform(), "ts_day")
    for b in range(batches):
        table.append(events(start + b * 20, 20))
    return table


def rows_of(catalog: Catalog, ident: str) -> list[dict[str, Any]]:
    return sorted_rows(catalog.load_table(ident).scan().to_arrow())


def appending(catalog_factory: Any, ident: str, start: int, batches: int) -> tuple[threading.Thread, list[pa.Table]]:
    """A thread appending ``batches`` through the owner catalog (its own client), as another writer would."""
    written: list[pa.Table] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            table = catalog_factory().load_table(ident)
            for b in range(batches):
                batch = events(start + b * 10, 10)
                table.append(batch)
                written.append(batch)
                time.sleep(0.05)
        except BaseException as e:  # surfaced by the caller
            errors.append(e)

    thread = threading.Thread(target=run)
    thread.errors = errors  # type: ignore[attr-defined]
    thread.start()
    return thread, written


def race(lh: Lakehouse, name: str, thread: threading.Thread) -> int:
    """Compact ``name`` again and again while ``thread`` appends; returns how many compactions committed."""
    committed = 0
    while thread.is_alive():
        result = optimize(lh, name, CompactionOptions(commit_interval=0))
        committed += sum(1 for p in result.partitions if p.status == "committed")
    thread.join()
    assert not thread.errors, thread.errors  # type: ignore[attr-defined]
    return committed


@pytest.mark.s3
@pytest.mark.slow
def test_glue_tables_are_maintained_through_glue(
    glue_url: str, s3_endpoint: S3Endpoint, bucket: str, tmp_path: Path
) -> None:
    props = glue_props(glue_url)
    theirs = load_catalog("theirs", type="glue", **props)
    make_events_table(theirs, "shop.orders", "s3://glue-tables/shop/orders", batches=6)
    expected = rows_of(theirs, "shop.orders")
    with Lakehouse(s3_settings(s3_endpoint, bucket, tmp_path)) as lh:
        report = external.add(lh, "glue", "glue", props)
        assert report.added == ["glue.shop.orders"] and report.error is None
        record = lh.table_record("glue.shop.orders")
        assert record.location == "s3://glue-tables/shop/orders" and record.format == "iceberg"
        assert record.definition.schema.names == EVENTS.names

        done = optimize(lh, "glue.shop.orders", CompactionOptions()).as_dict()
        assert done["files_before"] == 6 * 3 and done["files_after"] == 3, done
        table = theirs.load_table("shop.orders")
        assert table.current_snapshot().summary.operation == Operation.REPLACE
        assert table.current_snapshot().summary["lakehouse.operation"] == "compact"
        assert rows_of(theirs, "shop.orders") == expected, "Glue's readers see our snapshot, same rows"
        # lakehouse's own SQL catalog never heard of it: Glue owns it
        assert SqlCatalog("x", uri=lh.ctx.catalog_url, warehouse="file:///tmp").list_namespaces() == []

        # a writer appending through Glue while we compact: every row survives, nothing doubles
        thread, written = appending(lambda: load_catalog("w", type="glue", **props), "shop.orders", 10_000, 12)
        assert race(lh, "glue.shop.orders", thread) >= 1
        expected = sorted(expected + sorted_rows(pa.concat_tables(written)), key=lambda r: r["id"])
        assert rows_of(theirs, "shop.orders") == expected
        assert lh.query("SELECT count(*) AS n FROM glue.shop.orders").table.to_pylist() == [{"n": len(expected)}]

        # vacuum expires the old snapshots through Glue and deletes their files on Glue's bucket
        swept = vacuum(lh, "glue.shop.orders", retain="0s", dry_run=False)
        assert swept.files_deleted > 0, swept.as_dict()
        assert len(theirs.load_table("shop.orders").snapshots()) == 1
        assert rows_of(theirs, "shop.orders") == expected

        jobs = {j.kind for j in lh.jobs("glue.shop.orders")}
        assert {"optimize", "vacuum"} <= jobs, "our bookkeeping stays in our database"


@pytest.mark.s3
def test_tiering_an_external_table_moves_its_objects_on_its_own_store(
    glue_url: str, s3_endpoint: S3Endpoint, bucket: str, tmp_path: Path
) -> None:
    props = glue_props(glue_url)
    theirs = load_catalog("theirs", type="glue", **props)
    theirs.create_namespace("aged") if ("aged",) not in theirs.list_namespaces() else None
    table = theirs.create_table("aged.events", schema=EVENTS, location="s3://glue-tables/aged/events")
    with table.update_spec() as spec:
        spec.add_field("ts", DayTransform(), "ts_day")
    now = dt.datetime.now(dt.UTC)
    for b in range(2):
        table.append(aged_events(now, b * 1000))
    before = rows_of(theirs, "aged.events")
    with Lakehouse(s3_settings(s3_endpoint, bucket, tmp_path)) as lh:
        external.add(lh, "glue", "glue", props)
        done = tier(lh, "glue.aged.events", dry_run=False)
        assert done.files_moved > 0 and done.files_rewritten > 0, done.as_dict()
        client = boto3.client(
            "s3", endpoint_url=glue_url, region_name="us-east-1", aws_access_key_id=KEY, aws_secret_access_key=SECRET
        )
        listed = client.list_objects_v2(Bucket="glue-tables", Prefix="aged/events/")["Contents"]
        classes = {o.get("StorageClass", "STANDARD") for o in listed if o["Key"].endswith(".parquet")}
        assert classes == {"STANDARD", "STANDARD_IA", "GLACIER_IR"}, "hot, warm and cold on Glue's own store"
        assert rows_of(theirs, "aged.events") == before
        assert theirs.load_table("aged.events").current_snapshot().summary.operation == Operation.REPLACE


def test_a_served_rest_catalog_of_another_lakehouse_as_the_owner(tmp_path: Path) -> None:
    """The other lakehouse serves its Iceberg REST catalog; ours connects it as an external catalog of type rest.
    Our compaction lands in its catalog (its job history has the REST commit), appends through its REST
    endpoint racing our compaction all survive."""
    from lakehouse.governance.keys import create_key

    other = tmp_path / "other"
    other.mkdir()
    warehouse, catalog_url = str(other / "wh"), f"sqlite:///{other / 'catalog.db'}"
    with Lakehouse(load_settings(config_file=False, warehouse=warehouse, catalog_url=catalog_url)) as owner:
        owner.init()
        key = create_key(owner, name="maintenance", role="engineer")[1]
        t = owner.create_table("sales.events", schema=EVENTS, format="iceberg")
        for b in range(6):
            t.append(events(b * 20, 20))
        expected = sorted_rows(t.scan())
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LAKEHOUSE_", "AWS_"))}
    with serving(other, ["--warehouse", warehouse, "--catalog-url", catalog_url], env) as base:
        props = {"uri": f"{base}/iceberg", "token": "${OTHER_LAKEHOUSE_KEY}"}
        os.environ["OTHER_LAKEHOUSE_KEY"] = key  # a secret by reference: the catalog database holds ${...}
        try:
            ours = Lakehouse(load_settings(config_file=False, warehouse=str(tmp_path / "ours")))
            with ours:
                assert external.add(ours, "partner", "rest", props).added == ["partner.sales.events"]
                assert ours.catalog.stored_catalogs()[0].properties["token"] == "${OTHER_LAKEHOUSE_KEY}"
                done = optimize(ours, "partner.sales.events", CompactionOptions()).as_dict()
                assert done["files_after"] == 1 and done["rows_out"] == len(expected)

                def client() -> Catalog:
                    from pyiceberg.catalog.rest import RestCatalog

                    return RestCatalog("w", uri=f"{base}/iceberg", token=key)

                thread, written = appending(client, "sales.events", 10_000, 10)
                assert race(ours, "partner.sales.events", thread) >= 1
                expected = sorted(expected + sorted_rows(pa.concat_tables(written)), key=lambda r: r["id"])
                got = ours.query("SELECT * FROM partner.sales.events").table
                assert sorted_rows(got) == expected
        finally:
            del os.environ["OTHER_LAKEHOUSE_KEY"]
    with Lakehouse(load_settings(config_file=False, warehouse=warehouse, catalog_url=catalog_url)) as owner:
        assert sorted_rows(owner.table("sales.events").scan()) == expected, "the owner reads every row"
        commits = [j for j in owner.jobs("sales.events") if j.kind == "rest-commit"]
        assert commits and all(j.state == "committed" for j in commits), "our commits went through its catalog"


def test_a_foreign_sql_catalog_and_the_split_brain_guard(tmp_path: Path) -> None:
    """A pyiceberg SqlCatalog database that is not ours: maintained through it; registering its table by
    location is refused (a split brain), an Iceberg table nobody we know owns is registered with a warning."""
    uri = f"sqlite:///{tmp_path / 'theirs.db'}"
    theirs = SqlCatalog("theirs", uri=uri, warehouse=f"file://{tmp_path / 'their-wh'}")
    make_events_table(theirs, "ops.logs", None, batches=5)
    expected = rows_of(theirs, "ops.logs")
    location = theirs.load_table("ops.logs").location().removeprefix("file://")
    with Lakehouse(load_settings(config_file=False, warehouse=str(tmp_path / "wh"))) as lh:
        with pytest.raises(StorageError):  # nothing is stored for a catalog that cannot be listed
            external.add(lh, "broken", "sql", {"uri": f"sqlite:///{tmp_path}/missing/dir/x.db"})
        assert lh.catalog.stored_catalogs() == []
        external.add(lh, "ext", "sql", {"uri": uri, "catalog-name": "theirs"})
        with pytest.raises(InvalidInputError, match=r"ext\.ops\.logs"):
            lh.register_table("mine.logs", location=location)
        assert [str(r.name) for r in lh.list_tables()] == ["ext.ops.logs"], "the refused register left nothing"
        done = optimize(lh, "ext.ops.logs", CompactionOptions()).as_dict()
        assert done["files_after"] == 3 and rows_of(theirs, "ops.logs") == expected
        assert theirs.load_table("ops.logs").current_snapshot().summary["lakehouse.operation"] == "compact"
        lh.set_policy("ext.ops.logs", {"compaction": {"target_file_size": "64MB"}})

        # every other rewrite commits through the owner too: Z-order, dedup, masking
        zordered = optimize(lh, "ext.ops.logs", CompactionOptions(zorder=("country", "id"), min_input_files=1))
        assert zordered.as_dict()["rows_out"] == len(expected) and rows_of(theirs, "ops.logs") == expected
        theirs.load_table("ops.logs").append(events(0, 10))  # ten duplicates of ids 0..9, through the owner
        deduped = dedup(lh, "ext.ops.logs", keys=["id"], dry_run=False)
        assert deduped.rows_removed == 10 and rows_of(theirs, "ops.logs") == expected
        assert theirs.load_table("ops.logs").current_snapshot().summary["lakehouse.operation"] == "dedup"
        masked = mask_table(lh, "ext.ops.logs", policies={"note": "redact"}, dry_run=False)
        assert masked["rows"] == len(expected), masked
        notes = {r["note"] for r in rows_of(theirs, "ops.logs")}
        assert not any(n and n.startswith("note ") for n in notes), "the owner's readers see masked values"
        assert 0 <= health(lh, "ext.ops.logs").score <= 100
        expected = rows_of(theirs, "ops.logs")

        with pytest.raises(UnsupportedOperationError, match="drop it there"):
            lh.drop_table("ext.ops.logs")
        with pytest.raises(UnsupportedOperationError):
            lh.create_table("ext.ops.new", schema=EVENTS)

        # renamed in the owner catalog (its files stay where they are): one sync follows it
        theirs.rename_table("ops.logs", "ops.renamed")
        report = lh.sync_catalogs()[0]
        assert (report.removed, report.added, report.skipped) == (["ext.ops.logs"], ["ext.ops.renamed"], {})
        assert [str(r.name) for r in lh.list_tables()] == ["ext.ops.renamed"]
        theirs.rename_table("ops.renamed", "ops.logs")
        assert lh.sync_catalogs()[0].added == ["ext.ops.logs"]

        # dropped in the owner catalog: the next sync forgets it and its policy
        theirs.drop_table("ops.logs")
        report = lh.sync_catalogs()[0]
        assert report.removed == ["ext.ops.logs"] and lh.list_tables() == []
        assert lh.catalog.policy(TableName.parse("ext.ops.logs")) == {}, "its policy went with it"

        # an Iceberg table no connected catalog lists: registered, with the warning
        stray = SqlCatalog("stray", uri=f"sqlite:///{tmp_path / 'stray.db'}", warehouse=f"file://{tmp_path / 's'}")
        make_events_table(stray, "x.y", None, batches=1)
        warned: list[str] = []
        lh.register_table("mine.y", location=stray.load_table("x.y").location(), warn=warned.append)
        assert warned and "lakehouse's catalog only" in warned[0]

        assert external.remove(lh, "ext") == []
        assert lh.catalog.stored_catalogs() == []


def test_the_catalog_commands(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'theirs.db'}"
    theirs = SqlCatalog("theirs", uri=uri, warehouse=f"file://{tmp_path / 'their-wh'}")
    make_events_table(theirs, "ops.logs", None, batches=3)
    wh = str(tmp_path / "wh")

    def run(*args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([EXE, "-w", wh, *args], capture_output=True, text=True, timeout=120)
        assert (proc.returncode == 0) == ok, (args, proc.stdout, proc.stderr)
        return proc

    assert "glue | rest | sql | hive" in run("catalog", "add", "--help").stdout
    keys = ["-p", "s3.access-key-id=k", "-p", "s3.secret-access-key=x"]
    run("catalog", "add", "ext", "--type", "sql", "-p", f"uri={uri}", "-p", "catalog-name=theirs", *keys)
    listed = json.loads(run("catalog", "list", "--json").stdout)
    assert listed == [
        {
            "name": "ext",
            "type": "sql",
            "source": "database",
            "properties": {
                "uri": uri,
                "catalog-name": "theirs",
                "s3.access-key-id": "k",
                "s3.secret-access-key": "***",
            },
            "tables": 1,
        }
    ]
    tables = json.loads(run("table", "list", "--json").stdout)
    assert [(t["name"], t["catalog"]) for t in tables] == [("ext.ops.logs", "ext")]
    assert json.loads(run("optimize", "ext.ops.logs", "--json").stdout)["files_after"] == 3
    failed = run("catalog", "add", "bad", "--type", "nessie", ok=False)
    assert failed.stderr.count("\n") == 1 and "unknown catalog type" in failed.stderr
    make_events_table(theirs, "ops.more", None, batches=1)
    synced = json.loads(run("catalog", "sync", "--json").stdout)
    assert synced[0]["added"] == ["ext.ops.more"]
    assert "forgot 2 table(s)" in run("catalog", "remove", "ext").stdout
    assert json.loads(run("table", "list", "--json").stdout) == []


@pytest.mark.s3
def test_a_delta_table_behind_a_glue_entry_on_another_store(
    glue_url: str, s3_endpoint: S3Endpoint, bucket: str, tmp_path: Path
) -> None:
    """A Delta table is maintained in place by path: on another endpoint than the warehouse (a [stores] entry),
    and the Glue entry pointing at it keeps working after our compaction (same path, protocol respected)."""
    from deltalake import DeltaTable, write_deltalake

    location = "s3://glue-tables/delta/clicks"
    options = {
        "AWS_ENDPOINT_URL": glue_url,
        "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET,
        "AWS_ALLOW_HTTP": "true",
    }
    for b in range(5):
        write_deltalake(location, events(b * 20, 20), mode="append", storage_options=options)
    glue = boto3.client(
        "glue", endpoint_url=glue_url, region_name="us-east-1", aws_access_key_id=KEY, aws_secret_access_key=SECRET
    )
    glue.create_database(DatabaseInput={"Name": "deltas"})
    glue.create_table(
        DatabaseName="deltas",
        TableInput={
            "Name": "clicks",
            "TableType": "EXTERNAL_TABLE",
            "Parameters": {"spark.sql.sources.provider": "delta"},
            "StorageDescriptor": {"Location": location},
        },
    )
    protocol = DeltaTable(location, storage_options=options).protocol()
    stores = {"tables": {"prefix": "s3://glue-tables", "endpoint": glue_url, "access_key_id": KEY,
                         "secret_access_key": SECRET, "region": "us-east-1"}}  # fmt: skip
    with Lakehouse(s3_settings(s3_endpoint, bucket, tmp_path, stores=stores)) as lh:
        lh.register_table("web.clicks", location=location)
        expected = sorted_rows(lh.table("web.clicks").scan())
        assert optimize(lh, "web.clicks", CompactionOptions()).as_dict()["files_after"] == 1
        assert lh.query("SELECT count(*) AS n FROM web.clicks").table.to_pylist() == [{"n": 100}]
    entry = glue.get_table(DatabaseName="deltas", Name="clicks")["Table"]["StorageDescriptor"]["Location"]
    assert entry == location, "the Glue entry still names the same path"
    reader = DeltaTable(entry, storage_options=options)
    assert sorted_rows(reader.to_pyarrow_table()) == expected
    assert reader.protocol() == protocol, "the protocol was not raised"
    assert len(reader.file_uris()) == 1


@pytest.mark.postgres
@pytest.mark.slow
def test_two_autopilots_on_one_postgres_catalog_share_external_tables(postgres_url: str, tmp_path: Path) -> None:
    """Two autopilot processes on one shared PostgreSQL catalog database never maintain the same external table
    at once: the lease is our bookkeeping, keyed by the table's name, whoever owns the table."""
    uri = f"sqlite:///{tmp_path / 'theirs.db'}"
    theirs = SqlCatalog("theirs", uri=uri, warehouse=f"file://{tmp_path / 'their-wh'}")
    names = [f"ops.t{i}" for i in range(3)]
    for i, ident in enumerate(names):
        make_events_table(theirs, ident, None, batches=6, start=i * 1000)
    expected = {ident: rows_of(theirs, ident) for ident in names}
    wh = str(tmp_path / "wh")
    with Lakehouse(load_settings(config_file=False, warehouse=wh, catalog_url=postgres_url)) as lh:
        external.add(lh, "ext", "sql", {"uri": uri, "catalog-name": "theirs"})
    procs = [
        subprocess.Popen(
            [
                EXE,
                "-w",
                wh,
                "--catalog-url",
                postgres_url,
                "autopilot",
                "--json",
                "--interval",
                "0.2",
                "--duration",
                "8",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=180) for p in procs]
    for p, (_out, errs) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, errs
    with Lakehouse(load_settings(config_file=False, warehouse=wh, catalog_url=postgres_url)) as lh:
        jobs = [j for j in lh.jobs(limit=100_000) if j.table_name and j.kind == "maintain"]
        assert len({j.params["holder"] for j in jobs}) == 2, "both autopilots worked"
        for ident in names:
            name = f"ext.{ident}"
            spans = sorted(
                (j.started_at, j.finished_at or dt.datetime.now(dt.UTC)) for j in jobs if j.table_name == name
            )
            assert spans, name
            for (_s1, e1), (s2, _e2) in itertools.pairwise(spans):
                assert e1 <= s2, f"{name}: two maintain jobs overlapped"
            assert rows_of(theirs, ident) == expected[ident]
            assert len(theirs.load_table(ident).inspect.files()) == 3, "compacted through the owner catalog"
        assert lh.catalog.leases() == []


def test_catalogs_and_stores_from_lakehouse_toml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    uri = f"sqlite:///{tmp_path / 'theirs.db'}"
    theirs = SqlCatalog("prod", uri=uri, warehouse=f"file://{tmp_path / 'their-wh'}")
    make_events_table(theirs, "ops.logs", None, batches=2)
    monkeypatch.setenv("THEIR_CATALOG_URI", uri)
    toml = tmp_path / "lakehouse.toml"
    toml.write_text(
        f'warehouse = "{tmp_path / "wh"}"\n'
        '[catalogs.legacy]\ntype = "sql"\nproperties = { uri = "${THEIR_CATALOG_URI}", "catalog-name" = "prod" }\n'
        '[stores.archive]\nprefix = "s3a://archive/old/"\nendpoint = "http://127.0.0.1:1"\n'
    )
    settings = load_settings(config_file=toml)
    assert settings.stores["archive"].prefix == "s3://archive/old"
    with Lakehouse(settings) as lh:
        assert lh.ctx.credentials_for("s3://archive/old/t").endpoint_url == "http://127.0.0.1:1"  # type: ignore[union-attr]
        assert lh.ctx.credentials_for("s3://archive/other") is None, "no store claims it, no [s3] settings"
        assert [r.added for r in lh.sync_catalogs()] == [["legacy.ops.logs"]]
        assert external.connected(lh)["legacy"].source == "settings"
        assert lh.query("SELECT count(*) AS n FROM legacy.ops.logs").table.to_pylist() == [{"n": 40}]
        with pytest.raises(InvalidInputError, match="settings"):
            external.remove(lh, "legacy")
    toml.write_text('[catalogs.x]\ntype = "nessie"\n')
    with pytest.raises(ConfigError, match=r"catalogs\.x\.type"):
        load_settings(config_file=toml)


def test_the_api_serves_external_tables_by_their_three_part_names(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from api.app import create_app
    from lakehouse.governance.keys import create_key

    uri = f"sqlite:///{tmp_path / 'theirs.db'}"
    theirs = SqlCatalog("theirs", uri=uri, warehouse=f"file://{tmp_path / 'their-wh'}")
    make_events_table(theirs, "ops.logs", None, batches=3)
    settings = load_settings(config_file=False, warehouse=str(tmp_path / "wh"))
    with Lakehouse(settings) as lh:
        external.add(lh, "ext", "sql", {"uri": uri, "catalog-name": "theirs"})
        key = create_key(lh, name="ops", role="engineer")[1]
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        headers = {"X-API-Key": key}
        listed = client.get("/tables", headers=headers).json()
        assert [t["name"] for t in listed["items"] if t.get("catalog") == "ext"] == ["ext.ops.logs"], listed
        shown = client.get("/tables/ext.ops.logs", headers=headers)
        assert shown.status_code == 200 and shown.json()["name"] == "ext.ops.logs", shown.text
        done = client.post("/tables/ext.ops.logs/jobs/optimize", headers=headers, json={"dry_run": False})
        assert done.status_code == 200, done.text
        assert theirs.load_table("ops.logs").current_snapshot().summary["lakehouse.operation"] == "compact"
        missing = client.get("/tables/ext.ops.nothing", headers=headers)
        assert missing.status_code == 404 and "no table ext.ops.nothing" in missing.json()["detail"]
