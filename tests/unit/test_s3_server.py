"""The tests' S3 server (``tests/fixtures/s3_server.py``) answers a listing from the bucket's kept sorted key
names: every page must equal moto's own answer (the same keys and common prefixes, truncation and continuation
tokens), also when keys are put or deleted between two pages of one listing."""

from __future__ import annotations

import datetime as dt
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
        st.datetimes(timezones=st.just(dt.UTC)).map(lambda t: t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")),
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
