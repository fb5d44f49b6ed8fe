"""The real `lakehouse` console script, run as a subprocess in a temporary working directory."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from lakehouse.config import load_settings
from lakehouse.core import Lakehouse
from tests.conftest import events

EXE = shutil.which("lakehouse", path=os.path.dirname(sys.executable)) or "lakehouse"


def run(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None, ok: bool = True
) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "COLUMNS": "200", **(env or {})}
    proc = subprocess.run([EXE, *args], capture_output=True, text=True, cwd=cwd, env=full_env, timeout=120, check=False)
    if ok:
        assert proc.returncode == 0, proc.stderr
    return proc


def run_json(*args: str, **kw: Any) -> Any:
    return json.loads(run(*args, "--json", **kw).stdout)


def run_here(
    *args: str, env: dict[str, str] | None = None, monkeypatch: pytest.MonkeyPatch
) -> subprocess.CompletedProcess[str]:
    """The console script's entry point (``lakehouse.cli:main``, which turns errors into one line and an exit
    status) run in this process: for the many mistakes checked one after the other, each a second of process
    start otherwise. What it prints and its exit status, as :func:`run` gives them."""
    import contextlib
    import io
    import signal

    from lakehouse.cli import main

    stdout, stderr = io.StringIO(), io.StringIO()
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}  # commands set their own
    with monkeypatch.context() as m:
        m.setenv("COLUMNS", "200")
        for k, v in (env or {}).items():
            m.setenv(k, v)
        m.setattr(sys, "argv", ["lakehouse", *args])
        try:
            with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
                main()
            code = 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        finally:
            for sig, handler in handlers.items():
                signal.signal(sig, handler)
    return subprocess.CompletedProcess(["lakehouse", *args], code, stdout.getvalue(), stderr.getvalue())


class InProcess:
    """:func:`run` and :func:`run_json` through :func:`run_here`, for the tests that run many commands one after
    the other (the tests of errors, help, settings files, the demo and ``serve`` run the console script in a
    process of its own)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.monkeypatch = monkeypatch

    def run(self, *args: str, env: dict[str, str] | None = None, ok: bool = True) -> subprocess.CompletedProcess[str]:
        proc = run_here(*args, env=env, monkeypatch=self.monkeypatch)
        if ok:
            assert proc.returncode == 0, proc.stderr
        return proc

    def json(self, *args: str, **kw: Any) -> Any:
        return json.loads(self.run(*args, "--json", **kw).stdout)


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch) -> InProcess:
    return InProcess(monkeypatch)


def test_table_lifecycle_through_the_cli(tmp_path: Path, cli: InProcess) -> None:
    wh = str(tmp_path / "wh")
    info = cli.json("-w", wh, "init")
    assert info["warehouse"] == wh and Path(wh, "_catalog.db").exists()
    cli.run(
        "-w",
        wh,
        "table",
        "create",
        "sales.orders",
        "--format",
        "iceberg",
        "--schema",
        "id:int64 not null, ts:timestamp not null, country:string, amount:float64, note:string",
        "--partition-by",
        "day(ts), country",
        "--keys",
        "id",
    )
    cli.run(
        "-w",
        wh,
        "table",
        "create",
        "sales.orders_d",
        "-f",
        "delta",
        "-s",
        "id:int64 not null, ts:timestamp not null, country:string, amount:float64, note:string",
        "-p",
        "day(ts)",
    )
    listed = cli.json("-w", wh, "table", "list")
    assert [(t["name"], t["format"]) for t in listed] == [("sales.orders", "iceberg"), ("sales.orders_d", "delta")]
    assert listed[0]["partitioning"] == ["day(ts)", "country"] and listed[0]["keys"] == ["id"]

    # data arrives through the library (ingestion is its own command)
    with Lakehouse(load_settings(config_file=False, warehouse=wh)) as lh:
        for name in ("sales.orders", "sales.orders_d"):
            for i in range(3):
                lh.append(name, events(i * 10, 10))

    show = cli.json("-w", wh, "table", "show", "sales.orders")
    assert show["rows"] == 30 and show["versions"] == 3 and show["files"] >= 3 and show["partitions"] >= 3
    assert show["capabilities"]["hidden_partitioning"] is True
    history = cli.json("-w", wh, "table", "history", "sales.orders_d")
    assert [h["version"] for h in history] == [0, 1, 2, 3] and history[-1]["is_current"]
    files = cli.json("-w", wh, "table", "files", "sales.orders", "--as-of", "1")
    files_d = cli.json("-w", wh, "table", "files", "sales.orders_d")
    assert sum(f["row_count"] for f in files) == 10 and all("ts_day" in f["partition"] for f in files)

    q = cli.json("-w", wh, "query", "SELECT count(*) AS n FROM sales.orders", "--as-of", "sales.orders=2")
    assert q["rows"] == [{"n": 20}]
    assert q["reads"] == [{"table": "sales.orders", "read": "format"}]  # an older version: the format's scan
    q = cli.json("-w", wh, "query", "SELECT count(*) AS n FROM sales.orders_d WHERE id >= 0")
    assert q["rows"] == [{"n": 30}]
    assert q["reads"] == [
        {"table": "sales.orders_d", "read": "files", "files": len(files_d), "files_total": len(files_d)}
    ]
    q = cli.json("-w", wh, "query", "SELECT count(*) AS n FROM sales.orders_d AT (VERSION => 1)")
    assert q["rows"] == [{"n": 10}]
    human = cli.run("-w", wh, "query", "SELECT country, count(*) AS n FROM sales.orders GROUP BY 1 ORDER BY 1").stdout
    assert "country" in human and "4 row(s)" in human

    plan = cli.json("-w", wh, "table", "restore", "sales.orders_d", "1", "--dry-run")
    assert plan == {"table": "sales.orders_d", "target_version": 1, "rows_now": 30, "rows_after": 10}
    restored = cli.json("-w", wh, "table", "restore", "sales.orders_d", "1")
    assert restored["operation"] == "restore" and restored["version"] == 4
    assert cli.json("-w", wh, "query", "SELECT count(*) AS n FROM sales.orders_d")["rows"] == [{"n": 10}]
    jobs = cli.json("-w", wh, "jobs")
    assert [(j["kind"], j["state"], j["table_name"]) for j in jobs] == [("restore", "committed", "sales.orders_d")]

    cli.run("-w", wh, "table", "drop", "sales.orders", "--purge", "--yes")
    assert [t["name"] for t in cli.json("-w", wh, "table", "list")] == ["sales.orders_d"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["table", "show", "nope.nope"], "no table nope.nope in the catalog"),
        (["table", "show", "nonamespace"], "invalid table name"),
        (["table", "create", "a.b", "--schema", "id:uint128"], "unknown type 'uint128'"),
        (["table", "create", "a.b", "--schema", "id:int64", "--format", "hudi"], "unknown table format 'hudi'"),
        (
            ["table", "create", "a.b", "--schema", "id:int64", "--partition-by", "week(id)"],
            "unknown partition transform",
        ),
        (["query", "SELEC 1"], "cannot parse SQL"),
        (["query", "SELECT 1", "--as-of", "x"], "must be NAME=VERSION"),
        (["table", "drop", "a.b", "--purge"], "add --yes"),
        (["table", "files", "a.b", "--as-of", "yesterday"], "invalid version or timestamp"),
        (["table", "register", "a.b", "/nonexistent/place"], "no Delta or Iceberg table"),
    ],
)
def test_errors_are_one_line_and_non_zero(tmp_path: Path, args: list[str], message: str) -> None:
    proc = run("-w", str(tmp_path / "wh"), *args, ok=False)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ") and message in lines[0]
    assert "Traceback" not in proc.stderr + proc.stdout


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    proc = run("table", "create", ok=False, cwd=tmp_path)
    assert proc.returncode == 2
    assert "Missing argument" in proc.stderr


def test_help_everywhere() -> None:
    """Every command and group explains itself and each of its options and arguments. The console script answers
    ``--help`` itself; the walk over the whole command tree runs in-process (44 commands, each a process start
    otherwise)."""
    import typer
    from typer.testing import CliRunner

    from lakehouse.cli import app

    assert "Usage:" in run("--help").stdout
    assert "AT (VERSION => 3)" in run("query", "--help").stdout

    def walk(command: Any, path: list[str]) -> Any:
        yield path, command
        for name, sub in (getattr(command, "commands", None) or {}).items():
            yield from walk(sub, [*path, name])

    commands = list(walk(typer.main.get_command(app), []))
    assert {"optimize", "vacuum", "orphans", "tier", "cost", "policy", "dedup", "pii", "erase", "audit"} <= {
        p[0] for p, _ in commands if len(p) == 1
    }
    runner = CliRunner()
    for path, command in commands:
        assert (command.help or "").strip(), f"{path}: no help text"
        undocumented = [p.name for p in command.params if not (getattr(p, "help", None) or "").strip()]
        assert not undocumented, f"{path}: no help for {undocumented}"
        shown = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "200"})
        assert shown.exit_code == 0 and "Usage:" in shown.output, (path, shown.output)
        assert " ".join(command.help.split()[:4]) in " ".join(shown.output.split()), path
        for param in command.params:
            if getattr(param, "opts", None) and param.opts[0].startswith("--"):
                assert param.opts[0] in shown.output, (path, param.opts[0])


def test_settings_precedence_file_env_argument(tmp_path: Path) -> None:
    (tmp_path / "lakehouse.toml").write_text(f'warehouse = "{tmp_path / "from_file"}"\n')
    assert run_json("init", cwd=tmp_path)["warehouse"] == str(tmp_path / "from_file")
    env = {"LAKEHOUSE_WAREHOUSE": str(tmp_path / "from_env")}
    assert run_json("init", cwd=tmp_path, env=env)["warehouse"] == str(tmp_path / "from_env")
    assert run_json("-w", str(tmp_path / "from_arg"), "init", cwd=tmp_path, env=env)["warehouse"] == str(
        tmp_path / "from_arg"
    )
    other = tmp_path / "other.toml"
    other.write_text('warehouse = "s3://"\n')
    proc = run("--config", str(other), "init", cwd=tmp_path, ok=False)
    assert proc.returncode == 1 and "invalid settings" in proc.stderr


@pytest.mark.slow
def test_demo_runs_end_to_end_and_again(tmp_path: Path) -> None:
    for _ in range(2):  # a second run starts over
        out = run("demo", "--batches", "3", "--rows", "40", "--autopilot-rounds", "1", cwd=tmp_path).stdout
        assert "demo.events_delta" in out and "demo.events_iceberg" in out
        assert "now: 120 rows in Delta, 120 in Iceberg" in out
        assert "time travel" in out and "via Kafka" in out
        assert "autopilot beside a live stream" in out and "optimize x" in out
        assert "(nothing lost, nothing doubled)" in out
        assert not re.search(r"\[/?(bold|green|red|yellow)\]", out), "Rich markup printed as text"
    with Lakehouse(load_settings(config_file=False, warehouse=str(tmp_path / "warehouse"))) as lh:
        assert sorted(str(r.name) for r in lh.list_tables()) == [
            "demo.events_delta",
            "demo.events_delta__quarantine",
            "demo.events_iceberg",
            "demo.events_iceberg__quarantine",
        ]
        for name in ("demo.events_delta__quarantine", "demo.events_iceberg__quarantine"):
            assert lh.table(name).row_count() == 3  # one malformed event per batch, once despite the re-run
        ids = {}
        for name in ("demo.events_delta", "demo.events_iceberg"):
            ids[name] = sorted(lh.table(name).scan(columns=["event_id"])["event_id"].to_pylist())
            assert len(ids[name]) > 120 and ids[name] == list(range(len(ids[name]))), "the stream's rows, each once"
        assert ids["demo.events_delta"] == ids["demo.events_iceberg"]


def test_more_mistakes_are_one_line_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    wh = str(tmp_path / "wh")
    cases: list[tuple[list[str], dict[str, str], str]] = [
        (
            ["-w", wh, "table", "create", "a.p", "-f", "iceberg", "-s", "id:int64", "--property", "format-version=7"],
            {},
            "cannot create Iceberg table",
        ),
        (["-w", wh, "query", "SELECT 1"], {"LAKEHOUSE_QUERY__MEMORY_LIMIT": "lots"}, "cannot start DuckDB"),
        (["-w", wh, "table", "history", "a.b", "--limit", "0"], {}, ""),
        (["-w", wh, "jobs", "--limit", "99999999999999999999999"], {}, ""),  # past SQLite's integers
        (["-w", wh, "audit", "--limit", "99999999999999999999999"], {}, ""),
        (["-w", wh, "audit", "--limit", "-1"], {}, ""),
        (["-w", wh, "query", "SELECT 1", "--max-rows", "0"], {}, ""),
        (
            ["-w", wh, "erase", "--where", "id ="],
            {},
            "cannot parse filter 'id =': Required keyword: 'expression' missing for EQ",
        ),
        (["-w", wh, "query", "SELECT :x"], {}, "cannot parse SQL: Required keyword: 'this' missing for Alias"),
        (["-w", wh, "optimize", "a.b", "--zorder", ""], {}, "--zorder '' holds an empty column name"),
        (["-w", wh, "dedup", "a.b", "--key", "id,,x"], {}, "--key 'id,,x' holds an empty column name"),
        (["-w", wh, "table", "create", "a.q", "-s", "id:int64", "--keys", " "], {}, "holds an empty column name"),
        (["-w", wh, "table", "list", "--format", "parquet"], {}, "tables are delta or iceberg"),  # was "no tables"
    ]
    ext = tmp_path / "ext" / "metadata"
    ext.mkdir(parents=True)
    (ext / "00000-abc.metadata.json").write_text("{}")
    cases.append(
        (["-w", wh, "table", "register", "a.x", str(tmp_path / "ext")], {}, "not valid Iceberg table metadata")
    )
    bad = tmp_path / "bad.toml"
    bad.write_text('warehouse = "./wh\n')
    cases.append((["-c", str(bad), "table", "list"], {}, "not valid TOML"))
    # an empty value is a mistake, not the default (vacuum --retain "" ran with 7d)
    run("-w", wh, "table", "create", "a.t", "-s", "id:int64")
    for option in (["vacuum", "a.t", "--retain", ""], ["orphans", "a.t", "--older-than", ""]):
        cases.append((["-w", wh, *option], {}, "invalid duration ''"))
    cases.append((["-w", wh, "expire-data", "a.t", "--older-than", ""], {}, "invalid duration ''"))
    cases.append((["-w", wh, "dedup", "a.t", "--key", "id", "--order", ""], {}, "unknown column(s) ''"))
    for args, env, message in cases:
        proc = run_here(*args, env=env, monkeypatch=monkeypatch)
        assert proc.returncode in (1, 2), (args, proc.stderr)
        assert "Traceback" not in proc.stderr, (args, proc.stderr)
        if proc.returncode == 1:
            assert len(proc.stderr.strip().splitlines()) == 1 and message in proc.stderr, (args, proc.stderr)


def test_query_answers_keep_every_column_and_stay_strict_json(tmp_path: Path, cli: InProcess) -> None:
    """Columns of one name are all there (renamed, saying from what), NaN and infinities are JSON's null (jq and
    other strict parsers refuse bare NaN), and a value without a Python form is a one-line error, in both the
    JSON and the table output."""
    wh = str(tmp_path / "wh")
    q = cli.json("-w", wh, "query", "SELECT 1 AS a, 2 AS a, 3 AS a_2, 'NaN'::DOUBLE AS n, -'inf'::DOUBLE AS i")
    assert q["rows"] == [{"a": 1, "a_3": 2, "a_2": 3, "n": None, "i": None}]
    assert [c["name"] for c in q["columns"]] == ["a", "a_3", "a_2", "n", "i"]
    assert q["columns"][1]["renamed_from"] == "a" and "renamed_from" not in q["columns"][2]
    raw = cli.run("-w", wh, "query", "SELECT 'NaN'::DOUBLE AS n, [1.5, 'inf'::DOUBLE] AS l", "--json").stdout
    assert json.loads(raw, parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}")) == {
        "columns": [{"name": "n", "type": "double"}, {"name": "l", "type": "list<l: double>"}],
        "rows": [{"n": None, "l": [1.5, None]}],
        "row_count": 1,
        "truncated": False,
    }
    typed = cli.json("-w", wh, "query", "SELECT '\\xFF\\x00'::BLOB AS b, INTERVAL 1 MONTH + INTERVAL 90 MINUTE AS i")
    assert typed["rows"] == [{"b": "/wA=", "i": "P1MT5400S"}], "binary as base64, intervals as ISO 8601"
    human = cli.run("-w", wh, "query", "SELECT 1 AS a, 2 AS a, '[bold]x[/bold] [/y] :-1:' AS m").stdout
    assert "a_2" in human and "[bold]x[/bold] [/y] :-1:" in human, "values are shown as they are, never as markup"
    named = cli.run("-w", wh, "table", "show", "a.b:-1:", ok=False).stderr
    assert "'a.b:-1:'" in named, "an error shows the name it was given, not an emoji"
    for extra in ([], ["--json"]):
        proc = cli.run("-w", wh, "query", "SELECT 1 AS ok, make_date(99999, 1, 1) AS far", *extra, ok=False)
        assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1 and "column(s) far" in proc.stderr, proc.stderr
        assert proc.stdout == ""


def test_retention_tiering_cost_and_policy_commands(tmp_path: Path, cli: InProcess) -> None:
    wh = str(tmp_path / "wh")
    with Lakehouse(load_settings(config_file=False, warehouse=wh)) as lh:
        from lakehouse.schema import parse_partitioning

        table = lh.create_table(
            "r.ev", schema=events(0, 1).schema, format="iceberg", partitioning=parse_partitioning("day(ts)")
        )
        for i in range(3):
            table.append(events(i * 50, 50))
        stray = Path(table.location, "data", "stray.parquet")
        stray.parent.mkdir(parents=True, exist_ok=True)
        stray.write_bytes(b"leftover")
    cli.run("-w", wh, "optimize", "r.ev", "--target-size", "8MB", "--commit-interval", "1h")
    # vacuum: a dry run by default; --apply deletes
    plan = cli.json("-w", wh, "vacuum", "r.ev", "--retain", "0s")
    assert plan["dry_run"] and plan["files_to_delete"] > 0 and plan["files_deleted"] == 0
    assert all(Path(f["path"]).exists() for f in plan["files"])
    human = cli.run("-w", wh, "vacuum", "r.ev", "--retain", "0s").stdout
    # the 3 appends; the compaction's partitions share one commit, the current version
    assert "dry run: nothing deleted" in human and "versions that stop being readable: 1-3" in human
    done = cli.json("-w", wh, "vacuum", "r.ev", "--retain", "0s", "--apply")
    assert done["files_deleted"] == plan["files_to_delete"] and not any(Path(f["path"]).exists() for f in plan["files"])
    proc = cli.run("-w", wh, "query", "SELECT count(*) FROM r.ev AT (VERSION => 1)", ok=False)
    assert proc.returncode == 1 and "removed by retention" in proc.stderr and len(proc.stderr.splitlines()) == 1
    history = cli.json("-w", wh, "table", "history", "r.ev")
    assert [h["expired"] for h in history] == [True] * 3 + [False], "expired versions listed (from the catalog), marked"
    # orphans: the stray file is new, so the default age (3d) keeps it
    assert cli.json("-w", wh, "orphans", "r.ev")["young_unreferenced"] == 1
    gone = cli.json("-w", wh, "orphans", "r.ev", "--older-than", "0s", "--apply")
    assert gone["files_deleted"] == 1 and not stray.exists()
    # policy drives tiering and expiry
    cli.run("-w", wh, "policy", "set", "r.ev", "tiering.warm_after=1d", "tiering.cold_after=2d")
    shown = cli.json("-w", wh, "policy", "show", "r.ev")
    assert shown["stored"] == {"tiering": {"warm_after": "1d", "cold_after": "2d"}}
    assert shown["effective"]["tiering"]["cold_after"] == "2d" and shown["effective"]["retention"]["retain"] == "7d"
    tiered = cli.json("-w", wh, "tier", "r.ev", "--apply")
    assert tiered["files_rewritten"] == 3 and tiered["method"] == "prefix"
    cost = cli.json("-w", wh, "cost", "r.ev")
    assert set(cost["tiers"]) == {"hot", "cold"} and sum(t["bytes"] for t in cost["tiers"].values()) == cost["bytes"]
    on_disk = sum(p.stat().st_size for p in Path(table.location).rglob("*") if p.is_file())
    assert cost["bytes"] == on_disk and cost["tiers"]["cold"]["storage_classes"] == {
        "GLACIER_IR": cost["tiers"]["cold"]["bytes"]
    }, "the cold prefix is priced as the cold tier's class"
    assert cli.json("-w", wh, "cost", "--all")["totals"]["bytes"] == cost["bytes"]
    cli.run("-w", wh, "policy", "unset", "r.ev", "tiering.warm_after", "tiering.cold_after")
    assert cli.json("-w", wh, "policy", "show", "r.ev")["stored"] == {}
    expired = cli.json("-w", wh, "expire-data", "r.ev", "--older-than", "1d", "--apply")
    assert expired["rows_deleted"] == 150 and expired["rows_after"] == 0
    # mistakes are one line
    for args, message in (
        (["policy", "set", "r.ev", "tiering.warm_after=soon"], "invalid duration"),
        (["policy", "set", "r.ev", "tiering.storage_classes.cold=GLACIER"], "restore before every read"),
        (["policy", "unset", "r.ev", "tiering.nothing"], "sets no tiering.nothing"),
        (["expire-data", "r.ev"], "no age given"),
        (["vacuum", "r.ev", "--retain", "forever"], "invalid duration"),
        (["vacuum", "r.ev", "--keep", "999"], "no readable version 999"),
        (["cost"], "give a table name or --all"),
    ):
        proc = cli.run("-w", wh, *args, ok=False)
        assert proc.returncode == 1 and proc.stderr.startswith("error: ") and message in proc.stderr, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1
    kinds = [j["kind"] for j in cli.json("-w", wh, "jobs", "r.ev")]
    assert {"vacuum", "orphans", "tier", "expire-data", "optimize"} <= set(kinds)


def test_dedup_pii_erase_and_audit_commands(tmp_path: Path, cli: InProcess) -> None:
    wh = str(tmp_path / "wh")
    env = {"LAKEHOUSE_GOVERNANCE__MASK_SECRET": "cli-secret"}
    with Lakehouse(load_settings(config_file=False, warehouse=wh)) as lh:
        table = lh.create_table("p.people", schema=events(0, 1).schema, format="delta")
        batch = events(0, 30)
        notes = [f"write to person{i}@example.com" if i % 3 == 0 else f"note {i}" for i in range(30)]
        table.append(batch.set_column(4, "note", pa.array(notes)))
        table.append(batch.slice(0, 5).set_column(4, "note", pa.array(notes[:5])))
    plan = cli.json("-w", wh, "dedup", "p.people", "--key", "id", "--order", "ts")
    assert plan["dry_run"] and plan["duplicate_rows"] == 5
    done = cli.json("-w", wh, "dedup", "p.people", "--key", "id", "--apply")
    assert done["rows_removed"] == 5 and done["rows_out"] == done["rows_in"] - 5
    scan = cli.json("-w", wh, "pii", "scan", "p.people")
    assert {(f["column"], f["kind"]) for f in scan["findings"]} == {("note", "email")}
    shown = cli.json("-w", wh, "table", "show", "p.people")
    assert shown["pii"][0]["column"] == "note" and "person" not in json.dumps(shown["pii"])
    masked = cli.json("-w", wh, "query", "SELECT note FROM p.people WHERE id = 0", "--masked")
    assert masked["rows"] == [{"note": "[REDACTED]"}]
    proc = cli.run("-w", wh, "pii", "mask", "p.people", "--column", "note", "--policy", "hash", "--apply", ok=False)
    assert proc.returncode == 1 and "mask_secret" in proc.stderr
    mask = cli.json(
        "-w", wh, "pii", "mask", "p.people", "--column", "note", "--policy", "hash", "--apply", "--purge", env=env
    )
    assert mask["files_rewritten"] >= 1 and mask["purge_report"]["versions_expired"] >= 1
    rows = cli.json("-w", wh, "query", "SELECT note FROM p.people WHERE id = 0", env=env)["rows"]
    assert rows[0]["note"].startswith("tok_")
    erased = cli.json("-w", wh, "erase", "--where", "id = 7", "--apply", env=env)
    assert (
        erased["tables"]["p.people"]["rows_deleted"] == 1 and erased["tables"]["p.people"]["rows_matching_after"] == 0
    )
    audit = cli.json("-w", wh, "audit", "p.people")
    actions = {a["action"] for a in audit}
    assert {"table.create", "dedup", "pii.scan", "pii.mask", "erase", "vacuum", "policy.set"} <= actions
    assert all(a["actor"].startswith("cli:") or a["actor"] == "cli" for a in audit if a["action"] != "table.create")
    assert "id = 7" not in json.dumps(cli.json("-w", wh, "audit"))


def test_serve_runs_the_api_on_loopback(tmp_path: Path) -> None:
    """`lakehouse serve` answers over real HTTP; keys made with `lakehouse keys create` work against it."""
    import socket
    import urllib.request

    wh = str(tmp_path / "wh")
    key = run_json("-w", wh, "keys", "create", "--name", "ops", "--role", "reader")["key"]
    assert [k["name"] for k in run_json("-w", wh, "keys", "list")] == ["ops"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([EXE, "-w", wh, "serve", "--port", str(port)], stderr=subprocess.PIPE, text=True)
    try:
        body = None
        for _ in range(100):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as r:
                    body = json.loads(r.read())
                break
            except OSError:
                time.sleep(0.2)
        assert body is not None and body["status"] == "ok"
        request = urllib.request.Request(f"http://127.0.0.1:{port}/tables", headers={"X-API-Key": key})
        with urllib.request.urlopen(request, timeout=5) as r:
            assert json.loads(r.read())["total"] == 0
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/tables", timeout=5)
            raise AssertionError("no key must be refused")
        except urllib.error.HTTPError as e:
            assert e.code == 401 and json.loads(e.read())["status"] == 401
    finally:
        server.terminate()
        server.wait(timeout=30)
    run("-w", wh, "keys", "revoke", key.split("_")[1])
    assert run_json("-w", wh, "keys", "list")[0]["revoked_at"]


def test_health_maintain_and_autopilot_commands(tmp_path: Path, cli: InProcess) -> None:
    wh = str(tmp_path / "wh")
    with Lakehouse(load_settings(config_file=False, warehouse=wh)) as lh:
        from lakehouse.schema import parse_partitioning

        table = lh.create_table(
            "h.ev", schema=events(0, 1).schema, format="delta", partitioning=parse_partitioning("day(ts)")
        )
        for i in range(6):
            table.append(events(i * 30, 30))
    report = cli.json("-w", wh, "health", "h.ev")
    assert report["score"] < 90 and "optimize" in report["fixes"]
    assert "small files" in cli.run("-w", wh, "health").stdout or "small_files" in cli.run("-w", wh, "health").stdout
    plan = cli.json("-w", wh, "maintain", "h.ev")
    assert plan["dry_run"] and [j["job"] for j in plan["jobs"]] == ["optimize", "tier"]  # March events are warm
    done = cli.json("-w", wh, "maintain", "--all", "--apply")
    assert done[0]["after"]["score"] > report["score"]
    out = cli.run("-w", wh, "autopilot", "--passes", "1", "--json").stdout
    entries = [json.loads(line) for line in out.splitlines() if line.strip()]
    assert entries and entries[0]["table"] == "h.ev" and entries[0]["jobs"] == [], "healthy: nothing to do"
    assert cli.json("-w", wh, "jobs", "h.ev")[0]["kind"] == "maintain"
    proc = cli.run("-w", wh, "maintain", ok=False)
    assert proc.returncode == 1 and "give a table name or --all" in proc.stderr
    # a table that cannot be measured: a bounded autopilot run and `cost --all` say so in their exit status, and
    # `cost --all` still reports the others
    cli.run("-w", wh, "table", "create", "h.broken", "--schema", "id:int64", "--format", "delta")
    with Lakehouse(load_settings(config_file=False, warehouse=wh)) as lh:
        lh.table("h.broken").append(pa.table({"id": pa.array([1], pa.int64())}))
        broken_log = Path(lh.table("h.broken").location, "_delta_log")
    for f in broken_log.glob("*.json"):
        f.write_text("not a delta log\n")
    proc = cli.run("-w", wh, "autopilot", "--passes", "1", "--json", ok=False)
    assert proc.returncode == 1 and "h.broken" in proc.stderr, (proc.stdout, proc.stderr)
    proc = cli.run("-w", wh, "cost", "--all", "--json", ok=False)
    costs = json.loads(proc.stdout)
    assert proc.returncode == 1 and [r["table"] for r in costs["tables"]] == ["h.ev"] and "h.broken" in costs["errors"]
    # locations and ages a script could get wrong: refused, not a local directory `gs:` or a 7-second window
    proc = cli.run("-w", wh, "table", "create", "h.gs", "--schema", "id:int64", "--location", "gs://bucket/x", ok=False)
    assert proc.returncode == 1 and "unsupported location scheme 'gs'" in proc.stderr
    assert not Path("gs:").exists() and not (tmp_path / "gs:").exists()
    proc = cli.run("-w", wh, "vacuum", "h.ev", "--retain", "7", ok=False)
    assert proc.returncode == 1 and "--retain 7 has no unit" in proc.stderr
    proc = cli.run("-w", wh, "policy", "set", "h.ev", "retention.retain=7", ok=False)
    assert proc.returncode == 1 and "has no unit" in proc.stderr


@pytest.mark.spark
@pytest.mark.slow
def test_spark_engine_through_the_cli(tmp_path: Path, cli: InProcess) -> None:
    """In this process, on its Spark session (the other in-process Spark tests' JVM, ``tests/scheduling.py``):
    `maintain --engine spark` compacts and expires on Spark; `query --engine spark` time-travels; the job history
    names the engine; a misplaced --spark-master is a one-line error."""
    wh = str(tmp_path / "wh")
    with Lakehouse(load_settings(config_file=False, warehouse=wh)) as lh:
        from lakehouse.schema import parse_partitioning
        from tests.conftest import EVENTS

        table = lh.create_table("s.events", schema=EVENTS, format="iceberg", partitioning=parse_partitioning("day(ts)"))
        for i in range(5):
            table.append(events(i * 100, 100))
    plan = cli.json("-w", wh, "optimize", "s.events", "--engine", "spark", "--dry-run")
    assert plan["dry_run"] and plan["engine"]["engine"] == "spark" and plan["plan"]["partitions_picked"] == 3
    done = cli.json("-w", wh, "optimize", "s.events", "--engine", "spark", "--spark-master", "local[2]")
    assert done["engine"] == {**done["engine"], "engine": "spark", "spark_master": "local[2]"}
    assert done["rows_in"] == done["rows_out"] == 500 and done["files_after"] == 3
    rows = cli.json("-w", wh, "query", "SELECT count(*) AS n FROM s.events AT (VERSION => 2)", "--engine", "spark")
    assert rows["rows"] == [{"n": 200}]
    jobs = cli.json("-w", wh, "jobs")
    assert any(j["kind"] == "optimize" and j["params"]["engine"] == "spark" for j in jobs)
    bad = cli.run("-w", wh, "vacuum", "s.events", "--spark-master", "local[2]", ok=False)
    assert bad.returncode != 0 and "--spark-master goes with --engine spark" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1


def test_serve_on_a_port_in_use_is_one_line(tmp_path: Path) -> None:
    """uvicorn printed six lines of its log and exited 3."""
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        proc = run("-w", str(tmp_path / "wh"), "serve", "--port", port, ok=False)
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        f"error: cannot listen on 127.0.0.1:{port}: Address already in use (pick another --port, or stop what "
        "listens there)"
    ]
