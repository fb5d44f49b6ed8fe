"""Catalog operations on tables nobody here wrote (issue 15): a register, create or drop that fails leaves the
catalog (and pyiceberg's own catalog beside it) as it was, and a catalog row that cannot be read breaks nothing
else: listed with its error, reported per table, and still droppable."""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import sqlalchemy as sa

from lakehouse.catalog import CatalogStore
from lakehouse.config import load_settings
from lakehouse.core import Lakehouse
from lakehouse.errors import CatalogEntryError, InvalidInputError, LakehouseError, UnsupportedOperationError
from lakehouse.schema import parse_schema
from lakehouse.storage import list_files
from tests.cli.test_cli import InProcess

SCHEMA = parse_schema(
    "id:int64 not null, `first name`:string, `a.b`:int64, ü:string, "
    "s:struct<x: int64, `y z`: string, tags: list<string>>, m:map<string, list<int64>>"
)


def batch(start: int, n: int) -> pa.Table:
    ids = range(start, start + n)
    return pa.table(
        {
            "id": list(ids),
            "first name": [None if i % 4 == 0 else f"näme {i}" for i in ids],
            "a.b": [i * 3 for i in ids],
            "ü": ["ü" * (i % 3) for i in ids],
            "s": [None if i % 5 == 0 else {"x": i, "y z": f"y{i}", "tags": [f"t{i}", None]} for i in ids],
            "m": [{"k": [i, None]} if i % 2 else None for i in ids],
        },
        schema=SCHEMA,
    )


def exact(v: Any) -> Any:
    if isinstance(v, float):
        return ("nan",) if math.isnan(v) else (v, math.copysign(1.0, v))
    if isinstance(v, dict):
        return {k: exact(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [exact(x) for x in v]
    return v


def contents(table: Any) -> list[Any]:
    return exact(table.scan().sort_by("id").to_pylist())


@pytest.fixture
def wh_lh(tmp_path: Path) -> Any:
    """A lakehouse whose catalog lives in its warehouse (so the CLI finds it with -w)."""
    wh = str(tmp_path / "wh")
    lh = Lakehouse(load_settings(config_file=False, warehouse=wh))
    yield wh, lh
    lh.close()


# ---- catalog atomicity ------------------------------------------------------------------------------------


def _state(lh: Lakehouse) -> dict[str, Any]:
    """Everything a catalog operation may touch in the catalog database: our rows and pyiceberg's."""
    engine = sa.create_engine(lh.ctx.catalog_url)
    try:
        with engine.connect() as conn:
            tables = set(sa.inspect(conn).get_table_names())
            out: dict[str, Any] = {}
            for t in ("lh_tables", "lh_audit", "iceberg_tables", "lh_policies"):  # (pyiceberg makes its own lazily)
                rows = conn.execute(sa.text(f"SELECT * FROM {t}")).all() if t in tables else []
                out[t] = sorted(tuple(map(str, r)) for r in rows)
            return out
    finally:
        engine.dispose()


def _boom(*_: Any, **__: Any) -> None:
    raise RuntimeError("the catalog database went away")


def test_failed_register_create_and_drop_leave_the_catalog_as_it_was(
    lh: Lakehouse, fmt: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    table = lh.create_table("odd.src", schema=SCHEMA, format=fmt)
    table.append(batch(0, 10))
    location = table.location
    lh.drop_table("odd.src")  # the files stay: a table nobody here wrote, to register
    before = _state(lh)

    # a step after the adapter registered the table (and after the row was written) fails
    monkeypatch.setattr(CatalogStore, "_audit_row", staticmethod(_boom))
    with pytest.raises(RuntimeError):
        lh.register_table("odd.ext", location=location)
    assert _state(lh) == before and lh.list_tables() == []
    with pytest.raises(RuntimeError):
        lh.create_table("odd.new", schema=SCHEMA, format=fmt)
    assert _state(lh) == before and lh.list_tables() == []
    monkeypatch.undo()

    registered = lh.register_table("odd.ext", location=location)
    assert [str(r.name) for r in lh.list_tables()] == ["odd.ext"]
    assert contents(registered) == exact(batch(0, 10).sort_by("id").to_pylist())
    assert lh.table_record("odd.ext").definition.schema == SCHEMA

    # a drop whose catalog change fails leaves the table registered and readable (in pyiceberg's catalog too)
    during = _state(lh)
    monkeypatch.setattr(CatalogStore, "remove_table", _boom)
    with pytest.raises(RuntimeError):
        lh.drop_table("odd.ext")
    monkeypatch.undo()
    assert _state(lh) == during
    assert contents(lh.table("odd.ext")) == exact(batch(0, 10).sort_by("id").to_pylist())


def test_a_register_refused_for_unreadable_iceberg_metadata_leaves_no_row_and_no_namespace(wh_lh: Any) -> None:
    """The newest metadata file of a table is cut off, as a crashed writer leaves it: pyiceberg's SQL catalog
    inserted its row before reading the file, so the refused register left the name taken (a second register:
    "already has a table"; `table drop`: no such table) and a new namespace behind."""
    _, lh = wh_lh
    table = lh.create_table("odd.src", schema=SCHEMA, format="iceberg")
    table.append(batch(0, 10))
    location = table.location
    lh.drop_table("odd.src")
    newest = sorted(f.path for f in list_files(location + "/metadata", table.ctx) if f.path.endswith(".json"))[-1]
    with open(newest, "rb") as f:
        whole = f.read()
    crashed = newest.rsplit("/", 1)[0] + "/99999-crashed.metadata.json"
    with open(crashed, "wb") as f:
        f.write(whole[:40])
    before = _state(lh)
    with pytest.raises(InvalidInputError, match="not valid Iceberg table metadata"):
        lh.register_table("fresh.orders", location=location, format="iceberg")
    assert _state(lh) == before and lh.list_tables() == []
    engine = sa.create_engine(lh.ctx.catalog_url)
    with engine.connect() as conn:
        spaces = conn.execute(sa.text("SELECT DISTINCT namespace FROM iceberg_namespace_properties")).scalars().all()
    engine.dispose()
    assert "fresh" not in spaces, "the namespace the refused register made is gone"
    os.remove(crashed)
    assert contents(lh.register_table("fresh.orders", location=location, format="iceberg")) == exact(
        batch(0, 10).sort_by("id").to_pylist()
    )


def test_definition_that_cannot_be_stored_is_refused_before_anything_is_written(lh: Lakehouse, fmt: str) -> None:
    lh.init()
    before = _state(lh)
    for bad in (pa.schema([pa.field("id", pa.int64()), pa.field("u", pa.dictionary(pa.int32(), pa.string()))]),):
        with pytest.raises(LakehouseError, match="column 'u'"):
            lh.create_table("odd.bad", schema=bad, format=fmt)
    assert _state(lh) == before
    assert not Path(lh.ctx.default_location(_name("odd.bad"))).exists()
    # a type the format's SDK refuses: refused by name, and nothing is left behind
    refused = {"delta": (pa.time64("us"), "Time64"), "iceberg": (pa.timestamp("ns", tz="UTC"), "timestamp")}[fmt]
    with pytest.raises(UnsupportedOperationError, match=f"cannot create {fmt} table odd.bad: .*{refused[1]}"):
        lh.create_table("odd.bad", schema=pa.schema([("id", pa.int64()), ("t", refused[0])]), format=fmt)
    assert _state(lh) == before
    location = Path(lh.ctx.default_location(_name("odd.bad")))
    assert not location.exists() or not any(p.is_file() for p in location.rglob("*"))


def _name(text: str) -> Any:
    from lakehouse.tables.base import TableName

    return TableName.parse(text)


# ---- a catalog row that cannot be read ---------------------------------------------------------------------


def test_unreadable_catalog_rows_break_nothing_else(wh_lh: Any, fmt: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from fastapi.testclient import TestClient

    from api.app import create_app
    from lakehouse.governance.keys import create_key

    wh, lh = wh_lh
    cli = InProcess(monkeypatch)  # the CLI's entry point, in this process
    for name in ("ok.t", "bad.type", "bad.json"):
        lh.create_table(name, schema=parse_schema("id:int64 not null, v:string"), format=fmt).append(
            pa.table({"id": [1, 2], "v": ["a", "b"]}, schema=parse_schema("id:int64 not null, v:string"))
        )
    purged = lh.table_record("bad.json").location
    key = create_key(lh, name="reader", role="reader")[1]
    with lh.catalog.engine.begin() as conn:  # what an older release (or a hand edit) left behind
        conn.execute(
            sa.text("UPDATE lh_tables SET schema_json = :s WHERE name = 'bad.type'"),
            {"s": json.dumps([{"name": "g", "type": "geometry<point>", "nullable": True}])},
        )
        conn.execute(sa.text("UPDATE lh_tables SET schema_json = '[{not json' WHERE name = 'bad.json'"))

    records = {str(r.name): r for r in lh.list_tables()}
    assert records["ok.t"].error is None and "geometry" in (records["bad.type"].error or "")
    assert "corrupt" in (records["bad.json"].error or "")
    with pytest.raises(CatalogEntryError, match=r"table drop bad\.type"):
        lh.table("bad.type")

    listing = cli.json("-w", wh, "table", "list")
    assert {t["name"]: bool(t["error"]) for t in listing} == {"bad.json": True, "bad.type": True, "ok.t": False}
    text = cli.run("-w", wh, "table", "list").stdout
    assert "ok.t" in text and "cannot read its catalog entry" in text

    health = cli.run("-w", wh, "health", "--json", ok=False)
    assert health.returncode == 1 and "health failed for 2 of 3" in health.stderr
    reports = {r["table"]: r for r in json.loads(health.stdout)}
    assert "score" in reports["ok.t"] and "cannot be read" in reports["bad.type"]["error"]
    maintained = cli.run("-w", wh, "maintain", "--all", "--json", ok=False)
    assert {r["table"]: "error" in r for r in json.loads(maintained.stdout)} == {
        "bad.json": True,
        "bad.type": True,
        "ok.t": False,
    }

    from lakehouse.maintenance.autopilot import Autopilot

    entries = {e["table"]: e for e in Autopilot(lh, interval=0.1).one_pass()}
    assert "cannot be read" in entries["bad.type"]["error"] and "error" not in entries["ok.t"]

    with TestClient(create_app(load_settings(config_file=False, warehouse=wh)), raise_server_exceptions=False) as c:
        answer = c.get("/tables", headers={"X-API-Key": key})
        assert answer.status_code == 200, answer.text
        items = {i["name"]: i for i in answer.json()["items"]}
        assert items["ok.t"]["error"] is None and "geometry" in items["bad.type"]["error"]
        detail = c.get("/tables/bad.type", headers={"X-API-Key": key})
        assert detail.status_code == 500 and "table drop bad.type" in detail.json()["detail"]

    cli.run("-w", wh, "table", "drop", "bad.type")
    cli.run("-w", wh, "table", "drop", "bad.json", "--purge", "--yes")
    assert [t["name"] for t in cli.json("-w", wh, "table", "list")] == ["ok.t"]
    assert not Path(purged).exists()
    # the formats' own catalogs forgot them too: the table whose files stayed can be registered again
    cli.run("-w", wh, "table", "register", "bad.type", str(Path(wh, "bad", "type")))
    assert cli.json("-w", wh, "table", "show", "bad.type")["rows"] == 2
    assert cli.json("-w", wh, "table", "show", "ok.t")["rows"] == 2


def test_a_register_overlapping_another_table_or_missing_its_file_list_is_refused(wh_lh: Any) -> None:
    """A metadata file whose location holds another table (or lies inside one) would let jobs on the new name
    rewrite and expire the other's files: `vacuum` of the outer table deleted the inner one's as orphans. A
    current snapshot whose manifest list is gone would be a table nobody can read."""
    from lakehouse.errors import TableExistsError

    _, lh = wh_lh
    inner = lh.create_table("odd.inner", schema=SCHEMA, format="iceberg")
    inner.append(batch(0, 10))
    with open(inner.metadata_location.removeprefix("file://")) as f:  # type: ignore[attr-defined]
        metadata = json.load(f)
    parent = inner.location.rsplit("/", 1)[0]
    nested = f"{inner.location}/data/nested"
    for where in (parent, nested):
        os.makedirs(f"{where}/metadata", exist_ok=True)
        with open(f"{where}/metadata/00000-copy.metadata.json", "w") as f:
            json.dump({**metadata, "location": where}, f)
    before = _state(lh)
    for where in (parent, nested):
        with pytest.raises(TableExistsError, match=r"overlaps table odd\.inner"):
            lh.register_table("odd.evil", location=where, format="iceberg")
        assert _state(lh) == before
    lost = f"{parent}-lost"
    os.makedirs(f"{lost}/metadata")
    snap = metadata["snapshots"][-1]
    gone = [{**s, "manifest-list": f"{lost}/metadata/snap-gone.avro"} for s in metadata["snapshots"]]
    with open(f"{lost}/metadata/00000-copy.metadata.json", "w") as f:
        json.dump({**metadata, "location": lost, "snapshots": gone}, f)
    with pytest.raises(
        InvalidInputError, match=re.escape(f"manifest list {lost}/metadata/snap-gone.avro cannot be read")
    ):
        lh.register_table("odd.lost", location=lost, format="iceberg")
    assert _state(lh) == before and snap["snapshot-id"] == metadata["current-snapshot-id"]
    assert [str(r.name) for r in lh.list_tables()] == ["odd.inner"]
    assert contents(lh.table("odd.inner")) == exact(batch(0, 10).sort_by("id").to_pylist())
