"""``lakehouse query`` and ``lakehouse ingest``."""

from __future__ import annotations

import contextlib
import time
from typing import Annotated, Any

import typer

from lakehouse.cli._common import (
    EngineOpt,
    JsonOpt,
    NameArg,
    SparkMasterOpt,
    _engine,
    _key_values,
    _lh,
    _parse_as_of_options,
    _print_json,
    app,
    err,
    out,
    print_arrow,
)
from lakehouse.errors import InvalidInputError
from lakehouse.names import TableName
from lakehouse.units import parse_size


@app.command()
def query(
    ctx: typer.Context,
    sql: Annotated[str, typer.Argument(help="One SELECT; catalog tables are namespace.table.")],
    as_of: Annotated[
        list[str] | None,
        typer.Option("--as-of", help="Time travel: NAME=VERSION or NAME=ISO-TIMESTAMP (repeatable)."),
    ] = None,
    max_rows: Annotated[int | None, typer.Option(help="Rows to return at most.", min=1)] = None,
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
        answer = result.as_dict()
        if result.reads:  # how each table was read (its planned files, or the format's scan)
            answer["reads"] = list(result.reads)
        _print_json(answer)
        return
    print_arrow(result.table)
    if result.truncated:
        out.print(f"(first {result.table.num_rows} rows; raise --max-rows for more)")


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
    max_seconds: Annotated[float, typer.Option(help="... or this many seconds after its first record.", min=0.0)] = 5.0,
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
