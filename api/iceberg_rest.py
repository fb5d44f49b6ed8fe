"""The Iceberg REST catalog's routes, under ``/iceberg/v1`` (the catalog URI clients take is ``.../iceberg``).

The routes are the app's like any other: their roles are in :data:`api.authz.ROUTES` (bearer tokens are API keys,
or tokens that ``POST /iceberg/v1/oauth/tokens`` issues from one), and errors under ``/iceberg`` take the spec's
error model (``{"error": {"message", "type", "code"}}``) instead of a problem document. What each route does
is :mod:`lakehouse.served.iceberg_rest`'s.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Annotated, Any, Final, TypeVar
from urllib.parse import parse_qs, unquote

from fastapi import Depends, FastAPI, Path, Query, Request
from fastapi.responses import JSONResponse, Response

from api import authz
from lakehouse.core import Lakehouse
from lakehouse.errors import (
    AuthError,
    CommitConflictError,
    ForbiddenError,
    InvalidInputError,
    LakehouseError,
    NamespaceNotEmptyError,
    NamespaceNotFoundError,
    TableExistsError,
    TableNotFoundError,
    UnsupportedOperationError,
)
from lakehouse.governance.keys import Principal, issue_token
from lakehouse.served.iceberg_rest import IcebergRestCatalog

PREFIX: Final = "/iceberg/v1"
Caller = Annotated[Principal, Depends(authz.authorize)]
Ns = Annotated[str, Path(max_length=200, description="namespace (one level)")]
Tbl = Annotated[str, Path(max_length=200, description="table name")]

_TYPES: Final[tuple[tuple[type[LakehouseError], str], ...]] = (
    (NamespaceNotFoundError, "NoSuchNamespaceException"),
    (TableNotFoundError, "NoSuchTableException"),
    (NamespaceNotEmptyError, "NamespaceNotEmptyException"),
    (TableExistsError, "AlreadyExistsException"),
    (CommitConflictError, "CommitFailedException"),
    (AuthError, "NotAuthorizedException"),
    (ForbiddenError, "ForbiddenException"),
    (UnsupportedOperationError, "UnsupportedOperationException"),
    (InvalidInputError, "BadRequestException"),
)


def is_iceberg(request: Request) -> bool:
    return request.url.path.startswith("/iceberg/")


def iceberg_error(status: int, message: str, kind: str | None = None) -> JSONResponse:
    """The spec's error model (IcebergErrorResponse)."""
    if kind is None:
        kind = {400: "BadRequestException", 401: "NotAuthorizedException", 403: "ForbiddenException"}.get(
            status, "RESTException" if status < 500 else "ServiceFailureException"
        )
    return JSONResponse({"error": {"message": message, "type": kind, "code": status}}, status_code=status)


def iceberg_error_of(e: LakehouseError) -> JSONResponse:
    kind = next((name for cls, name in _TYPES if isinstance(e, cls)), None)
    message = e.message + (f" ({e.hint})" if e.hint else "")
    return iceberg_error(e.http_status, message, kind)


def add_routes(app: FastAPI, base: Lakehouse) -> None:
    """Add the catalog's routes to ``app``."""

    def catalog(p: Principal) -> IcebergRestCatalog:
        return IcebergRestCatalog(base.as_actor(p.actor), reads_pii=authz.allows(p, authz.READS_PII))

    tags: list[str | Any] = ["iceberg-rest"]

    def run(fn: Callable[[], Any], status: int = 200) -> Response:
        result = fn()
        if result is None:
            return Response(status_code=204)
        return JSONResponse(result, status_code=status)

    @app.post(f"{PREFIX}/oauth/tokens", tags=tags)
    async def oauth_tokens(request: Request) -> JSONResponse:
        """OAuth2 client credentials (a form: ``grant_type=client_credentials``, with ``client_id`` and
        ``client_secret`` in it or as HTTP Basic auth): the client secret is an API key (any client id); the answer
        is a bearer token acting as that key for an hour."""
        form = parse_qs((await request.body()).decode("utf-8", "replace"))

        def field(name: str) -> str | None:
            values = form.get(name)
            return values[0] if values else None

        secret = field("client_secret")
        basic = request.headers.get("authorization", "")
        if secret is None and basic.lower().startswith("basic "):  # RFC 6749 2.3.1: HTTP Basic (DuckDB sends this)
            try:
                secret = base64.b64decode(basic[6:].strip()).decode().partition(":")[2] or None
            except ValueError:
                secret = None
        if field("grant_type") != "client_credentials":
            return JSONResponse(
                {"error": "unsupported_grant_type", "error_description": "only client_credentials"}, status_code=400
            )
        try:
            token, ttl = await _threaded(lambda: issue_token(base, unquote(secret or "")))
        except AuthError as e:
            return JSONResponse({"error": "invalid_client", "error_description": e.message}, status_code=401)
        scope = field("scope")
        return JSONResponse(
            {
                "access_token": token,
                "token_type": "bearer",
                "expires_in": ttl,
                "issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
                **({"scope": scope} if scope else {}),
            }
        )

    @app.get(f"{PREFIX}/config", tags=tags)
    def config(p: Caller, warehouse: Annotated[str | None, Query(max_length=1000)] = None) -> Response:
        """The catalog's configuration and the endpoints it serves (``warehouse`` is accepted and ignored: one
        server is one warehouse)."""
        return run(catalog(p).config)

    @app.get(f"{PREFIX}/namespaces", tags=tags)
    def list_namespaces(
        p: Caller,
        parent: Annotated[str | None, Query(max_length=200)] = None,
        pageToken: Annotated[str | None, Query(max_length=200)] = None,
        pageSize: Annotated[int | None, Query(ge=1)] = None,
    ) -> Response:
        return run(lambda: catalog(p).list_namespaces(parent))

    @app.post(f"{PREFIX}/namespaces", tags=tags)
    def create_namespace(p: Caller, body: dict[str, Any]) -> Response:
        return run(lambda: catalog(p).create_namespace(body))

    @app.get(f"{PREFIX}/namespaces/{{namespace}}", tags=tags)
    def load_namespace(p: Caller, namespace: Ns) -> Response:
        return run(lambda: catalog(p).load_namespace(namespace))

    @app.head(f"{PREFIX}/namespaces/{{namespace}}", tags=tags)
    def namespace_exists(p: Caller, namespace: Ns) -> Response:
        def exists() -> None:
            catalog(p).load_namespace(namespace)

        return run(exists)

    @app.delete(f"{PREFIX}/namespaces/{{namespace}}", tags=tags)
    def drop_namespace(p: Caller, namespace: Ns) -> Response:
        return run(lambda: catalog(p).drop_namespace(namespace))

    @app.post(f"{PREFIX}/namespaces/{{namespace}}/properties", tags=tags)
    def update_namespace(p: Caller, namespace: Ns, body: dict[str, Any]) -> Response:
        return run(lambda: catalog(p).update_namespace(namespace, body))

    @app.get(f"{PREFIX}/namespaces/{{namespace}}/tables", tags=tags)
    def list_tables(
        p: Caller,
        namespace: Ns,
        pageToken: Annotated[str | None, Query(max_length=200)] = None,
        pageSize: Annotated[int | None, Query(ge=1)] = None,
    ) -> Response:
        return run(lambda: catalog(p).list_tables(namespace))

    @app.post(f"{PREFIX}/namespaces/{{namespace}}/tables", tags=tags)
    async def create_table(p: Caller, namespace: Ns, request: Request) -> Response:
        body = await request.body()
        return await _threaded(lambda: run(lambda: catalog(p).create_table(namespace, body)))

    @app.post(f"{PREFIX}/namespaces/{{namespace}}/register", tags=tags)
    async def register_table(p: Caller, namespace: Ns, request: Request) -> Response:
        body = await request.body()
        return await _threaded(lambda: run(lambda: catalog(p).register_table(namespace, body)))

    @app.get(f"{PREFIX}/namespaces/{{namespace}}/tables/{{table}}", tags=tags)
    def load_table(
        p: Caller,
        namespace: Ns,
        table: Tbl,
        snapshots: Annotated[str | None, Query(max_length=10)] = None,
    ) -> Response:
        """The table's metadata; a table with PII columns only for a caller who may read PII (403 otherwise)."""
        return run(lambda: catalog(p).load_table(namespace, table))

    @app.head(f"{PREFIX}/namespaces/{{namespace}}/tables/{{table}}", tags=tags)
    def table_exists(p: Caller, namespace: Ns, table: Tbl) -> Response:
        return run(lambda: catalog(p).table_exists(namespace, table))

    @app.post(f"{PREFIX}/namespaces/{{namespace}}/tables/{{table}}", tags=tags)
    async def commit_table(p: Caller, namespace: Ns, table: Tbl, request: Request) -> Response:
        """Apply a commit (requirements, then updates) by the same optimistic check as lakehouse's own jobs:
        409 when another writer committed first."""
        body = await request.body()
        return await _threaded(lambda: run(lambda: catalog(p).commit(namespace, table, body)))

    @app.delete(f"{PREFIX}/namespaces/{{namespace}}/tables/{{table}}", tags=tags)
    def drop_table(p: Caller, namespace: Ns, table: Tbl, purgeRequested: Annotated[bool, Query()] = False) -> Response:
        return run(lambda: catalog(p).drop_table(namespace, table, purge=purgeRequested))

    @app.post(f"{PREFIX}/namespaces/{{namespace}}/tables/{{table}}/metrics", tags=tags)
    def report_metrics(p: Caller, namespace: Ns, table: Tbl, body: dict[str, Any]) -> Response:
        """Accepted and dropped (the spec's scan/commit reports)."""
        return run(lambda: catalog(p).report_metrics(namespace, table))

    @app.post(f"{PREFIX}/tables/rename", tags=tags)
    def rename_table(p: Caller, body: dict[str, Any]) -> Response:
        return run(lambda: catalog(p).rename_table(body))


T = TypeVar("T")


async def _threaded(fn: Callable[[], T]) -> T:
    from fastapi.concurrency import run_in_threadpool

    return await run_in_threadpool(fn)
