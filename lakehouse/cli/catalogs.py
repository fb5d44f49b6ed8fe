"""``lakehouse catalog``: connect external Iceberg catalogs (Glue, REST, SQL, Hive) whose tables lakehouse then
maintains in place, committing through them (see :mod:`lakehouse.external`)."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table as RichTable

from lakehouse.cli._common import JsonOpt, _key_values, _lh, _print_json, _warn, app, out
from lakehouse.errors import StorageError

catalog_app = typer.Typer(
    help="Connect external Iceberg catalogs (glue, rest, sql, hive): their tables are CATALOG.namespace.table and "
    "every job commits through them.",
    no_args_is_help=True,
)
app.add_typer(catalog_app, name="catalog")


def _print_reports(reports: list[Any], json_: bool) -> None:
    if json_:
        _print_json([r.as_dict() for r in reports])
    else:
        for r in reports:
            if r.error:
                continue
            out.print(
                f"{r.catalog}: {len(r.added)} added, {len(r.updated)} updated, {len(r.removed)} removed"
                + (f", {len(r.skipped)} skipped" if r.skipped else ""),
                highlight=False,
            )
            for name, why in sorted(r.skipped.items()):
                _warn(f"{r.catalog}: skipped {name}: {why}")
    failed = [r for r in reports if r.error]
    if failed:
        raise StorageError("; ".join(f"catalog {r.catalog}: {r.error}" for r in failed))


@catalog_app.command("add")
def catalog_add(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Its name in lakehouse: the first part of its tables' names.")],
    type_: Annotated[str, typer.Option("--type", "-t", help="glue | rest | sql | hive (pyiceberg's catalog types).")],
    prop: Annotated[
        list[str] | None,
        typer.Option(
            "--property",
            "-p",
            help="pyiceberg catalog property KEY=VALUE (repeatable), e.g. glue.region=eu-west-1, uri=http://..., "
            "credential=${POLARIS_CREDENTIAL}, s3.endpoint=...; ${VAR} is read from the environment on use, so "
            "secrets need not be stored.",
        ),
    ] = None,
    json_: JsonOpt = False,
) -> None:
    """Connect an external Iceberg catalog: lakehouse lists it first (nothing is stored when it cannot), then
    lists its tables as NAME.namespace.table. Jobs on them commit through the catalog, with its own concurrency
    check; only lakehouse's bookkeeping (jobs, policies, leases, audit, lineage) stays in lakehouse's database."""
    from lakehouse import external

    with _lh(ctx) as lh:
        report = external.add(lh, name, type_, _key_values(prop, "--property"))
    _print_reports([report], json_)


@catalog_app.command("list")
def catalog_list(ctx: typer.Context, json_: JsonOpt = False) -> None:
    """List connected catalogs, their type, properties (secrets hidden) and how many tables each has."""
    from lakehouse import external

    with _lh(ctx) as lh:
        entries = external.connected(lh)
        counts: dict[str, int] = {}
        for r in lh.list_tables():
            if r.name.external:
                counts[r.name.catalog] = counts.get(r.name.catalog, 0) + 1
    rows: list[dict[str, Any]] = [
        {
            "name": e.name,
            "type": e.type,
            "source": e.source,
            "properties": external.redacted(e.properties),
            "tables": counts.get(e.name, 0),
        }
        for e in entries.values()
    ]
    if json_:
        _print_json(rows)
        return
    t = RichTable("name", "type", "from", "tables", "properties")
    for row in rows:
        props = ", ".join(f"{k}={v}" for k, v in row["properties"].items())
        t.add_row(row["name"], row["type"], row["source"], str(row["tables"]), props)
    out.print(t if rows else "no external catalogs: `lakehouse catalog add NAME --type glue|rest|sql|hive ...`")


@catalog_app.command("sync")
def catalog_sync(
    ctx: typer.Context,
    names: Annotated[list[str] | None, typer.Argument(help="Catalogs to sync (default: all).")] = None,
    json_: JsonOpt = False,
) -> None:
    """Refresh which tables each catalog has (new ones listed, dropped ones forgotten with their policies).
    `table list` and every autopilot round do this too."""
    with _lh(ctx) as lh:
        reports = lh.sync_catalogs(names or None)
    _print_reports(reports, json_)


@catalog_app.command("remove")
def catalog_remove(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The connected catalog.")],
    json_: JsonOpt = False,
) -> None:
    """Disconnect a catalog: lakehouse forgets its tables (policies, tags); the catalog and its tables are not
    touched, and the job history and audit log keep what was done."""
    from lakehouse import external

    with _lh(ctx) as lh:
        forgotten = external.remove(lh, name)
    if json_:
        _print_json({"catalog": name, "forgotten": forgotten})
    else:
        out.print(f"disconnected {name}; forgot {len(forgotten)} table(s)", highlight=False)
