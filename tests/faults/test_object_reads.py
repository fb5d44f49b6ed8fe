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


def _forget_iceberg_reads() -> None:
    from lakehouse.tables import iceberg

    iceberg._recent_plans.clear()
    iceberg._recent_files.clear()
    iceberg._manifest_paths.clear()
    iceberg._manifest_lists.clear()
    iceberg._ENTRIES._held.clear()
    iceberg._ENTRIES._size = 0


def test_iceberg_metadata_on_s3_is_read_once_get_only_and_plans_as_pyiceberg_does(
    proxy: ProxyClient, s3_endpoint: S3Endpoint, bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A plan and the files of every version (what health, cost and orphan detection read): each manifest list
    and manifest once, one GET each, no HEAD; the same answers as pyiceberg's own reads (HEAD and GET)."""
    from lakehouse.tables import iceberg
    from tests.conftest import EVENTS, events

    with Lakehouse(proxied_settings(proxy, s3_endpoint, bucket, tmp_path)) as lh:
        table = lh.create_table("p.events", schema=EVENTS, format="iceberg")
        for i in range(6):  # fast appends: 6 manifest lists of 1..6 manifests, 6 manifests
            table.append(events(i * 10, 10))
        table.delete_rows("id < 5")  # a rewritten manifest (deleted entries) and a seventh version

        def answers() -> tuple[list[str], set[str]]:
            fresh = lh.table("p.events")
            return sorted(f.path for f in fresh.files()), fresh.version_paths(None)

        def requests() -> tuple[list[str], list[str]]:
            log = proxy.stats()["log"]
            avro = [(kind, path.split("?")[0]) for kind, _method, path, _status in log if ".avro" in path]
            return [p for k, p in avro if k == "GET"], [p for k, p in avro if k == "HEAD"]

        _forget_iceberg_reads()
        proxy.reset()
        ours = answers()
        gets, heads = requests()
        twice = sorted({p.rsplit("/", 1)[-1] for p in gets if gets.count(p) > 1})
        assert gets and not twice, f"read twice: {twice}"
        assert len({p for p in ours[1] if "snap-" in p}) == len(lh.table("p.events").snapshots())
        # a HEAD only where an object is read alone (the plan's manifest list; pyarrow's reader, see read_objects)
        assert len(heads) <= 2 < len(gets)

        _forget_iceberg_reads()
        # pyiceberg's FileIO reads everything
        monkeypatch.setattr(iceberg, "_GetOnly", lambda io, reader: io)
        monkeypatch.setattr(iceberg, "_read_manifest_lists", lambda ctx, io, isnaps: None)
        monkeypatch.setattr(iceberg, "_decoded_data_files", lambda ctx, table, manifests: {})
        proxy.reset()
        assert answers() == ours
        theirs, their_heads = requests()
        assert len(their_heads) >= len(theirs) >= len(gets)  # a HEAD before every GET, some objects twice
