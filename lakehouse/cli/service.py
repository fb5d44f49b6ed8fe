"""Setting up and serving: init, serve (the REST API), demo."""

from __future__ import annotations

from typing import Annotated

import typer

from lakehouse.cli._common import (
    JsonOpt,
    _lh,
    _print_json,
    _State,
    app,
    out,
)


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


@app.command()
def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.", min=1, max=65535)] = 8080,
    autopilot: Annotated[
        bool, typer.Option("--autopilot", help="Also run the autopilot in the background (autopilot.interval).")
    ] = False,
    show_config: Annotated[
        bool,
        typer.Option(
            "--show-config", help="Print how DuckDB, Spark, pyiceberg and delta-rs attach, then exit (no server)."
        ),
    ] = False,
) -> None:
    """Run the REST API (OpenAPI docs at /docs) with the Iceberg REST catalog at /iceberg, and print how each
    engine attaches to it. Create keys first: `lakehouse keys create --name ops --role admin`."""
    from lakehouse.served.iceberg_rest import client_snippets

    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host  # noqa: S104 - what clients on this machine use
    out.print(client_snippets(f"http://{shown}:{port}"), markup=False, highlight=False)
    if show_config:
        return
    try:
        import uvicorn

        from api.app import create_app
    except ImportError as e:
        from lakehouse.errors import DependencyMissingError

        raise DependencyMissingError(
            "the REST API needs fastapi and uvicorn", hint="pip install 'lakehouse[api]'"
        ) from e
    state: _State = ctx.obj
    from lakehouse.config import load_settings

    settings = load_settings(config_file=state.config, **state.overrides)
    from lakehouse.units import parse_duration

    interval = parse_duration(settings.autopilot.interval).total_seconds() if autopilot else None
    _check_bind(host, port)  # before the app starts: a one-line error, not uvicorn's log and exit 3
    uvicorn.run(create_app(settings, autopilot_interval=interval), host=host, port=port, log_level="info")


def _check_bind(host: str, port: int) -> None:
    """Raise a one-line error when the server could not listen on ``host``:``port`` (in use, not an address of
    this machine, not an address at all)."""
    import socket

    from lakehouse.errors import InvalidInputError

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as e:
        raise InvalidInputError(f"cannot listen on {host}:{port}: {e}", hint="give an address of this machine") from e
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as e:
            raise InvalidInputError(
                f"cannot listen on {host}:{port}: {e.strerror or e}",
                hint="pick another --port, or stop what listens there",
            ) from e


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
