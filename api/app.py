"""The REST API: a FastAPI app over the same library functions as the CLI.

``create_app(settings)`` builds it; ``lakehouse serve`` runs it with uvicorn. Every route but ``/health`` and the
API's own description needs an API key (``Authorization: Bearer lhk_...`` or ``X-API-Key``); roles are reader <
engineer < admin, and the role each route (and job parameter) needs is in one table, :mod:`api.authz`. Every
error is an RFC 9457 problem document (``application/problem+json``) with the status of the library's error
class; a user's mistake is never a 500.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import logging
import threading
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal, get_args

import orjson
import pyarrow as pa
from fastapi import Depends, FastAPI, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel, Field, StrictInt
from starlette.exceptions import HTTPException as StarletteHTTPException

from api import authz, console, iceberg_rest, unity
from lakehouse.config import Settings, load_settings
from lakehouse.core import Lakehouse
from lakehouse.errors import InvalidInputError, LakehouseError, QueryError
from lakehouse.governance.keys import Principal, create_key
from lakehouse.sql import MAX_SQL_LENGTH
from lakehouse.tables.base import TableName, parse_as_of

logger = logging.getLogger(__name__)

PROBLEM = "application/problem+json"
NAME_PATTERN = r"^([A-Za-z_][A-Za-z0-9_]{0,31}\.)?[A-Za-z_][A-Za-z0-9_]{0,62}\.[A-Za-z_][A-Za-z0-9_]{0,62}$"
"""namespace.table, or catalog.namespace.table for a table of a connected external catalog."""
TableParam = Annotated[
    str, Path(description="namespace.table (catalog.namespace.table: external)", pattern=NAME_PATTERN, max_length=160)
]


def problem(status: int, title: str, detail: str, *, hint: str | None = None) -> JSONResponse:
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    if hint:
        body["hint"] = hint
    return JSONResponse(body, status_code=status, media_type=PROBLEM)


# ---- request bodies -------------------------------------------------------------------------------------------


class QueryRequest(BaseModel):
    sql: str = Field(
        min_length=1, max_length=MAX_SQL_LENGTH, description="One SELECT over catalog tables (namespace.table)."
    )
    as_of: dict[str, StrictInt | str] = Field(
        default_factory=dict, description="Time travel per table: {name: version or ISO time}."
    )
    max_rows: int | None = Field(default=None, ge=1, le=1_000_000)
    timeout_seconds: float | None = Field(default=None, gt=0, le=3600)
    format: Literal["json", "arrow"] = Field(default="json", description="json rows, or an Arrow IPC stream.")


class RestoreRequest(BaseModel):
    version: StrictInt | str = Field(description="Version number or ISO time to restore to.")


class JobRequest(BaseModel):
    dry_run: bool = Field(default=True, description="Plan only (the default for every job).")
    target_file_size: str | None = Field(default=None, max_length=32, description="optimize: e.g. 128MB")
    zorder: list[str] | None = Field(default=None, max_length=4, description="optimize: Z-order columns")
    curve: Literal["hilbert", "morton"] | None = Field(default=None, description="optimize: clustering curve")
    retain: str | None = Field(default=None, max_length=32, description="vacuum: e.g. 7d")
    keep: list[int] | None = Field(default=None, description="vacuum: versions to keep readable")
    older_than: str | None = Field(default=None, max_length=32, description="orphans, expire-data: e.g. 3d")
    column: str | None = Field(default=None, max_length=128, description="expire-data: time column")
    keys: list[str] | None = Field(default=None, description="dedup: key columns")
    order: str | None = Field(default=None, max_length=128, description="dedup: keep the latest by this column")
    masks: dict[str, str] | None = Field(default=None, description="pii-mask: column -> policy")
    purge: bool = Field(default=False, description="pii-mask: purge the history afterwards")


class KeyRequest(BaseModel):
    name: str = Field(min_length=1, max_length=128)
    role: Literal["reader", "engineer", "admin"]


class PolicyRequest(BaseModel):
    values: dict[str, Any] = Field(description='Nested policy values, e.g. {"tiering": {"warm_after": "30d"}}.')
    replace: bool = Field(default=False, description="Replace the stored policy instead of merging into it.")


class EraseRequest(BaseModel):
    where: str = Field(min_length=1, max_length=10_000, description='The data subject, e.g. "customer_id = 42".')
    tables: list[str] | None = None
    purge: bool = True
    dry_run: bool = True


class BodyTooLarge(StarletteHTTPException):
    """A request body (chunked, without Content-Length) grew past the limit."""

    def __init__(self) -> None:
        super().__init__(status_code=413, detail="request body too large")


class BodyLimit:
    """ASGI middleware: counts request body bytes as they arrive and answers 413 past ``max_body``.

    The answer is the middleware's, for every endpoint: whatever the app makes of a body cut short (FastAPI
    turns a failed body read into a 400 "error parsing the body", an endpoint may catch the error) is dropped
    and replaced by the 413, unless the app had already started its response."""

    def __init__(self, app: Any, *, max_body: int) -> None:
        self.app = app
        self.max_body = max_body

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        too_large = problem(413, "Request body too large", f"bodies are limited to {self.max_body} bytes")
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body):
            await too_large(scope, receive, send)
            return
        received = 0
        exceeded = started = False

        async def limited() -> Any:
            nonlocal received, exceeded
            message = await receive()
            if message.get("type") == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    exceeded = True
                    raise BodyTooLarge
            return message

        async def guarded(message: Any) -> None:
            nonlocal started
            if exceeded and not started:
                return  # the app's answer to a body it never got whole
            started = started or message.get("type") == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited, guarded)
        except Exception:
            if not exceeded or started:
                raise
        if exceeded and not started:
            await too_large(scope, receive, send)


JobKind = Literal["optimize", "vacuum", "orphans", "expire-data", "tier", "dedup", "pii-scan", "pii-mask"]


# ---- authorization: api/authz.py ------------------------------------------------------------------------------

Caller = Annotated[Principal, Depends(authz.authorize)]
"""The request's key, already allowed by the route's entry in ``authz.ROUTES`` (the same, cached, call as the
route's own dependency)."""


def authorized_job(kind: Annotated[JobKind, Path()], body: JobRequest, p: Caller) -> JobRequest:
    """A job request whose kind and parameters the key's role allows (``authz.JOBS``, ``authz.JOB_PARAMS``)."""
    authz.require_job(p, str(kind), body.model_dump())
    return body


# ---- the app --------------------------------------------------------------------------------------------------


def _refuse_masked_predicate(lh: Lakehouse, name: str, predicate: str) -> None:
    """A caller who reads a column masked cannot ask which files and row groups a predicate on it skips: the
    counts answer from the column's raw min/max statistics, and a few predicates would bisect its values."""
    from lakehouse.errors import ForbiddenError
    from lakehouse.expr import parse_filter
    from lakehouse.governance.ops import read_masks

    table = lh.table(name)
    hidden = sorted(parse_filter(predicate).columns() & set(read_masks(lh, table)))
    if hidden:
        raise ForbiddenError(
            f"the predicate names column(s) {', '.join(hidden)} of {table.name}, which this key reads masked: "
            "data skipping on them would tell their values",
            hint="leave those columns out of the predicate, or ask with a key that may read PII",
        )


def _refuse_masked_job_columns(lh: Lakehouse, name: str, body: JobRequest) -> None:
    """A caller who reads a column masked cannot have a job order, group or cluster rows by it: which duplicate a
    dedup keeps by ``order`` (then a restore) recovers a value probe by probe, ``keys`` tell which rows hold equal
    values, a Z-order by it lays rows out in its order, and expire-data's ``column`` counts rows past a value."""
    from lakehouse.errors import ForbiddenError
    from lakehouse.governance.ops import read_masks

    named = {*(body.zorder or ()), *(body.keys or ()), *(c for c in (body.order, body.column) if c)}
    hidden = sorted(named & set(read_masks(lh, lh.table(name))))
    if hidden:
        raise ForbiddenError(
            f"the job names column(s) {', '.join(hidden)} of {name}, which this key reads masked: ordering, "
            "grouping or clustering rows by them would tell their values",
            hint="name other columns, or run the job with a key that may read PII",
        )


def create_app(settings: Settings | None = None, *, autopilot_interval: float | None = None) -> FastAPI:
    """The API over one warehouse (``settings`` default: the usual precedence, lakehouse.toml and env).

    With ``autopilot_interval`` the service also runs the autopilot in a background thread (its own catalog
    connection and leases), stopped with the app."""
    base = Lakehouse(settings or load_settings(), actor="api")
    _ = base.catalog, base.sql  # created once, shared by every request
    base.isolated_sql.pool.warm()  # the first query should not wait for a worker to start

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        stop = threading.Event()
        thread = None
        pilot_lh = None
        if autopilot_interval is not None:
            from lakehouse.maintenance.autopilot import Autopilot

            pilot_lh = Lakehouse(base.settings, actor="api-autopilot")
            pilot = Autopilot(pilot_lh, autopilot_interval)

            def keep_piloting() -> None:
                # a pass's own failures are per table and back off; anything else must not end the service's
                # autopilot silently while the API keeps answering
                while not stop.is_set():
                    try:
                        pilot.run(stop=stop)
                    except Exception:  # logged (BLE allows it then); the loop goes on after one interval
                        logger.exception("autopilot pass failed; next attempt in %s s", autopilot_interval)
                        stop.wait(max(autopilot_interval, 1.0))

            thread = threading.Thread(target=keep_piloting, name="autopilot", daemon=True)
            thread.start()
            app.state.autopilot = pilot
        yield
        stop.set()
        if thread is not None:
            thread.join(timeout=60)
        if pilot_lh is not None:
            pilot_lh.close()
        base.close()

    app = FastAPI(
        lifespan=lifespan,
        title="lakehouse",
        version="0.1.0",
        description=__doc__,
        responses={
            400: {"description": "Bad input (problem document)"},
            401: {"description": "No or unknown API key"},
            403: {"description": "The key's role does not allow this"},
            404: {"description": "Unknown table, version or job"},
            422: {"description": "Invalid request"},
        },
    )
    app.router.route_class = authz.AuthorizedRoute
    app.state.lakehouse = base
    max_body = base.settings.api.max_body_bytes

    app.add_middleware(BodyLimit, max_body=max_body)

    # errors under /iceberg take the Iceberg REST spec's error model (api/iceberg_rest.py), under
    # /api/2.1/unity-catalog Unity Catalog's (api/unity.py), the rest RFC 9457
    @app.exception_handler(LakehouseError)
    async def _lakehouse_error(request: Request, e: LakehouseError) -> JSONResponse:
        if iceberg_rest.is_iceberg(request):
            return iceberg_rest.iceberg_error_of(e)
        if unity.is_unity(request):
            return unity.unity_error_of(e)
        return problem(e.http_status, type(e).__name__, e.message, hint=e.hint)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, e: RequestValidationError) -> JSONResponse:
        details = "; ".join(
            f"{'.'.join(str(p) for p in err.get('loc', ()))}: {err.get('msg')}" for err in e.errors()[:10]
        )
        if iceberg_rest.is_iceberg(request):
            return iceberg_rest.iceberg_error(400, f"invalid request: {details}")
        if unity.is_unity(request):
            return unity.unity_error(400, f"invalid request: {details}")
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind and "json" not in kind and any(err.get("loc", ())[:1] == ("body",) for err in e.errors()):
            # a JSON body sent as a form (curl -d without -H 'Content-Type: application/json')
            return problem(
                415,
                "Unsupported media type",
                f"the body must be JSON, sent with Content-Type: application/json (not {kind})",
                hint="curl: add -H 'Content-Type: application/json'",
            )
        return problem(422, "Invalid request", details)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, e: StarletteHTTPException) -> JSONResponse:
        if iceberg_rest.is_iceberg(request):
            return iceberg_rest.iceberg_error(e.status_code, str(e.detail))
        if unity.is_unity(request):
            return unity.unity_error(e.status_code, str(e.detail))
        title = "Request body too large" if e.status_code == 413 else "HTTP error"
        return problem(e.status_code, title, str(e.detail))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, e: Exception) -> JSONResponse:
        if iceberg_rest.is_iceberg(request):
            return iceberg_rest.iceberg_error(500, f"{type(e).__name__}: the server failed; see its log")
        if unity.is_unity(request):
            return unity.unity_error(500, f"{type(e).__name__}: the server failed; see its log")
        return problem(500, "Internal error", f"{type(e).__name__}: the server failed; see its log")

    def lh_for(p: Principal) -> Lakehouse:
        return base.as_actor(p.actor)

    # ---- health and metrics ------------------------------------------------------------------------------

    @app.get("/health", tags=["service"])
    def health() -> dict[str, str]:
        """Liveness and the catalog's reachability; no key needed, so it says nothing else."""
        base.catalog.list_tables(namespace="__health__")
        return {"status": "ok"}

    @app.get("/metrics", tags=["service"], response_class=PlainTextResponse)
    def metrics(_: Caller) -> PlainTextResponse:
        """Prometheus text format: jobs by kind and state, job durations, rows ingested, files rewritten,
        per-table file counts, bytes and small-file ratio."""
        from api.metrics import render

        return PlainTextResponse(render(base), media_type="text/plain; version=0.0.4")

    # ---- catalog --------------------------------------------------------------------------------------------

    @app.get("/tables", tags=["catalog"])
    def list_tables(
        p: Caller,
        namespace: Annotated[str | None, Query(max_length=63)] = None,
        format: Annotated[Literal["delta", "iceberg"] | None, Query()] = None,
        tag: Annotated[str | None, Query(max_length=32, description="A PII kind, or 'pii' for any")] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 50,
        offset: Annotated[int, Query(ge=0)] = 0,
    ) -> dict[str, Any]:
        """Tables, paginated, filtered by namespace, format and PII tag."""
        records = base.list_tables(namespace=namespace, format=format)
        if tag:
            records = [r for r in records if any(tag in ("pii", t["kind"]) for t in base.catalog.pii_tags(r.name))]
        page = records[offset : offset + limit]
        return {
            "items": [{k: v for k, v in r.as_dict().items() if k != "schema"} for r in page],
            "total": len(records),
            "limit": limit,
            "offset": offset,
        }

    @app.get("/tables/{name}", tags=["catalog"])
    def table_detail(
        name: TableParam,
        p: Caller,
        predicate: Annotated[
            str | None,
            Query(
                max_length=10_000,
                description="A SQL predicate: report the files and row groups min/max statistics let a reader skip",
            ),
        ] = None,
    ) -> dict[str, Any]:
        """Schema, partitioning, keys, properties, capabilities, PII tags, file health and tier breakdown; with
        ``predicate``, data skipping (files and row groups) for it."""
        from lakehouse.maintenance.tiering import table_cost
        from lakehouse.presentation import table_summary

        if predicate is not None and not authz.allows(p, authz.READS_PII):
            _refuse_masked_predicate(base, name, predicate)
        info = table_summary(base, name, predicate)
        try:
            cost = table_cost(base, name, bill=False).as_dict()
            info["tiers"] = cost["tiers"]
        except LakehouseError as e:  # a table without a time column still has a detail page
            info["tiers"] = {"error": e.message}
        return info

    def redacted(p: Principal | None, table: Any, answer: Any) -> Any:
        """``answer`` with the partition values of columns the caller reads masked hidden (paths of files, a
        version's summary: Iceberg's ``partitions.<path>`` keys)."""
        if authz.allows(p, authz.READS_PII):
            return answer
        return authz.redact_partitions(answer, authz.masked_partition_keys(base, table))

    @app.get("/tables/{name}/storage", tags=["catalog"])
    def table_storage(name: TableParam, p: Caller) -> dict[str, Any]:
        """Storage reconciliation and cost: every byte under the table location as the current version's data,
        data older readable versions need, expired versions' data still there, metadata, or unaccounted (with
        what is removable now), and the monthly cost per tier, the requests and retrievals of the last 30 days'
        jobs and the next 12 months projected against no maintenance (as ``lakehouse cost --json``). One listing
        of the location; the metadata of every readable version is read."""
        from lakehouse.maintenance.reconcile import reconcile
        from lakehouse.maintenance.tiering import table_cost
        from lakehouse.storage import shared_listings

        with shared_listings():
            out: dict[str, Any] = {"reconciliation": reconcile(base, name).as_dict()}
            try:
                out["cost"] = table_cost(base, name).as_dict()
            except LakehouseError as e:  # e.g. no price for a storage class: the reconciliation still stands
                out["cost"] = {"error": e.message}
        return redacted(p, base.table(name), out)  # the examples of unaccounted files are paths

    @app.get("/tables/{name}/policy", tags=["catalog"])
    def get_policy(name: TableParam, p: Caller) -> dict[str, Any]:
        return {"effective": base.policy(name).model_dump(), "stored": base.catalog.policy(TableName.parse(name))}

    @app.put("/tables/{name}/policy", tags=["admin"])
    def put_policy(name: TableParam, body: PolicyRequest, p: Caller) -> dict[str, Any]:
        """Store policy values for a table (validated)."""
        return lh_for(p).set_policy(name, body.values, replace=body.replace).model_dump()

    # ---- history and time travel ----------------------------------------------------------------------------

    @app.get("/tables/{name}/versions", tags=["history"])
    def versions(name: TableParam, p: Caller) -> list[dict[str, Any]]:
        from lakehouse.presentation import version_history

        table = base.table(name)
        return redacted(p, table, version_history(table))

    @app.get("/tables/{name}/versions/{version}", tags=["history"])
    def version_detail(name: TableParam, version: Annotated[int, Path(ge=0)], p: Caller) -> dict[str, Any]:
        table = base.table(name)
        snap = table.snapshot(version)
        files = table.files(as_of=snap.version)
        return redacted(
            p,
            table,
            {
                **snap.as_dict(),
                "files": len(files),
                "rows": sum(f.row_count for f in files),
                "bytes": sum(f.size_bytes for f in files),
            },
        )

    @app.get("/tables/{name}/diff", tags=["history"])
    def diff(
        name: TableParam,
        p: Caller,
        from_version: Annotated[int, Query(ge=0, alias="from")],
        to_version: Annotated[int | None, Query(ge=0, alias="to")] = None,
    ) -> dict[str, Any]:
        """Files added and removed between two versions, with row counts (``to`` defaults to the current)."""
        table = base.table(name)
        a = table.snapshot(from_version)
        b = table.snapshot(to_version) if to_version is not None else table.snapshot()
        before = {f.path: f for f in table.files(as_of=a.version)}
        after = {f.path: f for f in table.files(as_of=b.version)}
        added = [after[k].as_dict() for k in after.keys() - before.keys()]
        removed = [before[k].as_dict() for k in before.keys() - after.keys()]
        if not authz.allows(p, authz.READS_PII):  # partition values of PII columns are PII too
            keys = authz.masked_partition_keys(base, table)
            for f in added + removed:
                f["path"], f["partition"] = table.redact_partition_values(f["path"], f["partition"], keys)
        return {
            "from": a.version,
            "to": b.version,
            "rows_from": sum(f.row_count for f in before.values()),
            "rows_to": sum(f.row_count for f in after.values()),
            "files_added": sorted(added, key=lambda f: f["path"]),
            "files_removed": sorted(removed, key=lambda f: f["path"]),
            "rows_added": sum(f["row_count"] for f in added),
            "rows_removed": sum(f["row_count"] for f in removed),
        }

    @app.post("/tables/{name}/restore", tags=["history"])
    def restore(name: TableParam, body: RestoreRequest, p: Caller) -> dict[str, Any]:
        """Restore a table to an earlier version (recorded in the job history and the audit log)."""
        when = parse_as_of(body.version if isinstance(body.version, int) else str(body.version))
        return redacted(p, base.table(name), lh_for(p).restore(name, when).as_dict())

    # ---- query ----------------------------------------------------------------------------------------------

    answers = threading.BoundedSemaphore(max(1, base.settings.query.workers))

    @app.post(
        "/query",
        tags=["query"],
        responses={200: {"content": {"application/json": {}, "application/vnd.apache.arrow.stream": {}}}},
    )
    def query(body: QueryRequest, p: Caller) -> Response:
        """Read-only SQL over catalog tables (DuckDB). Only SELECT; no table functions that read files or
        URLs, no ATTACH/COPY/INSTALL/LOAD/PRAGMA/SET. PII comes masked unless the key is an admin's."""
        as_of = {str(TableName.parse(k)): parse_as_of(v) for k, v in body.as_of.items()}
        # as many answers in the server's memory at once as there are workers: an answer (up to
        # query.max_result_bytes) is copied into Python values and JSON after its worker is free again
        with answers:
            return _query(body, p, as_of)

    def _query(body: QueryRequest, p: Principal, as_of: dict[str, Any]) -> Response:
        settings = base.settings.api
        result = lh_for(p).query(
            body.sql,
            as_of=as_of,
            max_rows=min(body.max_rows or settings.max_rows, settings.max_rows),
            masked=not authz.allows(p, authz.READS_PII),
            isolated=True,  # every API query: a worker process with hard limits whose engine reads no file
            timeout=min(body.timeout_seconds or settings.query_timeout_seconds, settings.query_timeout_seconds),
        )
        if body.format == "arrow":
            sink = io.BytesIO()
            with pa.ipc.new_stream(sink, result.table.schema) as writer:
                writer.write_table(result.table)
            return Response(sink.getvalue(), media_type="application/vnd.apache.arrow.stream")
        from lakehouse.sql.engine import json_value

        try:
            body_json = orjson.dumps(result.as_dict(), default=json_value)
        except (OverflowError, ValueError, pa.ArrowException) as e:
            raise QueryError(f"a result value has no JSON form ({e})", hint='ask for "format": "arrow"') from e
        return Response(body_json, media_type="application/json")

    # ---- ingest ---------------------------------------------------------------------------------------------

    @app.post(
        "/tables/{name}/records",
        tags=["ingest"],
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {"schema": {"type": "array", "items": {"type": "object"}}},
                    "application/x-ndjson": {"schema": {"type": "string"}},
                },
            }
        },
    )
    async def ingest(
        name: TableParam,
        request: Request,
        p: Caller,
        source: Annotated[
            str | None, Query(max_length=200, description="Batch id; a retry with it is idempotent")
        ] = None,
        start_position: Annotated[int, Query(ge=0, le=2**62)] = 0,
    ) -> dict[str, Any]:
        """Ingest records (a JSON array of objects, or NDJSON) through the pipeline: bad records go to the
        quarantine, the answer reports them."""
        from lakehouse.ingest.pipeline import ingest_records

        raw = await request.body()
        if len(raw) > max_body:
            raise InvalidInputError(f"bodies are limited to {max_body} bytes")
        content_type = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
        records: list[Any]
        if content_type in ("application/x-ndjson", "application/ndjson", "text/plain"):
            records = [line for line in raw.splitlines() if line.strip()]
        else:
            try:
                parsed = orjson.loads(raw) if raw.strip() else None
            except orjson.JSONDecodeError as e:
                raise InvalidInputError(f"the body is not valid JSON: {e}") from None
            if not isinstance(parsed, list):
                raise InvalidInputError(
                    "send a JSON array of records, or NDJSON with Content-Type application/x-ndjson"
                )
            records = parsed
        if not records:
            raise InvalidInputError("no records in the body")
        batch = source or f"api:{uuid.uuid4()}"
        lh = lh_for(p)
        result = await run_in_threadpool(
            ingest_records, lh, name, records, source=f"api:{batch}" if source else batch, start_position=start_position
        )
        answer = {"table": str(TableName.parse(name)), "source": batch, **result.as_dict()}
        counts = {k: answer[k] for k in ("records", "rows", "quarantined", "skipped", "version") if k in answer}
        lh.catalog.audit("ingest", table=TableName.parse(name), actor=p.actor, details={"counts": counts})
        return answer

    # ---- jobs -----------------------------------------------------------------------------------------------

    @app.post("/tables/{name}/jobs/{kind}", tags=["jobs"])
    def run_job(
        name: TableParam,
        kind: Annotated[JobKind, Path()],
        body: Annotated[JobRequest, Depends(authorized_job)],
        p: Caller,
    ) -> dict[str, Any]:
        """Plan (dry run, the default) or run a maintenance job; the answer is its plan or result. Some kinds
        and parameters need more than the engineer role (see api/authz.py)."""
        from api.jobs import run

        if not authz.allows(p, authz.READS_PII):
            _refuse_masked_job_columns(base, name, body)
        return _job_answers(p, [run(lh_for(p), name, str(kind), body.model_dump())], table=name)[0]

    def _job_answers(
        p: Principal | None, answers: list[dict[str, Any]], table: str | None = None
    ) -> list[dict[str, Any]]:
        """Jobs (or a job's plan or result, of ``table``) as a caller may see them: below admin, the partition
        values of masked columns are redacted (a job names its partitions); all of them where the table cannot
        be opened."""
        if authz.allows(p, authz.READS_PII):
            return answers
        keys: dict[str, set[str] | None] = {}
        out = []
        for answer in answers:
            name = table or str(answer.get("table_name") or answer.get("table") or "")
            if name not in keys:
                try:
                    keys[name] = authz.masked_partition_keys(base, base.table(name))
                except LakehouseError:
                    keys[name] = None
            out.append(authz.redact_partitions(answer, keys[name]))
        return out

    @app.get("/jobs", tags=["jobs"])
    def jobs(
        p: Caller,
        table: Annotated[str | None, Query(pattern=NAME_PATTERN, max_length=160)] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> list[dict[str, Any]]:
        return _job_answers(p, [j.as_dict() for j in base.jobs(table, limit=limit)])

    @app.get("/jobs/{job_id}", tags=["jobs"])
    def job(job_id: Annotated[int, Path(ge=1)], p: Caller) -> dict[str, Any]:
        j = base.catalog.job(job_id)
        if j is not None:
            return _job_answers(p, [j.as_dict()])[0]
        from lakehouse.errors import TableNotFoundError

        raise TableNotFoundError(f"no job {job_id}")

    # ---- lineage --------------------------------------------------------------------------------------------

    @app.get("/lineage", tags=["lineage"])
    def lineage(
        p: Caller,
        dataset: Annotated[str, Query(min_length=1, max_length=500, description="ns.table or namespace::name")],
        depth: Annotated[int, Query(ge=1, le=20)] = 3,
    ) -> dict[str, Any]:
        """Upstream and downstream datasets and jobs of a dataset, up to ``depth`` jobs away."""
        from lakehouse.governance.lineage import graph

        return graph(base, dataset, depth=depth)

    @app.post("/lineage", tags=["lineage"], status_code=201)
    def post_lineage(event: dict[str, Any], p: Caller) -> dict[str, Any]:
        """Accept an OpenLineage run event from another tool (an Airflow emitter, dbt, Spark)."""
        from lakehouse.governance.lineage import emit, validate_event

        event_id = emit(lh_for(p), validate_event(event, own_namespace=base.settings.lineage.namespace))
        job = event["job"]
        base.catalog.audit(
            "lineage.post", table=None, actor=p.actor, details={"job": f"{job['namespace']}/{job['name']}"}
        )
        return {"id": event_id}

    @app.get("/lineage/events", tags=["lineage"])
    def lineage_events(p: Caller, limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[dict[str, Any]]:
        return base.catalog.lineage_events(limit=limit)

    # ---- admin ----------------------------------------------------------------------------------------------

    @app.post("/keys", tags=["admin"], status_code=201)
    def new_key(body: KeyRequest, p: Caller) -> dict[str, Any]:
        """Create an API key; the key itself is in this answer only."""
        key_id, key = create_key(lh_for(p), name=body.name, role=body.role)
        return {"id": key_id, "key": key, "role": body.role, "name": body.name}

    @app.get("/keys", tags=["admin"])
    def list_keys(p: Caller) -> list[dict[str, Any]]:
        return [
            {k: (v.isoformat() if isinstance(v, dt.datetime) else v) for k, v in r.items()} for r in base.catalog.keys()
        ]

    @app.delete("/keys/{key_id}", tags=["admin"])
    def revoke_key(key_id: Annotated[str, Path(max_length=16, pattern=r"^[0-9a-f]+$")], p: Caller) -> dict[str, Any]:
        if not base.catalog.revoke_key(key_id):
            from lakehouse.errors import TableNotFoundError

            raise TableNotFoundError(f"no active key {key_id}")
        base.catalog.audit("key.revoke", table=None, actor=p.actor, details={"key_id": key_id})
        return {"id": key_id, "revoked": True}

    @app.post("/erase", tags=["admin"])
    def erase(body: EraseRequest, p: Caller) -> dict[str, Any]:
        """Right to be forgotten: delete a subject's rows across tables, purge history, record a receipt."""
        from lakehouse.governance.ops import erase as run_erase

        return run_erase(lh_for(p), body.where, tables=body.tables, purge=body.purge, dry_run=body.dry_run)

    @app.get("/audit", tags=["admin"])
    def audit(
        p: Caller,
        table: Annotated[str | None, Query(pattern=NAME_PATTERN, max_length=160)] = None,
        action: Annotated[str | None, Query(max_length=64)] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> list[dict[str, Any]]:
        return [r.as_dict() for r in base.audit_log(table, action=action, limit=limit)]

    iceberg_rest.add_routes(app, base)
    unity.add_routes(app, base)
    console.add_routes(app, base)

    try:
        authz.check_app(app, job_kinds=get_args(JobKind), job_dependency=authorized_job)
    except BaseException:
        base.close()
        raise
    return app
