"""An S3 listing split at known keys into ranges listed side by side returns what one paged listing returns: the
same objects in the same order, those the known keys do not name included (orphans before, between and after
them), nothing outside the prefix, no directory markers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import lakehouse.storage as storage
from lakehouse.core import Lakehouse
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
