"""Object-store access that is not a table format's business: listing, existence, deleting a tree.

Locations are absolute local paths or ``s3://bucket/key`` URIs; S3 goes through the one credentials model.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import os
import threading
import time
from collections.abc import Callable, Collection, Hashable, Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, TypeVar, cast

import pyarrow as pa
from pyarrow import fs

from lakehouse.errors import StorageError
from lakehouse.names import TableName

if TYPE_CHECKING:
    from concurrent.futures import Future, ThreadPoolExecutor

    from lakehouse.credentials import S3Credentials

T = TypeVar("T")


@dataclass(frozen=True)
class ExternalCatalog:
    """An external Iceberg catalog a table belongs to (see :mod:`lakehouse.external`): its connection name, its
    pyiceberg catalog type and properties (``${ENV}`` references resolved)."""

    name: str
    type: str
    properties: tuple[tuple[str, str], ...] = ()

    def props(self) -> dict[str, str]:
        return dict(self.properties)


@dataclass(frozen=True)
class StorageContext:
    """Where tables live and how to reach them; handed to every adapter.

    ``credentials`` reach the warehouse (and any S3 location no store claims); ``stores`` are the ``[stores]``
    settings, each an S3 prefix with its own endpoint and keys (a table on another bucket or another endpoint);
    ``external`` is set on the context of a table an external catalog owns (its commits go there)."""

    warehouse: str
    catalog_url: str
    catalog_name: str = "lakehouse"
    credentials: S3Credentials | None = None
    stores: tuple[tuple[str, S3Credentials], ...] = ()
    external: ExternalCatalog | None = None

    def credentials_for(self, location: str) -> S3Credentials | None:
        """The credentials of the store whose prefix holds ``location`` (the longest), else ``credentials``.

        >>> from lakehouse.credentials import S3Credentials
        >>> a, b = S3Credentials(endpoint_url="http://a:1"), S3Credentials(endpoint_url="http://b:2")
        >>> ctx = StorageContext("s3://w", "sqlite://", credentials=a, stores=(("s3://other/x", b),))
        >>> ctx.credentials_for("s3a://other/x/t").endpoint_url, ctx.credentials_for("s3://other/xy").endpoint_url
        ('http://b:2', 'http://a:1')
        """
        loc = normalize_path(location)
        best: tuple[int, S3Credentials] | None = None
        for prefix, creds in self.stores:
            p = prefix.rstrip("/")
            if (loc == p or loc.startswith(p + "/")) and (best is None or len(p) > best[0]):
                best = (len(p), creds)
        return best[1] if best is not None else self.credentials

    def for_location(self, location: str) -> StorageContext:
        """This context with the credentials of ``location``'s store as its own (what a table's adapter gets)."""
        creds = self.credentials_for(location)
        return self if creds is self.credentials else replace(self, credentials=creds)

    @property
    def reaches_s3(self) -> bool:
        """Whether any S3 credentials are configured (DuckDB then needs its httpfs extension)."""
        return self.credentials is not None or bool(self.stores)

    def scoped_credentials(self) -> list[tuple[str | None, S3Credentials]]:
        """Every set of credentials with the S3 prefix it is for (None: the default), the default first."""
        out: list[tuple[str | None, S3Credentials]] = []
        if self.credentials is not None:
            out.append((None, self.credentials))
        out.extend((p.rstrip("/") + "/", c) for p, c in self.stores)
        return out

    def default_location(self, name: TableName) -> str:
        return f"{self.warehouse.rstrip('/')}/{name.namespace}/{name.table}"

    @staticmethod
    def is_s3(location: str) -> bool:
        return location.startswith(("s3://", "s3a://"))


@dataclass(frozen=True)
class ObjectInfo:
    path: str
    size: int
    mtime_s: float | None
    storage_class: str | None = None
    """S3 storage class (``STANDARD`` when S3 reports none); None on local storage."""


def normalize_path(path: str) -> str:
    """One spelling per object, the one :func:`list_files` returns: ``s3://bucket/key`` for every S3 scheme
    (``s3a://``, ``s3n://``), and a plain absolute path for local files (``file:///x``, ``file:/x``).

    >>> normalize_path("s3a://b/k"), normalize_path("file:///tmp/x"), normalize_path("file:/tmp/x")
    ('s3://b/k', '/tmp/x', '/tmp/x')
    """
    for scheme in ("s3a://", "s3n://"):
        if path.startswith(scheme):
            return "s3://" + path[len(scheme) :]
    if path.startswith("file://"):
        return path[len("file://") :] or "/"
    if path.startswith("file:/"):
        return path[len("file:") :]
    return path


def lies_within(location: str, root: str) -> bool:
    """Whether ``location`` lies strictly inside ``root`` (both spelled as :func:`normalize_path` spells them):
    same scheme and bucket, a local location absolute, and no ``.`` or ``..`` segment on the way (a local path
    resolves them, an S3 key would keep them literally; neither is let through).

    >>> lies_within("s3://b/wh/t", "s3://b/wh"), lies_within("/wh/../etc", "/wh"), lies_within("/wh", "/wh")
    (True, False, False)
    """
    loc, base = normalize_path(location.strip()).rstrip("/"), normalize_path(root.strip()).rstrip("/")
    s3 = StorageContext.is_s3(loc)
    if s3 != StorageContext.is_s3(base) or not (s3 or loc.startswith("/")):
        return False
    if not s3:
        base = os.path.abspath(base)
    rest = loc[len(base) + 1 :] if loc.startswith(base + "/") else ""
    return bool(rest) and all(seg not in ("", ".", "..") for seg in rest.split("/"))


_SCHEMAS: ContextVar[dict[str, pa.Schema] | None] = ContextVar("lakehouse_parquet_schemas", default=None)


@contextlib.contextmanager
def schema_cache() -> Iterator[None]:
    """Within it, :func:`cached_schema` reads each Parquet file's schema once: a rewrite reads its inputs' footers
    to plan how to read them (the table format's reader and the rewrite's layout each ask), and data files never
    change in place. Nested uses share the outermost cache."""
    if _SCHEMAS.get() is not None:
        yield
        return
    token = _SCHEMAS.set({})
    try:
        yield
    finally:
        _SCHEMAS.reset(token)


def cached_schema(path: str, read: Callable[[], pa.Schema]) -> pa.Schema:
    """``read()`` (the Arrow schema of the Parquet file at ``path``), once per path within :func:`schema_cache`."""
    cache = _SCHEMAS.get()
    if cache is None:
        return read()
    key = normalize_path(path)
    found = cache.get(key)
    if found is None:
        found = cache[key] = read()
    return found


def split_location(location: str, ctx: StorageContext) -> tuple[fs.FileSystem, str]:
    """A pyarrow filesystem and the path inside it for ``location``."""
    if location.startswith(("s3://", "s3a://")):
        creds = ctx.credentials_for(location)
        if creds is None:
            raise StorageError(f"{location} is on S3 but no S3 settings are configured")
        return creds.pyarrow_filesystem(), location.split("://", 1)[1].rstrip("/")
    path = location[len("file://") :] if location.startswith("file://") else location
    return fs.LocalFileSystem(), path.rstrip("/") or "/"


def _uri(location: str, path: str) -> str:
    if location.startswith(("s3://", "s3a://")):
        return "s3://" + path
    return path


_shared_listings: ContextVar[_Listings | None] = ContextVar("lakehouse_listings", default=None)


@dataclass
class _Listings:
    """The listings of one :func:`shared_listings` block: by location, a listing or one still being made in the
    background (:func:`prefetch_listing`)."""

    done: dict[str, list[ObjectInfo] | Future[list[ObjectInfo]]]
    pool: ThreadPoolExecutor | None = None
    opened: dict[Hashable, Any] = field(default_factory=dict)
    """What :func:`shared_opened` made, by key."""


@contextlib.contextmanager
def shared_listings() -> Iterator[None]:
    """Within the block, a location is listed once: every :func:`list_files` / :func:`list_objects` of it or of
    a location below it answers from that one listing (with storage classes, on S3), and a table is opened once
    (:func:`shared_opened`). For read-only measurements that consult the store several times (``health``:
    reconciliation, then tiering); the listing is as of its first use (or of its :func:`prefetch_listing`), so
    nothing that writes may rely on it."""
    if _shared_listings.get() is not None:
        yield
        return
    listings = _Listings({})
    token = _shared_listings.set(listings)
    try:
        yield
    finally:
        _shared_listings.reset(token)
        if listings.pool is not None:  # a listing nobody used (the block failed first): no thread outlives it
            listings.pool.shutdown(wait=True, cancel_futures=True)


def shared_opened(key: Hashable, make: Callable[[], T]) -> T:
    """Within :func:`shared_listings`, what ``make()`` returned for ``key`` the first time (a table opened once,
    its log or metadata read once, for every consumer of a read-only measurement); outside, ``make()``."""
    listings = _shared_listings.get()
    if listings is None:
        return make()
    if key not in listings.opened:
        listings.opened[key] = make()
    return cast(T, listings.opened[key])


def prefetch_listing(location: str, ctx: StorageContext, *, known: Collection[str] = ()) -> None:
    """Within :func:`shared_listings`, start listing the S3 ``location`` in a background thread, so that the
    caller's work on metadata (reading manifests and log files) overlaps the listing's round trips; the first
    :func:`list_files` / :func:`list_objects` of it waits for it (and raises its error, if it failed). Outside
    such a block, or for a local location (listed in a fraction of a second), it does nothing."""
    listings = _shared_listings.get()
    if listings is None or not location.startswith(("s3://", "s3a://")):
        return
    root = normalize_path(location).rstrip("/") + "/"
    if any(root.startswith(r) for r in listings.done):
        return
    if listings.pool is None:
        from concurrent.futures import ThreadPoolExecutor

        listings.pool = ThreadPoolExecutor(1, thread_name_prefix="lakehouse-prefetch")
    # the thread's context has no shared listings: it lists, and this block keeps the result
    listings.done[root] = listings.pool.submit(list_objects, location, ctx, known=tuple(known))


def _from_shared(location: str, recursive: bool) -> list[ObjectInfo] | None:
    listings = _shared_listings.get()
    if listings is None:
        return None
    want = normalize_path(location).rstrip("/") + "/"
    for root, found in list(listings.done.items()):
        if want.startswith(root):
            if not isinstance(found, list):
                if not recursive and not found.done():  # one directory (a Delta log): listed now, not waited for
                    return None
                found = found.result()  # a prefetched listing: its error is raised where the listing is used
                listings.done[root] = found
            if want == root and recursive:  # the location listed itself: every object (health asks for it often)
                return list(found)
            return [o for o in found if o.path.startswith(want) and (recursive or "/" not in o.path[len(want) :])]
    return None


def _share(location: str, objects: list[ObjectInfo]) -> None:
    listings = _shared_listings.get()
    if listings is not None:
        listings.done[normalize_path(location).rstrip("/") + "/"] = objects


def list_files(
    location: str, ctx: StorageContext, *, recursive: bool = True, known: Collection[str] = ()
) -> list[ObjectInfo]:
    """Every file below ``location`` (empty when it does not exist). ``known``: paths known to be there (a
    table's current files), from which an S3 listing of many pages is split into ranges listed side by side
    (see :func:`list_objects`)."""
    shared = _from_shared(location, recursive)
    if shared is not None:
        return shared
    if recursive and (_shared_listings.get() is not None or _may_split(location, known)):
        return list_objects(location, ctx, known=known)  # one listing for both kinds of caller, shared
    filesystem, root = split_location(location, ctx)
    try:
        infos = filesystem.get_file_info(fs.FileSelector(root, recursive=recursive, allow_not_found=True))
    except OSError as e:
        raise StorageError(f"cannot list {location}: {e}") from e
    return [
        ObjectInfo(_uri(location, i.path), i.size or 0, i.mtime.timestamp() if i.mtime else None)
        for i in infos
        if i.type == fs.FileType.File
    ]


def _bucket_key(location: str) -> tuple[str, str]:
    rest = location.split("://", 1)[1]
    bucket, _, key = rest.partition("/")
    return bucket, key


def _timestamp(text: str) -> Any:
    """A timestamp of an S3 response. botocore parses each with dateutil: 1,000 ``LastModified`` values were
    three quarters of a listing page's parsing. ISO 8601 in UTC, what listings carry, is read by the standard
    library (the same instant); any other form goes to botocore's own parser."""
    if text.endswith("Z"):
        try:
            return dt.datetime.fromisoformat(text)
        except ValueError:
            pass
    from botocore.parsers import DEFAULT_TIMESTAMP_PARSER

    return DEFAULT_TIMESTAMP_PARSER(text)


def _fields(shape: Any) -> dict[str, tuple[str, str, Any]] | None:
    """An item shape's members by XML element name: (member name, how its text is read, member shape), kept on
    the shape (botocore keeps one per service model); None for a shape with a member outside the item's
    elements (an attribute, a header), which botocore reads."""
    if hasattr(shape, "_lakehouse_fields"):
        kept: dict[str, tuple[str, str, Any]] | None = shape._lakehouse_fields
        return kept
    fields: dict[str, tuple[str, str, Any]] = {}
    for name, member in shape.members.items():
        if member.serialization.get("location") or member.serialization.get("xmlAttribute"):
            shape._lakehouse_fields = None
            return None
        if member.type_name in ("string", "character"):
            kind = "text"
        elif member.type_name in ("integer", "long"):
            kind = "int"
        elif member.type_name == "timestamp":
            kind = "time"
        elif (
            member.type_name == "list" and member.serialization.get("flattened") and member.member.type_name == "string"
        ):
            kind = "texts"
        else:  # structures (Owner, RestoreStatus) and anything else: botocore's own parse
            kind = "shape"
        # the element's name as botocore finds it (its _member_key_name): a flattened list's items by theirs
        xml = member.serialization.get("name", name)
        if member.type_name == "list" and member.serialization.get("flattened"):
            xml = member.member.serialization.get("name", xml)
        fields[xml] = (name, kind, member)
    shape._lakehouse_fields = fields
    return fields


@functools.cache
def _listing_parser(base: type) -> type:
    """botocore's REST-XML response parser, with the keys of a listing page (the ``Contents`` items, S3's
    ``Object`` shape) read in one pass over each item's elements. botocore walks its model for every member of
    every key (a name-to-node map, a dispatch per member): a fifth of a listing's client CPU on the tests'
    server (4.3-5.1 s for 101 pages, 3.6-4.0 s without the walk). The result is the same dict; an item with an
    element repeated where one is expected goes to botocore, and so does a list of items with a member outside
    their elements."""

    class ListingParser(base):
        def _handle_list(self, shape: Any, node: Any) -> Any:
            item = shape.member
            if item.name != "Object" or item.type_name != "structure" or not shape.serialization.get("flattened"):
                return super()._handle_list(shape, node)
            fields = _fields(item)
            if fields is None:
                return super()._handle_list(shape, node)
            out = []
            for element in node if isinstance(node, list) else [node]:
                parsed = self._item(element, fields)
                out.append(parsed if parsed is not None else self._parse_shape(item, element))
            return out

        def _parse_xml_string_to_dom(self, xml_string: Any) -> Any:
            kept = getattr(_checked_page, "page", None)
            if kept is not None:
                _checked_page.page = None
                if kept[0] is xml_string:  # the page :func:`_check_200` parsed (this thread's last)
                    return kept[1]
            return super()._parse_xml_string_to_dom(xml_string)

        def _item(self, element: Any, fields: dict[str, tuple[str, str, Any]]) -> dict[str, Any] | None:
            parsed: dict[str, Any] = {}
            for child in element:
                tag = child.tag
                field = fields.get(tag[tag.rfind("}") + 1 :])
                if field is None:  # an element the model does not name: botocore ignores it too
                    continue
                name, kind, member = field
                if kind == "texts":
                    parsed.setdefault(name, []).append(child.text or "")
                    continue
                if name in parsed:
                    return None
                text = child.text or ""
                if kind == "text":
                    parsed[name] = text
                elif kind == "int":
                    parsed[name] = int(text)
                elif kind == "time":
                    parsed[name] = self._timestamp_parser(text)
                else:
                    parsed[name] = self._parse_shape(member, child)
            return parsed

    return ListingParser


_checked_page = threading.local()


def _check_200(operation_model: Any, response_dict: Any, **kwargs: Any) -> None:
    """botocore's check of an S3 answer of status 200 for an error in its body (``_handle_200_error``: S3 can
    answer 200 and fail, or a connection can cut the body short; the status becomes 500 and the request is
    retried), with a listing page's body parsed once. botocore parses the whole body for the check and again to
    read it: 10 ms of a 1,000-key page's 36 ms of client CPU. The same check, the page's document kept (per
    thread) for :func:`_listing_parser`'s parser; any other answer goes to botocore's check."""
    from xml.etree import ElementTree as ETree
    from xml.etree.ElementTree import ParseError as XMLParseError

    from botocore import handlers as _handlers

    handlers = cast(Any, _handlers)  # its private checks, which the type stubs leave out
    if (
        operation_model.name != "ListObjectsV2"
        or not response_dict
        or response_dict.get("status_code") != 200
        or not response_dict.get("body")
        or not handlers._should_handle_200_error(operation_model, response_dict)
    ):
        handlers._handle_200_error(operation_model, response_dict, **kwargs)
        return
    _checked_page.page = None
    try:
        # the parser botocore reads every S3 answer with (botocore.compat's ETree), on the same body
        parser = ETree.XMLParser(target=ETree.TreeBuilder(), encoding="utf-8")  # noqa: S314
        parser.feed(response_dict["body"])
        root = parser.close()
    except XMLParseError:
        response_dict["status_code"] = 500
        return
    if root.tag == "Error":
        response_dict["status_code"] = 500
        return
    _checked_page.page = (response_dict["body"], root)


def _decode_listing_v2(parsed: dict[str, Any], context: dict[str, Any], **kwargs: Any) -> None:
    """botocore's decoding of a ``ListObjectsV2`` page's URL-encoded names (``decode_list_object_v2``: boto3 asks
    S3 to encode them, since a key may hold characters XML cannot carry), with each key's directory decoded once
    per page: a page's keys share a few directories, and decoding every key whole was a fifth of a page's client
    CPU. Decoding never joins characters across a literal ``/`` (an escape is ``%`` and two hex digits, a
    multi-byte character a run of escapes), so a key decodes as its directory and its name decoded apart."""
    if parsed.get("EncodingType") != "url" or not context.get("encoding_type_auto_set"):
        return
    from botocore.compat import unquote_str

    for name in ("Delimiter", "Prefix", "StartAfter"):
        if name in parsed:
            parsed[name] = unquote_str(parsed[name])
    directories: dict[str, str] = {}
    for member in parsed.get("Contents", ()):
        head, slash, name = member["Key"].rpartition("/")
        decoded = directories.get(head)
        if decoded is None:
            decoded = directories[head] = unquote_str(head)
        member["Key"] = decoded + slash + (unquote_str(name) if "%" in name or "+" in name else name)
    for member in parsed.get("CommonPrefixes", ()):
        member["Prefix"] = unquote_str(member["Prefix"])


_boto3_session: Any = None
_boto3_session_lock = threading.Lock()


def _session() -> Any:
    """One boto3 session for lakehouse's S3 clients, its responses parsed with :func:`_timestamp` and listing
    pages by :func:`_listing_parser`, each page's body parsed once (:func:`_check_200`) and its names decoded by
    :func:`_decode_listing_v2`."""
    global _boto3_session
    with _boto3_session_lock:
        if _boto3_session is None:
            import boto3
            import botocore.session
            from botocore import handlers
            from botocore.parsers import ResponseParserFactory

            core = botocore.session.get_session()
            # botocore's private checks: a botocore without them (boto3 is not pinned) keeps its own
            checks = cast(Any, handlers)
            if callable(getattr(checks, "_handle_200_error", None)) and callable(
                getattr(checks, "_should_handle_200_error", None)
            ):
                core.unregister("before-parse.s3.*", checks._handle_200_error)
                core.get_component("event_emitter").register_first("before-parse.s3.*", _check_200)
            if callable(getattr(checks, "decode_list_object_v2", None)):
                core.unregister("after-call.s3.ListObjectsV2", checks.decode_list_object_v2)
                core.register("after-call.s3.ListObjectsV2", cast(Any, _decode_listing_v2))

            class Factory(ResponseParserFactory):
                def create_parser(self, protocol_name: str) -> Any:
                    parser = super().create_parser(protocol_name)
                    if protocol_name != "rest-xml":
                        return parser
                    defaults: dict[str, Any] = self._defaults  # type: ignore[attr-defined]
                    return _listing_parser(cast(Any, type(parser)))(**defaults)

            factory = Factory()
            factory.set_parser_defaults(timestamp_parser=_timestamp)
            core.register_component("response_parser_factory", factory)
            _boto3_session = boto3.session.Session(botocore_session=core)
        return _boto3_session


def _s3_client(ctx: StorageContext, location: str, *, connections: int = 10) -> Any:
    """A boto3 S3 client for ``location`` keeping up to ``connections`` connections open (one per thread that
    shares it; botocore's default of 10 drops the connections of more threads after each request)."""
    from botocore.config import Config

    creds = ctx.credentials_for(location)
    if creds is None:
        raise StorageError(f"{location} is on S3 but no S3 settings are configured")
    kwargs = creds.boto3_client_kwargs()
    kwargs["config"] = kwargs["config"].merge(Config(max_pool_connections=connections))
    session = _session()
    with _boto3_session_lock:  # a session is not thread-safe: clients are made one at a time
        return session.client("s3", **kwargs)


LISTING_RANGE_KEYS = 5_000
"""An S3 listing is split into ranges of about this many keys known to be there (5 pages), up to
:data:`LISTING_RANGES`, listed side by side."""
LISTING_RANGES = 16


def _may_split(location: str, known: Collection[str]) -> bool:
    return len(known) >= 2 * LISTING_RANGE_KEYS and location.startswith(("s3://", "s3a://"))


def _split_points(location: str, known: Collection[str]) -> list[str]:
    """Keys that split a listing of ``location`` into ranges of about :data:`LISTING_RANGE_KEYS` known keys each
    (none for a local location or too few known keys)."""
    if not _may_split(location, known):
        return []
    bucket, prefix = _bucket_key(location.rstrip("/"))
    prefix = prefix + "/" if prefix else ""
    # any key splits correctly (the ranges cover the whole key space): known ones split it evenly
    keys = sorted({k for b, k in (_bucket_key(p) for p in known if "://" in p) if b == bucket and k.startswith(prefix)})
    ranges = min(LISTING_RANGES, len(keys) // LISTING_RANGE_KEYS)
    return [keys[len(keys) * i // ranges] for i in range(1, ranges)] if ranges > 1 else []


def list_objects(location: str, ctx: StorageContext, *, known: Collection[str] = ()) -> list[ObjectInfo]:
    """Like :func:`list_files`, with each object's S3 storage class (one listing, no per-object calls).

    A listing is one page of 1,000 keys per request, each request waiting for the one before it (its token). With
    ``known`` (paths known to be there, such as a table's current files) the key space is split at known keys
    into ranges of about 5,000 and the ranges are listed side by side (``StartAfter`` one split key, ending at the
    next): the same objects in the same order, in a fraction of the round trips' time, and about one request
    more per range. Objects ``known`` does not name (orphans, metadata) are listed all the same: the ranges
    cover every key."""
    shared = _from_shared(location, True)
    if shared is not None:
        return shared
    if not location.startswith(("s3://", "s3a://")):
        with _unshared():
            objects = list_files(location, ctx)
        _share(location, objects)
        return objects
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, prefix = _bucket_key(location.rstrip("/"))
    prefix = prefix + "/" if prefix else ""
    splits = _split_points(location, known)
    bounds: list[tuple[str | None, str | None]] = list(
        zip([None, *splits], [*splits, None], strict=True)  # (after, up to and including)
    )
    client = _s3_client(ctx, location, connections=min(len(bounds), 8))

    def listed(after: str | None, last: str | None) -> list[ObjectInfo]:
        out: list[ObjectInfo] = []
        params: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix}
        if after is not None:
            params["StartAfter"] = after
        for page in client.get_paginator("list_objects_v2").paginate(**params):
            for obj in page.get("Contents", []):
                if last is not None and obj["Key"] > last:
                    return out
                if after is not None and obj["Key"] <= after:  # a store that ignores StartAfter: no key twice
                    continue
                if obj["Key"].endswith("/"):  # a directory marker, not a file
                    continue
                out.append(
                    ObjectInfo(
                        f"s3://{bucket}/{obj['Key']}",
                        int(obj["Size"]),
                        obj["LastModified"].timestamp(),
                        str(obj.get("StorageClass") or "STANDARD"),
                    )
                )
        return out

    try:
        if len(bounds) == 1:
            out = listed(None, None)
        else:
            import concurrent.futures as cf

            with cf.ThreadPoolExecutor(min(len(bounds), 8), thread_name_prefix="lakehouse-list") as pool:
                out = [o for part in pool.map(lambda b: listed(*b), bounds) for o in part]
    except (BotoCoreError, ClientError) as e:
        raise StorageError(f"cannot list {location}: {e}") from e
    _share(location, out)
    return out


@contextlib.contextmanager
def _unshared() -> Iterator[None]:
    token = _shared_listings.set(None)
    try:
        yield
    finally:
        _shared_listings.reset(token)


def set_storage_class(path: str, storage_class: str, ctx: StorageContext) -> bool:
    """Give an S3 object another storage class in place (same key, same bytes); False when it is gone."""
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, key = _bucket_key(path)
    try:
        _s3_client(ctx, path).copy(
            {"Bucket": bucket, "Key": key},
            bucket,
            key,
            ExtraArgs={"StorageClass": storage_class, "MetadataDirective": "COPY"},
        )
    except ClientError as e:
        if e.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return False
        raise StorageError(f"cannot set the storage class of {path}: {e}") from e
    except BotoCoreError as e:
        raise StorageError(f"cannot set the storage class of {path}: {e}") from e
    return True


def delete_files(paths: Sequence[str], ctx: StorageContext) -> int:
    """Delete files (batched on S3); files already gone count as deleted. Returns how many were asked for."""
    s3 = [p for p in paths if p.startswith(("s3://", "s3a://"))]
    local = [p for p in paths if not p.startswith(("s3://", "s3a://"))]
    for p in local:
        try:
            os.remove(p[len("file://") :] if p.startswith("file://") else p)
        except FileNotFoundError:
            pass
        except OSError as e:
            raise StorageError(f"cannot delete {p}: {e}") from e
    if s3:
        from botocore.exceptions import BotoCoreError, ClientError

        by_bucket: dict[str, list[str]] = {}
        for p in s3:
            bucket, key = _bucket_key(p)
            by_bucket.setdefault(bucket, []).append(key)
        for bucket, keys in by_bucket.items():
            client = _s3_client(ctx, f"s3://{bucket}/{keys[0]}")
            for i in range(0, len(keys), 1000):
                try:
                    result = client.delete_objects(
                        Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys[i : i + 1000]], "Quiet": True}
                    )
                except (BotoCoreError, ClientError) as e:
                    raise StorageError(f"cannot delete objects in bucket {bucket}: {e}") from e
                errors = result.get("Errors", [])
                if errors:
                    first = errors[0]
                    raise StorageError(
                        f"cannot delete {len(errors)} object(s) in bucket {bucket}: {first.get('Key')}: "
                        f"{first.get('Message')}"
                    )
    return len(paths)


def _read_file(path: str, ctx: StorageContext) -> bytes:
    """One file's bytes through pyarrow's file system."""
    filesystem, inner = split_location(path, ctx)
    try:
        with filesystem.open_input_stream(inner) as stream:
            return bytes(stream.read())
    except OSError as e:
        raise StorageError(f"cannot read {path}: {e}") from e


class ObjectReader:
    """Reads whole objects, each with one request: on S3 a GET through a boto3 client per store (with the
    ``[s3]`` retry settings, keeping up to ``connections`` connections open), not the HEAD and GET of pyarrow's S3
    file system; a body cut off midway is read again as well, which the client's own retries do not cover.
    Local files through pyarrow. Thread-safe; a file that cannot be read raises :class:`StorageError`."""

    def __init__(self, ctx: StorageContext, *, connections: int = 16) -> None:
        self._ctx = ctx
        self._connections = connections
        self._clients: dict[int, tuple[Any, Any]] = {}
        self._lock = threading.Lock()

    def _client(self, path: str) -> tuple[Any, Any]:
        creds = self._ctx.credentials_for(path)
        with self._lock:
            held = self._clients.get(id(creds))
            if held is None:
                held = self._clients[id(creds)] = (_s3_client(self._ctx, path, connections=self._connections), creds)
            return held

    def read(self, path: str) -> bytes:
        if not path.startswith(("s3://", "s3a://")):
            return _read_file(path, self._ctx)
        from botocore.exceptions import (
            BotoCoreError,
            ClientError,
            ConnectionClosedError,
            IncompleteReadError,
            ReadTimeoutError,
            ResponseStreamingError,
        )

        client, creds = self._client(path)
        retries = creds.retries if creds is not None else None
        bucket, key = _bucket_key(path)
        attempt = 0
        while True:
            try:
                body = client.get_object(Bucket=bucket, Key=key)["Body"]
                with contextlib.closing(body):
                    return bytes(body.read())
            except (ResponseStreamingError, IncompleteReadError, ReadTimeoutError, ConnectionClosedError) as e:
                # the body cut off, or the connection gone after the client's own retries
                if retries is None or attempt >= retries.max_retries:
                    raise StorageError(f"cannot read {path}: {e}") from e
                time.sleep(min(retries.max_backoff, retries.backoff * 2**attempt))
                attempt += 1
            except (BotoCoreError, ClientError) as e:
                raise StorageError(f"cannot read {path}: {e}") from e


def read_objects(paths: Sequence[str], ctx: StorageContext, *, threads: int = 8) -> Iterator[bytes]:
    """The bytes of each file of ``paths``, in their order, read ``threads`` at a time with an
    :class:`ObjectReader` (on S3 one GET each: a log of 1,000 commit files is 1,000 requests, not 2,000). A single
    object goes through pyarrow's file system (its HEAD costs less than starting an S3 client, about 0.15 s)."""
    from concurrent.futures import ThreadPoolExecutor

    if not paths:
        return
    if len(paths) == 1:
        yield _read_file(paths[0], ctx)
        return
    reader = ObjectReader(ctx, connections=threads)
    with ThreadPoolExecutor(max(1, min(threads, len(paths)))) as pool:
        yield from pool.map(reader.read, paths)


def exists(location: str, ctx: StorageContext) -> bool:
    filesystem, path = split_location(location, ctx)
    try:
        return bool(filesystem.get_file_info(path).type != fs.FileType.NotFound)
    except OSError as e:
        raise StorageError(f"cannot reach {location}: {e}") from e


def delete_tree(location: str, ctx: StorageContext) -> None:
    filesystem, path = split_location(location, ctx)
    try:
        if filesystem.get_file_info(path).type == fs.FileType.Directory:
            filesystem.delete_dir(path)
        else:
            for info in list_files(location, ctx):
                filesystem.delete_file(split_location(info.path, ctx)[1])
    except OSError as e:
        raise StorageError(f"cannot delete {location}: {e}") from e


def ensure_warehouse(ctx: StorageContext) -> None:
    """Create a local warehouse directory, or check that an S3 warehouse's bucket is reachable."""
    if ctx.warehouse.startswith(("s3://", "s3a://")):
        import boto3
        from botocore.exceptions import BotoCoreError, ClientError

        bucket = ctx.warehouse.split("://", 1)[1].split("/", 1)[0]
        assert ctx.credentials is not None
        client = boto3.client("s3", **ctx.credentials.boto3_client_kwargs())
        try:
            client.head_bucket(Bucket=bucket)
        except ClientError as e:
            code = e.response.get("Error", {}).get("Code", "")
            if code in ("404", "NoSuchBucket", "NotFound"):
                raise StorageError(
                    f"bucket {bucket!r} does not exist",
                    hint="create it (infra/minio/bootstrap.sh does for MinIO) or run `lakehouse init --create-bucket`",
                ) from e
            raise StorageError(f"cannot reach bucket {bucket!r}: {e}") from e
        except BotoCoreError as e:
            raise StorageError(f"cannot reach the S3 endpoint: {e}") from e
        return
    filesystem, path = split_location(ctx.warehouse, ctx)
    try:
        filesystem.create_dir(path, recursive=True)
    except OSError as e:
        raise StorageError(f"cannot create the warehouse directory {path}: {e}") from e


def create_bucket(ctx: StorageContext) -> bool:
    """Create the S3 warehouse's bucket if missing; True when it was created."""
    import boto3
    from botocore.exceptions import ClientError

    assert ctx.credentials is not None
    bucket = ctx.warehouse.split("://", 1)[1].split("/", 1)[0]
    client = boto3.client("s3", **ctx.credentials.boto3_client_kwargs())
    try:
        client.head_bucket(Bucket=bucket)
        return False
    except ClientError:
        pass
    try:
        if ctx.credentials.region == "us-east-1":
            client.create_bucket(Bucket=bucket)
        else:
            client.create_bucket(
                Bucket=bucket,
                CreateBucketConfiguration={"LocationConstraint": ctx.credentials.region},  # type: ignore[typeddict-item]
            )
    except ClientError as e:
        raise StorageError(f"cannot create bucket {bucket!r}: {e}") from e
    return True
