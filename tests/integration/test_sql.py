"""SQL over catalog tables through DuckDB, with time travel, on both formats and both storages."""

from __future__ import annotations

import time
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from lakehouse.core import Lakehouse
from lakehouse.errors import QueryError, TableNotFoundError, VersionNotFoundError
from lakehouse.schema import parse_partitioning
from tests.conftest import EVENTS, events


@pytest.fixture
def two_tables(lh: Lakehouse) -> dict[str, list[int]]:
    """shop.d (delta) and shop.i (iceberg) with three appends each; returns their versions."""
    versions: dict[str, list[int]] = {}
    for fmt, name in (("delta", "shop.d"), ("iceberg", "shop.i")):
        t = lh.create_table(name, schema=EVENTS, format=fmt, partitioning=parse_partitioning("day(ts)"))
        versions[name] = [t.append(events(i * 20, 20)).version for i in range(3)]
        time.sleep(0.01)
    return versions


def test_query_matches_arrow(lh: Lakehouse, two_tables: dict[str, list[int]]) -> None:
    data = pa.concat_tables([events(i * 20, 20) for i in range(3)])
    per_country = {}
    for c in data["country"].unique().to_pylist():
        mask = pc.is_null(data["country"]) if c is None else pc.equal(data["country"], c)
        per_country[c] = round(sum(data.filter(mask)["amount"].to_pylist()), 6)
    for name in two_tables:
        rows = lh.query(f"SELECT country, sum(amount) AS s FROM {name} GROUP BY country").table.to_pylist()
        assert {r["country"]: round(r["s"], 6) for r in rows} == per_country
    joined = lh.query("SELECT count(*) AS n FROM shop.d d JOIN shop.i USING (id) WHERE d.ts = i.ts").table
    assert joined.to_pylist() == [{"n": 60}]


def test_time_travel_by_version_timestamp_and_option(lh: Lakehouse, two_tables: dict[str, list[int]]) -> None:
    for name, versions in two_tables.items():
        table = lh.table(name)
        for n, v in enumerate(versions, start=1):
            assert lh.query(f"SELECT count(*) AS n FROM {name} AT (VERSION => {v})").table["n"][0].as_py() == 20 * n
            ts = table.snapshot(v).timestamp.isoformat()
            q = f"SELECT count(*) AS n FROM {name} AT (TIMESTAMP => '{ts}')"
            assert lh.query(q).table["n"][0].as_py() == 20 * n
            assert lh.query(f"SELECT count(*) AS n FROM {name}", as_of={name: v}).table["n"][0].as_py() == 20 * n
        # two versions of one table in one query
        q = (
            f"SELECT (SELECT count(*) FROM {name} AT (VERSION => {versions[0]})) AS old, "
            f"(SELECT count(*) FROM {name}) AS now"
        )
        assert lh.query(q).table.to_pylist() == [{"old": 20, "now": 60}]


def test_time_travel_rows_are_exact(lh: Lakehouse, two_tables: dict[str, list[int]]) -> None:
    for name, versions in two_tables.items():
        got = lh.query(f"SELECT * FROM {name} AT (VERSION => {versions[1]}) ORDER BY id").table
        assert got.cast(EVENTS).to_pylist() == pa.concat_tables([events(0, 20), events(20, 20)]).to_pylist()


def test_query_errors(lh: Lakehouse, two_tables: dict[str, list[int]]) -> None:
    with pytest.raises(QueryError, match="cannot parse"):
        lh.query("SELEC nonsense FROM")
    with pytest.raises(QueryError, match="exactly one"):
        lh.query("SELECT 1; SELECT 2")
    with pytest.raises(TableNotFoundError):
        lh.query("SELECT * FROM shop.nope")
    with pytest.raises(QueryError, match="query failed"):
        lh.query("SELECT no_such_column FROM shop.d")
    with pytest.raises(VersionNotFoundError):
        lh.query("SELECT * FROM shop.i AT (VERSION => 999)")
    with pytest.raises(QueryError, match="literal"):
        lh.query("SELECT * FROM shop.d AT (VERSION => 1 + 1)")


def test_max_rows_truncates(lh: Lakehouse, two_tables: dict[str, list[int]]) -> None:
    result = lh.query("SELECT * FROM shop.d", max_rows=7)
    assert result.table.num_rows == 7 and result.truncated
    result = lh.query("SELECT * FROM shop.d", max_rows=60)
    assert result.table.num_rows == 60 and not result.truncated


def test_ctes_and_aliases(lh: Lakehouse, two_tables: dict[str, list[int]]) -> None:
    q = "WITH x AS (SELECT id FROM shop.d WHERE id < 10) SELECT count(*) AS n FROM x JOIN shop.i AS y ON x.id = y.id"
    assert lh.query(q).table.to_pylist() == [{"n": 10}]
    q = "SELECT d.id FROM shop.d WHERE d.id = 3"  # qualified by the table's own name
    assert lh.query(q).table.to_pylist() == [{"id": 3}]


def test_rewrite_keeps_sample_pivot_alias_columns_and_qualified_names(
    lh: Lakehouse, two_tables: dict[str, list[int]]
) -> None:
    assert lh.query("SELECT count(*) AS n FROM shop.d TABLESAMPLE 5 ROWS").table.to_pylist() == [{"n": 5}]
    pivot = lh.query("SELECT * FROM (SELECT country FROM shop.i) PIVOT (count(*) FOR country IN ('DE', 'FR'))").table
    assert pivot.to_pylist() == [{"DE": 15, "FR": 15}]
    aliased = lh.query("SELECT x.a FROM shop.d AS x(a, b) WHERE x.a = 4").table
    assert aliased.to_pylist() == [{"a": 4}]
    assert lh.query("SELECT shop.d.id FROM shop.d WHERE shop.d.id = 2").table.to_pylist() == [{"id": 2}]


def test_only_queries_run(lh: Lakehouse, two_tables: dict[str, list[int]], tmp_path: Any) -> None:
    target = tmp_path / "leak.csv"
    for sql in (f"COPY (SELECT 42) TO '{target}'", "SET threads = 1", "CREATE TABLE x AS SELECT 1", "ATTACH 'x.db'"):
        with pytest.raises(QueryError, match="only queries"):
            lh.query(sql)
    assert not target.exists()
    with pytest.raises(QueryError, match="unsupported time travel"):
        lh.query("SELECT * FROM shop.d AT (TIMESTAMP => 1700000000)")


def test_empty_tables_query_as_empty(lh: Lakehouse) -> None:
    for fmt in ("delta", "iceberg"):
        lh.create_table(f"e.{fmt}", schema=EVENTS, format=fmt)
        assert lh.query(f"SELECT count(*) AS n FROM e.{fmt}").table.to_pylist() == [{"n": 0}]
        assert lh.query(f"SELECT * FROM e.{fmt}").table.column_names == EVENTS.names


def test_a_query_that_cannot_start_its_time_limit_gives_its_database_back(
    lh: Lakehouse, two_tables: dict[str, list[int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    def count() -> int:
        return int(lh.query("SELECT count(*) AS n FROM shop.d", timeout=5).table["n"][0].as_py())

    assert count() == 60
    start = threading.Thread.start

    def no_thread(self: threading.Thread) -> None:
        if self.name == "lakehouse-query-limit":
            raise RuntimeError("can't start new thread")
        start(self)

    monkeypatch.setattr(threading.Thread, "start", no_thread)
    with pytest.raises(RuntimeError, match="new thread"):
        count()
    monkeypatch.undo()
    db = lh.sql._db
    assert db is not None and db.active == 0, "the failed query still holds its database"
    assert count() == 60
