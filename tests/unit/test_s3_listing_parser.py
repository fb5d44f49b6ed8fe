"""lakehouse's S3 clients read a listing page's keys in one pass over each item's elements (lakehouse.storage's
listing parser) where botocore walks its model per member: the parsed answer must be botocore's, for every
element S3 may send in an item (owners, restore status, checksums, empty and unknown elements, text to escape)."""

from __future__ import annotations

from typing import Any
from xml.sax.saxutils import escape

import botocore.session
import pytest
from botocore.parsers import RestXMLParser
from hypothesis import given, settings
from hypothesis import strategies as st

from lakehouse.storage import _listing_parser, _session, _timestamp

TEXT = st.text(alphabet=st.sampled_from(list("ab/&<>\"' é%+~\t")), max_size=6)
NUMBER = st.integers(min_value=0, max_value=2**62).map(str)
TIME = st.sampled_from(["2026-12-06T08:34:01.000Z", "2026-01-01T00:00:00.123456Z", "Sun, 06 Dec 2026 08:34:01 GMT"])


def _element(name: str, text: str) -> str:
    return f"<{name}>{escape(text)}</{name}>" if text else f"<{name}/>"


def _tagged(name: str, values: st.SearchStrategy[str]) -> st.SearchStrategy[tuple[str, str]]:
    return values.map(lambda t: (name, _element(name, t)))


ELEMENTS = st.one_of(  # (what makes it unique in an item, the element)
    _tagged("Key", TEXT),
    _tagged("LastModified", TIME),
    _tagged("ETag", TEXT),
    st.tuples(st.integers(0, 3), st.sampled_from(["CRC32", "SHA256", "CRC64NVME", ""])).map(
        lambda c: (f"ChecksumAlgorithm{c[0]}", _element("ChecksumAlgorithm", c[1]))  # a list: repeats
    ),
    _tagged("ChecksumType", st.sampled_from(["FULL_OBJECT", "COMPOSITE"])),
    _tagged("Size", NUMBER),
    _tagged("StorageClass", st.sampled_from(["STANDARD", "GLACIER_IR", "STANDARD_IA"])),
    st.tuples(TEXT, TEXT).map(
        lambda o: ("Owner", f"<Owner>{_element('DisplayName', o[0])}{_element('ID', o[1])}</Owner>")
    ),
    st.tuples(st.sampled_from(["true", "false"]), TIME).map(
        lambda r: (
            "RestoreStatus",
            f"<RestoreStatus>{_element('IsRestoreInProgress', r[0])}"
            f"{_element('RestoreExpiryDate', r[1])}</RestoreStatus>",
        )
    ),
    _tagged("SomethingNew", TEXT),  # an element the model does not know
)
ITEMS = st.lists(ELEMENTS, max_size=10, unique_by=lambda e: e[0]).map(lambda es: [xml for _, xml in es])


def _body(items: list[list[str]], folders: list[str], truncated: bool) -> bytes:
    contents = "".join("<Contents>" + "".join(item) + "</Contents>" for item in items)
    prefixes = "".join(f"<CommonPrefixes>{_element('Prefix', f)}</CommonPrefixes>" for f in folders)
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
        f"<Name>bucket</Name><Prefix>p/</Prefix><KeyCount>{len(items)}</KeyCount><MaxKeys>1000</MaxKeys>"
        f"<IsTruncated>{'true' if truncated else 'false'}</IsTruncated>{contents}{prefixes}"
        + ("<NextContinuationToken>tok</NextContinuationToken>" if truncated else "")
        + "</ListBucketResult>"
    ).encode()


@pytest.fixture(scope="module")
def shapes() -> dict[str, Any]:
    model = botocore.session.get_session().get_service_model("s3")
    return {op: model.operation_model(op).output_shape for op in ("ListObjectsV2", "ListObjects")}


@settings(max_examples=300)
@given(
    items=st.lists(ITEMS, max_size=6),
    folders=st.lists(TEXT, max_size=3),
    truncated=st.booleans(),
    operation=st.sampled_from(["ListObjectsV2", "ListObjects"]),
)
def test_a_listing_parses_as_botocore_parses_it(
    shapes: dict[str, Any], items: list[list[str]], folders: list[str], truncated: bool, operation: str
) -> None:
    response = {"status_code": 200, "headers": {"x-amz-request-id": "r"}, "body": _body(items, folders, truncated)}
    theirs = RestXMLParser(timestamp_parser=_timestamp).parse(response, shapes[operation])
    ours = _listing_parser(RestXMLParser)(timestamp_parser=_timestamp).parse(response, shapes[operation])
    assert ours == theirs


def test_an_item_it_cannot_read_goes_to_botocore(shapes: dict[str, Any]) -> None:
    """An element repeated where one is expected: the item is botocore's to parse (which fails on it)."""
    body = _body([["<Key>k</Key>", "<Size>1</Size>", "<Size>2</Size>"]], [], False)
    response = {"status_code": 200, "headers": {}, "body": body}
    with pytest.raises(TypeError):
        RestXMLParser(timestamp_parser=_timestamp).parse(response, shapes["ListObjectsV2"])
    with pytest.raises(TypeError):
        _listing_parser(RestXMLParser)(timestamp_parser=_timestamp).parse(response, shapes["ListObjectsV2"])


def test_lakehouse_clients_use_it() -> None:
    """The parser lakehouse's clients get for S3 is the listing parser (through the session's factory)."""
    factory = _session()._session.get_component("response_parser_factory")
    parser = factory.create_parser("rest-xml")
    assert type(parser) is _listing_parser(RestXMLParser)
    assert type(factory.create_parser("json")).__name__ != "ListingParser"


def test_items_with_an_attribute_member_go_to_botocore() -> None:
    """A list of items one of whose members is an XML attribute (not in S3's model today, but botocore reads it):
    the whole list is botocore's to parse, so the attribute is not lost."""
    from botocore.model import ShapeResolver

    resolver = ShapeResolver(
        {
            "Output": {"type": "structure", "members": {"Contents": {"shape": "Objects"}}},
            "Objects": {"type": "list", "member": {"shape": "Object"}, "flattened": True},
            "Object": {
                "type": "structure",
                "members": {
                    "Key": {"shape": "Text"},
                    "Size": {"shape": "Number"},
                    "Kind": {"shape": "Text", "xmlAttribute": True, "locationName": "kind"},
                },
            },
            "Text": {"type": "string"},
            "Number": {"type": "long"},
        }
    )
    shape = resolver.get_shape_by_name("Output")
    body = (
        b'<Output><Contents kind="a"><Key>k</Key><Size>3</Size></Contents>'
        b'<Contents kind="b"><Key>j</Key></Contents></Output>'
    )
    response = {"status_code": 200, "headers": {}, "body": body}
    theirs = RestXMLParser(timestamp_parser=_timestamp).parse(response, shape)
    ours = _listing_parser(RestXMLParser)(timestamp_parser=_timestamp).parse(response, shape)
    assert ours == theirs
    assert theirs["Contents"][0] == {"Key": "k", "Size": 3, "Kind": "a"}


ENCODED = st.lists(st.sampled_from([*"ab/=%+ é~", "%2F", "%3D", "%C3%A9", "%2", "%zz", "%E2%82"]), max_size=12).map(
    "".join
)
"""Names as S3 encodes them, and text that only looks encoded: escapes of '/', '=' and multi-byte characters, cut-off
and invalid escapes, '+' (a space), literal slashes."""


@settings(max_examples=300, deadline=None)
@given(
    keys=st.lists(ENCODED, max_size=8),
    folders=st.lists(ENCODED, max_size=3),
    top=st.fixed_dictionaries({}, optional={"Prefix": ENCODED, "Delimiter": ENCODED, "StartAfter": ENCODED}),
    encoded=st.booleans(),
    auto=st.booleans(),
)
def test_names_decode_as_botocore_decodes_them(
    keys: list[str], folders: list[str], top: dict[str, str], encoded: bool, auto: bool
) -> None:
    """A listing page's names decoded a directory at a time equal botocore's decoding of each whole name, for any
    text S3 may send, and nothing is decoded where botocore would not (no url encoding, or one the caller chose)."""
    import copy

    from botocore import handlers

    from lakehouse.storage import _decode_listing_v2

    page: dict[str, Any] = {
        **top,
        "Contents": [{"Key": k, "Size": 1} for k in keys],
        "CommonPrefixes": [{"Prefix": f} for f in folders],
    }
    if encoded:
        page["EncodingType"] = "url"
    context = {"encoding_type_auto_set": True} if auto else {}
    theirs, ours = copy.deepcopy(page), copy.deepcopy(page)
    handlers.decode_list_object_v2(theirs, context)
    _decode_listing_v2(ours, context)
    assert ours == theirs


def test_lakehouse_clients_decode_names_once() -> None:
    """lakehouse's session decodes a listing page's names with its own handler in place of botocore's (a name
    decoded twice would turn an escaped '%25' into '%' and then into another character)."""
    from botocore import handlers

    from lakehouse.storage import _decode_listing_v2

    emitter = _session()._session.get_component("event_emitter")
    called = list(emitter._emitter._handlers.prefix_search("after-call.s3.ListObjectsV2"))
    assert _decode_listing_v2 in called
    assert handlers.decode_list_object_v2 not in called
