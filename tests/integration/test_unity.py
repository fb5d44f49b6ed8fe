"""The served Unity Catalog API with a client nobody here wrote, DuckDB's ``unity_catalog`` extension, against
``lakehouse serve`` in its own process (tests/integration/conftest.py).

delta-rs's ``uc://`` tables are not tested: against this API on local storage (and against a minimal stand-in
server) delta-rs 1.6 got both answers it asks for (the table, then temporary credentials) and then hung, on some
runs and not others; open Delta tables in delta-rs by location."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import requests

from lakehouse.schema import parse_schema
from tests.integration.conftest import Served


def base(served: Served) -> str:
    return served.url.rsplit("/iceberg", 1)[0]


def get(served: Served, path: str, role: str = "admin", **params: Any) -> requests.Response:
    headers = {"Authorization": f"Bearer {served.keys[role]}"}
    return requests.get(f"{base(served)}/api/2.1/unity-catalog{path}", headers=headers, params=params, timeout=30)


def duck(served: Served, role: str) -> Any:
    import duckdb

    from lakehouse.duck import extension_path

    con = duckdb.connect(config={"autoinstall_known_extensions": False, "autoload_known_extensions": False})
    for ext in ("httpfs", "delta", "unity_catalog"):
        con.execute(f"LOAD '{extension_path(ext)}'")
    con.execute(
        "CREATE SECRET (TYPE unity_catalog, TOKEN ?, ENDPOINT ?, AWS_REGION 'us-east-1')",
        [served.keys[role], base(served)],
    )
    con.execute("ATTACH 'lakehouse' AS uc (TYPE unity_catalog)")
    return con


def attached(con: Any) -> set[tuple[str, str]]:
    """The attached catalog's tables (duckdb_tables(): the extension's SHOW ALL TABLES came back empty on a second
    connection in one process, while duckdb_tables() listed them)."""
    rows = con.execute("SELECT schema_name, table_name FROM duckdb_tables() WHERE database_name = 'uc'").fetchall()
    return {(r[0], r[1]) for r in rows}


def test_duckdb_attaches_the_delta_tables(served: Served) -> None:
    con = duck(served, "admin")
    tables = attached(con)
    assert ("sales", "deltas") in tables and ("crm", "contacts") in tables
    assert ("sales", "orders") not in tables, "Iceberg tables are the Iceberg REST catalog's"
    got = con.execute("SELECT id, name, amount FROM uc.sales.deltas ORDER BY id").fetchall()
    with served.lakehouse() as lh:
        expected = lh.query("SELECT id, name, amount FROM sales.deltas ORDER BY id").table.to_pylist()
    assert [dict(zip(("id", "name", "amount"), r, strict=True)) for r in got] == expected and len(expected) == 3
    con.close()


def test_tables_with_pii_are_neither_listed_nor_described_below_admin(served: Served) -> None:
    con = duck(served, "engineer")
    tables = attached(con)
    assert ("sales", "deltas") in tables and ("crm", "contacts") not in tables
    con.close()
    refused = get(served, "/tables/lakehouse.crm.contacts", role="reader")
    assert refused.status_code == 403 and refused.json()["error_code"] == "PERMISSION_DENIED"
    assert "PII columns (name)" in refused.json()["message"]
    assert get(served, "/tables/lakehouse.crm.contacts").status_code == 200
    # a quarantine table holds raw input: neither listed nor described below admin
    from lakehouse.ingest.pipeline import ingest_records

    with served.lakehouse() as lh:
        lh.create_table("crm.leads", schema=parse_schema("id:int64"), format="delta")
        assert ingest_records(lh, "crm.leads", [{"id": "alice@corp.com"}], source="t:1").quarantined == 1
    listed = get(served, "/tables", role="reader", catalog_name="lakehouse", schema_name="crm").json()["tables"]
    assert "leads__quarantine" not in [t["name"] for t in listed] and "leads" in [t["name"] for t in listed]
    assert get(served, "/tables/lakehouse.crm.leads__quarantine", role="reader").status_code == 403
    assert get(served, "/tables/lakehouse.crm.leads__quarantine").status_code == 200


def test_the_api_answers_as_unity_catalog(served: Served) -> None:
    catalogs = get(served, "/catalogs", role="reader").json()["catalogs"]
    assert [c["name"] for c in catalogs] == ["lakehouse"]
    schemas = {s["full_name"] for s in get(served, "/schemas", catalog_name="lakehouse").json()["schemas"]}
    assert {"lakehouse.sales", "lakehouse.crm"} <= schemas
    table = get(served, "/tables/lakehouse.sales.deltas").json()
    assert table["data_source_format"] == "DELTA" and table["storage_location"].startswith("file://")
    assert [(c["name"], c["type_text"], c["type_name"]) for c in table["columns"]] == [
        ("id", "bigint", "LONG"),
        ("name", "string", "STRING"),
        ("amount", "double", "DOUBLE"),
    ]
    missing = get(served, "/tables/lakehouse.sales.nope")
    assert missing.status_code == 404 and missing.json()["error_code"] == "NOT_FOUND"
    assert get(served, "/tables/lakehouse.sales.orders").status_code == 404, "an Iceberg table"
    assert get(served, "/schemas", catalog_name="other").status_code == 404
    anonymous = requests.get(f"{base(served)}/api/2.1/unity-catalog/catalogs", timeout=30)
    assert anonymous.status_code == 401 and anonymous.json()["error_code"] == "UNAUTHENTICATED"


def test_a_table_whose_files_are_gone_hides_no_other_table_of_its_schema(served: Served) -> None:
    """One Delta table's directory removed outside lakehouse: listing its schema answered 404 for the whole
    schema, so DuckDB's unity_catalog extension could read none of its tables."""
    import shutil

    with served.lakehouse() as lh:
        for name in ("gone.good", "gone.broken"):
            table = lh.create_table(name, schema=parse_schema("id:int64"), format="delta")
            table.append(pa.table({"id": pa.array([1], pa.int64())}))
        shutil.rmtree(lh.table("gone.broken").location)
    listed = get(served, "/tables", catalog_name="lakehouse", schema_name="gone")
    assert listed.status_code == 200, listed.text
    assert [t["name"] for t in listed.json()["tables"]] == ["good"]
