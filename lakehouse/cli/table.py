"""``lakehouse table``: create, list, show, history, files, register, restore, drop."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table as RichTable

from lakehouse.cli._common import (
    MAX_LIMIT,
    JsonOpt,
    NameArg,
    _human_bytes,
    _key_values,
    _lh,
    _print_json,
    _warn,
    app,
    bold,
    column_list,
    out,
)
from lakehouse.errors import InvalidInputError

table_app = typer.Typer(help="Create, inspect, register and restore tables.", no_args_is_help=True)
app.add_typer(table_app, name="table")


@table_app.command("create")
def table_create(
    ctx: typer.Context,
    name: NameArg,
    schema: Annotated[
        str,
        typer.Option(
            "--schema",
            "-s",
            help='Columns as "name:type[ not null], ...", e.g. "id:int64 not null, ts:timestamp".',
        ),
    ],
    format: Annotated[str | None, typer.Option("--format", "-f", help="delta or iceberg (default: settings).")] = None,
    partition_by: Annotated[
        str | None,
        typer.Option("--partition-by", "-p", help='Identity columns and transforms: "day(ts), country".'),
    ] = None,
    keys: Annotated[str | None, typer.Option("--keys", "-k", help="Key columns, comma separated.")] = None,
    prop: Annotated[list[str] | None, typer.Option("--property", help="Table property KEY=VALUE (repeatable).")] = None,
    location: Annotated[str | None, typer.Option(help="Where to put it (default: <warehouse>/<ns>/<table>).")] = None,
    json_: JsonOpt = False,
) -> None:
    """Create a partitioned Delta or Iceberg table and register it in the catalog."""
    from lakehouse.schema import parse_partitioning, parse_schema

    properties = _key_values(prop, "--property")
    with _lh(ctx) as lh:
        table = lh.create_table(
            name,
            schema=parse_schema(schema),
            format=format,
            partitioning=parse_partitioning(partition_by),
            keys=column_list(keys, "--keys") if keys is not None else [],
            properties=properties,
            location=location,
        )
        record = lh.table_record(table.name)
    if json_:
        _print_json(record.as_dict())
    else:
        out.print(f"created {record.format} table {record.name} at {record.location}")


@table_app.command("list")
def table_list(
    ctx: typer.Context,
    namespace: Annotated[str | None, typer.Option(help="Only this namespace.")] = None,
    format: Annotated[str | None, typer.Option("--format", help="Only delta or iceberg.")] = None,
    sync: Annotated[
        bool, typer.Option("--sync/--no-sync", help="Refresh the tables of connected external catalogs first.")
    ] = True,
    json_: JsonOpt = False,
) -> None:
    """List the catalog's tables, with those of connected external catalogs as CATALOG.namespace.table."""
    if format is not None and format not in ("delta", "iceberg"):
        from lakehouse.errors import InvalidInputError

        raise InvalidInputError(f"--format {format!r}: tables are delta or iceberg")
    with _lh(ctx) as lh:
        if sync:
            for report in lh.sync_catalogs():
                if report.error:  # the catalog's tables are listed as last seen
                    _warn(f"catalog {report.catalog} could not be listed: {report.error}")
        records = lh.list_tables(namespace=namespace, format=format)
    if json_:
        _print_json([r.as_dict() for r in records])
        return
    broken = any(r.error for r in records)
    t = RichTable("name", "format", "partitioning", "keys", "location", "updated", *(["error"] if broken else []))
    for r in records:
        t.add_row(
            escape(str(r.name)),
            r.format,
            escape(", ".join(str(p) for p in r.definition.partitioning)),
            escape(", ".join(r.definition.keys)),
            escape(r.location),
            r.updated_at.strftime("%Y-%m-%d %H:%M:%S"),
            *([escape(f"cannot read its catalog entry: {r.error}") if r.error else ""] if broken else []),
        )
    out.print(t if records else "no tables yet: `lakehouse table create` or `lakehouse demo`")


@table_app.command("show")
def table_show(
    ctx: typer.Context,
    name: NameArg,
    predicate: Annotated[
        str | None,
        typer.Option(
            help="Report the files and row groups min/max statistics let a reader skip for this SQL predicate, "
            'e.g. "user_id BETWEEN 10 AND 20".'
        ),
    ] = None,
    json_: JsonOpt = False,
) -> None:
    """Show a table's schema, partitioning, keys, properties, size, current version and file health
    (size histogram, small-file ratio, files per partition, data skipping for --predicate)."""
    from lakehouse.presentation import table_summary

    with _lh(ctx) as lh:
        info = table_summary(lh, name, predicate)
    if json_:
        _print_json(info)
        return
    out.print(bold(info["name"], f" ({info['format']}) at {info['location']}"))
    out.print(
        f"version {info['current_version']} of {info['versions']} retained; {info['rows']:,} rows in "
        f"{info['files']} files ({_human_bytes(info['bytes'])}) over {info['partitions']} partitions"
    )
    out.print(
        f"partitioning: {', '.join(info['partitioning']) or '(none)'}; keys: {', '.join(info['keys']) or '(none)'}",
        markup=False,
    )
    t = RichTable("column", "type", "nullable")
    for c in info["schema"]:  # names and types are data, not markup (`a [b]`, `list<string>`)
        t.add_row(escape(c["name"]), escape(c["type"]), "yes" if c["nullable"] else "no")
    out.print(t)
    if info["properties"]:
        out.print("properties: " + ", ".join(f"{k}={v}" for k, v in sorted(info["properties"].items())))
    h = info["health"]
    out.print(
        f"file health: {h['small_files']} of {h['files']} files are small "
        f"(< {_human_bytes(h['small_file_threshold'])}, ratio {h['small_file_ratio']:.0%}); files per partition "
        "min/avg/max "
        f"{h['files_per_partition']['min']}/{h['files_per_partition']['avg']}/{h['files_per_partition']['max']}; "
        "sizes " + ", ".join(f"{k}: {v}" for k, v in h["size_histogram"].items())
    )
    if info["pii"]:
        out.print(
            "PII (last scan): "
            + "; ".join(
                f"{t['column']}: {t['kind']} ({t['method']}, confidence {t['confidence']:.2f}, "
                f"{t['matches']}/{t['sampled']} values)"
                for t in info["pii"]
            ),
            highlight=False,
        )
    if info["masking"]:
        out.print("masking: " + ", ".join(f"{c}={p}" for c, p in info["masking"].items()), highlight=False)
    if "data_skipping" in h:
        d = h["data_skipping"]
        out.print(
            f"data skipping for {d['predicate']!r}: {d['files_prunable']} of {d['files']} files and "
            f"{d['row_groups_prunable']} of {d['row_groups']} row groups can be skipped "
            f"({d['share_row_groups_prunable']:.0%}); a reader decodes {d['rows_read']:,} of {d['rows']:,} rows"
        )


@table_app.command("history")
def table_history(
    ctx: typer.Context,
    name: NameArg,
    limit: Annotated[int, typer.Option(help="Newest N versions.", min=1, max=MAX_LIMIT)] = 50,
    json_: JsonOpt = False,
) -> None:
    """List a table's versions (Delta log versions, Iceberg snapshots) with time and operation."""
    from lakehouse.presentation import version_history

    with _lh(ctx) as lh:
        table = lh.table(name)
        rows = version_history(table)[-limit:]
    if json_:
        _print_json(rows)
        return
    t = RichTable("version", "snapshot id", "time (UTC)", "operation", "current", "rows added", "readable")
    for r in rows:
        summary = r["summary"]
        added = summary.get("num_added_rows") or summary.get("added-records") or ""
        t.add_row(
            str(r["version"]),
            str(r["snapshot_id"] or ""),
            (r["timestamp"] or "").replace("T", " ")[:23].split("+")[0],
            r["operation"] or "",
            "*" if r["is_current"] else "",
            str(added),
            f"no: expired by vacuum (--retain {table.expired.retention})" if r["expired"] and table.expired else "yes",
        )
    out.print(t)


@table_app.command("files")
def table_files(
    ctx: typer.Context,
    name: NameArg,
    as_of: Annotated[str | None, typer.Option("--as-of", help="Version number or ISO timestamp.")] = None,
    json_: JsonOpt = False,
) -> None:
    """List the live data files of a version with size, rows and partition values."""
    from lakehouse.tables.base import parse_as_of

    when = parse_as_of(as_of) if as_of else None
    with _lh(ctx) as lh:
        files = lh.table(name).files(as_of=when)
    if json_:
        _print_json([f.as_dict() for f in files])
        return
    t = RichTable("path", "partition", "rows", "size")
    for f in files:
        part = ", ".join(f"{k}={v}" for k, v in f.as_dict()["partition"].items())
        t.add_row(f.path, part, f"{f.row_count:,}", _human_bytes(f.size_bytes))
    out.print(t)
    total_rows, total_bytes = sum(f.row_count for f in files), sum(f.size_bytes for f in files)
    out.print(f"{len(files)} files, {total_rows:,} rows, {_human_bytes(total_bytes)}")


@table_app.command("register")
def table_register(
    ctx: typer.Context,
    name: NameArg,
    location: Annotated[str, typer.Argument(help="Where the existing table lives (directory or s3://...).")],
    format: Annotated[str | None, typer.Option("--format", help="delta or iceberg (default: detected).")] = None,
    json_: JsonOpt = False,
) -> None:
    """Register an existing Delta or Iceberg table by its location (a Delta table's log is its catalog: it is
    maintained in place). An Iceberg table a connected catalog owns is refused: use its CATALOG.namespace.table
    name; one whose owner is unknown is registered with a warning that commits land in lakehouse's catalog
    only."""
    with _lh(ctx) as lh:
        table = lh.register_table(name, location=location, format=format, warn=_warn)
        record = lh.table_record(table.name)
        for limitation in table.limitations():
            _warn(limitation)
    if json_:
        _print_json(record.as_dict())
    else:
        out.print(f"registered {record.format} table {record.name} at {record.location}")


@table_app.command("restore")
def table_restore(
    ctx: typer.Context,
    name: NameArg,
    to: Annotated[str, typer.Argument(help="Version number (or Iceberg snapshot id) or ISO timestamp.")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only show what the table would look like.")] = False,
    json_: JsonOpt = False,
) -> None:
    """Make a table's current state equal to an earlier version (Delta commits a new version,
    Iceberg moves its current-snapshot pointer)."""
    from lakehouse.tables.base import parse_as_of

    target = parse_as_of(to)
    with _lh(ctx) as lh:
        table = lh.table(name)
        snap = table.snapshot(target)
        if dry_run:
            if not snap.is_current:
                table.check_restorable(snap)
            now_rows, then_rows = table.row_count(), table.row_count(as_of=snap.version)
            plan = {
                "table": name,
                "target_version": snap.version,
                "rows_now": now_rows,
                "rows_after": then_rows,
            }
            if json_:
                _print_json(plan)
            else:
                out.print(f"would restore {name} to version {snap.version}: {now_rows:,} rows now, {then_rows:,} after")
            return
        result = lh.restore(name, target)
    if json_:
        _print_json(result.as_dict())
    else:
        out.print(f"restored {name} to version {snap.version}; current version is now {result.version}")


@table_app.command("drop")
def table_drop(
    ctx: typer.Context,
    name: NameArg,
    purge: Annotated[bool, typer.Option(help="Also delete every file of the table.")] = False,
    yes: Annotated[bool, typer.Option("--yes", help="Confirm a purge.")] = False,
) -> None:
    """Unregister a table; with --purge --yes also delete its files."""
    if purge and not yes:
        raise InvalidInputError("--purge deletes every file of the table; add --yes to confirm")
    with _lh(ctx) as lh:
        lh.drop_table(name, purge=purge)
    out.print(f"dropped {name}" + (" and deleted its files" if purge else " (files kept)"))
