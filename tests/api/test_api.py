"""The REST API through HTTP (Starlette's TestClient runs the real ASGI app), for both formats: catalog,
history, diff, time travel by version and timestamp, ingest, jobs, lineage, roles, the SQL sandbox, metrics,
and problem documents for mistakes."""

from __future__ import annotations

import datetime as dt
import io
import os
import time
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from lakehouse.config import load_settings
from lakehouse.core import Lakehouse
from lakehouse.governance.keys import create_key
from lakehouse.schema import parse_partitioning
from tests.conftest import EVENTS, FORMATS, events, isolate

SECRET = "api-test-secret"
SLOW = (  # 10^10 rows, each computed (a count(*) over a cross join only counts chunks, which is fast)
    "SELECT sum(a.id * b.id + c.id - d.id * e.id) FROM web.events a, web.events b, web.events c, web.events d, "
    "web.events e"
)


@pytest.fixture
def api(tmp_path: Any, fmt: str) -> Iterator[dict[str, Any]]:
    yield from _serve(tmp_path, fmt)


@pytest.fixture(scope="module", params=FORMATS)
def shared_api(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """One app per format for tests that change nothing (refused statements and bodies, mistakes, read-only
    queries; the many sandbox cases): a fresh table, app and warm query worker each cost about a second of CPU.
    Tests that change a table, a policy or a key, or rely on a state they set up, use ``api``."""
    root = tmp_path_factory.mktemp("shared-api")
    with pytest.MonkeyPatch.context() as monkeypatch:
        isolate(monkeypatch, root / "cwd")
        yield from _serve(root, str(request.param))


def _serve(tmp_path: Any, fmt: str) -> Iterator[dict[str, Any]]:
    settings = load_settings(config_file=False, warehouse=str(tmp_path / "wh"), governance={"mask_secret": SECRET})
    with Lakehouse(settings) as lh:
        table = lh.create_table("web.events", schema=EVENTS, format=fmt, partitioning=parse_partitioning("day(ts)"))
        table.append(events(0, 50))
        table.append(events(50, 50))
        keys = {role: create_key(lh, name=f"{role} key", role=role)[1] for role in ("reader", "engineer", "admin")}
    app = create_app(settings)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield {"client": client, "keys": keys, "fmt": fmt, "app": app}


def call(api: dict[str, Any], method: str, path: str, role: str | None = "reader", **kw: Any) -> Any:
    headers = kw.pop("headers", {})
    if role:
        headers["X-API-Key"] = api["keys"][role]
    return api["client"].request(method, path, headers=headers, **kw)


def ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status and body["detail"] and "Traceback" not in response.text
    return body


def test_catalog_history_diff_and_time_travel(api: dict[str, Any]) -> None:
    assert ok(api["client"].get("/health"))["status"] == "ok"
    listing = ok(call(api, "GET", "/tables?namespace=web&limit=1"))
    assert listing["total"] == 1 and listing["items"][0]["name"] == "web.events"
    assert ok(call(api, "GET", f"/tables?format={'delta' if api['fmt'] == 'iceberg' else 'iceberg'}"))["total"] == 0
    detail = ok(call(api, "GET", "/tables/web.events"))
    assert detail["rows"] == 100 and detail["format"] == api["fmt"] and "size_histogram" in detail["health"]
    assert [c["name"] for c in detail["schema"]] == EVENTS.names and "tiers" in detail
    versions = ok(call(api, "GET", "/tables/web.events/versions"))
    data_versions = [v for v in versions if v["operation"] != "create-table"]
    first, second = data_versions[-2]["version"], data_versions[-1]["version"]
    assert ok(call(api, "GET", f"/tables/web.events/versions/{first}"))["rows"] == 50
    d = ok(call(api, "GET", f"/tables/web.events/diff?from={first}&to={second}"))
    assert d["rows_from"] == 50 and d["rows_to"] == 100 and d["rows_added"] == 50 and d["files_removed"] == []
    q = {"sql": "SELECT count(*) AS n FROM web.events", "as_of": {"web.events": first}}
    assert ok(call(api, "POST", "/query", json=q))["rows"] == [{"n": 50}]
    when = versions[-1]["timestamp"]
    q = {"sql": f"SELECT count(*) AS n FROM web.events AT (TIMESTAMP => '{when}')"}
    assert ok(call(api, "POST", "/query", json=q))["rows"] == [{"n": 100}]
    arrow = call(api, "POST", "/query", json={"sql": "SELECT id FROM web.events ORDER BY id", "format": "arrow"})
    assert arrow.headers["content-type"] == "application/vnd.apache.arrow.stream"
    assert pa.ipc.open_stream(io.BytesIO(arrow.content)).read_all().column("id").to_pylist() == list(range(100))
    restored = ok(call(api, "POST", "/tables/web.events/restore", role="engineer", json={"version": first}))
    assert restored["operation"] in ("restore", "rollback")
    assert ok(call(api, "POST", "/query", json={"sql": "SELECT count(*) AS n FROM web.events"}))["rows"] == [{"n": 50}]


def test_mistakes_are_problem_documents(shared_api: dict[str, Any]) -> None:
    problem(call(shared_api, "GET", "/tables/web.nope"), 404)
    problem(call(shared_api, "GET", "/tables/web.events/versions/999"), 404)
    problem(call(shared_api, "GET", "/tables/not-a-name"), 422)
    problem(call(shared_api, "POST", "/query", json={"sql": "SELEC 1"}), 400)
    far = problem(call(shared_api, "POST", "/query", json={"sql": "SELECT make_date(99999, 1, 1) AS far"}), 400)
    assert "column(s) far" in far["detail"], far
    both = ok(call(shared_api, "POST", "/query", json={"sql": "SELECT 1 AS a, 2 AS a, 'NaN'::DOUBLE AS n"}))
    assert both["rows"] == [{"a": 1, "a_2": 2, "n": None}] and both["columns"][1]["renamed_from"] == "a"
    sql = "SELECT '\\xFF\\x00'::BLOB AS b, INTERVAL 2 DAY AS i, TIMESTAMPTZ '2026-01-02 03:04:05+00' AS t"
    typed = ok(call(shared_api, "POST", "/query", json={"sql": sql}))["rows"]
    assert typed == [{"b": "/wA=", "i": "P2D", "t": "2026-01-02T03:04:05+00:00"}], typed
    problem(call(shared_api, "POST", "/query", json={"sql": "SELECT * FROM web.nope"}), 404)
    problem(call(shared_api, "POST", "/query", json={"sql": 5}), 422)
    for size in ("nanMB", "infGB", "1e400MB"):  # float() reads them: they were 500s
        job = {"target_file_size": size}
        problem(call(shared_api, "POST", "/tables/web.events/jobs/optimize", role="engineer", json=job), 400)
    problem(call(shared_api, "POST", "/query", content=b"{not json", headers={"Content-Type": "application/json"}), 422)
    problem(
        call(
            shared_api,
            "POST",
            "/tables/web.events/records",
            role="engineer",
            content=b"[1,",
            headers={"Content-Type": "application/json"},
        ),
        400,
    )
    big = b"[" + b"{}," * (9 * 1024 * 1024) + b"{}]"
    problem(
        call(
            shared_api,
            "POST",
            "/tables/web.events/records",
            role="engineer",
            content=big,
            headers={"Content-Type": "application/json"},
        ),
        413,
    )
    problem(call(shared_api, "GET", "/jobs/123456"), 404)
    problem(call(shared_api, "GET", "/lineage?dataset=web.never"), 404)
    # `curl -d '{...}'` without a content type sends a form: said so (415), not a 422 about dictionaries
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    sent = call(shared_api, "POST", "/query", content=b'{"sql": "SELECT 1"}', headers=form)
    assert "Content-Type: application/json" in problem(sent, 415)["detail"]
    ok(
        call(
            shared_api,
            "POST",
            "/query",
            content=b'{"sql": "SELECT 1 AS one"}',
            headers={"Content-Type": "application/json"},
        )
    )


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM read_csv('/etc/passwd')",
        "SELECT * FROM '/etc/passwd'",
        "SELECT * FROM read_text('https://example.com/')",
        "SELECT * FROM read_parquet('s3://bucket/x.parquet')",
        "SELECT getenv('HOME')",
        "SELECT * FROM glob('/*')",
        "SELECT * FROM duckdb_settings()",
        "ATTACH '/tmp/x.db' AS x",
        "COPY (SELECT 1) TO '/tmp/out.csv'",
        "INSTALL httpfs",
        "LOAD httpfs",
        "PRAGMA version",
        "SET memory_limit = '100GB'",
        "CREATE TABLE x AS SELECT 1",
        "SELECT 1; SELECT 2",
        "SELECT write_blob('/tmp/lakehouse-pwned', 'x'::BLOB)",
        "SELECT r.* FROM web.events, LATERAL json_execute_serialized_sql(json_serialize_sql('SELECT 1')) r",
        "SELECT * FROM web.events, LATERAL copy_dir('/etc', '/tmp/x')",
        "SELECT * FROM web.events, LATERAL histogram('/etc/passwd', a)",
        'SELECT * FROM (WITH "/etc/passwd" AS (SELECT 1) SELECT 1) q, "/etc/passwd" r',
        "SELECT * FROM (WITH x AS (SELECT 1) SELECT 1) q, x",
        "SELECT (SELECT min FROM (SUMMARIZE '/etc/passwd') LIMIT 1)",
        "SELECT * FROM sqlite_master",
        "SELECT getvariable('x')",
        "SELECT * FROM duckdb_secrets()",
        "SELECT * FROM parquet_metadata('/etc/passwd')",
        # a CTE's body does not see the CTE itself: DuckDB binds the name to its built-in view there
        "WITH pg_settings AS (SELECT * FROM pg_settings) SELECT name, setting FROM pg_settings",
        "WITH sqlite_temp_master AS (SELECT * FROM sqlite_temp_master) SELECT sql FROM sqlite_temp_master",
        "WITH pg_views AS (SELECT * FROM pg_views) SELECT definition FROM pg_views",
        "WITH x AS (SELECT 1), pg_views AS (SELECT * FROM pg_views) SELECT * FROM pg_views",
        "WITH a AS (WITH pg_settings AS (SELECT * FROM pg_settings) SELECT * FROM pg_settings) SELECT * FROM a",
        "WITH RECURSIVE pg_settings AS (SELECT * FROM pg_settings) SELECT name, setting FROM pg_settings",
        "WITH RECURSIVE pg_settings AS (SELECT name, setting FROM pg_settings "
        "UNION ALL SELECT name, setting FROM pg_settings WHERE false) SELECT * FROM pg_settings",
        "WITH b AS (SELECT * FROM pg_views), pg_views AS (SELECT 1) SELECT * FROM b",
        # values built in one call outside DuckDB's memory limit, and sleeps
        "SELECT count(*) FROM (SELECT unnest(generate_series(1, 1000)))",
        "SELECT count(*) FROM (SELECT unnest(range(1000)))",
        "SELECT len(range(TIMESTAMP '2000-01-01', TIMESTAMP '2030-01-01', INTERVAL 1 MINUTE))",
        "SELECT length(repeat('x', 1000))",
        "SELECT length(note.repeat(1000)) FROM web.events",
        "SELECT len(repeat([1], 1000))",
        "SELECT len(list_resize([1], 1000))",
        "SELECT len(array_resize([1], 1000))",
        "SELECT length(lpad('x', 100000000, 'y'))",
        "SELECT length(note.rpad(100000000, 'y')) FROM web.events",
        "SELECT length(lpad(note, id, 'y')) FROM web.events",
        "SELECT length(printf('%100000000d', 1))",
        "SELECT length(printf('%*d', 100000000, 1))",
        "SELECT length(format('{:>100000000}', 1))",
        "SELECT length(format('{:>{}}', 1, 100000000))",
        "SELECT sleep_ms(100000)",
        # names sqlglot rewrites on the way out (space -> REPEAT, generate_*_array -> GENERATE_SERIES)
        "SELECT length(space(1500000000))",
        "SELECT count(*) FROM (SELECT unnest(generate_timestamp_array(TIMESTAMP '2000-01-01', "
        "TIMESTAMP '2100-01-01', INTERVAL 1 MINUTE)))",
        "SELECT length(bitstring('1', 2000000000))",
        # DuckDB does not recurse over UNION BY NAME: the self-reference binds to the built-in view
        "WITH RECURSIVE pg_settings AS (SELECT 'a' AS name, 'b' AS setting UNION BY NAME "
        "SELECT name, setting FROM pg_settings) SELECT * FROM pg_settings",
    ],
)
def test_sql_sandbox(shared_api: dict[str, Any], sql: str) -> None:
    import os

    body = problem(call(shared_api, "POST", "/query", role="admin", json={"sql": sql}), 400)
    assert "root:" not in body["detail"]
    assert not os.path.exists("/tmp/lakehouse-pwned")


def test_duckdb_itself_refuses_files_outside_the_tables(api: dict[str, Any]) -> None:
    """The second wall: even a statement that got past the sandbox cannot read outside table locations."""
    import duckdb

    engine = api["app"].state.lakehouse.sql
    with pytest.raises(duckdb.Error, match="disabled by configuration"):
        engine.connection().execute("SELECT * FROM read_csv('/etc/passwd')").fetchall()
    with pytest.raises(duckdb.Error):
        engine.connection().execute("SET enable_external_access = true")


def test_time_travel_before_a_column_was_added(api: dict[str, Any]) -> None:
    lh = api["app"].state.lakehouse
    table = lh.table("web.events")
    old = table.snapshot().version
    table.add_columns([pa.field("extra", pa.string())])
    lh.catalog.update_table(table.name, table.definition)
    q = {"sql": "SELECT count(*) AS n, count(extra) AS e FROM web.events", "as_of": {"web.events": old}}
    assert ok(call(api, "POST", "/query", role="admin", json=q))["rows"] == [{"n": 100, "e": 0}]


def test_values_without_a_json_form_are_a_4xx(shared_api: dict[str, Any]) -> None:
    problem(call(shared_api, "POST", "/query", json={"sql": "SELECT 'infinity'::TIMESTAMP AS t"}), 400)
    arrow = call(shared_api, "POST", "/query", json={"sql": "SELECT 'infinity'::TIMESTAMP AS t", "format": "arrow"})
    assert arrow.status_code == 200
    early = {"web.events": "0001-01-01T00:00:00+01:00"}
    problem(call(shared_api, "POST", "/query", json={"sql": "SELECT count(*) FROM web.events", "as_of": early}), 400)


def test_time_travel_names_only_tables_read_and_versions_are_numbers(shared_api: dict[str, Any]) -> None:
    sql = "SELECT count(*) AS n FROM web.events"
    for as_of in ({"web.evnets": 1}, {"web.events": 1, "web.orders": 1}):
        unread = problem(call(shared_api, "POST", "/query", json={"sql": sql, "as_of": as_of}), 400)
        assert "which the query does not read" in unread["detail"], unread
    for version in (True, False, 1.0):
        problem(call(shared_api, "POST", "/query", json={"sql": sql, "as_of": {"web.events": version}}), 422)
        restore = {"version": version}
        problem(call(shared_api, "POST", "/tables/web.events/restore", role="engineer", json=restore), 422)


def test_roles_masking_ingest_and_jobs(api: dict[str, Any]) -> None:
    problem(api["client"].get("/tables"), 401)
    problem(call(api, "GET", "/tables", headers={"X-API-Key": "lhk_0000_nope"}, role=None), 401)
    # readers get masked PII and no maintenance
    ok(call(api, "PUT", "/tables/web.events/policy", role="admin", json={"values": {"masking": {"note": "redact"}}}))
    problem(call(api, "PUT", "/tables/web.events/policy", role="engineer", json={"values": {}}), 403)
    q = {"sql": "SELECT note FROM web.events WHERE id = 1"}
    assert ok(call(api, "POST", "/query", json=q))["rows"] == [{"note": "[REDACTED]"}]
    assert ok(call(api, "POST", "/query", role="engineer", json=q))["rows"] == [{"note": "[REDACTED]"}]
    assert ok(call(api, "POST", "/query", role="admin", json=q))["rows"] == [{"note": "note 1"}]
    # data skipping answers from a column's raw statistics: not on a column the key reads masked
    for pred in ("note > 'note 5'", "id > 3 AND (note IS NULL OR amount < 1)"):
        refused = problem(call(api, "GET", "/tables/web.events", params={"predicate": pred}), 403)
        assert "note" in refused["detail"] and "note 5" not in refused["detail"], refused
        assert ok(call(api, "GET", "/tables/web.events", role="admin", params={"predicate": pred}))["health"]
    assert ok(call(api, "GET", "/tables/web.events", params={"predicate": "id > 3"}))["health"]
    problem(call(api, "POST", "/tables/web.events/jobs/optimize", json={"dry_run": True}), 403)
    problem(call(api, "POST", "/tables/web.events/records", json=[{"id": 1}]), 403)
    # nor can a job order, group or cluster rows by a column the key reads masked: which duplicate a dedup keeps
    # by it, then a restore, recovered a value probe by probe
    for kind, job in (
        ("dedup", {"keys": ["id"], "order": "note"}),
        ("dedup", {"keys": ["note"]}),
        ("optimize", {"zorder": ["note", "id"]}),
    ):
        refused = problem(call(api, "POST", f"/tables/web.events/jobs/{kind}", role="engineer", json=job), 403)
        assert "note" in refused["detail"] and "masked" in refused["detail"], refused
        assert ok(call(api, "POST", f"/tables/web.events/jobs/{kind}", role="admin", json=job))
    assert ok(call(api, "POST", "/tables/web.events/jobs/dedup", role="engineer", json={"keys": ["id"], "order": "ts"}))
    problem(call(api, "POST", "/keys", role="engineer", json={"name": "x", "role": "admin"}), 403)
    # engineers ingest (quarantine report in the answer) and run jobs
    recs = [
        {"id": 500, "ts": "2026-03-01T10:00:00Z", "country": "DE", "amount": 1.5, "note": "secret note"},
        {"id": "x"},
    ]
    answer = ok(call(api, "POST", "/tables/web.events/records?source=batch-1", role="engineer", json=recs))
    assert answer["rows"] == 1 and answer["quarantined"] == 1 and answer["errors"][0]["position"] == 1
    again = ok(call(api, "POST", "/tables/web.events/records?source=batch-1", role="engineer", json=recs))
    assert again["rows"] == 0 and again["skipped"] == 2, "a retried batch is idempotent"
    nd = b'{"id": 501, "ts": "2026-03-01T11:00:00Z"}\n{"id": 502, "ts": "2026-03-01T12:00:00Z"}\n'
    r = call(
        api,
        "POST",
        "/tables/web.events/records",
        role="engineer",
        content=nd,
        headers={"Content-Type": "application/x-ndjson"},
    )
    assert ok(r)["rows"] == 2
    assert ok(call(api, "POST", "/query", role="admin", json={"sql": "SELECT note FROM web.events WHERE id = 500"}))[
        "rows"
    ] == [{"note": "[REDACTED]"}], "ingestion applied the masking policy"
    plan = ok(call(api, "POST", "/tables/web.events/jobs/optimize", role="engineer", json={"target_file_size": "8MB"}))
    assert plan["dry_run"] and plan["plan"]["partitions"]
    done = ok(
        call(
            api,
            "POST",
            "/tables/web.events/jobs/optimize",
            role="engineer",
            json={"dry_run": False, "target_file_size": "8MB"},
        )
    )
    assert done["rows_in"] == done["rows_out"] > 0 and done["job_id"]
    job = ok(call(api, "GET", f"/jobs/{done['job_id']}"))
    assert job["kind"] == "optimize" and job["state"] == "committed"
    problem(call(api, "GET", f"/jobs/{2**63}"), 404)  # past any database's integer: no such job, not a 500
    vac = ok(call(api, "POST", "/tables/web.events/jobs/vacuum", role="engineer", json={"retain": "0s"}))
    assert vac["dry_run"] and vac["expired_versions"]
    # storing a scan's tags replaces them, which can unmask a column: admin's (api/authz.py)
    problem(call(api, "POST", "/tables/web.events/jobs/pii-scan", role="engineer", json={"dry_run": False}), 403)
    scan = ok(call(api, "POST", "/tables/web.events/jobs/pii-scan", role="admin", json={"dry_run": False}))
    assert scan["table"] == "web.events" and not scan["dry_run"]
    # every change is in the audit log, with the key that made it
    audit = ok(call(api, "GET", "/audit?table=web.events", role="admin"))
    actions = {a["action"] for a in audit}
    assert {"ingest", "optimize", "policy.set", "pii.scan"} <= actions
    assert all(a["actor"].startswith("key:") for a in audit if a["action"] in ("ingest", "optimize", "policy.set"))
    problem(call(api, "GET", "/audit", role="engineer"), 403)
    key = ok(call(api, "POST", "/keys", role="admin", json={"name": "ci", "role": "reader"}), 201)
    assert ok(call(api, "GET", "/tables", role=None, headers={"Authorization": f"Bearer {key['key']}"}))["total"] == 2
    ok(call(api, "DELETE", f"/keys/{key['id']}", role="admin"))
    problem(call(api, "GET", "/tables", role=None, headers={"Authorization": f"Bearer {key['key']}"}), 401)


def test_lineage_graph_after_ingest_and_optimize(api: dict[str, Any]) -> None:
    ingest = [{"id": 900 + i, "ts": "2026-03-02T10:00:00Z"} for i in range(3)]
    ok(call(api, "POST", "/tables/web.events/records?source=orders-topic", role="engineer", json=ingest))
    ok(
        call(
            api,
            "POST",
            "/tables/web.events/jobs/optimize",
            role="engineer",
            json={"dry_run": False, "target_file_size": "8MB"},
        )
    )
    external = {
        "eventType": "COMPLETE",
        "eventTime": dt.datetime.now(dt.UTC).isoformat(),
        "run": {"runId": "3f1e8f3e-0000-4000-8000-000000000001"},
        "job": {"namespace": "airflow", "name": "daily_report"},
        "inputs": [{"namespace": api["app"].state.lakehouse.ctx.warehouse, "name": "web.events"}],
        "outputs": [{"namespace": "postgres://reports", "name": "public.daily"}],
        "producer": "https://airflow.apache.org",
    }
    assert ok(call(api, "POST", "/lineage", role="engineer", json=external), 201)["id"]
    problem(call(api, "POST", "/lineage", role="engineer", json={"job": {}}), 400)
    g = ok(call(api, "GET", "/lineage?dataset=web.events&depth=2"))
    ids = {n["id"] for n in g["nodes"]}
    jobs = {f"{n['namespace']}/{n['name']}": n["id"] for n in g["nodes"] if n["type"] == "job"}
    assert {"lakehouse/lakehouse.ingest", "lakehouse/lakehouse.optimize", "airflow/daily_report"} <= set(jobs)
    assert all(i.startswith(f"job:{j}#") for j, i in jobs.items())
    assert "lakehouse-api::api:orders-topic" in ids and "postgres://reports::public.daily" in ids
    edges = {(e["from"], e["to"]) for e in g["edges"]}
    assert ("lakehouse-api::api:orders-topic", jobs["lakehouse/lakehouse.ingest"]) in edges
    assert (jobs["airflow/daily_report"], "postgres://reports::public.daily") in edges
    events_ = ok(call(api, "GET", "/lineage/events?limit=50"))
    optimize_run = [e for e in events_ if e["job"]["name"] == "lakehouse.optimize" and e["eventType"] == "COMPLETE"]
    assert optimize_run and optimize_run[0]["outputs"][0]["facets"]["schema"]["fields"][0]["name"] == "id"
    text = call(api, "GET", "/metrics").text
    assert 'lakehouse_jobs_total{kind="optimize",state="committed"} 1' in text
    assert "lakehouse_rows_ingested_total 3" in text
    assert 'lakehouse_table_files{table="web.events"' in text


def test_query_time_limit(api: dict[str, Any]) -> None:
    slow = {
        "sql": "SELECT count(*) FROM web.events a, web.events b, web.events c, web.events d, web.events e",
        "timeout_seconds": 0.3,
    }
    started = time.monotonic()
    body = problem(call(api, "POST", "/query", role="admin", json=slow), 408)
    assert "time limit" in body["detail"] and time.monotonic() - started < 20


def test_lineage_is_forwarded_to_an_openlineage_endpoint(tmp_path: Any) -> None:
    """A real HTTP endpoint on loopback (standing in for Marquez) receives the run events of a job."""
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    received: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append({"path": self.path, "event": json.loads(body)})
            self.send_response(201)
            self.end_headers()

        def log_message(self, *_: Any) -> None:
            return None

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        settings = load_settings(config_file=False, warehouse=str(tmp_path / "wh"), lineage={"url": url})
        with Lakehouse(settings) as lh:
            lh.create_table("web.events", schema=EVENTS, format="delta").append(events(0, 10))
            lh.restore("web.events", 0)
    finally:
        server.shutdown()
    kinds = [(r["path"], r["event"]["job"]["name"], r["event"]["eventType"]) for r in received]
    assert kinds == [
        ("/api/v1/lineage", "lakehouse.restore", "START"),
        ("/api/v1/lineage", "lakehouse.restore", "COMPLETE"),
    ]
    assert received[1]["event"]["outputs"][0]["name"] == "web.events"


def test_a_chunked_body_over_the_limit_is_refused(api: dict[str, Any]) -> None:
    def chunks() -> Iterator[bytes]:
        yield b"["
        for _ in range(20_000):
            yield b'{"id": 1, "note": "' + b"x" * 1000 + b'"},'
        yield b"{}]"

    response = call(
        api,
        "POST",
        "/tables/web.events/records",
        role="engineer",
        content=chunks(),
        headers={"Content-Type": "application/json"},
    )
    problem(response, 413)
    assert api["app"].state.lakehouse.table("web.events").row_count() == 100, "nothing was ingested"


def test_background_autopilot_mode(tmp_path: Any) -> None:
    """`serve --autopilot`: the API process maintains tables by itself; its state shows in /metrics and jobs."""
    settings = load_settings(config_file=False, warehouse=str(tmp_path / "wh"))
    with Lakehouse(settings) as lh:
        table = lh.create_table("web.events", schema=EVENTS, format="delta", partitioning=parse_partitioning("day(ts)"))
        for i in range(5):
            table.append(events(i * 20, 20))
        key = create_key(lh, name="ops", role="reader")[1]
    app = create_app(settings, autopilot_interval=0.2)
    with TestClient(app, raise_server_exceptions=False) as client:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            jobs = client.get("/jobs?table=web.events", headers={"X-API-Key": key}).json()
            if any(j["kind"] == "maintain" and j["state"] == "committed" for j in jobs):
                break
            time.sleep(0.2)
        assert any(j["kind"] == "optimize" and j["state"] == "committed" for j in jobs), jobs
        text = client.get("/metrics", headers={"X-API-Key": key}).text
        assert "lakehouse_jobs_total" in text
        score = next(line for line in text.splitlines() if line.startswith('lakehouse_table_health_score{table="web.'))
        assert float(score.split()[-1]) > 50, "the autopilot's last pass left the table healthy"
        assert 'lakehouse_autopilot_last_pass_failed{table="web.events"} 0' in text
        assert 'lakehouse_autopilot_last_pass_timestamp_seconds{table="web.events"}' in text
    with Lakehouse(settings) as lh:
        assert len(lh.table("web.events").files()) == 3 and lh.table("web.events").row_count() == 100


def test_ctes_bind_as_duckdb_binds_them(api: dict[str, Any]) -> None:
    """What the CTE scoping still allows: earlier CTEs, outer CTEs, a recursive CTE's recursive term."""
    cases = {
        "WITH a AS (SELECT 2 AS n), b AS (SELECT n + 1 AS n FROM a) SELECT n FROM b": [{"n": 3}],
        "WITH RECURSIVE r AS (SELECT 1 AS n UNION ALL SELECT n + 1 FROM r WHERE n < 4) SELECT max(n) AS n FROM r": [
            {"n": 4}
        ],
        "WITH x AS (SELECT 5 AS n) SELECT n FROM (WITH x AS (SELECT n + 1 AS n FROM x) SELECT n FROM x)": [{"n": 6}],
        "WITH e AS (SELECT id FROM web.events) SELECT count(*) AS n FROM (SELECT * FROM e WHERE id < 10)": [{"n": 10}],
        "SELECT lpad(CAST(id AS VARCHAR), 4, '0') AS n FROM web.events WHERE id = 7": [{"n": "0007"}],
        "SELECT printf('%05.1f', amount) AS n FROM web.events WHERE id = 2": [{"n": "002.5"}],
    }
    for sql, rows in cases.items():
        assert ok(call(api, "POST", "/query", role="admin", json={"sql": sql}))["rows"] == rows, sql


@pytest.mark.parametrize(
    "sql", ["SELECT " + "(" * 400 + "1" + ")" * 400, "- " * 3000 + "1", "SELECT " + "abs(" * 400 + "1" + ")" * 400]
)
def test_deeply_nested_sql_is_a_400(shared_api: dict[str, Any], sql: str) -> None:
    body = problem(call(shared_api, "POST", "/query", json={"sql": sql}), 400)
    assert "nests" in body["detail"]


def test_sql_over_the_length_limit_is_refused(shared_api: dict[str, Any]) -> None:
    problem(call(shared_api, "POST", "/query", json={"sql": "SELECT 1 --" + "x" * 100_000}), 422)


def test_time_limit_stops_a_long_query_near_it(api: dict[str, Any]) -> None:
    slow = SLOW
    # 1 ms: the limit passes while the table views are made, before the query starts (DuckDB forgets an interrupt
    # that comes between two statements)
    for timeout in (1.0, 0.001):
        started = time.monotonic()
        body = problem(call(api, "POST", "/query", role="admin", json={"sql": slow, "timeout_seconds": timeout}), 408)
        assert "time limit" in body["detail"] and time.monotonic() - started < timeout + 5


def test_quarantine_is_raw_input_for_pii_readers_only(api: dict[str, Any]) -> None:
    bad = [{"id": "alice@corp.com", "ts": "2026-03-01T10:00:00Z"}]
    assert ok(call(api, "POST", "/tables/web.events/records", role="engineer", json=bad))["quarantined"] == 1
    for sql in (
        "SELECT raw FROM web.events__quarantine",
        "SELECT count(*) FROM (SELECT error FROM web.events__quarantine) q",
        "SELECT e.id FROM web.events e JOIN web.events__quarantine q ON q.position = e.id",
    ):
        for role in ("reader", "engineer"):
            body = problem(call(api, "POST", "/query", role=role, json={"sql": sql}), 403)
            assert "quarantine" in body["detail"] and "alice" not in str(body)
    rows = ok(call(api, "POST", "/query", role="admin", json={"sql": "SELECT raw FROM web.events__quarantine"}))
    assert "alice@corp.com" in rows["rows"][0]["raw"]
    # data skipping on the raw payload would bisect it, a few hundred requests per address
    probe = '/tables/web.events__quarantine?predicate=raw >= \'{"id": "alice\''
    for role in ("reader", "engineer"):
        detail = problem(call(api, "GET", probe, role=role), 403)["detail"]
        assert "column(s) raw" in detail and "alice" not in detail, detail
    assert ok(call(api, "GET", probe, role="admin"))
    # a quarantine table takes no records: it would grow a quarantine of its own
    body = problem(call(api, "POST", "/tables/web.events__quarantine/records", role="engineer", json=bad), 400)
    assert "quarantine table" in body["detail"]
    problem(call(api, "GET", "/tables/web.events__quarantine__quarantine"), 404)


def test_lineage_edges_come_from_runs(api: dict[str, Any]) -> None:
    lh = api["app"].state.lakehouse
    lh.create_table("web.items", schema=EVENTS, format=api["fmt"]).append(events(0, 5))
    rec = [{"id": 1000, "ts": "2026-03-02T10:00:00Z"}]
    ok(call(api, "POST", "/tables/web.events/records?source=i1", role="engineer", json=rec))
    ok(call(api, "POST", "/tables/web.items/records?source=o1", role="engineer", json=rec))
    for table in ("web.events", "web.items"):
        ok(call(api, "POST", f"/tables/{table}/jobs/optimize", role="engineer", json={"dry_run": False}))
    g = ok(call(api, "GET", "/lineage?dataset=lakehouse-api::api:i1&depth=1"))
    names = {n["name"] for n in g["nodes"] if n["type"] == "dataset"}
    assert names == {"api:i1", "web.events"}, "the batch fed web.events only"
    g = ok(call(api, "GET", "/lineage?dataset=web.events&depth=3"))
    names = {n["name"] for n in g["nodes"] if n["type"] == "dataset"}
    assert "web.items" not in names and "api:o1" not in names, "optimizing both tables does not link them"
    assert {"lakehouse.ingest", "lakehouse.optimize"} <= {n["name"] for n in g["nodes"] if n["type"] == "job"}
    # one run's events together: START names the input, COMPLETE the output
    warehouse = lh.ctx.warehouse
    run = {"runId": "3f1e8f3e-0000-4000-8000-000000000002"}
    for kind, key, ds in (
        ("START", "inputs", {"namespace": warehouse, "name": "web.items"}),
        ("COMPLETE", "outputs", {"namespace": "postgres://reports", "name": "public.items"}),
    ):
        event = {"eventType": kind, "run": run, "job": {"namespace": "airflow", "name": "items_report"}, key: [ds]}
        ok(call(api, "POST", "/lineage", role="engineer", json=event), 201)
    g = ok(call(api, "GET", "/lineage?dataset=postgres://reports::public.items&depth=1"))
    assert {n["name"] for n in g["nodes"]} == {"public.items", "items_report", "web.items"}
    problem(call(api, "GET", "/lineage?dataset=foo::bar"), 404)


def test_diff_redacts_pii_partition_values_in_paths(api: dict[str, Any]) -> None:
    lh = api["app"].state.lakehouse
    schema = pa.schema([pa.field("id", pa.int64()), pa.field("email", pa.string())])
    table = lh.create_table("crm.contacts", schema=schema, format=api["fmt"], partitioning=parse_partitioning("email"))
    table.append(pa.table({"id": [1], "email": ["alice@corp.com"]}, schema=schema))
    first = table.snapshot().version
    table.append(pa.table({"id": [2], "email": ["bob@corp.com"]}, schema=schema))
    lh.catalog.update_table(table.name)
    scan = ok(call(api, "POST", "/tables/crm.contacts/jobs/pii-scan", role="admin", json={"dry_run": False}))
    assert [f["column"] for f in scan["findings"]] == ["email"]  # tagged: readers get it masked
    for role in ("reader", "engineer"):
        d = ok(call(api, "GET", f"/tables/crm.contacts/diff?from={first}", role=role))
        assert d["files_added"] and "bob" not in str(d) and "corp.com" not in str(d), d
        assert all("email=[REDACTED]" in f["path"] for f in d["files_added"])
    d = ok(call(api, "GET", f"/tables/crm.contacts/diff?from={first}", role="admin"))
    assert "bob" in d["files_added"][0]["path"] and d["files_added"][0]["partition"]["email"] == "bob@corp.com"
    # a job's plan and result name its partitions: the job answer, /jobs, /jobs/{id} and the console's page
    table.append(pa.table({"id": [2], "email": ["bob@corp.com"]}, schema=schema))  # a duplicate to remove
    job = ok(
        call(api, "POST", "/tables/crm.contacts/jobs/dedup", role="engineer", json={"dry_run": False, "keys": ["id"]})
    )
    assert "corp.com" not in str(job) and "[REDACTED]" in str(job), job
    for role in ("reader", "engineer"):
        jobs = ok(call(api, "GET", "/jobs?table=crm.contacts", role=role))
        assert jobs and "corp.com" not in str(jobs) and "[REDACTED]" in str(jobs), jobs
        one = ok(call(api, "GET", f"/jobs/{jobs[0]['id']}", role=role))
        assert "corp.com" not in str(one), one
        page = ok(call(api, "GET", "/console/tables/crm.contacts", role=role))
        assert page["partitions"] and "corp.com" not in str(page), page
    assert "bob@corp.com" in str(ok(call(api, "GET", "/jobs?table=crm.contacts", role="admin")))
    assert "bob@corp.com" in str(ok(call(api, "GET", "/console/tables/crm.contacts", role="admin")))


def test_versions_redact_pii_partition_values_in_summaries(api: dict[str, Any]) -> None:
    """Iceberg writers under ``write.summary.partition-limit`` (Spark, Flink, pyiceberg) name each partition's
    path in the snapshot summary's keys (``partitions.email=bob%40corp.com``)."""
    lh = api["app"].state.lakehouse
    schema = pa.schema([pa.field("id", pa.int64()), pa.field("email", pa.string())])
    table = lh.create_table("crm.people", schema=schema, format=api["fmt"], partitioning=parse_partitioning("email"))
    if api["fmt"] == "iceberg":
        with table._table.transaction() as tx:  # as the table's other writers set it
            tx.set_properties({"write.summary.partition-limit": "100"})
    table.append(pa.table({"id": [1, 2], "email": ["alice@corp.com", "bob@corp.com"]}, schema=schema))
    lh.catalog.update_table(table.name)
    version = table.snapshot().version
    admin = ok(call(api, "GET", f"/tables/crm.people/versions/{version}", role="admin"))
    if api["fmt"] == "iceberg":  # the case this guards: the summary carries the raw values
        assert "bob%40corp.com" in str(admin), admin
    ok(call(api, "POST", "/tables/crm.people/jobs/pii-scan", role="admin", json={"dry_run": False}))
    for role in ("reader", "engineer"):
        listed = ok(call(api, "GET", "/tables/crm.people/versions", role=role))
        one = ok(call(api, "GET", f"/tables/crm.people/versions/{version}", role=role))
        assert listed and "corp.com" not in str(listed) and "corp.com" not in str(one), (listed, one)
        if api["fmt"] == "iceberg":
            assert "partitions.email=[REDACTED]" in str(one), one
    assert str(ok(call(api, "GET", f"/tables/crm.people/versions/{version}", role="admin"))) == str(admin)
    # a leftover file in a partition's directory is an example path of the storage reconciliation
    data = next(f.path for f in table.files() if "bob" in f.path)
    with open(os.path.join(os.path.dirname(data), "leftover.parquet"), "wb") as out:
        out.write(b"x")
    assert "bob%40corp.com" in str(ok(call(api, "GET", "/tables/crm.people/storage", role="admin")))
    storage = ok(call(api, "GET", "/tables/crm.people/storage", role="reader"))
    assert "corp.com" not in str(storage) and "email=[REDACTED]" in str(storage), storage


def test_external_lineage_events_do_not_break_metrics(api: dict[str, Any]) -> None:
    ok(
        call(
            api, "POST", "/tables/web.events/records", role="engineer", json=[{"id": 900, "ts": "2026-03-02T10:00:00Z"}]
        )
    )
    event = {
        "eventType": "COMPLETE",
        "run": {"runId": "r-1"},
        "job": {"namespace": "airflow", "name": "lakehouse.ingest"},
        "outputs": [{"namespace": "x", "name": "y", "outputFacets": {"outputStatistics": {"rowCount": "lots"}}}],
    }
    assert "rowCount" in problem(call(api, "POST", "/lineage", role="engineer", json=event), 400)["detail"]
    for bad in ({"facets": []}, {"facets": {"schema": {"fields": "id"}}}, {"outputFacets": {"outputStatistics": 1}}):
        event["outputs"] = [{"namespace": "x", "name": "y", **bad}]
        problem(call(api, "POST", "/lineage", role="engineer", json=event), 400)
    event["outputs"] = [{"namespace": "x", "name": "y", "outputFacets": {"outputStatistics": {"rowCount": 10**6}}}]
    ok(call(api, "POST", "/lineage", role="engineer", json=event), 201)  # another tool's job of that name
    own = {**event, "job": {"namespace": "lakehouse", "name": "lakehouse.ingest"}}
    problem(call(api, "POST", "/lineage", role="engineer", json=own), 400)  # only lakehouse emits its own jobs
    # an event stored before validation existed, in lakehouse's own namespace, is counted as nothing
    own["outputs"] = [{"namespace": "x", "name": "y", "outputFacets": {"outputStatistics": {"rowCount": "lots"}}}]
    api["app"].state.lakehouse.catalog.add_lineage(own)
    text = ok_text(call(api, "GET", "/metrics"))
    assert "lakehouse_rows_ingested_total 1\n" in text


def ok_text(response: Any) -> str:
    assert response.status_code == 200, response.text
    return str(response.text)


def test_pii_scan_dry_run_stores_no_tags(api: dict[str, Any]) -> None:
    lh = api["app"].state.lakehouse
    rows = events(200, 4).set_column(4, "note", pa.array([f"user{i}@corp.com" for i in range(4)]))
    lh.table("web.events").append(rows)
    plan = ok(call(api, "POST", "/tables/web.events/jobs/pii-scan", role="engineer", json={}))
    assert plan["dry_run"] and {f["column"] for f in plan["findings"]} == {"note"} and plan["job_id"] is None
    assert ok(call(api, "GET", "/tables/web.events"))["pii"] == []
    note = {"sql": "SELECT note FROM web.events WHERE id = 200"}
    assert ok(call(api, "POST", "/query", json=note))["rows"] == [{"note": "user0@corp.com"}]
    done = ok(call(api, "POST", "/tables/web.events/jobs/pii-scan", role="admin", json={"dry_run": False}))
    assert not done["dry_run"] and done["job_id"]
    assert [t["column"] for t in ok(call(api, "GET", "/tables/web.events"))["pii"]] == ["note"]
    assert ok(call(api, "POST", "/query", json=note))["rows"] == [{"note": "[REDACTED]"}]


def test_a_bad_policy_is_a_400(shared_api: dict[str, Any]) -> None:
    for values in ({"retention": {"retain": "bogus"}}, {"nope": 1}, {"tiering": {"warm_after": ["x"]}}):
        body = problem(call(shared_api, "PUT", "/tables/web.events/policy", role="admin", json={"values": values}), 400)
        assert "invalid policy" in body["detail"]


@pytest.mark.parametrize("path", ["/query", "/lineage", "/tables/web.events/policy", "/keys"])
def test_every_endpoint_answers_413_to_a_chunked_body_over_the_limit(shared_api: dict[str, Any], path: str) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"sql": "'
        for _ in range(20_000):  # 20 MB, over the default 16 MB
            yield b"x" * 1000
        yield b'"}'

    method = "PUT" if path.endswith("/policy") else "POST"
    body = problem(
        call(shared_api, method, path, role="admin", content=chunks(), headers={"Content-Type": "application/json"}),
        413,
    )
    assert body["title"] == "Request body too large"


@pytest.mark.parametrize("fmt", ["iceberg"], indirect=True)
def test_an_external_table_does_not_stall_other_queries(api: dict[str, Any], tmp_path: Any) -> None:
    """Its first query opens a database that may read its location; a query running meanwhile goes on. (The
    engine's databases are per location, whatever the format: one format; it waits 20 s for a time limit.)"""
    import threading

    lh = api["app"].state.lakehouse
    lh.create_table("ext.far", schema=EVENTS, format=api["fmt"], location=str(tmp_path / "far")).append(events(0, 3))
    slow = SLOW
    answers: list[Any] = []
    runner = threading.Thread(
        target=lambda: answers.append(
            # long enough that the other query answers first on a loaded machine (it took > 9.5 s under 3x load)
            call(api, "POST", "/query", role="admin", json={"sql": slow, "timeout_seconds": 20})
        )
    )
    runner.start()
    time.sleep(0.5)
    far = ok(call(api, "POST", "/query", role="admin", json={"sql": "SELECT count(*) AS n FROM ext.far"}))
    # it answered while the slow query still ran (before the fix it waited for that one to end)
    assert far["rows"] == [{"n": 3}] and runner.is_alive()
    runner.join()
    problem(answers[0], 408)
    after = {"sql": "SELECT count(*) AS n FROM web.events"}
    assert ok(call(api, "POST", "/query", role="admin", json=after))["rows"] == [{"n": 100}]


def test_answers_in_the_server_s_memory_at_once_are_bounded_by_the_workers(
    api: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An answer (up to query.max_result_bytes) is copied into Python values and JSON after its worker is free
    again: six readers at once raised the server's memory by 2 GB. A query and its answer's conversion now hold
    one of query.workers places (2 here), so at most that many answers are in the server at once."""
    import threading
    import time

    inside, most = [0], [0]
    lock = threading.Lock()
    query = Lakehouse.query

    def counted(self: Lakehouse, *args: Any, **kwargs: Any) -> Any:
        with lock:
            inside[0] += 1
            most[0] = max(most[0], inside[0])
        try:
            time.sleep(0.2)
            return query(self, *args, **kwargs)
        finally:
            with lock:
                inside[0] -= 1

    monkeypatch.setattr(Lakehouse, "query", counted)
    results: list[int] = []
    threads = [
        threading.Thread(
            target=lambda: results.append(
                call(api, "POST", "/query", json={"sql": "SELECT count(*) AS n FROM web.events"}).status_code
            )
        )
        for _ in range(6)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [200] * 6 and most[0] == 2, (results, most)
