"""Tables nobody here wrote (issue 15): nested columns and awkward names end to end on both formats (create,
append, `table show`, SQL, compaction and Z-order with exact values), and nested JSON ingestion."""

from __future__ import annotations

import decimal
import json
import math
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from lakehouse.config import load_settings
from lakehouse.core import Lakehouse
from lakehouse.errors import LakehouseError
from lakehouse.maintenance.compaction import optimize
from lakehouse.maintenance.planner import CompactionOptions
from lakehouse.schema import format_type, parse_partitioning, parse_schema
from tests.cli.test_cli import run, run_json
from tests.conftest import their_iceberg_table

SPEC = (
    "id:int64 not null, region:string, `first name`:string, `a.b`:int64, ü:string, 1st:int32, `q\"u'ote`:string, "
    "`it``s`:bool, d:decimal(38,9), raw:binary, "
    "s:struct<x: int64, `y z`: string, inner: struct<f: float64, tags: list<string>>>, "
    "l:list<struct<k: string, v: float64 not null>>, m:map<string, list<int64>>"
)
SCHEMA = parse_schema(SPEC)


def batch(start: int, n: int) -> pa.Table:
    ids = range(start, start + n)
    cols: dict[str, list[Any]] = {
        "id": list(ids),
        "region": [("eu", "us", None)[i % 3] for i in ids],
        "first name": [None if i % 4 == 0 else f"näme {i}" for i in ids],
        "a.b": [(i * 7919) % 101 for i in ids],
        "ü": ["" if i % 5 == 0 else "ü" * (i % 3 + 1) for i in ids],
        "1st": [i - 50 for i in ids],
        "q\"u'ote": [f"'\"{i}" for i in ids],
        "it`s": [None if i % 6 == 0 else i % 2 == 0 for i in ids],
        "d": [None if i % 9 == 0 else decimal.Decimal(f"{i}{'9' * 26}.123456789") for i in ids],
        "raw": [bytes([i % 256, 0]) * (i % 3) for i in ids],
        "s": [
            None
            if i % 7 == 0
            else {
                "x": i,
                "y z": None if i % 3 == 0 else f"y{i}",
                "inner": None
                if i % 11 == 0
                else {"f": -0.0 if i % 5 == 0 else (math.nan if i % 13 == 0 else i / 3), "tags": [f"t{i}", None, ""]},
            }
            for i in ids
        ],
        # a NULL list of structs too: pyiceberg 0.12's appends wrote it as an empty list
        "l": [
            None if i % 8 == 3 else [{"k": None if j else f"k{i}", "v": -0.0 if j else i * 1.5} for j in range(i % 3)]
            for i in ids
        ],
        "m": [None if i % 4 == 1 else {"k1": [i, None], "k2": []} if i % 2 else {} for i in ids],
    }
    return pa.table(cols, schema=SCHEMA)


def exact(v: Any) -> Any:
    """Values compared exactly: NaN equal to NaN, -0.0 apart from 0.0."""
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


def test_nested_columns_and_awkward_names_end_to_end(wh_lh: Any, fmt: str) -> None:
    wh, lh = wh_lh
    table = lh.create_table("odd.t", schema=SCHEMA, format=fmt, partitioning=parse_partitioning("region"))
    for i in range(4):
        table.append(batch(i * 30, 30))
    expected = exact(pa.concat_tables([batch(i * 30, 30) for i in range(4)]).sort_by("id").to_pylist())
    assert contents(table) == expected

    # the catalog stores and reads back every type; `table show` names them as the schema spec does
    shown = run_json("-w", wh, "table", "show", "odd.t")
    assert [(c["name"], c["type"]) for c in shown["schema"]] == [(f.name, format_type(f.type)) for f in SCHEMA]
    assert (
        shown["schema"][-3]["type"] == "struct<x: int64, `y z`: string, inner: struct<f: float64, tags: list<string>>>"
    )
    spec = ", ".join(
        f"`{c['name'].replace('`', '``')}`:{c['type']}{'' if c['nullable'] else ' not null'}" for c in shown["schema"]
    )
    assert parse_schema(spec) == SCHEMA
    text = run("-w", wh, "table", "show", "odd.t").stdout
    assert "first name" in text and "`y z`" in text and "list<struct<k: string, v: float64 not null>>" in text

    # SQL: nested fields and quoted names, as DuckDB quotes them
    sql = (
        'SELECT id, s.inner.tags AS tags, s."y z" AS yz, "first name", "a.b", "1st", "it`s", m[\'k1\'] AS k1, '
        'l[1].k AS k FROM odd.t WHERE s.x > 2 AND "a.b" < 60 ORDER BY id'
    )
    got = run_json("-w", wh, "query", sql)["rows"]
    want = [
        {
            "id": r["id"],
            "tags": r["s"]["inner"]["tags"] if r["s"]["inner"] else None,
            "yz": r["s"]["y z"],
            "first name": r["first name"],
            "a.b": r["a.b"],
            "1st": r["1st"],
            "it`s": r["it`s"],
            "k1": dict(r["m"]).get("k1") if r["m"] is not None else None,
            "k": r["l"][0]["k"] if r["l"] else None,
        }
        for r in batch(0, 120).to_pylist()
        if r["s"] is not None and r["s"]["x"] > 2 and r["a.b"] < 60
    ]
    assert got == want

    # compaction and Z-order (by awkward names) keep every value exactly
    before = len(table.files())
    optimize(lh, "odd.t", CompactionOptions(target_file_size=64 << 20))
    assert len(lh.table("odd.t").files()) < before
    assert contents(lh.table("odd.t")) == expected
    table.append(batch(120, 30))
    expected += exact(batch(120, 30).to_pylist())
    expected.sort(key=lambda r: r["id"])
    result = optimize(lh, "odd.t", CompactionOptions(target_file_size=64 << 20, zorder=("a.b", "first name")))
    assert [p.status for p in result.partitions] and all(p.status == "committed" for p in result.partitions)
    assert contents(lh.table("odd.t")) == expected
    assert run_json("-w", wh, "query", "SELECT count(*) AS n FROM odd.t WHERE s.inner.f IS NULL")["rows"][0][
        "n"
    ] == sum(1 for r in expected if r["s"] is None or r["s"]["inner"] is None or r["s"]["inner"]["f"] is None)
    with pytest.raises(LakehouseError, match="nested column"):
        optimize(lh, "odd.t", CompactionOptions(zorder=("s",)))


def test_delta_rewrite_with_a_plain_column_after_a_nested_one_is_exact(lh: Lakehouse) -> None:
    """The statistics of rewritten Delta files describe each column by its own Parquet leaf, also after a nested
    column (several leaves): a plain column after one is neither refused nor read as NULL."""
    schema = parse_schema("id:int64 not null, s:struct<a: int64, b: list<string>>, d:decimal(38,9), n:int64")
    table = lh.create_table("odd.after", schema=schema, format="delta")
    rows = [{"id": i, "s": {"a": i, "b": ["x"]}, "d": decimal.Decimal(f"{i}.5"), "n": i * 3} for i in range(20)]
    for k in range(3):
        table.append(pa.Table.from_pylist(rows[k::3], schema=schema))
    expected = contents(table)
    optimize(lh, "odd.after", CompactionOptions(target_file_size=64 << 20))
    after = lh.table("odd.after")
    assert len(after.files()) == 1 and contents(after) == expected
    (lo, hi, nulls) = after.files()[0].stats["n"]
    assert (lo, hi, nulls) == (0, 57, 0)
    assert contents(after) == expected and after.scan(filter="n >= 30").num_rows == 10


def test_ingest_nested_json_records(lh: Lakehouse, fmt: str) -> None:
    from lakehouse.ingest.pipeline import ingest_records

    lh.create_table("odd.ingest", schema=SCHEMA, format=fmt)
    good = {
        "id": 1,
        "first name": "Zoë",
        "a.b": "7",
        "d": "12345678901234567890123456789.123456789",
        "s": {"x": "42", "y z": None, "inner": {"f": -0.0, "tags": ["a", None, ""]}},
        "l": [{"k": None, "v": 1}, {"k": "b", "v": "2.5"}],
        "m": {"k1": [1, None], "k2": []},
    }
    records: list[Any] = [
        good,
        json.dumps({"id": 2, "s": {"x": 1, "inner": {"f": "abc"}}}),  # not a number deep inside
        {"id": 3, "l": [{"k": "a"}]},  # v is required inside the list's structs
        {"id": 4, "s": {"x": 1, "extra": True}},  # a key the struct does not have: no silent loss
        {"id": 5, "m": {"k": ["1.5"]}},  # not an integer
        {"id": 6, "s": None, "l": [], "m": [["k", [6]]]},  # a map as [key, value] pairs
        "{not json",
    ]
    result = ingest_records(lh, "odd.ingest", records, source="test:nested")
    assert (result.rows, result.quarantined) == (2, 5)
    rows = lh.table("odd.ingest").scan().sort_by("id").to_pylist()
    assert [r["id"] for r in rows] == [1, 6]
    first = rows[0]
    assert first["a.b"] == 7 and first["d"] == decimal.Decimal("12345678901234567890123456789.123456789")
    assert first["s"] == {"x": 42, "y z": None, "inner": {"f": 0.0, "tags": ["a", None, ""]}}
    assert math.copysign(1.0, first["s"]["inner"]["f"]) == -1.0
    assert first["l"] == [{"k": None, "v": 1.0}, {"k": "b", "v": 2.5}]
    assert dict(first["m"]) == {"k1": [1, None], "k2": []} and dict(rows[1]["m"]) == {"k": [6]}
    errors = {e["position"]: e["error"] for e in result.errors} if result.errors else {}
    quarantine = lh.table("odd.ingest__quarantine").scan().sort_by("position").to_pylist()
    reasons = {q["position"]: q["error"] for q in quarantine} or errors
    assert "'s.inner.f'" in reasons[1] and "'abc' is not a number" in reasons[1]
    assert "'l[0].v'" in reasons[2] and "required" in reasons[2]
    assert "unknown field(s) 'extra'" in reasons[3]
    assert "m['k'][0]" in reasons[4]
    assert "not valid JSON" in reasons[6]


def test_schema_evolution_with_a_nested_column(lh: Lakehouse, fmt: str) -> None:
    """A nested column added by a later version: older versions read it as NULL of its exact type, and a rewrite
    over files from before and after keeps every value."""
    from lakehouse.schema import parse_type

    schema = parse_schema("id:int64 not null, `a b`:string")
    table = lh.create_table("odd.evo", schema=schema, format=fmt)
    table.append(pa.table({"id": [1, 2], "a b": ["x", None]}, schema=schema))
    first = table.snapshot().version
    added = pa.field("n s", parse_type("struct<k: int64, `t s`: list<string>, m: map<string, float64>>"))
    table.add_columns([added])
    lh.catalog.update_table(table.name, table.definition)
    table = lh.table("odd.evo")
    assert lh.table_record("odd.evo").definition.schema.field("n s").type == added.type
    rows = [{"id": 3, "a b": "z", "n s": {"k": 3, "t s": ["q", None], "m": [("p", -0.0)]}}, {"id": 4, "n s": None}]
    table.append(pa.Table.from_pylist(rows, schema=table.schema))
    table.append(pa.Table.from_pylist([{"id": 5, "a b": "w"}], schema=table.schema))
    expected = contents(table)
    assert [r["n s"] for r in expected][:2] == [None, None]

    old = lh.query('SELECT id, "n s" FROM odd.evo ORDER BY id', as_of={"odd.evo": first}).table
    assert old.schema.field("n s").type.equals(added.type) and old.column("n s").null_count == 2
    now = lh.query('SELECT id, "n s"."t s" AS ts, "n s".m[\'p\'] AS p FROM odd.evo WHERE id = 3').table.to_pylist()
    assert exact(now) == exact([{"id": 3, "ts": ["q", None], "p": -0.0}])

    optimize(lh, "odd.evo", CompactionOptions(target_file_size=64 << 20))
    assert len(lh.table("odd.evo").files()) == 1
    assert contents(lh.table("odd.evo")) == expected


def test_an_iceberg_fixed_column_is_refused_by_name_before_any_rewrite(tmp_path: Path) -> None:
    """pyiceberg writes a fixed(3) column (as a partition source and as a plain one); lakehouse's rewrites would
    write it as variable-length binary, which pyiceberg refuses at the commit: compaction, dedup and tiering
    refuse the table by name first, and its files and snapshot stay as they were."""
    from pyiceberg.partitioning import PartitionField as IcebergField
    from pyiceberg.partitioning import PartitionSpec
    from pyiceberg.schema import Schema
    from pyiceberg.transforms import IdentityTransform
    from pyiceberg.types import FixedType, LongType, NestedField, StructType

    from lakehouse.errors import UnsupportedOperationError
    from lakehouse.maintenance.dedup import dedup

    root = tmp_path / "theirs"
    schema = Schema(
        NestedField(1, "id", LongType(), required=False),
        NestedField(2, "code", FixedType(3), required=False),
        NestedField(3, "s", StructType(NestedField(4, "tag", FixedType(2), required=False)), required=False),
    )
    spec = PartitionSpec(IcebergField(source_id=2, field_id=1000, transform=IdentityTransform(), name="code"))
    catalog, table = their_iceberg_table(root, schema, spec)
    for i in range(3):
        rows = [{"id": i, "code": b"abc", "s": {"tag": b"xy"}}]
        table.append(pa.Table.from_pylist(rows, schema=schema.as_arrow()))
    catalog.engine.dispose()
    with Lakehouse(load_settings(config_file=False, warehouse=str(tmp_path / "wh"))) as lh:
        lh.register_table("f.fixed", location=str(root / "t"), format="iceberg")
        before = (lh.table("f.fixed").snapshot().version, sorted(f.path for f in lh.table("f.fixed").files()))
        for job in (
            lambda: optimize(lh, "f.fixed", CompactionOptions(), dry_run=False),
            lambda: dedup(lh, "f.fixed", keys=["id"], dry_run=False),
        ):
            with pytest.raises(UnsupportedOperationError, match=r"fixed\(N\) column\(s\) code, s"):
                job()
        after = lh.table("f.fixed")
        assert (after.snapshot().version, sorted(f.path for f in after.files())) == before
        assert after.row_count() == 3


def test_names_differing_only_in_case_are_refused_by_name_not_read_as_one_another(tmp_path: Path) -> None:
    """Iceberg allows columns ``A`` and ``a`` (and a struct's ``B`` and ``b``); DuckDB resolves names without case:
    ``SELECT *`` answered ``a`` with ``A``'s values and ``s.b`` with ``s.B``'s, silently, and ``dedup --key ID``
    planned by ``id``. Queries and rewrites are now refused naming the names; scans stay exact."""
    from pyiceberg.schema import Schema
    from pyiceberg.types import LongType, NestedField, StructType

    from lakehouse.errors import UnsupportedOperationError
    from lakehouse.maintenance.dedup import dedup

    schema = Schema(
        NestedField(1, "id", LongType(), required=False),
        NestedField(2, "A", LongType(), required=False),
        NestedField(3, "a", LongType(), required=False),
        NestedField(
            4,
            "s",
            StructType(
                NestedField(5, "B", LongType(), required=False), NestedField(6, "b", LongType(), required=False)
            ),
            required=False,
        ),
    )
    catalog, theirs = their_iceberg_table(tmp_path / "theirs", schema)
    rows = [{"id": i, "A": i, "a": -i, "s": {"B": 10 * i, "b": -10 * i}} for i in range(1, 4)]
    for row in rows:
        theirs.append(pa.Table.from_pylist([row], schema.as_arrow()))
    catalog.engine.dispose()
    with Lakehouse(load_settings(config_file=False, warehouse=str(tmp_path / "wh"))) as lh:
        lh.register_table("f.cased", location=str(tmp_path / "theirs" / "t"), format="iceberg")
        table = lh.table("f.cased")
        assert any("A / a" in w and "s.B / s.b" in w for w in table.limitations())
        assert sorted(table.scan().to_pylist(), key=lambda r: r["id"]) == rows
        for sql in ("SELECT * FROM f.cased", 'SELECT "a" FROM f.cased'):
            with pytest.raises(UnsupportedOperationError, match=r"cannot be queried .*A / a, s\.B / s\.b differ only"):
                lh.query(sql)
        with pytest.raises(UnsupportedOperationError, match="cannot be queried"):
            lh.query("SELECT count(*) FROM f.cased", masked=True)
        with pytest.raises(UnsupportedOperationError, match="cannot be rewritten"):
            optimize(lh, "f.cased", CompactionOptions(min_input_files=2))
        with pytest.raises(UnsupportedOperationError, match="cannot be rewritten"):
            dedup(lh, "f.cased", keys=["A"], dry_run=True)
        assert sorted(lh.table("f.cased").scan().to_pylist(), key=lambda r: r["id"]) == rows, "nothing written"


def test_time_travel_reads_a_renamed_column_by_its_field_id(tmp_path: Path) -> None:
    """Another writer renamed ``email`` to ``contact_email`` (masked for readers) and added an unrelated column
    ``email``; ``code`` was dropped and added again as another field. An old version was read by name: a masked
    reader got the raw addresses under ``email``, the renamed column was NULL and the old ``code`` values came
    back under the new column. Old versions are now read by Iceberg field id, in SQL and in masked reads."""
    from pyiceberg.schema import Schema
    from pyiceberg.types import LongType, NestedField, StringType

    schema = Schema(
        NestedField(1, "id", LongType(), required=False),
        NestedField(2, "email", StringType(), required=False),
        NestedField(3, "code", LongType(), required=False),
    )
    catalog, theirs = their_iceberg_table(tmp_path / "theirs", schema)
    theirs.append(pa.table({"id": [1, 2], "email": ["alice@example.com", "bob@example.com"], "code": [7, 8]}))
    with theirs.update_schema() as update:
        update.rename_column("email", "contact_email")
    with theirs.update_schema() as update:
        update.delete_column("code")
    with theirs.update_schema() as update:
        update.add_column("email", StringType())
        update.add_column("code", StringType())
    catalog.engine.dispose()
    settings = load_settings(config_file=False, warehouse=str(tmp_path / "wh"), governance={"mask_secret": "s" * 32})
    with Lakehouse(settings) as lh:
        lh.register_table("f.people", location=str(tmp_path / "theirs" / "t"), format="iceberg")
        lh.set_policy("f.people", {"masking": {"contact_email": "hash"}})
        first = lh.table("f.people").snapshots()[0].version
        sql = "SELECT id, contact_email, email, code FROM f.people ORDER BY id"
        old = lh.query(sql, as_of={"f.people": first}).table.to_pylist()
        assert old == [
            {"id": 1, "contact_email": "alice@example.com", "email": None, "code": None},
            {"id": 2, "contact_email": "bob@example.com", "email": None, "code": None},
        ]
        masked = lh.query(sql, as_of={"f.people": first}, masked=True).table.to_pylist()
        assert "example.com" not in str(masked) and all(r["contact_email"].startswith("tok_") for r in masked)
        scanned = lh.table("f.people").scan(as_of=first).sort_by("id").to_pylist()
        assert [(r["contact_email"], r["email"], r["code"]) for r in scanned] == [
            ("alice@example.com", None, None),
            ("bob@example.com", None, None),
        ]
        picked = lh.table("f.people").scan(as_of=first, filter="contact_email = 'bob@example.com'", columns=["id"])
        assert picked.column("id").to_pylist() == [2]


def test_table_show_reports_the_schema_another_writer_evolved(tmp_path: Path) -> None:
    """pyiceberg renames, widens and adds columns after the table was made here: `table show` (and GET
    /tables/{name}) report the table's schema now, not the catalog's copy from its creation."""
    from pyiceberg.types import LongType, StringType

    from lakehouse.presentation import table_summary

    with Lakehouse(load_settings(config_file=False, warehouse=str(tmp_path / "wh"))) as lh:
        table = lh.create_table("f.grown", schema=parse_schema("id:int32, name:string"), format="iceberg")
        table.append(pa.table({"id": pa.array([1], pa.int32()), "name": ["a"]}))
        with table._table.update_schema() as update:
            update.update_column("id", LongType())
            update.rename_column("name", "label")
            update.add_column("extra", StringType())
        shown = {c["name"]: c["type"] for c in table_summary(lh, "f.grown")["schema"]}
        assert shown == {"id": "int64", "label": "string", "extra": "string"}, shown
