"""Compaction beside a fast writer: rewrites land while the writer runs, a lost race costs a rebase (never a
second rewrite), a conflict costs one partition (never the whole job), and waiting is bounded.

- A writer appends every 0.2 s while ``optimize`` runs in a loop (local storage, and the S3 server): at least
  80 % of the partition rewrites land while it runs, nothing is lost or doubled (row multisets compared), and no
  file a rewrite wrote is left unreferenced. ``LAKEHOUSE_TEST_CONTENTION_SECONDS`` sets how long (default 12 s;
  ``benchmarks/compaction_contention_bench.py`` runs the full 60 s and other intervals).
- Deterministic races: an append is committed right before each of a rewrite's first attempts, so they lose
  for real; the rewrite rebases and lands without writing its files again. With the writer never letting it
  win, the job gives up after ``commit_timeout``, says why and leaves no file behind.
- A concurrent delete in one partition aborts only that partition's rewrite: the others commit.
"""

from __future__ import annotations

import collections
import datetime as dt
import json
import multiprocessing
import os
import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from lakehouse.core import Lakehouse
from lakehouse.maintenance import compaction
from lakehouse.maintenance.compaction import optimize
from lakehouse.maintenance.planner import CompactionOptions
from lakehouse.schema import parse_partitioning
from lakehouse.storage import list_files
from tests.conftest import EVENTS, FORMATS, events

pytestmark = pytest.mark.slow

OPTIONS = CompactionOptions(target_file_size=64 * 1024 * 1024)
PER_PARTITION = CompactionOptions(target_file_size=64 * 1024 * 1024, commit_interval=0)
"""Every partition commits on its own: what happens to one partition's commit, partition by partition."""
SHARED = CompactionOptions(target_file_size=64 * 1024 * 1024, commit_interval=3600)
"""Every partition of the job in one commit, however slow the machine."""
SECONDS = float(os.environ.get("LAKEHOUSE_TEST_CONTENTION_SECONDS", "12"))


def _table(lh: Lakehouse, fmt: str, batches: int = 3) -> tuple[Any, list[int]]:
    table = lh.create_table("c.events", schema=EVENTS, format=fmt, partitioning=parse_partitioning("day(ts)"))
    ids: list[int] = []
    for i in range(batches):
        batch = events(i * 30, 30)
        table.append(batch)
        ids.extend(batch.column("id").to_pylist())
    return table, ids


def _ids(lh: Lakehouse) -> collections.Counter[int]:
    return collections.Counter(lh.table("c.events").scan(columns=["id"]).column("id").to_pylist())


def _rewrite_commits(lh: Lakehouse) -> list[Any]:
    return [s for s in lh.table("c.events").snapshots() if s.summary.get("lakehouse.operation") == "compact"]


def _unreferenced(lh: Lakehouse) -> list[str]:
    """Data files (and Iceberg manifests) under the table location that no version references."""
    table = lh.table("c.events")
    referenced = table.version_paths()
    found = [f.path for f in list_files(table.location, lh.ctx) if f.path.endswith((".parquet", ".avro"))]
    return sorted(p for p in found if p not in referenced and "/_delta_log/" not in p)


def _write_every(settings: Any, interval: float, ready: Any, stop: Any, out: str) -> None:
    """The writer, in a process of its own (as another engine would be): a batch appended every ``interval``
    seconds (at once when the previous append took longer), until ``stop``; what it appended and when go to
    ``out`` as JSON."""
    done: dict[str, Any] = {"ids": [], "times": [], "error": None}
    try:
        with Lakehouse(settings) as lh:
            table = lh.table("c.events")
            started, n = time.monotonic(), 0
            while not stop.is_set():
                batch = events(100_000 + n * 20, 20)
                table.append(batch)
                done["ids"].extend(batch.column("id").to_pylist())
                done["times"].append(time.monotonic())
                ready.set()
                n += 1
                stop.wait(max(0.0, started + n * interval - time.monotonic()))
    except BaseException as e:  # reported by the test
        done["error"] = repr(e)
    finally:
        ready.set()
        with open(out, "w") as fh:
            json.dump(done, fh)


@pytest.mark.parametrize("fmt", FORMATS)
def test_rewrites_land_beside_a_writer_every_0_2_s(
    make_lakehouse: Callable[..., Lakehouse], fmt: str, tmp_path: Any
) -> None:
    lh = make_lakehouse()
    _, appended = _table(lh, fmt)
    spawn = multiprocessing.get_context("spawn")
    ready, stop = spawn.Event(), spawn.Event()
    out = str(tmp_path / "writer.json")
    writer = spawn.Process(target=_write_every, args=(lh.settings, 0.2, ready, stop, out))
    writer.start()
    landed = attempted = 0
    waits: list[float] = []
    try:
        assert ready.wait(60), "the writer did not start"
        deadline = time.monotonic() + SECONDS
        while time.monotonic() < deadline and writer.is_alive():
            result = optimize(lh, "c.events", OPTIONS)
            assert writer.is_alive(), "every rewrite counted ran while the writer ran"
            for p in result.partitions:
                attempted += 1
                landed += p.status == "committed"
                waits.append(p.commit_wait_seconds)
    finally:
        stop.set()
        writer.join(timeout=60)
    with open(out) as fh:
        wrote = json.load(fh)
    assert wrote["error"] is None, wrote["error"]
    commits = wrote["times"]
    span = commits[-1] - commits[0]
    print(f"{fmt}: {landed}/{attempted} rewrites landed; writer: {len(commits)} commits in {span:.1f} s")
    assert len(commits) >= 10 and span >= SECONDS * 0.8, f"the writer committed {len(commits)} times in {span:.1f} s"
    assert attempted >= 5, f"only {attempted} rewrites ran"
    assert landed >= 0.8 * attempted, f"{landed} of {attempted} rewrites landed while the writer ran"
    assert max(waits) < lh.settings.commit_timeout_seconds
    assert _ids(lh) == collections.Counter(appended + wrote["ids"]), "every row exactly once"
    assert _unreferenced(lh) == [], "a rewrite left files behind"
    jobs = [j for j in lh.jobs("c.events", limit=1000) if j.kind == "optimize"]
    assert len(jobs) >= 2 and all(j.state == "committed" for j in jobs if j.metrics.get("version") is not None)


class _LosingRaces:
    """Makes a rewrite's commit attempts lose, for real: right before each of its first ``losses`` attempts a
    batch is appended through another table object, so the attempt commits on a stale head and is refused by the
    catalog (Iceberg) or the log (Delta)."""

    def __init__(self, lh: Lakehouse, monkeypatch: pytest.MonkeyPatch, fmt: str, losses: float) -> None:
        self.lh, self.losses, self.lost = lh, losses, 0
        self.appended: list[int] = []
        self.other = lh.table("c.events")
        if fmt == "iceberg":
            from pyiceberg.table import Table
            from pyiceberg.table.update import AddSnapshotUpdate

            original = Table._do_commit

            def do_commit(table: Any, updates: Any, requirements: Any) -> None:
                if any(
                    isinstance(u, AddSnapshotUpdate) and u.snapshot.summary.get("lakehouse.operation") == "compact"
                    for u in updates
                ):
                    self.interfere()
                original(table, updates=updates, requirements=requirements)

            monkeypatch.setattr(Table, "_do_commit", do_commit)
        else:
            from deltalake import DeltaTable

            original_tx = DeltaTable.create_write_transaction

            def create_write_transaction(dt_: Any, actions: Any, *a: Any, **kw: Any) -> None:
                props = kw.get("commit_properties")
                if props is not None and (props.custom_metadata or {}).get("lakehouse.operation") == "compact":
                    self.interfere()
                original_tx(dt_, actions, *a, **kw)

            monkeypatch.setattr(DeltaTable, "create_write_transaction", create_write_transaction)

    def interfere(self) -> None:
        if self.lost >= self.losses:
            return
        self.lost += 1
        batch = events(500_000 + len(self.appended), 5)
        self.other.append(batch)
        self.appended.extend(batch.column("id").to_pylist())


@pytest.fixture
def local_lh(tmp_path: Any) -> Iterator[Callable[..., Lakehouse]]:
    from lakehouse.config import load_settings

    made: list[Lakehouse] = []

    def make(**settings: Any) -> Lakehouse:
        lh = Lakehouse(load_settings(config_file=False, warehouse=str(tmp_path / "wh"), **settings))
        made.append(lh)
        return lh

    yield make
    for lh in made:
        lh.close()


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_rewrite_that_loses_rebases_onto_the_winners_without_rewriting(
    local_lh: Callable[..., Lakehouse], fmt: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    lh = local_lh()
    _, ids = _table(lh, fmt)
    rewrites: list[list[str]] = []
    original = compaction.rewrite_files

    def counted(*a: Any, **kw: Any) -> list[str]:
        rewrites.append(list(a[2]))
        return original(*a, **kw)

    monkeypatch.setattr(compaction, "rewrite_files", counted)
    races = _LosingRaces(lh, monkeypatch, fmt, losses=4)
    result = optimize(lh, "c.events", PER_PARTITION)
    assert [p.status for p in result.partitions] == ["committed"] * 3, result.as_dict()
    assert races.lost == 4
    assert result.partitions[0].commit_attempts == 5, "each lost attempt was retried on the new head"
    assert len(rewrites) == 3, "each partition's files were written once, however often its commit lost"
    assert _ids(lh) == collections.Counter(ids + races.appended)
    assert _unreferenced(lh) == []
    if fmt == "iceberg":
        assert [s.operation for s in _rewrite_commits(lh)] == ["replace"] * 3


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_rewrite_gives_up_after_the_commit_timeout_and_leaves_nothing(
    local_lh: Callable[..., Lakehouse], fmt: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    lh = local_lh(commit_timeout="1s")
    _, ids = _table(lh, fmt)
    races = _LosingRaces(lh, monkeypatch, fmt, losses=float("inf"))
    started = time.monotonic()
    result = optimize(lh, "c.events", PER_PARTITION)
    took = time.monotonic() - started
    assert races.lost >= 3 and took < 30
    first, *rest = result.partitions
    assert first.status == "aborted" and "gave up after 1." in (first.error or ""), first.error
    assert first.commit_attempts == 0 and first.bytes_discarded > 0
    assert rest and all(p.status == "aborted" and "not rewritten: the job gave up" in (p.error or "") for p in rest)
    job = next(j for j in lh.jobs("c.events") if j.id == result.job_id)
    assert job.state == "failed" and "gave up" in (job.error or "")
    assert _ids(lh) == collections.Counter(ids + races.appended), "nothing committed, the winners' rows kept"
    assert _unreferenced(lh) == [], "what the rewrite wrote is deleted"
    assert not any("/lh-" in f.path for f in lh.table("c.events").files()), "no rewritten file is live"
    assert not _rewrite_commits(lh)


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_conflict_in_one_partition_aborts_only_that_partition(
    local_lh: Callable[..., Lakehouse], fmt: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    lh = local_lh()
    table, ids = _table(lh, fmt)
    day_of = {f.path: f.partition["ts_day"] for f in table.files()}
    other = lh.table("c.events")
    cls = type(table)
    original = cls.replace_files
    calls = []

    def replace_files(self: Any, **kw: Any) -> Any:
        calls.append(kw)
        if len(calls) == 2:  # the second partition's rewrite: a concurrent delete takes one of its rows first
            day = dt.date.fromisoformat(str(day_of[kw["remove"][0]]))
            rows = other.scan(filter=f"ts >= '{day}' AND ts < '{day + dt.timedelta(days=1)}'", columns=["id"])
            victim = rows.column("id")[0].as_py()
            other.delete_rows(f"id = {victim}")
            ids.remove(victim)
        return original(self, **kw)

    monkeypatch.setattr(cls, "replace_files", replace_files)
    result = optimize(lh, "c.events", PER_PARTITION)
    assert [p.status for p in result.partitions] == ["committed", "aborted", "committed"], result.as_dict()
    aborted = result.partitions[1]
    assert re.search("concurrent|another commit", aborted.error or "") and aborted.bytes_discarded > 0
    job = next(j for j in lh.jobs("c.events") if j.id == result.job_id)
    assert job.state == "committed" and re.search("concurrent|another commit", job.error or "")
    assert [p["status"] for p in job.metrics["partitions"]] == ["committed", "aborted", "committed"]
    assert _ids(lh) == collections.Counter(ids)
    assert _unreferenced(lh) == []
    # the aborted partition is compacted by the next run
    again = optimize(lh, "c.events", OPTIONS)
    assert [p.status for p in again.partitions] == ["committed"] and _ids(lh) == collections.Counter(ids)


def test_optimize_cli_commit_timeout(local_lh: Callable[..., Lakehouse], monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from lakehouse.cli import app

    lh = local_lh()
    _, ids = _table(lh, "iceberg")
    wh = lh.settings.warehouse
    runner = CliRunner()
    bad = runner.invoke(app, ["-w", wh, "optimize", "c.events", "--commit-timeout", "soon"])
    assert "invalid duration 'soon'" in str(bad.exception), bad.output
    races = _LosingRaces(lh, monkeypatch, "iceberg", losses=float("inf"))
    done = runner.invoke(app, ["-w", wh, "optimize", "c.events", "--commit-timeout", "0.5s", "--commit-interval", "0s"])
    assert done.exit_code == 0, done.output
    # the first partition's own wait: at least the timeout, then the loss that ends it (0.5-0.6 s and more on a
    # loaded machine); the partitions after it are not tried
    waited = re.search(r"aborted: rewrite of c\.events gave up after (\d+\.\d) s", done.output)
    assert waited and float(waited.group(1)) >= 0.5, done.output
    assert done.output.count("not rewritten: the job gave up after its commits waited 0.5 s") == 2, done.output
    assert races.lost >= 2
    monkeypatch.undo()
    assert _ids(lh) == collections.Counter(ids + races.appended)
    again = runner.invoke(app, ["-w", wh, "optimize", "c.events", "--json"])
    assert again.exit_code == 0, again.output
    assert [p["status"] for p in json.loads(again.stdout)["partitions"]] == ["committed"] * 3


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_failure_after_some_partitions_committed_is_recorded_as_it_is(
    local_lh: Callable[..., Lakehouse], fmt: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lakehouse.errors import StorageError

    lh = local_lh()
    _, ids = _table(lh, fmt)
    original = compaction.rewrite_files
    calls: list[int] = []

    def failing_second(*a: Any, **kw: Any) -> list[str]:
        calls.append(1)
        if len(calls) == 2:
            raise StorageError("simulated storage failure while rewriting")
        return original(*a, **kw)

    monkeypatch.setattr(compaction, "rewrite_files", failing_second)
    with pytest.raises(StorageError, match="simulated"):
        optimize(lh, "c.events", PER_PARTITION)
    job = next(j for j in lh.jobs("c.events") if j.kind == "optimize")
    # a commit that landed is the job's outcome: committed, with the error that stopped it after
    assert job.state == "committed" and "simulated storage failure" in (job.error or "")
    assert "after its commit landed: 1 partition(s) committed, the last as version" in (job.error or "")
    assert [p["status"] for p in job.metrics["partitions"]] == ["committed", "failed"]
    assert job.metrics["version"] == lh.table("c.events").snapshot().version
    assert _ids(lh) == collections.Counter(ids) and _unreferenced(lh) == []


@pytest.mark.parametrize("fmt", FORMATS)
def test_partitions_rewritten_within_the_commit_interval_share_one_commit(
    local_lh: Callable[..., Lakehouse], fmt: str
) -> None:
    lh = local_lh()
    _, ids = _table(lh, fmt)
    before = len(lh.table("c.events").snapshots())
    result = optimize(lh, "c.events", SHARED)
    assert [p.status for p in result.partitions] == ["committed"] * 3, result.as_dict()
    assert len({p.version for p in result.partitions}) == 1 and result.version == result.partitions[0].version
    assert len(lh.table("c.events").snapshots()) == before + 1, "one commit for the three partitions"
    assert [p.files_after for p in result.partitions] == [1, 1, 1]
    assert sum(p.rows_out for p in result.partitions) == len(ids)
    assert _ids(lh) == collections.Counter(ids) and _unreferenced(lh) == []
    if fmt == "iceberg":
        assert [s.operation for s in _rewrite_commits(lh)] == ["replace"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_conflict_in_a_shared_commit_aborts_only_its_partition(
    local_lh: Callable[..., Lakehouse], fmt: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The shared commit conflicts (a concurrent delete in the second partition): its partitions commit one by
    one, the second aborts, the others land, each rewritten once."""
    lh = local_lh()
    table, ids = _table(lh, fmt)
    day_of = {f.path: f.partition["ts_day"] for f in table.files()}
    other = lh.table("c.events")
    cls = type(table)
    original = cls.replace_files
    calls: list[dict[str, Any]] = []
    rewrites: list[Any] = []
    original_rewrite = compaction.rewrite_files

    def counted(*a: Any, **kw: Any) -> list[str]:
        rewrites.append(a[2])
        return original_rewrite(*a, **kw)

    def replace_files(self: Any, **kw: Any) -> Any:
        calls.append(kw)
        if len(calls) == 1:  # the shared commit: a concurrent delete takes a row of the second partition first
            days = sorted({str(day_of[p]) for p in kw["remove"]})
            day = dt.date.fromisoformat(days[1])
            rows = other.scan(filter=f"ts >= '{day}' AND ts < '{day + dt.timedelta(days=1)}'", columns=["id"])
            victim = rows.column("id")[0].as_py()
            other.delete_rows(f"id = {victim}")
            ids.remove(victim)
        return original(self, **kw)

    monkeypatch.setattr(compaction, "rewrite_files", counted)
    monkeypatch.setattr(cls, "replace_files", replace_files)
    result = optimize(lh, "c.events", SHARED)
    assert [p.status for p in result.partitions] == ["committed", "aborted", "committed"], result.as_dict()
    assert len(calls) == 4, "the shared commit, then each partition on its own"
    assert len(rewrites) == 3, "nothing rewritten twice"
    assert re.search("concurrent|another commit", result.partitions[1].error or "")
    assert result.partitions[1].bytes_discarded > 0
    assert _ids(lh) == collections.Counter(ids)
    assert _unreferenced(lh) == []


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_handle_opened_before_a_delete_and_a_compaction_still_appends(
    local_lh: Callable[..., Lakehouse], fmt: str
) -> None:
    """A long-lived writer's table handle, opened before another handle deleted rows and compacted (removing
    files): its next append lands on the latest version, nothing lost. (delta-rs failed such an append, from the
    handle's old read version, as "a concurrent transaction deleted data this operation read", for good.)"""
    lh = local_lh()
    writer, ids = _table(lh, fmt)
    other = lh.table("c.events")
    victim = ids[0]
    other.delete_rows(f"id = {victim}")
    ids.remove(victim)
    assert optimize(lh, "c.events", OPTIONS).partitions
    batch = events(900_000, 7)
    writer.append(batch)
    assert _ids(lh) == collections.Counter(ids + batch.column("id").to_pylist())


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_failure_commits_what_was_rewritten_before_it(
    local_lh: Callable[..., Lakehouse], fmt: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Partitions waiting for a shared commit when a later rewrite fails are committed before the error is
    raised: verified work is not thrown away, and the record says what landed."""
    from lakehouse.errors import StorageError

    lh = local_lh()
    _, ids = _table(lh, fmt)
    original = compaction.rewrite_files
    calls: list[int] = []

    def failing_third(*a: Any, **kw: Any) -> list[str]:
        calls.append(1)
        if len(calls) == 3:
            raise StorageError("simulated storage failure while rewriting")
        return original(*a, **kw)

    monkeypatch.setattr(compaction, "rewrite_files", failing_third)
    before = len(lh.table("c.events").snapshots())
    with pytest.raises(StorageError, match="simulated"):
        optimize(lh, "c.events", SHARED)
    job = next(j for j in lh.jobs("c.events") if j.kind == "optimize")
    assert job.state == "committed" and "after its commit landed: 2 partition(s) committed" in (job.error or "")
    assert [p["status"] for p in job.metrics["partitions"]] == ["committed", "committed", "failed"]
    assert len(lh.table("c.events").snapshots()) == before + 1, "the two rewrites waiting shared one commit"
    assert _ids(lh) == collections.Counter(ids) and _unreferenced(lh) == []
