"""The REST API through HTTP (Starlette's TestClient runs the real ASGI app), for both formats: catalog,
history, diff, time travel by version and timestamp, ingest, jobs, lineage, roles, the SQL sandbox, metrics,
and problem documents for mistakes."""

from __future__ import annotations

import datetime as dt
import io
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
from tests.conftest import EVENTS, events

SECRET = "api-test-secret"


@pytest.fixture
def api(tmp_path: Any, fmt: str) -> Iterator[dict[str, Any]]:
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


def test_mistakes_are_problem_documents(api: dict[str, Any]) -> None:
    problem(call(api, "GET", "/tables/web.nope"), 404)
    problem(call(api, "GET", "/tables/web.events/versions/999"), 404)
    problem(call(api, "GET", "/tables/not-a-name"), 422)
    problem(call(api, "POST", "/query", json={"sql": "SELEC 1"}), 400)
    problem(call(api, "POST", "/query", json={"sql": "SELECT * FROM web.nope"}), 404)
    problem(call(api, "POST", "/query", json={"sql": 5}), 422)
    problem(call(api, "POST", "/query", content=b"{not json", headers={"Content-Type": "application/json"}), 422)
    problem(
        call(
            api,
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
            api,
            "POST",
            "/tables/web.events/records",
            role="engineer",
            content=big,
            headers={"Content-Type": "application/json"},
        ),
        413,
    )
    problem(call(api, "GET", "/jobs/123456"), 404)
    problem(call(api, "GET", "/lineage?dataset=web.never"), 404)


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
    ],
)
def test_sql_sandbox(api: dict[str, Any], sql: str) -> None:
    import os

    body = problem(call(api, "POST", "/query", role="admin", json={"sql": sql}), 400)
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


def test_values_without_a_json_form_are_a_4xx(api: dict[str, Any]) -> None:
    problem(call(api, "POST", "/query", json={"sql": "SELECT 'infinity'::TIMESTAMP AS t"}), 400)
    arrow = call(api, "POST", "/query", json={"sql": "SELECT 'infinity'::TIMESTAMP AS t", "format": "arrow"})
    assert arrow.status_code == 200
    problem(
        call(api, "POST", "/query", json={"sql": "SELECT 1", "as_of": {"web.events": "0001-01-01T00:00:00+01:00"}}), 400
    )


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
    problem(call(api, "POST", "/tables/web.events/jobs/optimize", json={"dry_run": True}), 403)
    problem(call(api, "POST", "/tables/web.events/records", json=[{"id": 1}]), 403)
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
    vac = ok(call(api, "POST", "/tables/web.events/jobs/vacuum", role="engineer", json={"retain": "0s"}))
    assert vac["dry_run"] and vac["expired_versions"]
    assert ok(call(api, "POST", "/tables/web.events/jobs/pii-scan", role="engineer", json={}))["table"] == "web.events"
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
    assert {"job:lakehouse/lakehouse.ingest", "job:lakehouse/lakehouse.optimize", "job:airflow/daily_report"} <= ids
    assert "lakehouse-api::api:orders-topic" in ids and "postgres://reports::public.daily" in ids
    edges = {(e["from"], e["to"]) for e in g["edges"]}
    assert ("lakehouse-api::api:orders-topic", "job:lakehouse/lakehouse.ingest") in edges
    assert ("job:airflow/daily_report", "postgres://reports::public.daily") in edges
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
        assert "lakehouse_jobs_total" in client.get("/metrics", headers={"X-API-Key": key}).text
    with Lakehouse(settings) as lh:
        assert len(lh.table("web.events").files()) == 3 and lh.table("web.events").row_count() == 100
