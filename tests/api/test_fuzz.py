"""Property-based fuzzing of the whole OpenAPI schema with schemathesis: whatever it sends, with an admin key,
the API answers without a 5xx (user mistakes are 4xx problem documents) and conforms to its own schema's
status codes and content types (errors under /iceberg and /api/2.1/unity-catalog take those protocols' models). A
table name in the path is a real table half of the time (a random name only ever reaches the 404), so the bodies
are fuzzed against real tables too."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api.app import create_app
from lakehouse.config import load_settings
from lakehouse.core import Lakehouse
from lakehouse.governance.keys import create_key
from lakehouse.schema import parse_partitioning
from tests.conftest import EVENTS, events

KEY: dict[str, str] = {}
TABLES = ("web.events", "web.orders")


@pytest.fixture(scope="module")
def fuzz_schema(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    root = tmp_path_factory.mktemp("fuzz")
    settings = load_settings(
        config_file=False, warehouse=str(root / "wh"), governance={"mask_secret": "fuzz"}, api={"max_body_bytes": 65536}
    )
    with Lakehouse(settings) as lh:
        table = lh.create_table(
            "web.events", schema=EVENTS, format="iceberg", partitioning=parse_partitioning("day(ts)")
        )
        table.append(events(0, 30))
        lh.create_table("web.orders", schema=EVENTS, format="delta").append(events(0, 10))
        KEY["admin"] = create_key(lh, name="fuzzer", role="admin")[1]
    app = create_app(settings)
    yield schemathesis.openapi.from_asgi("/openapi.json", app)
    app.state.lakehouse.close()


def test_no_server_errors(fuzz_schema: Any) -> None:
    """Every operation of the OpenAPI schema, 50 generated requests each (schemathesis strategies driven by
    hypothesis); a ``name`` path parameter is one of the fixture's tables half of the time."""
    operations = [result.ok() for result in fuzz_schema.get_all_operations()]
    assert len(operations) >= 20, "the whole API is in the schema"
    failures: list[str] = []
    statuses: dict[int, int] = {}
    for operation in operations:

        @settings(
            max_examples=50,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy(), table=st.sampled_from((None, None, *TABLES)))
        def check(case: Any, table: str | None) -> None:
            if case.method == "DELETE" and case.path == "/keys/{key_id}":
                case.path_parameters = {"key_id": "ffffffffffff"}  # never revoke the fuzzer's own key
            if table is not None and "name" in (case.path_parameters or {}):
                case.path_parameters = {**case.path_parameters, "name": table}
            response = case.call(headers={"X-API-Key": KEY["admin"]})
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            if response.status_code >= 500:
                failures.append(f"{case.method} {case.formatted_path}: {response.status_code} {response.text[:200]}")
            elif response.status_code >= 400:
                content_type = response.headers.get("content-type") or [""]
                content_type = content_type[0] if isinstance(content_type, list) else content_type
                if case.method == "HEAD":
                    pass  # no body
                elif case.path == "/iceberg/v1/oauth/tokens":  # OAuth2's error answer (RFC 6749 5.2)
                    assert isinstance(response.json().get("error"), str), response.text[:200]
                elif case.path.startswith("/iceberg/"):  # the Iceberg REST spec's error model
                    assert response.json()["error"]["code"] == response.status_code, response.text[:200]
                elif case.path.startswith("/api/2.1/unity-catalog/"):  # Unity Catalog's error model
                    assert isinstance(response.json()["error_code"], str), response.text[:200]
                else:
                    assert content_type.startswith("application/problem+json"), response.text[:200]

        check()
    assert not failures, "\n".join(failures[:10])
    # the requests were real: some were accepted, some refused as the user's mistake
    assert statuses.get(200, 0) > 50 and sum(n for code, n in statuses.items() if 400 <= code < 500) > 50, statuses
