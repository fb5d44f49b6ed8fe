"""An S3 listing split at known keys into ranges listed side by side returns what one paged listing returns: the
same objects in the same order, those the known keys do not name included (orphans before, between and after
them), nothing outside the prefix, no directory markers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import lakehouse.storage as storage
from lakehouse.core import Lakehouse
from lakehouse.errors import StorageError
from tests.conftest import S3Endpoint, s3_settings

pytestmark = pytest.mark.s3


def test_split_listing_equals_one_listing(
    s3_endpoint: S3Endpoint, bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = s3_endpoint.client()
    known = [f"t/data/day={d:02d}/part-{i:03d}.parquet" for d in range(6) for i in range(10)]
    unknown = [
        "t/_delta_log/00000000000000000000.json",  # before every known key
        "t/data/day=00/part-000.parquet.tmp",  # right after a split key
        "t/data/day=03/orphan.parquet",  # between
        "t/data/day=03/zzz",
        "t/zz/after-all.parquet",  # after every known key
        "t/data/day=04/",  # a directory marker: no file
    ]
    elsewhere = ["t2/data/x.parquet", "s/x.parquet", "t"]  # outside the prefix t/
    for i, key in enumerate(known + unknown + elsewhere):
        client.put_object(Bucket=bucket, Key=key, Body=b"x" * (i + 1))
    monkeypatch.setattr(storage, "LISTING_RANGE_KEYS", 5)
    lh = Lakehouse(s3_settings(s3_endpoint, bucket, tmp_path))
    location = f"s3://{bucket}/t"
    paths = [f"s3://{bucket}/{k}" for k in known]
    splits = storage._split_points(location, paths)
    assert len(splits) == 11, "60 known keys: 12 ranges"
    requests: list[Any] = []
    lh_client = storage._s3_client

    def counted(*args: Any, **kwargs: Any) -> Any:
        c = lh_client(*args, **kwargs)
        c.meta.events.register("before-call.s3.ListObjectsV2", lambda params, **_: requests.append(dict(params)))
        return c

    monkeypatch.setattr(storage, "_s3_client", counted)

    split = storage.list_objects(location, lh.ctx, known=paths)
    assert len(requests) == 12 and {r["query_string"].get("start-after") for r in requests} == {None, *splits}
    whole = storage.list_objects(location, lh.ctx)
    flat = [
        o
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="t/")
        for o in page.get("Contents", [])
        if not o["Key"].endswith("/")
    ]
    assert [o.path for o in split] == [o.path for o in whole] == [f"s3://{bucket}/{o['Key']}" for o in flat]
    assert [(o.size, o.mtime_s, o.storage_class) for o in split] == [
        (o.size, o.mtime_s, o.storage_class) for o in whole
    ]
    assert [o.path for o in storage.list_files(location, lh.ctx, known=paths)] == [o.path for o in whole]

    def ignoring_start_after(*args: Any, **kwargs: Any) -> Any:  # a store that lists from the prefix's start
        c = lh_client(*args, **kwargs)
        c.meta.events.register(
            "before-parameter-build.s3.ListObjectsV2", lambda params, **_: params.pop("StartAfter", None)
        )
        return c

    monkeypatch.setattr(storage, "_s3_client", ignoring_start_after)
    assert [o.path for o in storage.list_objects(location, lh.ctx, known=paths)] == [o.path for o in whole]
    assert storage._split_points(location, paths[:9]) == [], "fewer than two ranges' worth: one listing"
    assert storage._split_points(str(tmp_path), paths) == [], "local: no split"
    lh.close()


@pytest.mark.parametrize("fmt", ["delta", "iceberg"])
def test_a_prefetched_listing_is_the_listing_and_runs_while_the_versions_are_read(
    s3_endpoint: S3Endpoint, bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fmt: str
) -> None:
    """health, cost and the reconciliation list a table's location in the background while they read its
    versions' metadata (thousands of manifest or log reads on a big table): the listing has started when the
    metadata reads begin, the table is still listed once, and the answers are those of listing afterwards."""
    from lakehouse.maintenance.maintain import health
    from lakehouse.maintenance.reconcile import reconcile
    from lakehouse.tables.base import LakehouseTable
    from tests.conftest import EVENTS, events

    lh = Lakehouse(s3_settings(s3_endpoint, bucket, tmp_path))
    table = lh.create_table("p.events", schema=EVENTS, format=fmt)
    for i in range(4):
        table.append(events(i * 10, 10))
    client = s3_endpoint.client()
    client.put_object(Bucket=bucket, Key=table.location.split(f"{bucket}/", 1)[1] + "/data/orphan.parquet", Body=b"x")
    lists: list[str] = []
    lh_client = storage._s3_client

    def counted(*args: Any, **kwargs: Any) -> Any:
        c = lh_client(*args, **kwargs)
        c.meta.events.register("before-call.s3.ListObjectsV2", lambda **_: lists.append("LIST"))
        return c

    monkeypatch.setattr(storage, "_s3_client", counted)
    root = storage.normalize_path(table.location).rstrip("/") + "/"
    seen: list[object] = []
    version_paths = type(lh.table("p.events")).version_paths

    def watched(self: LakehouseTable, versions: Any = None) -> set[str]:
        listings = storage._shared_listings.get()
        seen.append(listings.done.get(root) if listings is not None else None)
        return version_paths(self, versions)

    monkeypatch.setattr(type(lh.table("p.events")), "version_paths", watched)
    prefetched = reconcile(lh, "p.events").as_dict()
    assert seen and all(s is not None for s in seen), "the listing had started when the versions were read"
    assert len(lists) == 1
    h = health(lh, "p.events", check_duplicates=False)
    assert len(lists) == 2, "health lists once"
    assert seen[-1] is not None

    monkeypatch.setattr(storage, "prefetch_listing", lambda *a, **k: None)  # the callers import it when called
    seen.clear()
    after = reconcile(lh, "p.events").as_dict()
    # (an Iceberg history of appends reads the older versions only once the listing shows an object the current
    # version does not account for: those reads come after the listing whatever it is)
    assert seen and seen[0] is None, "without the prefetch the listing comes after the first reads"
    assert prefetched == after and prefetched["unaccounted"]["files"] == 1
    assert h.signals["storage"] == {k: v for k, v in after.items() if k != "unaccounted_examples"}
    lh.close()


def test_a_prefetch_fails_where_its_listing_is_used_and_never_outlives_its_block(
    s3_endpoint: S3Endpoint, bucket: str, tmp_path: Path
) -> None:
    import threading

    lh = Lakehouse(s3_settings(s3_endpoint, bucket, tmp_path))
    missing = "s3://no-such-bucket-for-prefetch/t"
    storage.prefetch_listing(missing, lh.ctx)  # outside a block: nothing happens
    assert not [t for t in threading.enumerate() if t.name.startswith("lakehouse-prefetch")]
    with storage.shared_listings():
        storage.prefetch_listing(missing, lh.ctx)
        with pytest.raises(StorageError, match="cannot list"):
            storage.list_files(missing, lh.ctx)
    with storage.shared_listings():  # prefetched and never used: the block waits for it
        storage.prefetch_listing(f"s3://{bucket}/t", lh.ctx)
    assert not [t for t in threading.enumerate() if t.name.startswith("lakehouse-prefetch")]
    lh.close()


def test_a_directory_is_listed_at_once_while_a_listing_above_it_is_still_being_made(
    s3_endpoint: S3Endpoint, bucket: str, tmp_path: Path
) -> None:
    """A Delta log's listing (one directory) during health's prefetched listing of the whole table is made
    directly, not after the table's: the commits it names are read while the table is listed."""
    import threading
    from concurrent.futures import Future

    client = s3_endpoint.client()
    for key in ("t/_delta_log/00000000000000000000.json", "t/_delta_log/00000000000000000001.json", "t/a.parquet"):
        client.put_object(Bucket=bucket, Key=key, Body=b"{}")
    lh = Lakehouse(s3_settings(s3_endpoint, bucket, tmp_path))
    direct = storage.list_files(f"s3://{bucket}/t/_delta_log", lh.ctx, recursive=False)
    with storage.shared_listings():
        listings = storage._shared_listings.get()
        assert listings is not None
        pending: Future[list[storage.ObjectInfo]] = Future()  # a prefetch that finishes in 10 s
        listings.done[f"s3://{bucket}/t/"] = pending
        finish = threading.Timer(10, pending.set_result, [[storage.ObjectInfo(f"s3://{bucket}/t/a.parquet", 2, None)]])
        finish.start()
        log = storage.list_files(f"s3://{bucket}/t/_delta_log", lh.ctx, recursive=False)
        assert not pending.done(), "the directory's listing waited for the table's"
        assert [o.path for o in log] == [o.path for o in direct] and len(log) == 2
        finish.cancel()
        pending.set_result([storage.ObjectInfo(f"s3://{bucket}/t/a.parquet", 2, None)])
        assert [o.path for o in storage.list_files(f"s3://{bucket}/t", lh.ctx)] == [f"s3://{bucket}/t/a.parquet"]
    lh.close()
