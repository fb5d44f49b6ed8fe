"""Interop: what lakehouse writes reads back identically through DuckDB's own extensions and through the
format SDKs directly; and tables written by those SDKs are adopted by lakehouse."""

from __future__ import annotations

import datetime as dt
from typing import Any

import duckdb
import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake
from pyiceberg.catalog.sql import SqlCatalog

from lakehouse.core import Lakehouse
from lakehouse.schema import parse_partitioning
from lakehouse.sql import EXTENSIONS, extension_path
from tests.conftest import EVENTS, events, sorted_rows


def _duckdb(lh: Lakehouse) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(config={"autoinstall_known_extensions": False, "autoload_known_extensions": False})
    for name in EXTENSIONS:
        con.execute(f"LOAD '{extension_path(name)}'")
    if lh.ctx.credentials is not None:
        con.execute(lh.ctx.credentials.duckdb_secret_sql())
    return con


def _native(table: pa.Table) -> pa.Table:
    """Cast a native read to the declared schema (readers differ in string/timestamp flavours)."""
    return table.select(EVENTS.names).cast(EVENTS)


def _pyiceberg_catalog(lh: Lakehouse, uri: str | None = None, warehouse: str | None = None) -> SqlCatalog:
    props: dict[str, Any] = {"uri": uri or lh.ctx.catalog_url}
    wh = warehouse or lh.ctx.warehouse
    props["warehouse"] = wh if wh.startswith("s3://") else f"file://{wh}"
    if lh.ctx.credentials is not None:
        props.update(lh.ctx.credentials.pyiceberg_properties())
    return SqlCatalog(lh.ctx.catalog_name, **props)


def test_written_by_lakehouse_reads_back_everywhere(lh: Lakehouse, fmt: str) -> None:
    table = lh.create_table("shop.orders", schema=EVENTS, format=fmt, partitioning=parse_partitioning("day(ts)"))
    first = events(0, 40)
    table.append(first)
    v1 = table.snapshot().version
    table.append(events(40, 40))
    expected = sorted_rows(pa.concat_tables([first, events(40, 40)]))

    con = _duckdb(lh)
    if fmt == "delta":
        src = f"delta_scan('{table.location}')"
        src_v1 = f"delta_scan('{table.location}', version={v1})"
        sdk = DeltaTable(
            table.location, storage_options=lh.ctx.credentials.delta_storage_options() if lh.ctx.credentials else None
        )
        assert sorted_rows(_native(pa.table(sdk.to_pyarrow_table()))) == expected
        assert sdk.version() == table.snapshot().version
    else:
        meta = table.metadata_location.removeprefix("file://")  # type: ignore[attr-defined]
        snap1 = table.snapshot(v1).snapshot_id
        src = f"iceberg_scan('{meta}')"
        src_v1 = f"iceberg_scan('{meta}', snapshot_from_id={snap1})"
        sdk = _pyiceberg_catalog(lh).load_table(("shop", "orders"))
        assert sorted_rows(_native(sdk.scan().to_arrow())) == expected
        assert sdk.current_snapshot().snapshot_id == table.snapshot().snapshot_id
    assert sorted_rows(_native(con.sql(f"SELECT * FROM {src}").to_arrow_table())) == expected
    assert sorted_rows(_native(con.sql(f"SELECT * FROM {src_v1}").to_arrow_table())) == sorted_rows(first)


def test_tables_written_by_the_sdks_are_adopted(lh: Lakehouse, fmt: str, tmp_path: Any) -> None:
    data = events(0, 30)
    if fmt == "delta":
        location = f"{lh.ctx.warehouse}/external/delta_orders"
        opts = lh.ctx.credentials.delta_storage_options() if lh.ctx.credentials else None
        write_deltalake(location, data, partition_by=["country"], storage_options=opts)
        write_deltalake(location, events(30, 30), mode="append", storage_options=opts)
    else:
        # another tool's catalog (its own database) wrote it; lakehouse adopts it by location
        other = _pyiceberg_catalog(lh, uri=f"sqlite:///{tmp_path}/other.db")
        other.create_namespace("ext")
        location = f"{lh.ctx.warehouse}/external/iceberg_orders"
        t = other.create_table(
            ("ext", "orders"),
            schema=EVENTS,
            location=location if location.startswith("s3://") else f"file://{location}",
        )
        t.append(data)
        t.append(events(30, 30))
    table = lh.register_table("ext.orders", location=location)
    assert table.format == fmt
    assert table.schema.names == EVENTS.names
    got = table.scan()
    assert sorted_rows(got.cast(EVENTS)) == sorted_rows(pa.concat_tables([data, events(30, 30)]))
    assert lh.query("SELECT count(*) AS n, sum(amount) AS s FROM ext.orders").table.to_pylist() == [
        {"n": 60, "s": sum(pa.concat_tables([data, events(30, 30)])["amount"].to_pylist())}
    ]
    assert len(table.snapshots()) >= 2
    # time travel works on adopted tables too
    first = table.snapshots()[-2].version
    assert table.scan(as_of=first).num_rows == 30


@pytest.mark.parametrize("fmt_", ["delta", "iceberg"])
def test_pyiceberg_and_delta_see_partition_values(lh: Lakehouse, fmt_: str) -> None:
    table = lh.create_table("shop.p", schema=EVENTS, format=fmt_, partitioning=parse_partitioning("day(ts)"))
    table.append(events(0, 24, day0=dt.datetime(2026, 5, 1, tzinfo=dt.UTC), days=2))
    days = sorted({str(f.partition["ts_day"]) for f in table.files()})
    assert days == ["2026-05-01", "2026-05-02"]
