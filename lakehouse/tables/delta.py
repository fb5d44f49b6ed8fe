"""Delta Lake adapter (delta-rs). The only module that imports ``deltalake``.

Partition transforms: Delta has no hidden partitioning, so ``day(ts)`` becomes a *generated column*
``ts_day`` with ``delta.generationExpression = CAST(ts AS DATE)``; delta-rs computes it on write and
Spark/Databricks readers understand it. Scans through this interface return the declared columns only.
Key columns are marked with the column metadata ``lakehouse.key`` (Delta rejects unknown table properties).
"""

from __future__ import annotations

import bisect
import contextlib
import dataclasses
import datetime as dt
import functools
import hashlib
import json
import math
import os
import random
import re
import threading
import time
import types
import urllib.parse
import uuid
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Self, TypeVar

import pyarrow as pa
import pyarrow.compute as pc

from lakehouse.errors import (
    CommitConflictError,
    CommitOutcomeUnknownError,
    CommitTimeoutError,
    InvalidSchemaError,
    LakehouseError,
    SchemaMismatchError,
    StorageError,
    TableExistsError,
    TableNotFoundError,
    UnsupportedOperationError,
    VersionNotFoundError,
)
from lakehouse.expr import And, Expr, Not, Or, all_match, evaluate_table, may_match, to_arrow
from lakehouse.schema import PartitionField, contains_type, validate_keys, validate_partitioning, without_view_types
from lakehouse.storage import ObjectInfo, delete_tree, list_files, normalize_path, read_objects, split_location
from lakehouse.tables.base import (
    CASE_CLASHES,
    AsOf,
    Capabilities,
    CommitResult,
    DataFile,
    DeleteResult,
    FeatureSupport,
    KeptMetadata,
    LakehouseTable,
    LazyStats,
    PlainFiles,
    Snapshot,
    StorageContext,
    TableDefinition,
    TableName,
    carried,
    gc_paused,
)
from lakehouse.verify import Verifier, parquet_by_name

try:
    from deltalake import CommitProperties, DeltaTable, Field, Schema, Transaction, write_deltalake
    from deltalake.exceptions import CommitFailedError, DeltaError, DeltaProtocolError
    from deltalake.exceptions import SchemaMismatchError as DeltaSchemaMismatchError
    from deltalake.exceptions import TableNotFoundError as DeltaTableNotFoundError
    from deltalake.schema import PrimitiveType
    from deltalake.transaction import AddAction, RemoveAction
except ImportError as e:  # pragma: no cover - exercised only without the extra
    from lakehouse.errors import DependencyMissingError

    raise DependencyMissingError("the Delta Lake adapter needs deltalake", hint="pip install 'lakehouse[delta]'") from e

KEY_METADATA = "lakehouse.key"
REDACTED = "[REDACTED]"
_PREDICATE_OPERATIONS = frozenset({"DELETE", "UPDATE"})

# Commit files never change once written, only disappear when log retention trims the oldest: what each one
# holds is kept per process (bounded by the paths kept), so the history and the log replay read a commit file
# once, and only the commits since are read the next time (a 1,000-version log is read once, not once per
# planning step). Which commits exist comes from a listing of the log each time, so a log trimmed elsewhere is
# seen; a table dropped and created again at the same location has another table id (``metaData.id``), which
# is part of the key. The log replay's result is kept per table (a few, least recently used first out).
_CACHE_TABLES = 8
_LogKey = tuple[StorageContext, str, str]
_Stamp = tuple[int, float | None]


@dataclass(frozen=True)
class _Commit:
    """What lakehouse keeps of one commit file: its commitInfo as the writer wrote it (optional in the protocol),
    and the paths (as the log records them) it adds and removes."""

    info: dict[str, Any] | None
    added: tuple[str, ...]
    removed: tuple[str, ...]
    stamp: _Stamp | None = None
    """The commit file's (size, modification time) when it was read, where a listing said."""


_commit_cache: KeptMetadata[tuple[_LogKey, int], _Commit] = KeptMetadata(
    2_000_000, lambda c: len(c.added) + len(c.removed) + 1 + 2 * len(c.info or ())
)
_Lifetimes = Mapping[str, tuple[tuple[int, int | None], ...]]
_lifetimes_cache: KeptMetadata[_LogKey, tuple[Any, _Lifetimes]] = KeptMetadata(_CACHE_TABLES)
_files_cache: KeptMetadata[tuple[_LogKey, int, str], tuple[DataFile, ...]] = KeptMetadata(2)
"""The live files of the last versions listed, by table id and version (a version's files never change): health's
consumers (file health, reconciliation, tiering, the compaction plan) each ask for the same list."""


def _digest(adds: pa.Table) -> str:
    """A digest of the files a version's add actions name (path, size, modification time, rows)."""
    h = hashlib.blake2b(digest_size=16)
    for name in ("path", "size_bytes", "modification_time", "num_records"):
        if name not in adds.column_names:
            continue
        for chunk in adds.column(name).chunks:
            h.update(f"{name}:{chunk.offset}:{len(chunk)}".encode())
            for buf in chunk.buffers():
                if buf is not None:
                    h.update(buf)
    return h.hexdigest()


def _forget_log(ctx: StorageContext, location: str) -> None:
    _lifetimes_cache.forget_where(lambda key: key[:2] == (ctx, location))
    _files_cache.forget_where(lambda key: key[0][:2] == (ctx, location))
    _commit_cache.forget_where(lambda key: key[0][:2] == (ctx, location))


GENERATION = "delta.generationExpression"
APPEND_ATTEMPTS = 5
"""Appends retried from the latest version after a conflict delta-rs's own retries did not resolve."""
MAX_COMMIT_RETRIES = 15

_EXPRESSIONS = {
    "year": "CAST(date_trunc('YEAR', {c}) AS DATE)",
    "month": "CAST(date_trunc('MONTH', {c}) AS DATE)",
    "day": "CAST({c} AS DATE)",
    "hour": "date_trunc('HOUR', {c})",
}
_GENERATED_TYPES = {"year": "date", "month": "date", "day": "date", "hour": "timestamp"}


def _translate(e: Exception, what: str) -> LakehouseError:
    """Turn a delta-rs exception into ours, keeping its message. A commit delta-rs refuses because of the table's
    protocol (a table feature it cannot write) is a refusal naming the feature, never a lost race."""
    msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    if isinstance(e, CommitFailedError):
        features = _protocol_failure(msg)
        if features is not None:
            return _feature_error(what, features)
        return CommitConflictError(f"{what}: a concurrent commit won and retries ran out ({msg})")
    if isinstance(e, DeltaSchemaMismatchError):
        return SchemaMismatchError(f"{what}: {msg}")
    if isinstance(e, DeltaTableNotFoundError):
        return TableNotFoundError(f"{what}: no Delta table ({msg})")
    if isinstance(e, DeltaProtocolError):
        features = _protocol_failure(msg)
        return _feature_error(what, features) if features else UnsupportedOperationError(f"{what}: {msg}")
    if "Unsupported:" in msg or "Unsupported table features" in msg:  # the kernel refuses the table's protocol
        return UnsupportedOperationError(f"{what}: {msg}", hint="read it with Spark or Databricks")
    if isinstance(e, FileNotFoundError) or "not found" in msg.lower() or "NotFound" in msg:
        return VersionNotFoundError(f"{what}: a file it needs is gone ({msg})")
    return StorageError(f"{what}: {msg}")


# ---- table features ------------------------------------------------------------------------------------------
#
# Which Delta table features (PROTOCOL.md, by their protocol names) lakehouse handles, per operation. A table is
# checked against this allow-list before a job writes or deletes anything (``check_operation``): a feature not
# listed here, or listed with a refusal for the operation, refuses it naming the feature. Tables of the legacy
# protocol versions (no feature lists) use the features their versions imply, where their metadata enables them.

_REWRITES = ("optimize", "dedup", "delete", "mask")
_OPERATION_OF = {"compact": "optimize", "zorder": "optimize", "tier": "optimize", "dedup": "dedup", "mask": "mask"}
"""``lakehouse.operation`` of a file swap -> the operation whose features it needs."""
_VERBS = {
    "read": "read",
    "optimize": "rewrite files of",
    "dedup": "deduplicate",
    "delete": "delete rows from",
    "mask": "mask",
    "vacuum": "vacuum (or remove orphan files of)",
}
_WRITE_HINT = (
    "run it with Spark or Databricks (Delta Lake 3+), which support the feature; lakehouse still reads the table"
)


def _writes_refused(why: str) -> dict[str, str]:
    return dict.fromkeys(_REWRITES, why)


_FEATURES: dict[str, FeatureSupport] = {
    f.feature: f
    for f in (
        FeatureSupport(
            "appendOnly",
            refused=dict.fromkeys(
                ("dedup", "delete", "mask"),
                "the table is append-only (delta.appendOnly=true): rows may not be removed or changed",
            ),
            hint="turn delta.appendOnly off first if rows may go",
            notes="compaction keeps the rows (dataChange=false), as Delta's OPTIMIZE does",
        ),
        FeatureSupport(
            "invariants",
            refused={"mask": "masked values are not checked against its column invariants"},
            hint="mask at ingestion or on read (--masked) instead",
            notes="rewrites keep the values; delta-rs checks them on appends",
        ),
        FeatureSupport(
            "checkConstraints",
            refused={"mask": "masked values are not checked against its CHECK constraints"},
            hint="mask at ingestion or on read (--masked) instead",
            notes="rewrites keep the values; delta-rs checks them on appends",
        ),
        FeatureSupport(
            "changeDataFeed",
            refused={
                "delete": "lakehouse's delete does not write the change data files (_change_data/) that a change "
                "data feed needs, and those would keep the deleted rows",
            },
            hint="turn delta.enableChangeDataFeed off and remove _change_data/ first",
            notes="compaction and dedup commit dataChange=false: the change data feed does not show the duplicates "
            "dedup removes",
        ),
        FeatureSupport(
            "generatedColumns",
            refused={"mask": "masked values would no longer match the generated columns computed from them"},
            hint="mask at ingestion or on read (--masked) instead",
            notes="generated columns are read and rewritten like any other; lakehouse's own partition transforms are "
            "generated columns",
        ),
        FeatureSupport(
            "columnMapping",
            refused=dict.fromkeys(
                ("delete", "mask"),
                "lakehouse's row delete and in-place mask read files by column name, and column mapping names them "
                "differently",
            ),
            hint="delete or mask with Spark or Databricks; masking at ingestion or on read (--masked) works",
            notes="name and id modes: files are read by their physical names (also in id mode) and rewritten with "
            "physical names and field ids",
        ),
        FeatureSupport(
            "deletionVectors",
            refused=_writes_refused(
                "lakehouse's rewrites read data files whole, which would revive the rows deletion vectors delete"
            ),
            hint="turn delta.enableDeletionVectors off and purge the deletion vectors first (REORG TABLE ... APPLY "
            "(PURGE) in Spark); reads and vacuum work",
            notes="reads apply deletion vectors (row counts too); vacuum keeps deletion vector files",
        ),
        FeatureSupport("timestampNtz"),
        FeatureSupport(
            "timestampNanos",
            notes="nanosecond timestamps (tables of other writers: lakehouse creates none); delta-rs stores "
            "appended values truncated to microseconds, so appends of values finer than that are refused; DuckDB's "
            "delta extension cannot read the table, so SQL fails naming timestamp_nanos; rewrites of zoned "
            "nanosecond columns are refused by column (DuckDB reads them at microsecond precision)",
        ),
        FeatureSupport(
            "v2Checkpoint",
            refused={
                **_writes_refused("delta-rs, through which lakehouse commits, writes classic checkpoints only"),
                "vacuum": "lakehouse reads classic checkpoints only: files listed in v2 checkpoint sidecars would "
                "look unreferenced",
            },
            hint=_WRITE_HINT,
        ),
        FeatureSupport(
            "identityColumns",
            refused=_writes_refused(
                "delta-rs, through which lakehouse commits, cannot write tables with identity columns"
            ),
            hint=_WRITE_HINT,
        ),
        FeatureSupport(
            "inCommitTimestamp",
            refused=_writes_refused(
                "every commit must carry an in-commit timestamp, which lakehouse's commits (through delta-rs) do not"
            ),
            hint=_WRITE_HINT,
        ),
        FeatureSupport(
            "rowTracking",
            refused=_writes_refused(
                "rewrites must carry row ids and row commit versions over, which lakehouse's do not"
            ),
            hint=_WRITE_HINT,
        ),
        FeatureSupport(
            "domainMetadata",
            refused=_writes_refused("commits must keep the table's domain metadata, which delta-rs cannot write"),
            hint=_WRITE_HINT,
        ),
        FeatureSupport(
            "clustering",
            refused=_writes_refused(
                "its files must keep the table's liquid clustering, which lakehouse's rewrites (committed "
                "through delta-rs) do not"
            ),
            hint="optimize it with Spark or Databricks (OPTIMIZE clusters it); lakehouse still reads the table",
        ),
        FeatureSupport(
            "typeWidening",
            refused=_writes_refused(
                "files may hold narrower types than the table; lakehouse's rewrites are not "
                "verified for widened columns"
            ),
            hint=_WRITE_HINT,
            notes="reads cast narrower file types to the table's",
        ),
        FeatureSupport(
            "vacuumProtocolCheck",
            refused=_writes_refused("delta-rs, through which lakehouse commits, does not support it"),
            hint=_WRITE_HINT,
            notes="lakehouse's vacuum checks the protocol before it deletes anything",
        ),
    )
}
_FEATURES["typeWidening-preview"] = dataclasses.replace(_FEATURES["typeWidening"], feature="typeWidening-preview")
_UNKNOWN_READ = "lakehouse does not know how to read it"
_UNKNOWN_WRITE = "lakehouse does not know what its writers must do"
for _name in ("icebergCompatV1", "icebergCompatV2", "checkpointProtection", "allowColumnDefaults"):
    _FEATURES[_name] = FeatureSupport(_name, refused={**_writes_refused(_UNKNOWN_WRITE), "vacuum": _UNKNOWN_WRITE})
for _name in ("variantType", "variantType-preview", "collations-preview", "catalogManaged", "catalogOwned-preview"):
    _FEATURES[_name] = FeatureSupport(
        _name, refused={"read": _UNKNOWN_READ, **_writes_refused(_UNKNOWN_READ), "vacuum": _UNKNOWN_READ}
    )

_READER_FEATURES = frozenset(
    {
        "columnMapping",
        "deletionVectors",
        "timestampNtz",
        "timestampNanos",
        "v2Checkpoint",
        "typeWidening",
        "typeWidening-preview",
        "vacuumProtocolCheck",
        "variantType",
        "variantType-preview",
        "catalogManaged",
        "catalogOwned-preview",
    }
)
"""Features that readers must understand (the others concern writers only: a reader may ignore them)."""

# legacy protocol versions: the features each implies (the writer versions cumulatively)
_LEGACY_WRITER = {
    2: ("appendOnly", "invariants"),
    3: ("checkConstraints",),
    4: ("changeDataFeed", "generatedColumns"),
    5: ("columnMapping",),
    6: ("identityColumns",),
}
# delta-rs's own names (its errors) -> protocol names
_RUST_NAMES = {"ClusteredTable": "clustering", "TimestampWithoutTimezone": "timestampNtz"}


def _protocol_failure(msg: str) -> list[str] | None:
    """The protocol names of the features a delta-rs error says it cannot handle (None: not such an error)."""
    import re

    m = re.search(r"(?:Unsupported table features required|reader features|writer features)[^\[{]*[\[{]([^\]}]*)", msg)
    if m is None:
        return None
    names = [n.strip().strip("'\"") for n in m.group(1).split(",") if n.strip()]
    return [_RUST_NAMES.get(n, n[:1].lower() + n[1:]) for n in names]


def _feature_error(what: str, features: Sequence[str]) -> UnsupportedOperationError:
    return UnsupportedOperationError(
        f"{what}: the table uses the Delta table feature(s) {', '.join(features)}, which delta-rs (through which "
        "lakehouse reads and commits) does not support",
        hint=_WRITE_HINT,
    )


@dataclass(frozen=True)
class _TableFeatures:
    """The features a table uses (protocol names), and the facts that decide what they forbid."""

    reader_version: int
    writer_version: int
    used: frozenset[str]
    """Features the table lists (reader and writer versions 3 / 7) or that its legacy versions imply and its
    metadata enables."""

    def refusals(self, operation: str) -> list[tuple[str, str, str]]:
        """(feature, why, hint) of every feature that refuses ``operation``."""
        if self.reader_version > 3 or self.writer_version > 7:
            return [
                (
                    f"protocol {self.reader_version}/{self.writer_version}",
                    "it is newer than the Delta protocol lakehouse knows (reader version 3, writer version 7)",
                    "upgrade lakehouse",
                )
            ]
        out = []
        for name in sorted(self.used):
            support = _FEATURES.get(name)
            if support is None:
                if operation == "read" and name not in _READER_FEATURES:
                    continue  # a writer feature unknown to lakehouse: readers may ignore it
                why = _UNKNOWN_READ if name in _READER_FEATURES else _UNKNOWN_WRITE
                out.append((name, why, _WRITE_HINT if operation != "read" else "read it with Spark or Databricks"))
            elif not support.supports(operation):
                out.append((name, support.refused[operation], support.hint))
        return out


def _features_of(state: DeltaTable) -> _TableFeatures:
    protocol = state.protocol()
    config = {str(k).lower(): str(v).lower() for k, v in state.metadata().configuration.items()}
    reader = int(protocol.min_reader_version)
    writer = int(protocol.min_writer_version)
    used: set[str] = set()
    if reader >= 3:
        used |= set(protocol.reader_features or [])
    if writer >= 7:
        used |= set(protocol.writer_features or [])
    metadata = _field_metadata(state)
    enabled = {
        "appendOnly": config.get("delta.appendonly") == "true",
        "invariants": any("delta.invariants" in m for m in metadata),
        "checkConstraints": any(k.startswith("delta.constraints.") for k in config),
        "changeDataFeed": config.get("delta.enablechangedatafeed") == "true",
        "generatedColumns": any(GENERATION in m and not m.get(_OWN_TRANSFORM) for m in metadata),
        "columnMapping": config.get("delta.columnmapping.mode", "none") != "none",
        "identityColumns": any(any(k.startswith("delta.identity.") for k in m) for m in metadata),
    }
    if config.get("delta.enabledeletionvectors") == "true":
        used.add("deletionVectors")
    if writer < 7:  # legacy: what the versions imply, where the metadata enables it
        for version, names in _LEGACY_WRITER.items():
            if writer >= version:
                used |= {n for n in names if enabled.get(n)}
    if reader == 2 and enabled["columnMapping"]:
        used.add("columnMapping")
    # listed features that do nothing until the metadata enables them (delta-rs writes them all)
    for name in ("appendOnly", "invariants", "checkConstraints", "changeDataFeed", "generatedColumns", "columnMapping"):
        if name in used and not enabled[name]:
            used.discard(name)
    return _TableFeatures(reader, writer, frozenset(used))


_OWN_TRANSFORM = "lakehouse.transform"
"""Set (by :func:`_field_metadata`) on lakehouse's own partition-transform columns (``ts_day`` ...)."""


def _field_metadata(state: DeltaTable) -> list[dict[str, str]]:
    """Every field's metadata (nested fields too), decoded; lakehouse's own transform columns marked."""
    arrow = pa.schema(state.schema().to_arrow())
    partitions = set(state.metadata().partition_columns)
    out: list[dict[str, str]] = []

    def walk(f: pa.Field, top: bool) -> None:
        meta = {k.decode(): v.decode() for k, v in (f.metadata or {}).items()}
        if top and _own_transform(f.name, meta, partitions):
            meta[_OWN_TRANSFORM] = "true"
        out.append(meta)
        for child in _children(f.type):
            walk(child, False)

    for f in arrow:
        walk(f, True)
    return out


def _children(t: pa.DataType) -> list[pa.Field]:
    if pa.types.is_struct(t):
        return [t.field(i) for i in range(t.num_fields)]
    if pa.types.is_map(t):
        return [t.key_field, t.item_field]
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        return [t.value_field]
    return []


T = TypeVar("T")


def _reading(ctx: StorageContext, what: str, read: Callable[[], T]) -> T:
    """Run a read of the log (a load, a refresh, the history), started over on a connection reset in the middle of
    a body ("Generic S3 error"), which delta-rs does not retry itself, with the ``[s3]`` retry settings; any other
    failure, or the last, becomes a :class:`StorageError` saying ``what`` failed. A table that is not there is
    left to the caller (``DeltaTableNotFoundError``)."""
    retries = ctx.credentials.retries if ctx.credentials is not None else None
    attempt = 0
    while True:
        try:
            return read()
        except DeltaTableNotFoundError:
            raise
        except (DeltaError, OSError) as e:
            if retries is None or attempt >= retries.max_retries or "Generic S3 error" not in str(e):
                raise _translate(e, what) from e
            time.sleep(min(retries.max_backoff, retries.backoff * 2**attempt))
            attempt += 1


def _commit_of(body: bytes, stamp: _Stamp | None) -> _Commit:
    """What one commit file holds: its commitInfo and the paths it adds and removes. orjson reads the lines (a
    1,000-commit log of 47 MB, 100 files' statistics per commit, in a quarter of the standard library's CPU time:
    0.10 s against 0.40 s); the commitInfo line, whose numbers are kept, is read again by Python's reader, which
    keeps integers beyond 64 bits exact (orjson makes some of them floats), as does any line orjson refuses (a
    bare NaN)."""
    import orjson

    info: dict[str, Any] | None = None
    added: list[str] = []
    removed: list[str] = []
    for line in body.splitlines():
        if not line.strip():
            continue
        try:
            action = orjson.loads(line)
        except orjson.JSONDecodeError:
            action = json.loads(line)
        if "add" in action:
            added.append(action["add"]["path"])
        if "remove" in action:
            removed.append(action["remove"]["path"])
        if info is None and isinstance(action.get("commitInfo"), dict):
            info = json.loads(line)["commitInfo"]
    return _Commit(info=info, added=tuple(added), removed=tuple(removed), stamp=stamp)


def _history_entry(version: int, commit: _Commit, mtime: float | None) -> dict[str, Any]:
    """A commit's history entry, as delta-rs's ``history()`` gives one: its commitInfo and its version. A commit
    without commitInfo (the protocol makes it optional; older and minimal writers leave it out) is still a version:
    its time is its file's modification time, the protocol's commit time (delta-rs's history skips such a commit
    and numbers the ones before it one version too high)."""
    entry = dict(commit.info or {})
    if "timestamp" not in entry:
        entry["timestamp"] = int((mtime or 0) * 1000)
    entry["version"] = version
    return entry


def _snapshot_of(h: Mapping[str, Any], current: int) -> Snapshot:
    """A version of the table from its commit's history entry (see :func:`_history_entry`)."""
    v = int(h["version"])
    parameters = dict(h.get("operationParameters", {}))
    if str(h.get("operation", "")).upper() in _PREDICATE_OPERATIONS:
        # a DELETE or UPDATE by another engine (or by lakehouse before it deleted by rewriting) wrote its
        # predicate, the values of an erasure included, into the log: the history does not repeat it
        parameters = {k: REDACTED if "predicate" in k.lower() else val for k, val in parameters.items()}
    summary = {str(k): str(val) for k, val in {**h.get("operationMetrics", {}), **parameters}.items()}
    for k, val in h.items():
        if k not in ("version", "timestamp", "operation", "operationMetrics", "operationParameters"):
            summary[str(k)] = str(val)
    return Snapshot(
        version=v,
        timestamp=dt.datetime.fromtimestamp(h["timestamp"] / 1000, tz=dt.UTC),
        operation=str(h.get("operation", "")).lower().replace(" ", "-"),
        parent_version=v - 1 if v > 0 else None,
        is_current=v == current,
        summary=summary,
    )


def _optional_column(table: pa.Table, name: str) -> pa.ChunkedArray | None:
    return table.column(name) if name in table.column_names else None


class _StatsColumns:
    """The statistics columns of one listing of the log (per column: its logical name, min, max and null count),
    kept in Arrow until some file's statistics are asked for, then converted all at once (a column at a time):
    health, the bill and whole-table plans of 100,000 files ask for none."""

    __slots__ = ("_arrow", "_lists", "_lock")

    def __init__(self, arrow: list[tuple[Any, ...]]) -> None:
        self._arrow: list[tuple[Any, ...]] | None = arrow
        self._lists: list[tuple[str, list[Any], list[Any] | None, list[Any] | None]] | None = None
        self._lock = threading.Lock()

    def of(self, i: int) -> dict[str, tuple[Any, Any, int | None]]:
        """The statistics of the listing's ``i``-th file."""
        lists = self._lists
        if lists is None:
            with self._lock:
                if self._lists is None:
                    assert self._arrow is not None
                    self._lists = [
                        (name, lo.to_pylist(), *(c.to_pylist() if c is not None else None for c in (hi, nulls)))
                        for name, lo, hi, nulls in self._arrow
                    ]
                    self._arrow = None
                lists = self._lists
        return {
            name: (lo[i], hi[i] if hi is not None else None, nulls[i] if nulls is not None else None)
            for name, lo, hi, nulls in lists
        }


class DeltaAdapter(LakehouseTable):
    """A Delta Lake table through delta-rs."""

    format = "delta"
    capabilities = Capabilities(
        hidden_partitioning=False,
        restore_creates_version=True,
        native_compaction=True,
        native_zorder=True,
        native_vacuum=True,
        file_replace=True,
        notes=(
            "partition transforms are generated columns (<column>_<transform>)",
            "vacuum deletes the files of expired versions; the commit log keeps listing them (marked expired)",
            "table features are checked per operation before a job writes anything (see features)",
        ),
        features=(*_FEATURES.values(), CASE_CLASHES),
    )

    def __init__(self, name: TableName, location: str, ctx: StorageContext, dt_: DeltaTable) -> None:
        super().__init__(name, location, ctx)
        self._dt = dt_
        self._last_commit: tuple[int, float] = (0, 0.0)
        """(attempts, seconds waited after the first lost race) of the last :meth:`_commit_actions`."""

    # ---- helpers -------------------------------------------------------------------------------------

    @staticmethod
    def _options(ctx: StorageContext, location: str) -> dict[str, str] | None:
        if StorageContext.is_s3(location):
            creds = ctx.credentials_for(location)
            if creds is None:
                raise StorageError(f"{location} is on S3 but no S3 settings are configured")
            return creds.delta_storage_options(location)
        return None

    def _refresh(self) -> None:
        """Bring the loaded state to the newest version (reads only the commits since)."""
        if self._pinned:
            return
        _reading(self.ctx, f"cannot read the log of {self.name}", self._dt.update_incremental)

    def _history(self, limit: int | None = None) -> list[dict[str, Any]]:
        return _reading(self.ctx, f"cannot read the history of {self.name}", lambda: self._dt.history(limit))

    @staticmethod
    def _uri(location: str) -> str:
        return location.replace("s3a://", "s3://", 1)

    def _at(self, version: int | None) -> DeltaTable:
        if version is None:
            self._refresh()
            return self._dt
        if version == self._dt.version():  # the state already loaded: no second replay of the log
            return self._dt
        try:
            return DeltaTable(
                self._uri(self.location),
                version=version,
                storage_options=self._options(self.ctx, self.location),
            )
        except (DeltaError, OSError) as e:
            raise VersionNotFoundError(f"table {self.name} version {version} cannot be loaded: {e}") from e

    # ---- lifecycle -----------------------------------------------------------------------------------

    @classmethod
    def create(cls, name: TableName, definition: TableDefinition, *, location: str, ctx: StorageContext) -> Self:
        schema = definition.schema
        validate_partitioning(schema, definition.partitioning)
        validate_keys(schema, definition.keys)
        if cls.exists_at(location, ctx=ctx):
            raise TableExistsError(f"a Delta table already exists at {location}")
        for f in schema:
            if contains_type(f.type, lambda t: pa.types.is_timestamp(t) and t.unit == "ns"):
                raise InvalidSchemaError(
                    f"Delta column {f.name!r} holds nanosecond timestamps: delta-rs would give the table the "
                    "timestampNanos feature, which DuckDB's delta extension (lakehouse's SQL engine) cannot read",
                    hint="declare it as timestamp (microseconds); appended nanosecond values that are whole "
                    "microseconds are stored exactly, finer ones are refused",
                )
        keyed = pa.schema([f.with_metadata({KEY_METADATA: "true"}) if f.name in definition.keys else f for f in schema])
        fields: list[Field] = list(Schema.from_arrow(keyed).fields)
        partition_by: list[str] = []
        for pf in definition.partitioning:
            if pf.transform == "identity":
                partition_by.append(pf.column)
                continue
            if pf.transform not in _EXPRESSIONS:  # bucket(N, c), truncate(W, c): Iceberg's transforms
                raise InvalidSchemaError(
                    f"Delta tables cannot partition by {pf}: Delta has no {pf.transform} transform",
                    hint="partition by identity columns or year/month/day/hour of a time column, or use Iceberg",
                )
            if pf.column != pf.column.lower():
                raise InvalidSchemaError(
                    f"Delta cannot partition by {pf} because delta-rs lower-cases column names in generated "
                    "column expressions",
                    hint="use a lower-case column name for the partition source",
                )
            expr = _EXPRESSIONS[pf.transform].format(c=pf.column)
            fields.append(
                Field(
                    pf.name, PrimitiveType(_GENERATED_TYPES[pf.transform]), nullable=True, metadata={GENERATION: expr}
                )
            )
            partition_by.append(pf.name)
        config = {k: v for k, v in definition.properties.items() if k.startswith("delta.")}
        unknown = [k for k in definition.properties if not k.startswith("delta.")]
        if unknown:
            raise InvalidSchemaError(f"Delta tables accept only delta.* properties, not {', '.join(sorted(unknown))}")
        try:
            dt_ = DeltaTable.create(
                cls._uri(location),
                Schema(fields),
                mode="error",
                partition_by=partition_by or None,
                name=str(name),
                configuration=config or None,
                storage_options=cls._options(ctx, location),
            )
        except (DeltaError, OSError) as e:
            raise _translate(e, f"cannot create Delta table {name} at {location}") from e
        return cls(name, location, ctx, dt_)

    @classmethod
    def open(cls, name: TableName, *, location: str, ctx: StorageContext) -> Self:
        """Load the table's log. delta-rs retries a failed request, but not a connection reset in the middle of
        a log file's body ("Generic S3 error"): a load, which only reads, is started over then, with the same
        retry settings (``[s3] max_retries`` and its backoff)."""
        try:
            dt_ = _reading(
                ctx,
                f"cannot open Delta table {name} at {location}",
                lambda: DeltaTable(cls._uri(location), storage_options=cls._options(ctx, location)),
            )
        except DeltaTableNotFoundError as e:
            raise TableNotFoundError(f"no Delta table at {location} (table {name})") from e
        return cls(name, location, ctx, dt_)

    @classmethod
    def register(
        cls, name: TableName, *, location: str, ctx: StorageContext, metadata_location: str | None = None
    ) -> Self:
        """Adopt a Delta table written by another tool; one that lakehouse cannot read (a reader feature it does not
        know) is refused here, before the catalog records it."""
        if metadata_location is not None:
            raise UnsupportedOperationError("a Delta table is registered by its location (its log), not a file")
        table = cls.open(name, location=location, ctx=ctx)
        table.check_operation("read")
        return table

    @classmethod
    def exists_at(cls, location: str, *, ctx: StorageContext) -> bool:
        # Listing _delta_log ourselves: delta-rs's is_deltatable() stalls on some S3 servers (moto).
        log = f"{location.rstrip('/')}/_delta_log"
        return any(f.path.endswith((".json", ".checkpoint.parquet")) for f in list_files(log, ctx, recursive=False))

    def drop(self, *, purge: bool = False) -> None:
        if purge:
            delete_tree(self.location, self.ctx)

    # ---- metadata ------------------------------------------------------------------------------------

    def catalog_columns(self) -> list[dict[str, Any]]:
        """The columns as a Unity Catalog table lists them (``ColumnInfo``: ``type_json`` is the Delta log's own
        field, ``type_text``/``type_name`` its SQL and enum spellings), for the served Unity Catalog API."""
        import json

        self._refresh()
        try:
            fields = json.loads(self._dt.schema().to_json())["fields"]
        except DeltaError as e:
            raise _translate(e, f"cannot read the schema of {self.name}") from e
        partitions = list(self._dt.metadata().partition_columns)
        columns = []
        for position, f in enumerate(fields):
            kind = f["type"]
            text = _uc_type_text(kind)
            precision, scale = 0, 0
            if isinstance(kind, str) and kind.startswith("decimal("):
                precision, scale = (int(x) for x in kind[len("decimal(") : -1].split(","))
            column: dict[str, Any] = {
                "name": f["name"],
                "type_text": text,
                "type_name": _uc_type_name(kind),
                "type_json": json.dumps(f, separators=(",", ":")),
                "type_precision": precision,
                "type_scale": scale,
                "position": position,
                "nullable": bool(f.get("nullable", True)),
            }
            if f["name"] in partitions:
                column["partition_index"] = partitions.index(f["name"])
            columns.append(column)
        return columns

    @property
    def definition(self) -> TableDefinition:
        try:
            arrow = pa.schema(self._dt.schema().to_arrow())
            partition_columns = list(self._dt.metadata().partition_columns)
            configuration = dict(self._dt.metadata().configuration)
        except DeltaError as e:
            raise _translate(e, f"cannot read the schema of {self.name}") from e
        declared: list[pa.Field] = []
        keys: list[str] = []
        generated: dict[str, str] = {}
        for f in arrow:
            meta = {k.decode(): v.decode() for k, v in (f.metadata or {}).items()}
            if _own_transform(f.name, meta, partition_columns):
                # lakehouse's own partition transform (ts_day ...): part of the partitioning, not a declared column;
                # a generated column another writer declared is a column like any other
                generated[f.name] = meta[GENERATION]
                continue
            if meta.get(KEY_METADATA) == "true":
                keys.append(f.name)
            declared.append(pa.field(f.name, _normalise_type(f.type), nullable=f.nullable))
        parts: list[PartitionField] = []
        for col in partition_columns:
            if col in generated:
                parts.append(_transform_of(col, generated[col]))
            else:
                parts.append(PartitionField(col))
        return TableDefinition(
            schema=pa.schema(declared),
            partitioning=tuple(parts),
            keys=tuple(keys),
            properties=configuration,
        )

    def snapshots(self) -> list[Snapshot]:
        self._refresh()
        current = self._dt.version()
        return [_snapshot_of(h, current) for h in self._full_history(current)]

    def _full_history(self, current: int) -> list[dict[str, Any]]:
        """Every commit's history entry up to ``current``, oldest first, from one listing of the log and the commit
        files this process has not read yet (see :meth:`_commits`)."""
        jsons, _checkpoints, stamps = self._log_listing()
        jsons = {v: p for v, p in jsons.items() if v <= current}
        commits = self._commits(jsons, stamps)
        return [_history_entry(v, commits[v], stamps[v][1]) for v in sorted(jsons)]

    def _log_key(self) -> _LogKey:
        return (self.ctx, self.location, str(self._dt.metadata().id))

    def snapshot(self, as_of: AsOf | None = None) -> Snapshot:
        """The current version (``None`` or its number) from its own commit alone: the history of every commit
        is read only for other versions and points in time."""
        if as_of is None or (isinstance(as_of, int) and not isinstance(as_of, bool)):
            self._refresh()
            current = self._dt.version()
            if as_of is None or as_of == current:
                path = f"{self.location.rstrip('/')}/_delta_log/{current:020d}.json"
                try:
                    commit: _Commit | None = self._commits({current: path}, None)[current]
                except StorageError:  # not readable alone: the whole history says what the version is
                    commit = None
                if commit is not None and commit.info is not None and "timestamp" in commit.info:
                    return _snapshot_of(_history_entry(current, commit, None), current)
        return super().snapshot(as_of)

    def files(self, *, as_of: AsOf | None = None, partitions: Expr | None = None) -> list[DataFile]:
        # ``partitions`` prunes nothing here: the live files are one replay of the log from its checkpoint
        version = self.snapshot(as_of).version if as_of is not None else None
        state = self._at(version)
        try:
            return self._files_of(state)
        except DeltaError as e:
            raise _translate(e, f"cannot list the files of {self.name}") from e

    def _files_of(self, state: DeltaTable, deletions: Mapping[str, pa.BooleanArray] | None = None) -> list[DataFile]:
        """The live files of one loaded state of the table (no refresh, no history read).

        Row counts are exact: the add action's ``numRecords``, or where a writer recorded no statistics the
        Parquet footer's row count, minus the rows a deletion vector deletes. Statistics are keyed by the table's
        column names (column mapping keys them by physical name in the log). Kept per process for the last
        versions listed, by the version and a digest of its add actions (a commit file written over is listed
        anew); not for tables with deletion vectors, or when ``deletions`` are given."""
        table = pa.table(state.get_add_actions(flatten=True))
        key = None
        if deletions is None and "deletionVectors" not in (state.protocol().reader_features or []):
            key = (self.ctx, self.location, str(state.metadata().id)), state.version(), _digest(table)
            kept = _files_cache.get(key)
            if kept is not None:
                return list(kept)
        with gc_paused():
            files = self._list_files(state, table, deletions)
        if key is not None:
            _files_cache.put(key, tuple(files))
        return files

    def _list_files(
        self, state: DeltaTable, table: pa.Table, deletions: Mapping[str, pa.BooleanArray] | None
    ) -> list[DataFile]:
        part_cols = [c for c in table.column_names if c.startswith("partition.")]
        stat_cols = [c for c in table.column_names if c.startswith("min.")]
        logical_of = _logical_paths(state)
        if deletions is None:
            deletions = self._deletion_vectors(state)
        deleted = {key: len(mask) - mask.true_count for key, mask in deletions.items()}
        n = table.num_rows

        def column(name: str) -> list[Any]:  # column by column: no dict per row
            return table.column(name).to_pylist() if name in table.column_names else [None] * n

        full = [self._full_path(str(p)) for p in column("path")]  # the log stores URL-encoded, usually relative
        sizes, records = column("size_bytes"), column("num_records")
        counts = _footer_rows(
            [(p, int(size)) for p, size, r in zip(full, sizes, records, strict=True) if r is None], self.ctx
        )
        parts = list(zip(*(column(c) for c in part_cols), strict=True)) if part_cols else [()] * n
        names = [c[len("partition.") :] for c in part_cols]
        stats = _StatsColumns(
            [
                (
                    logical_of.get(c[len("min.") :], c[len("min.") :]),
                    table.column(c),
                    _optional_column(table, "max." + c[len("min.") :]),
                    _optional_column(table, "null_count." + c[len("min.") :]),
                )
                for c in stat_cols
            ]
        )
        out: list[DataFile] = []
        partitions: dict[tuple[Any, ...], dict[str, Any]] = {}  # one dict per partition, shared by its files
        for i, path in enumerate(full):
            values = parts[i]
            shared = not any(isinstance(v, float) and v == 0 for v in values)  # 0.0, -0.0: equal keys, 2 partitions
            partition = partitions.get(values) if shared else None
            if partition is None:
                partition = dict(zip(names, values, strict=True))
                if shared:
                    partitions[values] = partition
            physical_rows = int(records[i]) if records[i] is not None else counts[path]
            out.append(
                DataFile(
                    path=path,
                    size_bytes=int(sizes[i]),
                    row_count=physical_rows - (deleted.get(_path_key(path), 0) if deleted else 0),
                    partition=partition,
                    stats=LazyStats(functools.partial(stats.of, i)),
                )
            )
        known = {_path_key(p) for p in full} if deletions else set()
        stray = [k for k in deletions if k not in known]
        if stray:  # a deletion vector of a file not recognised: its rows would be counted (and read) as live
            raise StorageError(
                f"table {self.name}: a deletion vector names {stray[0]}, which is not a live file as lakehouse "
                "spells the table's paths; nothing is read"
            )
        return out

    def _deletion_vectors(self, state: DeltaTable) -> dict[str, pa.BooleanArray]:
        """Per live file with a deletion vector (by :func:`_path_key`): which of its rows are kept."""
        protocol = state.protocol()
        if "deletionVectors" not in (protocol.reader_features or []):
            return {}
        vectors = pa.table(state.deletion_vectors())
        out: dict[str, pa.BooleanArray] = {}
        for path, keep in zip(
            vectors.column("filepath").to_pylist(), vectors.column("selection_vector").to_pylist(), strict=True
        ):
            out[_path_key(str(path))] = pa.array(keep, pa.bool_())
        return out

    # ---- data ----------------------------------------------------------------------------------------

    def _check_nanoseconds(self, data: pa.Table) -> None:
        """delta-rs truncates nanosecond timestamps to microseconds when it writes them (also into a
        ``timestamp_nanos`` column): refuse values it would change rather than store others."""
        for f in data.schema:
            if pa.types.is_timestamp(f.type) and f.type.unit == "ns":
                try:
                    data.column(f.name).cast(pa.timestamp("us", tz=f.type.tz), safe=True)
                except pa.ArrowInvalid:
                    raise SchemaMismatchError(
                        f"column {f.name!r} of {self.name} holds timestamps finer than a microsecond, which delta-rs "
                        "would store truncated; nothing was written",
                        hint="round them to microseconds first",
                    ) from None

    def _generated_to_compute(self, data: pa.Table) -> pa.Table:
        """``data`` without the generated columns (another writer's) it holds no value of: delta-rs computes them
        (and checks the values it is given)."""
        arrow = pa.schema(self._dt.schema().to_arrow())
        partitions = list(self._dt.metadata().partition_columns)
        drop = []
        for f in arrow:
            meta = {k.decode(): v.decode() for k, v in (f.metadata or {}).items()}
            if GENERATION in meta and not _own_transform(f.name, meta, partitions) and f.name in data.column_names:
                if data.column(f.name).null_count == data.num_rows:
                    drop.append(f.name)
        return data.drop_columns(drop) if drop else data

    def _merge_updates(self, data: pa.Table) -> dict[str, str]:
        """A merge's updates of a matched row: every column of ``data`` from the source row, and each generated
        column ``data`` has no value of (lakehouse's ``ts_day``..., another writer's) from its generation
        expression over the source row. delta-rs's update-all keeps such a column's old value, so a row whose
        ``ts`` moved to another day failed delta-rs's check of generated values."""
        updates = {_quote_ident(c): f"s.{_quote_ident(c)}" for c in data.column_names}
        for f in pa.schema(self._dt.schema().to_arrow()):
            meta = {k.decode(): v.decode() for k, v in (f.metadata or {}).items()}
            if GENERATION in meta and f.name not in data.column_names:
                updates[_quote_ident(f.name)] = _over_source(meta[GENERATION], f.name)
        return updates

    def _with_added_columns(self, data: pa.Table) -> pa.Table:
        """``data`` with NULL for each nullable column another writer added since it was fitted to this table's
        schema (delta-rs refuses an append of fewer columns than the table has; Iceberg's fills them). Generated
        columns are delta-rs's to compute; a column that is not nullable stays missing, and the append fails."""
        arrow = pa.schema(self._dt.schema().to_arrow())
        added = [
            f
            for f in arrow
            if f.name not in data.column_names
            and f.nullable
            and GENERATION not in {k.decode() for k in (f.metadata or {})}
            and f.name not in self._dt.metadata().partition_columns
        ]
        for f in added:
            data = data.append_column(pa.field(f.name, f.type, nullable=True), pa.nulls(data.num_rows, f.type))
        return data

    def _append(self, data: pa.Table, *, properties: dict[str, str], checkpoints: dict[str, int]) -> CommitResult:
        txns = [Transaction(app_id=source, version=int(position)) for source, position in checkpoints.items()]
        self._check_nanoseconds(data)
        data = self._generated_to_compute(data)
        for attempt in range(APPEND_ATTEMPTS):
            # from the table's latest version: delta-rs's conflict check fails a blind append whose read version
            # is older than a commit that removed files (a handle opened before another handle's delete)
            self._refresh()
            data = self._with_added_columns(data)
            try:
                write_deltalake(
                    self._dt,
                    data,
                    mode="append",
                    commit_properties=CommitProperties(
                        custom_metadata=properties or None,
                        max_commit_retries=MAX_COMMIT_RETRIES,
                        app_transactions=txns or None,
                    ),
                )
                break
            except (DeltaError, OSError) as e:
                error = _translate(e, f"append to {self.name} failed")
                # an append reads nothing: a conflict only says another commit landed first; again on its version
                if isinstance(error, CommitConflictError) and attempt + 1 < APPEND_ATTEMPTS:
                    continue
                raise error from e
        self._refresh()
        metrics = self._history(1)[0].get("operationMetrics", {})
        return CommitResult(
            version=self._dt.version(),
            rows_added=data.num_rows,
            files_added=int(metrics.get("num_added_files", 0)),
        )

    def _upsert(
        self, data: pa.Table, *, keys: list[str], properties: dict[str, str], checkpoints: dict[str, int]
    ) -> CommitResult:
        txns = [Transaction(app_id=source, version=int(position)) for source, position in checkpoints.items()]
        self._check_nanoseconds(data)
        data = self._generated_to_compute(data)
        predicate = " AND ".join(f"t.{_quote_ident(k)} = s.{_quote_ident(k)}" for k in keys)
        updates = self._merge_updates(data)
        delay = 0.02
        for attempt in range(MAX_COMMIT_RETRIES + 1):
            try:
                self._refresh()
                metrics = (
                    self._dt.merge(
                        data,
                        predicate=predicate,
                        source_alias="s",
                        target_alias="t",
                        commit_properties=CommitProperties(
                            custom_metadata=properties or None,
                            max_commit_retries=MAX_COMMIT_RETRIES,
                            app_transactions=txns or None,
                        ),
                    )
                    .when_matched_update(updates)
                    .when_not_matched_insert_all()
                    .execute()
                )
                break
            except CommitFailedError as e:
                # a real conflict, which delta-rs's own retries cannot rebase: a compaction (or another writer)
                # replaced files this merge read. Nothing was committed; the merge runs again on the new
                # version, which is what an upsert means (the checkpoint rides in the same commit)
                if attempt == MAX_COMMIT_RETRIES:
                    raise _translate(e, f"upsert into {self.name} failed") from e
                time.sleep(delay * (1 + random.random()))
                delay = min(delay * 2, 0.5)
            except (DeltaError, OSError) as e:
                raise _translate(e, f"upsert into {self.name} failed") from e
        self._refresh()
        return CommitResult(
            version=self._dt.version(),
            rows_added=int(metrics.get("num_target_rows_inserted", 0)) + int(metrics.get("num_target_rows_updated", 0)),
            files_added=int(metrics.get("num_target_files_added", 0)),
            operation="merge",
        )

    def _commit_info(self, version: int) -> dict[str, Any]:
        """The commitInfo action of one version, read from its log file."""
        filesystem, path = split_location(f"{self.location.rstrip('/')}/_delta_log/{version:020d}.json", self.ctx)
        try:
            with filesystem.open_input_stream(path) as stream:
                for line in stream.read().splitlines():
                    action = json.loads(line)
                    if "commitInfo" in action:
                        return dict(action["commitInfo"])
        except FileNotFoundError:
            return {}
        return {}

    def checkpoint(self, source: str) -> int | None:
        self._refresh()
        version = self._dt.transaction_version(source)
        return int(version) if version is not None else None

    def add_columns(self, fields: Sequence[pa.Field]) -> None:
        if not fields:
            return
        delta_fields = list(Schema.from_arrow(pa.schema([f.with_nullable(True) for f in fields])).fields)
        try:
            self._dt.alter.add_columns(delta_fields)
        except (DeltaError, OSError) as e:
            raise _translate(e, f"cannot add columns to {self.name}") from e
        self._refresh()

    def optimize_native(
        self,
        partition: Mapping[str, Any],
        *,
        target_size: int,
        memory_limit: int,
        properties: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        filters = [(k, "=", _partition_literal(v)) for k, v in partition.items()] or None
        props = dict(properties or {})
        marker = props.setdefault("lakehouse.commit", uuid.uuid4().hex)
        commit = CommitProperties(custom_metadata=props, max_commit_retries=MAX_COMMIT_RETRIES)
        self._refresh()
        start = self._dt.version()
        try:
            metrics = self._dt.optimize.compact(
                partition_filters=filters,
                target_size=target_size,
                max_spill_size=memory_limit,
                commit_properties=commit,
            )
        except (DeltaError, OSError) as e:
            raise _translate(e, f"optimize of {self.name} failed") from e
        return {**metrics, **self._find_commit(start, marker)}

    def rewrite_partition(
        self,
        data: pa.RecordBatchReader,
        partition: Mapping[str, Any],
        *,
        target_size: int,
        properties: Mapping[str, str] | None = None,
        read_version: int | None = None,
    ) -> dict[str, Any]:
        """Replace the rows of one partition by ``data`` (the same rows, rewritten in another order).

        The overwrite runs against the table as of ``read_version`` (the version the rewrite read), so its
        remove actions list only those files: anything a concurrent writer appended since is kept.
        """
        if "deletionVectors" in (self._dt.protocol().reader_features or []):
            raise UnsupportedOperationError(
                f"{self.name} uses deletion vectors; lakehouse's rewrite reads raw files and would revive deleted rows"
            )
        props = dict(properties or {})
        marker = props.setdefault("lakehouse.commit", uuid.uuid4().hex)
        # Delta stores a NULL (and an empty string) partition value as NULL
        predicate = (
            " AND ".join(
                f"{k} IS NULL" if v is None or v == "" else f"{k} = {_sql_str(_partition_literal(v))}"
                for k, v in partition.items()
            )
            or None
        )
        self._refresh()
        start = self._dt.version()
        base = self._at(read_version) if read_version is not None else self._dt
        try:
            write_deltalake(
                base,
                data,
                mode="overwrite",
                predicate=predicate,
                target_file_size=target_size,
                commit_properties=CommitProperties(custom_metadata=props, max_commit_retries=MAX_COMMIT_RETRIES),
            )
        except (DeltaError, OSError) as e:
            raise _translate(e, f"rewrite of {self.name} failed") from e
        return self._find_commit(start, marker)

    def _find_commit(self, start: int, marker: str) -> dict[str, Any]:
        """Version, added files and removed files (with rows) of our commit, found by its marker in the log
        (other writers may have committed around it)."""
        self._refresh()
        out: dict[str, Any] = {"version": None, "added_paths": [], "removed": []}
        for version in range(start + 1, self._dt.version() + 1):
            if self._commit_info(version).get("lakehouse.commit") == marker:
                before = {f.path: f for f in self.files(as_of=version - 1)}
                after = {f.path: f for f in self.files(as_of=version)}
                out["version"] = version
                out["added_paths"] = [p for p in after if p not in before]
                out["removed"] = [(p, f.row_count) for p, f in before.items() if p not in after]
                break
        return out

    # ---- replace files, delete rows ---------------------------------------------------------------------

    def skipping_stats(self, f: DataFile) -> dict[str, tuple[Any, Any, int | None]]:
        return _exact_stats(f, self.schema, set(self._dt.metadata().partition_columns), floats=True)

    def check_constraints(self) -> dict[str, str]:
        prefix = "delta.constraints."
        return {
            str(k)[len(prefix) :]: str(v)
            for k, v in self._dt.metadata().configuration.items()
            if str(k).lower().startswith(prefix)
        }

    def file_columns(self) -> list[str]:
        parts = {pf.name for pf in self.definition.partitioning}
        return [c for c in self.schema.names if c not in parts]

    def replace_files(
        self,
        *,
        remove: Sequence[str],
        add: Sequence[str],
        properties: Mapping[str, str] | None = None,
        partitions: Mapping[str, Mapping[str, Any]] | None = None,
        timeout: float | None = None,
    ) -> CommitResult:
        """Swap files in one commit (``dataChange=false``, like Delta's OPTIMIZE, so streaming readers and the
        change data feed skip it; delta-rs's Python API records the commit's operation as a WRITE). The new files
        must lie under the table location and hold the same partition as the files they replace.

        delta-rs does not flag a concurrent removal of the same input, so the commit is validated here: every
        input must be live at version v, and the commit must become version v + 1 (no blind rebase); otherwise
        it re-reads the log, validates again and retries (see :meth:`_commit_actions`), for up to ``timeout``
        seconds (default :attr:`commit_timeout`) after its first lost race.
        """
        base = self.location.rstrip("/") + "/"
        rel_add = []
        for p in add:
            if not p.startswith(base):
                raise StorageError(f"{p} is outside table {self.name}'s location; Delta references files under it")
            rel_add.append(p[len(base) :])
        wanted = set(remove)
        props = dict(properties or {})
        props.setdefault("lakehouse.commit", uuid.uuid4().hex)
        operation = _OPERATION_OF.get(props.get("lakehouse.operation", ""), "optimize")
        self.check_operation(operation)
        indexed = self._stats_columns()
        # once: the new files do not change
        added_stats = {full: _parquet_stats(full, self.ctx, indexed) for full in add}

        def build(pinned: DeltaTable) -> list[Any]:
            self._check(pinned, operation)  # again on the state it commits on: the protocol may have changed
            live = {f.path: f for f in self._files_of(pinned)}
            gone = wanted - live.keys()
            if gone:
                raise CommitConflictError(
                    f"{len(gone)} input file(s) of this rewrite of {self.name} were removed by another commit; "
                    "nothing was changed, plan again"
                )
            columns = list(pinned.metadata().partition_columns)
            physical = _physical_names(pinned)
            if partitions is None:
                distinct = {repr(sorted(live[p].partition.items())) for p in wanted}
                if len(distinct) != 1:
                    raise StorageError(f"a rewrite of {self.name} over several partitions must name each file's")
                single = live[next(iter(wanted))].partition
            missing = [p for p in add if partitions is not None and p not in partitions]
            if missing:
                raise StorageError(f"no partition given for {missing[0]}")
            now = int(time.time() * 1000)
            actions: list[Any] = []
            for full, rel in zip(add, rel_add, strict=True):
                size, stats = added_stats[full]
                part = self._partition_values(partitions[full] if partitions is not None else single, columns, physical)
                actions.append(AddAction(rel, size, part, now, False, stats))
            for full in wanted:
                part = self._partition_values(live[full].partition, columns, physical)
                actions.append(RemoveAction(self._log_path(full), False, now, live[full].size_bytes, part))
            return actions

        version = self._commit_actions("rewrite", props, build, timeout=timeout)
        assert version is not None  # build never gives up
        attempts, waited = self._last_commit
        return CommitResult(
            version=version, files_added=len(add), operation="rewrite", attempts=attempts, waited_seconds=waited
        )

    def _stats_columns(self) -> Collection[str] | int | None:
        """Which columns new files get statistics for, as the table says (``delta.dataSkippingStatsColumns``, then
        ``delta.dataSkippingNumIndexedCols``, default 32 leaf columns; -1: all)."""
        config = {str(k).lower(): str(v) for k, v in self._dt.metadata().configuration.items()}
        listed = config.get("delta.dataskippingstatscolumns")
        if listed:
            physical = _physical_names(self._dt)
            return {physical.get(c.strip().strip("`"), c.strip().strip("`")) for c in listed.split(",") if c.strip()}
        try:
            n = int(config.get("delta.dataskippingnumindexedcols", "32"))
        except ValueError:
            return 32
        return None if n < 0 else n

    def _partition_values(
        self, partition: Mapping[str, Any], columns: list[str], physical: Mapping[str, str]
    ) -> dict[str, str | None]:
        """A file's partition values as the log stores them (strings), for exactly the table's partition columns,
        keyed by their physical names (column mapping)."""
        if set(partition) != set(columns):
            raise StorageError(f"cannot tell the partition of a file to swap in {self.name}")
        return {physical.get(k, k): _partition_string(partition[k]) for k in columns}

    def _log_path(self, full: str) -> str:
        """The path a remove action names for a live file (:meth:`files` gives it decoded and in full; delta-rs
        encodes it again when it writes the log)."""
        base = self.location.rstrip("/") + "/"
        return full[len(base) :] if full.startswith(base) else full

    def _commit_actions(
        self,
        what: str,
        props: dict[str, str],
        build: Callable[[DeltaTable], list[Any] | None],
        *,
        timeout: float | None = None,
    ) -> int | None:
        """Commit the actions ``build`` makes from one state of the table, as exactly the next version.

        delta-rs rebases a commit that lost its race without checking what it removes, so nothing here is
        rebased (``max_commit_retries=0``): a lost race reads the table again and calls ``build`` on the newer
        state, which validates its inputs there (and may raise). ``props`` go into the commit info; their
        ``lakehouse.commit`` marker (unique) finds an attempt whose answer was lost (on S3 a PUT that timed out
        after it landed is retried by the client and then refused: delta-rs reports a conflict). Returns the
        version, or None when ``build`` returned None (nothing to commit).

        A lost race is retried at once (a short jittered pause): an attempt costs one read of the new log entries
        and ``build``, never a rewrite. Retries stop ``timeout`` seconds (default :attr:`commit_timeout`) after the
        first lost race, with :class:`CommitTimeoutError`. ``self._last_commit`` is (attempts, seconds waited) of
        the last call.

        Raising means nothing was committed, so that callers can delete what they wrote; except
        :class:`CommitOutcomeUnknownError`, when that could not be told.
        """
        limit = self.commit_timeout if timeout is None else timeout
        first_loss: float | None = None
        marker = props["lakehouse.commit"]
        checked: int | None = None  # commits up to this version are known not to be ours

        def landed() -> int | None:
            """The version of an earlier attempt's commit whose answer was lost."""
            nonlocal checked
            if checked is None:
                return None
            found = self._find_commit(checked, marker)["version"]  # reads only the commits since the last look
            checked = self._dt.version()
            return None if found is None else int(found)

        attempt = 0
        while True:
            attempt += 1
            if (ours := landed()) is not None:
                self._last_commit = (attempt - 1, time.monotonic() - first_loss if first_loss is not None else 0.0)
                return ours
            # the refreshed state is the version this attempt validates and commits on; loading it afresh (or
            # reading the history) on every attempt would be slower than a busy writer's commits and never win
            self._refresh()
            pinned = self._dt
            version = pinned.version()
            if checked is None:
                checked = version
            actions = build(pinned)
            if actions is None:
                return None
            try:
                pinned.create_write_transaction(
                    actions,
                    mode="append",
                    schema=pinned.schema(),
                    partition_by=list(pinned.metadata().partition_columns) or None,
                    commit_properties=CommitProperties(custom_metadata=props or None, max_commit_retries=0),
                )
            except CommitFailedError as e:
                if _protocol_failure(str(e)) is not None:  # delta-rs refuses the table's protocol: no race to retry
                    raise _translate(e, f"{what} of {self.name}") from e
                now = time.monotonic()
                first_loss = now if first_loss is None else first_loss
                if now - first_loss >= limit:
                    if (ours := landed()) is not None:
                        self._last_commit = (attempt, now - first_loss)
                        return ours
                    raise CommitTimeoutError(
                        f"{what} of {self.name} gave up after {now - first_loss:.1f} s: concurrent commits won all "
                        f"{attempt} attempts (each validated again on the newer version; none conflicted); nothing "
                        "was committed",
                        hint="run it again when the writers are quieter, or raise the commit_timeout setting",
                    ) from None
                # short and jittered: an attempt is cheap, and the winner's next commit is most likely a writer's
                # interval away; a long pause only lets more commits in
                time.sleep(random.uniform(0, 0.005 * min(attempt, 20)))
                continue
            except (DeltaError, OSError) as e:
                # the commit call failed: it may still have landed (a lost answer). Raising means "not
                # committed", so that callers can delete what they wrote; unless that cannot be told
                try:
                    ours = landed()
                except (DeltaError, OSError, LakehouseError) as check:
                    raise CommitOutcomeUnknownError(
                        f"{what} of {self.name} failed ({_translate(e, 'commit').message}) and whether it landed "
                        f"cannot be told ({check})",
                        hint=f"see `lakehouse table history {self.name}`; `lakehouse orphans` removes the files "
                        "if it did not land",
                    ) from e
                if ours is not None:
                    self._last_commit = (attempt, time.monotonic() - first_loss if first_loss is not None else 0.0)
                    return ours
                raise _translate(e, f"{what} of {self.name} failed") from e
            with contextlib.suppress(DeltaError, OSError):  # committed: a failed refresh changes nothing
                self._refresh()
            self._last_commit = (attempt, time.monotonic() - first_loss if first_loss is not None else 0.0)
            return version + 1

    def check_delete(self) -> None:
        """Refuse tables whose rows lakehouse's rewrite cannot delete correctly (see :meth:`_delete_rows`)."""
        self.check_operation("delete")

    def check_operation(self, operation: str) -> None:
        """Check the table's protocol against the features lakehouse handles for ``operation`` (see
        :data:`_FEATURES` and ``capabilities.features``); refuse naming the feature by its protocol name."""
        try:
            self._refresh()
        except DeltaError as e:
            raise _translate(e, f"cannot load {self.name}") from e
        self._check(self._dt, operation)

    def _check(self, state: DeltaTable, operation: str) -> None:
        try:
            features = _features_of(state)
        except DeltaError as e:
            raise _translate(e, f"cannot read the protocol of {self.name}") from e
        refusals = features.refusals(operation)
        if not refusals:
            return
        verb = _VERBS.get(operation, operation)
        tail = "" if operation == "read" else "; nothing was changed"
        if len(refusals) == 1:
            feature, why, hint = refusals[0]
            reason = f"it uses the Delta table feature {feature}, and {why}"
        else:
            names = ", ".join(r[0] for r in refusals[:-1]) + " and " + refusals[-1][0]
            reason = f"it uses the Delta table features {names} ({'; '.join(f'{r[0]}: {r[1]}' for r in refusals)})"
            hint = refusals[0][2]
        raise UnsupportedOperationError(f"cannot {verb} {self.name}: {reason}{tail}", hint=hint)

    def _delete_rows(self, expr: Expr, properties: dict[str, str]) -> DeleteResult:
        """Delete by rewriting, never with delta-rs's ``DeltaTable.delete``: that writes the predicate into the
        commit's ``operationParameters``, so the raw values of an erasure would sit in the log every reader of
        the table sees. Here the commit info holds only ``properties`` (lakehouse's operation, job and a
        predicate digest), and the operation is recorded as a WRITE.

        Files that cannot hold a matching row (by partition values and exact statistics) are not read; files
        whose rows all match are removed (without reading them when the statistics tell); the others are read
        and rewritten without the matching rows (SQL semantics: a row for which the filter is NULL stays). One
        commit removes and adds them with ``dataChange=true``, validated like :meth:`replace_files`: it lands as
        exactly the next version of the one it read, otherwise the delete is planned again on the newer version
        (a file already read is not read again). Rows appended meanwhile are therefore considered too.

        Each rewritten file is verified before the commit (:mod:`lakehouse.verify`): the rows DuckDB reads from
        the input file equal those it reads from the file written plus the input's rows at the positions the
        filter matched, value for value in the declared types; a mismatch raises
        :class:`~lakehouse.errors.ContentMismatchError` naming the column, and nothing is committed.
        """
        self.check_delete()
        props = dict(properties)
        props.setdefault("lakehouse.commit", uuid.uuid4().hex)
        schema = self.schema
        outcomes: dict[str, _FileDelete] = {}  # input path -> what deleting from it means (kept across attempts)
        totals: dict[str, Any] = {}
        verifier = Verifier(self.ctx, location=self.location)

        def build(pinned: DeltaTable) -> list[Any] | None:
            self._check(pinned, "delete")
            columns = list(pinned.metadata().partition_columns)
            physical = _physical_names(pinned)
            now = int(time.time() * 1000)
            actions: list[Any] = []
            deleted = removed = 0
            added: list[str] = []
            rewritten: dict[str, str | None] = {}
            for f in self._files_of(pinned):
                outcome = outcomes.get(f.path)
                if outcome is None:
                    outcome = outcomes[f.path] = self._delete_from_file(f, expr, schema, set(columns), verifier)
                if not outcome.deleted:
                    continue
                part = self._partition_values(f.partition, columns, physical)
                actions.append(RemoveAction(self._log_path(f.path), True, now, f.size_bytes, part))
                deleted += outcome.deleted
                removed += 1
                rewritten[f.path] = carried(outcome.written, outcome.rows, outcome.deleted)
                if outcome.written is not None:
                    size, stats = outcome.stats
                    actions.append(AddAction(self._log_path(outcome.written), size, part, now, True, stats))
                    added.append(outcome.written)
            totals.update(rows=deleted, removed=removed, added=added, rewritten=rewritten)
            return actions or None

        try:
            version = self._commit_actions("delete", props, build)
        except CommitOutcomeUnknownError:
            raise  # what was written may be live: `lakehouse orphans` removes it if not
        except BaseException:
            self._discard(o.written for o in outcomes.values())
            raise
        finally:
            verifier.close()
        # files written for inputs that another commit removed before ours are referenced by nothing
        committed = set(totals.get("added", [])) if version is not None else set()
        self._discard(o.written for o in outcomes.values() if o.written not in committed)
        if version is None:
            return DeleteResult(version=None)
        return DeleteResult(
            version=version,
            rows_deleted=int(totals["rows"]),
            files_removed=int(totals["removed"]),
            files_added=len(committed),
            rewritten=dict(totals["rewritten"]),
        )

    def _delete_from_file(
        self, f: DataFile, expr: Expr, schema: pa.Schema, partition_columns: set[str], verifier: Verifier
    ) -> _FileDelete:
        """How many rows of one live file match ``expr``, and for a file that keeps some, the file written
        without them (verified against the input before it is returned; removed again when that fails)."""
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        stats = _exact_stats(f, schema, partition_columns)
        rows = f.row_count
        if rows is not None and not may_match(expr, stats, rows):
            return _FileDelete(0)
        if rows is not None and all_match(expr, stats, rows):
            return _FileDelete(rows)
        filesystem, inner = split_location(f.path, self.ctx)
        try:
            with filesystem.open_input_file(inner) as fh:
                # INT96 in microseconds, Delta's unit: nanoseconds overflow outside 1677..2262
                pf = pq.ParquetFile(fh, coerce_int96_timestamp_unit="us")
                stored = set(pf.schema_arrow.names)
                needed = sorted(c for c in expr.columns() if c not in partition_columns and c in stored)
                probe = pf.read(columns=needed) if needed else None
                n = pf.metadata.num_rows
                group_rows = -(-n // max(1, pf.metadata.num_row_groups))
                matches = pc.fill_null(_evaluate(expr, schema, f, probe, n, partition_columns), False)
                deleted = int(pc.sum(matches).as_py() or 0)
                if deleted in (0, n):
                    return _FileDelete(deleted)
                data = without_view_types(pf.read())
        except (OSError, pa.ArrowException) as e:
            raise StorageError(f"delete from {self.name}: cannot read {f.path}: {e}") from e
        kept = data.filter(pc.invert(matches))
        target = f"{self.data_directory(f.partition)}/part-{uuid.uuid4().hex}-lh-delete.parquet"
        self._write_rows(kept, target, group_rows=group_rows)
        try:
            stats_json = _parquet_stats(target, self.ctx, self._stats_columns())
        except (OSError, pa.ArrowException) as e:
            self._discard([target])
            raise StorageError(f"delete from {self.name}: cannot read the statistics of {target}: {e}") from e
        try:
            self._verify_delete(
                verifier, f.path, target, stored, pc.indices_nonzero(matches), schema, partition_columns
            )
        except BaseException:
            self._discard([target])
            raise
        return _FileDelete(deleted, target, stats_json, n)

    def _verify_delete(
        self,
        verifier: Verifier,
        source: str,
        target: str,
        stored: Collection[str],
        removed: pa.Array | pa.ChunkedArray,
        schema: pa.Schema,
        partition_columns: Collection[str],
    ) -> None:
        """The rows of ``source`` equal those of ``target`` plus the rows of ``source`` at the positions
        ``removed``, in every column the files hold (partition columns live in the log, and the new file keeps
        its input's partition values). DuckDB reads both files by name, in the declared types; a column a file
        lacks (added since it was written) reads as NULL."""
        columns = [c for c in schema.names if c not in partition_columns]
        try:
            written = set(_parquet_schema(target, self.ctx).names)
        except (OSError, pa.ArrowException) as e:
            raise StorageError(f"delete from {self.name}: cannot read {target}: {e}") from e
        verifier.removal(
            read=parquet_by_name([source], stored, schema, columns, row_numbers=True),
            written=parquet_by_name([target], written, schema, columns),
            removed=removed,
            schema=schema,
            columns=columns,
            what=f"delete from {self.name} (rewriting {source})",
        )

    # ---- retention and garbage ----------------------------------------------------------------------------

    def _log_files(self) -> tuple[dict[int, str], dict[int, list[str]]]:
        """Commit JSON files and checkpoint parts of the log, by version."""
        jsons, checkpoints, _stamps = self._log_listing()
        return jsons, checkpoints

    def _log_listing(self) -> tuple[dict[int, str], dict[int, list[str]], dict[int, _Stamp]]:
        """Commit JSON files and checkpoint parts of the log by version, and each commit file's size and
        modification time (one listing of ``_delta_log``)."""
        jsons: dict[int, str] = {}
        checkpoints: dict[int, list[str]] = {}
        stamps: dict[int, _Stamp] = {}
        for info in list_files(f"{self.location.rstrip('/')}/_delta_log", self.ctx, recursive=False):
            name = info.path.rsplit("/", 1)[-1]
            if len(name) > 20 and name[:20].isdigit():
                if name.endswith(".json") and name[20:] == ".json":
                    jsons[int(name[:20])] = info.path
                    stamps[int(name[:20])] = (info.size, info.mtime_s)
                elif ".checkpoint" in name and name.endswith(".parquet"):
                    checkpoints.setdefault(int(name[:20]), []).append(info.path)
        return jsons, checkpoints, stamps

    def _commits(self, jsons: Mapping[int, str], stamps: Mapping[int, _Stamp] | None) -> dict[int, _Commit]:
        """What each commit file of ``jsons`` (version -> path) holds: its commitInfo and the paths it adds and
        removes. Read once per process (one GET each on S3, 8 at a time) for both the history and the log replay,
        kept under the table's id; a kept commit is used again only where ``stamps`` (from a listing of the log)
        give the size and modification time it was read at (a commit file overwritten, or a table created again
        at the same location, is read anew). Without ``stamps`` every file is read."""
        key = self._log_key()
        out: dict[int, _Commit] = {}
        todo: list[int] = []
        for v in jsons:
            kept = _commit_cache.get((key, v))
            if kept is not None and stamps is not None and kept.stamp == stamps.get(v):
                out[v] = kept
            else:
                todo.append(v)
        for v, body in zip(todo, read_objects([jsons[v] for v in todo], self.ctx), strict=True):
            try:
                commit = _commit_of(body, stamps.get(v) if stamps is not None else None)
            except (ValueError, KeyError, TypeError, AttributeError) as e:
                raise StorageError(f"the commit file {jsons[v]} of {self.name} is not a valid Delta commit: {e}") from e
            _commit_cache.put((key, v), commit)
            out[v] = commit
        return out

    def _checkpoint_paths(self, parts: list[str]) -> tuple[set[str], set[str]]:
        """(added, removed) paths recorded in a checkpoint."""
        import pyarrow.parquet as pq

        added: set[str] = set()
        removed: set[str] = set()
        for part in parts:
            filesystem, inner = split_location(part, self.ctx)
            with filesystem.open_input_file(inner) as fh:
                table = pq.read_table(fh)
            for kind, target in (("add", added), ("remove", removed)):
                if kind in table.column_names:
                    for action in table.column(kind).to_pylist():
                        if action and action.get("path"):
                            target.add(action["path"])
        return added, removed

    def _full_path(self, raw: str) -> str:
        path = urllib.parse.unquote(raw)
        if "://" in path or path.startswith(("file:/", "/")):
            return normalize_path(path)
        return f"{self.location.rstrip('/')}/{path}"

    def file_lifetimes(self) -> _Lifetimes:
        """For every data file the log names: the version ranges ``[added, removed)`` in which it is live.

        Where the log starts at a checkpoint (older commits cleaned up), what happened before it is unknown
        and the ranges start at version 0, which errs on the side of keeping files.
        """
        jsons, checkpoints, stamps = self._log_listing()
        key = self._log_key()
        listing = (
            tuple(sorted((v, p, stamps[v]) for v, p in jsons.items())),
            tuple(sorted((v, tuple(p)) for v, p in checkpoints.items())),
        )
        cached = _lifetimes_cache.get(key)
        if cached is not None and cached[0] == listing:
            return cached[1]
        # read-only, so that the kept lifetimes are handed out without a copy (100,000 files' copies took a
        # quarter of a second per call)
        ranges = types.MappingProxyType(
            {path: tuple(spans) for path, spans in self._replay(jsons, checkpoints, stamps).items()}
        )
        _lifetimes_cache.put(key, (listing, ranges))
        return ranges

    def _replay(
        self, jsons: dict[int, str], checkpoints: dict[int, list[str]], stamps: Mapping[int, _Stamp]
    ) -> dict[str, list[tuple[int, int | None]]]:
        live: dict[str, int] = {}
        ranges: dict[str, list[tuple[int, int | None]]] = {}
        start = 0
        if (jsons and min(jsons) > 0) or (not jsons and checkpoints):
            first = min(jsons) if jsons else max(checkpoints) + 1
            usable = [c for c in checkpoints if c >= first - 1]
            if not usable:
                raise StorageError(f"the log of {self.name} starts at version {first} without a checkpoint before it")
            c = min(usable)
            added, removed = self._checkpoint_paths(checkpoints[c])
            for raw in added:
                live[self._full_path(raw)] = 0
            for raw in removed:
                ranges.setdefault(self._full_path(raw), []).append((0, c))
            folded = self._commits({v: p for v, p in jsons.items() if v <= c}, stamps)  # the checkpoint folds them in
            for commit in folded.values():
                for raw in (*commit.added, *commit.removed):
                    if self._full_path(raw) not in live:
                        ranges.setdefault(self._full_path(raw), []).append((0, c))
            start = c + 1
        commits = self._commits({v: p for v, p in jsons.items() if v >= start}, stamps)
        for v in sorted(commits):
            self._fold(v, commits[v], live, ranges)
        for path, added_at in live.items():
            ranges.setdefault(path, []).append((added_at, None))
        return ranges

    def _fold(
        self,
        v: int,
        commit: _Commit,
        live: dict[str, int],
        ranges: dict[str, list[tuple[int, int | None]]],
    ) -> None:
        """One commit's actions into the lifetimes being replayed."""
        # removes first: a commit that removes and re-adds a path (a new deletion vector) keeps it live
        for raw in commit.removed:
            path = self._full_path(raw)
            ranges.setdefault(path, []).append((live.pop(path, 0), v))
        for raw in commit.added:
            live.setdefault(self._full_path(raw), v)

    def version_paths(self, versions: Collection[int] | None = None) -> set[str]:
        # vacuum and orphan removal delete what this says nothing references: only where lakehouse reads the
        # whole log (a v2 checkpoint's sidecars it does not)
        self.check_operation("vacuum")
        lifetimes = self.file_lifetimes()
        if versions is None:
            return set(lifetimes)
        wanted = sorted(set(versions))

        def live_in_wanted(a: int, e: int | None) -> bool:  # some wanted version in [a, e)
            i = bisect.bisect_left(wanted, a)
            return i < len(wanted) and (e is None or wanted[i] < e)

        return {path for path, spans in lifetimes.items() if any(live_in_wanted(a, e) for a, e in spans)}

    def seal_history(self) -> int:
        """A metadata-only commit (re-setting delta.checkpointInterval to its value) and a checkpoint at it: the
        log can then start there, and no older commit JSON (stats, delete predicates) is needed."""
        self._refresh()
        config = self._dt.metadata().configuration
        if str(config.get("delta.enableChangeDataFeed", "false")).lower() == "true":
            raise UnsupportedOperationError(
                f"{self.name} writes a change data feed (_change_data/), which keeps deleted rows; lakehouse cannot "
                "purge it yet",
                hint="turn delta.enableChangeDataFeed off and remove _change_data/ first",
            )
        interval = config.get("delta.checkpointInterval") or "100"
        try:
            self._dt.alter.set_table_properties(
                {"delta.checkpointInterval": interval},
                commit_properties=CommitProperties(
                    custom_metadata={"lakehouse.operation": "seal"}, max_commit_retries=MAX_COMMIT_RETRIES
                ),
            )
            self._refresh()
            self._dt.create_checkpoint()
        except (DeltaError, OSError) as e:
            raise _translate(e, f"sealing the history of {self.name} failed") from e
        return int(self._dt.version())

    def drop_old_log(self) -> int:
        """Delete commit JSON files and checkpoints older than the newest checkpoint (which must exist)."""
        from lakehouse.storage import delete_files

        jsons, checkpoints = self._log_files()
        if not checkpoints:
            return 0
        head = max(checkpoints)
        doomed = [p for v, p in jsons.items() if v < head]
        doomed += [p for v, parts in checkpoints.items() if v < head for p in parts]
        delete_files(doomed, self.ctx)
        _forget_log(self.ctx, self.location)
        return len(doomed)

    def trim_metadata(self, oldest: int, before: dt.datetime) -> list[ObjectInfo]:
        """A checkpoint at ``oldest`` (written from the log as it stood then, unless one is there), then every
        commit file and checkpoint of an earlier version older than ``delta.logRetentionDuration`` (default 30
        days, Delta's own rule, by :func:`lakehouse.clock.now`) goes (the commit file of ``oldest`` stays: it
        holds that version's time and operation). When the newest checkpoint the log points readers at
        (``_last_checkpoint``) is older than ``oldest``, a checkpoint at the head moves it forward first, so
        no reader is ever pointed at a deleted file."""
        from lakehouse import clock
        from lakehouse.storage import delete_files

        jsons, checkpoints = self._log_files()
        if not jsons or oldest <= min(jsons):
            return []  # nothing before it is left
        if oldest not in jsons:
            raise StorageError(f"the log of {self.name} has no commit for version {oldest}; its metadata is kept")
        try:
            if oldest not in checkpoints:
                DeltaTable(
                    self._uri(self.location), version=oldest, storage_options=self._options(self.ctx, self.location)
                ).create_checkpoint()
            self._refresh()
            head = int(self._dt.version())
            if max(checkpoints, default=-1) < oldest and head != oldest:
                self._dt.create_checkpoint()  # _last_checkpoint now names the head (>= oldest)
        except (DeltaError, OSError) as e:
            raise _translate(e, f"checkpointing {self.name} before trimming its log failed") from e
        jsons, checkpoints = self._log_files()
        if oldest not in checkpoints:
            raise StorageError(f"no checkpoint at version {oldest} of {self.name}; its log is kept")
        # a writer or reader that loaded the table a while ago reads the commits since its version on its next
        # refresh: only commits older than the table's log retention go, as Delta itself does (by the clock
        # age decisions read: lakehouse.clock)
        cutoff = clock.now().timestamp() - self._log_retention().total_seconds()
        aged = {
            f.path: f
            for f in list_files(f"{self.location.rstrip('/')}/_delta_log", self.ctx, recursive=False)
            if f.mtime_s is not None and f.mtime_s < cutoff
        }
        doomed = sorted(p for v, p in jsons.items() if v < oldest and p in aged)
        doomed += sorted(p for v, parts in checkpoints.items() if v < oldest for p in parts if p in aged)
        delete_files(doomed, self.ctx)
        _forget_log(self.ctx, self.location)
        return [aged[p] for p in doomed]

    def _log_retention(self) -> dt.timedelta:
        """``delta.logRetentionDuration`` (Delta's ``interval <n> <unit>``; 30 days when unset or unreadable)."""
        raw = str(self._dt.metadata().configuration.get("delta.logRetentionDuration") or "")
        found = re.fullmatch(r"\s*(?:interval\s+)?(\d+)\s*(second|minute|hour|day|week)s?\s*", raw.lower())
        if found is None:
            return dt.timedelta(days=30)
        return dt.timedelta(**{f"{found.group(2)}s": int(found.group(1))})

    def metadata_paths(self) -> set[str]:
        log = f"{self.location.rstrip('/')}/_delta_log"
        return {f.path for f in list_files(log, self.ctx)}

    def is_metadata(self, path: str) -> bool:
        return path.startswith(f"{self.location.rstrip('/')}/_delta_log/")

    def garbage_candidate(self, path: str) -> bool:
        # Delta's rule: files and directories starting with _ or . are not the table's data (the log,
        # checkpoints, CDC); deletion-vector files are left alone too
        return path.endswith(".parquet") and not self.hidden(path)

    def _scan(self, expr: Expr | None, columns: list[str] | None, snapshot: Snapshot | None) -> pa.Table:
        state = self._at(snapshot.version if snapshot else None)
        what = f"cannot read {self.name}" + (f" version {snapshot.version}" if snapshot else "")
        try:
            schema, batches = self._read(state, expr, columns)
            out = pa.Table.from_batches(list(batches), schema=schema)
        except (DeltaError, OSError, pa.ArrowException) as e:
            raise _translate(e, what) from e
        for c in columns if columns is not None else self.schema.names:
            if c not in out.column_names:  # added after this version: NULL there
                out = out.append_column(self.schema.field(c), pa.nulls(out.num_rows, self.schema.field(c).type))
        return out

    def _batches(
        self, columns: list[str], snapshot: Snapshot | None, filter: Expr | None = None
    ) -> Iterator[pa.RecordBatch]:
        state = self._at(snapshot.version if snapshot else None)
        what = f"cannot read {self.name}" + (f" version {snapshot.version}" if snapshot else "")
        try:
            _, batches = self._read(state, None, columns, prune=filter)
            yield from batches
        except (DeltaError, OSError, pa.ArrowException) as e:
            raise _translate(e, what) from e

    def _read(
        self, state: DeltaTable, expr: Expr | None, columns: list[str] | None, *, prune: Expr | None = None
    ) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
        """The rows of one loaded state (its schema, and a stream of batches), read by lakehouse itself rather than
        delta-rs's pyarrow dataset, which reads column-mapped files as NULLs, overflows legacy INT96 timestamps
        and refuses deletion vectors:

        * files are read with pyarrow, INT96 timestamps in microseconds (Delta's unit: 0001-01-01 and 9999-12-31
          survive exactly), each file's partition values from the log;
        * with column mapping, columns by their physical names (``delta.columnMapping.physicalName``, nested ones
          too), returned under the table's names;
        * rows a deletion vector deletes are left out.

        ``columns`` (the table's names) that this version lacks are left out; None means every column. ``expr``
        filters the rows; ``prune`` only skips the row groups whose statistics rule it out (of files without
        deletion vectors), leaving the rows of the others to a caller that filters them itself: evaluating a filter
        row by row twice cost more than it saved where statistics skip nothing."""
        import pyarrow.dataset as pds

        self._check(state, "read")
        logical = _arrow_schema(state)
        physical = _physical_schema(state, logical)
        names = [c for c in (columns if columns is not None else logical.names) if logical.get_field_index(c) >= 0]
        if expr is not None:
            missing = [c for c in expr.columns() if logical.get_field_index(c) < 0]
            if missing:
                from lakehouse.errors import InvalidPredicateError

                raise InvalidPredicateError(f"filter column(s) {', '.join(missing)} do not exist in this version")
        phys_of = {lf.name: pf.name for lf, pf in zip(logical, physical, strict=True)}
        out_schema = pa.schema([logical.field(c).remove_metadata() for c in names])
        deletions = self._deletion_vectors(state)
        files = self._files_of(state, deletions)
        if not files:
            return out_schema, iter(())
        filesystem, _ = split_location(self.location, self.ctx)
        fmt = pds.ParquetFileFormat(
            read_options=pds.ParquetReadOptions(coerce_int96_timestamp_unit="us"),
            default_fragment_scan_options=pds.ParquetFragmentScanOptions(pre_buffer=True),
        )
        partition_columns = list(state.metadata().partition_columns)
        plain: list[Any] = []
        masked: list[tuple[Any, pa.BooleanArray]] = []
        partitioned_rule = [c for c in (prune.columns() if prune is not None else ()) if c in partition_columns]
        for f in files:
            if (
                prune is not None
                and partitioned_rule
                and not may_match(prune, _partition_stats(f, partitioned_rule, logical), f.row_count)
            ):
                continue  # its partition values rule the filter out: not even its footer is read
            condition = pc.scalar(True)
            for col in partition_columns:
                field = physical.field(phys_of[col])
                value = f.partition.get(col)
                ref = pc.field(field.name)
                condition = condition & (ref.is_null() if value is None else ref == _typed_scalar(value, field.type))
            _, inner = split_location(f.path, self.ctx)
            fragment = fmt.make_fragment(inner, filesystem=filesystem, partition_expression=condition)
            keep = deletions.get(_path_key(f.path))
            if keep is None:
                plain.append(fragment)
            else:
                masked.append((fragment, keep))
        view = {phys_of[c] for c in self._view_columns(state) if c in phys_of}
        flt = None
        if expr is not None:
            flt = to_arrow(_rename_expr(expr, phys_of), _top_level(physical), cast=view)
        wanted = [phys_of[c] for c in names]

        def relabel(batch: pa.RecordBatch) -> pa.RecordBatch:
            if not names:  # no asked-for column exists in this version: the rows still count (NULLs later)
                return batch.select([])
            arrays = []
            for c, column in zip(names, batch.columns, strict=True):
                t = logical.field(c).type
                arrays.append(column if column.type == t else _relabel(column, t))
            return pa.RecordBatch.from_arrays(arrays, schema=out_schema)

        def stream() -> Iterator[pa.RecordBatch]:
            if plain and prune is not None:  # the row groups statistics do not rule out, read whole
                # lakehouse's own reading of the footer's bounds: pyarrow's (Fragment.subset) rules nothing out on
                # a column with NULLs (its guarantee is "within the bounds or NULL") and costs more per row group
                physical_rule = _rename_expr(prune, phys_of)
                kept = [_row_groups_that_may_match(f, physical_rule) for f in plain]
                plain[:] = [f for f in kept if f.num_row_groups]
            if plain:
                dataset = pds.FileSystemDataset(plain, physical, fmt, filesystem)
                for batch in dataset.to_batches(columns=wanted, filter=flt):
                    yield relabel(batch)
            filter_columns = sorted({phys_of[c] for c in expr.columns()}) if expr is not None else []
            for fragment, keep in masked:
                read = list(dict.fromkeys([*wanted, *filter_columns]))
                data = pds.FileSystemDataset([fragment], physical, fmt, filesystem).to_table(
                    columns=read, use_threads=False
                )
                mask = _full_mask(keep, data.num_rows)
                data = data.filter(mask)
                if flt is not None:
                    data = pds.dataset(data).to_table(filter=flt)
                for batch in data.select(wanted).to_batches():
                    yield relabel(batch)

        return out_schema, stream()

    @staticmethod
    def _view_columns(state: DeltaTable) -> set[str]:
        """Columns that files may hold as Arrow view types (delta-rs's delete and merge write ``string_view`` and
        ``binary_view``): string and binary columns stored in the files. A filter compares them after a cast
        (see :func:`lakehouse.expr.to_arrow`); partition columns come from the log, typed as declared."""
        partitions = set(state.metadata().partition_columns)
        return {
            f.name
            for f in _arrow_schema(state)
            if f.name not in partitions and (pa.types.is_string(f.type) or pa.types.is_binary(f.type))
        }

    def restore(self, as_of: AsOf) -> CommitResult:
        snap = self.snapshot(as_of)
        if snap.is_current:
            return CommitResult(version=snap.version, operation="restore")  # nothing to do
        try:
            metrics = self._dt.restore(
                snap.version, commit_properties=CommitProperties(max_commit_retries=MAX_COMMIT_RETRIES)
            )
        except (DeltaError, OSError) as e:
            raise _translate(e, f"restore of {self.name} to version {snap.version} failed") from e
        self._refresh()
        return CommitResult(
            version=self._dt.version(),
            files_added=int(metrics.get("numRestoredFile", metrics.get("num_restored_file", 0))),
            operation="restore",
        )

    def version_names(self, snapshot: Snapshot) -> dict[str, str | None] | None:
        """With column mapping, a column's identity is its physical name: a renamed column's old values under its
        current name. Without it, names (None)."""
        current = self._at(None)
        if _mapping_mode(current) == "none":
            return None
        then = self._at(snapshot.version)
        if _mapping_mode(then) == "none":
            return None  # mapping was turned on later: the physical names are the names of then
        old = {physical: logical for logical, physical in _physical_names(then).items()}
        return {logical: old.get(physical) for logical, physical in _physical_names(current).items()}

    def sql_source(self, snapshot: Snapshot | None = None) -> str | None:
        """DuckDB's ``delta_scan`` (delta-kernel: it applies deletion vectors, reads INT96 and column-mapped files),
        of the version this table holds (the newest, or the one it is :meth:`pinned` at): a commit landing before
        DuckDB reads the log is not read with the schema and files of the version before it. It reads the partition
        values of a column-mapped table as NULL, so there they come from the log, joined to the rows by file."""
        from lakehouse.duck import duck_type

        state = self._at(snapshot.version if snapshot else None)
        try:
            self._check(state, "read")
            path = _sql_str(self._uri(self.location))
            version = f", version={int(snapshot.version if snapshot is not None else state.version())}"
            partitions = list(state.metadata().partition_columns)
            if _mapping_mode(state) == "none" or not partitions:
                return f"delta_scan({path}{version})"
            files = self._files_of(state)
            logical = _arrow_schema(state)
        except DeltaError as e:
            raise _translate(e, f"cannot read {self.name}") from e
        if not files:
            return f"delta_scan({path}{version})"
        base = self.location.rstrip("/") + "/"
        rows = []
        for f in files:
            rel = f.path[len(base) :] if f.path.startswith(base) else f.path.rsplit("/", 1)[-1]
            values = [
                f"CAST({'NULL' if f.partition.get(c) is None else _sql_str(_partition_literal(f.partition[c]))} "
                f"AS {duck_type(logical.field(c).type)})"
                for c in partitions
            ]
            rows.append(f"({_sql_str(rel.rsplit('/', 1)[-1])}, {_sql_str('/' + rel)}, {', '.join(values)})")
        cols = ", ".join(_quote_ident(c) for c in partitions)
        return (
            f"(SELECT s.* EXCLUDE ({cols}), {', '.join('lh_p.' + _quote_ident(c) for c in partitions)} "
            f"FROM delta_scan({path}{version}, filename = 'lh_file') s "
            f"JOIN (VALUES {', '.join(rows)}) AS lh_p(lh_base, lh_rel, {cols}) "
            "ON parse_filename(s.lh_file) = lh_p.lh_base AND ends_with(s.lh_file, lh_p.lh_rel))"
        )

    def plain_files(self) -> PlainFiles | None:
        """The current version's live files, with its partition columns (kept in the log only), unless a
        deletion vector or column mapping changes what its files' rows mean."""
        state = self._at(None)
        self._check(state, "read")
        try:
            if _mapping_mode(state) != "none" or "deletionVectors" in (state.protocol().reader_features or []):
                return None
            files = self._files_of(state)
            partitions = tuple(state.metadata().partition_columns)
        except DeltaError as e:
            raise _translate(e, f"cannot read {self.name}") from e
        declared, columns = self.schema, set(partitions)
        return PlainFiles(files, partitions, bounds=lambda f: _exact_stats(f, declared, columns))

    def file_schema(self) -> pa.Schema | None:
        try:
            self._refresh()
            if _mapping_mode(self._dt) == "none":
                return None
            logical = _arrow_schema(self._dt)
            physical = {lf.name: pf for lf, pf in zip(logical, _physical_schema(self._dt, logical), strict=True)}
        except DeltaError as e:
            raise _translate(e, f"cannot read the schema of {self.name}") from e
        return pa.schema([physical[c] for c in self.schema.names])


# ---- reading data files ----------------------------------------------------------------------------------------

PHYSICAL_NAME = "delta.columnMapping.physicalName"
COLUMN_ID = "delta.columnMapping.id"
_FIELD_ID = b"PARQUET:field_id"


def _own_transform(name: str, meta: Mapping[str, str], partition_columns: Collection[str]) -> bool:
    """Whether a column is lakehouse's own partition transform (``ts_day`` ...): a generated partition column
    whose expression is one lakehouse writes for a transform of the column its name says."""
    if GENERATION not in meta or name not in partition_columns:
        return False
    return _transform_of(name, meta[GENERATION]).transform != "identity"


def _arrow_schema(state: DeltaTable) -> pa.Schema:
    """Every column of a loaded state (generated ones too), as delta-rs maps the Delta schema to Arrow, with the
    Delta field metadata; plain string and binary types at the top level."""
    arrow = pa.schema(state.schema().to_arrow())
    return pa.schema([f.with_type(_normalise_type(f.type)) for f in arrow])


def _mapping_mode(state: DeltaTable) -> str:
    config = {str(k).lower(): str(v) for k, v in state.metadata().configuration.items()}
    return config.get("delta.columnmapping.mode", "none").lower()


def _physical_schema(state: DeltaTable, logical: pa.Schema | None = None) -> pa.Schema:
    """``logical`` (default: the state's schema) as the data files store it: with column mapping, every field
    (nested ones too) under its physical name, with its column id as Parquet field id; else the same names."""
    logical = logical if logical is not None else _arrow_schema(state)
    if _mapping_mode(state) == "none":
        return pa.schema([f.remove_metadata() for f in logical])
    return pa.schema([_physical_field(f) for f in logical])


def _physical_field(f: pa.Field) -> pa.Field:
    meta = {k.decode(): v.decode() for k, v in (f.metadata or {}).items()}
    name = meta.get(PHYSICAL_NAME, f.name)
    ids = {_FIELD_ID: str(meta[COLUMN_ID]).encode()} if COLUMN_ID in meta else None
    return pa.field(name, _physical_type(f.type), f.nullable, metadata=ids)


def _physical_type(t: pa.DataType) -> pa.DataType:
    if pa.types.is_struct(t):
        return pa.struct([_physical_field(t.field(i)) for i in range(t.num_fields)])
    if pa.types.is_map(t):
        return pa.map_(_physical_field(t.key_field), _physical_field(t.item_field), keys_sorted=t.keys_sorted)
    if pa.types.is_large_list(t):
        return pa.large_list(_physical_field(t.value_field))
    if pa.types.is_fixed_size_list(t):
        return pa.list_(_physical_field(t.value_field), t.list_size)
    if pa.types.is_list(t):
        return pa.list_(_physical_field(t.value_field))
    return t


def _physical_names(state: DeltaTable) -> dict[str, str]:
    """Top-level column name -> the name data files use (itself without column mapping)."""
    logical = _arrow_schema(state)
    return {lf.name: pf.name for lf, pf in zip(logical, _physical_schema(state, logical), strict=True)}


def _logical_paths(state: DeltaTable) -> dict[str, str]:
    """Dotted physical path of every (nested struct) field -> its dotted logical path (statistics are keyed so);
    empty without column mapping."""
    if _mapping_mode(state) == "none":
        return {}
    out: dict[str, str] = {}

    def walk(logical: pa.Field, physical: pa.Field, lprefix: str, pprefix: str) -> None:
        lpath, ppath = lprefix + logical.name, pprefix + physical.name
        out[ppath] = lpath
        if pa.types.is_struct(logical.type):
            for i in range(logical.type.num_fields):
                walk(logical.type.field(i), physical.type.field(i), lpath + ".", ppath + ".")

    logical = _arrow_schema(state)
    for lf, pf in zip(logical, _physical_schema(state, logical), strict=True):
        walk(lf, pf, "", "")
    return out


def _top_level(schema: pa.Schema) -> pa.Schema:
    return pa.schema([f.remove_metadata() for f in schema])


def _relabel(column: pa.Array | pa.ChunkedArray, t: pa.DataType) -> pa.Array | pa.ChunkedArray:
    """``column`` as type ``t``, which differs from its type in nested field names only (a cast would match
    struct fields by name and read them as NULLs)."""
    if isinstance(column, pa.ChunkedArray):
        return pa.chunked_array([c.view(t) for c in column.chunks], type=t)
    return column.view(t)


def _typed_scalar(value: Any, t: pa.DataType) -> pa.Scalar:
    try:
        return pa.scalar(value, type=t)
    except (pa.ArrowException, TypeError, ValueError):
        return pa.scalar(str(value)).cast(t)


def _full_mask(keep: pa.BooleanArray, rows: int) -> pa.BooleanArray:
    """A deletion vector's keep mask for all ``rows`` of its file (rows past its end are kept)."""
    if len(keep) >= rows:
        return keep.slice(0, rows)
    return pa.concat_arrays([keep, pa.array([True] * (rows - len(keep)), pa.bool_())])


def _rename_expr(expr: Expr, names: Mapping[str, str]) -> Expr:
    """``expr`` over the columns as ``names`` renames them."""
    if isinstance(expr, And | Or):
        return type(expr)(tuple(_rename_expr(i, names) for i in expr.items))
    if isinstance(expr, Not):
        return Not(_rename_expr(expr.item, names))
    column = getattr(expr, "column", None)
    if column is not None and names.get(column, column) != column:
        return dataclasses.replace(expr, column=names[column])  # type: ignore[type-var]
    return expr


def _path_key(path: str) -> str:
    """One spelling of a data file's path, whoever spelled it (delta-rs's URIs, the log's encoded paths)."""
    key = normalize_path(urllib.parse.unquote(path))
    return key if "://" in key else os.path.normpath(key)


_FOOTERS: dict[tuple[str, int], int] = {}
_FOOTERS_LOCK = threading.Lock()


def _footer_rows(files: Sequence[tuple[str, int]], ctx: StorageContext) -> dict[str, int]:
    """Row counts of Parquet files (path, size) from their footers, for files whose add action has no statistics;
    remembered per path and size (data files never change)."""
    import pyarrow.parquet as pq

    out: dict[str, int] = {}
    todo: list[tuple[str, int]] = []
    with _FOOTERS_LOCK:
        for path, size in files:
            if (path, size) in _FOOTERS:
                out[path] = _FOOTERS[(path, size)]
            else:
                todo.append((path, size))
    if not todo:
        return out

    def read(item: tuple[str, int]) -> int:
        filesystem, inner = split_location(item[0], ctx)
        try:
            with filesystem.open_input_file(inner) as fh:
                return int(pq.ParquetFile(fh).metadata.num_rows)
        except (OSError, pa.ArrowException) as e:
            raise StorageError(f"cannot count the rows of {item[0]} (its add action has no statistics): {e}") from e

    if len(todo) == 1:
        counts = [read(todo[0])]
    else:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=min(16, len(todo))) as pool:
            counts = list(pool.map(read, todo))
    with _FOOTERS_LOCK:
        if len(_FOOTERS) > 200_000:
            _FOOTERS.clear()
        for item, n in zip(todo, counts, strict=True):
            _FOOTERS[item] = n
            out[item[0]] = n
    return out


@dataclass(frozen=True)
class _FileDelete:
    """What deleting rows from one live file means: how many rows go, and where a file keeping the others was
    written (None: the file stays as it is, or goes whole)."""

    deleted: int
    written: str | None = None
    stats: tuple[int, str] = (0, "")
    rows: int = 0  # of the input, where it was read


def _exact_stats(
    f: DataFile, schema: pa.Schema, partition_columns: set[str], *, floats: bool = False
) -> dict[str, tuple[Any, Any, int | None]]:
    """A file's per-column (min, max, nulls) where they are exact enough to decide a delete without reading the
    file: partition values, and statistics of integer, date, boolean, string and timestamp columns. Timestamp
    statistics are widened by a millisecond (Delta truncates them to milliseconds), long strings are left out
    (Spark truncates them at 32 UTF-16 units, :func:`_utf16_units`), floats and decimals are left out (a JSON
    number may not be the stored value). A column left out here makes the file be read. ``floats``: float columns
    too (bounds to report skipping by, as readers use them; not to decide a delete by)."""
    rows = f.row_count

    def exact(t: pa.DataType) -> bool:
        return bool(
            (floats and pa.types.is_floating(t))
            or pa.types.is_integer(t)
            or pa.types.is_date(t)
            or pa.types.is_boolean(t)
            or pa.types.is_string(t)
            or pa.types.is_timestamp(t)
        )

    out: dict[str, tuple[Any, Any, int | None]] = {}
    for column in schema.names:
        t = schema.field(column).type
        if not exact(t):
            continue
        if column in partition_columns:
            if column in f.partition:
                value = f.partition[column]
                out[column] = (None, None, rows) if value is None else (value, value, 0)
            continue
        if column not in f.stats:
            continue
        lo, hi, nulls = f.stats[column]
        if nulls is None:
            continue
        if lo is None or hi is None:
            if rows is not None and nulls == rows:
                out[column] = (None, None, nulls)  # every value NULL
            continue
        if pa.types.is_timestamp(t):
            if not (isinstance(lo, dt.datetime) and isinstance(hi, dt.datetime)):
                continue
            lo, hi = _shifted(lo, -1), _shifted(hi, 1)
        elif pa.types.is_string(t) and (not isinstance(hi, str) or _utf16_units(hi) >= 32):
            continue
        out[column] = (lo, hi, nulls)
    return out


def _utf16_units(text: str) -> int:
    """The length of ``text`` as Spark counts it (Java's UTF-16 code units): Spark truncates a string statistic at
    32 of them and appends a tie-breaker character to the maximum, so a maximum of 32 units or more may be a
    truncated one, below the values it stands for (a character outside the BMP counts twice: ``'😀' * 16 +
    '\ufffd'`` is 17 characters but a truncated maximum)."""
    return len(text.encode("utf-16-le")) // 2


def _shifted(t: dt.datetime, ms: int) -> dt.datetime:
    """``t`` moved by ``ms`` milliseconds, at most to the ends of Python's range (0001-01-01, 9999-12-31)."""
    try:
        return t + dt.timedelta(milliseconds=ms)
    except OverflowError:
        return (dt.datetime.min if ms < 0 else dt.datetime.max).replace(tzinfo=t.tzinfo)


def _evaluate(
    expr: Expr,
    schema: pa.Schema,
    f: DataFile,
    probe: pa.Table | None,
    rows: int,
    partition_columns: set[str],
) -> pa.ChunkedArray:
    """``expr`` over the rows of one file (NULL where it is unknown). Its columns come from the file, cast to the
    declared types (a file may hold strings as string_view, which pyarrow cannot filter), or from the file's
    partition values; a column the file lacks (added after it was written) reads as NULL."""
    columns: dict[str, pa.Array | pa.ChunkedArray] = {}
    for column in sorted(expr.columns()):
        t = schema.field(column).type
        if column in partition_columns:
            value = f.partition.get(column)
            try:
                columns[column] = pa.array([value] * rows, type=t)
            except (pa.ArrowException, TypeError):
                columns[column] = pa.array([value] * rows).cast(t)
        elif probe is not None and column in probe.column_names:
            values = probe.column(column)
            columns[column] = values if values.type == t else values.cast(t, safe=False)
        else:
            columns[column] = pa.nulls(rows, t)
    return evaluate_table(expr, schema, pa.table(columns))


def _partition_string(v: object) -> str | None:
    """A partition value as the Delta log stores it (partitionValues are strings)."""
    if v is None:
        return None
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, dt.datetime):
        return _timestamp_text(v.astimezone(dt.UTC) if v.tzinfo else v)
    return _partition_literal(v)


def _timestamp_text(v: dt.datetime) -> str:
    """``YYYY-MM-DD HH:MM:SS.ffffff`` with a four-digit year (strftime writes year 999 as ``999``)."""
    return f"{v.year:04d}-{v:%m-%d %H:%M:%S.%f}"


def _parquet_schema(path: str, ctx: StorageContext) -> pa.Schema:
    import pyarrow.parquet as pq

    filesystem, inner = split_location(path, ctx)
    with filesystem.open_input_file(inner) as fh:
        return pq.ParquetFile(fh).schema_arrow


def _parquet_stats(path: str, ctx: StorageContext, indexed: Collection[str] | int | None = None) -> tuple[int, str]:
    """(size, Delta stats JSON) of a Parquet file: row count, per-column min/max/null count for the columns the
    table collects statistics of (``indexed``: their names, or how many of the first columns; None: all)."""
    import pyarrow.parquet as pq

    filesystem, inner = split_location(path, ctx)
    size = filesystem.get_file_info(inner).size or 0
    with filesystem.open_input_file(inner) as fh:
        meta = pq.ParquetFile(fh).metadata
    mins: dict[str, Any] = {}
    maxs: dict[str, Any] = {}
    nulls: dict[str, int] = {}
    unbounded = False
    arrow = meta.schema.to_arrow_schema()
    leaf = 0  # Parquet's column chunks are the leaves: a nested column has several, before the next column's
    for i, name in enumerate(arrow.names):
        t = arrow.field(i).type
        index, leaf = leaf, leaf + _leaves(t)
        if isinstance(indexed, int) and index >= indexed:
            break
        if pa.types.is_nested(t) or (indexed is not None and not isinstance(indexed, int) and name not in indexed):
            continue
        lo = hi = None
        count = 0
        complete = True
        for g in range(meta.num_row_groups):
            st = meta.row_group(g).column(index).statistics
            if st is None:
                complete = False
                break
            count += st.null_count or 0
            if st.has_min_max:
                lo = st.min if lo is None or st.min < lo else lo
                hi = st.max if hi is None or st.max > hi else hi
        if not complete:
            continue
        # JSON has no infinity or NaN (delta-rs's log reader failed on an entry holding `Infinity`): a float
        # column whose bounds are not finite gets none
        finite = not pa.types.is_floating(t) or (
            lo is not None and hi is not None and math.isfinite(lo) and math.isfinite(hi)
        )
        if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t):
            continue  # as delta-rs writes them: none (its readers do not skip by them)
        nulls[name] = count
        if lo is not None and not isinstance(lo, bytes) and finite:
            mins[name], maxs[name] = _stat_json(lo, t), _stat_json(hi, t, upper=True)
        elif count < meta.num_rows:
            unbounded = True
    if unbounded:
        # a column with values but no bounds JSON can hold (a float reaching infinity, strings whose footer has
        # none): delta-rs's filtered reads skip a file whose statistics lack one column's bounds, null or left
        # out (rows lost to `f = 1.0` after a rewrite; its own writer's files too). Without statistics it reads
        # the file
        return int(size), json.dumps({"numRecords": meta.num_rows})
    stats = {"numRecords": meta.num_rows, "minValues": mins, "maxValues": maxs, "nullCount": nulls}
    return int(size), json.dumps(stats, default=str, allow_nan=False)


def _partition_stats(f: DataFile, columns: Sequence[str], schema: pa.Schema) -> dict[str, tuple[Any, Any, int]]:
    """A file's partition values as statistics of those columns (each one value, or all NULL)."""
    out: dict[str, tuple[Any, Any, int]] = {}
    for c in columns:
        value = f.partition.get(c)
        if value is None:
            out[c] = (None, None, f.row_count)
        else:
            typed = _typed_scalar(value, schema.field(c).type).as_py()
            out[c] = (typed, typed, 0)
    return out


def _row_groups_that_may_match(fragment: Any, rule: Expr) -> Any:
    """``fragment`` (a Parquet file, or some of its row groups) cut down to the row groups whose footer
    statistics do not rule ``rule`` out (top-level columns by their stored names; a column without statistics,
    or of a type its bounds do not compare with, rules nothing out)."""
    if not fragment.num_row_groups:
        return fragment
    meta = fragment.metadata
    index = {meta.schema.column(j).path: j for j in range(meta.num_columns)}
    wanted = [c for c in rule.columns() if c in index]
    if not wanted:
        return fragment
    keep = []
    for info in fragment.row_groups:
        group = meta.row_group(info.id)
        stats: dict[str, tuple[Any, Any, int | None]] = {}
        for c in wanted:
            st = group.column(index[c]).statistics
            if st is None:
                continue
            bounds = (st.min, st.max) if st.has_min_max else (None, None)
            if not st.has_min_max and (st.null_count is None or st.null_count < group.num_rows):
                continue  # no bounds, yet values: nothing is known
            stats[c] = (*bounds, st.null_count)
        if may_match(rule, stats, group.num_rows):
            keep.append(info.id)
    return fragment if len(keep) == fragment.num_row_groups else fragment.subset(row_group_ids=keep)


def _leaves(t: pa.DataType) -> int:
    """How many Parquet leaf columns a column of type ``t`` has."""
    children = _children(t)
    return sum(_leaves(c.type) for c in children) if children else 1


def _stat_json(v: Any, t: pa.DataType, *, upper: bool = False) -> Any:
    """A statistic as the Delta log writes it. Timestamps have milliseconds there: a maximum with a finer part
    is rounded up (truncated, it would be below the file's largest value and a reader would skip the file for
    that value), and the year has four digits (strftime writes year 999 as ``999``, which delta-rs cannot read
    back).

    >>> import pyarrow as pa
    >>> t = pa.timestamp("us", "UTC")
    >>> _stat_json(dt.datetime(999, 1, 1, 0, 0, 0, 999_999, tzinfo=dt.UTC), t, upper=True)
    '0999-01-01T00:00:01.000Z'
    >>> _stat_json(dt.datetime(2024, 1, 1, 0, 0, 0, 999_999, tzinfo=dt.UTC), t)
    '2024-01-01T00:00:00.999Z'
    """
    if isinstance(v, dt.datetime):
        if v.tzinfo is not None:
            v = v.astimezone(dt.UTC)
        if upper and v.microsecond % 1000:
            with contextlib.suppress(OverflowError):  # 9999-12-31 23:59:59.999999 stays itself, truncated
                v = v.replace(microsecond=v.microsecond - v.microsecond % 1000) + dt.timedelta(milliseconds=1)
        text = f"{v.year:04d}-{v:%m-%dT%H:%M:%S}.{v.microsecond // 1000:03d}"
        return text + ("Z" if t.tz else "")
    if isinstance(v, dt.date):
        return v.isoformat()
    return v


def _partition_literal(v: object) -> str:
    if isinstance(v, dt.datetime):
        return _timestamp_text(v.astimezone(dt.UTC)) if v.tzinfo else v.isoformat(" ")
    if isinstance(v, dt.date):
        return v.isoformat()
    if isinstance(v, Decimal):  # plain digits: str() writes 1E-7 and 0E-10
        return format(v, "f")
    if isinstance(v, bytes | bytearray):
        # delta-rs hands a binary partition value over as the bytes of the log's string (its \u0061 escapes
        # undecoded): that string again, so a rewritten file keeps its partition (Python's repr, b'...', did not)
        try:
            return bytes(v).decode("utf-8")
        except UnicodeDecodeError as e:
            raise UnsupportedOperationError(
                f"a binary partition value ({len(v)} bytes) is not text the Delta log can hold as it was read"
            ) from e
    return "" if v is None else str(v)


def _over_source(expression: str, column: str) -> str:
    """A generation expression (Spark SQL, as the Delta protocol stores it) over a merge's source row: each
    column it names qualified by the source alias ``s``."""
    import sqlglot
    from sqlglot import exp

    try:
        tree = sqlglot.parse_one(expression, read="spark")
    except sqlglot.errors.ParseError as e:
        raise UnsupportedOperationError(
            f"cannot upsert: the generation expression of column {column} ({expression}) could not be read: {e}"
        ) from e
    for ref in tree.find_all(exp.Column):
        if not ref.table:
            ref.set("table", exp.to_identifier("s"))
    return tree.sql(dialect="spark")


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _sql_str(v: str) -> str:
    return "'" + v.replace("'", "''") + "'"


def _normalise_type(t: pa.DataType) -> pa.DataType:
    if pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return pa.string()
    if pa.types.is_large_binary(t) or pa.types.is_binary_view(t):
        return pa.binary()
    return t


def _transform_of(column: str, expression: str) -> PartitionField:
    for transform, template in _EXPRESSIONS.items():
        prefix, _, suffix = template.partition("{c}")
        if expression.startswith(prefix) and expression.endswith(suffix):
            source = expression[len(prefix) : len(expression) - len(suffix)]
            if PartitionField(source, transform).name == column:  # type: ignore[arg-type]
                return PartitionField(source, transform)  # type: ignore[arg-type]
    # a generated column we did not write: treat it as an identity partition on that column
    return PartitionField(column)


_UC_TEXT = {"long": "bigint", "integer": "int", "short": "smallint", "byte": "tinyint"}
_UC_NAME = {
    "long": "LONG",
    "integer": "INT",
    "short": "SHORT",
    "byte": "BYTE",
    "timestamp_ntz": "TIMESTAMP_NTZ",
}


def _uc_type_text(kind: Any) -> str:
    """A Delta log type as Unity Catalog's ``type_text`` (Spark SQL's spelling).

    >>> _uc_type_text({"type": "map", "keyType": "string", "valueType": {"type": "array", "elementType": "long"}})
    'map<string,array<bigint>>'
    """
    if isinstance(kind, str):
        return _UC_TEXT.get(kind, kind)
    if kind["type"] == "struct":
        return "struct<" + ",".join(f"{f['name']}:{_uc_type_text(f['type'])}" for f in kind["fields"]) + ">"
    if kind["type"] == "array":
        return f"array<{_uc_type_text(kind['elementType'])}>"
    return f"map<{_uc_type_text(kind['keyType'])},{_uc_type_text(kind['valueType'])}>"


def _uc_type_name(kind: Any) -> str:
    """A Delta log type as Unity Catalog's ``ColumnTypeName`` enum (``decimal(10,2)`` is ``DECIMAL``)."""
    if isinstance(kind, dict):
        return {"struct": "STRUCT", "array": "ARRAY", "map": "MAP"}[kind["type"]]
    base = kind.split("(")[0]
    return _UC_NAME.get(base, base.upper())
