"""The tests' S3 server (``tests/fixtures/s3_server.py``) answers a listing from the bucket's kept sorted key
names: every page must equal moto's own answer (the same keys and common prefixes, truncation and continuation
tokens), also when keys are put or deleted between two pages of one listing."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from moto.core.serialize import TimestampSerializer
from moto.s3.models import FakeKey, S3Backend, s3_backends
from moto.s3.utils import _VersionedKeyStore

from tests.fixtures import s3_server

NAMES = st.text(alphabet="ab/é", min_size=1, max_size=5)


@pytest.fixture(scope="module")
def counted() -> Iterator[None]:
    """The key stores' mutations bump their generation, as in the server process."""
    with pytest.MonkeyPatch.context() as mp:
        for name in s3_server.MUTATIONS:
            mp.setattr(_VersionedKeyStore, name, s3_server._counted(getattr(_VersionedKeyStore, name)))
        yield


def _names(page: list[Any]) -> list[str]:
    return [item.name if isinstance(item, FakeKey) else item for item in page]


def _pages(backend: S3Backend, listing: Any, bucket: str, query: dict[str, Any], between: Any) -> list[Any]:
    """Every page of one listing: (names, truncated, token); ``between(page_number)`` runs after each page."""
    out = []
    token = None
    for n in range(1000):
        page, truncated, token = listing(
            backend,
            backend.get_bucket(bucket),
            query["prefix"],
            query["delimiter"],
            token,
            query["start_after"],
            query["max_keys"],
        )
        out.append((_names(page), truncated, token))
        between(n)
        if not truncated:
            return out
    raise AssertionError("the listing did not end")


@settings(max_examples=150, deadline=None)
@given(
    keys=st.lists(NAMES, max_size=25),
    deleted=st.lists(NAMES, max_size=6),
    put_between=st.lists(NAMES, max_size=3),
    versioned=st.booleans(),
    prefix=st.one_of(st.none(), st.text(alphabet="ab/", max_size=2)),
    delimiter=st.sampled_from([None, "/", "a"]),
    start_after=st.one_of(st.none(), NAMES),
    max_keys=st.integers(min_value=0, max_value=6),
)
def test_listing_pages_equal_motos(
    counted: None,
    keys: list[str],
    deleted: list[str],
    put_between: list[str],
    versioned: bool,
    prefix: str | None,
    delimiter: str | None,
    start_after: str | None,
    max_keys: int,
) -> None:
    query = {"prefix": prefix, "delimiter": delimiter, "start_after": start_after, "max_keys": max_keys}
    answers = []
    for listing in (s3_server._stock_list_objects_v2, s3_server.list_objects_v2):
        backend = S3Backend("us-east-1", "123456789012")
        bucket = f"listing-{uuid.uuid4().hex}"  # bucket names are global to moto's process
        backend.create_bucket(bucket, "us-east-1")
        if versioned:  # a deleted key leaves a delete marker as its newest version
            backend.put_bucket_versioning(bucket, "Enabled")
        for name in keys:
            backend.put_object(bucket, name, b"x")
        for name in deleted:
            if name in keys or versioned:
                backend.delete_object(bucket, name)

        def between(n: int, backend: S3Backend = backend, bucket: str = bucket) -> None:
            # a writer between the pages: a key put (or put again) and one deleted
            if n < len(put_between):
                backend.put_object(bucket, put_between[n], b"y")
                if keys:
                    backend.delete_object(bucket, keys[n % len(keys)])

        answers.append(_pages(backend, listing, bucket, query, between))
        s3_backends.bucket_accounts.pop(bucket, None)
    assert answers[1] == answers[0]


@given(
    value=st.one_of(
        st.datetimes(timezones=st.just(dt.UTC)),
        # as S3 writes them: four-digit years (strftime writes year 31 as "31", which no S3 timestamp is)
        st.datetimes(min_value=dt.datetime(1000, 1, 1), timezones=st.just(dt.UTC)).map(
            lambda t: t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        ),
        st.integers(min_value=0, max_value=4_000_000_000),
    ),
    timestamp_format=st.sampled_from(["iso8601", "iso8601_zeroed", "rfc822", "unixtimestamp"]),
)
def test_kept_timestamps_equal_motos(value: Any, timestamp_format: str) -> None:
    """A response's timestamps are converted once per value: the same text as moto's conversion, asked twice."""
    stock = s3_server._stock_timestamp(TimestampSerializer("iso8601"), value, timestamp_format)
    serializer = TimestampSerializer("rfc822")
    assert s3_server.convert_timestamp(serializer, value, timestamp_format) == stock
    assert s3_server.convert_timestamp(serializer, value, timestamp_format) == stock


KEYS = st.text(alphabet=st.sampled_from(list("ab/&<>\"'é %+\r\t~")), min_size=1, max_size=6)


@settings(max_examples=25, deadline=None)
@given(
    keys=st.lists(st.tuples(KEYS, st.sampled_from([None, "CRC32", "SHA256"])), max_size=12),
    prefix=st.one_of(st.none(), st.text(alphabet="ab/&", max_size=2)),
    delimiter=st.sampled_from([None, "/", "&"]),
    max_keys=st.integers(min_value=1, max_value=5),
    encoding=st.sampled_from([None, "url"]),
    fetch_owner=st.booleans(),
    storage_class=st.sampled_from(["STANDARD", "STANDARD_IA", "GLACIER_IR"]),
)
def test_listing_bodies_equal_motos(
    keys: list[tuple[str, str | None]],
    prefix: str | None,
    delimiter: str | None,
    max_keys: int,
    encoding: str | None,
    fetch_owner: bool,
    storage_class: str,
) -> None:
    """A listing page's keys written directly: the body is, byte for byte, what moto's serializer writes for the
    same page (every page of a listing, raw HTTP queries with and without URL encoding and owners)."""
    import boto3
    import requests
    from moto import mock_aws
    from moto.s3.responses import S3Response

    pairs: list[tuple[Any, Any]] = []
    written: list[str] = []
    write = s3_server._contents

    def contents(items: list[Any]) -> str | None:
        text = write(items)
        if text is not None:
            written.append(text)
        return text

    def both(self: S3Response, action_result: Any) -> Any:
        stock = s3_server._stock_serialized(self, action_result)
        ours = s3_server.serialized(self, action_result)
        pairs.append((stock, ours))
        return ours

    bucket = f"bodies-{uuid.uuid4().hex[:12]}"
    with mock_aws(), pytest.MonkeyPatch.context() as mp:
        mp.setattr(S3Response, "serialized", both)
        mp.setattr(s3_server, "_contents", contents)
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=bucket)
        for name, checksum in keys:
            extra = {"ChecksumAlgorithm": checksum} if checksum else {}
            client.put_object(Bucket=bucket, Key=name, Body=b"xy", StorageClass=storage_class, **extra)
        params: dict[str, Any] = {"list-type": "2", "max-keys": str(max_keys)}
        for name, value in (("prefix", prefix), ("delimiter", delimiter), ("encoding-type", encoding)):
            if value is not None:
                params[name] = value
        if fetch_owner:
            params["fetch-owner"] = "true"
        pages = 0
        while True:
            answer = requests.get(f"https://{bucket}.s3.amazonaws.com/", params=params, timeout=10)
            assert answer.status_code == 200, answer.text
            pages += 1
            token = re.search(r"<NextContinuationToken>([^<]+)</NextContinuationToken>", answer.text)
            if token is None:
                break
            params["continuation-token"] = token.group(1)
            assert pages < 50
    listed = [(stock, ours) for stock, ours in pairs if "<ListBucketResult" in str(stock[2])]
    assert len(listed) == pages
    with_keys = sum("<Contents>" in stock[2] for stock, _ in listed)
    assert len(written) == (0 if fetch_owner else with_keys)  # written directly unless an owner is asked for
    for stock, ours in listed:
        assert ours[0] == stock[0]
        assert ours[2] == stock[2]
        assert {k: v for k, v in ours[1].items() if k not in ("date", "x-amzn-requestid")} == {
            k: v for k, v in stock[1].items() if k not in ("date", "x-amzn-requestid")
        }
