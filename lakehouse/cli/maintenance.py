"""Maintenance jobs: optimize (compaction, Z-order), dedup, vacuum, orphans, expire-data, tier, cost."""

from __future__ import annotations

import contextlib
from typing import Annotated

import typer
from rich.table import Table as RichTable

from lakehouse.cli._common import (
    ApplyOpt,
    EngineOpt,
    JsonOpt,
    NameArg,
    SparkMasterOpt,
    _engine,
    _file_lines,
    _human_bytes,
    _lh,
    _print_json,
    _progress,
    _ranges,
    app,
    column_list,
    err,
    out,
)
from lakehouse.errors import InvalidInputError, LakehouseError
from lakehouse.units import parse_duration, parse_size


@app.command()
def optimize(
    ctx: typer.Context,
    name: NameArg,
    partition: Annotated[
        str | None, typer.Option(help="Only partitions matching this SQL predicate, e.g. \"ts_day = '2026-11-01'\".")
    ] = None,
    target_size: Annotated[str, typer.Option(help="Target file size, e.g. 128MB.")] = "128MB",
    zorder: Annotated[
        str | None, typer.Option(help="Cluster by these columns (at most 4): a,b. Rows are ordered along --curve.")
    ] = None,
    curve: Annotated[
        str,
        typer.Option(help="Clustering curve over the columns' quantiles: hilbert (tighter) or morton (Z-order)."),
    ] = "hilbert",
    small_fraction: Annotated[
        float, typer.Option(help="A file is small below this fraction of the target size.")
    ] = 0.75,
    min_files: Annotated[int, typer.Option(help="Rewrite a partition only with at least this many small files.")] = 2,
    max_bytes: Annotated[str, typer.Option(help="Rewrite at most this many input bytes per run.")] = "50GB",
    memory: Annotated[str, typer.Option(help="Memory budget of the rewrite (spills beyond it).")] = "1GB",
    commit_timeout: Annotated[
        str | None,
        typer.Option(
            help="Longest the job's commits keep retrying against concurrent writers, e.g. 30s (default: the "
            "commit_timeout setting, 2m); then the partitions left are aborted and their files deleted."
        ),
    ] = None,
    commit_interval: Annotated[
        str,
        typer.Option(
            help="Partitions rewritten within this long share one commit, e.g. 30s (0s: each commits on its own)."
        ),
    ] = "30s",
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only print the plan.")] = False,
    engine: EngineOpt = "local",
    spark_master: SparkMasterOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Compact small files (bin-packing to the target size) and optionally Z-order, partition by partition.

    The plan shows, per partition, the input files and bytes, the expected output files and why it was or
    was not picked. Rows are never added or lost: rows in equal rows out, checked after every commit.
    Each partition's rewrite is verified value for value before anything commits; the partitions rewritten within
    --commit-interval share one commit (Iceberg: a replace snapshot; Delta: dataChange=false), and a conflict in
    a shared commit commits them one by one, so it aborts only the partition it concerns. A commit that loses
    its race to a writer is rebased onto its commits, never rewritten, for up to --commit-timeout (local engine).
    With --engine spark the same plan runs on Spark (Iceberg: RewriteDataFiles bin-pack / Z-order over the
    picked partitions, then rewrite_manifests; Delta: delta-spark OPTIMIZE [ZORDER BY]).
    """
    from lakehouse.maintenance.compaction import optimize as run_optimize
    from lakehouse.maintenance.planner import CompactionOptions

    options = CompactionOptions(
        target_file_size=parse_size(target_size),
        small_file_fraction=small_fraction,
        min_input_files=min_files,
        max_bytes_per_job=parse_size(max_bytes),
        memory_budget=parse_size(memory),
        zorder=tuple(column_list(zorder, "--zorder")) if zorder is not None else (),
        curve=curve,
        commit_interval=parse_duration(commit_interval).total_seconds(),
    )
    with _lh(ctx) as lh:
        which = _engine(lh, engine, spark_master)
        if commit_timeout is not None:
            if parse_duration(commit_timeout).total_seconds() <= 0:
                raise InvalidInputError("--commit-timeout must be longer than 0 s")
            lh.settings.commit_timeout = commit_timeout
        label = f"optimizing {name}" + (" on Spark" if which == "spark" else "") + " ..."
        with err.status(label) if not (dry_run or json_) else contextlib.nullcontext():
            result = run_optimize(lh, name, options, partition_filter=partition, dry_run=dry_run, engine=which)
    if json_:
        _print_json(result.as_dict())
        return
    plan = result.plan
    t = RichTable("partition", "files", "bytes", "input files", "input bytes", "expected out", "picked", "why")
    for p in plan.partitions:
        d = p.as_dict()
        t.add_row(
            ", ".join(f"{k}={v}" for k, v in d["partition"].items()) or "(unpartitioned)",
            str(d["files"]),
            _human_bytes(d["bytes"]),
            str(d["input_files"]),
            _human_bytes(d["input_bytes"]),
            str(d["expected_output_files"]),
            "yes" if d["picked"] else "no",
            d["reason"],
        )
    out.print(t)
    if dry_run:
        out.print(f"dry run: {len(plan.picked)} partition(s) would be rewritten")
        return
    if not result.partitions:
        out.print("nothing to do")
        return
    d = result.as_dict()
    out.print(
        f"{d['files_before']} -> {d['files_after']} files, {_human_bytes(d['bytes_before'])} -> "
        f"{_human_bytes(d['bytes_after'])}, rows in {d['rows_in']:,} = out {d['rows_out']:,}, "
        f"{d['seconds']:.1f} s, version {d['version']} (job {d['job_id']}"
        + (f", Spark {d['engine']['spark_master']}" if d["engine"]["engine"] == "spark" else "")
        + ")"
    )
    for pr in result.partitions:
        if pr.status != "committed":
            where = ", ".join(f"{k}={v}" for k, v in pr.as_dict()["partition"].items()) or "(unpartitioned)"
            err.print(f"{where}: {pr.status}: {pr.error}", markup=False, highlight=False)


@app.command()
def vacuum(
    ctx: typer.Context,
    name: NameArg,
    retain: Annotated[
        str | None, typer.Option(help="Keep versions younger than this, e.g. 7d, 36h (default: the policy, 7d).")
    ] = None,
    keep: Annotated[
        list[int] | None, typer.Option("--keep", help="Also keep this version readable (repeatable).")
    ] = None,
    dry_run: ApplyOpt = True,
    engine: EngineOpt = "local",
    spark_master: SparkMasterOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Remove old versions and the files only they reference.

    Kept readable: every version committed inside the retention window, the version current at the window's
    start (so every point in time inside the window can be queried), the current version, and --keep versions.
    Iceberg expires the other snapshots from its metadata; Delta keeps its commit log, and time travel to an
    expired version fails with a message naming the retention. Files any kept version needs are never deleted.
    With --engine spark, Iceberg expires the planned snapshots with Spark's expire_snapshots and Delta runs
    delta-spark's VACUUM.
    """
    from lakehouse.maintenance.retention import vacuum as run_vacuum

    with _lh(ctx) as lh:
        which = _engine(lh, engine, spark_master)
        window = lh.policy(name).retention.retain if retain is None else retain
        with _progress("deleting files", not (dry_run or json_) and which == "local") as progress:
            result = run_vacuum(
                lh, name, retain=window, keep=keep or [], dry_run=dry_run, progress=progress, engine=which
            )
    d = result.as_dict()
    if json_:
        _print_json(d)
        return
    out.print(
        f"{d['table']} ({d['format']}): retain {d['retain']} (versions since {d['cutoff']}), current version "
        f"{d['current_version']}"
    )
    out.print(f"versions kept readable: {_ranges(d['retained_versions']) or '(none)'}")
    out.print(f"versions that stop being readable: {_ranges(d['expired_versions']) or '(none)'}")
    out.print(f"files to delete: {d['files_to_delete']} ({_human_bytes(d['bytes_to_delete'])})")
    _file_lines(d["files"])
    if dry_run:
        out.print("dry run: nothing deleted; run again with --apply to delete")
    else:
        out.print(
            f"deleted {d['files_deleted']} files ({_human_bytes(d['bytes_deleted'])}) and "
            f"{d['metadata_files_deleted']} metadata files ({_human_bytes(d['metadata_bytes_deleted'])}), expired "
            f"{len(d['expired_versions'])} versions (job {d['job_id']})"
        )


@app.command()
def orphans(
    ctx: typer.Context,
    name: NameArg,
    older_than: Annotated[
        str | None,
        typer.Option(help="Only files older than this (default: the policy, 3d); younger ones may be in flight."),
    ] = None,
    dry_run: ApplyOpt = True,
    engine: EngineOpt = "local",
    spark_master: SparkMasterOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Delete files under the table location that no recorded version references (leftovers of failed writes
    and aborted jobs). Files younger than the age, hidden files (_*, .*) and the format's log are never touched.
    With --engine spark, Iceberg's DeleteOrphanFiles deletes the planned files after checking their
    reachability again; Delta's orphan removal has nothing to compute and runs locally."""
    from lakehouse.maintenance.retention import remove_orphans

    with _lh(ctx) as lh:
        which = _engine(lh, engine, spark_master)
        age = lh.policy(name).retention.orphan_age if older_than is None else older_than
        with _progress("deleting orphans", not (dry_run or json_) and which == "local") as progress:
            result = remove_orphans(lh, name, older_than=age, dry_run=dry_run, progress=progress, engine=which)
    d = result.as_dict()
    if json_:
        _print_json(d)
        return
    out.print(
        f"{d['table']}: {d['referenced_files']} files referenced; {d['orphans']} orphans older than "
        f"{d['older_than']} ({_human_bytes(d['orphan_bytes'])}); {d['young_unreferenced']} younger unreferenced "
        "files kept"
    )
    _file_lines(d["files"])
    if dry_run:
        out.print("dry run: nothing deleted; run again with --apply to delete")
    else:
        out.print(f"deleted {d['files_deleted']} files ({_human_bytes(d['bytes_deleted'])}) (job {d['job_id']})")


@app.command("expire-data")
def expire_data_cmd(
    ctx: typer.Context,
    name: NameArg,
    older_than: Annotated[
        str | None, typer.Option(help="Delete rows older than this, e.g. 365d (default: the policy's expire_after).")
    ] = None,
    column: Annotated[
        str | None, typer.Option(help="Time column (default: the policy's, else the time partition's source).")
    ] = None,
    dry_run: ApplyOpt = True,
    json_: JsonOpt = False,
) -> None:
    """Data retention: delete rows whose time column is older than an age. Partitions that are entirely older
    are dropped from the metadata without rewriting a file; the boundary partition is rewritten. Rows with a
    NULL time are kept. Their files stay for time travel until `lakehouse vacuum` removes them."""
    from lakehouse.maintenance.retention import expire_data

    with _lh(ctx) as lh:
        policy = lh.policy(name).retention
        age = policy.expire_after if older_than is None else older_than
        if age is None:
            raise InvalidInputError(
                f"no age given for {name}",
                hint=f"pass --older-than 365d or set it: lakehouse policy set {name} retention.expire_after=365d",
            )
        with err.status(f"expiring rows of {name} ...") if not (dry_run or json_) else contextlib.nullcontext():
            col = policy.expire_column if column is None else column
            result = expire_data(lh, name, older_than=age, column=col, dry_run=dry_run)
    d = result.as_dict()
    if json_:
        _print_json(d)
        return
    out.print(
        f"{d['table']}: rows with {d['column']} before {d['cutoff']} ({d['older_than']}): {d['rows_to_delete']:,} "
        f"of {d['rows_before']:,}; {len(d['partitions_whole'])} partitions entirely older (metadata-only), "
        f"{len(d['partitions_partial'])} partly"
    )
    if dry_run:
        out.print("dry run: nothing deleted; run again with --apply to delete")
    else:
        out.print(
            f"deleted {d['rows_deleted']:,} rows: {d['files_removed']} files removed, {d['files_rewritten']} "
            f"rewritten; {d['rows_after']:,} rows left (job {d['job_id']})"
        )


@app.command("tier")
def tier_cmd(
    ctx: typer.Context,
    name: NameArg,
    dry_run: ApplyOpt = True,
    json_: JsonOpt = False,
) -> None:
    """Move each partition to the tier its age calls for (policy: tiering.warm_after, cold_after).

    On S3 a move sets the files' storage class in place (STANDARD -> STANDARD_IA -> GLACIER_IR by default); tiers
    listed in tiering.recompress are first rewritten with a heavier zstd level and committed like a compaction.
    On local storage (or with tiering.method=prefix) files are rewritten under <table>/tier-<tier>/ and swapped
    in one commit per partition. Queries keep working across tiers. See `lakehouse policy show`."""
    from lakehouse.maintenance.tiering import tier as run_tier

    with _lh(ctx) as lh:
        with _progress("moving files", not (dry_run or json_)) as progress:
            result = run_tier(lh, name, dry_run=dry_run, progress=progress)
    d = result.as_dict()
    if json_:
        _print_json(d)
        return
    out.print(f"{d['table']}: method {d['method']}, {d['undated_files']} files without a time value stay put")
    t = RichTable("partition", "age (days)", "tier now", "target", "files", "bytes", "to move", "action")
    for g in d["groups"]:
        t.add_row(
            ", ".join(f"{k}={v}" for k, v in g["partition"].items()) or "(unpartitioned)",
            f"{g['age_days']:.1f}" if g["age_days"] is not None else "",
            ", ".join(g["current"]),
            g["target"],
            str(g["files"]),
            _human_bytes(g["bytes"]),
            str(g["files_to_move"]),
            g["action"],
        )
    out.print(t)
    if dry_run:
        out.print(
            f"dry run: {d['files_to_move']} files ({_human_bytes(d['bytes_to_move'])}) would move; "
            "run again with --apply"
        )
    else:
        out.print(
            f"moved {d['files_moved']} files ({_human_bytes(d['bytes_moved'])}); rewrote {d['files_rewritten']} "
            f"({_human_bytes(d['bytes_before_rewrite'])} -> {_human_bytes(d['bytes_after_rewrite'])}); "
            f"{d['seconds']:.1f} s (job {d['job_id']})"
        )
        for a in d["aborted"]:
            out.print(f"skipped {a['partition']}: {a['error']}", markup=False)


@app.command()
def cost(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Argument(help="Table name (or --all).")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Every table in the catalog, with totals.")] = False,
    json_: JsonOpt = False,
) -> None:
    """Storage per tier (every object under the table location: data, old versions, metadata), its monthly cost
    at the configured prices ([cost.prices], default AWS S3 list prices, each object billed at least its class's
    minimum size; [cost] flat_price for MinIO / on-premises), the savings against keeping it all hot, and how much
    smaller the Parquet data is than the same rows as raw JSON.

    Then the requests and retrievals of the last 30 days' jobs (estimated from the job records) and the next 12
    months projected under the table's policies (tiering ages, data expiry, the recent ingest rate) against no
    maintenance at all (everything STANDARD, nothing expired, the size data was written with).

    Then the storage reconciliation: the bytes on storage split into the current version's data, data only
    older readable versions need, data of expired versions still there (vacuum removes it), the format's
    metadata, and the unaccounted rest (orphans: removable when older than the orphan age). The parts add up
    to the bytes on storage."""
    from lakehouse.maintenance.reconcile import reconcile
    from lakehouse.maintenance.tiering import table_cost
    from lakehouse.storage import shared_listings

    if (name is None) == (not all_):
        raise InvalidInputError("give a table name or --all")
    with _lh(ctx) as lh:
        names = [str(r.name) for r in lh.list_tables()] if all_ else [str(name)]
        reports = []
        failed: dict[str, str] = {}
        for n in names:
            try:
                with shared_listings():  # one listing of the table for the reconciliation and the bill
                    storage = reconcile(lh, n).as_dict()  # first: it lists while it reads the versions' metadata
                    reports.append({**table_cost(lh, n).as_dict(), "storage": storage})
            except LakehouseError as e:
                if not all_:
                    raise
                failed[n] = e.message  # one table that cannot be measured: the others still are, and it is named
    totals = {
        k: round(sum(r[k] for r in reports), 6)
        for k in ("objects", "bytes", "live_data_bytes", "monthly_cost", "all_hot_monthly_cost", "savings")
    }
    totals["request_cost_30d"] = round(sum(r["activity_30d"].get("request_cost", 0) for r in reports), 6)
    totals["retrieval_cost_30d"] = round(sum(r["activity_30d"].get("retrieval_cost", 0) for r in reports), 6)
    totals["projection_12m"] = round(sum(r["projection_12m"].get("total", 0) for r in reports), 6)
    totals["projection_12m_without_maintenance"] = round(
        sum(r["projection_12m"].get("total_without_maintenance", 0) for r in reports), 6
    )
    for kind in ("current", "retained", "expired", "metadata", "unaccounted"):
        totals[f"{kind}_bytes"] = sum(r["storage"][kind]["bytes"] for r in reports)
    totals["reclaimable_bytes"] = sum(r["storage"]["reclaimable_bytes"] for r in reports)
    if json_:
        _print_json({"tables": reports, "totals": totals, "errors": failed} if all_ else reports[0])
        if failed:
            raise typer.Exit(1)
        return
    t = RichTable("table", "tier", "objects", "bytes", "storage classes", "per month")
    for r in reports:
        for tier_name, u in r["tiers"].items():
            t.add_row(
                r["table"],
                tier_name,
                str(u["objects"]),
                _human_bytes(u["bytes"]),
                ", ".join(u["storage_classes"]),
                f"{u['monthly_cost']:.4f} {r['currency']}",
            )
    out.print(t)
    for r in reports:
        x = r["json_to_parquet_ratio"]
        if not x:
            ratio = "n/a"
        elif x >= 1:
            ratio = f"{x:.2f}x smaller than raw JSON"
        else:  # tiny files: Parquet's footers outweigh the data
            ratio = f"{1 / x:.2f}x larger than raw JSON"
        out.print(
            f"{r['table']}: {_human_bytes(r['bytes'])} in {r['objects']} objects ({_human_bytes(r['live_data_bytes'])} "
            f"live data); {r['monthly_cost']:.4f} {r['currency']}/month vs {r['all_hot_monthly_cost']:.4f} all hot "
            f"(saves {r['savings_pct']}%); Parquet {ratio}"
        )
        a = r["activity_30d"]
        if a.get("jobs"):
            out.print(
                f"  last {a['days']} days: {a['jobs']} job(s) read {a['files_read']} and wrote {a['files_written']} "
                f"file(s): ~{a['gets']:,} GET and ~{a['puts']:,} PUT requests, {a['request_cost']:.4f} "
                f"{r['currency']}, retrievals {a['retrieval_cost']:.4f} {r['currency']} (estimated from job records)"
            )
        p = r["projection_12m"]
        if p.get("error"):
            out.print(f"  no 12-month projection: {p['error']}")
        elif p:
            out.print(
                f"  next 12 months under its policies: {p['total']:.4f} {r['currency']} vs "
                f"{p['total_without_maintenance']:.4f} without maintenance (saves {p['saving_pct']}%; new data "
                f"{_human_bytes(p['daily_bytes'])}/day)"
            )
    rec = RichTable("table", "on storage", "current", "retained", "expired", "metadata", "unaccounted", "reclaimable")
    for r in reports:
        st = r["storage"]
        rec.add_row(
            r["table"],
            *(_human_bytes(st[k]["bytes"]) for k in ("on_storage", "current", "retained", "expired", "metadata")),
            _human_bytes(st["unaccounted"]["bytes"])
            + (
                f" ({_human_bytes(st['unaccounted_detail']['young']['bytes'])} young)"
                if st["unaccounted_detail"]["young"]["files"]
                else ""
            ),
            _human_bytes(st["reclaimable_bytes"]),
        )
    out.print(rec)
    if all_:
        out.print(
            f"total: {_human_bytes(totals['bytes'])}, {totals['monthly_cost']:.4f}/month, saves "
            f"{totals['savings']:.4f}/month against all hot"
            + (f" ({len(failed)} table(s) not measured)" if failed else "")
        )
    for n, why in failed.items():
        err.print(f"{n}: {why}", markup=False)
    if failed:
        raise typer.Exit(1)


@app.command("dedup")
def dedup_cmd(
    ctx: typer.Context,
    name: NameArg,
    key: Annotated[
        str | None, typer.Option("--key", help="Key columns a,b (default: the policy's dedup.keys, else table keys).")
    ] = None,
    order: Annotated[
        str | None, typer.Option(help="Keep the row with the latest value of this column (default: policy).")
    ] = None,
    memory: Annotated[str, typer.Option(help="Memory budget of DuckDB (spills beyond it).")] = "1GB",
    dry_run: ApplyOpt = True,
    json_: JsonOpt = False,
) -> None:
    """Keep one row per key: the latest by --order, or any one of exact duplicates. Only files holding a
    duplicated key are rewritten, all in one commit; counts in, out and removed are checked before it."""
    from lakehouse.maintenance.dedup import dedup

    given = column_list(key, "--key") if key is not None else None
    with _lh(ctx) as lh:
        policy = lh.policy(name).dedup
        keys = given if given is not None else (policy.keys or list(lh.table(name).definition.keys))
        with err.status(f"deduplicating {name} ...") if not (dry_run or json_) else contextlib.nullcontext():
            by = policy.order if order is None else order
            result = dedup(lh, name, keys=keys, order=by, dry_run=dry_run, memory_budget=parse_size(memory))
    d = result.as_dict()
    if json_:
        _print_json(d)
        return
    out.print(
        f"{d['table']}: {d['duplicate_rows']:,} duplicate rows of {d['duplicated_keys']:,} keys "
        f"among {d['rows']:,} rows "
        f"(keys {', '.join(d['keys'])}; keep {'latest ' + d['order'] if d['order'] else 'one'}); "
        f"{d['files_to_rewrite']} files to rewrite"
    )
    t = RichTable("partition", "files", "rows", "duplicates", "keys")
    for p in d["partitions"]:
        t.add_row(
            ", ".join(f"{k}={v}" for k, v in p["partition"].items()) or "(unpartitioned)",
            str(p["files"]),
            f"{p['rows']:,}",
            f"{p['duplicates']:,}",
            f"{p['keys']:,}",
        )
    if d["partitions"]:
        out.print(t)
    if dry_run:
        out.print("dry run: nothing changed; run again with --apply")
    elif d["status"] == "committed":
        out.print(
            f"rows in {d['rows_in']:,} - removed {d['rows_removed']:,} = out {d['rows_out']:,}; version {d['version']} "
            f"(job {d['job_id']})"
        )
    else:
        out.print(f"nothing to do (job {d['job_id']})")
