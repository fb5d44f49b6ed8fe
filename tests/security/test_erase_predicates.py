"""Issue 14: erase and delete predicates never reach a record a non-admin can read (the table's own log and
metadata, the job history, the audit log, lineage), and erase reports the outcome that happened.

Every check reads the real files a real delta-rs / pyiceberg table left under its location (commit JSON,
checkpoints, metadata JSON, Avro manifests as raw bytes) and the catalog's own records."""

from __future__ import annotations

import datetime as dt
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
    assert entry["rows_deleted"] == len(doomed) > 0
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
