"""Governance: policies, PII scan and masking, erasure, the audit log, API keys."""

from __future__ import annotations

import contextlib
from typing import Annotated

import typer
from rich.table import Table as RichTable

from lakehouse.cli._common import (
    MAX_LIMIT,
    ApplyOpt,
    JsonOpt,
    NameArg,
    _human_bytes,
    _lh,
    _print_json,
    _warn,
    app,
    bold,
    err,
    out,
)
from lakehouse.errors import InvalidInputError
from lakehouse.names import TableName

policy_app = typer.Typer(help="Per-table maintenance policies (retention, orphans, expiry, tiering).")
app.add_typer(policy_app, name="policy", no_args_is_help=True)


@policy_app.command("show")
def policy_show(ctx: typer.Context, name: NameArg, json_: JsonOpt = False) -> None:
    """The effective policy (defaults < [policy] < [tables."ns.t"] in lakehouse.toml < `policy set`) and what
    `policy set` stored for this table."""
    with _lh(ctx) as lh:
        effective = lh.policy(name).model_dump()
        stored = lh.catalog.policy(TableName.parse(name))
    if json_:
        _print_json({"table": str(TableName.parse(name)), "effective": effective, "stored": stored})
        return
    for section, values in effective.items():
        out.print(bold(section))
        for key, value in values.items():
            mark = " (set)" if key in stored.get(section, {}) else ""
            out.print(f"  {section}.{key} = {value}{mark}", highlight=False)


@policy_app.command("set")
def policy_set(
    ctx: typer.Context,
    name: NameArg,
    values: Annotated[
        list[str], typer.Argument(help="KEY=VALUE pairs, e.g. tiering.warm_after=30d retention.retain=14d.")
    ],
    json_: JsonOpt = False,
) -> None:
    """Store policy values for a table in the catalog (validated; `policy show` lists the keys)."""
    from lakehouse.policy import parse_assignments

    with _lh(ctx) as lh:
        effective = lh.set_policy(name, parse_assignments(values))
    if json_:
        _print_json(effective.model_dump())
    else:
        out.print(f"policy of {TableName.parse(name)} updated")


@policy_app.command("unset")
def policy_unset(
    ctx: typer.Context,
    name: NameArg,
    keys: Annotated[list[str], typer.Argument(help="Dotted keys to remove, e.g. tiering.warm_after.")],
) -> None:
    """Remove stored policy values (the table falls back to lakehouse.toml and the defaults)."""
    from lakehouse.policy import unset

    with _lh(ctx) as lh:
        stored = lh.catalog.policy(TableName.parse(name))
        for key in keys:
            stored = unset(stored, key)
        lh.set_policy(name, stored, replace=True)
    out.print(f"policy of {TableName.parse(name)} updated")


pii_app = typer.Typer(help="Find PII in tables and mask it.", no_args_is_help=True)
app.add_typer(pii_app, name="pii")


@pii_app.command("scan")
def pii_scan(
    ctx: typer.Context,
    name: NameArg,
    sample: Annotated[
        int | None, typer.Option(help="Rows to sample (default: governance.pii_sample_rows).", min=100)
    ] = None,
    json_: JsonOpt = False,
) -> None:
    """Sample every string column and detect e-mails, phone numbers, card numbers (Luhn), IBANs (mod 97), US
    SSNs, IP addresses, and person names by column name. Findings are stored as column tags (counts and
    confidence, never values); `table show` lists them and masked reads hide those columns."""
    from lakehouse.governance.pii import scan_table

    with _lh(ctx) as lh:
        report = scan_table(lh, name, sample_rows=sample)
    if json_:
        _print_json(report)
        return
    out.print(
        f"{report['table']}: sampled {report['sampled_rows']:,} rows of {len(report['columns_scanned'])} text columns"
    )
    t = RichTable("column", "kind", "method", "confidence", "matching values")
    for f in report["findings"]:
        t.add_row(f["column"], f["kind"], f["method"], f"{f['confidence']:.2f}", f"{f['matches']}/{f['sampled']}")
    out.print(t if report["findings"] else "no PII found")


@pii_app.command("mask")
def pii_mask(
    ctx: typer.Context,
    name: NameArg,
    column: Annotated[
        list[str] | None, typer.Option("--column", help="Column to mask (repeatable, pairs with --policy).")
    ] = None,
    policy: Annotated[
        list[str] | None,
        typer.Option(
            "--policy", help="hash | redact | partial[:N] | null | generalize[:day|month|prefix] (repeatable)."
        ),
    ] = None,
    purge: Annotated[
        bool, typer.Option("--purge", help="Then remove every older version and file holding raw values.")
    ] = False,
    dry_run: ApplyOpt = True,
    json_: JsonOpt = False,
) -> None:
    """Mask columns in place (one atomic rewrite) and store the policies, so ingestion masks new rows too.
    Without --column the table's stored masking policies are applied. --purge leaves only the masked current
    version: run it while no other writer is active."""
    from lakehouse.governance.ops import mask_table

    columns, policies = column or [], policy or []
    if len(columns) != len(policies):
        raise InvalidInputError("give one --policy per --column")
    repeated = sorted({c for c in columns if columns.count(c) > 1})
    if repeated:
        raise InvalidInputError(
            f"--column {', '.join(repeated)} given more than once; each column takes one policy",
            hint="pair each --column with its own --policy, e.g. --column email --policy hash --column ip "
            "--policy generalize",
        )
    with _lh(ctx) as lh:
        with err.status(f"masking {name} ...") if not (dry_run or json_) else contextlib.nullcontext():
            report = mask_table(
                lh, name, policies=dict(zip(columns, policies, strict=True)), purge=purge, dry_run=dry_run
            )
    if json_:
        _print_json(report)
        _warn(report.get("warning"))
        return
    masks = ", ".join(f"{c}={p}" for c, p in report["masks"].items())
    out.print(
        f"{report['table']}: {masks}; {report['files']} files, {report['rows']:,} rows "
        f"({_human_bytes(report['bytes'])})"
    )
    if dry_run:
        out.print("dry run: nothing changed; run again with --apply")
        return
    out.print(f"rewrote {report['files_rewritten']} files; version {report['version']} (job {report['job_id']})")
    if report.get("purge_report"):
        p = report["purge_report"]
        out.print(
            f"purged: {p['versions_expired']} versions, {p['files_deleted']} files "
            f"({_human_bytes(p['bytes_deleted'])}), "
            f"{p['log_files_deleted']} log files"
        )
    _warn(report.get("warning"))


@app.command()
def erase(
    ctx: typer.Context,
    where: Annotated[str, typer.Option("--where", help='The data subject, e.g. "customer_id = 42".')],
    tables: Annotated[
        str | None, typer.Option(help="Tables a,b (default: every table that has the predicate's columns).")
    ] = None,
    purge: Annotated[bool, typer.Option("--purge/--no-purge", help="Also purge older versions (default).")] = True,
    dry_run: ApplyOpt = True,
    json_: JsonOpt = False,
) -> None:
    """Right to be forgotten: delete a data subject's rows across tables, purge the history that still holds
    them (time travel included), and record a receipt in the audit log (a keyed hash of the predicate, never its
    values; the tables' own logs record only that hash too). Quarantine tables keep raw payloads: list them in
    --tables too if they may hold the subject. A table whose delete committed but whose purge or check failed
    afterwards is reported on stderr with what finishes it (exit 0: the delete happened)."""
    from lakehouse.governance.ops import erase as run_erase

    names = [t.strip() for t in tables.split(",") if t.strip()] if tables is not None else None
    if names is not None and not names:  # `--tables ","` or `--tables ""` is no table, not every table
        raise InvalidInputError(
            "--tables names no table",
            hint="give ns.table[,ns.table], or leave --tables out for every table with the predicate's columns",
        )
    with _lh(ctx) as lh:
        with err.status("erasing ...") if not (dry_run or json_) else contextlib.nullcontext():
            receipt = run_erase(lh, where, tables=names, purge=purge, dry_run=dry_run)
    if json_:
        _print_json(receipt)
    else:
        for table, entry in receipt["tables"].items():
            line = f"{table}: {entry['rows_matching']:,} matching rows"
            if not dry_run:
                version = entry.get("version")
                line += f", {entry['rows_deleted']:,} deleted" + (
                    f" (version {version})" if version is not None else " (nothing to commit)"
                )
                if "rows_matching_after" in entry:
                    line += f", {entry['rows_matching_after']} left"
                if "purge" in entry:
                    line += f", history purged ({entry['purge']['files_deleted']} files)"
            out.print(line)
        if dry_run:
            out.print("dry run: nothing deleted; run again with --apply")
        else:
            out.print(
                f"receipt {receipt['receipt_id']} recorded in the audit log "
                f"(predicate {receipt['digest']} {receipt['predicate_digest'][:16]}...)"
            )
    for warning in receipt.get("warnings", []):
        _warn(warning)


@app.command()
def audit(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Argument(help="Only entries of this table.")] = None,
    action: Annotated[str | None, typer.Option(help="Only this action, e.g. vacuum, pii.mask, erase.")] = None,
    limit: Annotated[int, typer.Option(help="Newest N entries.", min=1, max=MAX_LIMIT)] = 50,
    json_: JsonOpt = False,
) -> None:
    """The append-only audit log: every governance and maintenance action, who ran it, when, on which table,
    and its counts (never row values)."""
    with _lh(ctx) as lh:
        records = lh.audit_log(name, action=action, limit=limit)
    if json_:
        _print_json([r.as_dict() for r in records])
        return
    t = RichTable("id", "time (UTC)", "actor", "action", "table", "outcome", "details")
    for r in records:
        counts = r.details.get("counts", r.details)
        t.add_row(
            str(r.id),
            r.at.strftime("%Y-%m-%d %H:%M:%S"),
            r.actor,
            r.action,
            r.table_name or "",
            r.outcome,
            ", ".join(f"{k}={v}" for k, v in counts.items() if not isinstance(v, dict | list))[:120],
        )
    out.print(t)


keys_app = typer.Typer(help="API keys for the REST API (roles: reader, engineer, admin).", no_args_is_help=True)
app.add_typer(keys_app, name="keys")


@keys_app.command("create")
def keys_create(
    ctx: typer.Context,
    name: Annotated[str, typer.Option(help="Who or what uses the key.")],
    role: Annotated[str, typer.Option(help="reader | engineer | admin.")] = "reader",
    json_: JsonOpt = False,
) -> None:
    """Create an API key. The key is printed once; the catalog keeps only a SHA-256 of its secret."""
    from lakehouse.governance.keys import create_key

    with _lh(ctx) as lh:
        key_id, key = create_key(lh, name=name, role=role)
    if json_:
        _print_json({"id": key_id, "key": key, "role": role, "name": name})
    else:
        out.print(f"key {key_id} ({role}) for {name}:\n{key}\nstore it now: it cannot be shown again", highlight=False)


@keys_app.command("list")
def keys_list(ctx: typer.Context, json_: JsonOpt = False) -> None:
    """List API keys (id, name, role, created, revoked); never their secrets."""
    with _lh(ctx) as lh:
        keys = lh.catalog.keys()
    if json_:
        _print_json(keys)
        return
    t = RichTable("id", "name", "role", "created", "revoked")
    for k in keys:
        t.add_row(k["id"], k["name"], k["role"], str(k["created_at"])[:19], str(k["revoked_at"] or "")[:19])
    out.print(t)


@keys_app.command("revoke")
def keys_revoke(ctx: typer.Context, key_id: Annotated[str, typer.Argument(help="The key's id.")]) -> None:
    """Revoke an API key (recorded in the audit log)."""
    with _lh(ctx) as lh:
        if not lh.catalog.revoke_key(key_id):
            raise InvalidInputError(f"no active key {key_id}")
        lh.catalog.audit("key.revoke", table=None, actor=lh.actor, details={"key_id": key_id})
    out.print(f"key {key_id} revoked")
