"""Issue 14: erase and delete predicates never reach a record a non-admin can read (the table's own log and
metadata, the job history, the audit log, lineage), and erase reports the outcome that happened.

Every check reads the real files a real delta-rs / pyiceberg table left under its location (commit JSON,
checkpoints, metadata JSON, Avro manifests as raw bytes) and the catalog's own records."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lakehouse.core import Lakehouse
from lakehouse.schema import parse_partitioning, parse_schema
from lakehouse.storage import split_location

SECRET = "issue-14-secret"
SCHEMA = parse_schema("id:int64 not null, email:string, country:string, ts:timestamp not null, amount:float64")
COUNTRIES = ("de", "fr", "us")


def address(i: int) -> str:
    return f"subject{i:03d}.person@example-mail.io"


def rows(start: int, n: int) -> pa.Table:
    base = dt.datetime(2026, 5, 1, tzinfo=dt.UTC)
    return pa.Table.from_pylist(
        [
            {
                "id": i,
                "email": address(i % 10),
                "country": COUNTRIES[i % 3],
                "ts": base + dt.timedelta(hours=i * 5),
                "amount": i * 1.5,
            }
            for i in range(start, start + n)
        ],
        schema=SCHEMA,
    )


@pytest.fixture
def slh(make_lakehouse: Any) -> Lakehouse:
    return make_lakehouse(governance={"mask_secret": SECRET})


def _upserted_delta(lh: Lakehouse, name: str = "s.people") -> Any:
    """A Delta table partitioned by a string column whose files include ones delta-rs's merge wrote (those hold
    strings as Arrow string_view)."""
    table = lh.create_table(
        name, schema=SCHEMA, format="delta", partitioning=parse_partitioning("country"), keys=["id"]
    )
    table.append(rows(0, 30))
    table.upsert(rows(25, 10), keys=["id"])
    assert any(pa.types.is_string_view(t) for f in table.files() for t in _file_schema(lh, f.path).types), (
        "delta-rs's merge writes string_view files"
    )
    return table


def _file_schema(lh: Lakehouse, path: str) -> pa.Schema:
    filesystem, inner = split_location(path, lh.ctx)
    with filesystem.open_input_file(inner) as fh:
        return pq.read_schema(fh)


# ---- the Delta string / string_view mismatch ------------------------------------------------------------------


def test_delta_scan_filters_string_columns_of_files_written_as_string_view(slh: Lakehouse) -> None:
    """delta-rs's merge and delete write strings as string_view; a filter on such a column failed in pyarrow
    with "Function 'equal' has no kernel matching input types (string, string_view)"."""
    table = _upserted_delta(slh)
    want = sorted(r["id"] for r in table.scan().to_pylist() if r["email"] == address(3))
    assert want and sorted(table.scan(filter=f"email = '{address(3)}'").column("id").to_pylist()) == want
    assert sorted(table.scan(filter=f"email IN ('{address(3)}') AND country = 'fr'").column("id").to_pylist()) == [
        i for i in want if COUNTRIES[i % 3] == "fr"
    ]
    assert table.scan(filter="email < 'a'").num_rows == 0
    assert table.scan(filter="email IS NULL").num_rows == 0


# ---- helpers: every record a non-admin may read ------------------------------------------------------------


def _read(lh: Lakehouse, path: str) -> bytes:
    filesystem, inner = split_location(path, lh.ctx)
    with filesystem.open_input_stream(inner) as fh:
        return bytes(fh.read())


def _catalog_dump(lh: Lakehouse) -> str:
    """Every row of every table in the catalog database (jobs, audit, lineage, access log, ...), as text."""
    import sqlalchemy as sa

    engine = lh.catalog.engine
    out = []
    with engine.connect() as conn:
        for name in sa.inspect(engine).get_table_names():
            table = sa.Table(name, sa.MetaData(), autoload_with=conn)
            out += [repr(tuple(r)) for r in conn.execute(sa.select(table)).all()]
    return "\n".join(out)


def _own_records(lh: Lakehouse, name: str) -> str:
    """What readers and engineers see of a table's history: versions and their summaries (``GET
    /tables/{t}/versions``), jobs (``GET /jobs``), lineage events (``GET /lineage/events``)."""
    versions = [s.as_dict() for s in lh.table(name).snapshots()]
    jobs = [j.as_dict() for j in lh.jobs(name)]
    return repr((versions, jobs, lh.catalog.lineage_events(limit=1000), [a.as_dict() for a in lh.audit_log()]))


def _metadata_files(lh: Lakehouse, table: Any) -> dict[str, bytes]:
    """The table's own log and metadata: Delta commit JSON and checkpoints, Iceberg metadata JSON, manifest lists
    and manifests (raw bytes)."""
    from lakehouse.storage import list_files

    paths = [f.path for f in list_files(table.location, lh.ctx)]
    return {p: _read(lh, p) for p in paths if "/_delta_log/" in p or "/metadata/" in p}


def _build(lh: Lakehouse, fmt: str, name: str = "s.people") -> Any:
    if fmt == "delta":
        return _upserted_delta(lh, name)
    table = lh.create_table(name, schema=SCHEMA, format=fmt, partitioning=parse_partitioning("country"), keys=["id"])
    table.append(rows(0, 30))
    table.upsert(rows(25, 10), keys=["id"])
    return table


# ---- no raw values in history ---------------------------------------------------------------------------------


def test_erase_records_only_a_digest_of_its_predicate(slh: Lakehouse, fmt: str) -> None:
    """Erase by e-mail: neither the address nor the predicate lands in the table's log or metadata, in the
    version summaries, jobs, lineage or audit; the commit and the job carry the predicate's keyed digest. Without
    --purge the old data files still hold the rows (that is what --no-purge means), but nothing recording the
    erasure names the subject; with the purge, no file under the location holds the address in any form."""
    from lakehouse.governance.ops import erase
    from tests.integration.test_governance import raw_values_found

    lh = slh
    table = _build(lh, fmt)
    subject = address(3)
    where = f"email = '{subject}'"
    doomed = sorted(r["id"] for r in table.scan().to_pylist() if r["email"] == subject)
    before_meta = _metadata_files(lh, table)

    receipt = erase(lh, where, purge=False, dry_run=False)
    entry = receipt["tables"]["s.people"]
    assert entry["status"] == "erased" and entry["rows_deleted"] == len(doomed) > 0 and receipt["complete"]
    assert table.scan(filter=where).num_rows == 0
    assert sorted(r["id"] for r in lh.table("s.people").scan().to_pylist() if r["id"] in doomed) == []

    # the table's own log / metadata written by the erase: no address, no predicate, and the digest
    new_meta = {p: b for p, b in _metadata_files(lh, table).items() if before_meta.get(p) != b}
    assert new_meta, "the erase wrote log / metadata files"
    leaked = {p for p, b in new_meta.items() if subject.encode() in b or where.encode() in b}
    if fmt == "iceberg":  # a manifest written by the delete lists the removed files with their column bounds
        leaked = {p for p in leaked if not p.endswith(".avro")}
    assert leaked == set(), "the erase's commit records the predicate"
    ours = [s for s in lh.table("s.people").snapshots() if s.summary.get("lakehouse.operation") == "erase"]
    assert ours and all(s.summary["lakehouse.predicate_digest"] == receipt["predicate_digest"] for s in ours)
    assert all(s.summary["lakehouse.predicate_digest_kind"] == "hmac-sha256" for s in ours)
    assert not any("predicate" in k.lower() and "digest" not in k for s in ours for k in s.summary)
    records = _own_records(lh, "s.people")
    assert subject not in records and where not in records and receipt["predicate_digest"] in records
    assert subject not in _catalog_dump(lh)
    job = next(j for j in lh.jobs("s.people") if j.kind == "erase")
    assert job.state == "committed" and job.params["predicate_digest"] == receipt["predicate_digest"]
    assert any(e["job"]["name"] == "lakehouse.erase" for e in lh.catalog.lineage_events(limit=1000))

    # with the purge (the default) the subject is gone from every file, old data and old log included
    erase(lh, where, dry_run=False)
    assert raw_values_found(lh, table.location, [subject, where]) == set()
    assert subject not in _catalog_dump(lh) and subject not in _own_records(lh, "s.people")
    assert sorted(r["id"] for r in lh.table("s.people").scan().to_pylist()) == sorted(set(range(35)) - set(doomed))


def test_expire_data_commits_no_predicate(slh: Lakehouse, fmt: str) -> None:
    """expire-data deletes through the same path: its commit records the operation and a digest, not the
    predicate (delta-rs's own delete wrote `"predicate": "ts < '...'"` into the commit)."""
    import json

    from lakehouse.maintenance.retention import expire_data

    lh = slh
    table = lh.create_table("s.events", schema=SCHEMA, format=fmt, partitioning=parse_partitioning("day(ts)"))
    table.append(rows(0, 40))  # 2026-05-01 .. 05-09, 5 hours apart
    now = dt.datetime(2026, 5, 9, 12, tzinfo=dt.UTC)
    cutoff = now - dt.timedelta(days=5)
    keep = sorted(r["id"] for r in rows(0, 40).to_pylist() if r["ts"] >= cutoff)
    before_meta = _metadata_files(lh, table)
    done = expire_data(lh, "s.events", older_than="5d", dry_run=False, now=now)
    assert done.files_removed >= 2 and done.files_rewritten >= 1, "whole days dropped, the cut-off day rewritten"
    assert sorted(r["id"] for r in lh.table("s.events").scan().to_pylist()) == keep
    new_meta = {p: b for p, b in _metadata_files(lh, table).items() if before_meta.get(p) != b}
    texts = (cutoff.strftime("%Y-%m-%dT%H").encode(), cutoff.strftime("%Y-%m-%d %H").encode())
    if fmt == "delta":
        for path, data in new_meta.items():
            for line in data.splitlines():
                info = json.loads(line).get("commitInfo")
                if info is not None:
                    assert "predicate" not in info.get("operationParameters", {}), path
                    assert info["lakehouse.operation"] == "expire-data" and info["lakehouse.predicate_digest"]
            assert not any(t in data for t in texts), path
    else:
        ours = [s for s in lh.table("s.events").snapshots() if s.summary.get("lakehouse.operation") == "expire-data"]
        assert ours and all(s.summary["lakehouse.predicate_digest"] for s in ours)
        assert not any(t in data for p, data in new_meta.items() if p.endswith(".json") for t in texts)


# ---- truthful outcomes ----------------------------------------------------------------------------------------


@pytest.fixture
def llh(tmp_path: Any) -> Iterator[Lakehouse]:
    """A local Lakehouse whose catalog the CLI (``-w <warehouse>``) and the API find too."""
    from lakehouse.config import load_settings

    with Lakehouse(
        load_settings(config_file=False, warehouse=str(tmp_path / "wh"), governance={"mask_secret": SECRET})
    ) as lh:
        yield lh


def _cli(lh: Lakehouse, *args: str) -> Any:
    """The CLI in this process (so that a monkeypatched failure applies), stdout and stderr apart."""
    from typer.testing import CliRunner

    from lakehouse.cli import app

    return CliRunner().invoke(
        app, ["-w", lh.ctx.warehouse, *args], env={"LAKEHOUSE_GOVERNANCE__MASK_SECRET": SECRET}, catch_exceptions=True
    )


def _api(lh: Lakehouse) -> tuple[Any, dict[str, str]]:
    from fastapi.testclient import TestClient

    from api.app import create_app
    from lakehouse.governance.keys import create_key

    keys = {role: create_key(lh, name=role, role=role)[1] for role in ("reader", "admin")}
    return TestClient(create_app(lh.settings), raise_server_exceptions=False), keys


def test_string_partitioned_delta_erase_with_purge_succeeds_through_cli_and_api(llh: Lakehouse) -> None:
    """The reported case: a Delta table partitioned by a string column (with files delta-rs's merge wrote),
    erased by e-mail with the purge: the CLI (the real console script) exits 0 and the API answers 200, the rows
    are gone, and no version summary a reader sees names the subject."""
    from tests.cli.test_cli import run

    lh = llh
    table = _upserted_delta(lh)
    first, second = address(3), address(4)
    gone = {r["id"] for r in table.scan().to_pylist() if r["email"] in (first, second)}
    proc = run(
        "-w",
        lh.ctx.warehouse,
        "erase",
        "--where",
        f"email = '{first}'",
        "--apply",
        env={"LAKEHOUSE_GOVERNANCE__MASK_SECRET": SECRET},
    )
    assert "deleted (version" in proc.stdout and "history purged" in proc.stdout and proc.stderr.strip() == ""
    assert table.scan(filter=f"email = '{first}'").num_rows == 0

    client, keys = _api(lh)
    with client:
        answer = client.post(
            "/erase",
            headers={"X-API-Key": keys["admin"]},
            json={"where": f"email = '{second}' AND country IN ('de', 'fr', 'us')", "dry_run": False},
        )
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["complete"] and body["warnings"] == [] and body["tables"]["s.people"]["status"] == "erased"
        versions = client.get("/tables/s.people/versions", headers={"X-API-Key": keys["reader"]})
        assert versions.status_code == 200 and first not in versions.text and second not in versions.text
    left = lh.table("s.people").scan().to_pylist()
    assert {r["id"] for r in left} == set(range(35)) - gone and all(r["email"] not in (first, second) for r in left)


def test_a_purge_that_fails_after_the_erase_committed_is_reported_with_what_is_left(
    llh: Lakehouse, fmt: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The delete commits, then the purge fails (Iceberg: another tool tags the table in between, so the tagged
    snapshot would keep the rows; Delta: the store refuses). That is success with a warning: CLI exit 0, the
    warning on stderr names the version, the failed step and the command that finishes it; the job is
    committed with the failure noted. Running that command afterwards finishes the erasure."""
    import json

    from lakehouse.errors import StorageError
    from lakehouse.governance import ops
    from tests.integration.test_governance import raw_values_found

    lh = llh
    table = _build(lh, fmt)
    subject = address(5)
    where = f"email = '{subject}'"
    if fmt == "iceberg":
        cls = type(table)
        original = cls.delete_rows

        def then_tagged(self: Any, *a: Any, **kw: Any) -> Any:
            result = original(self, *a, **kw)
            ice = self._table
            ice.manage_snapshots().create_tag(ice.current_snapshot().snapshot_id, "audit-copy").commit()
            return result

        monkeypatch.setattr(cls, "delete_rows", then_tagged)
    else:

        def refused(*a: Any, **kw: Any) -> Any:
            raise StorageError("simulated: the object store refused to delete the old files")

        monkeypatch.setattr(ops, "purge_history", refused)
    result = _cli(lh, "erase", "--where", where, "--tables", "s.people", "--apply", "--json")
    assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
    receipt = json.loads(result.stdout)
    entry = receipt["tables"]["s.people"]
    assert entry["status"] == "committed" and entry["failed_step"] == "purge" and not receipt["complete"]
    version = entry["version"]
    assert version is not None and version == lh.table("s.people").snapshot().version, "no seal: the purge failed"
    finish = "lakehouse erase --where '<the same predicate>' --tables s.people --apply"
    assert entry["to_finish"] == finish
    warning = " ".join(result.stderr.split())
    assert warning.startswith(f"warning: s.people: committed as version {version}; purge failed: ")
    assert warning.endswith(f"to finish: {finish}") and subject not in result.stderr
    assert ("tag 'audit-copy'" if fmt == "iceberg" else "refused to delete the old files") in warning
    assert lh.table("s.people").scan(filter=where).num_rows == 0, "the delete happened"
    job = next(j for j in lh.jobs("s.people") if j.kind == "erase")
    assert job.state == "committed" and job.metrics["version"] == version and job.metrics["failed_step"] == "purge"
    assert job.error is not None and "purge failed" in job.error and subject not in job.error
    assert lh.audit_log(action="erase.receipt")[0].outcome == "incomplete"
    assert subject not in _catalog_dump(lh)

    monkeypatch.undo()
    if fmt == "iceberg":
        lh.table("s.people")._table.manage_snapshots().remove_tag("audit-copy").commit()  # type: ignore[attr-defined]
    done = ops.erase(lh, where, tables=["s.people"], dry_run=False)  # the command the warning names
    assert done["complete"] and done["tables"]["s.people"]["rows_deleted"] == 0
    assert raw_values_found(lh, table.location, [subject]) == set()


def test_a_subject_written_again_before_the_check_is_reported_by_the_api_after_the_commit(
    llh: Lakehouse, fmt: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A writer lands the subject again between the delete's commit and the erase's final check: the API answers
    200 (the delete committed), with the failed check and what finishes it in the body."""
    from lakehouse.governance import ops

    lh = llh
    _build(lh, fmt)
    subject = address(6)
    original = ops.purge_history

    def purge_then_a_writer(*a: Any, **kw: Any) -> Any:
        out = original(*a, **kw)
        lh.append("s.people", rows(900, 1).set_column(1, "email", pa.array([subject])))
        return out

    monkeypatch.setattr(ops, "purge_history", purge_then_a_writer)
    client, keys = _api(lh)
    with client:
        answer = client.post(
            "/erase", headers={"X-API-Key": keys["admin"]}, json={"where": f"email = '{subject}'", "dry_run": False}
        )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    entry = body["tables"]["s.people"]
    assert entry["status"] == "committed" and entry["failed_step"] == "verification" and entry["rows_deleted"] > 0
    assert (
        body["warnings"] == [entry["warning"]]
        and "verification failed: 1 rows of s.people still match" in entry["warning"]
    )
    assert "to finish: lakehouse erase" in entry["warning"] and not body["complete"]
    job = next(j for j in lh.jobs("s.people") if j.kind == "erase")
    assert job.state == "committed" and "verification failed" in (job.error or "")


def test_a_failure_before_any_commit_stays_an_error(llh: Lakehouse, monkeypatch: pytest.MonkeyPatch) -> None:
    """Tables lakehouse's delete cannot handle (deletion vectors, column mapping) are refused before anything
    changes (CLI exit 1); and a run that committed on one table and then failed on the next before committing
    there is an error naming what was committed and what is left (API: the failure's status)."""
    from lakehouse.errors import IncompleteError, StorageError, UnsupportedOperationError
    from lakehouse.governance.ops import erase

    lh = llh
    subject = address(7)
    where = f"email = '{subject}'"
    for name, prop, why in (
        ("s.dv", "delta.enableDeletionVectors", "deletion vectors"),
        ("s.mapped", "delta.columnMapping.mode", "column mapping"),
    ):
        table = lh.create_table(
            name, schema=SCHEMA, format="delta", properties={prop: "name" if "Mapping" in prop else "true"}
        )
        table.append(rows(0, 20))
        files = sorted(f.path for f in table.files())
        for dry_run in (True, False):
            with pytest.raises(UnsupportedOperationError, match=why):
                erase(lh, where, tables=[name], dry_run=dry_run)
        result = _cli(lh, "erase", "--where", where, "--tables", name, "--apply")
        assert result.exit_code == 1 and isinstance(result.exception, UnsupportedOperationError)
        assert sorted(f.path for f in lh.table(name).files()) == files and lh.table(name).row_count() == 20
        assert [j for j in lh.jobs(name) if j.kind == "erase"] == []

    first = lh.create_table("s.first", schema=SCHEMA, format="delta")
    second = lh.create_table("s.second", schema=SCHEMA, format="iceberg")
    for t in (first, second):
        t.append(rows(0, 20))
    cls = type(second)
    original = cls.delete_rows

    def unreachable(self: Any, *a: Any, **kw: Any) -> Any:
        if str(self.name) == "s.second":
            raise StorageError(f"simulated: cannot reach the storage of {self.name} holding {subject}")
        return original(self, *a, **kw)

    monkeypatch.setattr(cls, "delete_rows", unreachable)
    with pytest.raises(IncompleteError) as e:
        erase(lh, where, tables=["s.first", "s.second"], dry_run=False)
    jobs = {j.table_name: j for j in lh.jobs() if j.kind == "erase"}
    v = jobs["s.first"].metrics["version"]  # the delete's commit (the purge's seal came after it)
    assert "erase failed on s.second before committing there" in e.value.message
    assert f"already erased: s.first (version {v})" in e.value.message and e.value.http_status == 502
    assert e.value.hint and "--tables s.second --apply" in e.value.hint
    assert lh.table("s.first").scan(filter=where).num_rows == 0 and lh.table("s.second").scan(filter=where).num_rows
    assert jobs["s.first"].state == "committed" and jobs["s.second"].state == "failed"
    assert subject not in (jobs["s.second"].error or "") and "<predicate value>" in (jobs["s.second"].error or "")
    receipt = lh.audit_log(action="erase.receipt")[0]
    assert receipt.outcome == "incomplete" and receipt.details["tables"]["s.second"]["status"] == "failed"
    assert subject not in _catalog_dump(lh)
    result = _cli(lh, "erase", "--where", where, "--tables", "s.first,s.second", "--apply")
    assert result.exit_code == 1 and isinstance(result.exception, IncompleteError)


def test_mask_reports_a_purge_that_failed_after_its_commit(
    llh: Lakehouse, fmt: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pii mask --purge: the masked files committed, the purge failed. Exit 0, the warning on stderr with the
    version and the command that finishes it; the job committed, the policy stored."""
    from lakehouse.errors import StorageError
    from lakehouse.governance import ops

    lh = llh
    table = _build(lh, fmt, "s.masked")

    def refused(*a: Any, **kw: Any) -> Any:
        raise StorageError("simulated: the object store refused to delete the old files")

    monkeypatch.setattr(ops, "purge_history", refused)
    result = _cli(lh, "pii", "mask", "s.masked", "--column", "email", "--policy", "hash", "--purge", "--apply")
    assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
    version = lh.table("s.masked").snapshot().version
    warning = " ".join(result.stderr.split())
    assert warning.startswith(f"warning: s.masked: committed as version {version}; purge failed: simulated")
    assert warning.endswith("to finish: lakehouse pii mask s.masked --column email --policy hash --purge --apply")
    job = next(j for j in lh.jobs("s.masked") if j.kind == "pii.mask")
    assert job.state == "committed" and job.metrics["version"] == version and "purge failed" in (job.error or "")
    assert lh.policy("s.masked").masking == {"email": "hash"}
    assert all(v.startswith("tok_") for v in table.scan(columns=["email"]).column("email").to_pylist())


# ---- the Delta delete's own commit ----------------------------------------------------------------------------


@pytest.mark.parametrize("meanwhile", ["append", "compaction"])
def test_delta_delete_plans_again_when_another_commit_lands_first(
    llh: Lakehouse, meanwhile: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Between the delete's plan and its commit another writer commits: an append that carries the subject
    again, or a compaction that replaces the files the delete read. The delete's commit must not be rebased
    over it (it would miss the appended rows, or remove files that are gone and leave their rows in the new
    ones): it plans again on the newer version, and lands once."""
    import deltalake

    from lakehouse.maintenance.compaction import optimize
    from lakehouse.maintenance.planner import CompactionOptions
    from lakehouse.storage import list_files

    lh = llh
    table = lh.create_table("s.busy", schema=SCHEMA, format="delta", partitioning=parse_partitioning("country"))
    for b in range(3):
        table.append(rows(b * 10, 10))
    subject = address(2)
    original = deltalake.DeltaTable.create_write_transaction
    calls: list[int] = []

    racing_writer = False

    def racing(self: Any, actions: Any, *a: Any, **kw: Any) -> Any:
        nonlocal racing_writer
        if racing_writer:  # the other writer's own commit (a compaction commits through this API too)
            return original(self, actions, *a, **kw)
        calls.append(len(actions))
        if len(calls) == 1:  # the other writer wins the race for the next version
            racing_writer = True
            try:
                if meanwhile == "append":
                    extra = rows(100, 3).set_column(1, "email", pa.array([subject, "someone@else.io", subject]))
                    lh.append("s.busy", extra)
                else:
                    done = optimize(lh, "s.busy", CompactionOptions(target_file_size=64 * 1024 * 1024))
                    assert [p.status for p in done.partitions] == ["committed"] * 3
            finally:
                racing_writer = False
        return original(self, actions, *a, **kw)

    monkeypatch.setattr(deltalake.DeltaTable, "create_write_transaction", racing)
    expected = sorted(r["id"] for r in table.scan().to_pylist() if r["email"] != subject)
    doomed = 30 - len(expected) + 2 * (meanwhile == "append")
    if meanwhile == "append":
        expected = sorted([*expected, 101])
    result = table.delete_rows(f"email = '{subject}'", properties={"lakehouse.operation": "test"})
    monkeypatch.undo()
    assert len(calls) == 2, "the first attempt lost its race and the delete planned again"
    assert sorted(r["id"] for r in lh.table("s.busy").scan().to_pylist()) == expected
    ours = [s for s in lh.table("s.busy").snapshots() if s.summary.get("lakehouse.operation") == "test"]
    assert [s.version for s in ours] == [result.version] and result.rows_deleted == doomed
    live = {f.path for f in lh.table("s.busy").files()}
    leftovers = [f.path for f in list_files(table.location, lh.ctx) if "lh-delete" in f.path and f.path not in live]
    assert leftovers == [], "files written for inputs the other commit removed are deleted"


def test_delta_history_does_not_repeat_a_predicate_an_older_delete_wrote(llh: Lakehouse) -> None:
    """A Delta DELETE committed by another engine, or by lakehouse before its deletes became rewrites, keeps its
    predicate in the log until a purge: the versions readers get (``GET /tables/{t}/versions``) show it
    redacted."""
    import deltalake

    lh = llh
    table = _upserted_delta(lh)
    subject = address(8)
    deltalake.DeltaTable(table.location).delete(f"email = '{subject}'")  # what the log of such a table holds
    summaries = [s.summary for s in lh.table("s.people").snapshots()]
    deleted = [s for s in summaries if "num_deleted_rows" in s]
    assert deleted and deleted[-1]["predicate"] == "[REDACTED]" and subject not in repr(summaries)
    client, keys = _api(lh)
    with client:
        versions = client.get("/tables/s.people/versions", headers={"X-API-Key": keys["reader"]})
    assert versions.status_code == 200 and subject not in versions.text and "[REDACTED]" in versions.text


def test_a_plain_row_delete_records_its_operation_and_not_its_predicate(llh: Lakehouse, fmt: str) -> None:
    """``LakehouseTable.delete_rows`` called directly (no job around it): the commit says what it was, and no
    log or metadata file it writes holds the predicate."""
    lh = llh
    table = _build(lh, fmt)
    subject = address(9)
    before = _metadata_files(lh, table)
    result = table.delete_rows(f"email = '{subject}' OR amount < 0")
    assert result.version is not None and result.rows_deleted == 3
    written = {p: b for p, b in _metadata_files(lh, table).items() if before.get(p) != b and not p.endswith(".avro")}
    assert written and not [p for p, b in written.items() if subject.encode() in b or b"amount < 0" in b]
    ours = [s for s in lh.table("s.people").snapshots() if s.summary.get("lakehouse.operation") == "delete"]
    assert ours and ours[-1].version == result.version
