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
