"""The served Iceberg REST catalog with clients nobody here wrote: pyiceberg's ``RestCatalog`` and DuckDB's iceberg
extension, against ``lakehouse serve`` in its own process on loopback (Spark's ``RESTCatalog``: test_spark.py).

What must hold: clients see what the CLI sees (one catalog database), their commits pass the same optimistic
check as our jobs and land in the job history and audit log, a REST append racing our compaction keeps every
row, tables with PII are refused to callers who may not read PII, and errors follow the spec's error model."""

from __future__ import annotations

import json
import os
import subprocess
import threading
from typing import Any

import pyarrow as pa
import pytest
import requests

from lakehouse.config import load_settings
from lakehouse.core import Lakehouse
from lakehouse.governance.keys import create_key
from lakehouse.maintenance.compaction import optimize
from lakehouse.maintenance.planner import CompactionOptions
from tests.conftest import S3Endpoint, s3_settings
from tests.integration.conftest import EXE, SCHEMA, Served, serving


def rows_of(table: pa.Table) -> list[dict[str, Any]]:
    return sorted(table.to_pylist(), key=lambda r: (r["id"], r["name"]))


# ---- pyiceberg's RestCatalog -----------------------------------------------------------------------------------


def test_pyiceberg_lists_and_reads_what_the_cli_sees(served: Served) -> None:
    cat = served.rest("admin")
    assert ("sales",) in cat.list_namespaces() and ("crm",) in cat.list_namespaces()
    assert cat.list_tables("sales") == [("sales", "orders")], "Delta tables are not Iceberg REST tables"
    scanned = cat.load_table("sales.orders").scan().to_arrow()
    with served.lakehouse() as lh:
        queried = lh.query("SELECT * FROM sales.orders").table
    assert rows_of(scanned) == rows_of(queried) and len(queried) == 4


def test_create_and_append_through_rest_then_optimize(served: Served) -> None:
    cat = served.rest("engineer")
    cat.create_namespace_if_not_exists("rest")
    table = cat.create_table("rest.created", schema=SCHEMA)
    for i in range(4):
        table.append(pa.table({"id": [i * 10 + j for j in range(5)], "name": ["x"] * 5, "amount": [1.0] * 5}))
    with served.lakehouse() as lh:
        assert "rest.created" in {str(r.name) for r in lh.list_tables()}, "the registry lists what REST created"
        assert lh.query("SELECT count(*) AS n FROM rest.created").table.column("n")[0].as_py() == 20
        jobs = [j for j in lh.jobs("rest.created") if j.kind == "rest-commit"]
        assert len(jobs) == 4 and all(j.state == "committed" for j in jobs)
        assert sum(int(j.metrics["rows_added"]) for j in jobs) == 20
        audit = [a for a in lh.audit_log("rest.created") if a.action == "table.rest-commit"]
        assert len(audit) == 4 and all(a.actor.startswith("key:") for a in audit)
        runs = [
            e
            for e in lh.catalog.lineage_events(limit=1000)
            if e["job"]["name"] == "lakehouse.rest-commit" and e["eventType"] == "COMPLETE"
        ]
        assert sum(1 for e in runs if [o["name"] for o in e["outputs"]] == ["rest.created"]) == 4
        before = rows_of(lh.query("SELECT * FROM rest.created").table)
        result = optimize(lh, "rest.created", CompactionOptions()).as_dict()
        assert result["files_after"] < result["files_before"] and result["rows_in"] == result["rows_out"] == 20
        assert rows_of(lh.query("SELECT * FROM rest.created").table) == before
    # the client sees our compaction as the table's newest snapshot, and its rows
    reloaded = cat.load_table("rest.created")
    assert reloaded.current_snapshot() is not None
    assert reloaded.current_snapshot().snapshot_id != table.current_snapshot().snapshot_id
    assert rows_of(reloaded.scan().to_arrow()) == before


def test_a_rest_append_racing_our_compaction_keeps_every_row(served: Served) -> None:
    cat = served.rest("engineer")
    cat.create_namespace_if_not_exists("race")
    table = cat.create_table("race.t", schema=SCHEMA)
    next_id = 0
    for _ in range(30):
        table.append(pa.table({"id": list(range(next_id, next_id + 10)), "name": ["s"] * 10, "amount": [0.5] * 10}))
        next_id += 10
    stop = threading.Event()
    appended: list[int] = []
    errors: list[BaseException] = []

    def writer() -> None:
        nonlocal next_id
        client = served.rest("engineer").load_table("race.t")
        try:
            while not stop.is_set():
                ids = list(range(next_id, next_id + 10))
                client.append(pa.table({"id": ids, "name": ["w"] * 10, "amount": [1.0] * 10}))
                appended.extend(ids)
                next_id += 10
        except BaseException as e:  # reported below
            errors.append(e)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        with served.lakehouse() as lh:
            for _ in range(2):
                optimize(lh, "race.t", CompactionOptions(commit_interval=0))
    finally:
        stop.set()
        thread.join(timeout=120)
    assert not errors, errors
    assert appended, "the writer committed while the compaction ran"
    with served.lakehouse() as lh:
        ids = lh.query("SELECT id FROM race.t").table.column("id").to_pylist()
    assert sorted(ids) == list(range(next_id)), "no row lost or doubled"


def test_tables_with_pii_are_not_handed_to_who_may_not_read_it(served: Served) -> None:
    from pyiceberg.exceptions import ForbiddenError

    with pytest.raises(ForbiddenError, match="PII columns \\(name\\)"):
        served.rest("engineer").load_table("crm.people")
    with pytest.raises(ForbiddenError):
        served.rest("reader").load_table("crm.people")
    assert served.rest("admin").load_table("crm.people").scan().to_arrow().num_rows == 1
    assert served.rest("reader").load_table("sales.orders").scan().to_arrow().num_rows >= 4
    # a quarantine table holds raw input: handed to admins only, and no client may make one
    from lakehouse.ingest.pipeline import ingest_records

    with served.lakehouse() as lh:
        lh.create_table("crm.leads", schema=SCHEMA, format="iceberg")
        assert ingest_records(lh, "crm.leads", [{"id": "alice@corp.com"}], source="t:1").quarantined == 1
    for role in ("reader", "engineer"):
        with pytest.raises(ForbiddenError, match="quarantine table"):
            served.rest(role).load_table("crm.leads__quarantine")
    assert served.rest("admin").load_table("crm.leads__quarantine").scan().to_arrow().num_rows == 1
    with pytest.raises(ForbiddenError, match="reserved"):
        served.rest("engineer").create_table("crm.mine__quarantine", schema=SCHEMA)


def test_a_reader_cannot_commit_and_errors_follow_the_spec(served: Served) -> None:
    from pyiceberg.exceptions import ForbiddenError, NoSuchNamespaceError, NoSuchTableError

    table = served.rest("reader").load_table("sales.orders")
    with pytest.raises(ForbiddenError):
        table.append(pa.table({"id": [99], "name": ["r"], "amount": [0.0]}, schema=SCHEMA))
    with pytest.raises(NoSuchTableError):
        served.rest("admin").load_table("sales.nope")
    with pytest.raises(NoSuchTableError):
        served.rest("admin").load_table("sales.deltas")
    with pytest.raises(NoSuchNamespaceError):
        served.rest("admin").list_tables("nope")
    r = requests.get(f"{served.url}/v1/namespaces/sales/tables/nope", headers={"Authorization": "Bearer x"})
    assert r.status_code == 401 and r.json()["error"]["type"] == "NotAuthorizedException"
    r = requests.get(
        f"{served.url}/v1/namespaces/sales/tables/nope", headers={"Authorization": f"Bearer {served.keys['admin']}"}
    )
    assert r.status_code == 404
    assert r.json()["error"] == {"message": r.json()["error"]["message"], "type": "NoSuchTableException", "code": 404}


def test_stale_commits_are_refused_with_409(served: Served) -> None:
    from pyiceberg.exceptions import CommitFailedException
    from pyiceberg.types import StringType

    cat = served.rest("engineer")
    cat.create_namespace_if_not_exists("stale")
    first = cat.create_table("stale.t", schema=SCHEMA)
    second = cat.load_table("stale.t")
    with first.update_schema() as update:
        update.add_column("extra", StringType())
    with pytest.raises(CommitFailedException), second.update_schema() as update:
        update.add_column("other", StringType())
    with served.lakehouse() as lh:
        assert "extra" in lh.table("stale.t").definition.schema.names, "the registry follows the schema"


def test_oauth_tokens_from_an_api_key(served: Served) -> None:
    cat = served.rest(
        "reader",
        credential=f"any-client:{served.keys['reader']}",
        **{"oauth2-server-uri": f"{served.url}/v1/oauth/tokens"},
    )
    assert ("sales", "orders") in cat.list_tables("sales")
    r = requests.post(
        f"{served.url}/v1/oauth/tokens",
        data={"grant_type": "client_credentials", "client_id": "x", "client_secret": "lhk_bad_key"},
    )
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"
    token = requests.post(
        f"{served.url}/v1/oauth/tokens",
        data={"grant_type": "client_credentials", "client_id": "x", "client_secret": served.keys["reader"]},
    ).json()
    assert token["token_type"] == "bearer" and token["expires_in"] == 3600
    ok = requests.get(f"{served.url}/v1/namespaces", headers={"Authorization": f"Bearer {token['access_token']}"})
    assert ok.status_code == 200
    forged = token["access_token"][:-4] + "0000"
    r = requests.get(f"{served.url}/v1/namespaces", headers={"Authorization": f"Bearer {forged}"})
    assert r.status_code == 401


def test_register_rename_and_drop(served: Served) -> None:
    with served.lakehouse() as lh:
        source = lh.create_table("reg.source", schema=SCHEMA, format="iceberg")
        source.append(pa.table({"id": [7], "name": ["r"], "amount": [7.0]}, schema=SCHEMA))
        metadata = source.metadata_location  # type: ignore[attr-defined]
        lh.drop_table("reg.source")  # unregistered; the files stay
    cat = served.rest("admin")
    registered = cat.register_table("reg.adopted", metadata)
    assert registered.scan().to_arrow().num_rows == 1
    cat.rename_table("reg.adopted", "reg.renamed")
    with served.lakehouse() as lh:
        names = {str(r.name) for r in lh.list_tables()}
        assert "reg.renamed" in names and "reg.adopted" not in names
        assert lh.query("SELECT count(*) AS n FROM reg.renamed").table.column("n")[0].as_py() == 1
    cat.drop_table("reg.renamed")
    with served.lakehouse() as lh:
        assert "reg.renamed" not in {str(r.name) for r in lh.list_tables()}


def test_clients_cannot_put_files_outside_the_warehouse(served: Served, tmp_path: Any) -> None:
    """A client names locations (create, register, set-location, path properties); the served catalog keeps each
    one inside the warehouse (a table's path properties inside its location), refusing before anything is
    written, and a refused request leaves the table and the registry as they were."""
    from pyiceberg.exceptions import ForbiddenError

    outside = tmp_path / "outside"
    outside.mkdir()
    cat = served.rest("engineer")
    cat.create_namespace_if_not_exists("loc")
    headers = {"Authorization": f"Bearer {served.keys['engineer']}", "Content-Type": "application/json"}
    schema = {"type": "struct", "schema-id": 0, "fields": [{"id": 1, "name": "id", "required": False, "type": "long"}]}

    def create(body: dict[str, Any]) -> requests.Response:
        return requests.post(f"{served.url}/v1/namespaces/loc/tables", data=json.dumps(body), headers=headers)

    for location in (str(outside / "t"), "../../escaped", f"{served.warehouse}/../escaped", served.warehouse):
        for staged in (False, True):
            r = create({"name": "t", "schema": schema, "location": location, "stage-create": staged})
            assert r.status_code == 403, (location, staged, r.text)
            assert r.json()["error"]["type"] == "ForbiddenException"
    for key in ("write.metadata.path", "write.data.path", "write.object-storage.path"):
        r = create({"name": "t", "schema": schema, "properties": {key: str(outside)}})
        assert r.status_code == 403 and key in r.json()["error"]["message"], r.text
    with served.lakehouse() as lh:
        assert "loc.t" not in {str(r.name) for r in lh.list_tables()}

    # a staged create commits with the location its client sends: checked as a create's
    commit = {
        "identifier": {"namespace": ["loc"], "name": "staged"},
        "requirements": [{"type": "assert-create"}],
        "updates": [
            {"action": "assign-uuid", "uuid": "9c12d441-03fe-4693-9a96-a0705ddf69c1"},
            {"action": "upgrade-format-version", "format-version": 2},
            {"action": "add-schema", "schema": schema, "last-column-id": 1},
            {"action": "set-current-schema", "schema-id": -1},
            {"action": "add-spec", "spec": {"spec-id": 0, "fields": []}},
            {"action": "set-default-spec", "spec-id": -1},
            {"action": "add-sort-order", "sort-order": {"order-id": 0, "fields": []}},
            {"action": "set-default-sort-order", "sort-order-id": -1},
            {"action": "set-location", "location": str(outside / "staged")},
        ],
    }
    r = requests.post(f"{served.url}/v1/namespaces/loc/tables/staged", data=json.dumps(commit), headers=headers)
    assert r.status_code == 403, r.text
    inside = f"{served.warehouse}/loc/staged-here"
    commit["updates"][-1] = {"action": "set-location", "location": inside}  # type: ignore[index]
    r = requests.post(f"{served.url}/v1/namespaces/loc/tables/staged", data=json.dumps(commit), headers=headers)
    assert r.status_code == 200, r.text
    assert cat.load_table("loc.staged").location().endswith("/loc/staged-here")

    # an existing table: not moved, its path properties kept inside it
    table = cat.create_table("loc.kept", schema=SCHEMA, location=f"{served.warehouse}/loc/kept-here")
    table.append(pa.table({"id": [1], "name": ["a"], "amount": [1.0]}, schema=SCHEMA))
    metadata = table.metadata_location

    def update(*updates: dict[str, Any]) -> requests.Response:
        body = {"requirements": [], "updates": list(updates)}
        return requests.post(f"{served.url}/v1/namespaces/loc/tables/kept", data=json.dumps(body), headers=headers)

    r = update({"action": "set-location", "location": str(outside / "moved")})
    assert r.status_code == 400 and "does not move tables" in r.json()["error"]["message"], r.text
    for where in (str(outside), f"{table.location()}/../elsewhere"):
        with pytest.raises(ForbiddenError, match=r"write\.metadata\.path"), table.transaction() as tx:
            tx.set_properties({"write.metadata.path": where})
    assert list(outside.iterdir()) == [], "nothing was written outside the warehouse"
    assert cat.load_table("loc.kept").metadata_location == metadata, "a refused commit changes nothing"
    r = update(
        {"action": "set-location", "location": table.location()},  # naming the current location is no move
        {"action": "set-properties", "updates": {"write.metadata.path": f"{table.location()}/meta2"}},
    )
    assert r.status_code == 200, r.text
    cat.load_table("loc.kept").append(pa.table({"id": [2], "name": ["b"], "amount": [2.0]}, schema=SCHEMA))
    assert "/loc/kept-here/meta2/" in cat.load_table("loc.kept").metadata_location
    with served.lakehouse() as lh:
        assert lh.query("SELECT count(*) AS n FROM loc.kept").table.column("n")[0].as_py() == 2
        assert lh.catalog.get_table(lh.table("loc.kept").name).location.endswith("/loc/kept-here")

    # register: the table lakehouse's jobs would then write to must be inside the warehouse too
    foreign = outside / "foreign"
    with Lakehouse(load_settings(config_file=False, warehouse=str(tmp_path / "other-wh"))) as other:
        made = other.create_table("x.t", schema=SCHEMA, format="iceberg", location=str(foreign))
        made.append(pa.table({"id": [1], "name": ["a"], "amount": [1.0]}, schema=SCHEMA))
        foreign_metadata = made.metadata_location  # type: ignore[attr-defined]
        foreign_snapshot = made._table.current_snapshot()  # type: ignore[attr-defined]
    with pytest.raises(ForbiddenError, match="not inside the warehouse"):
        served.rest("admin").register_table("loc.foreign", foreign_metadata)

    # a snapshot's manifest list, and the manifests and files it names, are opened by every later read: they must
    # lie inside the table too (a manifest list of /etc/passwd was accepted, and each query then opened it)
    def snapshot(manifest_list: str, snapshot_id: int = 77) -> requests.Response:
        return update(
            {
                "action": "add-snapshot",
                "snapshot": {
                    "snapshot-id": snapshot_id,
                    "timestamp-ms": 1,
                    "manifest-list": manifest_list,
                    "summary": {"operation": "append"},
                },
            },
            {"action": "set-snapshot-ref", "ref-name": "main", "type": "branch", "snapshot-id": snapshot_id},
        )

    before = cat.load_table("loc.kept").metadata_location
    r = snapshot("/etc/passwd")
    assert r.status_code == 403 and "manifest list of snapshot 77" in r.text, r.text
    r = snapshot(f"{table.location()}/metadata/no-such-list.avro")  # inside, but nothing a reader could read
    assert r.status_code == 400 and "cannot be read" in r.text, r.text
    copied = f"{table.location()}/metadata/copied-list.avro"  # inside; its manifests and files are not
    with open(foreign_snapshot.manifest_list.removeprefix("file://"), "rb") as src:
        data = src.read()
    with open(copied.removeprefix("file://"), "wb") as dst:
        dst.write(data)
    r = snapshot(copied, foreign_snapshot.snapshot_id)
    assert r.status_code == 403 and "points outside the table's location" in r.text and "outside/foreign" in r.text
    assert cat.load_table("loc.kept").metadata_location == before, "refused commits change nothing"


def test_malformed_requests_are_400_in_the_spec_s_error_model(served: Served) -> None:
    """Bodies that parse as JSON but not as the spec's requests (shapes pyiceberg's validators meet with their own
    exceptions) are the client's mistake: 400, never a 500."""
    headers = {"Authorization": f"Bearer {served.keys['engineer']}", "Content-Type": "application/json"}
    field = {"id": 1, "name": "a", "required": False, "type": "decimal(99,2)"}
    cases = [
        ("tables/orders", {"requirements": [], "updates": [{"action": "set-properties", "updates": "x"}]}),
        ("tables/orders", {"requirements": [], "updates": "x"}),
        ("tables/orders", {"requirements": 5, "updates": []}),
        ("tables/orders", {"requirements": [], "updates": [{"action": "add-schema", "schema": "x"}]}),
        ("tables/not_yet", {"requirements": [{"type": "assert-create"}], "updates": [{"action": "set-location"}]}),
        ("tables", {"name": "t4", "schema": {"type": "struct", "fields": [field]}}),
        ("tables", {"name": "t4", "schema": {"type": "struct", "fields": "x"}}),
        ("tables", {"name": "t4", "schema": "x"}),
        ("tables", {"name": "t4", "schema": {}}),
        ("properties", {"updates": {"owner": 5}}),
        ("register", {"name": "t4", "metadata-location": 5}),
    ]
    for path, body in cases:
        r = requests.post(f"{served.url}/v1/namespaces/sales/{path}", data=json.dumps(body), headers=headers)
        assert r.status_code == 400, (path, body, r.status_code, r.text)
        assert r.json()["error"]["type"] == "BadRequestException", r.text
    admin = {**headers, "Authorization": f"Bearer {served.keys['admin']}"}
    rename = {
        "source": {"namespace": ["sales"], "name": "orders"},
        "destination": {"namespace": ["nowhere"], "name": "orders"},
    }
    r = requests.post(f"{served.url}/v1/tables/rename", data=json.dumps(rename), headers=admin)
    assert r.status_code == 404 and r.json()["error"]["type"] == "NoSuchNamespaceException", r.text
    nameless = {**rename, "destination": {"namespace": ["sales"]}}  # was renamed to "None"
    r = requests.post(f"{served.url}/v1/tables/rename", data=json.dumps(nameless), headers=admin)
    assert r.status_code == 400 and "destination.name" in r.text, r.text
    with served.lakehouse() as lh:
        assert "sales.orders" in {str(t.name) for t in lh.list_tables()}, "a refused rename renames nothing"
    # removing a property that is not set is a no-op, as in Java's catalogs (it was a 500)
    unset = {"requirements": [], "updates": [{"action": "remove-properties", "removals": ["no.such.key"]}]}
    r = requests.post(f"{served.url}/v1/namespaces/sales/tables/orders", data=json.dumps(unset), headers=headers)
    assert r.status_code == 200, r.text
    # a format version lakehouse cannot write is refused before anything is written (it was a 500 that left a
    # metadata file behind, so the name could not be created again)
    v3 = {"name": "v3", "schema": {"type": "struct", "fields": [{**field, "type": "long"}]}, "properties": {}}
    v3["properties"] = {"format-version": "3"}
    r = requests.post(f"{served.url}/v1/namespaces/sales/tables", data=json.dumps(v3), headers=headers)
    assert 400 <= r.status_code < 500 and "format-version 3" in r.text, r.text
    v3["properties"] = {}
    r = requests.post(f"{served.url}/v1/namespaces/sales/tables", data=json.dumps(v3), headers=headers)
    assert r.status_code == 200, r.text
    # a schema giving one field id twice (pyiceberg took it and then loaded an empty schema), a commit giving a
    # table another uuid: refused
    twice = {"type": "struct", "fields": [{**field, "type": "long"}, {**field, "name": "b", "type": "long"}]}
    r = requests.post(
        f"{served.url}/v1/namespaces/sales/tables", data=json.dumps({"name": "t5", "schema": twice}), headers=headers
    )
    assert r.status_code == 400 and "field id(s) [1] twice" in r.text, r.text
    other = {"requirements": [], "updates": [{"action": "assign-uuid", "uuid": "9c12d441-03fe-4693-9a96-a0705ddf69c1"}]}
    r = requests.post(f"{served.url}/v1/namespaces/sales/tables/orders", data=json.dumps(other), headers=headers)
    assert r.status_code == 400 and "another uuid" in r.text, r.text
    # a namespace without properties has none (pyiceberg's SQL catalog marks it with exists=true)
    cat = served.rest("engineer")
    cat.create_namespace("bare")
    assert cat.load_namespace_properties("bare") == {}


# ---- DuckDB's iceberg extension --------------------------------------------------------------------------------


def test_duckdb_attaches_queries_and_inserts(served: Served) -> None:
    import duckdb

    from lakehouse.duck import extension_path

    con = duckdb.connect(config={"autoinstall_known_extensions": False, "autoload_known_extensions": False})
    for ext in ("httpfs", "avro", "iceberg"):
        con.execute(f"LOAD '{extension_path(ext)}'")
    # what `lakehouse serve` prints for DuckDB, run as printed (with a key in place of <api key>)
    port = served.url.split(":")[-1].split("/")[0]
    printed = subprocess.run(
        [EXE, "serve", "--show-config", "--port", port], capture_output=True, text=True, check=True
    ).stdout
    snippet = printed.split("DuckDB (iceberg extension):\n", 1)[1].split("\n\n", 1)[0]
    statements = [line.strip() for line in snippet.splitlines() if line.strip()]
    assert [st.split()[0] for st in statements] == ["CREATE", "ATTACH", "SHOW"]
    for statement in statements[:2]:
        con.execute(statement.replace("<api key>", served.keys["engineer"]))
    tables = {(r[1], r[2]) for r in con.execute(statements[2]).fetchall() if r[0] == "lh"}
    assert ("sales", "orders") in tables
    n = con.execute("SELECT count(*) FROM lh.sales.orders").fetchone()
    with served.lakehouse() as lh:
        expected = lh.query("SELECT count(*) AS n FROM sales.orders").table.column("n")[0].as_py()
    assert n is not None and n[0] == expected
    con.execute("CREATE SCHEMA IF NOT EXISTS lh.duck")
    con.execute("CREATE TABLE lh.duck.t (id BIGINT, note VARCHAR)")
    con.execute("INSERT INTO lh.duck.t VALUES (1, 'from duckdb'), (2, 'again')")
    con.close()
    with served.lakehouse() as lh:
        got = lh.query("SELECT id, note FROM duck.t ORDER BY id").table.to_pylist()
        assert got == [{"id": 1, "note": "from duckdb"}, {"id": 2, "note": "again"}]
        history = lh.table("duck.t").snapshots()
        assert history and history[-1].operation == "append"
        assert any(j.kind == "rest-commit" for j in lh.jobs("duck.t"))


# ---- Spark's RESTCatalog (the Iceberg runtime's) ---------------------------------------------------------------


@pytest.mark.spark
@pytest.mark.slow
def test_spark_reads_writes_and_rewrites_through_rest(served: Served, tmp_path: Any) -> None:
    settings = load_settings(
        config_file=False, warehouse=str(tmp_path / "own"), spark={"master": "local[2]", "driver_memory": "1g"}
    )
    with Lakehouse(settings) as own:
        spark = own.spark().session()
        prefix = "spark.sql.catalog.lhrest"
        spark.conf.set(prefix, "org.apache.iceberg.spark.SparkCatalog")
        spark.conf.set(prefix + ".type", "rest")
        spark.conf.set(prefix + ".uri", served.url)
        spark.conf.set(prefix + ".credential", f"spark:{served.keys['engineer']}")
        spark.conf.set(prefix + ".oauth2-server-uri", f"{served.url}/v1/oauth/tokens")
        spark.conf.set(prefix + ".cache-enabled", "false")
        n = spark.sql("SELECT count(*) AS n FROM lhrest.sales.orders").collect()[0]["n"]
        with served.lakehouse() as lh:
            assert n == lh.query("SELECT count(*) AS n FROM sales.orders").table.column("n")[0].as_py()
        spark.sql("CREATE NAMESPACE IF NOT EXISTS lhrest.sparky")
        spark.sql("CREATE TABLE lhrest.sparky.t (id BIGINT, v STRING) USING iceberg")
        for i in range(3):
            spark.sql(f"INSERT INTO lhrest.sparky.t VALUES ({2 * i}, 'a{i}'), ({2 * i + 1}, 'b{i}')")
        rewritten = spark.sql(
            "CALL lhrest.system.rewrite_data_files(table => 'sparky.t', options => map('min-input-files', '2'))"
        ).collect()[0]
        assert rewritten["rewritten_data_files_count"] >= 3 and rewritten["added_data_files_count"] == 1
    with served.lakehouse() as lh:
        rows = lh.query("SELECT id, v FROM sparky.t ORDER BY id").table.to_pylist()
        assert rows == [{"id": i, "v": f"{'ab'[i % 2]}{i // 2}"} for i in range(6)]
        operations = [s.operation for s in lh.table("sparky.t").snapshots()]
        assert operations.count("append") == 3 and operations[-1] == "replace"
        assert len([j for j in lh.jobs("sparky.t") if j.kind == "rest-commit"]) == 4


# ---- on S3 ------------------------------------------------------------------------------------------------------


@pytest.mark.s3
def test_on_s3_clients_get_the_endpoint_and_bring_their_own_keys(
    s3_endpoint: S3Endpoint, bucket: str, tmp_path: Any
) -> None:
    """A warehouse on the S3 server: a load answer says where the files are (endpoint, region, path style) and holds
    no secret; a pyiceberg client with its own keys reads and appends, and lakehouse sees the append."""
    settings = s3_settings(s3_endpoint, bucket, tmp_path)
    with Lakehouse(settings) as lh:
        lh.init()
        key = create_key(lh, name="s3 engineer", role="engineer")[1]
        table = lh.create_table("s3.orders", schema=SCHEMA, format="iceberg")
        table.append(pa.table({"id": [1, 2], "name": ["a", "b"], "amount": [1.0, 2.0]}, schema=SCHEMA))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LAKEHOUSE_", "AWS_"))}
    env.update(
        LAKEHOUSE_S3__ENDPOINT=s3_endpoint.url,
        LAKEHOUSE_S3__ACCESS_KEY_ID=s3_endpoint.access_key,
        LAKEHOUSE_S3__SECRET_ACCESS_KEY=s3_endpoint.secret_key,
        LAKEHOUSE_S3__REGION=s3_endpoint.region,
    )
    options = ["--warehouse", settings.warehouse, "--catalog-url", settings.catalog_url]
    with serving(tmp_path, options, env) as base:
        raw = requests.get(
            f"{base}/iceberg/v1/namespaces/s3/tables/orders", headers={"Authorization": f"Bearer {key}"}, timeout=30
        ).json()
        assert raw["metadata-location"].startswith(f"s3://{bucket}/")
        assert raw["config"]["s3.endpoint"] == s3_endpoint.url and raw["config"]["s3.path-style-access"] == "true"
        assert s3_endpoint.secret_key not in json.dumps(raw), "no secret is handed out"
        from pyiceberg.catalog.rest import RestCatalog

        own_keys = {"s3.access-key-id": s3_endpoint.access_key, "s3.secret-access-key": s3_endpoint.secret_key}
        cat = RestCatalog("lh", uri=f"{base}/iceberg", token=key, **own_keys)
        client = cat.load_table("s3.orders")
        assert sorted(client.scan().to_arrow().column("id").to_pylist()) == [1, 2]
        client.append(pa.table({"id": [3], "name": ["c"], "amount": [3.0]}, schema=SCHEMA))
    with Lakehouse(settings) as lh:
        assert sorted(lh.table("s3.orders").scan().column("id").to_pylist()) == [1, 2, 3]


def test_a_staged_create_that_writes_data_before_its_commit_creates_the_table_with_its_rows(served: Served) -> None:
    """pyiceberg's create_table_transaction with an append (Spark's CREATE TABLE AS SELECT on a REST catalog does
    the same): the client writes its data and manifests before the commit, and the commit was refused because
    the location was no longer empty, leaving files that then blocked the name."""
    cat = served.rest("engineer")
    cat.create_namespace_if_not_exists("staged")
    tx = cat.create_table_transaction("staged.ctas", schema=SCHEMA)
    rows = pa.table({"id": [1, 2], "name": ["a", "b"], "amount": [1.0, 2.0]}, schema=SCHEMA)
    tx.append(rows)
    tx.commit_transaction()
    assert rows_of(cat.load_table("staged.ctas").scan().to_arrow()) == rows_of(rows)
    with served.lakehouse() as lh:
        assert rows_of(lh.table("staged.ctas").scan()) == rows_of(rows)
