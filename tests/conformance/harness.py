"""Drives a table some other writer produced through lakehouse's public surface (the CLI's ``main`` in this
process, and the ``Lakehouse`` facade) and checks every reading against the writer's own.

A :class:`Foreign` is what a writer fixture hands over: where the table is, what its writer reads from it, and
which columns the maintenance steps use. :func:`run_step` registers it in a fresh catalog and runs one step.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from lakehouse.config import load_settings
from lakehouse.core import Lakehouse
from tests.conformance.fingerprint import assert_same_rows, distinct

TABLE = "conf.foreign"
STEPS = ("read", "show", "optimize", "zorder", "dedup", "vacuum")


@dataclass
class Foreign:
    """A table written by something other than lakehouse, with its writer's own reading of it."""

    location: str
    format: str
    expected: pa.Table
    """The writer's own reading (or, for hand-written logs, exactly what was put in)."""
    zorder: tuple[str, ...] = ()
    """Two columns to Z-order by, one of them a string column holding values shorter than 4 characters."""
    key: str | None = None
    """A key column for dedup; ``expected`` holds exact duplicate rows of some keys."""
    reread: Callable[[str], pa.Table] | None = None
    """The writer's own reader, given the table's current metadata (Iceberg: a metadata JSON path; Delta: the
    location) after lakehouse changed it."""
    notes: list[str] = field(default_factory=list)


@dataclass
class CliResult:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)

    def line(self) -> str:
        return " ".join((self.err or self.out).split())


class Cli:
    """``lakehouse`` CLI calls in this process, all on one warehouse and catalog."""

    def __init__(self, root: Path) -> None:
        self.warehouse = str(root / "wh")
        self.catalog_url = f"sqlite:///{root}/catalog.db"

    def __call__(self, *args: str) -> CliResult:
        from lakehouse import cli

        argv = ["lakehouse", "--warehouse", self.warehouse, "--catalog-url", self.catalog_url, *args]
        out, err = io.StringIO(), io.StringIO()
        code = 0
        old = sys.argv
        sys.argv = argv
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                cli.main()
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        finally:
            sys.argv = old
        return CliResult(code, out.getvalue(), err.getvalue())

    def lakehouse(self) -> Lakehouse:
        return Lakehouse(load_settings(config_file=False, warehouse=self.warehouse, catalog_url=self.catalog_url))


def duckdb_delta(location: str) -> pa.Table:
    """A Delta table read by DuckDB's delta extension (delta-kernel) directly, without lakehouse: it applies
    deletion vectors and reads INT96 and column-mapped files (but not column-mapped partition values)."""
    import glob

    import duckdb
    import duckdb_extension_delta

    ext = glob.glob(os.path.dirname(duckdb_extension_delta.__file__) + "/**/delta.duckdb_extension", recursive=True)
    con = duckdb.connect(config={"autoinstall_known_extensions": False})
    try:
        con.execute(f"LOAD '{ext[0]}'")
        quoted = location.replace("'", "''")
        return con.execute(f"SELECT * FROM delta_scan('{quoted}')").to_arrow_table()
    finally:
        con.close()


def tree_digest(root: str) -> dict[str, str]:
    """Every file under ``root`` with a digest of its bytes (to prove a refused job changed nothing)."""
    out = {}
    for dirpath, _, files in os.walk(root):
        for name in files:
            path = os.path.join(dirpath, name)
            with open(path, "rb") as fh:
                out[os.path.relpath(path, root)] = hashlib.sha256(fh.read()).hexdigest()
    return out


def _sql_text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def check_reads(lh: Lakehouse, expected: pa.Table, when: str, name: str = TABLE, *, refuse: Sequence[str] = ()) -> None:
    """Each read path returns exactly ``expected``; with ``refuse``, a read may instead be refused with an error
    naming one of those (a reader feature lakehouse does not support)."""
    from lakehouse.errors import LakehouseError

    readers: dict[str, Callable[[], pa.Table]] = {
        "scan": lambda: lh.table(name).scan(),
        "query": lambda: lh.query(f"SELECT * FROM {name}", max_rows=10_000_000).table,
    }
    wanted = dict.fromkeys(readers, expected)
    if "id" in expected.column_names and pa.types.is_integer(expected.schema.field("id").type) and expected.num_rows:
        # a WHERE clause the engine may plan files for (lakehouse.sql.planned): files left out by statistics
        # must be files without such rows
        ids = sorted(i for i in expected["id"].to_pylist() if i is not None)
        cut = ids[len(ids) // 2]
        readers["query where"] = lambda: lh.query(f"SELECT * FROM {name} WHERE id >= {cut}", max_rows=10_000_000).table
        wanted["query where"] = expected.filter(pc.greater_equal(expected["id"], cut))
    strings = [f.name for f in expected.schema if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)]
    # (a literal cannot hold NUL in DuckDB's SQL)
    values = sorted(v for v in expected[strings[0]].to_pylist() if v is not None and "\0" not in v) if strings else []
    if values:
        # and one by a string column's bounds (Delta's shorter than 32 characters; Iceberg's, truncated or not)
        column, cut_text = strings[0], values[len(values) // 2]
        sql = f"SELECT * FROM {name} WHERE " + '"' + column.replace('"', '""') + '" >= ' + _sql_text(cut_text)
        readers["query where string"] = lambda: lh.query(sql, max_rows=10_000_000).table
        wanted["query where string"] = expected.filter(pc.greater_equal(expected[column], cut_text))
    for path, read in readers.items():
        try:
            table = read()
        except LakehouseError as e:
            if refuse and any(n.lower() in str(e).lower() for n in refuse):
                continue
            raise
        assert_same_rows(table, wanted[path], f"{when}: lakehouse {path}")


def register(cli: Cli, foreign: Foreign) -> None:
    r = cli("table", "register", TABLE, foreign.location, "--format", foreign.format)
    assert r.code == 0, f"register failed: {r.line()}"


def assert_refused(r: CliResult, names: Sequence[str], what: str) -> None:
    """A clean refusal: exit 1 with one line naming one of ``names`` (a table feature, a file format)."""
    assert r.code == 1, f"{what}: expected a refusal naming {names[0]}, got exit {r.code}: {r.line()}"
    text = r.line().lower()
    assert any(n.lower() in text for n in names), f"{what}: the refusal does not name {names[0]}: {r.line()}"
    assert "concurrent commit" not in text, f"{what}: an unsupported feature reported as a conflict: {r.line()}"


def run_step(cli: Cli, foreign: Foreign, step: str, *, refuse: Sequence[str] = ()) -> None:
    """Register ``foreign`` and run one step on it, checking the contents afterwards.

    ``read`` and ``show`` check lakehouse's reads and catalog views; the jobs (``optimize``, ``zorder``, ``dedup``,
    ``vacuum``) check the table's contents after the job first with the writer's own reader (what is on disk),
    then with lakehouse's reads.

    ``refuse``: names of which one must appear in a refusal where lakehouse declines the table (a feature it
    does not support); a declined step must leave the table's files and the catalog unchanged. Without it
    every step must succeed."""
    if not _register(cli, foreign, refuse):
        return
    with cli.lakehouse() as lh:
        _step(cli, lh, foreign, step, foreign.expected, refuse=refuse)


def run_steps(
    cli: Cli,
    foreign: Foreign,
    steps: Sequence[str] = STEPS,
    *,
    refuse: Sequence[str] = (),
    xfail: Mapping[str, str] | None = None,
) -> list[str]:
    """Register ``foreign`` once and run ``steps`` in order on the same table, as a user would: each step is
    checked as :func:`run_step` checks it, against the writer's reading (without its exact duplicates once
    dedup ran). A failure names its step and the steps before it. A step in ``xfail`` (``"register"`` too) is a
    known defect: it must fail (strict), and the run ends there as an expected failure. Returns the steps that
    were refused by name (allowed by ``refuse``)."""
    xfail = dict(xfail or {})
    done: list[str] = []
    refused: list[str] = []

    def attempt(step: str, fn: Callable[[], Any]) -> Any:
        try:
            out = fn()
        except Exception as e:
            if step in xfail:
                pytest.xfail(f"{step} (after {', '.join(done) or 'nothing'}): {xfail[step]}")
            after = f" (after {', '.join(done)})" if done else ""
            raise AssertionError(f"step {step}{after} failed: {e}") from e
        if step in xfail:
            pytest.fail(f"[XPASS(strict)] step {step} passed; its defect is fixed, remove the mark: {xfail[step]}")
        done.append(step)
        return out

    if not attempt("register", lambda: _register(cli, foreign, refuse)):
        return ["register"]
    expected = foreign.expected
    with cli.lakehouse() as lh:
        for step in steps:
            before = expected
            expected = attempt(step, lambda step=step, before=before: _step(cli, lh, foreign, step, before, refuse))
            if expected is None:
                refused.append(step)
                expected = before
    return refused


def _register(cli: Cli, foreign: Foreign, refuse: Sequence[str]) -> bool:
    """Register ``foreign``; False when it was refused by name as ``refuse`` allows (checked: nothing changed)."""
    before_files = tree_digest(foreign.location)
    r = cli("table", "register", TABLE, foreign.location, "--format", foreign.format)
    if r.code != 0 and refuse:
        assert_refused(r, refuse, "register")
        assert tree_digest(foreign.location) == before_files, "a refused register changed the table's files"
        listed = cli("table", "list", "--json")
        assert listed.code == 0, f"table list fails after a refused register: {listed.line()}"
        assert listed.json() == [], "a refused register left a catalog entry"
        return False
    assert r.code == 0, f"register failed: {r.line()}"
    return True


def _step(
    cli: Cli, lh: Lakehouse, foreign: Foreign, step: str, expected: pa.Table, refuse: Sequence[str]
) -> pa.Table | None:
    """Run one step on the registered table that holds ``expected``; returns what it holds afterwards (None: the
    step was refused by name, and changed nothing)."""
    if step == "read":
        check_reads(lh, expected, "after register", refuse=refuse)
        return expected
    if step == "show":
        _show(cli, expected)
        return expected
    if step == "vacuum":
        _vacuum(cli, lh, foreign, expected)
        return expected
    args = {
        "optimize": ["optimize", TABLE, "--json"],
        "zorder": ["optimize", TABLE, "--zorder", ",".join(foreign.zorder), "--json"],
        "dedup": ["dedup", TABLE, "--key", foreign.key or "", "--apply", "--json"],
    }[step]
    snapshot = tree_digest(foreign.location)
    r = cli(*args)
    if refuse and r.code != 0:
        assert_refused(r, refuse, step)
        assert tree_digest(foreign.location) == snapshot, f"a refused {step} changed the table's files"
        listed = cli("table", "list", "--json")
        assert listed.code == 0 and len(listed.json()) == 1, listed.line()
        return None
    assert r.code == 0, f"{step} failed: {r.line()}"
    result = r.json()
    if step in ("optimize", "zorder"):
        assert result["partitions"], f"{step} picked no partition: {result['plan']}"
        assert result["rows_in"] == result["rows_out"], result
        if step == "optimize":
            assert result["files_before"] > result["files_after"], f"optimize rewrote nothing: {result}"
    if step == "dedup":
        before = expected
        expected = distinct(before)
        removed = before.num_rows - expected.num_rows
        assert removed > 0, "fixture error: no duplicates to remove"
        assert result["status"] == "committed" and result["rows_removed"] == removed, result
    if foreign.reread is not None:
        reread = foreign.reread(_current_metadata(lh, foreign))
        assert_same_rows(reread, expected, f"after {step}: the writer's own reader")
    check_reads(lh, expected, f"after {step}")
    again = cli("table", "show", TABLE, "--json")
    assert again.code == 0, again.line()
    assert again.json()["rows"] == expected.num_rows, f"table show rows after {step}: {again.json()['rows']}"
    return expected


def _current_metadata(lh: Lakehouse, foreign: Foreign) -> str:
    table = lh.table(TABLE)
    if foreign.format == "iceberg":
        return str(table.metadata_location)  # type: ignore[attr-defined]
    return foreign.location


def _show(cli: Cli, expected: pa.Table) -> None:
    r = cli("table", "show", TABLE, "--json")
    assert r.code == 0, f"table show failed: {r.line()}"
    info = r.json()
    assert info["rows"] == expected.num_rows, (
        f"table show reports rows={info['rows']}, the table holds {expected.num_rows}"
    )
    listed = cli("table", "list", "--json")
    assert listed.code == 0, listed.line()
    assert [t["name"] for t in listed.json()] == [TABLE]
    files = cli("table", "files", TABLE, "--json")
    assert files.code == 0, files.line()
    health = cli("health", TABLE, "--json")
    assert health.code == 0, f"health failed: {health.line()}"


def check_version_paths(lh: Lakehouse, name: str) -> None:
    """An Iceberg table's files of every version (what orphan detection keeps) as DuckDB's Avro reader decodes
    its manifest lists and manifests equal pyiceberg's own reading; and DuckDB decoded every one of them (none
    left to pyiceberg because DuckDB could not read it or read other counts than its list records)."""
    from unittest import mock

    from lakehouse.tables import iceberg

    def forget() -> None:
        iceberg._manifest_paths.clear()
        iceberg._manifest_lists.clear()
        iceberg._ENTRIES._held.clear()
        iceberg._ENTRIES._size = 0

    table = lh.table(name)
    if not isinstance(table, iceberg.IcebergAdapter):
        return
    forget()
    native = table._table
    snaps = list(native.metadata.snapshots)
    iceberg._read_manifest_lists(table.ctx, native.io, snaps)
    manifests = {iceberg._plain_location(m.manifest_path) for s in snaps for m in s.manifests(native.io)}
    undecoded = sorted(m for m in manifests if iceberg._manifest_paths.get(m) is None)
    assert not undecoded, f"DuckDB did not decode these manifests: {undecoded[:3]}"
    ours = table.version_paths(None)
    forget()
    with mock.patch.object(iceberg, "_read_manifest_lists", lambda *a, **k: None):
        theirs = lh.table(name).version_paths(None)
    assert ours == theirs, f"files of every version differ from pyiceberg's: {sorted(ours ^ theirs)[:3]}"


def check_file_list(lh: Lakehouse, name: str) -> None:
    """An Iceberg table's file list read from its manifests' live entries (the listing without pyiceberg's
    planning; decoded by DuckDB's Avro reader where the partition values map back) equals the one made from
    pyiceberg's plan, file by file: sizes, rows, partition values, statistics."""
    from unittest import mock

    from lakehouse.maintenance.planner import partition_key
    from lakehouse.tables import iceberg

    def listing() -> list[tuple[Any, ...]]:
        iceberg._recent_files.clear()
        iceberg._recent_plans.clear()
        return sorted(
            (f.path, f.size_bytes, f.row_count, partition_key(f.partition), repr(sorted(f.stats.items())))
            for f in lh.table(name).files()
        )

    if not isinstance(lh.table(name), iceberg.IcebergAdapter):
        return
    read = []
    real = iceberg.IcebergAdapter._live_data_files
    undecoded: list[str] = []
    decode = iceberg._decoded_data_files

    def counting(self: Any, snapshot_id: Any) -> Any:
        read.append(out := real(self, snapshot_id))
        return out

    def decoding(ctx: Any, table: Any, manifests: Any, *args: Any, **kwargs: Any) -> Any:
        """On S3, DuckDB decodes every manifest of a spec whose partition values it maps back (none left to
        pyiceberg silently): those of other specs are pyiceberg's, and the lists must be equal either way."""
        out = decode(ctx, table, manifests, *args, **kwargs)
        mapped = iceberg._partition_readers(table, {m.partition_spec_id for m in manifests})
        undecoded.extend(
            m.manifest_path
            for m in manifests
            if m.partition_spec_id in mapped
            and m.added_files_count is not None
            and iceberg.StorageContext.is_s3(m.manifest_path)
            and iceberg._plain_location(m.manifest_path) not in out
        )
        return out

    with (
        mock.patch.object(iceberg.IcebergAdapter, "_live_data_files", counting),
        mock.patch.object(iceberg, "_decoded_data_files", decoding),
    ):
        ours = listing()
    with mock.patch.object(iceberg.IcebergAdapter, "_live_data_files", lambda self, snapshot_id: None):
        planned = listing()
    assert ours == planned, f"file lists differ: {sorted(set(ours) ^ set(planned))[:2]}"
    assert read, "the listing was not asked for"
    assert not undecoded, f"DuckDB did not decode these manifests: {undecoded[:3]}"
    check_decoded_entries(lh, name)


def check_decoded_entries(lh: Lakehouse, name: str) -> None:
    """DuckDB's decoding of the current snapshot's manifests (local ones too, which file lists leave to
    pyiceberg) equals pyiceberg's reading, entry by entry: path, size, rows, partition in Iceberg's internal form,
    bounds and null counts; and every manifest of a spec it maps back, with counts in its list, is decoded."""
    from lakehouse.tables import iceberg

    table = lh.table(name)
    if not isinstance(table, iceberg.IcebergAdapter):
        return
    native = table._table
    snap = native.current_snapshot()
    if snap is None:
        return
    manifests = [m for m in snap.manifests(native.io) if m.content == 0]
    decoded = iceberg._decoded_data_files(table.ctx, native, manifests, local=True)
    mapped = iceberg._partition_readers(native, {m.partition_spec_id for m in manifests})
    for m in manifests:
        path = iceberg._plain_location(m.manifest_path)
        if path not in decoded:
            assert m.partition_spec_id not in mapped or m.added_files_count is None, f"not decoded: {path}"
            continue
        theirs = sorted(
            (
                e.data_file.file_path,
                e.data_file.file_size_in_bytes,
                e.data_file.record_count,
                tuple(e.data_file.partition),
                sorted((e.data_file.lower_bounds or {}).items()),
                sorted((e.data_file.upper_bounds or {}).items()),
                sorted((e.data_file.null_value_counts or {}).items()),
            )
            for e in m.fetch_manifest_entry(native.io, discard_deleted=True)
            if e.data_file.content == 0
        )
        ours = sorted(
            (f.file_path, f.file_size_in_bytes, f.record_count, f.partition, sorted(f.lower_bounds.items()),
             sorted(f.upper_bounds.items()), sorted(f.null_value_counts.items()))
            for f in decoded[path]
        )  # fmt: skip
        assert ours == theirs, f"DuckDB decoded {path} otherwise than pyiceberg: {ours[:1]} / {theirs[:1]}"


def _vacuum(cli: Cli, lh: Lakehouse, foreign: Foreign, expected: pa.Table) -> None:
    check_version_paths(lh, TABLE)
    check_file_list(lh, TABLE)
    before = tree_digest(foreign.location)
    r = cli("vacuum", TABLE, "--retain", "0s", "--json")
    assert r.code == 0, f"vacuum dry run failed: {r.line()}"
    plan = r.json()
    assert tree_digest(foreign.location) == before, "a vacuum dry run changed files"
    live = {f.path for f in lh.table(TABLE).files()}
    doomed = {f["path"] for f in plan["files"]}
    assert not (live & doomed), f"vacuum would delete live files: {sorted(live & doomed)[:3]}"
    r = cli("vacuum", TABLE, "--retain", "0s", "--apply", "--json")
    assert r.code == 0, f"vacuum --apply failed: {r.line()}"
    if foreign.reread is not None:
        reread = foreign.reread(_current_metadata(lh, foreign))
        assert_same_rows(reread, expected, "after vacuum --apply --retain 0s: the writer's own reader")
    check_reads(lh, expected, "after vacuum --apply --retain 0s")
