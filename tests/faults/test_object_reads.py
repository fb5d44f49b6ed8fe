"""``storage.read_objects``: the reader of many small objects (a Delta log's commit files). On S3 one GET per
object and no HEAD, counted through the proxy; a body cut off midway is read again; a missing object is a
``StorageError`` naming it."""

from __future__ import annotations

from pathlib import Path

import pytest

from lakehouse.core import Lakehouse
from lakehouse.errors import StorageError
from lakehouse.storage import StorageContext, read_objects
from tests.conftest import S3Endpoint
from tests.faults.conftest import proxied_settings
from tests.faults.proxy import FaultPlan, ProxyClient

pytestmark = pytest.mark.s3


def _bodies(n: int) -> list[bytes]:
    # distinct sizes and contents, long enough that a cut-off body is a real partial read
    return [(f'{{"add": {{"path": "part-{i}.parquet"}}}}\n' * (50 + i)).encode() for i in range(n)]


@pytest.fixture
def stored(proxy: ProxyClient, s3_endpoint: S3Endpoint, bucket: str, tmp_path: Path) -> tuple[Lakehouse, list[str]]:
    bodies = _bodies(24)
    client = s3_endpoint.client()
    keys = [f"log/{i:020d}.json" for i in range(len(bodies))]
    for key, body in zip(keys, bodies, strict=True):
        client.put_object(Bucket=bucket, Key=key, Body=body)
    lh = Lakehouse(proxied_settings(proxy, s3_endpoint, bucket, tmp_path))
    proxy.reset()
    return lh, [f"s3://{bucket}/{k}" for k in keys]


def test_one_get_per_object_no_head(stored: tuple[Lakehouse, list[str]], proxy: ProxyClient) -> None:
    lh, paths = stored
    with lh:
        got = list(read_objects(paths, lh.ctx))
    assert got == _bodies(len(paths))
    requests = proxy.stats()["requests"]
    assert requests.get("GET", 0) == len(paths)
    assert requests.get("HEAD", 0) == 0
    proxy.reset()
    with lh:
        assert list(read_objects(paths[:1], lh.ctx)) == _bodies(1)  # one object: pyarrow's HEAD and GET


def test_a_body_cut_off_midway_is_read_again(stored: tuple[Lakehouse, list[str]], proxy: ProxyClient) -> None:
    lh, paths = stored
    proxy.plan(FaultPlan("reset", every=3, kinds=("GET",)))
    with lh:
        got = list(read_objects(paths, lh.ctx))
    stats = proxy.stats()
    assert stats["faults"].get("reset", 0) >= len(paths) // 3 - 1  # the faults happened ...
    assert got == _bodies(len(paths))  # ... and every body came back whole


def test_a_missing_object_is_a_storage_error_naming_it(stored: tuple[Lakehouse, list[str]], proxy: ProxyClient) -> None:
    lh, paths = stored
    gone = paths[0].rsplit("/", 1)[0] + "/99999999999999999999.json"
    with lh, pytest.raises(StorageError, match=r"99999999999999999999\.json"):
        list(read_objects([*paths[:3], gone], lh.ctx))


def test_local_files_read_in_order(tmp_path: Path) -> None:
    bodies = _bodies(12)
    paths = []
    for i, body in enumerate(bodies):
        p = tmp_path / f"{i:020d}.json"
        p.write_bytes(body)
        paths.append(str(p))
    ctx = StorageContext(str(tmp_path), "sqlite://")  # local reads need no credentials
    assert list(read_objects(paths, ctx)) == bodies
    with pytest.raises(StorageError, match=r"missing\.json"):
        list(read_objects([*paths, str(tmp_path / "missing.json")], ctx))
