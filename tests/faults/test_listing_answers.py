"""A listing page that S3 answers with status 200 but cannot be read (an error in the body, or XML cut short) is
asked for again, by lakehouse's S3 clients as by boto3's own; lakehouse's parse each page's body once
(``lakehouse.storage._check_200``), where botocore parses it once to look for an error and again to read it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from botocore.parsers import RestXMLParser

from lakehouse.core import Lakehouse
from lakehouse.storage import list_objects
from tests.conftest import S3Endpoint
from tests.faults.conftest import proxied_settings
from tests.faults.proxy import FaultPlan, ProxyClient

pytestmark = pytest.mark.s3

KEYS = 2_001  # three pages: 1,000, 1,000 and 1


@pytest.fixture(scope="module")
def listed_bucket(s3_endpoint: S3Endpoint) -> tuple[str, list[str]]:
    """A bucket of ``KEYS`` keys under ``t/``, filled once for this module's tests (which only list it)."""
    import concurrent.futures as cf
    import uuid

    name = f"lh-test-{uuid.uuid4().hex[:12]}"
    client = s3_endpoint.client()
    client.create_bucket(Bucket=name)
    keys = [f"t/part-{i:05d}.parquet" for i in range(KEYS)]
    with cf.ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda k: client.put_object(Bucket=name, Key=k, Body=b"x"), keys))
    return name, keys


@pytest.fixture
def bucket(listed_bucket: tuple[str, list[str]]) -> str:
    return listed_bucket[0]


@pytest.fixture
def listed(
    proxy: ProxyClient, s3_endpoint: S3Endpoint, listed_bucket: tuple[str, list[str]], tmp_path: Path
) -> tuple[Lakehouse, list[str]]:
    name, keys = listed_bucket
    return Lakehouse(proxied_settings(proxy, s3_endpoint, name, tmp_path)), keys


def _boto3_keys(proxy: ProxyClient, endpoint: S3Endpoint, bucket: str) -> list[str]:
    client = S3Endpoint(proxy.url, endpoint.access_key, endpoint.secret_key, endpoint.region).client()
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="t/")
    return [o["Key"] for page in pages for o in page.get("Contents", [])]


@pytest.mark.parametrize("fault", ["error200", "cut_xml"])
def test_a_page_answered_200_that_cannot_be_read_is_asked_for_again(
    listed: tuple[Lakehouse, list[str]], proxy: ProxyClient, s3_endpoint: S3Endpoint, bucket: str, fault: str
) -> None:
    lh, keys = listed
    location = f"s3://{bucket}/t"
    for who in ("lakehouse", "boto3"):  # botocore's own check as the reference: the same answer, the same retries
        proxy.reset()
        proxy.plan(FaultPlan(fault, every=2, first=1, limit=2, kinds=("LIST",)))  # the first and the third page
        with lh:
            got = (
                [o.path.split("/", 3)[3] for o in list_objects(location, lh.ctx)]
                if who == "lakehouse"
                else _boto3_keys(proxy, s3_endpoint, bucket)
            )
        stats = proxy.stats()
        assert stats["faults"] == {fault: 2}, who
        assert got == keys, who
        assert stats["requests"]["LIST"] == 3 + 2, who  # each faulty page once more


def test_each_page_is_parsed_once(
    listed: tuple[Lakehouse, list[str]], bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    lh, keys = listed
    parsed: list[Any] = []
    original = RestXMLParser._parse_xml_string_to_dom

    def counted(self: Any, xml_string: Any) -> Any:
        parsed.append(xml_string)
        return original(self, xml_string)

    monkeypatch.setattr(RestXMLParser, "_parse_xml_string_to_dom", counted)
    with lh:
        got = [o.path.split("/", 3)[3] for o in list_objects(f"s3://{bucket}/t", lh.ctx)]
    assert got == keys
    assert parsed == []  # every page's document came from the check's parse


def _list_handlers(session: Any) -> list[Any]:
    emitter = session._session.get_component("event_emitter")
    return list(emitter._emitter._handlers.prefix_search("before-parse.s3.ListObjectsV2"))


def test_a_botocore_without_the_check_keeps_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    """lakehouse replaces botocore's check only where botocore has it as lakehouse knows it (boto3 is not
    pinned); a botocore that renamed it keeps its own handler."""
    from botocore import handlers

    from lakehouse import storage

    assert storage._check_200 in _list_handlers(storage._session())
    monkeypatch.setattr(storage, "_boto3_session", None)  # a session made anew (the old one comes back after)
    monkeypatch.delattr(handlers, "_should_handle_200_error")
    listed = _list_handlers(storage._session())
    assert storage._check_200 not in listed
    assert handlers._handle_200_error in listed
