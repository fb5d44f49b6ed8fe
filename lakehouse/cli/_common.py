"""What every command group shares: the Typer app, consoles, common options, settings from the global
options, output helpers."""

from __future__ import annotations

import contextlib
import json
import math
import sys
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table as RichTable
from rich.text import Text

from lakehouse.errors import InvalidInputError, LakehouseError
from lakehouse.names import TableName

if TYPE_CHECKING:  # imported when a command runs: --help and light commands start without them
    from lakehouse.core import Lakehouse
    from lakehouse.tables.base import AsOf

app = typer.Typer(
    help="Keep Delta Lake and Apache Iceberg tables fast, cheap and compliant.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

# piped output gets a wide fixed width so tables are not squeezed to 80 columns
# No markup or emoji codes in what the CLI prints: its lines carry names, values, errors and policies (a regex
# such as "[/a-z]" would fail Rich's markup, ":-1:" would become an emoji); emphasis goes through bold()
out = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 160, markup=False, emoji=False)
err = Console(stderr=True, soft_wrap=True, markup=False, emoji=False)


def bold(head: str, rest: str = "") -> Text:
    """``head`` in bold, then ``rest``, both as plain text."""
    return Text.assemble((head, "bold"), rest)


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
        from lakehouse.config import load_settings
        from lakehouse.core import Lakehouse

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
    """JSON on stdout: highlighted on a terminal; plain (indented, as the terminal shows it) for a pipe or a
    file, where Rich's highlighting and wrapping would cost seconds on a large answer. Strict JSON: a NaN or an
    infinite float is written as null, as the API's answers do (JSON has no such numbers; jq refuses them)."""
    from lakehouse.sql.engine import json_value

    data = _finite(data)
    if out.is_terminal:
        out.print_json(json.dumps(data, default=json_value, allow_nan=False))
    else:
        sys.stdout.write(json.dumps(data, default=json_value, indent=2, ensure_ascii=False, allow_nan=False) + "\n")
        sys.stdout.flush()


def _finite(value: Any) -> Any:
    """``value`` with every NaN or infinite float (at any depth of dicts, lists and tuples) replaced by None, and
    an interval (a named tuple, which the encoder would write as an array) in its JSON form."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, tuple) and type(value) is not tuple:  # pyarrow's MonthDayNano, a struct sequence
        from lakehouse.sql.engine import json_value

        return json_value(value)
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"


def _parse_as_of_options(values: list[str] | None) -> dict[str, AsOf]:
    from lakehouse.tables.base import parse_as_of

    result: dict[str, AsOf] = {}
    for item in values or []:
        if "=" not in item:
            raise InvalidInputError(f"--as-of {item!r} must be NAME=VERSION or NAME=TIMESTAMP")
        name, _, when = item.partition("=")
        result[str(TableName.parse(name))] = parse_as_of(when)
    return result


def print_arrow(table: Any) -> None:
    from lakehouse.sql.engine import python_rows, unique_names

    names = unique_names(table.column_names)
    t = RichTable(*names)
    for row in python_rows(table.rename_columns(names)):
        t.add_row(*["NULL" if v is None else str(v) for v in row.values()])
    out.print(t)
    out.print(f"{table.num_rows} row(s)")


def column_list(value: str, option: str) -> list[str]:
    """The column names of a comma-separated option value: every item a name (``--key ''`` or ``a,,b`` is an
    error, not a silent fall-back to the default)."""
    names = [c.strip() for c in value.split(",")]
    if not value.strip() or not all(names):
        raise InvalidInputError(
            f"{option} {value!r} holds an empty column name", hint=f"give the names comma-separated: {option} a,b"
        )
    return names


def _key_values(items: list[str] | None, option: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items or []:
        if "=" not in item:
            raise InvalidInputError(f"{option} {item!r} must be KEY=VALUE")
        k, _, v = item.partition("=")
        out[k.strip()] = v.strip()
    return out


MAX_LIMIT = 1_000_000
"""The largest ``--limit`` of a listing (jobs, audit, history): past it the catalog database cannot take the
number (SQLite's integers are 64-bit), and no terminal shows that many lines."""

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


def _warn(warning: str | None) -> None:
    """A step after a landed commit failed: the run succeeded (exit 0), and stderr says what is left to do."""
    if warning:
        err.print("warning: " + " ".join(warning.split()), markup=False, highlight=False)


def _fail_if_any(reports: list[dict[str, Any]], what: str) -> None:
    """After printing every table's result: exit non-zero (one line) when a table, or one of its jobs, failed."""
    failed = [r["table"] for r in reports if "error" in r or any("error" in j for j in r.get("jobs", []))]
    if failed:
        raise LakehouseError(f"{what} failed for {len(failed)} of {len(reports)} table(s): {', '.join(failed)}")
