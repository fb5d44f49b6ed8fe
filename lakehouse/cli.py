"""The ``lakehouse`` command line.

Every read command takes ``--json``; every error is one line on stderr and a non-zero exit
(1 for a lakehouse error, 2 for a usage error).
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table as RichTable

from lakehouse.config import load_settings
from lakehouse.core import Lakehouse
from lakehouse.errors import InvalidInputError, LakehouseError
from lakehouse.schema import parse_partitioning, parse_schema
from lakehouse.tables.base import AsOf, TableName, parse_as_of
from lakehouse.units import parse_duration, parse_size

app = typer.Typer(
    help="Keep Delta Lake and Apache Iceberg tables fast, cheap and compliant.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
table_app = typer.Typer(help="Create, inspect, register and restore tables.", no_args_is_help=True)
app.add_typer(table_app, name="table")

# piped output gets a wide fixed width so tables are not squeezed to 80 columns
out = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, soft_wrap=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts instead of a table.")]
EngineOpt = Annotated[
    str,
    typer.Option(
        "--engine",
        help="local: DuckDB, delta-rs and pyiceberg in this process. spark: a Spark session (settings [spark]) "
        "for tables that outgrow one machine.",
    ),
]
SparkMasterOpt = Annotated[
    str | None,
    typer.Option("--spark-master", help="Spark master URL with --engine spark (default: spark.master, local[*])."),
]
NameArg = Annotated[str, typer.Argument(help="Table name: namespace.table", show_default=False)]


class _State:
    config: str | None = None
    overrides: dict[str, Any]

    def __init__(self) -> None:
        self.overrides = {}

    def lakehouse(self) -> Lakehouse:
        import getpass

        try:
            user = getpass.getuser()
        except (KeyError, OSError):
            user = "unknown"
        return Lakehouse(load_settings(config_file=self.config, **self.overrides), actor=f"cli:{user}")


@app.callback()
def _global(
    ctx: typer.Context,
    config: Annotated[
        str | None,
        typer.Option("--config", "-c", help="TOML settings file (default ./lakehouse.toml, $LAKEHOUSE_CONFIG)."),
    ] = None,
    warehouse: Annotated[
        str | None, typer.Option("--warehouse", "-w", help="Warehouse: a directory or s3://bucket/prefix.")
    ] = None,
    catalog_url: Annotated[
        str | None,
        typer.Option("--catalog-url", help="Catalog database URL (SQLAlchemy), e.g. postgresql+psycopg://..."),
    ] = None,
) -> None:
    """Settings: defaults < lakehouse.toml < LAKEHOUSE_* environment < these options."""
    state = _State()
    state.config = config
    state.overrides = {"warehouse": warehouse, "catalog_url": catalog_url}
    ctx.obj = state


def _lh(ctx: typer.Context) -> Lakehouse:
    state: _State = ctx.obj
    return state.lakehouse()


def _engine(lh: Lakehouse, engine: str, spark_master: str | None) -> str:
    """Validate --engine / --spark-master; the master overrides the spark.master setting for this run."""
    from lakehouse.engines import check_engine

    name = check_engine(engine)
    if spark_master:
        if name != "spark":
            raise InvalidInputError("--spark-master goes with --engine spark")
        lh.settings.spark.master = spark_master
    return name


def _print_json(data: Any) -> None:
    out.print_json(json.dumps(data, default=str))


def _human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"


def _parse_as_of_options(values: list[str] | None) -> dict[str, AsOf]:
    result: dict[str, AsOf] = {}
    for item in values or []:
        if "=" not in item:
            raise InvalidInputError(f"--as-of {item!r} must be NAME=VERSION or NAME=TIMESTAMP")
        name, _, when = item.partition("=")
        result[str(TableName.parse(name))] = parse_as_of(when)
    return result


# ---- init ---------------------------------------------------------------------------------------------


@app.command()
def init(
    ctx: typer.Context,
    create_bucket: Annotated[bool, typer.Option(help="Create the S3 bucket if it is missing.")] = False,
    json_: JsonOpt = False,
) -> None:
    """Create the warehouse (a directory, or check the S3 bucket) and the catalog database."""
    with _lh(ctx) as lh:
        info = lh.init(create_bucket_if_missing=create_bucket)
    if json_:
        _print_json(info)
    else:
        out.print(f"warehouse {info['warehouse']} ready; catalog {info['catalog_url']}")


# ---- table --------------------------------------------------------------------------------------------


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
    properties = _key_values(prop, "--property")
    with _lh(ctx) as lh:
        table = lh.create_table(
            name,
            schema=parse_schema(schema),
            format=format,
            partitioning=parse_partitioning(partition_by),
            keys=[k.strip() for k in (keys or "").split(",") if k.strip()],
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
    json_: JsonOpt = False,
) -> None:
    """List the catalog's tables."""
    with _lh(ctx) as lh:
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


def _table_summary(lh: Lakehouse, name: str, predicate: str | None = None) -> dict[str, Any]:
    from lakehouse.maintenance.health import file_health

    record = lh.table_record(name)
    table = lh.table(name)
    files = table.files()
    snaps = table.snapshots()
    current = next((s for s in reversed(snaps) if s.is_current), snaps[-1] if snaps else None)
    partitions = Counter(json.dumps(dict(f.partition), sort_keys=True, default=str) for f in files)
    return {
        **record.as_dict(),
        "capabilities": table.capabilities.as_dict(),
        "current_version": current.version if current else None,
        "versions": len(snaps),
        "files": len(files),
        "bytes": sum(f.size_bytes for f in files),
        "rows": table.live_rows(files),
        "partitions": len(partitions),
        "health": file_health(table, files=files, predicate=predicate),
        "pii": lh.catalog.pii_tags(record.name),
        "masking": lh.policy(record.name).masking,
    }


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
    with _lh(ctx) as lh:
        info = _table_summary(lh, name, predicate)
    if json_:
        _print_json(info)
        return
    out.print(f"[bold]{info['name']}[/bold] ({info['format']}) at {info['location']}")
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
    limit: Annotated[int, typer.Option(help="Newest N versions.", min=1)] = 50,
    json_: JsonOpt = False,
) -> None:
    """List a table's versions (Delta log versions, Iceberg snapshots) with time and operation."""
    with _lh(ctx) as lh:
        table = lh.table(name)
        snaps = table.snapshots()[-limit:]
    expired = table.expired.versions if table.expired else frozenset()
    if json_:
        _print_json([{**s.as_dict(), "expired": s.version in expired} for s in snaps])
        return
    t = RichTable("version", "snapshot id", "time (UTC)", "operation", "current", "rows added", "readable")
    for s in snaps:
        added = s.summary.get("num_added_rows") or s.summary.get("added-records") or ""
        t.add_row(
            str(s.version),
            str(s.snapshot_id or ""),
            s.timestamp.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3],
            s.operation,
            "*" if s.is_current else "",
            str(added),
            f"no: expired by vacuum (--retain {table.expired.retention})"
            if table.expired and s.version in expired
            else "yes",
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
    """Register an existing Delta or Iceberg table by its location."""
    with _lh(ctx) as lh:
        table = lh.register_table(name, location=location, format=format)
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
    target = parse_as_of(to)
    with _lh(ctx) as lh:
        table = lh.table(name)
        snap = table.snapshot(target)
        if dry_run:
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


# ---- query, jobs, demo --------------------------------------------------------------------------------


@app.command()
def query(
    ctx: typer.Context,
    sql: Annotated[str, typer.Argument(help="One SELECT; catalog tables are namespace.table.")],
    as_of: Annotated[
        list[str] | None,
        typer.Option("--as-of", help="Time travel: NAME=VERSION or NAME=ISO-TIMESTAMP (repeatable)."),
    ] = None,
    max_rows: Annotated[int | None, typer.Option(help="Rows to return at most.")] = None,
    masked: Annotated[
        bool, typer.Option("--masked", help="Read as a caller without PII permission: PII columns come masked.")
    ] = False,
    engine: EngineOpt = "local",
    spark_master: SparkMasterOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Run SQL over catalog tables through DuckDB, or on Spark with --engine spark.

    Time travel per reference: `FROM ns.t AT (VERSION => 3)` or `AT (TIMESTAMP => '2026-01-02T00:00:00Z')`;
    the same syntax works on both engines (Spark reads Iceberg through the shared catalog, Delta through
    delta-spark).
    """
    pinned = _parse_as_of_options(as_of)
    with _lh(ctx) as lh:
        which = _engine(lh, engine, spark_master)
        with err.status("starting Spark ...") if which == "spark" and not json_ else contextlib.nullcontext():
            result = lh.query(sql, as_of=pinned, max_rows=max_rows, masked=masked, engine=which)
    if json_:
        _print_json(result.as_dict())
        return
    print_arrow(result.table)
    if result.truncated:
        out.print(f"(first {result.table.num_rows} rows; raise --max-rows for more)")


def print_arrow(table: Any) -> None:
    t = RichTable(*[f.name for f in table.schema])
    for row in table.to_pylist():
        t.add_row(*["NULL" if v is None else str(v) for v in row.values()])
    out.print(t)
    out.print(f"{table.num_rows} row(s)")


@app.command()
def ingest(
    ctx: typer.Context,
    name: NameArg,
    kafka: Annotated[str | None, typer.Option(help="Kafka bootstrap servers HOST:PORT[,HOST:PORT].")] = None,
    topic: Annotated[str | None, typer.Option(help="Kafka topic (with --kafka).")] = None,
    group: Annotated[str | None, typer.Option(help="Kafka consumer group (default lakehouse-<table>).")] = None,
    kafka_config: Annotated[
        list[str] | None,
        typer.Option(help="librdkafka setting KEY=VALUE, e.g. security.protocol=SASL_SSL (repeatable)."),
    ] = None,
    file: Annotated[str | None, typer.Option("--file", help="NDJSON, CSV or Parquet file, or - for stdin.")] = None,
    input_format: Annotated[
        str | None, typer.Option("--input-format", help="ndjson, csv or parquet (default: from the file name).")
    ] = None,
    source_id: Annotated[
        str | None, typer.Option(help="Checkpoint name of a file source (default file:<absolute path>; stdin).")
    ] = None,
    max_rows: Annotated[int, typer.Option(help="Flush a micro-batch at this many records.", min=1)] = 100_000,
    max_bytes: Annotated[str, typer.Option(help="... or at this many bytes (e.g. 64MB).")] = "64MB",
    max_seconds: Annotated[float, typer.Option(help="... or this many seconds after its first record.")] = 5.0,
    until_idle: Annotated[
        float | None, typer.Option(help="Stop after this many seconds without a new Kafka message.")
    ] = None,
    max_records: Annotated[int | None, typer.Option(help="Stop after this many records.", min=1)] = None,
    new_fields: Annotated[
        str, typer.Option(help="Fields the table lacks: ignore, or add (a nullable column).")
    ] = "ignore",
    json_: JsonOpt = False,
) -> None:
    """Ingest a Kafka topic or a file into a table in exactly-once micro-batches.

    Bad records go to the quarantine table <namespace>.<table>__quarantine with the reason. A restart resumes
    from what the table committed. Ctrl-C or SIGTERM flushes and exits cleanly.
    """
    import signal
    import threading

    from lakehouse.ingest.pipeline import FlushPolicy, FlushResult, Ingestor
    from lakehouse.ingest.sources import KafkaIngest, StopConditions, ingest_file

    if (kafka is None) == (file is None):
        raise InvalidInputError("give either --kafka HOST:PORT --topic T, or --file PATH")
    if kafka is not None and not topic:
        raise InvalidInputError("--kafka needs --topic")
    if new_fields not in ("ignore", "add"):
        raise InvalidInputError("--new-fields must be ignore or add")
    policy = FlushPolicy(max_rows=max_rows, max_bytes=parse_size(max_bytes), max_seconds=max_seconds)
    conditions = StopConditions(max_records=max_records, until_idle=until_idle)
    stop = threading.Event()

    def _stop(signum: int, _frame: Any) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, _stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    with _lh(ctx) as lh:
        ingestor = Ingestor(lh, name, policy=policy, new_fields=new_fields)  # type: ignore[arg-type]
        lag: list[int | None] = [None]
        last_print = [0.0]

        def show(final: bool = False) -> None:
            st = ingestor.stats
            line = (
                f"{st.records:,} records ({st.rate:,.0f}/s), {st.batches} batches, {st.rows:,} rows, "
                f"{st.quarantined:,} quarantined" + (f", lag {lag[0]:,}" if lag[0] is not None else "")
            )
            if err.is_terminal:
                err.print(line, end="\n" if final else "\r", markup=False, highlight=False)
            elif final or time.monotonic() - last_print[0] >= 5:
                err.print(line, markup=False, highlight=False)
            last_print[0] = time.monotonic()

        def on_flush(_: FlushResult) -> None:
            show()

        try:
            if kafka is not None:
                assert topic is not None
                runner = KafkaIngest(
                    ingestor,
                    bootstrap=kafka,
                    topic=topic,
                    group=group or f"lakehouse-{TableName.parse(name)}",
                    config=_key_values(kafka_config, "--kafka-config"),
                )

                def tick() -> None:
                    lag[0] = runner.lag()
                    show()

                runner.run(stop=stop, conditions=conditions, on_flush=on_flush, on_tick=tick)
            else:
                assert file is not None
                ingest_file(
                    ingestor,
                    file,
                    fmt=input_format,
                    source_id=source_id,
                    stop=stop,
                    conditions=conditions,
                    on_flush=on_flush,
                )
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        show(final=True)
        summary = {"table": str(ingestor.table.name), **ingestor.stats.as_dict(), "stopped_by_signal": stop.is_set()}
    if json_:
        _print_json(summary)
    else:
        out.print(
            f"ingested {summary['rows']:,} rows into {summary['table']} in {summary['batches']} batches; "
            f"{summary['quarantined']:,} records quarantined"
        )


def _key_values(items: list[str] | None, option: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items or []:
        if "=" not in item:
            raise InvalidInputError(f"{option} {item!r} must be KEY=VALUE")
        k, _, v = item.partition("=")
        out[k.strip()] = v.strip()
    return out


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
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only print the plan.")] = False,
    engine: EngineOpt = "local",
    spark_master: SparkMasterOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Compact small files (bin-packing to the target size) and optionally Z-order, partition by partition.

    The plan shows, per partition, the input files and bytes, the expected output files and why it was or
    was not picked. Rows are never added or lost: rows in equal rows out, checked after every commit.
    Each partition commits on its own (Iceberg: a replace snapshot; Delta: dataChange=false); one that loses its
    commit race to a writer is rebased onto its commits, never rewritten, for up to --commit-timeout (local engine).
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
        zorder=tuple(c.strip() for c in (zorder or "").split(",") if c.strip()),
        curve=curve,
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


# ---- retention, orphans, data expiry, tiering, cost, policies -----------------------------------------------

ApplyOpt = Annotated[
    bool,
    typer.Option(
        "--dry-run/--apply",
        help="Dry run (the default) prints the plan and deletes or moves nothing; --apply does it.",
    ),
]


@contextlib.contextmanager
def _progress(label: str, enabled: bool) -> Iterator[Callable[[int, int], None] | None]:
    """A progress bar on stderr; yields its update callback (None when disabled)."""
    if not enabled:
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=err, transient=True
    ) as bar:
        task = bar.add_task(label, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update


def _file_lines(files: list[dict[str, Any]], limit: int = 20) -> None:
    for f in files[:limit]:
        out.print(f"  {f['path']}  ({_human_bytes(f['size_bytes'])})", markup=False, highlight=False)
    if len(files) > limit:
        out.print(f"  ... and {len(files) - limit} more (--json lists all)")


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
        window = retain or lh.policy(name).retention.retain
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
            f"deleted {d['files_deleted']} files ({_human_bytes(d['bytes_deleted'])}), expired "
            f"{len(d['expired_versions'])} versions (job {d['job_id']})"
        )


def _ranges(values: list[int]) -> str:
    """[1, 2, 3, 7] -> "1-3, 7"."""
    out: list[str] = []
    for v in sorted(values):
        if out and "-" not in out[-1].split(", ")[-1] and int(out[-1]) == v - 1:
            out[-1] = f"{out[-1]}-{v}"
        elif out and "-" in out[-1] and int(out[-1].split("-")[1]) == v - 1:
            out[-1] = f"{out[-1].split('-')[0]}-{v}"
        else:
            out.append(str(v))
    return ", ".join(out)


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
        age = older_than or lh.policy(name).retention.orphan_age
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
        age = older_than or policy.expire_after
        if age is None:
            raise InvalidInputError(
                f"no age given for {name}",
                hint=f"pass --older-than 365d or set it: lakehouse policy set {name} retention.expire_after=365d",
            )
        with err.status(f"expiring rows of {name} ...") if not (dry_run or json_) else contextlib.nullcontext():
            result = expire_data(lh, name, older_than=age, column=column or policy.expire_column, dry_run=dry_run)
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
    at the configured prices ([cost.prices], default AWS S3 list prices), the savings against keeping it all
    hot, and how much smaller the Parquet data is than the same rows as raw JSON."""
    from lakehouse.maintenance.tiering import table_cost

    if (name is None) == (not all_):
        raise InvalidInputError("give a table name or --all")
    with _lh(ctx) as lh:
        names = [str(r.name) for r in lh.list_tables()] if all_ else [str(name)]
        reports = [table_cost(lh, n).as_dict() for n in names]
    totals = {
        k: round(sum(r[k] for r in reports), 6)
        for k in ("objects", "bytes", "live_data_bytes", "monthly_cost", "all_hot_monthly_cost", "savings")
    }
    if json_:
        _print_json({"tables": reports, "totals": totals} if all_ else reports[0])
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
    if all_:
        out.print(
            f"total: {_human_bytes(totals['bytes'])}, {totals['monthly_cost']:.4f}/month, saves "
            f"{totals['savings']:.4f}/month against all hot"
        )


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
        out.print(f"[bold]{section}[/bold]")
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
    from lakehouse.governance.policy import parse_assignments

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
    from lakehouse.governance.policy import unset

    with _lh(ctx) as lh:
        stored = lh.catalog.policy(TableName.parse(name))
        for key in keys:
            stored = unset(stored, key)
        lh.set_policy(name, stored, replace=True)
    out.print(f"policy of {TableName.parse(name)} updated")


@app.command()
def jobs(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Argument(help="Only jobs of this table.")] = None,
    limit: Annotated[int, typer.Option(help="Newest N jobs.")] = 50,
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


# ---- dedup, PII, erasure ------------------------------------------------------------------------------------


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

    with _lh(ctx) as lh:
        policy = lh.policy(name).dedup
        keys = (
            [k.strip() for k in key.split(",") if k.strip()]
            if key
            else (policy.keys or list(lh.table(name).definition.keys))
        )
        with err.status(f"deduplicating {name} ...") if not (dry_run or json_) else contextlib.nullcontext():
            result = dedup(
                lh, name, keys=keys, order=order or policy.order, dry_run=dry_run, memory_budget=parse_size(memory)
            )
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


def _warn(warning: str | None) -> None:
    """A step after a landed commit failed: the run succeeded (exit 0), and stderr says what is left to do."""
    if warning:
        err.print("warning: " + " ".join(warning.split()), markup=False, highlight=False)


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
    limit: Annotated[int, typer.Option(help="Newest N entries.")] = 50,
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


# ---- health, maintain, autopilot -----------------------------------------------------------------------------


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
                out.print(f"[bold]{r['table']}[/bold]: cannot score: {r['error']}", highlight=False)
                continue
            out.print(
                f"[bold]{r['table']}[/bold]: {r['score']:.0f}/100"
                + (f"; fix: {', '.join(r['fixes'])}" if r["fixes"] else "")
            )
            for f in r["findings"]:
                if f["penalty"] > 0:
                    out.print(f"  -{f['penalty']:.1f} {f['signal']}: {f['evidence']} -> {f['fix']}", highlight=False)
                elif f["signal"] == "zorder_suggestion":  # no penalty, but the evidence behind a suggestion
                    out.print(f"  suggestion: {f['evidence']}", highlight=False)
    _fail_if_any(reports, "health")


def _fail_if_any(reports: list[dict[str, Any]], what: str) -> None:
    """After printing every table's result: exit non-zero (one line) when a table, or one of its jobs, failed."""
    failed = [r["table"] for r in reports if "error" in r or any("error" in j for j in r.get("jobs", []))]
    if failed:
        raise LakehouseError(f"{what} failed for {len(failed)} of {len(reports)} table(s): {', '.join(failed)}")


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
            out.print(f"[bold]{r['table']}[/bold]: {r['error']}", highlight=False)
            continue
        after = r.get("after", {}).get("score")
        out.print(
            f"[bold]{r['table']}[/bold]: health {r['before']['score']:.0f}"
            + (f" -> {after:.0f}" if after is not None else "")
            + ("" if r["jobs"] else "; nothing to do")
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

    from lakehouse.maintenance.autopilot import Autopilot
    from lakehouse.units import parse_duration

    def stop_on_term(signum: int, _frame: object) -> None:
        # like Ctrl-C: the running job's record is closed as interrupted and the leases released on the way out
        raise SystemExit(128 + signum)

    with _lh(ctx) as lh:
        every = parse_duration(interval or lh.settings.autopilot.interval).total_seconds()
        until = time.monotonic() + parse_duration(duration).total_seconds() if duration else None
        names = [str(lh.table_record(t).name) for t in table] if table else None  # unknown tables fail now
        pilot = Autopilot(lh, every, tables=names)
        signal.signal(signal.SIGTERM, stop_on_term)

        def show(entry: dict[str, Any]) -> None:
            if json_:
                print(json.dumps(entry, default=str), flush=True)
            elif "skipped" in entry or "error" in entry:
                err.print(f"{entry['table']}: {entry.get('skipped') or entry.get('error')}", markup=False)
            else:
                ran = ", ".join(j["job"] for j in entry["jobs"]) or "nothing to do"
                out.print(
                    f"{entry['at']} {entry['table']}: {entry['score_before']:.0f} -> {entry['score_after']:.0f} ({ran})"
                )

        if not json_:
            err.print(f"autopilot {pilot.holder}: every {every:g} s; Ctrl-C stops")
        pilot.run(passes=passes, until=until, on_table=show)


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


@app.command()
def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.", min=1, max=65535)] = 8080,
    autopilot: Annotated[
        bool, typer.Option("--autopilot", help="Also run the autopilot in the background (autopilot.interval).")
    ] = False,
) -> None:
    """Run the REST API (OpenAPI docs at /docs). Create keys first: `lakehouse keys create --role admin`."""
    try:
        import uvicorn

        from api.app import create_app
    except ImportError as e:
        from lakehouse.errors import DependencyMissingError

        raise DependencyMissingError(
            "the REST API needs fastapi and uvicorn", hint="pip install 'lakehouse[api]'"
        ) from e
    state: _State = ctx.obj
    settings = load_settings(config_file=state.config, **state.overrides)
    from lakehouse.units import parse_duration

    interval = parse_duration(settings.autopilot.interval).total_seconds() if autopilot else None
    uvicorn.run(create_app(settings, autopilot_interval=interval), host=host, port=port, log_level="info")


@app.command()
def demo(
    ctx: typer.Context,
    batches: Annotated[int, typer.Option(help="Micro-batches to append to each table.", min=2)] = 6,
    rows: Annotated[int, typer.Option(help="Rows per batch.", min=1)] = 500,
    seed: Annotated[int, typer.Option(help="Random seed for the generated events.")] = 7,
    autopilot_rounds: Annotated[
        int, typer.Option(help="Rounds of streaming with the autopilot at the end (0: skip).", min=0)
    ] = 3,
) -> None:
    """End-to-end demo on the configured warehouse (default ./warehouse): creates one Delta and one
    Iceberg table, appends generated events, and shows files, versions, SQL and time travel.
    Re-running starts over: the demo's own tables (namespace `demo`) are recreated."""
    from lakehouse.demo import run_demo

    with _lh(ctx) as lh:
        run_demo(lh, batches=batches, rows=rows, seed=seed, console=out, autopilot_rounds=autopilot_rounds)


def main() -> None:
    """Console-script entry point: one line on stderr and exit 1 for a lakehouse error."""
    import logging

    # pyiceberg warns on every commit it retries after a concurrent writer won: routine beside a stream, and
    # lakehouse reports the conflicts that matter itself
    logging.getLogger("pyiceberg.table").setLevel(logging.ERROR)
    try:
        app()
    except LakehouseError as e:
        err.print("error: " + " ".join(str(e).split()), markup=False, highlight=False)  # always one line
        sys.exit(1)
    except KeyboardInterrupt:
        err.print("interrupted", markup=False)
        sys.exit(130)
