"""Running a warehouse: the job history, health, maintain (every table by its policy) and the autopilot."""

from __future__ import annotations

import contextlib
import json
import time
from typing import Annotated, Any

import typer
from rich.table import Table as RichTable

from lakehouse.cli._common import (
    MAX_LIMIT,
    ApplyOpt,
    EngineOpt,
    JsonOpt,
    SparkMasterOpt,
    _engine,
    _fail_if_any,
    _lh,
    _print_json,
    app,
    bold,
    err,
    out,
)
from lakehouse.errors import InvalidInputError, LakehouseError


@app.command()
def jobs(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Argument(help="Only jobs of this table.")] = None,
    limit: Annotated[int, typer.Option(help="Newest N jobs.", min=1, max=MAX_LIMIT)] = 50,
    json_: JsonOpt = False,
) -> None:
    """Show the job history recorded in the catalog."""
    with _lh(ctx) as lh:
        records = lh.jobs(name, limit=limit)
    if json_:
        _print_json([r.as_dict() for r in records])
        return
    t = RichTable("id", "table", "kind", "state", "started", "finished", "error")
    for r in records:
        t.add_row(
            str(r.id),
            r.table_name or "",
            r.kind,
            r.state,
            r.started_at.strftime("%Y-%m-%d %H:%M:%S"),
            r.finished_at.strftime("%H:%M:%S") if r.finished_at else "",
            r.error or "",
        )
    out.print(t)


@app.command("health")
def health_cmd(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Argument(help="One table (default: every table).")] = None,
    json_: JsonOpt = False,
) -> None:
    """Score tables 0-100 from measured signals (small files, files per partition, duplicates, old versions,
    orphan files, bytes in the wrong tier, unmasked PII, expired rows) and name the job that fixes each."""
    from lakehouse.maintenance.maintain import health

    with _lh(ctx) as lh:
        if name:
            reports = [health(lh, name).as_dict()]
        else:  # one broken table is reported, and the others are still scored
            reports = []
            for n in [str(r.name) for r in lh.list_tables()]:
                try:
                    reports.append(health(lh, n).as_dict())
                except LakehouseError as e:
                    reports.append({"table": n, "error": str(e)})
    if json_:
        _print_json(reports if name is None else reports[0])
    else:
        for r in reports:
            if "error" in r:
                out.print(bold(r["table"], f": cannot score: {r['error']}"), highlight=False)
                continue
            out.print(
                bold(r["table"], f": {r['score']:.0f}/100" + (f"; fix: {', '.join(r['fixes'])}" if r["fixes"] else ""))
            )
            for f in r["findings"]:
                if f["penalty"] > 0:
                    out.print(f"  -{f['penalty']:.1f} {f['signal']}: {f['evidence']} -> {f['fix']}", highlight=False)
                elif f["signal"] == "zorder_suggestion":  # no penalty, but the evidence behind a suggestion
                    out.print(f"  suggestion: {f['evidence']}", highlight=False)
    _fail_if_any(reports, "health")


@app.command("maintain")
def maintain_cmd(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Argument(help="One table.")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Every table.")] = False,
    dry_run: ApplyOpt = True,
    engine: EngineOpt = "local",
    spark_master: SparkMasterOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Run the jobs a table's health and policy call for, in order: dedup, expire-data, optimize (and Z-order
    when the policy names columns), tier, vacuum, orphans. Prints health before and after. With --engine spark,
    optimize, vacuum and orphans run on Spark; the other jobs run locally."""
    from lakehouse.maintenance.maintain import maintain

    if (name is None) == (not all_):
        raise InvalidInputError("give a table name or --all")
    with _lh(ctx) as lh:
        which = _engine(lh, engine, spark_master)
        names = [str(r.name) for r in lh.list_tables()] if all_ else [str(name)]
        reports: list[dict[str, Any]] = []
        for n in names:
            with err.status(f"maintaining {n} ...") if not (dry_run or json_) else contextlib.nullcontext():
                if not all_:
                    reports.append(maintain(lh, n, dry_run=dry_run, engine=which))
                    continue
                try:  # with --all, one broken table does not keep the others from being maintained
                    reports.append(maintain(lh, n, dry_run=dry_run, engine=which))
                except LakehouseError as e:
                    reports.append({"table": n, "error": str(e), "jobs": []})
    if json_:
        _print_json(reports if all_ else reports[0])
        _fail_if_any(reports, "maintain")
        return
    for r in reports:
        if "error" in r:
            out.print(bold(r["table"], f": {r['error']}"), highlight=False)
            continue
        after = r.get("after", {}).get("score")
        out.print(
            bold(
                r["table"],
                f": health {r['before']['score']:.0f}"
                + (f" -> {after:.0f}" if after is not None else "")
                + ("" if r["jobs"] else "; nothing to do"),
            )
        )
        for j in r["jobs"]:
            detail = j.get("error") or j.get("skipped") or ", ".join(f"{k}={v}" for k, v in j.get("result", {}).items())
            out.print(f"  {j['job']}: {detail}", highlight=False)
    if dry_run:
        out.print("dry run: nothing changed; run again with --apply")
    _fail_if_any(reports, "maintain")


@app.command("autopilot")
def autopilot_cmd(
    ctx: typer.Context,
    interval: Annotated[str | None, typer.Option(help="Between passes (default: autopilot.interval, 5m).")] = None,
    table: Annotated[list[str] | None, typer.Option("--table", help="Only these tables (repeatable).")] = None,
    passes: Annotated[int | None, typer.Option(help="Stop after N passes (default: run until stopped).", min=1)] = None,
    duration: Annotated[str | None, typer.Option(help="Stop after this long, e.g. 1h.")] = None,
    json_: Annotated[bool, typer.Option("--json", help="One JSON line per table and pass.")] = False,
) -> None:
    """Maintain every table continuously beside live ingestion: one lease per table in the catalog database
    (two autopilots, or an autopilot and a manual job, never work on the same table at once), backoff after
    failures, safe to kill and restart. State: `lakehouse jobs` (kind maintain) and GET /metrics."""
    import signal
    import threading

    from lakehouse.maintenance.autopilot import Autopilot
    from lakehouse.units import parse_duration

    def stop_on_term(signum: int, _frame: object) -> None:
        # like Ctrl-C: the running job's record is closed as interrupted and the leases released on the way out
        terminated.append(signum)
        stopping.set()  # should a library swallow the SystemExit, the loop still ends after this pass
        raise SystemExit(128 + signum)

    terminated: list[int] = []
    stopping = threading.Event()

    with _lh(ctx) as lh:
        every = parse_duration(lh.settings.autopilot.interval if interval is None else interval).total_seconds()
        until = time.monotonic() + parse_duration(duration).total_seconds() if duration else None
        names = [str(lh.table_record(t).name) for t in table] if table else None  # unknown tables fail now
        pilot = Autopilot(lh, every, tables=names)
        signal.signal(signal.SIGTERM, stop_on_term)

        failures: list[str] = []

        def show(entry: dict[str, Any]) -> None:
            if "error" in entry or any("error" in j for j in entry.get("jobs", ())):
                failures.append(entry.get("table") or f"catalog {entry.get('catalog')}")
            if json_:
                print(json.dumps(entry, default=str), flush=True)
            elif "skipped" in entry or "error" in entry:
                who = entry["table"] or f"catalog {entry.get('catalog')}"
                err.print(f"{who}: {entry.get('skipped') or entry.get('error')}", markup=False)
            else:
                ran = ", ".join(j["job"] for j in entry["jobs"]) or "nothing to do"
                out.print(
                    f"{entry['at']} {entry['table']}: {entry['score_before']:.0f} -> {entry['score_after']:.0f} ({ran})"
                )

        if not json_:
            err.print(f"autopilot {pilot.holder}: every {every:g} s; Ctrl-C stops")
        try:
            pilot.run(passes=passes, until=until, on_table=show, stop=stopping)
        except (LakehouseError, SystemExit):
            # the signal's SystemExit on its way out of the loop (the running job's record closed), or turned by
            # a library into an error of its own: the exit still says what happened
            if terminated:
                err.print("interrupted", markup=False)
                raise SystemExit(128 + terminated[0]) from None
            raise
        if terminated:
            err.print("interrupted", markup=False)
            raise SystemExit(128 + terminated[0])
        if passes is not None and failures:  # a bounded run (cron, a scheduler's task) says a table failed
            err.print(f"{len(set(failures))} table(s) failed: {', '.join(sorted(set(failures)))}", markup=False)
            raise typer.Exit(1)
