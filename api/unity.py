"""The Unity Catalog API subset's routes, under ``/api/2.1/unity-catalog`` (clients take the server's base URL as
their endpoint). Roles are in :data:`api.authz.ROUTES`; errors take Unity Catalog's model
(``{"error_code", "message"}``). What each route answers is :mod:`lakehouse.served.unity`'s."""

from __future__ import annotations

from typing import Annotated, Any, Final

from fastapi import Depends, FastAPI, Path, Query
from fastapi.responses import JSONResponse
from starlette.requests import Request

from api import authz
from lakehouse.core import Lakehouse
from lakehouse.errors import (
    AuthError,
    ForbiddenError,
    LakehouseError,
    TableNotFoundError,
    UnsupportedOperationError,
)
from lakehouse.governance.keys import Principal
from lakehouse.served.unity import PREFIX, UnityCatalog

Caller = Annotated[Principal, Depends(authz.authorize)]
Name = Annotated[str, Path(max_length=400)]
QName = Annotated[str, Query(max_length=200)]

_CODES: Final[tuple[tuple[type[LakehouseError], str], ...]] = (
    (TableNotFoundError, "NOT_FOUND"),
    (AuthError, "UNAUTHENTICATED"),
    (ForbiddenError, "PERMISSION_DENIED"),
    (UnsupportedOperationError, "NOT_IMPLEMENTED"),
)


def is_unity(request: Request) -> bool:
    return request.url.path.startswith(PREFIX + "/")


def unity_error(status: int, message: str, code: str | None = None) -> JSONResponse:
    if code is None:
        code = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND"}.get(
            status, "INTERNAL" if status >= 500 else "INVALID_ARGUMENT"
        )
    return JSONResponse({"error_code": code, "message": message}, status_code=status)


def unity_error_of(e: LakehouseError) -> JSONResponse:
    code = next((name for cls, name in _CODES if isinstance(e, cls)), None)
    status = 501 if isinstance(e, UnsupportedOperationError) else e.http_status
    return unity_error(status, e.message + (f" ({e.hint})" if e.hint else ""), code)


def add_routes(app: FastAPI, base: Lakehouse) -> None:
    def catalog(p: Principal) -> UnityCatalog:
        return UnityCatalog(base.as_actor(p.actor), reads_pii=authz.allows(p, authz.READS_PII))

    tags: list[str | Any] = ["unity-catalog"]

    @app.get(f"{PREFIX}/catalogs", tags=tags)
    def list_catalogs(p: Caller) -> dict[str, Any]:
        return catalog(p).list_catalogs()

    @app.get(f"{PREFIX}/catalogs/{{name}}", tags=tags)
    def get_catalog(p: Caller, name: Name) -> dict[str, Any]:
        return catalog(p).get_catalog(name)

    @app.get(f"{PREFIX}/schemas", tags=tags)
    def list_schemas(p: Caller, catalog_name: QName) -> dict[str, Any]:
        return catalog(p).list_schemas(catalog_name)

    @app.get(f"{PREFIX}/schemas/{{full_name}}", tags=tags)
    def get_schema(p: Caller, full_name: Name) -> dict[str, Any]:
        return catalog(p).get_schema(full_name)

    @app.get(f"{PREFIX}/tables", tags=tags)
    def list_tables(p: Caller, catalog_name: QName, schema_name: QName) -> dict[str, Any]:
        """The schema's Delta tables with location and columns (tables with PII only for PII readers)."""
        return catalog(p).list_tables(catalog_name, schema_name)

    @app.get(f"{PREFIX}/tables/{{full_name}}", tags=tags)
    def get_table(p: Caller, full_name: Name) -> dict[str, Any]:
        return catalog(p).get_table(full_name)

    @app.post(f"{PREFIX}/temporary-table-credentials", tags=tags)
    def temporary_table_credentials(p: Caller, body: dict[str, Any]) -> dict[str, Any]:
        """Local warehouse: nothing to vend (an expiry only). S3: 501, engines use their own credentials."""
        return catalog(p).temporary_credentials(str(body.get("table_id", "")), str(body.get("operation", "READ")))
