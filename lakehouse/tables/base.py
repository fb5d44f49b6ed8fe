"""The table interface every format adapter implements, and the records it returns.

Only ``lakehouse/tables/delta.py`` imports ``deltalake`` and only ``lakehouse/tables/iceberg.py`` imports
``pyiceberg``; everything else talks to :class:`LakehouseTable` and checks :class:`Capabilities`.

Versions: every adapter numbers its commits with increasing integers (Delta: the log version; Iceberg: the
snapshot's sequence number). Iceberg snapshot ids are accepted wherever a version is.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, Self, TypeVar

import pyarrow as pa

from lakehouse.errors import (
    InvalidInputError,
    LakehouseError,
    StorageError,
    UnsupportedOperationError,
    VersionNotFoundError,
)
from lakehouse.expr import Expr, check_columns, normalize, parse_filter, to_arrow
from lakehouse.names import TableName  # part of the adapter interface, defined below the settings
from lakehouse.schema import PartitionField, case_clashes, conform
from lakehouse.storage import ObjectInfo, StorageContext  # likewise, defined beside the object-store functions

AsOf = int | dt.datetime
"""A version number (or Iceberg snapshot id) or a point in time."""


def parse_as_of(text: str | int | dt.datetime) -> AsOf:
    """Parse ``"12"`` as a version and an ISO-8601 string as a UTC point in time.

    >>> parse_as_of("3")
    3
    >>> parse_as_of("2026-01-02T03:04:05+01:00")
    datetime.datetime(2026, 1, 2, 2, 4, 5, tzinfo=datetime.timezone.utc)
    """
    if isinstance(text, bool):  # an int to Python, not a version to anyone
        raise InvalidInputError(f"invalid version {text!r}", hint="give a version number or an ISO-8601 time")
    if isinstance(text, int | dt.datetime):
        return utc(text) if isinstance(text, dt.datetime) else text
    s = text.strip()
    if re.fullmatch(r"\d+", s):
        return int(s)
    try:
        return utc(dt.datetime.fromisoformat(s.replace("Z", "+00:00")))
    except (ValueError, OverflowError):
        raise InvalidInputError(
            f"invalid version or timestamp {text!r}", hint="give a version number or an ISO-8601 time"
        ) from None


def utc(t: dt.datetime) -> dt.datetime:
    return t.replace(tzinfo=dt.UTC) if t.tzinfo is None else t.astimezone(dt.UTC)


DEFAULT_COMMIT_TIMEOUT = 120.0
"""Seconds a commit keeps retrying against concurrent writers by default (the ``commit_timeout`` setting)."""

REPLACE_OPERATIONS = frozenset({"compact", "zorder", "tier"})
"""``lakehouse.operation`` values of file swaps that keep every row as it is (Iceberg ``replace`` snapshots)."""

OPERATIONS = ("read", "optimize", "dedup", "delete", "mask", "vacuum")
"""What :meth:`LakehouseTable.check_operation` checks: reads (scan, query, show); rewrites of the same rows
(compaction, Z-order, tiering moves); deduplication; row deletes (erase, expire-data); in-place masking; vacuum
and orphan removal (files deleted by the table's own account of what references them)."""


K = TypeVar("K")
V = TypeVar("V")

_gc_lock = threading.Lock()
_gc_pauses = 0
_gc_was_enabled = False


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off while a listing builds hundreds of thousands of objects that all
    stay alive (manifest entries, file lists): each collection would walk every one of them again (2.3 of the
    4.2 s that decoding 100,000 Iceberg manifest entries took). Reference counting still frees what is dropped;
    the collector resumes when the last pause in the process ends."""
    import gc

    global _gc_pauses, _gc_was_enabled
    with _gc_lock:
        if _gc_pauses == 0:
            _gc_was_enabled = gc.isenabled()
            gc.disable()
        _gc_pauses += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_pauses -= 1
            if _gc_pauses == 0 and _gc_was_enabled:
                gc.enable()


class KeptMetadata(Generic[K, V]):
    """What an adapter read of metadata that never changes once written (a Delta commit file, an Iceberg
    manifest or snapshot), kept per process so the next handle on the table does not read it again. The oldest
    entries go once the kept ``weight`` (1 per entry unless given) passes ``limit``. Thread-safe."""

    def __init__(self, limit: int, weight: Callable[[V], int] | None = None) -> None:
        self._limit = limit
        self._weight = weight or (lambda _v: 1)
        self._items: dict[K, V] = {}
        self._total = 0
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        with self._lock:
            return self._items.get(key)

    def put(self, key: K, value: V) -> None:
        """Keep ``value`` as the newest entry (replacing one under ``key``)."""
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._total -= self._weight(old)
            self._items[key] = value
            self._total += self._weight(value)
            while self._total > self._limit and len(self._items) > 1:
                self._total -= self._weight(self._items.pop(next(iter(self._items))))

    def forget(self, key: K) -> None:
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._total -= self._weight(old)

    def forget_where(self, matches: Callable[[K], bool]) -> None:
        with self._lock:
            for key in [k for k in self._items if matches(k)]:
                self._total -= self._weight(self._items.pop(key))

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._total = 0


@dataclass(frozen=True)
class FeatureSupport:
    """What lakehouse does with a table that uses one feature of its format (a Delta table feature by its
    protocol name), per operation of :data:`OPERATIONS`: supported, or refused naming the feature and why."""

    feature: str
    refused: Mapping[str, str] = field(default_factory=dict)
    """operation -> why it is refused (operations not listed are supported)."""
    hint: str = ""
    """What the user can do about a refusal."""
    notes: str = ""

    def supports(self, operation: str) -> bool:
        return operation not in self.refused

    def as_dict(self) -> dict[str, Any]:
        return {
            "feature": self.feature,
            **{op: ("yes" if op not in self.refused else f"refused: {self.refused[op]}") for op in OPERATIONS},
            "hint": self.hint,
            "notes": self.notes,
        }


CASE_CLASHES = FeatureSupport(
    "names differing only in case (columns `A` and `a`, a struct's `b` and `B`)",
    refused={
        "read": "SQL (DuckDB, Spark) resolves names without case and would read one as the other",
        **dict.fromkeys(("optimize", "dedup", "mask"), "the rewrite reads the files through DuckDB"),
    },
    hint="rename one of the two with the format's own tools (e.g. Spark's ALTER TABLE ... RENAME COLUMN)",
    notes="register, `table show` and scans through the format library work; erase and expire-data evaluate "
    "their predicate on Arrow data and work",
)


@dataclass(frozen=True)
class Capabilities:
    """What a format can do natively. Jobs check this instead of catching errors."""

    hidden_partitioning: bool
    """Partition transforms without a visible column (Iceberg). Delta materialises a generated column."""
    time_travel: bool = True
    restore_creates_version: bool = True
    """Delta's restore commits a new version; Iceberg's rolls the current-snapshot pointer back."""
    native_compaction: bool = False
    native_zorder: bool = False
    native_vacuum: bool = False
    file_replace: bool = False
    """Arbitrary Parquet files can be swapped in one commit (lakehouse's own compaction/Z-order)."""
    snapshot_properties: bool = True
    """Arbitrary key/values can be committed atomically with data (Delta: commit info + app
    transactions; Iceberg: snapshot summary)."""
    notes: tuple[str, ...] = ()
    features: tuple[FeatureSupport, ...] = ()
    """Format features (Delta table features) and what lakehouse does with a table using each; a feature not
    listed is refused for everything but reading (and reading too when readers must understand it)."""

    def as_dict(self) -> dict[str, Any]:
        return {
            k: ([i.as_dict() if isinstance(i, FeatureSupport) else i for i in v] if isinstance(v, tuple) else v)
            for k, v in self.__dict__.items()
        }


@dataclass(frozen=True)
class TableDefinition:
    """What a table was declared with: the user's columns, partitioning, keys and properties."""

    schema: pa.Schema
    partitioning: tuple[PartitionField, ...] = ()
    keys: tuple[str, ...] = ()
    properties: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Snapshot:
    """One version of a table."""

    version: int
    timestamp: dt.datetime
    operation: str
    snapshot_id: int | None = None
    parent_version: int | None = None
    is_current: bool = False
    summary: Mapping[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "snapshot_id": self.snapshot_id,
            "timestamp": self.timestamp.isoformat(),
            "operation": self.operation,
            "parent_version": self.parent_version,
            "is_current": self.is_current,
            "summary": dict(self.summary),
        }


class LazyStats(Mapping[str, tuple[Any, Any, int | None]]):
    """A data file's statistics (per column: min, max, null count), made by ``compute`` on first use and kept; a
    listing of 100,000 files converts none of them when nothing asks (a plan, health and the bill do not).
    Thread-safe to read (two first uses at once both compute the same values); pickled as the plain dict."""

    __slots__ = ("_compute", "_stats")

    def __init__(self, compute: Callable[[], dict[str, tuple[Any, Any, int | None]]]) -> None:
        self._compute: Callable[[], dict[str, tuple[Any, Any, int | None]]] | None = compute
        self._stats: dict[str, tuple[Any, Any, int | None]] | None = None

    def _get(self) -> dict[str, tuple[Any, Any, int | None]]:
        stats = self._stats
        if stats is None:
            compute = self._compute
            if compute is None:  # another thread finished it meanwhile
                stats = self._stats
                assert stats is not None
                return stats
            stats = compute()
            self._stats, self._compute = stats, None
        return stats

    def __getitem__(self, key: str) -> tuple[Any, Any, int | None]:
        return self._get()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._get())

    def __len__(self) -> int:
        return len(self._get())

    def __repr__(self) -> str:
        return repr(self._get())

    def __reduce__(self) -> tuple[Any, ...]:
        return (dict, (self._get(),))


@dataclass(frozen=True, slots=True)
class DataFile:
    """A live data file of a version (slotted: a plan of a 100,000-file table holds 100,000 of them)."""

    path: str
    size_bytes: int
    row_count: int
    partition: Mapping[str, Any] = field(default_factory=dict)
    stats: Mapping[str, tuple[Any, Any, int | None]] = field(default_factory=dict, compare=False)
    """Per column: (min, max, null count) from the format's metadata, where recorded."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "size_bytes": self.size_bytes,
            "row_count": self.row_count,
            "partition": {k: _jsonable(v) for k, v in self.partition.items()},
        }


def last_per_key(table: pa.Table, keys: Sequence[str]) -> pa.Table:
    """Keep the last row of every key (arrival order), in arrival order.

    >>> t = pa.table({"k": [1, 2, 1], "v": ["a", "b", "c"]})
    >>> last_per_key(t, ["k"]).to_pylist()
    [{'k': 2, 'v': 'b'}, {'k': 1, 'v': 'c'}]
    >>> last_per_key(pa.table({"k": [None, None, 1]}), ["k"]).num_rows
    3
    """
    if table.num_rows < 2:
        return table
    import pyarrow.compute as pc

    indexed = table.select(list(keys)).append_column("__lh_row", pa.array(range(table.num_rows), pa.int64()))
    # rows with a NULL key are not duplicates of each other: keep every one of them
    null_mask = pc.is_null(indexed.column(keys[0]))
    for k in keys[1:]:
        null_mask = pc.or_(null_mask, pc.is_null(indexed.column(k)))
    nulls = indexed.filter(null_mask).column("__lh_row").combine_chunks()
    last = indexed.filter(pc.invert(null_mask)).group_by(list(keys), use_threads=False).aggregate([("__lh_row", "max")])
    keep = pc.sort_indices(pa.concat_arrays([last.column("__lh_row_max").combine_chunks(), nulls]))
    keep = pc.take(pa.concat_arrays([last.column("__lh_row_max").combine_chunks(), nulls]), keep)
    return table.take(keep)


def conform_batch(batch: pa.RecordBatch, target: pa.Schema) -> pa.RecordBatch:
    """A batch read from storage in the declared types of ``target``: columns in its order, cast losslessly
    (a value that does not fit fails), columns the batch lacks as NULLs.

    >>> b = pa.record_batch({"a": pa.array([1, 2], pa.int32()), "z": ["x", "y"]})
    >>> conform_batch(b, pa.schema([("a", pa.int64()), ("b", pa.string())])).to_pylist()
    [{'a': 1, 'b': None}, {'a': 2, 'b': None}]
    """
    columns = []
    for f in target:
        i = batch.schema.get_field_index(f.name)
        if i < 0:
            columns.append(pa.nulls(batch.num_rows, f.type))
            continue
        column = batch.column(i)
        columns.append(column if column.type == f.type else column.cast(f.type))
    return pa.RecordBatch.from_arrays(columns, schema=target)


def partition_path(partition: Mapping[str, Any]) -> str:
    """Hive-style directories of a partition, values URL-quoted.

    >>> partition_path({"ts_day": "2026-01-01", "country": "a/b"})
    'ts_day=2026-01-01/country=a%2Fb'
    """
    import urllib.parse

    return "/".join(f"{k}={urllib.parse.quote(str(v), safe='')}" for k, v in partition.items())


def _jsonable(v: Any) -> Any:
    return v.isoformat() if isinstance(v, dt.date | dt.datetime) else v


@dataclass(frozen=True)
class PlainFiles:
    """The current version of a table as plain Parquet files: its rows are exactly the rows of ``files`` (no
    deletion vector, delete file or column mapping applies), for a reader that plans the files itself (the SQL
    engine's :mod:`lakehouse.sql.planned`)."""

    files: Sequence[DataFile]
    partition_columns: tuple[str, ...] = ()
    """Columns the files do not hold: in a file's rows their value is the file's partition value (Delta)."""
    field_ids: Mapping[str, int] = field(default_factory=dict)
    """Where the format resolves columns by Parquet field id (Iceberg): each column's id. A file's column is the
    table's column only where it carries that id."""
    bounds: Callable[[DataFile], Mapping[str, tuple[Any, Any, int | None]]] = lambda f: {}
    """A file's per-column (min, max, nulls) that bound every value (the rule the format's row deletes decide
    files by, its writers' truncations allowed for); a column left out is unknown."""
    mapped_names: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Where files without field ids are read through a name mapping (Iceberg's ``schema.name-mapping.default``):
    per column, the names such a file may hold it under. A column without entry is not read from such files."""


@dataclass(frozen=True)
class CommitResult:
    """What a commit did."""

    version: int
    snapshot_id: int | None = None
    rows_added: int = 0
    files_added: int = 0
    operation: str = "append"
    attempts: int = 1
    """Commit attempts until it landed (each after the first rebased onto commits that won meanwhile)."""
    waited_seconds: float = 0.0
    """Time from the first lost attempt until it landed (0: the first attempt landed)."""

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class DeleteResult:
    """What a row delete committed."""

    version: int | None
    rows_deleted: int = 0
    files_removed: int = 0
    files_added: int = 0
    rewritten: Mapping[str, str | None] = field(default_factory=dict, repr=False)
    """Each file the commit removed -> the file that replaced it, its rows less those deleted in their order and
    row groups of the same size; None: removed whole, or replaced by a file of less than half its rows (a small
    file now, for compaction to merge rather than a clustering to keep). Jobs carry a clustered layout over with
    it (``Catalog.follow_rewrites``)."""

    @property
    def metadata_only(self) -> bool:
        """True when whole files were dropped and none rewritten."""
        return self.files_added == 0

    def as_dict(self) -> dict[str, Any]:
        return {**{k: v for k, v in self.__dict__.items() if k != "rewritten"}, "metadata_only": self.metadata_only}


def carried(written: str | None, rows: int, deleted: int) -> str | None:
    """What :attr:`DeleteResult.rewritten` records for a file of ``rows`` rows that a row delete replaced by
    ``written`` without ``deleted`` of them."""
    return written if written is not None and 2 * (rows - deleted) >= rows else None


@dataclass(frozen=True)
class ExpiredVersions:
    """Versions that retention made unreadable (recorded in the catalog by ``lakehouse vacuum``)."""

    versions: frozenset[int]
    retention: str
    job_id: int | None = None
    at: dt.datetime | None = None
    current_since: Mapping[int, tuple[dt.datetime, ...]] = field(default_factory=dict)
    """When each expired version became current (``LakehouseTable.current_since`` at the time of expiry)."""
    snapshot_versions: Mapping[int, int] = field(default_factory=dict)
    """Snapshot id -> version of expired versions, where the format has snapshot ids (Iceberg)."""

    def current_at(self, at: dt.datetime) -> tuple[dt.datetime, int] | None:
        """The latest (time, version) at or before ``at`` at which an expired version became current."""
        seen = [(t, v) for v, times in self.current_since.items() for t in times if t <= at]
        return max(seen) if seen else None

    def error(self, table: TableName, version: int, *, snapshot_id: int | None = None) -> VersionNotFoundError:
        when = f" at {self.at.isoformat(timespec='seconds')}" if self.at else ""
        job = f" (job {self.job_id})" if self.job_id is not None else ""
        which = f"snapshot {snapshot_id} (version {version})" if snapshot_id is not None else f"version {version}"
        return VersionNotFoundError(
            f"{which} of table {table} was removed by retention: vacuum with --retain "
            f"{self.retention}{when}{job} deleted the files it needs",
            hint="time travel reaches only versions inside the retention window; see `lakehouse table history`",
        )


def version_ranges(versions: Collection[int]) -> str:
    """``0-2, 4, 7-9``: versions as runs of consecutive numbers."""
    out: list[str] = []
    for v in sorted(versions):
        if out and int(out[-1].rsplit("-", 1)[-1]) == v - 1:
            out[-1] = f"{out[-1].split('-')[0]}-{v}"
        else:
            out.append(str(v))
    return ", ".join(out) or "none"


class LakehouseTable(ABC):
    """One table, whatever its format.

    Adapters implement the ``_``-prefixed hooks and the abstract methods; the public methods validate
    input once for every format.
    """

    format: ClassVar[str]
    capabilities: ClassVar[Capabilities]

    def __init__(self, name: TableName, location: str, ctx: StorageContext) -> None:
        self.name = name
        self.location = location
        self.ctx = ctx
        self.expired: ExpiredVersions | None = None
        """Versions retention removed; set by the catalog layer so time travel names the retention."""
        self.commit_timeout: float = DEFAULT_COMMIT_TIMEOUT
        """Seconds a commit keeps retrying against concurrent writers before it gives up (the ``commit_timeout``
        setting; set by the catalog layer)."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} at {self.location}>"

    # ---- one version for a reader ----------------------------------------------------------------------

    _pinned: bool = False

    @contextlib.contextmanager
    def pinned(self, *, refresh: bool = True) -> Iterator[Self]:
        """Inside, the table answers from one version: the newest on entry (``refresh=False``: the one it holds,
        for a table just opened), not brought up to date before each call. For readers that ask for the schema,
        the files and the source of one version several times (a query): what they see belongs together, and an
        Iceberg table is not reloaded from its catalog and metadata file for every call. Reads only: a commit
        inside would retry against a version that never moves. Inside a pin, another one changes nothing (it does
        not refresh either)."""
        if self._pinned:
            yield self
            return
        if refresh:
            self._refresh()
        self._pinned = True
        try:
            yield self
        finally:
            self._pinned = False

    @abstractmethod
    def _refresh(self) -> None:
        """Bring the loaded state to the newest version (a no-op while :meth:`pinned`)."""

    # ---- lifecycle (implemented by adapters) -----------------------------------------------------------

    @classmethod
    @abstractmethod
    def create(
        cls,
        name: TableName,
        definition: TableDefinition,
        *,
        location: str,
        ctx: StorageContext,
    ) -> Self:
        """Create a new, empty table at ``location``."""

    @classmethod
    @abstractmethod
    def open(cls, name: TableName, *, location: str, ctx: StorageContext) -> Self:
        """Open an existing table. Raises :class:`TableNotFoundError` when nothing is there."""

    @classmethod
    @abstractmethod
    def exists_at(cls, location: str, *, ctx: StorageContext) -> bool:
        """True when a table of this format lives at ``location``."""

    @classmethod
    def register(
        cls, name: TableName, *, location: str, ctx: StorageContext, metadata_location: str | None = None
    ) -> Self:
        """Adopt a table that already exists at ``location`` (written by another tool). ``metadata_location``
        picks one metadata file of a format whose versions are files (Iceberg); others refuse it."""
        if metadata_location is not None:
            raise UnsupportedOperationError(f"{cls.__name__} tables are not registered by a metadata file")
        return cls.open(name, location=location, ctx=ctx)

    def catalog_columns(self) -> list[dict[str, Any]]:
        """The columns as a Unity Catalog table lists them (the served Unity Catalog API; Delta tables)."""
        raise UnsupportedOperationError(f"{type(self).__name__} tables are not described as Unity Catalog tables")

    @classmethod
    def rename(cls, name: TableName, new: TableName, *, ctx: StorageContext) -> None:
        """Rename the table in the format's own catalog, if it has one (a no-op by default: the files stay)."""
        return None

    @classmethod
    def create_native(cls, name: TableName, spec: bytes, *, location: str, ctx: StorageContext) -> Self:
        """Create a table from the format's own description of one (an Iceberg REST create-table request)."""
        raise UnsupportedOperationError(f"{cls.__name__} tables are not created from a format's own description")

    @classmethod
    def catalog_tables(cls, ctx: StorageContext) -> tuple[list[tuple[TableName, str, TableDefinition]], dict[str, str]]:
        """The tables of the external catalog ``ctx.external`` names, as (``catalog.namespace.table`` name,
        location, definition), and those skipped with the reason (:mod:`lakehouse.external`)."""
        raise UnsupportedOperationError(
            f"{cls.__name__} tables have no external catalog: their log is the catalog; register them by location"
        )

    @classmethod
    def release(cls, ctx: StorageContext) -> None:
        """Free what the format keeps per context (catalog connections); a no-op by default."""
        return None

    @classmethod
    def forget(cls, name: TableName, *, ctx: StorageContext) -> None:
        """Remove a table from the format's own catalog without opening it (its files may be gone)."""
        return None

    @abstractmethod
    def drop(self, *, purge: bool = False) -> None:
        """Forget the table in format catalogs; with ``purge`` also delete its files."""

    # ---- metadata ------------------------------------------------------------------------------------

    @property
    @abstractmethod
    def definition(self) -> TableDefinition:
        """Declared columns, partitioning, keys and properties (current version)."""

    @property
    def schema(self) -> pa.Schema:
        return self.definition.schema

    @abstractmethod
    def snapshots(self) -> list[Snapshot]:
        """Every version still recorded, oldest first."""

    @abstractmethod
    def files(self, *, as_of: AsOf | None = None, partitions: Expr | None = None) -> list[DataFile]:
        """Live data files of the current version or of ``as_of``.

        ``partitions``, a predicate over partition fields, lets a format skip metadata that cannot hold a
        matching partition (Iceberg's manifests, by their partition summaries); the result may still hold files
        of other partitions, so callers filter by it themselves."""

    def snapshot(self, as_of: AsOf | None = None) -> Snapshot:
        """Resolve a version, snapshot id or point in time to a snapshot.

        A point in time picks the last version committed at or before it.

        Raises:
            VersionNotFoundError: when nothing matches, naming the versions that exist.
        """
        snaps = self.snapshots()
        if not snaps:
            raise VersionNotFoundError(f"table {self.name} has no versions yet")
        if as_of is None:
            current = [s for s in snaps if s.is_current]
            return current[-1] if current else snaps[-1]
        if isinstance(as_of, dt.datetime):
            at = utc(as_of)
            older = [s for s in snaps if s.timestamp <= at]
            pick = max(older, key=lambda s: (s.timestamp, s.version)) if older else None
            # the catalog remembers when expired versions were current: the table's own log may no longer list
            # them (Delta's after retention trims it, Iceberg's snapshot log after an expiry)
            if self.expired is not None and (gone := self.expired.current_at(at)) is not None:
                if pick is None or gone > (pick.timestamp, pick.version):
                    raise self.expired.error(self.name, gone[1])
            if pick is None:
                raise VersionNotFoundError(
                    f"table {self.name} has no version at or before {at.isoformat()}; "
                    f"the oldest retained version is {snaps[0].version} from {snaps[0].timestamp.isoformat()}"
                )
            return self._check_retained(pick)
        for s in snaps:
            if s.version == as_of or (s.snapshot_id is not None and s.snapshot_id == as_of):
                return self._check_retained(s)
        if self.expired is not None and as_of in self.expired.versions:
            raise self.expired.error(self.name, as_of)
        if self.expired is not None and as_of in self.expired.snapshot_versions:
            raise self.expired.error(self.name, self.expired.snapshot_versions[as_of], snapshot_id=as_of)
        raise VersionNotFoundError(
            f"table {self.name} has no version {as_of}; readable versions: {version_ranges(self.readable_versions())}"
        )

    def readable_versions(self) -> list[int]:
        """The versions time travel can still reach (those retention expired are listed by Delta's log, but
        their files are gone); the current version always."""
        gone = self.expired.versions if self.expired is not None else frozenset()
        return sorted(s.version for s in self.snapshots() if s.version not in gone or s.is_current)

    def _check_retained(self, snap: Snapshot) -> Snapshot:
        if self.expired is not None and snap.version in self.expired.versions and not snap.is_current:
            raise self.expired.error(self.name, snap.version)
        return snap

    # ---- data ----------------------------------------------------------------------------------------

    def append(
        self,
        data: pa.Table | pa.RecordBatch,
        *,
        properties: Mapping[str, str] | None = None,
        checkpoints: Mapping[str, int] | None = None,
    ) -> CommitResult:
        """Append rows in one atomic commit.

        ``data`` is conformed to the table schema first (lossless casts only), so a mismatch raises
        :class:`SchemaMismatchError` before anything is written.

        Args:
            properties: key/values recorded with the commit (Delta commit info, Iceberg snapshot summary).
            checkpoints: source positions committed atomically with the rows (Delta application
                transactions, Iceberg table properties), read back with :meth:`checkpoint`. This is what
                makes ingestion exactly-once.
        """
        table = data if isinstance(data, pa.Table) else pa.Table.from_batches([data])
        return self._append(
            conform(table, self.schema), properties=dict(properties or {}), checkpoints=dict(checkpoints or {})
        )

    @abstractmethod
    def _append(self, data: pa.Table, *, properties: dict[str, str], checkpoints: dict[str, int]) -> CommitResult: ...

    def upsert(
        self,
        data: pa.Table | pa.RecordBatch,
        *,
        keys: Sequence[str],
        properties: Mapping[str, str] | None = None,
        checkpoints: Mapping[str, int] | None = None,
    ) -> CommitResult:
        """Insert rows whose key is new and replace the rows whose key exists, in one atomic commit (with the
        checkpoints, like :meth:`append`). Within ``data`` the last row of a key wins.

        ``rows_added`` of the result counts inserted plus replaced rows."""
        table = data if isinstance(data, pa.Table) else pa.Table.from_batches([data])
        missing = [k for k in keys if k not in self.schema.names]
        if not keys or missing:
            raise InvalidInputError(f"upsert needs key columns of {self.name}; unknown: {', '.join(missing)}")
        table = conform(table, self.schema)
        table = last_per_key(table, keys)
        return self._upsert(
            table, keys=list(keys), properties=dict(properties or {}), checkpoints=dict(checkpoints or {})
        )

    def _upsert(
        self, data: pa.Table, *, keys: list[str], properties: dict[str, str], checkpoints: dict[str, int]
    ) -> CommitResult:
        raise UnsupportedOperationError(f"{self.format} tables cannot upsert yet")

    @abstractmethod
    def checkpoint(self, source: str) -> int | None:
        """The last position committed for ``source`` with :meth:`append` (None when never)."""

    @abstractmethod
    def add_columns(self, fields: Sequence[pa.Field]) -> None:
        """Add nullable columns (schema evolution); existing rows read them as NULL."""

    def scan(
        self,
        *,
        filter: str | Expr | None = None,
        columns: Sequence[str] | None = None,
        as_of: AsOf | None = None,
    ) -> pa.Table:
        """Read rows (of the current version or of ``as_of``), optionally filtered and projected.

        The result has the declared schema's types, whatever the format returns natively.
        """
        schema = self.schema
        expr = parse_filter(filter) if isinstance(filter, str) else filter
        if expr is not None:
            check_columns(expr, schema)
            expr = normalize(expr, schema)
        if columns is not None:
            unknown = [c for c in columns if schema.get_field_index(c) < 0]
            if unknown:
                raise InvalidInputError(f"unknown column(s) {', '.join(unknown)} in table {self.name}")
        snap = self.snapshot(as_of) if as_of is not None else None
        wanted = pa.schema([schema.field(c) for c in (columns if columns is not None else schema.names)])
        if snap is not None and self.version_names(snap) is not None:
            # the version's own names, read under today's by :meth:`batches`, then filtered under today's names
            need = list(dict.fromkeys([*wanted.names, *(sorted(expr.columns()) if expr is not None else [])]))
            out = self.batches(snap, columns=need, filter=expr).read_all()
            if expr is not None:
                out = out.filter(to_arrow(expr, schema))
            return out.select(wanted.names).cast(wanted)
        out = self._scan(expr, list(columns) if columns is not None else None, snap)
        return out.select(wanted.names).cast(wanted)

    @abstractmethod
    def _scan(self, expr: Expr | None, columns: list[str] | None, snapshot: Snapshot | None) -> pa.Table: ...

    def batches(
        self,
        snapshot: Snapshot | None = None,
        *,
        columns: Sequence[str] | None = None,
        filter: Expr | None = None,
    ) -> pa.RecordBatchReader:
        """The rows of the current version (or of ``snapshot``) as a stream of batches of the declared columns
        (all, or ``columns``) in their declared types; columns the version predates read as NULL. Nothing is
        read until the stream is: its schema is known at once. ``filter`` lets the reader skip files and row
        groups whose statistics rule it out: the stream holds every row it holds for, and maybe others (the
        caller filters).
        """
        names = list(columns) if columns is not None else list(self.schema.names)
        unknown = [c for c in names if self.schema.get_field_index(c) < 0]
        if unknown:
            raise InvalidInputError(f"unknown column(s) {', '.join(unknown)} in table {self.name}")
        target = pa.schema([self.schema.field(c) for c in names])
        if filter is not None:
            check_columns(filter, self.schema)
            filter = normalize(filter, self.schema)

        renamed = self.version_names(snapshot) if snapshot is not None else None
        if renamed is not None:  # the version's own names, read under today's
            if filter is not None and any(renamed.get(c) != c for c in filter.columns()):
                filter = None  # a hint only (the caller filters): the version knows those columns by other names
            old_names = {c: renamed.get(c) for c in names}

        def conformed() -> Iterator[pa.RecordBatch]:
            wanted = names if renamed is None else [o for o in old_names.values() if o is not None]
            source = self._batches(wanted, snapshot, filter)
            if source is None:
                return
            for batch in source:
                if renamed is not None:
                    by_old = {n: i for i, n in enumerate(batch.schema.names)}
                    batch = pa.RecordBatch.from_arrays(
                        [
                            batch.column(by_old[o]) if o is not None and o in by_old else pa.nulls(len(batch), f.type)
                            for f in target
                            for o in [old_names[f.name]]
                        ],
                        names=target.names,
                    )
                yield conform_batch(batch, target)

        return pa.RecordBatchReader.from_batches(target, conformed())

    def _batches(
        self, columns: list[str], snapshot: Snapshot | None, filter: Expr | None = None
    ) -> Iterable[pa.RecordBatch] | None:
        """Batches holding (at least) those of ``columns`` the version has, any types, of at least the rows
        ``filter`` (normalized) holds for; None when it has no data. By default the whole scan, read at once;
        adapters stream."""
        return self._scan(filter, None, snapshot).to_batches()

    @abstractmethod
    def restore(self, as_of: AsOf) -> CommitResult:
        """Make the table's current state equal to version ``as_of`` (see ``capabilities``)."""

    @abstractmethod
    def sql_source(self, snapshot: Snapshot | None = None) -> str | None:
        """A DuckDB table-function call that reads this table (at ``snapshot``); None when it holds no data.
        An old version's scan has that version's column names (see :meth:`version_names`)."""

    def version_names(self, snapshot: Snapshot) -> dict[str, str | None] | None:
        """Per column of the current schema, its name in ``snapshot``'s schema (None: the version predates it),
        for formats where a column keeps its identity across renames (Iceberg's field ids): a renamed column's
        old values are read under its current name, and a column dropped and added again under an old name is
        not given the dropped one's values. None: columns are matched by name."""
        return None

    def plain_files(self) -> PlainFiles | None:
        """The current version as plain Parquet files (see :class:`PlainFiles`), or None where its rows are not
        simply its files' rows read by name, or the format cannot tell cheaply: readers then use
        :meth:`sql_source`, the format's own scan."""
        return None

    # ---- rewrites (compaction, Z-order) ---------------------------------------------------------------

    def optimize_native(
        self,
        partition: Mapping[str, Any],
        *,
        target_size: int,
        memory_limit: int,
        properties: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """Compact one partition with the format's own optimizer; returns its metrics plus the version, added
        paths and removed (path, rows) of its commit. Only where ``capabilities.native_compaction``."""
        raise UnsupportedOperationError(f"{self.format} tables have no native optimizer")

    def replace_files(
        self,
        *,
        remove: Sequence[str],
        add: Sequence[str],
        properties: Mapping[str, str] | None = None,
        partitions: Mapping[str, Mapping[str, Any]] | None = None,
        timeout: float | None = None,
    ) -> CommitResult:
        """One atomic commit that removes exactly ``remove`` and adds the Parquet files ``add``.

        Concurrent appends are kept: a commit that loses its race to them rebases onto them without rewriting
        anything, until ``timeout`` seconds (default :attr:`commit_timeout`) after its first lost attempt, then
        raises :class:`CommitTimeoutError`. If another commit removed any input file meanwhile (or deleted rows
        of one), raises :class:`CommitConflictError` (not transient: re-plan). Only where
        ``capabilities.file_replace``.
        ``properties["lakehouse.operation"]`` says what the swap is: those of :data:`REPLACE_OPERATIONS` keep
        every row as it is, and incremental readers must skip them (Iceberg: a ``replace`` snapshot; anything
        else is an ``overwrite``; Delta commits every swap with ``dataChange=false``).
        Raising means nothing was committed (a commit call that failed after landing is found by its marker and
        returns), so the caller may delete the added files; except :class:`CommitOutcomeUnknownError`, when
        that could not be told (keep them).
        ``partitions`` gives each added file's partition values (as :meth:`files` reports them) when the inputs
        span several partitions; formats that read partitions from the files ignore it.
        """
        raise UnsupportedOperationError(f"{self.format} tables cannot replace files directly")

    def rewrite_partition(
        self,
        data: pa.RecordBatchReader,
        partition: Mapping[str, Any],
        *,
        target_size: int,
        properties: Mapping[str, str] | None = None,
        read_version: int | None = None,
    ) -> dict[str, Any]:
        """Replace the partition's files as of ``read_version`` by ``data`` (the same rows in a new order) in
        one commit; files appended after that version are kept. Returns version, added paths and removed
        (path, rows)."""
        raise UnsupportedOperationError(f"{self.format} tables cannot rewrite a partition from a stream")

    def read_data_file(self, path: str, *, rows: int = 1 << 20) -> Iterator[pa.Table]:
        """One data file's rows as stored (no deletes applied), its columns under the table's current names, for
        jobs that rewrite a file as it is (masking in place), piece by piece: each of the file's row groups, one of
        more than ``rows`` rows in pieces of ``rows`` (at least one piece; an empty one for a file without rows).
        A rewrite holds one piece at a time whatever the file's size, and writing each piece as a row group keeps
        the file's layout (a clustered file's small groups stay small). Columns are matched the way the format
        matches them (here: by name; Iceberg: by field id, or the name mapping for files without ids); a column
        the file lacks (added since) is left out; field metadata (Parquet field ids) is kept for writing back.
        Legacy INT96 timestamps are read in the table's unit: as nanoseconds (pyarrow's default) those outside
        1677..2262 overflow. Arrow view types (delta-rs's delete and merge write ``string_view``) are plain."""
        import pyarrow.parquet as pq

        from lakehouse.schema import without_view_types
        from lakehouse.storage import split_location

        units = {f.type.unit for f in self.schema if pa.types.is_timestamp(f.type)}
        fs, inner = split_location(path, self.ctx)
        try:
            with fs.open_input_file(inner) as fh:
                pf = pq.ParquetFile(fh, coerce_int96_timestamp_unit="ns" if "ns" in units else "us")
                groups = pf.metadata.num_row_groups
                for i in range(groups):
                    if pf.metadata.row_group(i).num_rows <= rows:
                        yield without_view_types(pf.read_row_group(i))
                        continue
                    for batch in pf.iter_batches(batch_size=rows, row_groups=[i]):
                        yield without_view_types(pa.Table.from_batches([batch]))
                if not groups:
                    yield without_view_types(pf.schema_arrow.empty_table())
        except OSError as e:  # the object store failed (a 5xx the SDK did not retry, a reset connection)
            raise StorageError(f"cannot read data file {path} of {self.name}: {e}") from e

    def redact_partition_values(
        self, path: str, partition: Mapping[str, Any], keys: Collection[str]
    ) -> tuple[str, dict[str, Any]]:
        """A data file's path and partition values with the values of partition fields ``keys`` redacted (both
        formats spell them out in Hive-style directories: ``email=alice%40corp.com/part-0.parquet``).

        >>> path, values = "/wh/t/email=a%40b.com/day=1/p.parquet", {"email": "a@b.com", "day": 1}
        >>> LakehouseTable.redact_partition_values(None, path, values, {"email"})  # type: ignore[arg-type]
        ('/wh/t/email=[REDACTED]/day=1/p.parquet', {'email': '[REDACTED]', 'day': 1})
        """
        import urllib.parse

        def segment(text: str) -> str:
            key, eq, _ = text.partition("=")
            return f"{key}=[REDACTED]" if eq and urllib.parse.unquote(key) in keys else text

        values = {k: ("[REDACTED]" if k in keys else v) for k, v in partition.items()}
        return "/".join(segment(part) for part in str(path).split("/")), values

    def field_ids(self) -> dict[str, int]:
        """Parquet field ids of the columns (formats that resolve columns by id need them in new files)."""
        return {}

    def data_directory(self, partition: Mapping[str, Any]) -> str:
        """Where new data files of ``partition`` go."""
        return f"{self.location.rstrip('/')}/data"

    def row_count(self, *, as_of: AsOf | None = None) -> int:
        return sum(f.row_count for f in self.files(as_of=as_of))

    def live_rows(self, files: Sequence[DataFile]) -> int:
        """The rows of the current version, whose live files are ``files`` (each file's ``row_count`` is its
        live rows; a format whose deletes metadata cannot attribute to files counts them otherwise)."""
        return sum(f.row_count for f in files)

    def check_rewrite(self, *, raw: bool = False) -> None:
        """Raise :class:`UnsupportedOperationError`, naming the table feature and what to do, when lakehouse's
        rewrites (compaction, Z-order, dedup, tiering, masking in place) cannot rewrite this table correctly;
        ``raw``: the rewrite reads the data files as they are, without :meth:`rewrite_source` (masking in
        place). Jobs call it before they write anything. Adapters that refuse more call this first."""
        self.check_names("rewritten")

    def check_names(self, what: str) -> None:
        """Refuse (by name) a table whose names differ only in case at one level (columns ``A`` and ``a``, or a
        struct's fields): DuckDB and Spark resolve names without case, so a query or a rewrite would read one
        column's values as the other's. ``what``: the operation refused, for the message."""
        clashes = case_clashes(self.schema)
        if clashes:
            raise UnsupportedOperationError(
                f"{self.name} cannot be {what} by lakehouse: its names {', '.join(clashes)} differ only in case, "
                "which DuckDB and Spark cannot tell apart (one would be read as the other); nothing was read or "
                "written",
                hint="rename one of them with the format's own tools (e.g. Spark's ALTER TABLE ... RENAME COLUMN)",
            )

    def limitations(self) -> list[str]:
        """What lakehouse cannot do with this table and why (printed as warnings when it is registered)."""
        clashes = case_clashes(self.schema)
        if clashes:
            return [
                f"{self.name} has names that differ only in case ({', '.join(clashes)}): queries and rewrites are "
                "refused, since DuckDB and Spark would read one as the other"
            ]
        return []

    def rewrite_source(
        self, con: Any, paths: Sequence[str], columns: Sequence[str], *, located: bool = True
    ) -> str | None:
        """A DuckDB relation (SQL, on ``con``) of exactly the live rows of the data files ``paths`` of the current
        version, with ``columns`` under the table's names and declared types, plus, when ``located``, ``filename``
        (the path as given) and ``file_row_number``; for formats whose files cannot be read by column name alone
        (Iceberg: field ids, partition values kept in metadata, position deletes). None: read the files by name."""
        return None

    def written_source(self, con: Any, paths: Sequence[str], columns: Sequence[str]) -> str | None:
        """Like :meth:`rewrite_source`, for files a rewrite has written and not yet committed (to verify them):
        how this format reads them back. None: by name."""
        return None

    def read_locations(self) -> list[str]:
        """Directories a reader needs: the table location, and where the format keeps files outside it."""
        return [self.location]

    def skipping_stats(self, f: DataFile) -> dict[str, tuple[Any, Any, int | None]]:
        """A data file's per-column (min, max, nulls) as far as they may be trusted to skip it (partition values
        included): the format's statistics, less what its writers may round (Delta: timestamps truncated to
        milliseconds, JSON numbers for floats and decimals, truncated strings)."""
        return {**{k: (v, v, None) for k, v in f.partition.items()}, **dict(f.stats)}

    def check_constraints(self) -> dict[str, str]:
        """The table's CHECK constraints, name -> SQL expression (Delta's ``delta.constraints.<name>``; Iceberg has
        none): a row for which one is false cannot be written."""
        return {}

    def file_columns(self) -> list[str]:
        """Columns stored inside data files (Delta keeps partition columns in the log only)."""
        return list(self.schema.names)

    # ---- deletes, retention and garbage (vacuum, orphans, expire-data) ---------------------------------

    def delete_rows(self, filter: str | Expr, *, properties: Mapping[str, str] | None = None) -> DeleteResult:
        """Delete the rows matching ``filter`` in one commit (whole files are dropped without a rewrite).

        The filter itself is never recorded: not in the table's log or snapshot summary (Delta's own delete
        would write it into the commit), nowhere. ``properties`` are the commit's record (``lakehouse.operation``
        defaults to ``delete``; callers add a predicate digest). Raises :class:`UnsupportedOperationError` where
        :meth:`check_delete` does."""
        schema = self.schema
        expr = parse_filter(filter) if isinstance(filter, str) else filter
        check_columns(expr, schema)
        return self._delete_rows(normalize(expr, schema), {"lakehouse.operation": "delete", **(properties or {})})

    def _delete_rows(self, expr: Expr, properties: dict[str, str]) -> DeleteResult:
        raise UnsupportedOperationError(f"{self.format} tables cannot delete rows yet")

    def check_delete(self) -> None:
        """Raise :class:`UnsupportedOperationError` when lakehouse cannot delete rows of this table correctly
        (jobs call it before they start, so a refusal changes nothing)."""
        return None

    def check_operation(self, operation: str) -> None:
        """Raise :class:`UnsupportedOperationError` when lakehouse cannot run ``operation`` (one of
        :data:`OPERATIONS`) on this table correctly, naming what is in the way (a table feature) and what the
        user can do. Jobs call it before they write or delete anything, so a refusal changes nothing."""
        return None

    def file_schema(self) -> pa.Schema | None:
        """How the data files store the columns, where that differs from :attr:`schema` (Delta column mapping):
        the same fields, in the same order and types, under the names the files use at every nesting level,
        with the Parquet field ids new files must carry (``PARQUET:field_id`` field metadata). None when the
        files use the table's names."""
        return None

    @abstractmethod
    def version_paths(self, versions: Collection[int] | None = None) -> set[str]:
        """Every file that the given versions need to be read (data and delete files, Iceberg manifests and
        manifest lists); ``None`` means every version the table's metadata still records."""

    def version_roots(self, versions: Collection[int]) -> set[str]:
        """The part of :meth:`version_paths` the table's top-level metadata names itself, read without opening
        a manifest or a log file (Iceberg: the versions' manifest lists and statistics files); empty where a
        format has no such part."""
        return set()

    def appends_only(self) -> bool:
        """True when every version the table's metadata records is the current one or an ancestor of it and
        each only added data files to its parent: no version names a data or delete file the current one does
        not. False when it is not, or when telling would mean reading every version (Delta's log)."""
        return False

    def may_be_version_path(self, path: str) -> bool:
        """False for a path no version's :meth:`version_paths` can hold (Iceberg's metadata JSON files), whatever
        the versions are; True when it might."""
        return True

    @abstractmethod
    def metadata_paths(self) -> set[str]:
        """The table's own metadata files that are live (Delta log, Iceberg metadata JSON in its log)."""

    @abstractmethod
    def is_metadata(self, path: str) -> bool:
        """True for a path in the format's metadata area (Delta's ``_delta_log/``, Iceberg's metadata
        directory), referenced or not: what storage reconciliation counts as metadata rather than data."""

    @abstractmethod
    def garbage_candidate(self, path: str) -> bool:
        """True when a file under the location *may* be garbage if nothing references it (a data file,
        manifest or stale metadata file); log files and hidden files never are."""

    def _write_rows(self, rows: pa.Table, target: str, *, group_rows: int | None = None) -> None:
        """Write ``rows`` as one zstd Parquet file at ``target`` (a row delete's rewrite of a file) in row groups
        of ``group_rows`` rows (those of the file it replaces: a clustered file's small row groups are what lets
        a reader skip within it; None: pyarrow's default); on failure nothing is left there and a
        :class:`StorageError` says so."""
        import pyarrow.parquet as pq

        from lakehouse.storage import split_location

        filesystem, inner = split_location(target, self.ctx)
        try:
            if not StorageContext.is_s3(target):
                filesystem.create_dir(inner.rsplit("/", 1)[0], recursive=True)
            with filesystem.open_output_stream(inner) as out:
                pq.write_table(
                    rows,
                    out,
                    compression="zstd",
                    write_statistics=True,
                    row_group_size=max(1, group_rows) if group_rows else None,
                )
        except (OSError, pa.ArrowException) as e:
            self._discard([target])
            raise StorageError(f"delete from {self.name}: cannot write {target}: {e}") from e

    def _discard(self, paths: Iterable[str | None]) -> None:
        """Delete files a failed or refused rewrite wrote, best effort: ``lakehouse orphans`` finds any left."""
        from lakehouse.storage import delete_files

        doomed = [p for p in paths if p is not None]
        if doomed:
            with contextlib.suppress(OSError, LakehouseError):
                delete_files(doomed, self.ctx)

    def hidden(self, path: str) -> bool:
        """True when a file or a directory on its way below the table location starts with ``_`` or ``.``
        (other tools' scratch space and logs: never garbage of this table)."""
        root = self.location.rstrip("/") + "/"
        rel = path[len(root) :] if path.startswith(root) else path.rsplit("/", 1)[-1]
        return any(part.startswith(("_", ".")) for part in rel.split("/"))

    def seal_history(self) -> int:
        """Commit a new head that carries nothing of older versions but the live files, so that a following
        vacuum with zero retention leaves no metadata that held older values (PII purge). Returns the new
        version."""
        raise UnsupportedOperationError(f"{self.format} tables cannot seal their history")

    def refs(self) -> dict[str, str]:
        """Named references to versions: name -> ``"branch"`` or ``"tag"`` (Iceberg's ``main`` included). A
        referenced version stays out of reach of retention. Delta has none."""
        return {}

    def check_restorable(self, snapshot: Snapshot) -> None:
        """Raise :class:`VersionNotFoundError` when a data file ``snapshot`` needs and the current version does
        not hold is gone (a vacuum removed it: lakehouse's, which records it, or another writer's, which does
        not), before a restore is planned or committed. Few such files are checked one by one, more by one
        listing of the table's location."""
        from lakehouse.storage import exists, list_files

        wanted = {f.path for f in self.files(as_of=snapshot.version)} - {f.path for f in self.files()}
        if len(wanted) <= 64:
            gone = sorted(p for p in wanted if not exists(p, self.ctx))
        else:
            listed = {f.path for f in list_files(self.location, self.ctx)}
            gone = sorted(wanted - listed)
        if gone:
            raise VersionNotFoundError(
                f"version {snapshot.version} of table {self.name} cannot be restored: {len(gone)} data file(s) it "
                f"needs are gone, e.g. {gone[0]} (a vacuum removed them)",
                hint="restore a version the table's retention still keeps (see `lakehouse table history`)",
            )

    def ref_versions(self) -> dict[str, int]:
        """The version each named reference of :meth:`refs` points at (vacuum keeps them)."""
        return {}

    def drop_old_log(self) -> int:
        """After :meth:`seal_history` and a vacuum: delete log files of versions before the current one where
        the format keeps them (Delta's commit JSON). Returns how many files went."""
        return 0

    def rewrite_manifests(self, *, min_manifests: int) -> tuple[int, int]:
        """Where the format keeps manifests (Iceberg): when a partition spec's current data manifests include at
        least ``min_manifests`` below the target manifest size, merge them in one commit that changes no data.
        Returns (small manifests before, after); (0, 0) without a commit. Delta's checkpoints play this part."""
        return 0, 0

    def trim_metadata(self, oldest: int, before: dt.datetime) -> list[ObjectInfo]:
        """After retention made every version before ``oldest`` unreadable, with its window starting at
        ``before``: delete the format metadata nothing readable needs, so that metadata stays proportional to
        the readable versions and live files, not to the whole history (Delta: commit files and checkpoints
        before a checkpoint at ``oldest``; Iceberg: metadata files logged before ``before``, whose snapshots
        the current metadata lists anyway). Returns the files deleted, with their sizes."""
        return []

    def expire_versions(self, versions: Collection[int]) -> int:
        """Remove versions from the table's metadata (Iceberg expires snapshots; Delta keeps its log, so
        this is a no-op there and the catalog records the expired versions). Returns how many went."""
        return 0

    def current_since(self) -> dict[int, list[dt.datetime]]:
        """For every version, the times it became the current one: its commit, and for formats that can make
        an older version current again (an Iceberg rollback) those times too. Recorded before retention
        expires versions, so that time travel to a moment the table was at one of them names the retention
        instead of silently answering with another version."""
        return {s.version: [s.timestamp] for s in self.snapshots()}
