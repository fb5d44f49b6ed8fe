"""The web console: static pages under ``/ui`` (served by the app itself: no CDN, no build step) and the two
views it needs beyond the API (``/console/tables``, ``/console/tables/{name}``); every other number it shows
comes from the API's own routes, with the same key and roles. See ``static/console.js``."""

from __future__ import annotations

from pathlib import Path as FsPath
from typing import Annotated, Any, Final, Literal

from fastapi import Depends, FastAPI, Path, Query
from fastapi.responses import FileResponse, RedirectResponse
from pydantic import BaseModel, Field

from api import authz
from lakehouse.core import Lakehouse
from lakehouse.errors import LakehouseError, TableNotFoundError
from lakehouse.governance.keys import Principal

STATIC: Final = FsPath(__file__).parent / "static"
MEDIA: Final = {".html": "text/html", ".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
ASSETS: Final = {p.name: p for p in STATIC.iterdir() if p.suffix in MEDIA}
"""The files the console serves, by name (an allow-list made once: nothing else under the app is reachable)."""

Caller = Annotated[Principal, Depends(authz.authorize)]
NAME_PATTERN = r"^([A-Za-z_][A-Za-z0-9_]{0,31}\.)?[A-Za-z_][A-Za-z0-9_]{0,62}\.[A-Za-z_][A-Za-z0-9_]{0,62}$"
Sort = Literal["name", "format", "bytes", "files", "small_file_share", "score", "last_maintenance"]


class MeasureRequest(BaseModel):
    tables: list[Annotated[str, Field(pattern=NAME_PATTERN, max_length=160)]] = Field(min_length=1, max_length=50)


def add_routes(app: FastAPI, base: Lakehouse) -> None:
    @app.get("/", tags=["console"], include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse("/ui/", status_code=307)

    @app.get("/favicon.ico", tags=["console"], include_in_schema=False)
    def favicon() -> FileResponse:
        return FileResponse(STATIC / "favicon.svg", media_type="image/svg+xml")

    @app.get("/ui/", tags=["console"], include_in_schema=False)
    def console_page() -> FileResponse:
        """The console (a single page; the key is entered there and kept in the browser's session storage)."""
        return FileResponse(STATIC / "index.html", media_type="text/html", headers={"Cache-Control": "no-cache"})

    @app.get("/ui/{asset}", tags=["console"], include_in_schema=False)
    def console_asset(asset: Annotated[str, Path(max_length=100)]) -> FileResponse:
        path = ASSETS.get(asset)
        if path is None:
            raise TableNotFoundError(f"no console file {asset}")
        return FileResponse(path, media_type=MEDIA[path.suffix], headers={"Cache-Control": "no-cache"})

    @app.get("/console/whoami", tags=["console"])
    def whoami(p: Caller) -> dict[str, Any]:
        """The key's name and role, and what the role may do (what the console shows and hides)."""
        return {
            "name": p.name,
            "role": p.role,
            "reads_pii": authz.allows(p, authz.READS_PII),
            "runs_jobs": authz.allows(p, "engineer"),
            "admin": authz.allows(p, "admin"),
        }

    @app.get("/console/tables", tags=["console"])
    def console_tables(
        p: Caller,
        q: Annotated[str | None, Query(max_length=200, description="Part of the name")] = None,
        format: Annotated[Literal["delta", "iceberg"] | None, Query()] = None,
        catalog: Annotated[str | None, Query(max_length=32, description="lakehouse, or a connected catalog")] = None,
        sort: Annotated[Sort, Query()] = "name",
        desc: Annotated[bool, Query()] = False,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        offset: Annotated[int, Query(ge=0)] = 0,
    ) -> dict[str, Any]:
        """The console's table list: every table with size, files, small-file share, health score and trend, tier
        mix (the newest health measurement), last maintenance job and PII tags; filtered, sorted and paged here.
        Reads the catalog database only."""
        from lakehouse.presentation import tables_overview

        return tables_overview(
            base, search=q, format=format, catalog=catalog, sort=sort, descending=desc, limit=limit, offset=offset
        )

    @app.get("/console/tables/{name}", tags=["console"])
    def console_table(name: Annotated[str, Path(pattern=NAME_PATTERN, max_length=160)], p: Caller) -> dict[str, Any]:
        """The console's table page beyond ``GET /tables/{name}``: the file-size histogram before the newest
        compaction, partitions with bytes, files and tier, data skipping for the predicates queries ran (shown
        to admins only: a predicate names values), policy, health trend and recent jobs."""
        from lakehouse.presentation import table_page

        page = table_page(base, name)
        if authz.allows(p, authz.READS_PII):
            return page
        # partition values of masked columns are PII too (the partitions, the recent jobs' plans)
        return authz.redact_partitions(page, authz.masked_partition_keys(base, base.table(name)))

    @app.post("/console/measure", tags=["console"])
    def console_measure(body: MeasureRequest, p: Caller) -> dict[str, Any]:
        """Measure the health of up to 50 tables now (the console's "measure" button for tables never measured);
        each result is kept for the table list and the trend. A table that fails is reported with its error."""
        from lakehouse.maintenance.maintain import health

        out: dict[str, Any] = {}
        lh = base.as_actor(p.actor)
        for name in body.tables:
            try:
                out[name] = {"score": round(health(lh, name).score, 1)}
            except LakehouseError as e:
                out[name] = {"error": e.message}
        return out
