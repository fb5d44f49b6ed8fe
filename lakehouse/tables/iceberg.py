"""Apache Iceberg adapter (pyiceberg with its SQL catalog). The only module that imports ``pyiceberg``.

The Iceberg catalog lives in the same database as the lakehouse catalog (SQLite by default, PostgreSQL by
URL): pyiceberg's ``iceberg_tables`` beside our ``lh_*`` tables. Versions are snapshot sequence numbers;
snapshot ids are accepted too. Restore sets the current-snapshot pointer (Iceberg's rollback): no new
snapshot is written, so ``capabilities.restore_creates_version`` is False.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import math
import random
import re
import threading
import time
import uuid
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Self, TypeVar

import pyarrow as pa

from lakehouse.errors import (
    CommitConflictError,
    CommitOutcomeUnknownError,
    CommitTimeoutError,
    InvalidInputError,
    InvalidSchemaError,
    LakehouseError,
    NamespaceNotEmptyError,
    NamespaceNotFoundError,
    StorageError,
    TableExistsError,
    TableNotFoundError,
    UnsupportedOperationError,
    VersionNotFoundError,
)
from lakehouse.expr import And, Compare, Expr, In, IsNull, Not, Or, all_match, coerce, evaluate_table, may_match
from lakehouse.schema import WIDTH_TRANSFORMS, PartitionField, validate_keys, validate_partitioning
from lakehouse.storage import ObjectInfo, ObjectReader, cached_schema, delete_tree, list_files, normalize_path
from lakehouse.tables.base import (
    CASE_CLASHES,
    DEFAULT_COMMIT_TIMEOUT,
    REPLACE_OPERATIONS,
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
    partition_path,
    utc,
)
from lakehouse.verify import Verifier

try:
    from pyiceberg import expressions as ice
    from pyiceberg.catalog import Catalog
    from pyiceberg.catalog.sql import SqlCatalog
    from pyiceberg.exceptions import (
        CommitFailedException,
        NamespaceAlreadyExistsError,
        NoSuchTableError,
        TableAlreadyExistsError,
        ValidationException,
    )
    from pyiceberg.exceptions import (
        ValidationError as IcebergValidationError,
    )
    from pyiceberg.io import FileIO, InputFile, InputStream
    from pyiceberg.manifest import DataFileContent, FileFormat, ManifestContent, ManifestEntry, ManifestEntryStatus
    from pyiceberg.table import Table, Transaction
    from pyiceberg.table.metadata import TableMetadata
    from pyiceberg.table.snapshots import Operation, Summary
    from pyiceberg.table.update import AssertTableUUID
    from pyiceberg.table.update.snapshot import _MergeAppendFiles, _OverwriteFiles
    from pyiceberg.transforms import (
        BucketTransform,
        DayTransform,
        HourTransform,
        IdentityTransform,
        MonthTransform,
        Transform,
        TruncateTransform,
        VoidTransform,
        YearTransform,
    )
    from pyiceberg.typedef import EMPTY_DICT
except ImportError as e:  # pragma: no cover - exercised only without the extra
    from lakehouse.errors import DependencyMissingError

    raise DependencyMissingError("the Iceberg adapter needs pyiceberg", hint="pip install 'lakehouse[iceberg]'") from e

KEYS_PROPERTY = "lakehouse.keys"
CHECKPOINT_PREFIX = "lakehouse.checkpoint."
DEFAULT_PROPERTIES = {
    # old metadata.json files are not needed for time travel (snapshots live in the current one)
    "write.metadata.delete-after-commit.enabled": "true",
    "write.metadata.previous-versions-max": "20",
    # beside a streaming writer a commit often loses its compare-and-swap; rebasing it is cheap, and both
    # pyiceberg and Iceberg's Java library (Spark's rewrite) read these: more attempts than the default 4, the
    # first after 20 ms (not 100 ms: the winner just committed, the next commit is most likely an interval away),
    # each wait capped at 2 s (not 60 s) and all of them at a minute, so a contended commit never stalls for long
    "commit.retry.num-retries": "20",
    "commit.retry.min-wait-ms": "20",
    "commit.retry.max-wait-ms": "2000",
    "commit.retry.total-timeout-ms": "60000",
}
_TRANSFORMS: dict[str, type[Transform[Any, Any]]] = {
    "identity": IdentityTransform,
    "year": YearTransform,
    "month": MonthTransform,
    "day": DayTransform,
    "hour": HourTransform,
}
T = TypeVar("T")

EQUALITY_DELETES_HINT = (
    "compact it with an engine that applies equality deletes first, e.g. Spark: CALL <catalog>.system."
    "rewrite_data_files(table => '<table>', options => map('delete-file-threshold', '1')), or `lakehouse optimize "
    "<table> --engine spark`"
)
_POS_DELETE_FILE_PATH, _POS_DELETE_POS = "file_path", "pos"  # the columns of a position delete file (spec)


class _EntryCache:
    """Manifest entries read, by manifest path: a manifest file is immutable and its path unique, so a job reads
    each one once however often it plans, validates and commits (pyiceberg caches the ``ManifestFile`` records of
    manifest lists, not their entries). Bounded by the number of entries held (least recently used evicted)."""

    LIMIT = 20_000

    def __init__(self) -> None:
        from collections import OrderedDict

        self._lock = threading.Lock()
        self._held: OrderedDict[tuple[str, bool], list[Any]] = OrderedDict()
        self._size = 0

    def get(self, key: tuple[str, bool], read: Callable[[], list[Any]]) -> list[Any]:
        with self._lock:
            hit = self._held.get(key)
            if hit is not None:
                self._held.move_to_end(key)
                return list(hit)  # callers may change their list, never the cached one
        entries = read()
        if len(entries) <= self.LIMIT // 4:
            with self._lock:
                if key not in self._held:
                    self._held[key] = list(entries)
                    self._size += len(entries)
                while self._size > self.LIMIT and self._held:
                    _, old = self._held.popitem(last=False)
                    self._size -= len(old)
        return entries


_ENTRIES = _EntryCache()


def _cache_manifest_entries() -> None:
    """Route every read of a manifest's entries (pyiceberg's planning threads, its snapshot producers, ours)
    through :data:`_ENTRIES`. Entries are read-only after reading: pyiceberg's writers copy them."""
    from pyiceberg.manifest import ManifestFile

    read = ManifestFile.fetch_manifest_entry
    if getattr(read, "_lakehouse_cached", False):
        return

    @functools.wraps(read)
    def fetch_manifest_entry(self: Any, io: Any, discard_deleted: bool = True) -> list[Any]:
        if (self.sequence_number or 0) < 0:  # not committed yet: its entries inherit a sequence number later
            return read(self, io, discard_deleted)
        entries = _ENTRIES.get((self.manifest_path, discard_deleted), lambda: read(self, io, discard_deleted))
        if discard_deleted:  # what the manifest lists, for version_paths, from whichever read came first
            path = _plain_location(self.manifest_path)
            if _manifest_paths.get(path) is None:
                _manifest_paths.put(path, _live_paths(entries))
        return entries

    fetch_manifest_entry._lakehouse_cached = True  # type: ignore[attr-defined]
    ManifestFile.fetch_manifest_entry = fetch_manifest_entry  # type: ignore[method-assign]


_cache_manifest_entries()


def _keep_null_lists() -> None:
    """pyiceberg 0.12 turns a NULL list of structs into an empty list wherever it projects Arrow data onto a table
    schema (every append, overwrite and read through pyiceberg): its workaround for apache/arrow#38809 rebuilds
    the list from its offsets without the validity mask. Rebuild it with the mask, the rest as pyiceberg does."""
    from pyiceberg.io.pyarrow import ArrowProjectionVisitor

    project = ArrowProjectionVisitor.list
    if getattr(project, "_lakehouse_nulls", False):
        return

    @functools.wraps(project)
    def keeping_nulls(self: Any, list_type: Any, list_array: Any, value_array: Any) -> Any:
        if isinstance(list_array, (pa.ListArray, pa.LargeListArray)) and isinstance(value_array, pa.StructArray):
            list_initializer = pa.large_list if isinstance(list_array, pa.LargeListArray) else pa.list_
            mask = list_array.is_null() if list_array.null_count else None
            rebuilt = pa.LargeListArray.from_arrays(list_array.offsets, value_array, mask=mask)
            value_array = self._cast_if_needed(list_type.element_field, value_array)
            arrow_field = list_initializer(self._construct_field(list_type.element_field, value_array.type))
            return rebuilt.cast(arrow_field)
        return project(self, list_type, list_array, value_array)

    keeping_nulls._lakehouse_nulls = True  # type: ignore[attr-defined]
    ArrowProjectionVisitor.list = keeping_nulls  # type: ignore[method-assign]


_keep_null_lists()


class _BytesInput(InputFile):
    """A pyiceberg ``InputFile`` over bytes already read, or read on open (an Avro manifest or manifest list)."""

    def __init__(self, location: str, data: bytes | Callable[[], bytes]) -> None:
        super().__init__(location)
        self._data = data

    def _bytes(self) -> bytes:
        if callable(self._data):
            self._data = self._data()
        return self._data

    def __len__(self) -> int:
        return len(self._bytes())

    def exists(self) -> bool:
        return True

    def open(self, seekable: bool = True) -> InputStream:
        import io

        return io.BytesIO(self._bytes())


class _GetOnly(FileIO):
    """A pyiceberg ``FileIO`` reading each S3 object with one GET as it is opened (pyiceberg's reads make a HEAD
    before each GET), through one :class:`~lakehouse.storage.ObjectReader`; local reads, writes and deletes go
    to ``io``. Nothing is read ahead: memory stays what pyiceberg's own threads hold."""

    def __init__(self, io: FileIO, reader: ObjectReader) -> None:
        super().__init__(io.properties)
        self._io = io
        self._reader = reader

    def new_input(self, location: str) -> InputFile:
        if not StorageContext.is_s3(location):
            return self._io.new_input(location)
        return _BytesInput(location, lambda: self._reader.read(location))

    def new_output(self, location: str) -> Any:
        return self._io.new_output(location)

    def delete(self, location: Any) -> None:
        self._io.delete(location)


_OUTSIDE: dict[tuple[str, int | None], tuple[str, ...]] = {}
"""(metadata file, snapshot id) -> directories outside the table location its files live in."""


@dataclass(frozen=True)
class _Plan:
    """The live files of one snapshot: pyiceberg's scan tasks (data files with the position delete files that
    apply to them) and the equality delete files (pyiceberg 0.12 refuses to plan those; collected instead)."""

    snapshot_id: int | None
    tasks: tuple[Any, ...]
    equality: tuple[Any, ...]


_catalogs: dict[StorageContext, Catalog] = {}
_catalogs_lock = threading.Lock()


def catalog_for(ctx: StorageContext) -> Catalog:
    """The pyiceberg SQL catalog on the lakehouse catalog database, or the external catalog that owns the table
    of ``ctx`` (one per context, until released)."""
    with _catalogs_lock:
        if ctx not in _catalogs:
            _catalogs[ctx] = _open_external(ctx) if ctx.external is not None else _open_catalog(ctx)
        return _catalogs[ctx]


CATALOG_NAME_PROPERTY = "catalog-name"
"""An external catalog's property naming it as its owner does (a SQL catalog's ``catalog_name`` column)."""


def _open_external(ctx: StorageContext) -> Catalog:
    """pyiceberg's own implementation of the external catalog's type (Glue, REST, SQL, Hive): its commits carry
    that catalog's concurrency check (Glue's table version, the REST server's requirements, the SQL row's
    compare-and-swap). The files are reached with the context's credentials (the catalog's ``s3.*`` properties,
    or the store the table is on)."""
    from pyiceberg.catalog import load_catalog

    ext = ctx.external
    assert ext is not None
    props = ext.props()
    # pyiceberg scopes a SQL (and a Hive/REST) catalog's tables by the catalog's own name: the owner's name, when
    # lakehouse calls it something else
    name = props.pop(CATALOG_NAME_PROPERTY, ext.name)
    if ctx.credentials is not None:
        props.update(ctx.credentials.pyiceberg_properties())
    try:
        return load_catalog(name, **{**props, "type": ext.type})
    except Exception as e:  # pyiceberg raises anything from a missing package to a refused login
        detail = " ".join(str(e).split()) or type(e).__name__
        raise StorageError(
            f"cannot open external catalog {ext.name} ({ext.type}): {detail}",
            hint=f"check its properties with `lakehouse catalog list`; `lakehouse catalog remove {ext.name}` "
            "disconnects it",
        ) from e


def catalog_tables(ctx: StorageContext) -> tuple[list[tuple[TableName, str, TableDefinition]], dict[str, str]]:
    """Every table the external catalog of ``ctx`` lists, as (name, location, definition), and those it skipped
    with the reason (a namespace of several levels, a name lakehouse cannot spell, a table that fails to load)."""
    ext = ctx.external
    assert ext is not None
    catalog = catalog_for(ctx)
    found: list[tuple[TableName, str, TableDefinition]] = []
    skipped: dict[str, str] = {}
    try:
        namespaces = catalog.list_namespaces()
    except Exception as e:  # any client error: the catalog is unreachable or refuses us
        raise StorageError(f"cannot list the namespaces of catalog {ext.name}: {' '.join(str(e).split())}") from e
    for ns in namespaces:
        try:
            identifiers = catalog.list_tables(ns)
        except Exception as e:  # noqa: BLE001
            skipped[".".join(ns)] = f"cannot list its tables: {' '.join(str(e).split())}"
            continue
        for ident in identifiers:
            text = ".".join(ident)
            if len(ident) != 2:
                skipped[text] = "namespaces of several levels are not supported"
                continue
            try:
                name = TableName.parse(f"{ext.name}.{ident[0]}.{ident[1]}")
            except LakehouseError as e:
                skipped[text] = e.message
                continue
            if (name.namespace, name.table) != tuple(ident):
                skipped[text] = "lakehouse names are lower case"
                continue
            try:
                table = catalog.load_table(ident)
                adapter = IcebergAdapter(name, _plain_location(table.location()), ctx, table)
                found.append((name, adapter.location, adapter.definition))
            except Exception as e:  # noqa: BLE001 - one broken table never hides the others
                skipped[text] = f"cannot load it: {' '.join(str(e).split())}"
    return found, skipped


def _open_catalog(ctx: StorageContext) -> Catalog:
    warehouse = ctx.warehouse if StorageContext.is_s3(ctx.warehouse) else f"file://{ctx.warehouse}"
    props: dict[str, str] = {"uri": ctx.catalog_url, "warehouse": warehouse}
    if ctx.credentials is not None:
        props.update(ctx.credentials.pyiceberg_properties())
    try:
        return _SqlCatalog(ctx.catalog_name, **props)
    except Exception as e:
        raise StorageError(f"cannot open the Iceberg SQL catalog at {ctx.catalog_url}: {e}") from e


_PARSED: dict[str, TableMetadata] = {}
"""Parsed table metadata by metadata file location, the most recently used last (see :class:`_SqlCatalog`)."""
_PARSED_MAX = 32
_parsed_lock = threading.Lock()


class _SqlCatalog(SqlCatalog):
    """pyiceberg's SQL catalog, parsing each table metadata file once.

    Loading a table (every refresh does) reads the catalog row, then reads and parses the metadata file it
    names: the table's whole history, 15 ms for a table of 100 snapshots, and a rewrite refreshes some thirty
    times between planning and its commit. A metadata file never changes once written (each commit writes a
    new one and moves the catalog row to it), and the parsed metadata is a frozen model: it is kept per location
    and shared. The catalog row is still read every time, so a refresh sees every commit."""

    def _convert_orm_to_iceberg(self, orm_table: Any) -> Table:
        location = orm_table.metadata_location
        with _parsed_lock:
            metadata = _PARSED.pop(location, None) if location else None
            if metadata is not None:
                _PARSED[location] = metadata  # most recently used last
        if metadata is None or not orm_table.table_namespace or not orm_table.table_name:
            table = super()._convert_orm_to_iceberg(orm_table)  # reads, parses and checks the row
            with _parsed_lock:
                _PARSED[table.metadata_location] = table.metadata
                while len(_PARSED) > _PARSED_MAX:
                    del _PARSED[next(iter(_PARSED))]
            return table
        return Table(
            identifier=(*Catalog.identifier_to_tuple(orm_table.table_namespace), orm_table.table_name),
            metadata=metadata,
            metadata_location=location,
            io=self._load_file_io(metadata.properties, location),
            catalog=self,
        )


def _ensure_namespace(catalog: Catalog, namespace: str) -> bool:
    """Create ``namespace`` in ``catalog`` unless it is there (lakehouse's namespaces exist with their tables);
    whether it was created."""
    try:
        catalog.create_namespace(namespace)
    except NamespaceAlreadyExistsError:
        return False
    return True


def _undo_namespace(catalog: Catalog, namespace: str, created: bool) -> None:
    """Drop the namespace a refused operation created, when it is still empty: the catalog stays as it was."""
    if created:
        with contextlib.suppress(Exception):
            if not catalog.list_tables(namespace):
                catalog.drop_namespace(namespace)


def _location_uri(location: str) -> str:
    if StorageContext.is_s3(location):
        return "s3://" + location.split("://", 1)[1]
    return location if location.startswith("file://") else f"file://{location}"


def _plain_location(location: str) -> str:
    return normalize_path(location)


def _retry_commit(what: str, fn: Callable[[], T], *, timeout: float = DEFAULT_COMMIT_TIMEOUT) -> T:
    """Run a commit, starting it over (with a short jittered pause) when another writer committed first, until
    ``timeout`` seconds have passed since the first attempt; then raise :class:`CommitTimeoutError`.

    ``fn`` refreshes the table and rebuilds its transaction, so a retry starts from the current snapshot.
    pyiceberg rebases a lost commit itself (up to the table's ``commit.retry.*`` properties: 60 s in all on the
    tables lakehouse creates); what reaches this loop is a commit those retries did not land, or one pyiceberg's
    validation refused because it conflicts with one that won meanwhile (an upsert's overwrite against a
    compaction that replaced the files it read, or its starting snapshot expired meanwhile). Nothing was
    committed then, so starting over is safe. File rewrites do not come through here: see
    :meth:`IcebergAdapter.replace_files`."""
    started = time.monotonic()
    delay = 0.02
    attempts = 0
    while True:
        attempts += 1
        try:
            return fn()
        except (CommitFailedException, ValidationException) as e:
            waited = time.monotonic() - started
            if waited >= timeout:
                raise CommitTimeoutError(
                    f"{what}: concurrent commits won for {waited:.1f} s ({attempts} attempts; last: {e}); nothing "
                    "was committed",
                    hint="retry when the other writers are quieter, or raise the commit_timeout setting",
                ) from e
            time.sleep(min(delay * (1 + random.random()), max(0.0, timeout - waited)))
            delay = min(delay * 2, 1.0)


class _Transaction(Transaction):
    """pyiceberg's transaction, with its view of the table's metadata worked out once per staged state.

    pyiceberg's ``Transaction.table_metadata`` applies the staged updates to the table's metadata and deep-copies
    the result (every snapshot of the table's history) on each access, and a snapshot producer reads it some
    twenty times per commit: on a table with 100 snapshots that was 0.5 s of a rewrite's commit. The metadata
    is a frozen model, so one copy per (table metadata, staged updates) serves every reader."""

    _viewed: tuple[Any, Any, TableMetadata] | None = None

    @property
    def table_metadata(self) -> TableMetadata:
        base, updates = self._table.metadata, self._updates
        seen = self._viewed
        if seen is None or seen[0] is not base or seen[1] is not updates:
            seen = self._viewed = (base, updates, super().table_metadata)
        return seen[2]


def release_catalog(ctx: StorageContext) -> None:
    """Close the cached catalog of ``ctx`` (its database connections)."""
    for key in [k for k in _catalogs if k == ctx]:
        catalog = _catalogs.pop(key)
        engine = getattr(catalog, "engine", None)
        if engine is not None:
            engine.dispose()


SAVED, UNSET = "lakehouse.saved.", "<unset>"
"""Table properties a metadata-log shortening saves the table's own values under until it restores them."""

HINT_REF = "version-hint.text"
"""The name :meth:`IcebergAdapter.ref_versions` gives the version a Hadoop catalog's hint names."""


class IcebergAdapter(LakehouseTable):
    """An Iceberg table through pyiceberg."""

    format = "iceberg"
    capabilities = Capabilities(
        hidden_partitioning=True,
        restore_creates_version=False,
        file_replace=True,
        notes=(
            "restore moves the current-snapshot pointer (rollback); no new snapshot is written",
            "compaction, z-order and orphan removal are provided by lakehouse, not pyiceberg",
        ),
        features=(
            FeatureSupport("format v1, v2"),
            CASE_CLASHES,
            FeatureSupport(
                "partition transforms identity, year, month, day, hour, bucket[N], truncate[W]",
                notes="each rewritten file keeps its inputs' partition and spec; identity dates print as dates; a "
                "name two specs give to different fields is reported qualified where it is not the current spec's "
                "field (`s_t (truncate[4](s))`)",
            ),
            FeatureSupport(
                "schema evolution (added, renamed, widened, dropped columns)",
                notes="rewrites match columns by field id, nested fields too",
            ),
            FeatureSupport(
                "position deletes (merge-on-read)",
                refused={"mask": "masking rewrites each file as it is; the deletes beside it would be lost"},
                hint="compact the table first (lakehouse optimize applies the deletes)",
                notes="rows counted after them; rewrites apply them and retire the delete files that referenced "
                "only rewritten files in the same commit; a delete committed meanwhile against a rewritten file "
                "aborts that rewrite (one partition of a compaction)",
            ),
            FeatureSupport(
                "equality deletes",
                refused=dict.fromkeys(
                    ("optimize", "dedup", "delete", "mask"),
                    "pyiceberg 0.12 cannot apply equality deletes, so a rewrite would revive deleted rows",
                ),
                hint=EQUALITY_DELETES_HINT,
                notes="read through DuckDB's iceberg_scan (pyiceberg 0.12 cannot apply them); register warns",
            ),
            FeatureSupport(
                "data files outside the table location (add_files, migrated tables)",
                notes="SQL may read their directories; identity partition values kept only in metadata are "
                "written into rewritten files; retention never deletes files outside the location",
            ),
            FeatureSupport(
                "files without field ids (add_files of plain Parquet)",
                notes="columns resolved by the table's name mapping (schema.name-mapping.default), else by name",
            ),
            FeatureSupport(
                "fixed(N) columns",
                refused=dict.fromkeys(
                    ("optimize", "dedup", "mask"),
                    "lakehouse's rewrites (DuckDB) write them as variable-length binary, which the column's type "
                    "does not allow",
                ),
                hint="rewrite the table with Spark's rewrite_data_files, or declare the column as binary",
                notes="row deletes go through pyiceberg's own rewrite, which keeps them",
            ),
            FeatureSupport(
                "delete files other than Parquet position deletes (format v3 deletion vectors)",
                refused=dict.fromkeys(
                    ("read", "optimize", "dedup", "delete", "mask"),
                    "lakehouse applies Parquet position deletes only (rows they delete would be read, or revived)",
                ),
            ),
        ),
    )

    def __init__(self, name: TableName, location: str, ctx: StorageContext, table: Table) -> None:
        super().__init__(name, location, ctx)
        self._table = table
        self._plans: dict[int, _Plan] = {}
        """Plans by snapshot id (a snapshot never changes)."""
        self._positions: dict[str, dict[str, list[int]]] = {}
        """Position delete file -> data file -> deleted row positions (delete files never change)."""
        self._applied: dict[str, frozenset[str]] = {}
        """Data file -> the position delete files a rewrite source applied to it (checked at commit)."""
        self._read_plans: dict[str, _Plan] = {}
        """Data file -> the plan (snapshot) a rewrite source read it at: its commit validates from there."""

    @classmethod
    def release(cls, ctx: StorageContext) -> None:
        release_catalog(ctx)

    @classmethod
    def catalog_tables(cls, ctx: StorageContext) -> tuple[list[tuple[TableName, str, TableDefinition]], dict[str, str]]:
        return catalog_tables(ctx)

    @property
    def identifier(self) -> tuple[str, str]:
        return (self.name.namespace, self.name.table)

    @property
    def metadata_location(self) -> str:
        self._refresh()
        return str(self._table.metadata_location)

    # ---- lifecycle -----------------------------------------------------------------------------------

    @classmethod
    def create(cls, name: TableName, definition: TableDefinition, *, location: str, ctx: StorageContext) -> Self:
        validate_partitioning(definition.schema, definition.partitioning)
        validate_keys(definition.schema, definition.keys)
        if cls.exists_at(location, ctx=ctx):
            raise TableExistsError(f"an Iceberg table already exists at {location}")
        catalog = catalog_for(ctx)
        _ensure_namespace(catalog, name.namespace)
        props = {**DEFAULT_PROPERTIES, **{k: str(v) for k, v in definition.properties.items()}}
        if definition.keys:
            props[KEYS_PROPERTY] = ",".join(definition.keys)
        try:
            txn = catalog.create_table_transaction(
                (name.namespace, name.table),
                schema=definition.schema,
                location=_location_uri(location),
                properties=props,
            )
            if definition.partitioning:
                with txn.update_spec() as spec:
                    for pf in definition.partitioning:
                        spec.add_field(pf.column, _transform_of(pf), pf.name)
            txn.commit_transaction()
            table = catalog.load_table((name.namespace, name.table))
        except TableAlreadyExistsError as e:
            raise TableExistsError(f"Iceberg catalog already has a table {name}") from e
        except (ValueError, TypeError, IcebergValidationError) as e:
            raise InvalidSchemaError(f"cannot create Iceberg table {name}: {e}") from e
        except OSError as e:
            raise StorageError(f"cannot create Iceberg table {name} at {location}: {e}") from e
        return cls(name, location, ctx, table)

    @classmethod
    def open(cls, name: TableName, *, location: str, ctx: StorageContext) -> Self:
        try:
            table = catalog_for(ctx).load_table((name.namespace, name.table))
        except NoSuchTableError as e:
            raise TableNotFoundError(f"the Iceberg catalog has no table {name}") from e
        except FileNotFoundError as e:
            raise TableNotFoundError(f"the metadata of Iceberg table {name} is gone: {e}") from e
        except OSError as e:
            raise StorageError(f"cannot open Iceberg table {name}: {e}") from e
        return cls(name, _plain_location(table.location()), ctx, table)

    @classmethod
    def exists_at(cls, location: str, *, ctx: StorageContext) -> bool:
        return bool(_metadata_files(location, ctx))

    @classmethod
    def register(
        cls, name: TableName, *, location: str, ctx: StorageContext, metadata_location: str | None = None
    ) -> Self:
        """Adopt the table whose newest metadata file is under ``location`` (or the given ``metadata_location``,
        as an Iceberg REST register request names it)."""
        files = _metadata_files(location, ctx)
        if not files:
            raise TableNotFoundError(f"no Iceberg metadata under {location}/metadata")
        if metadata_location is not None:
            wanted = _plain_location(metadata_location)
            if wanted not in [_plain_location(f) for f in files]:
                raise TableNotFoundError(f"no metadata file {metadata_location} under {location}/metadata")
            files = [*files, wanted]
        catalog = catalog_for(ctx)
        created = _ensure_namespace(catalog, name.namespace)
        try:
            try:
                table = catalog.register_table((name.namespace, name.table), _location_uri(files[-1]))
            except TableAlreadyExistsError as e:
                raise TableExistsError(f"the Iceberg catalog already has a table {name}") from e
            except Exception:
                # pyiceberg's SQL catalog inserts the table's row before it reads the metadata: a file it cannot
                # read would leave the row (the name then taken, and no table to drop)
                with contextlib.suppress(Exception):
                    catalog.drop_table((name.namespace, name.table))
                raise
            snap = table.current_snapshot()
            if snap is not None:
                try:  # a current version whose file list is gone: a table no one can read or maintain
                    snap.manifests(table.io)
                except Exception as e:  # whatever the reader says, the table is refused
                    with contextlib.suppress(Exception):
                        catalog.drop_table((name.namespace, name.table))
                    raise InvalidInputError(
                        f"{files[-1]}: the current snapshot's manifest list {snap.manifest_list} cannot be read ({e})",
                        hint="register the table at a metadata file whose snapshots' files are all there",
                    ) from e
        except InvalidInputError:
            _undo_namespace(catalog, name.namespace, created)
            raise
        except (ValueError, TypeError, IcebergValidationError) as e:
            _undo_namespace(catalog, name.namespace, created)
            raise InvalidInputError(f"{files[-1]} is not valid Iceberg table metadata: {e}") from e
        except OSError as e:
            _undo_namespace(catalog, name.namespace, created)
            raise StorageError(f"cannot read {files[-1]}: {e}") from e
        except BaseException:
            _undo_namespace(catalog, name.namespace, created)
            raise
        return cls(name, _plain_location(table.location()), ctx, table)

    @classmethod
    def forget(cls, name: TableName, *, ctx: StorageContext) -> None:
        try:
            catalog_for(ctx).drop_table((name.namespace, name.table))
        except NoSuchTableError:
            pass

    def drop(self, *, purge: bool = False) -> None:
        self.forget(self.name, ctx=self.ctx)
        if purge:
            delete_tree(self.location, self.ctx)

    @classmethod
    def rename(cls, name: TableName, new: TableName, *, ctx: StorageContext) -> None:
        catalog = catalog_for(ctx)
        _ensure_namespace(catalog, new.namespace)
        try:
            catalog.rename_table((name.namespace, name.table), (new.namespace, new.table))
        except NoSuchTableError as e:
            raise TableNotFoundError(f"the Iceberg catalog has no table {name}") from e
        except TableAlreadyExistsError as e:
            raise TableExistsError(f"the Iceberg catalog already has a table {new}") from e

    # ---- the served REST catalog (see rest_* below) ------------------------------------------------------

    @classmethod
    def create_native(cls, name: TableName, spec: bytes, *, location: str, ctx: StorageContext) -> Self:
        """Create a table from an Iceberg REST create-table request (its schema, partition spec, sort order and
        properties, with fresh field ids as any catalog assigns; lakehouse's table properties underneath)."""
        from pyiceberg.catalog.rest import CreateTableRequest
        from pyiceberg.partitioning import UNPARTITIONED_PARTITION_SPEC
        from pyiceberg.table.sorting import UNSORTED_SORT_ORDER

        req = _parse_rest(CreateTableRequest, spec, "create-table request")
        version = str(req.properties.get("format-version", "2"))
        if version not in ("1", "2"):
            raise UnsupportedOperationError(
                f"cannot create Iceberg table {name} with format-version {version}: lakehouse writes format "
                "versions 1 and 2 (pyiceberg 0.12); nothing was written",
                hint='leave out "format-version" (2), or ask for 1',
            )
        catalog = catalog_for(ctx)
        _ensure_namespace(catalog, name.namespace)
        try:
            table = catalog.create_table(
                (name.namespace, name.table),
                schema=req.table_schema,
                location=_location_uri(location),
                partition_spec=req.partition_spec or UNPARTITIONED_PARTITION_SPEC,
                sort_order=req.write_order or UNSORTED_SORT_ORDER,
                properties={**DEFAULT_PROPERTIES, **req.properties},
            )
        except TableAlreadyExistsError as e:
            raise TableExistsError(f"the Iceberg catalog already has a table {name}") from e
        except (ValueError, TypeError, IcebergValidationError) as e:
            raise InvalidSchemaError(f"cannot create Iceberg table {name}: {e}") from e
        except OSError as e:
            raise StorageError(f"cannot create Iceberg table {name} at {location}: {e}") from e
        return cls(name, _plain_location(table.location()), ctx, table)

    @classmethod
    def commit_create(
        cls, name: TableName, body: bytes, *, ctx: StorageContext, guard: RestPathGuard | None = None
    ) -> tuple[Self, dict[str, Any]]:
        """Commit a staged create (a commit request whose requirements hold ``assert-create``): the table and the
        spec's commit answer. ``guard`` sees the request's locations first (see :data:`RestPathGuard`)."""
        from pyiceberg.table import CommitTableRequest
        from pyiceberg.table.update import AssertCreate

        req = _parse_commit(CommitTableRequest, body, name)
        if not any(isinstance(r, AssertCreate) for r in req.requirements):
            raise TableNotFoundError(f"the Iceberg catalog has no table {name}")
        if guard is not None:
            locations, paths = _rest_paths(req)
            guard(locations, paths)  # the manifest lists first: only then are they read
            files = _snapshot_files(req, catalog_for(ctx)._load_file_io(location=locations[0] if locations else None))
            if files:
                guard(locations, {**paths, **files})
        catalog = catalog_for(ctx)
        _ensure_namespace(catalog, name.namespace)
        try:
            response = catalog.commit_table(
                _Named((name.namespace, name.table)),  # type: ignore[arg-type]
                tuple(req.requirements),
                tuple(req.updates),
            )
        except CommitFailedException as e:
            raise CommitConflictError(f"create of {name}: {e}") from e
        except (ValueError, TypeError, IcebergValidationError) as e:
            raise InvalidInputError(f"cannot create Iceberg table {name}: {e}") from e
        table = catalog.load_table((name.namespace, name.table))
        return cls(name, _plain_location(table.location()), ctx, table), _rest_json(response)

    def rest_table(self) -> dict[str, Any]:
        """The spec's load-table answer: metadata location and the table metadata."""
        self._refresh()
        return _table_response(self._table.metadata, self._table.metadata_location)

    def rest_commit(self, body: bytes, *, guard: RestPathGuard | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
        """Apply a commit-table request (requirements checked against the current metadata, then the updates), by
        the catalog row's compare-and-swap that every lakehouse commit passes. Returns the spec's answer and a
        summary for the job history: the update actions, and each snapshot it added (id, operation, summary).
        ``guard`` sees the request's locations before anything is applied (see :data:`RestPathGuard`).

        Raises:
            CommitConflictError: a requirement does not hold (another writer committed first): the client
                refreshes and retries, as the spec says for a 409.
        """
        from pyiceberg.table import CommitTableRequest
        from pyiceberg.table.update import AddSnapshotUpdate, AssignUUIDUpdate, RemovePropertiesUpdate

        req = _parse_commit(CommitTableRequest, body, self.name)
        uuid_now = str(self._table.metadata.table_uuid)
        for u in req.updates:
            if isinstance(u, AssignUUIDUpdate) and str(u.uuid) != uuid_now:
                raise InvalidInputError(f"a commit to {self.name} cannot give it another uuid (it is {uuid_now})")
        if guard is not None:
            locations, paths = _rest_paths(req)
            guard(locations, paths)  # the manifest lists first: only then are they read
            files = _snapshot_files(req, self._table.io)
            if files:
                guard(locations, {**paths, **files})
        self._refresh()
        # removing a property that is not set is a no-op (Java's catalogs; Spark's UNSET TBLPROPERTIES sends it)
        props = self._table.metadata.properties
        updates = [
            RemovePropertiesUpdate(removals=[k for k in u.removals if k in props])
            if isinstance(u, RemovePropertiesUpdate)
            else u
            for u in req.updates
        ]
        try:
            response = catalog_for(self.ctx).commit_table(self._table, tuple(req.requirements), tuple(updates))
        except CommitFailedException as e:
            raise CommitConflictError(f"commit to {self.name} refused: {e}", hint="refresh the table and retry") from e
        except (ValueError, TypeError, KeyError, IcebergValidationError) as e:
            raise InvalidInputError(f"cannot apply the commit to {self.name}: {e}") from e
        self._plans.clear()
        snapshots = []
        for u in req.updates:
            if isinstance(u, AddSnapshotUpdate):
                counts: Mapping[str, str] = u.snapshot.summary or {}
                snapshots.append(
                    {
                        "snapshot_id": u.snapshot.snapshot_id,
                        "operation": u.snapshot.summary.operation.value if u.snapshot.summary else None,
                        "added_records": int(counts.get("added-records") or 0),
                        "deleted_records": int(counts.get("deleted-records") or 0),
                    }
                )
        summary = {"updates": [u.action for u in req.updates], "snapshots": snapshots}
        self._table = catalog_for(self.ctx).load_table(self.identifier)
        return _rest_json(response), summary

    # ---- metadata ------------------------------------------------------------------------------------

    def _refresh(self) -> None:
        """Reload the table from its catalog (the newest metadata file), unless :meth:`pinned`."""
        if not self._pinned:
            self._table.refresh()

    @property
    def definition(self) -> TableDefinition:
        self._refresh()
        arrow = self._table.schema().as_arrow()
        schema = pa.schema([pa.field(f.name, _normalise_type(f.type), nullable=f.nullable) for f in arrow])
        spec = self._table.spec()
        iceberg_schema = self._table.schema()
        parts = []
        for pf in spec.fields:
            if isinstance(pf.transform, VoidTransform):
                continue  # a dropped partition field (format v1): partitions nothing
            source = iceberg_schema.find_column_name(pf.source_id)
            parts.append(_partition_field(str(source), pf.transform))
        props = {k: v for k, v in self._table.properties.items() if not k.startswith(CHECKPOINT_PREFIX)}
        keys = tuple(k for k in props.pop(KEYS_PROPERTY, "").split(",") if k)
        return TableDefinition(schema=schema, partitioning=tuple(parts), keys=keys, properties=props)

    def snapshots(self) -> list[Snapshot]:
        self._refresh()
        meta = self._table.metadata
        snaps = sorted(meta.snapshots, key=lambda s: (s.sequence_number or 0, s.timestamp_ms))
        # A snapshot's version is its sequence number. Format-v1 snapshots have none (0): they are numbered by
        # their snapshot id instead, which never changes; counting them 1..n would shift every number once
        # retention expires the oldest (and the catalog's record of expired versions would then name the wrong
        # ones).
        numbers = [s.sequence_number or s.snapshot_id for s in snaps]
        version_of = {s.snapshot_id: n for s, n in zip(snaps, numbers, strict=True)}
        current = meta.current_snapshot_id
        out = []
        for s, n in zip(snaps, numbers, strict=True):
            summary = dict(s.summary.additional_properties) if s.summary else {}
            out.append(
                Snapshot(
                    version=n,
                    timestamp=dt.datetime.fromtimestamp(s.timestamp_ms / 1000, tz=dt.UTC),
                    operation=s.summary.operation.value if s.summary else "unknown",
                    snapshot_id=s.snapshot_id,
                    parent_version=version_of.get(s.parent_snapshot_id) if s.parent_snapshot_id else None,
                    is_current=s.snapshot_id == current,
                    summary=summary,
                )
            )
        return out

    def snapshot(self, as_of: AsOf | None = None) -> Snapshot:
        """Points in time resolve through the table's snapshot log, so a rollback counts from its time."""
        if not isinstance(as_of, dt.datetime):
            return super().snapshot(as_of)
        snaps = self.snapshots()  # refreshes
        at_ms = int(as_of.timestamp() * 1000)
        log = [e for e in self._table.metadata.snapshot_log if e.timestamp_ms <= at_ms]
        # expiring snapshots also drops their entries from the snapshot log: without the catalog's record of
        # when they were current, a moment at an expired snapshot would resolve to an older, retained one
        if self.expired is not None and (gone := self.expired.current_at(utc(as_of))) is not None:
            logged = dt.datetime.fromtimestamp(log[-1].timestamp_ms / 1000, dt.UTC) if log else None
            if logged is None or gone[0] >= logged:
                raise self.expired.error(self.name, gone[1])
        if not log:
            return super().snapshot(as_of)  # raises the "no version at or before" error
        sid = log[-1].snapshot_id
        # another writer's expiry (pyiceberg's, unlike Java Iceberg's, keeps the log entries around a removed
        # one) leaves a gap: a snapshot committed between the two entries is gone (a sequence number between
        # theirs that no retained snapshot holds, or the next one's parent), and it was current for some unknown
        # part of that time
        metadata = self._table.metadata
        following = next((e for e in metadata.snapshot_log if e.timestamp_ms > at_ms), None)
        nxt = metadata.snapshot_by_id(following.snapshot_id) if following is not None else None
        here = metadata.snapshot_by_id(sid)
        if nxt is not None and here is not None:
            parent = nxt.parent_snapshot_id
            missing = parent is not None and parent != sid and metadata.snapshot_by_id(parent) is None
            first, last = here.sequence_number or 0, nxt.sequence_number or 0
            if not missing and first > 0 and last > first + 1:
                held = {s.sequence_number for s in metadata.snapshots}
                missing = any(n not in held for n in range(first + 1, last))
            if missing:
                raise VersionNotFoundError(
                    f"table {self.name} may have been at a snapshot no longer retained at {as_of.isoformat()} "
                    f"(another writer expired one committed between versions {first} and {last}); its state at "
                    "that moment is not known",
                    hint="ask for a version (see `lakehouse table history`) or a moment of a retained one",
                )
        for s in snaps:
            if s.snapshot_id == sid:
                return self._check_retained(s)
        if self.expired is not None:
            raise VersionNotFoundError(
                f"table {self.name} was at snapshot {sid} at {as_of.isoformat()}, which retention removed "
                f"(vacuum with --retain {self.expired.retention})"
            )
        raise VersionNotFoundError(
            f"table {self.name} was at snapshot {sid} at {as_of.isoformat()}, which is no longer retained"
        )

    def current_since(self) -> dict[int, list[dt.datetime]]:
        snaps = self.snapshots()  # one refresh: the log below is of the same metadata
        out = {s.version: [s.timestamp] for s in snaps}
        version_of = {s.snapshot_id: s.version for s in snaps}
        for e in self._table.metadata.snapshot_log:  # rollbacks made older snapshots current again
            v = version_of.get(e.snapshot_id)
            at = dt.datetime.fromtimestamp(e.timestamp_ms / 1000, tz=dt.UTC)
            if v is not None and at not in out[v]:
                out[v].append(at)
        return out

    def files(self, *, as_of: AsOf | None = None, partitions: Expr | None = None) -> list[DataFile]:
        """The live files of a snapshot. A whole snapshot's list is kept per process (the last two), by the
        table's metadata file and the snapshot: health's consumers each ask for it, and converting 100,000 manifest
        entries costs seconds."""
        snap = self.snapshot(as_of) if as_of is not None else None
        if snap is None:
            self._refresh()
            if self._table.current_snapshot() is None:
                return []
        snapshot_id = snap.snapshot_id if snap is not None else self._table.metadata.current_snapshot_id
        key = (self.ctx, str(self._table.metadata_location), int(snapshot_id or 0)) if partitions is None else None
        kept = _recent_files.get(key) if key is not None else None
        if kept is not None:
            return list(kept)
        out = self._list_files(snapshot_id, partitions)
        if key is not None:
            _recent_files.put(key, tuple(out))
        return out

    def _list_files(self, snapshot_id: int | None, partitions: Expr | None) -> list[DataFile]:
        with gc_paused():
            return self._convert_files(snapshot_id, partitions)

    def _convert_files(self, snapshot_id: int | None, partitions: Expr | None) -> list[DataFile]:
        schema = self._table.schema()
        specs = self._table.specs()
        readers = _bound_readers(schema)  # looked up once, not per file: 100,000 files are 100,000 conversions
        out: list[DataFile] = []
        live = self._live_data_files(snapshot_id) if partitions is None else None
        if live is not None:  # no delete files: a file's rows are all live
            shared: dict[tuple[Any, ...], dict[str, Any]] = {}  # one mapping per partition, shared by its files

            def partition_of(f: Any) -> dict[str, Any]:
                try:
                    values = tuple(f.partition)  # DuckDB's decoding: a tuple; pyiceberg's: a Record
                    # 0.0 and -0.0 are equal keys but different partitions (a NaN equals no key: made per file)
                    if any(isinstance(v, float) and v == 0 for v in values):
                        return self._human_partition(f, specs, schema)
                    key = (f.spec_id, *values)
                    held = shared.get(key)
                except TypeError:  # a value that cannot be hashed
                    return self._human_partition(f, specs, schema)
                if held is None:
                    held = shared[key] = self._human_partition(f, specs, schema)
                return held

            for f in live:
                out.append(
                    DataFile(
                        path=_plain_location(f.file_path),
                        size_bytes=int(f.file_size_in_bytes),
                        row_count=int(f.record_count),
                        partition=partition_of(f),
                        # DuckDB's decoded bounds are converted when asked for; pyiceberg's are at hand
                        stats=LazyStats(functools.partial(_column_stats, f, schema, readers))
                        if isinstance(f, _LiveFile)
                        else _column_stats(f, schema, readers),
                    )
                )
            return out
        for task in self._plan(snapshot_id, partitions).tasks:
            f = task.file
            out.append(
                DataFile(
                    path=_plain_location(f.file_path),
                    size_bytes=int(f.file_size_in_bytes),
                    # the file's live rows: its rows less those its position deletes remove
                    row_count=int(f.record_count) - len(self._deleted_positions(task)),
                    partition=self._human_partition(f, specs, schema),
                    stats=_column_stats(f, schema, readers),
                )
            )
        return out

    def _live_data_files(self, snapshot_id: int | None) -> list[Any] | None:
        """The data files of a snapshot that has no delete files, read from its manifests' live entries without
        pyiceberg's planning (its per-file partition, metrics and residual evaluation, which an unfiltered listing
        does not need, is most of a 100,000-file plan's time; the entries are decoded by DuckDB where it can, see
        :func:`_decoded_data_files`); ``None`` where the snapshot has delete manifests (the plan applies them) or
        is already planned in this process."""
        from pyiceberg.manifest import ManifestContent

        if (
            snapshot_id is None
            or snapshot_id in self._plans
            or _recent_plans.get((self.ctx, self.location, snapshot_id))
        ):
            return None
        isnap = self._table.metadata.snapshot_by_id(snapshot_id)
        if isnap is None:
            return None
        io = _GetOnly(self._table.io, ObjectReader(self.ctx))
        try:
            manifests = isnap.manifests(io)
            _manifest_lists.put(
                _plain_location(isnap.manifest_list), tuple(_plain_location(m.manifest_path) for m in manifests)
            )
            if any(m.content != ManifestContent.DATA for m in manifests):
                return None

            decoded = _decoded_data_files(self.ctx, self._table, manifests)

            def read(m: Any) -> list[Any]:
                return [
                    e.data_file
                    for e in m.fetch_manifest_entry(io, discard_deleted=True)
                    if e.data_file.content == DataFileContent.DATA
                ]

            rest = [m for m in manifests if _plain_location(m.manifest_path) not in decoded]
            if any(StorageContext.is_s3(m.manifest_path) for m in rest):  # waits on the store: 8 at a time
                from concurrent.futures import ThreadPoolExecutor

                with ThreadPoolExecutor(8) as pool:
                    read_rest = dict(zip((id(m) for m in rest), pool.map(read, rest), strict=True))
            else:  # decoding holds the GIL: threads only contend
                read_rest = {id(m): read(m) for m in rest}
            per_manifest = [
                read_rest[id(m)] if id(m) in read_rest else decoded[_plain_location(m.manifest_path)] for m in manifests
            ]
        except OSError as e:
            raise VersionNotFoundError(f"cannot read the file list of {self.name}: {e}") from e
        return [f for files in per_manifest for f in files]

    def _human_partition(self, f: Any, specs: Mapping[int, Any] | None = None, schema: Any = None) -> dict[str, Any]:
        """A data file's partition values as :meth:`files` reports them: identity values in their column's type
        (a date as a date), transforms as Iceberg prints them (``2024-01-01`` for a day, the bucket number).
        ``specs`` and ``schema`` are the table's (given by a caller converting many files)."""
        specs = specs if specs is not None else self._table.specs()
        spec = specs[f.spec_id]
        schema = schema if schema is not None else self._table.schema()
        names = _partition_names(specs, self._table.metadata.default_spec_id, schema)[f.spec_id]
        partition: dict[str, Any] = {}
        for i, pf in enumerate(spec.fields):
            value = f.partition[i]
            name = names[i]
            try:
                source_type = schema.find_type(pf.source_id)
            except ValueError:  # the source column was dropped since
                partition[name] = value
                continue
            if isinstance(pf.transform, IdentityTransform):
                partition[name] = _python_value(value, source_type)
            elif value is None or isinstance(pf.transform, VoidTransform):
                partition[name] = None
            else:
                partition[name] = pf.transform.to_human_string(source_type, value)
        return partition

    # ---- planning, deletes, how files are read ----------------------------------------------------------------

    def _plan(self, snapshot_id: int | None = None, partitions: Expr | None = None) -> _Plan:
        """The live files of the current snapshot (or of ``snapshot_id``); equality delete files are collected
        (pyiceberg 0.12 raises on them while planning). With ``partitions``, manifests whose partition summaries
        rule the predicate out are not read (the plan is then of the others only, and not kept)."""
        if snapshot_id is None:
            self._refresh()
            current = self._table.metadata.current_snapshot_id
            if current is None:
                return _Plan(None, (), ())
            snapshot_id = current
        if snapshot_id in self._plans:
            return self._plans[snapshot_id]
        key = (self.ctx, self.location, snapshot_id)
        recent = _recent_plans.get(key)
        if recent is not None:  # another handle on this table in this process planned this snapshot already
            self._plans[snapshot_id] = recent
            return recent
        if partitions is not None:
            try:
                pruned = _plan_snapshot(
                    self._table, snapshot_id, _manifest_filter(self._table, partitions), ctx=self.ctx
                )
            except OSError as e:
                raise VersionNotFoundError(f"cannot read the file list of {self.name}: {e}") from e
            if pruned is None:
                raise VersionNotFoundError(f"table {self.name} has no snapshot {snapshot_id}")
            return pruned
        try:
            plan = _plan_snapshot(self._table, snapshot_id, ctx=self.ctx)
        except OSError as e:
            raise VersionNotFoundError(f"cannot read the file list of {self.name}: {e}") from e
        if plan is None:
            raise VersionNotFoundError(f"table {self.name} has no snapshot {snapshot_id}")
        if len(self._plans) > 8:
            self._plans.clear()
        self._plans[snapshot_id] = plan
        _recent_plans.put(key, plan)
        return plan

    def _deleted_positions(self, task: Any) -> set[int]:
        """The row positions of ``task``'s data file that its position delete files remove."""
        out: set[int] = set()
        path = _plain_location(task.file.file_path)
        for d in task.delete_files:
            if d.content == DataFileContent.POSITION_DELETES:
                out.update(self._positions_of(d).get(path, ()))
        return out

    def _positions_of(self, delete_file: Any) -> dict[str, list[int]]:
        """Data file -> deleted positions of one position delete file (read once per adapter)."""
        key = str(delete_file.file_path)
        if key in self._positions:
            return self._positions[key]
        if delete_file.file_format != FileFormat.PARQUET:
            raise UnsupportedOperationError(
                f"{self.name} has a {delete_file.file_format} delete file ({key}): lakehouse reads Parquet "
                "position deletes only (format v3 deletion vectors are not supported)"
            )
        import pyarrow.parquet as pq

        try:
            with self._table.io.new_input(key).open() as fh:
                t = pq.read_table(fh, columns=[_POS_DELETE_FILE_PATH, _POS_DELETE_POS])
        except (OSError, pa.ArrowException) as e:
            raise StorageError(f"cannot read the position delete file {key} of {self.name}: {e}") from e
        found: dict[str, list[int]] = {}
        for p, pos in zip(
            t.column(_POS_DELETE_FILE_PATH).to_pylist(), t.column(_POS_DELETE_POS).to_pylist(), strict=True
        ):
            found.setdefault(_plain_location(p), []).append(int(pos))
        self._positions[key] = found
        return found

    def live_rows(self, files: Sequence[DataFile]) -> int:
        plan = self._plan()
        if plan.equality:  # which rows equality deletes remove, only reading tells
            return self._duckdb_count(None)
        return sum(f.row_count for f in files)

    def row_count(self, *, as_of: AsOf | None = None) -> int:
        snap = self.snapshot(as_of) if as_of is not None else None
        if self._plan(snap.snapshot_id if snap else None).equality:
            return self._duckdb_count(snap)
        return super().row_count(as_of=as_of)

    def check_rewrite(self, *, raw: bool = False) -> None:
        from pyiceberg.types import FixedType

        super().check_rewrite(raw=raw)

        fixed = [f.name for f in self._table.schema().fields if _holds(f.field_type, FixedType)]
        if fixed:  # DuckDB writes them as variable-length binary, which pyiceberg refuses at the commit
            raise UnsupportedOperationError(
                f"{self.name} has fixed(N) column(s) {', '.join(fixed)}: lakehouse's rewrites write them as "
                "variable-length binary, which the table's type does not allow; nothing was written",
                hint="rewrite this table with Spark's rewrite_data_files, or declare the column as binary",
            )
        plan = self._plan()
        if plan.equality:
            raise UnsupportedOperationError(
                f"{self.name} has {len(plan.equality)} equality delete file(s): lakehouse rewrites files with "
                "DuckDB and pyiceberg 0.12, which cannot apply equality deletes, so a rewrite would revive "
                "deleted rows; nothing was written",
                hint=EQUALITY_DELETES_HINT.replace("<table>", str(self.name)),
            )
        for task in plan.tasks:
            for d in task.delete_files:
                self._positions_of(d)  # refuses delete files other than Parquet position deletes
                if raw:
                    raise UnsupportedOperationError(
                        f"{self.name} has position delete files (merge-on-read): this job rewrites data files "
                        "as they are and would revive deleted rows; nothing was written",
                        hint=f"compact the table first: `lakehouse optimize {self.name}` applies the deletes",
                    )

    def check_delete(self) -> None:
        if self._plan().equality:
            raise UnsupportedOperationError(
                f"{self.name} has equality delete files: pyiceberg 0.12 cannot delete rows of such a table",
                hint=EQUALITY_DELETES_HINT.replace("<table>", str(self.name)),
            )

    def limitations(self) -> list[str]:
        plan = self._plan()
        out = super().limitations()
        if plan.equality:
            out.append(
                f"{self.name} has {len(plan.equality)} equality delete file(s): reads apply them (through "
                "DuckDB), but optimize, Z-order, dedup, tiering, masking in place and row deletes are refused "
                "until it is compacted by an engine that applies them; "
                + EQUALITY_DELETES_HINT.replace("<table>", str(self.name))
            )
        outside = self._outside_directories(plan)
        if outside:
            out.append(
                f"{self.name} has data files outside its location (in {', '.join(outside[:3])}"
                + (" ..." if len(outside) > 3 else "")
                + "): queries may read there, rewrites write new files under the location, and retention never "
                "deletes the files outside it"
            )
        return out

    def _outside_directories(self, plan: _Plan) -> list[str]:
        """Directories outside the table location holding its live data or delete files: each file's directory,
        less the Hive-style ``key=value`` levels at its end (so one per adopted table, not per partition)."""
        root = self.location.rstrip("/") + "/"
        dirs: set[str] = set()
        paths = [t.file.file_path for t in plan.tasks] + [d.file_path for t in plan.tasks for d in t.delete_files]
        for raw in paths + [e.file_path for e in plan.equality]:
            path = _plain_location(str(raw))
            if path.startswith(root):
                continue
            parts = path.rsplit("/", 1)[0].split("/")
            while len(parts) > 2 and "=" in parts[-1]:
                parts.pop()
            dirs.add("/".join(parts))
        return sorted(dirs)

    def read_locations(self) -> list[str]:
        self._refresh()
        out = [self.location]
        for key in ("write.data.path", "write.object-storage.path", "write.folder-storage.path"):
            if value := self._table.properties.get(key):
                out.append(_plain_location(value))
        # every query asks: planning a snapshot reads its manifests, so what a snapshot needs is remembered
        snap_key = (str(self._table.metadata_location), self._table.metadata.current_snapshot_id)
        if snap_key not in _OUTSIDE:
            if len(_OUTSIDE) > 256:
                _OUTSIDE.clear()
            _OUTSIDE[snap_key] = tuple(self._outside_directories(self._plan())) if snap_key[1] is not None else ()
        return out + list(_OUTSIDE[snap_key])

    def rewrite_source(self, con: Any, paths: Sequence[str], columns: Sequence[str], *, located: bool = True) -> str:
        """Files are read by field id (nested fields too, as :func:`lakehouse.maintenance.compaction.file_layout`
        matches them), files without ids through the table's name mapping (``schema.name-mapping.default``,
        else by name); a column an identity partition keeps only in metadata (``add_files`` of Hive-style
        directories) is the file's partition value; rows the files' position deletes remove are left out.
        Refuses what it cannot read correctly (equality deletes)."""
        self.check_rewrite()
        plan = self._plan()
        by_path = {_plain_location(t.file.file_path): t for t in plan.tasks}
        files = []
        for given in paths:
            task = by_path.get(_plain_location(given))
            if task is None:
                raise CommitConflictError(
                    f"{given} is no longer a live file of {self.name}: a concurrent commit removed it; plan again"
                )
            files.append((given, task))
            self._applied[_plain_location(given)] = _position_deletes(task)
            self._read_plans[_plain_location(given)] = plan
        return self._file_relation(con, files, columns, located=located)

    def written_source(self, con: Any, paths: Sequence[str], columns: Sequence[str]) -> str:
        """Files a rewrite wrote are read back by field id, like the files they replace (a rewrite that copies
        a file's columns keeps the names its writer gave nested fields, and their ids)."""
        return self._file_relation(con, [(p, None) for p in paths], columns)

    def _file_relation(
        self, con: Any, files: Sequence[tuple[str, Any]], columns: Sequence[str], *, located: bool = True
    ) -> str:
        """The relation of :meth:`rewrite_source` over ``files``: (path as given, its scan task), the task None for
        a file not in the table yet (no deletes, no partition values kept in metadata)."""
        from lakehouse.duck import duck_type
        from lakehouse.duck import match_field_ids as _match

        schema = self._table.schema()
        declared = self.schema
        fields = [(schema.find_field(c), declared.field(c)) for c in columns]
        mapping = self._table.metadata.name_mapping()
        groups: dict[str, tuple[list[str], list[str]]] = {}
        deleted_files: list[str] = []
        deleted_pos: list[int] = []
        deleted = {given: self._deleted_positions(task) if task else set() for given, task in files}
        # a row's file and position when asked, or where position deletes apply (a file name per row costs about
        # as much to read as a column)
        where = ["filename", "file_row_number"] if located or any(deleted.values()) else []
        for given, task in files:
            duck = _duck_path(given)
            stored = _parquet_schema(self._table.io, str(task.file.file_path) if task else _location_uri(given))
            by_id = {_field_id(f): f for f in stored if _field_id(f) is not None}
            constants = self._metadata_values(task.file, schema) if task else {}
            exprs = []
            for ice_field, arrow_field in fields:
                if by_id:
                    found = by_id.get(ice_field.field_id)
                else:  # no field ids: the name mapping, else the column's name
                    names = _mapped_names(mapping, ice_field.field_id) or [ice_field.name]
                    found = next((stored.field(n) for n in names if stored.get_field_index(n) >= 0), None)
                t = duck_type(arrow_field.type)
                if found is None:  # not in this file: the partition value kept in metadata, or NULL (added since)
                    value = _sql_literal(constants.get(ice_field.field_id), ice_field.field_type)
                    exprs.append(f"CAST({value} AS {t}) AS {_ident(arrow_field.name)}")
                    continue
                _, rename = _match(arrow_field.type, found.type, f"{self.name}.{arrow_field.name}")
                value = rename(_ident(found.name))
                if not pa.types.is_nested(arrow_field.type):
                    value = f"CAST({value} AS {t})"  # widened since the file was written (int -> long, ...)
                exprs.append(f"{value} AS {_ident(arrow_field.name)}")
            select = ", ".join([*exprs, *where])
            groups.setdefault(select, ([], exprs))[0].append(duck)
            positions = deleted[given]
            deleted_files.extend([duck] * len(positions))
            deleted_pos.extend(sorted(positions))
        parts = []
        for select, (paths, _) in groups.items():
            files_sql = "[" + ", ".join(_sql_str(f) for f in paths) + "]"
            options = "hive_partitioning = false, union_by_name = true" + (
                ", filename = true, file_row_number = true" if where else ""
            )
            parts.append(f"SELECT {select} FROM read_parquet({files_sql}, {options})")
        relation = " UNION ALL BY NAME ".join(f"({p})" for p in parts)
        if deleted_files:
            view = f"lh_position_deletes_{uuid.uuid4().hex[:12]}"
            con.register(view, pa.table({"file": deleted_files, "pos": pa.array(deleted_pos, pa.int64())}))
            relation = (
                f"SELECT * FROM ({relation}) lh_r WHERE NOT EXISTS (SELECT 1 FROM {view} lh_d "
                "WHERE lh_d.file = lh_r.filename AND lh_d.pos = lh_r.file_row_number)"
            )
        return relation

    # ---- data ----------------------------------------------------------------------------------------

    def _append(self, data: pa.Table, *, properties: dict[str, str], checkpoints: dict[str, int]) -> CommitResult:
        marks = {CHECKPOINT_PREFIX + source: str(int(position)) for source, position in checkpoints.items()}

        def commit() -> None:
            self._refresh()
            # one metadata commit: the rows, and the checkpoints as table properties (they survive snapshot
            # expiry, unlike snapshot summaries, which also carry them for the record)
            with _Transaction(self._table) as tx:
                if marks:
                    tx.set_properties(marks)
                tx.append(data, snapshot_properties={**properties, **marks})

        try:
            _retry_commit(f"append to {self.name}", commit, timeout=self.commit_timeout)
        except OSError as e:
            raise StorageError(f"append to {self.name} failed: {e}") from e
        snap = self._current()
        added = int(snap.summary.get("added-data-files", 0))
        return CommitResult(
            version=snap.version, snapshot_id=snap.snapshot_id, rows_added=data.num_rows, files_added=added
        )

    def _upsert(
        self, data: pa.Table, *, keys: list[str], properties: dict[str, str], checkpoints: dict[str, int]
    ) -> CommitResult:
        marks = {CHECKPOINT_PREFIX + source: str(int(position)) for source, position in checkpoints.items()}
        counts: dict[str, int] = {}

        def commit() -> None:
            self._refresh()
            with _Transaction(self._table) as tx:
                if marks:
                    tx.set_properties(marks)
                result = tx.upsert(data, join_cols=keys, snapshot_properties={**properties, **marks})
                counts["rows"] = result.rows_inserted + result.rows_updated

        try:
            _retry_commit(f"upsert into {self.name}", commit, timeout=self.commit_timeout)
        except OSError as e:
            raise StorageError(f"upsert into {self.name} failed: {e}") from e
        snap = self._current()
        return CommitResult(
            version=snap.version, snapshot_id=snap.snapshot_id, rows_added=counts.get("rows", 0), operation="upsert"
        )

    def checkpoint(self, source: str) -> int | None:
        self._refresh()
        value = self._table.properties.get(CHECKPOINT_PREFIX + source)
        return int(value) if value is not None else None

    def add_columns(self, fields: Sequence[pa.Field]) -> None:
        if not fields:
            return

        def commit() -> None:
            self._refresh()
            with self._table.update_schema() as update:
                for f in fields:
                    update.add_column(f.name, _iceberg_type(f.type))

        _retry_commit(f"adding columns to {self.name}", commit, timeout=self.commit_timeout)

    def read_data_file(self, path: str, *, rows: int = 1 << 20) -> Iterator[pa.Table]:
        """Columns matched by field id, files without ids by the table's name mapping (``add_files``), else by
        name; columns under the table's current names with their ids; a column the table has and the file
        lacks is NULL (as readers see it), one whose id the table dropped is left out."""
        self._refresh()
        schema = self._table.schema()
        declared = self.schema
        mapping = self._table.metadata.name_mapping()
        for data in super().read_data_file(path, rows=rows):
            by_id: dict[int, int] = {}
            by_name = {f.name: i for i, f in enumerate(data.schema)}
            for k, f in enumerate(data.schema):
                raw = (f.metadata or {}).get(b"PARQUET:field_id")
                if raw is not None:
                    by_id[int(raw)] = k
            columns: list[Any] = []
            fields: list[pa.Field] = []
            for ice_field in schema.fields:
                want = declared.field(ice_field.name)
                fid = ice_field.field_id
                i: int | None
                if by_id:
                    i = by_id.get(fid)
                else:  # no field ids: the name mapping, else the column's name
                    names = _mapped_names(mapping, fid) or [ice_field.name]
                    i = next((by_name[n] for n in names if n in by_name), None)
                meta = {b"PARQUET:field_id": str(fid).encode()}
                if i is not None:
                    stored = data.schema.field(i)
                    fields.append(stored.with_name(ice_field.name).with_metadata({**(stored.metadata or {}), **meta}))
                    columns.append(data.column(i))
                elif want.nullable:
                    fields.append(pa.field(ice_field.name, want.type, nullable=True, metadata=meta))
                    columns.append(pa.nulls(data.num_rows, want.type))
                else:
                    raise StorageError(f"{path} holds no column with the field id of {ice_field.name}; nothing written")
            yield pa.Table.from_arrays(columns, schema=pa.schema(fields, metadata=data.schema.metadata))

    def field_ids(self) -> dict[str, int]:
        self._refresh()
        return {f.name: f.field_id for f in self._table.schema().fields}

    def data_directory(self, partition: Mapping[str, Any]) -> str:
        parts = partition_path(partition)
        base = f"{self.location.rstrip('/')}/data"
        return f"{base}/{parts}" if parts else base

    def replace_files(
        self,
        *,
        remove: Sequence[str],
        add: Sequence[str],
        properties: Mapping[str, str] | None = None,
        partitions: Mapping[str, Mapping[str, Any]] | None = None,
        timeout: float | None = None,
    ) -> CommitResult:
        """One snapshot that removes exactly ``remove`` and adds ``add``: a ``replace`` snapshot when
        ``lakehouse.operation`` is one of :data:`REPLACE_OPERATIONS` (the rows stay as they are, so incremental
        readers such as Spark Structured Streaming skip it), else an ``overwrite``.

        Validation is the spec's rule for a rewrite, checked against the snapshots committed since the rewrite
        read its inputs (:meth:`rewrite_source`), not against the whole table: appends never conflict; a commit
        that removed an input, or added a delete file that may apply to one (an equality delete anywhere) does,
        and raises :class:`CommitConflictError` (nothing committed). A commit that loses its race rebases onto
        the winners without rewriting anything: it validates only the snapshots they added and reads only
        manifests it has not seen, so a retry costs about what an append does. It keeps trying until ``timeout``
        seconds (default :attr:`commit_timeout`) after its first lost race, then raises
        :class:`CommitTimeoutError` and removes the manifests it wrote."""
        limit = self.commit_timeout if timeout is None else timeout
        props = {**(properties or {}), "lakehouse.commit": uuid.uuid4().hex}
        replace = props.get("lakehouse.operation") in REPLACE_OPERATIONS
        try:
            footers = {p: self._footer(_location_uri(p)) for p in add}
        except (OSError, ValueError) as e:
            raise StorageError(f"cannot read the rewritten files of {self.name}: {e}") from e
        wanted = {_plain_location(p) for p in remove}
        human = {p: dict(v) for p, v in (partitions or {}).items()}
        read = {id(self._read_plans.get(p)): self._read_plans.get(p) for p in wanted}
        try:
            self._refresh()
            if len(read) == 1 and (plan := next(iter(read.values()))) is not None and plan.snapshot_id is not None:
                # the inputs as the rewrite read them: validated from that snapshot on
                live = {p: t for t in plan.tasks if (p := _plain_location(t.file.file_path)) in wanted}
                since: int | None = plan.snapshot_id
                if wanted - live.keys():
                    raise StorageError(f"a rewrite of {self.name} names input files it did not read; nothing committed")
                if any(_position_deletes(t) != self._applied.get(p, frozenset()) for p, t in live.items()):
                    raise CommitConflictError(
                        f"the rewrite of {self.name} did not apply the position deletes its inputs had when it read "
                        "them; nothing was changed, plan again"
                    )
            else:  # not read through rewrite_source (or read at several snapshots): as the table is now
                self.check_rewrite()  # equality deletes appeared meanwhile: refused by name
                plan = self._plan()
                live = self._live_inputs(wanted, plan)
                since = plan.snapshot_id
            new_files = [
                self._data_file(_location_uri(p), *footers[p], *self._partition_of(p, human, live)) for p in add
            ]
            retired = self._retired_deletes(plan, wanted)
        except OSError as e:
            raise StorageError(f"rewrite of {self.name} failed: {e}") from e
        tx = _Unstaged(self._table)  # never committed itself: the rewrite commits its snapshot attempt by attempt
        producer = _RewriteFiles(tx, replace=replace, properties=props)
        _added_in_their_specs(producer)
        for task in live.values():
            producer.delete_data_file(task.file)
        for f in new_files:
            producer.append_data_file(f)
        if retired:
            _retire_delete_files(producer, retired)
        window = _Window(self, since, live)
        producer.fresh = window.fresh
        attempts, first_loss, landed = 0, None, False
        try:
            window.check(self._table.metadata.current_snapshot())
            while not landed:
                attempts += 1
                try:
                    updates, requirements = producer._commit()
                    self._table._do_commit(
                        updates=updates,
                        requirements=(*requirements, AssertTableUUID(uuid=self._table.metadata.table_uuid)),
                    )
                    landed = True
                except CommitFailedException as e:  # another commit won: nothing of this attempt landed
                    now = time.monotonic()
                    first_loss = now if first_loss is None else first_loss
                    if now - first_loss >= limit:
                        raise CommitTimeoutError(
                            f"rewrite of {self.name} gave up after {now - first_loss:.1f} s: concurrent commits won "
                            f"all {attempts} attempts (each rebased onto them; none conflicted); nothing was "
                            f"committed (last: {e})",
                            hint="run it again when the writers are quieter, or raise the commit_timeout setting",
                        ) from e
                    # the winner just committed: the next one is most likely a writer's interval away
                    time.sleep(random.uniform(0, 0.005 * min(attempts, 20)))
                    self._refresh()
                    if self._table.metadata.snapshot_by_id(producer.snapshot_id) is not None:
                        break  # an earlier attempt landed after all (its answer was lost)
                    # validate the winners, then rebase onto them (neither refreshes the table: the attempt is
                    # built on exactly the head validated)
                    window.check(self._table.metadata.current_snapshot())
                    producer._refresh_for_retry()
        except (LakehouseError, CommitFailedException, ValidationException) as e:
            producer._clean_all_uncommitted()  # nothing committed: the manifests written for it go too
            if isinstance(e, LakehouseError):
                raise
            raise CommitConflictError(f"rewrite of {self.name}: {e}; nothing was changed, plan again") from e
        except Exception as e:  # the commit call failed and may still have landed: look
            try:
                self._refresh()
                landed = self._table.metadata.snapshot_by_id(producer.snapshot_id) is not None
            except Exception as check:  # noqa: BLE001 - then nobody can tell
                raise CommitOutcomeUnknownError(
                    f"rewrite of {self.name} failed ({e}) and whether it landed cannot be told ({check})",
                    hint=f"see `lakehouse table history {self.name}`; `lakehouse orphans` removes the files if "
                    "it did not land",
                ) from e
            if not landed:  # raising means "not committed": callers delete what they wrote for it
                producer._clean_all_uncommitted()
                raise StorageError(f"rewrite of {self.name} failed: {e}") from e
        with contextlib.suppress(Exception):  # committed: leftovers of lost attempts only cost space
            producer._cleanup_uncommitted()
            producer.drop_unused()
        for p in wanted:
            self._read_plans.pop(p, None)
        snap = next((s for s in self.snapshots() if s.snapshot_id == producer.snapshot_id), None) or self._current()
        return CommitResult(
            version=snap.version,
            snapshot_id=snap.snapshot_id,
            files_added=len(add),
            operation="rewrite",
            attempts=attempts,
            waited_seconds=round(time.monotonic() - first_loss, 3) if first_loss is not None else 0.0,
        )

    def _live_inputs(self, wanted: set[str], plan: _Plan) -> dict[str, Any]:
        """The live tasks of ``wanted`` in ``plan``, checked: every input is live, with exactly the position
        deletes a rewrite applied to it, and no equality delete applies (else nothing is committed)."""
        if plan.equality:
            raise CommitConflictError(
                f"{self.name} has equality delete files now, which may delete rows of input files of this rewrite; "
                "nothing was changed",
                hint=EQUALITY_DELETES_HINT.replace("<table>", str(self.name)),
            )
        live = {p: t for t in plan.tasks if (p := _plain_location(t.file.file_path)) in wanted}
        gone = wanted - live.keys()
        if gone:
            raise CommitConflictError(
                f"{len(gone)} input file(s) of this rewrite of {self.name} were removed by another commit; "
                "nothing was changed, plan again",
            )
        for plain, task in live.items():
            for d in task.delete_files:
                self._positions_of(d)  # refuses delete files other than Parquet position deletes
            deletes = _position_deletes(task)
            if deletes and plain not in self._applied:  # a rewrite that read the file raw
                raise UnsupportedOperationError(
                    f"input files of {self.name} have position delete files, and this rewrite read them raw: "
                    "it would revive deleted rows; nothing was committed",
                    hint=f"compact the table first (`lakehouse optimize {self.name}` applies the deletes)",
                )
            if deletes != self._applied.get(plain, frozenset()):
                raise CommitConflictError(
                    f"a concurrent commit deleted rows of input files of this rewrite of {self.name}; nothing "
                    "was changed, plan again"
                )
        return live

    def _own_snapshots(self, before: int | None, marker: str) -> list[Snapshot]:
        """The snapshots committed since ``before`` whose summary carries ``lakehouse.commit=marker``, oldest
        first (other writers' snapshots may sit between them and the head)."""
        self._refresh()
        meta = self._table.metadata
        ids = set()
        sid = meta.current_snapshot_id
        while sid is not None and sid != before:
            raw = meta.snapshot_by_id(sid)
            if raw is None:
                break
            if raw.summary is not None and raw.summary.additional_properties.get("lakehouse.commit") == marker:
                ids.add(raw.snapshot_id)
            sid = raw.parent_snapshot_id
        return [s for s in self.snapshots() if s.snapshot_id in ids]

    def _current(self) -> Snapshot:
        """The snapshot this table's last commit made current."""
        return next(s for s in self.snapshots() if s.is_current)

    def _row_groups(self, f: Any) -> int:
        """How many row groups a data file (a manifest entry) has: its split offsets, one per row group as the
        spec has writers record them, or else its footer's count."""
        import pyarrow.parquet as pq

        if f.split_offsets:
            return len(f.split_offsets)
        try:
            with self._table.io.new_input(f.file_path).open() as stream:
                return int(pq.read_metadata(stream).num_row_groups)
        except (OSError, pa.ArrowException) as e:
            raise StorageError(f"delete from {self.name}: cannot read the footer of {f.file_path}: {e}") from e

    def _footer(self, uri: str) -> tuple[Any, int]:
        """(Parquet metadata, size) of a file a rewrite wrote, checked: every column carries its field id."""
        import pyarrow.parquet as pq

        input_file = self._table.io.new_input(uri)
        with input_file.open() as stream:
            parquet_metadata = pq.read_metadata(stream)
        ids = {f.name: f.metadata.get(_FIELD_ID) for f in parquet_metadata.schema.to_arrow_schema()}
        for field_ in self._table.metadata.schema().fields:
            if ids.get(field_.name) is None or int(ids[field_.name]) != field_.field_id:
                raise ValueError(f"{uri}: column {field_.name!r} lacks field id {field_.field_id}")
        return parquet_metadata, len(input_file)

    def _data_file(self, uri: str, parquet_metadata: Any, size: int, spec_id: int | None, partition: Any) -> Any:
        """A DataFile for a Parquet file written by lakehouse's rewrite (field ids, statistics), in the partition
        of the files it replaces (``spec_id``, ``partition``; None: inferred from its statistics in the default
        spec, which works for order-preserving transforms only).

        Like pyiceberg's ``parquet_file_to_data_file``, but a column the writer marked optional is accepted
        for a required field when the file holds no NULL in it (DuckDB writes every column as optional).
        """
        from pyiceberg.io.pyarrow import (
            compute_statistics_plan,
            data_file_statistics_from_parquet_metadata,
            parquet_path_to_id_mapping,
        )
        from pyiceberg.manifest import DataFile as IcebergDataFile

        meta = self._table.metadata
        schema = meta.schema()
        statistics = data_file_statistics_from_parquet_metadata(
            parquet_metadata=parquet_metadata,
            stats_columns=compute_statistics_plan(schema, meta.properties),
            parquet_column_mapping=parquet_path_to_id_mapping(schema),
        )
        for field_ in schema.fields:
            if field_.required and statistics.null_value_counts.get(field_.field_id, 0):
                raise ValueError(f"{uri}: required column {field_.name!r} holds NULLs")
        if spec_id is None:
            spec_id, partition = meta.default_spec_id, statistics.partition(meta.spec(), schema)
        data_file = IcebergDataFile.from_args(
            content=DataFileContent.DATA,
            file_path=uri,
            file_format=FileFormat.PARQUET,
            partition=partition,
            file_size_in_bytes=size,
            sort_order_id=None,
            equality_ids=None,
            key_metadata=None,
            **statistics.to_serialized_dict(),
        )
        data_file.spec_id = spec_id  # not a field of the manifest entry: from_args would drop it
        return data_file

    def _partition_of(
        self, path: str, human: Mapping[str, Mapping[str, Any]], live: Mapping[str, Any]
    ) -> tuple[int | None, Any]:
        """(spec id, partition) of a rewritten file: those of the input files of its partition (a rewrite keeps
        each file's partition, whatever its transform or spec), named by ``human`` (the partition as
        :meth:`files` reports it) or, when every input is of one partition, that one."""
        tasks = list(live.values())
        if path in human:
            wanted = dict(human[path])
            tasks = [t for t in tasks if _same_partition(self._human_partition(t.file), wanted)]
            if not tasks:
                raise StorageError(
                    f"a rewritten file of {self.name} is of no input's partition ({wanted}); nothing committed"
                )
        distinct = {(t.file.spec_id, repr(t.file.partition)) for t in tasks}
        if len(distinct) != 1:
            raise StorageError(
                f"a rewrite of {self.name} over several partitions must name each new file's partition; nothing "
                "committed"
            )
        return tasks[0].file.spec_id, tasks[0].file.partition

    def _retired_deletes(self, plan: _Plan, removed: set[str]) -> list[Any]:
        """Position delete files that reference no live data file once ``removed`` are gone."""
        live = {_plain_location(t.file.file_path) for t in plan.tasks}
        candidates = {
            str(d.file_path): d
            for t in plan.tasks
            if _plain_location(t.file.file_path) in removed
            for d in t.delete_files
            if d.content == DataFileContent.POSITION_DELETES
        }
        return [d for d in candidates.values() if not (set(self._positions_of(d)) & live) - removed]

    def _metadata_values(self, f: Any, schema: Any) -> dict[int, Any]:
        """Source field id -> value of a data file's identity partition fields (what a reader uses for a column
        the file does not hold, e.g. files adopted with ``add_files`` from Hive-style directories)."""
        spec = self._table.specs()[f.spec_id]
        return {
            pf.source_id: f.partition[i]
            for i, pf in enumerate(spec.fields)
            if isinstance(pf.transform, IdentityTransform)
        }

    def _duckdb_query(self, select: str, snapshot: Snapshot | None) -> pa.Table:
        """Run ``select`` (``{source}`` stands for the table's ``iceberg_scan``) in DuckDB: its iceberg extension
        applies equality deletes, which pyiceberg 0.12 cannot."""
        import duckdb

        from lakehouse.duck import connect_duckdb

        source = self.sql_source(snapshot)
        if source is None:
            raise VersionNotFoundError(f"table {self.name} has no snapshot to read")
        extensions = ("httpfs", "avro", "iceberg") if self.ctx.reaches_s3 else ("avro", "iceberg")
        con = connect_duckdb(self.ctx, memory_limit="4GB", extensions=extensions)
        try:
            return con.execute(select.replace("{source}", source)).to_arrow_table()
        except duckdb.Error as e:
            raise StorageError(f"cannot read {self.name}: {' '.join(str(e).split())}") from e
        finally:
            con.close()

    def _duckdb_count(self, snapshot: Snapshot | None) -> int:
        return int(self._duckdb_query("SELECT count(*) AS n FROM {source}", snapshot).column(0)[0].as_py())

    def _duckdb_scan(self, expr: Expr | None, columns: list[str] | None, snapshot: Snapshot | None) -> pa.Table:
        from lakehouse.expr import to_sql

        names = columns if columns is not None else self.schema.names
        where = f" WHERE {to_sql(expr, self.schema)}" if expr is not None else ""
        cols = ", ".join(_ident(c) for c in names) or "*"
        return self._duckdb_query(f"SELECT {cols} FROM {{source}}{where}", snapshot)

    def _delete_rows(self, expr: Expr, properties: dict[str, str]) -> DeleteResult:
        """Delete by lakehouse's own copy-on-write rewrite, never with pyiceberg's ``Table.delete``: that commits
        by itself, so what it wrote could not be verified before its commit (and it writes rewritten files in
        the table's current spec, not their own).

        Files that cannot hold a matching row (by identity partition values and exact statistics) are not read;
        files whose rows all match are removed without reading them when the statistics tell; the others are
        read (pyiceberg's reader: by field id, their position deletes applied) and written again without the
        matching rows (SQL semantics: a row for which the filter is NULL stays), each in its own partition and
        spec, with field ids. Each file written is verified before the commit (:mod:`lakehouse.verify`): the
        live rows DuckDB reads from the input (as rewrites read it, :meth:`rewrite_source`) equal those it reads
        from the file written plus the input's rows the filter matched, value for value in the declared types.

        One overwrite snapshot removes and adds the files and retires the position delete files that referenced
        only removed files. Its summary records ``properties`` (lakehouse's operation, job and a predicate
        digest), never the filter. A commit that lost its race is rebased only when nothing committed meanwhile
        touches the delete (its inputs are live with the same deletes, and no file added since may hold a
        matching row); otherwise the delete is planned again on the newer snapshot (a file already rewritten is
        not rewritten again), so rows appended meanwhile are considered too.
        """
        self.check_delete()
        self._refresh()
        before = self._table.metadata.current_snapshot_id
        marker = uuid.uuid4().hex
        props = {**properties, "lakehouse.commit": marker}
        declared = self.schema
        # (input path, the position delete files applied to it) -> what deleting from it means, across attempts
        outcomes: dict[tuple[str, frozenset[str]], _FileDelete] = {}
        totals: dict[str, Any] = {}
        verifier = Verifier(self.ctx, location=self.location)

        def may_hold(f: Any) -> bool:
            """Whether a data file may hold a row the filter matches (by its statistics)."""
            return may_match(expr, self._exact_stats(f, declared), int(f.record_count))

        def commit() -> None:
            if totals and self._own_snapshots(before, marker):
                return  # an earlier attempt landed (its answer was lost): one logical delete, once
            self._refresh()
            totals.clear()
            plan = self._plan()
            if plan.equality:
                self.check_delete()  # equality deletes appeared meanwhile: refused by name
            removed: list[Any] = []
            written: list[_FileDelete] = []
            for task in plan.tasks:
                key = (_plain_location(task.file.file_path), _position_deletes(task))
                outcome = outcomes.get(key)
                if outcome is None:
                    outcome = outcomes[key] = self._delete_from_file(task, expr, declared, verifier)
                if outcome.deleted:
                    removed.append(task)
                    if outcome.written is not None:
                        written.append(outcome)
            if not removed:
                return
            gone = {_plain_location(t.file.file_path) for t in removed}
            applied = {_plain_location(t.file.file_path): _position_deletes(t) for t in removed}
            new_files = [
                self._data_file(_location_uri(o.written), *o.footer, *o.partition) for o in written if o.written
            ]
            retired = self._retired_deletes(plan, gone)
            totals.update(
                rows=sum(outcomes[(p, applied[p])].deleted for p in gone),
                removed=len(removed),
                added=[o.written for o in written],
                rewritten={p: carried(o.written, o.rows, o.deleted) for p in gone for o in [outcomes[(p, applied[p])]]},
            )
            live = {_plain_location(t.file.file_path) for t in plan.tasks}
            with self._table.transaction() as tx:
                with tx.update_snapshot(snapshot_properties=props).overwrite() as ow:
                    ow._validate_concurrency = functools.partial(  # type: ignore[method-assign]
                        _delete_still_valid, ow, live, applied, may_hold
                    )
                    _added_in_their_specs(ow)
                    for task in removed:
                        ow.delete_data_file(task.file)
                    for f in new_files:
                        ow.append_data_file(f)
                    if retired:
                        _retire_delete_files(ow, retired)

        try:
            try:
                _retry_commit(f"delete from {self.name}", commit)
            finally:
                verifier.close()
        except LakehouseError:
            self._discard(o.written for o in outcomes.values())
            raise  # refused, or a rewrite that failed its verification, or every attempt lost: nothing committed
        except Exception as e:
            # the commit call may have failed after the commit landed (a lost answer): look for it by its marker
            try:
                landed = self._own_snapshots(before, marker)
            except Exception as check:  # noqa: BLE001 - then nobody can tell
                raise CommitOutcomeUnknownError(
                    f"delete from {self.name} failed ({e}) and whether it landed cannot be told ({check})",
                    hint=f"see `lakehouse table history {self.name}` (a snapshot with lakehouse.commit={marker}); "
                    "`lakehouse orphans` removes the files written for it if it did not land",
                ) from e
            if not landed:
                self._discard(o.written for o in outcomes.values())
                if isinstance(e, OSError):
                    raise StorageError(f"delete from {self.name} failed: {e}") from e
                raise
        except BaseException:
            self._discard(o.written for o in outcomes.values())
            raise
        ours = self._own_snapshots(before, marker)
        committed = set(totals.get("added", [])) if ours else set()
        # files written for inputs that another commit changed before ours are referenced by nothing
        self._discard(o.written for o in outcomes.values() if o.written not in committed)
        if not ours:
            return DeleteResult(version=None)
        return DeleteResult(
            version=ours[-1].version,
            rows_deleted=int(totals["rows"]),
            files_removed=int(totals["removed"]),
            files_added=len(committed),
            rewritten=dict(totals["rewritten"]),
        )

    def _delete_from_file(self, task: Any, expr: Expr, declared: pa.Schema, verifier: Verifier) -> _FileDelete:
        """How many live rows of one data file (``task``: with its position deletes) match ``expr``, and for a
        file that keeps some, the file written without them, verified against the input (removed again when
        that fails)."""
        import pyarrow.compute as pc
        from pyiceberg.expressions import AlwaysTrue
        from pyiceberg.io.pyarrow import ArrowScan, schema_to_pyarrow

        f = task.file
        source = _plain_location(f.file_path)
        deleted_before = self._deleted_positions(task)
        physical = int(f.record_count)
        rows = physical - len(deleted_before)
        stats = self._exact_stats(f, declared)
        if not may_match(expr, stats, physical):
            return _FileDelete(0)
        if all_match(expr, stats, physical):
            return _FileDelete(rows)
        ice_schema = self._table.schema()
        try:
            data = ArrowScan(self._table.metadata, self._table.io, ice_schema, AlwaysTrue()).to_table(tasks=[task])
        except (OSError, pa.ArrowException, ValueError) as e:
            raise StorageError(f"delete from {self.name}: cannot read {source}: {e}") from e
        if data.num_rows != rows:
            raise StorageError(f"delete from {self.name}: read {data.num_rows} live rows of {source}, not {rows}")
        target_schema = schema_to_pyarrow(ice_schema, include_field_ids=True)
        try:
            data = data.cast(target_schema)
        except (pa.ArrowException, ValueError) as e:
            raise StorageError(
                f"delete from {self.name}: cannot write {source}'s rows as the table's types: {e}"
            ) from e
        columns = sorted(expr.columns())
        probe = pa.table({c: data.column(c).cast(declared.field(c).type) for c in columns})
        matches = pc.fill_null(evaluate_table(expr, declared, probe), False)
        deleted = int(pc.sum(matches).as_py() or 0)
        if deleted in (0, rows):
            return _FileDelete(deleted)
        kept = data.filter(pc.invert(matches))
        target = f"{self.data_directory(self._human_partition(f))}/{uuid.uuid4().hex}-lh-delete.parquet"
        self._write_rows(kept, target, group_rows=-(-physical // self._row_groups(f)))
        try:
            # the file's positions of the rows matched (its rows less those deleted before, in order)
            positions = pc.indices_nonzero(matches)
            if deleted_before:
                live = pa.array(sorted(set(range(physical)) - deleted_before), pa.int64())
                positions = live.take(positions)
            names = declared.names
            con = verifier.con
            verifier.removal(
                read=f"({self._file_relation(con, [(source, task)], names)})",
                written=f"({self.written_source(con, [target], names)})",
                removed=positions,
                schema=declared,
                columns=names,
                what=f"delete from {self.name} (rewriting {source})",
            )
            footer = self._footer(_location_uri(target))
        except BaseException:
            self._discard([target])
            raise
        return _FileDelete(deleted, target, footer, (f.spec_id, f.partition), rows)

    def _exact_stats(self, f: Any, declared: pa.Schema) -> dict[str, tuple[Any, Any, int | None]]:
        """A data file's per-column (min, max, nulls) where they are exact enough to decide a delete without
        reading the file: identity partition values, and the bounds :func:`_exact_bounds` keeps."""
        schema = self._table.schema()
        rows = int(f.record_count)
        out = _exact_bounds(_column_stats(f, schema), declared)
        for fid, value in self._metadata_values(f, schema).items():
            try:
                name = schema.find_column_name(fid)
            except ValueError:
                continue
            if name is None or declared.get_field_index(name) < 0 or not _exact_type(declared.field(name).type):
                continue
            v = _python_value(value, schema.find_type(fid))
            out[name] = (None, None, rows) if v is None else (v, v, 0)
        return out

    # ---- retention and garbage ----------------------------------------------------------------------------

    def version_paths(self, versions: Collection[int] | None = None) -> set[str]:
        self._refresh()
        snaps = self.snapshots()
        wanted = None if versions is None else set(versions)
        io = self._table.io
        meta = self._table.metadata
        out: set[str] = set()
        picked = [
            (snap, isnap)
            for snap in snaps
            if (wanted is None or snap.version in wanted)
            and (isnap := meta.snapshot_by_id(snap.snapshot_id or 0)) is not None
        ]

        try:
            _read_manifest_lists(self.ctx, io, [isnap for _snap, isnap in picked])
        except OSError as e:
            raise StorageError(f"cannot read the manifests of {self.name}: {e}") from e

        def manifests_of(pair: tuple[Snapshot, Any]) -> tuple[str, ...]:
            snap, isnap = pair
            try:
                return _snapshot_manifests(io, isnap)
            except OSError as e:
                raise StorageError(f"cannot read the manifests of {self.name} version {snap.version}: {e}") from e

        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(8) as pool:  # one manifest list per version: read 8 at a time
            lists = list(pool.map(manifests_of, picked))
        done: set[str] = set()
        for (_snap, isnap), manifest_paths in zip(picked, lists, strict=True):
            out.add(_plain_location(isnap.manifest_list))
            for path in manifest_paths:
                if path in done:  # a manifest later versions carry over: its files are in already
                    continue
                done.add(path)
                out.add(path)
                out |= _manifest_paths_of(io, isnap, path)
        return out | self._statistics_paths(snaps, wanted)

    def _statistics_paths(self, snaps: Sequence[Snapshot], wanted: Collection[int] | None) -> set[str]:
        """The statistics files (Puffin, partition statistics) of the ``wanted`` versions (None: every one)."""
        meta = self._table.metadata
        return {
            _plain_location(stats.statistics_path)
            for stats in list(meta.statistics) + list(getattr(meta, "partition_statistics", []) or [])
            if wanted is None or any(s.snapshot_id == stats.snapshot_id and s.version in wanted for s in snaps)
        }

    def version_roots(self, versions: Collection[int]) -> set[str]:
        self._refresh()
        snaps = self.snapshots()
        wanted = set(versions)
        meta = self._table.metadata
        out = {
            _plain_location(isnap.manifest_list)
            for snap in snaps
            if snap.version in wanted and (isnap := meta.snapshot_by_id(snap.snapshot_id or 0)) is not None
        }
        return out | self._statistics_paths(snaps, wanted)

    def appends_only(self) -> bool:
        self._refresh()
        meta = self._table.metadata
        by_id = {s.snapshot_id: s for s in meta.snapshots}
        ancestry: set[int] = set()
        sid = meta.current_snapshot_id
        while sid is not None and sid in by_id and sid not in ancestry:
            ancestry.add(sid)
            sid = by_id[sid].parent_snapshot_id
        if ancestry != set(by_id):  # a snapshot off the current one's ancestry: a branch, a rolled-back commit
            return False
        # an append keeps every data file of its parent (a merging append writes the parent's manifests anew:
        # only the parent's manifest list names the old ones, which a reconciliation finds left over in its
        # listing); the oldest snapshot left may be anything
        return all(
            s.summary is not None and s.summary.operation.value == "append"
            for s in meta.snapshots
            if s.parent_snapshot_id in by_id
        )

    def may_be_version_path(self, path: str) -> bool:
        # metadata JSON files and the version hint belong to no snapshot
        return not path.endswith((".metadata.json", "/version-hint.text"))

    def metadata_paths(self) -> set[str]:
        self._refresh()
        meta = self._table.metadata
        out = {_plain_location(str(self._table.metadata_location))}
        out |= {_plain_location(e.metadata_file) for e in meta.metadata_log}
        out.add(f"{self.location.rstrip('/')}/metadata/version-hint.text")
        hinted = self._hinted_metadata()
        if hinted is not None:  # the metadata file a Hadoop catalog's hint names: that catalog loads the table by it
            out.add(_plain_location(hinted[0]))
        return out

    def is_metadata(self, path: str) -> bool:
        return path.startswith(self._metadata_dir() + "/")

    def _metadata_dir(self) -> str:
        where = self._table.properties.get("write.metadata.path") or f"{self.location.rstrip('/')}/metadata"
        return _plain_location(where).rstrip("/")

    def check_operation(self, operation: str) -> None:
        if operation == "vacuum" and (other := self._other_writer()) is not None:
            raise UnsupportedOperationError(
                f"{self.name}: {other}; vacuum and orphan removal delete by lakehouse's account of the table, and "
                "would delete files that catalog's versions still need",
                hint="maintain the table from the catalog that commits to it, or make lakehouse its only catalog "
                "(drop it there, then `lakehouse table register` the newest metadata file here)",
            )

    def _other_writer(self) -> str | None:
        """What shows, in the metadata directory, that another catalog commits to this table: metadata files
        numbered after the current one (written since by a catalog that does not share lakehouse's, or left by
        a commit that failed after writing its file). A writer committing through lakehouse's own catalog meanwhile
        (an append beside the job) writes such a file too, and the catalog names it current a moment later: the
        catalog is asked again, for a few seconds, before the files count as another writer's. One listing of the
        directory per look. None when nothing shows. (A Hadoop catalog's ``version-hint.text`` is not one: the
        version it names is kept like a tag, see :meth:`_hinted_metadata`.)"""
        import time

        current = str(self._table.metadata_location)
        newer: list[str] = []
        for pause in (0.0, 0.2, 0.5, 1.0, 2.0):
            time.sleep(pause)
            newer = self._metadata_after(current)
            if not newer:
                return None
            try:
                current = str(self._table.catalog.load_table(self._table.name()).metadata_location)
            except Exception:  # noqa: BLE001 - the catalog cannot say: the files stand as found
                break
            # the catalog has since named them or a later one current: a writer of this catalog's (one that
            # commits every moment always leaves a file not yet named, so the next look alone would not do)
            mine = _metadata_number(current)
            if mine is not None and all((_metadata_number(n) or 0) <= mine for n in newer):
                return None
        return (
            f"metadata file(s) numbered after the current one ({current.rsplit('/', 1)[-1]}) are in its metadata "
            f"directory ({', '.join(newer[:3])}{', ...' if len(newer) > 3 else ''}): another catalog commits to it, "
            "or a commit failed after writing them"
        )

    def _metadata_after(self, current: str) -> list[str]:
        """The metadata files of the table's directory numbered after ``current`` (a metadata location)."""
        mine = _metadata_number(current)
        if mine is None:
            return []
        try:
            listed = list_files(self._metadata_dir(), self.ctx, recursive=False)
        except (OSError, LakehouseError):
            return []  # no directory to look into: nothing shows another writer
        return sorted(
            name for f in listed if (n := _metadata_number(name := f.path.rsplit("/", 1)[-1])) is not None and n > mine
        )

    def _hinted_metadata(self) -> tuple[str, int | None] | None:
        """(path, current snapshot id) of the metadata file a Hadoop catalog's ``version-hint.text`` names (Spark's
        and Flink's ``HadoopCatalog`` find a table's version by it), or None when the table has no hint. lakehouse's
        commits never move the hint, so that catalog keeps reading the version it names: retention keeps that
        version and its metadata file like a tag's (:meth:`ref_versions`, :meth:`metadata_paths`)."""
        key = str(self._table.metadata_location)
        cached = getattr(self, "_hint_cache", None)
        if cached is not None and cached[0] == key:
            return cached[1]
        found = self._read_hint()
        self._hint_cache = (key, found)
        return found

    def _read_hint(self) -> tuple[str, int | None] | None:
        from pyiceberg.serializers import FromInputFile

        from lakehouse.storage import read_objects

        hint_path = f"{self._metadata_dir()}/version-hint.text"
        try:
            hint = next(iter(read_objects([hint_path], self.ctx))).decode().strip()
        except (OSError, LakehouseError, UnicodeDecodeError, StopIteration):
            return None
        if not hint.isdigit():
            return None
        for name in (f"v{hint}.metadata.json", f"v{hint}.gz.metadata.json"):
            path = f"{self._metadata_dir()}/{name}"
            try:
                meta = FromInputFile.table_metadata(self._table.io.new_input(path))
            except Exception:  # noqa: BLE001, S112 - not there or unreadable: the next spelling, or no hint to keep
                continue
            return path, meta.current_snapshot_id
        return None

    def garbage_candidate(self, path: str) -> bool:
        if self.hidden(path):
            return False
        return path.endswith((".parquet", ".avro", ".orc", ".puffin", ".metadata.json", ".stats"))

    def seal_history(self) -> int:
        """An empty fast append: its manifest list carries only manifests with live files, not the manifests of
        deleted entries that the previous commit wrote (they hold the removed files' column bounds)."""

        def commit() -> None:
            self._refresh()
            with _Transaction(self._table) as tx:
                with tx.update_snapshot(snapshot_properties={"lakehouse.operation": "seal"}).fast_append():
                    pass

        try:
            _retry_commit(f"sealing the history of {self.name}", commit, timeout=self.commit_timeout)
        except OSError as e:
            raise StorageError(f"sealing the history of {self.name} failed: {e}") from e
        return self._current().version

    def drop_old_log(self) -> int:
        """Shorten the metadata log to one entry and let pyiceberg delete the metadata files it drops (one
        commit with ``write.metadata.previous-versions-max=1`` and delete-after-commit, then one restoring the
        table's own values). After a seal and a vacuum, the older metadata files list snapshots that are gone;
        the one or two that stay named list only the current snapshot."""
        self._refresh()
        before = {_plain_location(e.metadata_file) for e in self._table.metadata.metadata_log}
        self._shorten_log(1)
        self._refresh()
        return len(before - {_plain_location(e.metadata_file) for e in self._table.metadata.metadata_log})

    def rewrite_manifests(self, *, min_manifests: int) -> tuple[int, int]:
        if min_manifests < 2:
            raise InvalidInputError("merging manifests needs at least 2 of them")

        def small_data_manifests() -> dict[int, int]:
            snap = self._table.current_snapshot()
            if snap is None:
                return {}
            target = int(self._table.properties.get("commit.manifest.target-size-bytes") or 8 * 1024 * 1024)
            counts: dict[int, int] = {}
            for m in snap.manifests(self._table.io):
                if m.content == ManifestContent.DATA and m.manifest_length < target:
                    counts[m.partition_spec_id] = counts.get(m.partition_spec_id, 0) + 1
            return counts

        def commit() -> tuple[int, int]:
            self._refresh()
            before = small_data_manifests()
            if max(before.values(), default=0) < min_manifests:
                return 0, 0
            with _Transaction(self._table) as tx:
                _MergeManifests(tx, {"lakehouse.operation": "rewrite_manifests"}).commit()
            self._refresh()
            return sum(before.values()), sum(small_data_manifests().values())

        try:
            return _retry_commit(f"merging the manifests of {self.name}", commit, timeout=self.commit_timeout)
        except OSError as e:
            raise StorageError(f"merging the manifests of {self.name} failed: {e}") from e

    def trim_metadata(self, oldest: int, before: dt.datetime) -> list[ObjectInfo]:
        """Metadata files the log recorded before the window list snapshots that are gone or that the current
        metadata lists too: the log keeps the ones since (through ``write.metadata.previous-versions-max`` for
        one commit, with delete-after-commit, as in :meth:`drop_old_log`)."""
        self._refresh()
        since_ms = int(before.timestamp() * 1000)
        log = list(self._table.metadata.metadata_log)
        stale = [e for e in log if e.timestamp_ms < since_ms]
        hinted = self._hinted_metadata()
        if hinted is not None:  # the log is shortened from its oldest end: keep the hinted file and what follows
            named = [i for i, e in enumerate(log) if _plain_location(e.metadata_file) == _plain_location(hinted[0])]
            if named:
                stale = stale[: named[0]]
        if not stale:
            return []
        logged = {_plain_location(e.metadata_file) for e in log}
        folders = {p.rsplit("/", 1)[0] for p in logged}  # their sizes, before pyiceberg deletes them
        held = {f.path: f for d in folders for f in list_files(d, self.ctx, recursive=False)}
        self._shorten_log(len(log) - len(stale) + 1)  # the shortening commit logs the current file too
        self._refresh()
        after = {_plain_location(e.metadata_file) for e in self._table.metadata.metadata_log}
        return [held.get(p) or ObjectInfo(p, 0, None) for p in sorted(logged - after)]

    def _shorten_log(self, keep: int) -> None:
        log_max, delete_after = "write.metadata.previous-versions-max", "write.metadata.delete-after-commit.enabled"
        self._refresh()
        props = self._table.properties
        # the table's own values, saved in the table by the shortening commit itself: a run killed before the
        # restoring commit leaves them there, and the next run restores them (not the shortened values)
        own = {
            k: (None if props[SAVED + k] == UNSET else props[SAVED + k]) if SAVED + k in props else props.get(k)
            for k in (log_max, delete_after)
        }
        saved = {SAVED + k: UNSET if v is None else v for k, v in own.items()}

        def shorten() -> None:
            self._refresh()
            with _Transaction(self._table) as tx:
                tx.set_properties({log_max: str(max(1, keep)), delete_after: "true", **saved})

        def restore() -> None:
            self._refresh()
            with _Transaction(self._table) as tx:
                if kept := {k: v for k, v in own.items() if v is not None}:
                    tx.set_properties(kept)
                unset = [k for k, v in own.items() if v is None] + list(saved)
                tx.remove_properties(*unset)

        try:
            _retry_commit(f"shortening the metadata log of {self.name}", shorten, timeout=self.commit_timeout)
            _retry_commit(f"restoring the metadata log settings of {self.name}", restore, timeout=self.commit_timeout)
        except OSError as e:
            raise StorageError(f"shortening the metadata log of {self.name} failed: {e}") from e

    def refs(self) -> dict[str, str]:
        self._refresh()
        return {str(name): str(ref.snapshot_ref_type.value) for name, ref in self._table.metadata.refs.items()}

    def ref_versions(self) -> dict[str, int]:
        version = {s.snapshot_id: s.version for s in self.snapshots()}  # refreshes
        out = {
            str(name): version[ref.snapshot_id]
            for name, ref in self._table.metadata.refs.items()
            if ref.snapshot_id in version
        }
        hinted = self._hinted_metadata()
        if hinted is not None and hinted[1] in version:  # the version a Hadoop catalog reads: kept like a tag
            out[HINT_REF] = version[hinted[1]]
        return out

    def expire_versions(self, versions: Collection[int]) -> int:
        wanted = set(versions)

        def commit() -> int:
            self._refresh()
            ids = [s.snapshot_id for s in self.snapshots() if s.version in wanted and not s.is_current]
            if not ids:
                return 0
            self._table.maintenance.expire_snapshots().by_ids([i for i in ids if i is not None]).commit()
            return len(ids)

        try:
            return _retry_commit(f"expiring snapshots of {self.name}", commit, timeout=self.commit_timeout)
        except OSError as e:
            raise StorageError(f"expiring snapshots of {self.name} failed: {e}") from e
        except ValueError as e:  # a protected snapshot (branch or tag head)
            raise UnsupportedOperationError(f"cannot expire snapshots of {self.name}: {e}") from e

    def _scan(self, expr: Expr | None, columns: list[str] | None, snapshot: Snapshot | None) -> pa.Table:
        self._refresh()
        if snapshot is None and self._table.current_snapshot() is None:
            return self.schema.empty_table()
        row_filter = _to_iceberg(expr, self.schema) if expr is not None else ice.AlwaysTrue()
        try:
            scan = self._table.scan(
                row_filter=row_filter,
                selected_fields=tuple(columns) if columns is not None else ("*",),
                snapshot_id=snapshot.snapshot_id if snapshot else None,
            )
            return scan.to_arrow()
        except ValueError as e:
            if "equality deletes" not in str(e):
                raise
            return self._duckdb_scan(expr, columns, snapshot)  # pyiceberg 0.12 cannot apply them; DuckDB can
        except (OSError, pa.ArrowException) as e:
            what = f"cannot read {self.name}" + (f" version {snapshot.version}" if snapshot else "")
            raise VersionNotFoundError(f"{what}: a file it needs is gone or unreadable ({e})") from e

    def _batches(
        self, columns: list[str], snapshot: Snapshot | None, filter: Expr | None = None
    ) -> Iterable[pa.RecordBatch] | None:
        snapshot_id = snapshot.snapshot_id if snapshot else None
        if snapshot_id is None and self._table.current_snapshot() is None:
            return None
        metadata = self._table.metadata
        schema = metadata.schema()
        snap = metadata.snapshot_by_id(snapshot_id) if snapshot_id is not None else None
        if snap is not None and snap.schema_id is not None:
            schema = next((s for s in metadata.schemas if s.schema_id == snap.schema_id), schema)
        names = {f.name for f in schema.fields}
        present = tuple(c for c in columns if c in names)  # an old version may predate some
        row_filter = _to_iceberg(filter, self.schema) if filter is not None else ice.AlwaysTrue()
        try:
            scan = self._table.scan(row_filter=row_filter, selected_fields=present or ("*",), snapshot_id=snapshot_id)
            if filter is None:
                return scan.to_arrow_batch_reader()
            from pyiceberg.io.pyarrow import ArrowScan

            tasks = list(scan.plan_files())  # the files the filter's bounds rule out are left out here
            # within a file, pyiceberg's reader skips row groups by their bounds, but it does so by filtering the
            # rows too: where every file kept is one row group there is nothing left to skip, and filtering rows
            # the caller filters again cost a third more on 1,000 small files
            groups = any(t.file.split_offsets is None or len(t.file.split_offsets) > 1 for t in tasks)
            rows = row_filter if groups else ice.AlwaysTrue()
            return ArrowScan(
                scan.table_metadata, scan.io, scan.projection(), rows, scan.case_sensitive
            ).to_record_batches(tasks)
        except ValueError as e:
            if "equality deletes" not in str(e):
                raise
            return self._duckdb_scan(filter, list(present) or None, snapshot).to_batches()
        except (OSError, pa.ArrowException) as e:
            what = f"cannot read {self.name}" + (f" version {snapshot.version}" if snapshot else "")
            raise VersionNotFoundError(f"{what}: a file it needs is gone or unreadable ({e})") from e

    def restore(self, as_of: AsOf) -> CommitResult:
        snap = self.snapshot(as_of)
        assert snap.snapshot_id is not None
        planned = self._table.metadata.current_snapshot_id  # the head the restore was asked over

        def commit() -> None:
            self._refresh()
            head = self._table.metadata.current_snapshot_id
            if head != planned:  # a writer committed meanwhile: rolling back over it would drop its commit
                raise CommitConflictError(
                    f"restore of {self.name}: another writer committed snapshot {head} after the restore was "
                    f"planned over {planned}; nothing was restored (its commit is kept)",
                    hint="look at the table's history and run the restore again if it should still go back",
                )
            self._table.manage_snapshots().set_current_snapshot(snapshot_id=snap.snapshot_id).commit()

        try:
            _retry_commit(f"restore of {self.name}", commit, timeout=self.commit_timeout)
        except OSError as e:
            raise StorageError(f"restore of {self.name} failed: {e}") from e
        return CommitResult(version=snap.version, snapshot_id=snap.snapshot_id, operation="rollback")

    def plain_files(self) -> PlainFiles | None:
        """The current snapshot's data files, with the columns' field ids and name mapping, where its summary
        says it has no delete files (a summary without the count: None)."""
        files = self.files()  # refreshes: the snapshot and schema below are those of the files listed
        snap = self._table.current_snapshot()
        if snap is None or snap.summary is None:
            return None
        if snap.summary.get("total-delete-files") != "0":
            return None
        fields = self._table.schema().fields
        mapping = self._table.metadata.name_mapping()
        declared = self.schema
        return PlainFiles(
            files,
            field_ids={f.name: f.field_id for f in fields},
            mapped_names={f.name: tuple(_mapped_names(mapping, f.field_id)) for f in fields},
            bounds=lambda f: _exact_bounds(f.stats, declared),
        )

    def version_names(self, snapshot: Snapshot) -> dict[str, str | None] | None:
        metadata = self._table.metadata
        current = metadata.schema()
        snap = metadata.snapshot_by_id(snapshot.snapshot_id) if snapshot.snapshot_id is not None else None
        if snap is None or snap.schema_id is None:
            return None
        then = next((s for s in metadata.schemas if s.schema_id == snap.schema_id), None)
        if then is None:
            return None
        ids = {f.field_id: f.name for f in then.fields}
        return {f.name: ids.get(f.field_id) for f in current.fields}

    def sql_source(self, snapshot: Snapshot | None = None) -> str | None:
        metadata = _sql_str(_plain_location(self.metadata_location))
        if snapshot is None:
            if self._table.current_snapshot() is None:
                return None  # no snapshot yet: the engine reads an empty relation
            return f"iceberg_scan({metadata})"
        return f"iceberg_scan({metadata}, snapshot_from_id={int(snapshot.snapshot_id or 0)})"


_Reader = tuple[int, str, Any, Callable[[Any, bytes], Any], str]


def _bound_readers(schema: Any) -> list[_Reader]:
    """Per top-level column of ``schema``: (field id, name, type, pyiceberg's ``from_bytes`` for that type, what
    the value is: ``"tstz"``, ``"ts"``, ``"date"`` or ``""``). The conversion is looked up once, not dispatched
    per value."""
    from pyiceberg.conversions import from_bytes
    from pyiceberg.types import DateType, TimestampType, TimestamptzType

    out: list[_Reader] = []
    for fld in schema.fields:
        t = fld.field_type
        kind = (
            "tstz"
            if isinstance(t, TimestamptzType)
            else "ts"
            if isinstance(t, TimestampType)
            else "date"
            if isinstance(t, DateType)
            else ""
        )
        out.append((fld.field_id, fld.name, t, from_bytes.dispatch(type(t)), kind))
    return out


_EPOCH_TZ = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_EPOCH = dt.datetime(1970, 1, 1)
_EPOCH_DAY = dt.date(1970, 1, 1)


def _exact_type(t: pa.DataType) -> bool:
    """Whether the recorded bounds of a column of this declared type bound every value: integers, dates,
    booleans, strings (a truncated bound still bounds every value) and microsecond timestamps. Not floats (no
    bound covers NaN) nor decimals (a bound's bytes may be of another scale)."""
    return bool(
        pa.types.is_integer(t)
        or pa.types.is_date(t)
        or pa.types.is_boolean(t)
        or pa.types.is_string(t)
        or (pa.types.is_timestamp(t) and t.unit == "us")
    )


def _exact_bounds(
    stats: Mapping[str, tuple[Any, Any, int | None]], declared: pa.Schema
) -> dict[str, tuple[Any, Any, int | None]]:
    """The (min, max, nulls) of ``stats`` (from a file's bounds, :func:`_column_stats`) that bound every value of
    a declared column: those of :func:`_exact_type` with a null count. A column left out makes the file be
    read."""
    return {
        c: (lo, hi, nulls)
        for c, (lo, hi, nulls) in stats.items()
        if nulls is not None and declared.get_field_index(c) >= 0 and _exact_type(declared.field(c).type)
    }


def _column_stats(
    f: Any, schema: Any, readers: Sequence[_Reader] | None = None
) -> dict[str, tuple[Any, Any, int | None]]:
    """(min, max, nulls) per column from a data file's bounds (bounds of strings may be truncated, which
    keeps them valid bounds). ``readers`` are :func:`_bound_readers` of ``schema`` (given by a caller converting
    many files)."""
    out: dict[str, tuple[Any, Any, int | None]] = {}
    lower, upper, nulls = f.lower_bounds or {}, f.upper_bounds or {}, f.null_value_counts or {}
    if not lower or not upper:
        return out
    for fid, name, ftype, read, kind in readers if readers is not None else _bound_readers(schema):
        if fid not in lower or fid not in upper:
            continue
        try:
            lo: Any = read(ftype, lower[fid])
            hi: Any = read(ftype, upper[fid])
        except (ValueError, TypeError, NotImplementedError):
            continue
        if kind == "tstz":
            lo, hi = _EPOCH_TZ + dt.timedelta(microseconds=int(lo)), _EPOCH_TZ + dt.timedelta(microseconds=int(hi))
        elif kind == "ts":
            lo, hi = _EPOCH + dt.timedelta(microseconds=int(lo)), _EPOCH + dt.timedelta(microseconds=int(hi))
        elif kind == "date":
            lo, hi = _EPOCH_DAY + dt.timedelta(days=int(lo)), _EPOCH_DAY + dt.timedelta(days=int(hi))
        out[name] = (lo, hi, nulls.get(fid))
    return out


# A snapshot's files never change: the last plans made in this process are kept for the next handle on the same
# table (``health`` opens the table several times; each would read every manifest again). Two, since a plan of a
# 100,000-file snapshot holds that many scan tasks.
_recent_plans: KeptMetadata[tuple[StorageContext, str, int], _Plan] = KeptMetadata(2)
_recent_files: KeptMetadata[tuple[StorageContext, str, int], tuple[DataFile, ...]] = KeptMetadata(2)
"""lakehouse's file lists of the last snapshots listed, by metadata file (the schema and specs they were converted
with) and snapshot."""

# What each manifest file lists (its live data file paths), by manifest path: manifests are immutable too, and
# ``version_paths`` reads every manifest of every version it is asked about. Bounded by the paths kept.
_manifest_paths: KeptMetadata[str, frozenset[str]] = KeptMetadata(2_000_000, lambda paths: len(paths) + 1)


def _live_paths(entries: Sequence[Any]) -> frozenset[str]:
    """The file paths (plain locations) of a manifest's live entries."""
    return frozenset(_plain_location(e.data_file.file_path) for e in entries)


def _manifest_data_paths(io: Any, manifests: Sequence[Any]) -> dict[str, frozenset[str]]:
    """The live data file paths of each manifest (by its plain location), read 8 at a time where this process
    has not read them before (any read of a manifest's live entries keeps them: see
    :func:`_cache_manifest_entries`)."""
    from concurrent.futures import ThreadPoolExecutor

    out: dict[str, frozenset[str]] = {}
    todo: dict[str, Any] = {}
    for m in manifests:
        path = _plain_location(m.manifest_path)
        if (kept := _manifest_paths.get(path)) is not None:
            out[path] = kept
        else:
            todo.setdefault(path, m)

    def read(m: Any) -> frozenset[str]:
        return _live_paths(m.fetch_manifest_entry(io, discard_deleted=True))

    if todo:
        with ThreadPoolExecutor(min(8, len(todo))) as pool:
            for path, paths in zip(todo, pool.map(read, todo.values()), strict=True):
                out[path] = paths
                _manifest_paths.put(path, paths)
    return out


# The manifests each version's manifest list names (plain paths), by manifest list: immutable as well, and a
# table that appends without merging manifests has lists that grow by one entry per version (1,000 versions:
# half a million entries in all), so each is decoded once per process. Bounded by the entries kept.


def _metadata_number(location: str) -> int | None:
    """The version number of a metadata file (``00024-<uuid>.metadata.json``, a path or a name); None for any
    other name."""
    found = re.fullmatch(r"(\d+)-[^/]*\.metadata\.json", _plain_location(location).rsplit("/", 1)[-1])
    return int(found[1]) if found is not None else None


_manifest_lists: KeptMetadata[str, tuple[str, ...]] = KeptMetadata(2_000_000, lambda paths: len(paths) + 1)


def _snapshot_manifests(io: Any, isnap: Any) -> tuple[str, ...]:
    """The manifests of one snapshot (plain paths); their file lists are read (and kept) on the way."""
    key = _plain_location(isnap.manifest_list)
    if (kept := _manifest_lists.get(key)) is not None:
        return kept
    manifests = isnap.manifests(io)
    _manifest_data_paths(io, manifests)
    paths = tuple(_plain_location(m.manifest_path) for m in manifests)
    _manifest_lists.put(key, paths)
    return paths


def _read_manifest_lists(ctx: StorageContext, io: Any, isnaps: Sequence[Any], chunk: int = 256) -> None:
    """Keep what the manifest lists of ``isnaps`` name and what those manifests list (:data:`_manifest_lists`,
    :data:`_manifest_paths`), for the ones this process has not read, decoded ``chunk`` files at a time by
    DuckDB's Avro reader (:class:`_AvroReads`): 1,000 versions of fast appends are 500,500 manifest-list entries,
    which pyiceberg decodes in about 8 s and DuckDB in 0.5 s. A manifest whose decoded live entries differ from
    the counts its manifest list records, or a file DuckDB cannot read, is left to pyiceberg's reads later."""
    todo = [i.manifest_list for i in isnaps if _manifest_lists.get(_plain_location(i.manifest_list)) is None]
    if not todo:
        return
    plain = functools.lru_cache(maxsize=None)(_plain_location)  # 1,000 manifests named 500,500 times
    counted = ", ".join(f"'{c}'" for c in _LIVE_COUNTS)
    try:
        reads = _AvroReads(ctx).__enter__()
    except LakehouseError:  # DuckDB is the [sql] extra: without it pyiceberg reads them all, as before
        return
    with reads as avro, gc_paused():
        for start in range(0, len(todo), chunk):
            locations = todo[start : start + chunk]
            sql = "SELECT filename, list(manifest_path) AS paths FROM {files} GROUP BY filename"
            unread: dict[str, str] = {}  # plain path -> as the list names it
            for row in avro.query(locations, sql):
                _manifest_lists.put(plain(row["filename"]), tuple(plain(p) for p in row["paths"]))
                for p in row["paths"]:
                    if _manifest_paths.get(plain(p)) is None:
                        unread.setdefault(plain(p), p)
            if not unread:
                continue
            # what each manifest holds, as its lists record it (any list naming it says the same)
            sql = f"SELECT manifest_path, any_value(COLUMNS(c -> c IN ({counted}))) FROM {{files}} GROUP BY ALL"
            counts: dict[str, int] = {}
            for row in avro.query(locations, sql):
                added = next((v for k, v in row.items() if "added" in k and v is not None), None)
                existing = next((v for k, v in row.items() if "existing" in k and v is not None), None)
                if added is not None and existing is not None:
                    counts[plain(row["manifest_path"])] = int(added) + int(existing)
            sql = (
                "SELECT filename, list(data_file.file_path) FILTER (WHERE status <> 2) AS live "
                "FROM {files} GROUP BY filename"
            )
            for row in avro.query(list(unread.values()), sql):
                path = plain(row["filename"])
                live = row["live"] or []
                if counts.get(path) != len(live):
                    continue  # no count recorded, or not what the list says it holds: pyiceberg reads it
                _manifest_paths.put(path, frozenset(plain(p) for p in live))


_LIVE_COUNTS = ("added_files_count", "added_data_files_count", "existing_files_count", "existing_data_files_count")
"""A manifest list's counts of a manifest's added and existing entries (pyiceberg's names, then Java's)."""
_DELETED = 2
"""A manifest entry's status when it records a file removed."""


class _AvroReads:
    """Avro files (manifests, manifest lists) decoded by DuckDB's Avro extension, many per statement. On S3 each
    file is read with one GET (16 at a time, as :func:`read_objects` reads) into a scratch directory first; local
    files are read where they are."""

    def __init__(self, ctx: StorageContext) -> None:
        self.ctx = ctx

    def __enter__(self) -> Self:
        from lakehouse.duck import connect_duckdb
        from lakehouse.scratch import make_scratch

        self._scratch = make_scratch("avro")
        self._fetched: dict[str, str] = {}  # S3 location -> its copy in the scratch directory
        # DuckDB reads local files only here (S3 objects are fetched first): a context without S3 settings
        local = StorageContext(self._scratch, "sqlite://")
        self._con = connect_duckdb(local, memory_limit="256MB", threads=2, extensions=("avro",))
        return self

    def __exit__(self, *exc: object) -> None:
        import shutil

        self._con.close()
        shutil.rmtree(self._scratch, ignore_errors=True)

    def query(self, locations: Sequence[str], sql: str) -> list[dict[str, Any]]:
        """The rows of ``sql`` (by column name), whose ``{files}`` stands for ``read_avro`` of ``locations`` with
        a ``filename`` column; a row's ``filename`` is given back as the location asked for (rows of a file DuckDB
        names otherwise are left out). Files of different schemas (writers, format versions, partition specs)
        are read one by one when they cannot be read together; a file DuckDB cannot read is left out."""

        def run(files: list[str], named: Mapping[str, str]) -> list[dict[str, Any]]:
            cursor = self._con.execute(sql.format(files="read_avro($files, filename = true)"), {"files": files})
            columns = [d[0] for d in cursor.description]
            out = [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]
            if "filename" not in columns:
                return out
            for row in out:
                row["filename"] = named.get(row["filename"])
            return [row for row in out if row["filename"] is not None]

        return [row for rows in self._read(locations, run) for row in rows]

    def tables(self, locations: Sequence[str], sql: str) -> list[tuple[pa.Table, list[str]]]:
        """:meth:`query`'s rows as Arrow tables (one per statement DuckDB ran), each with its rows' locations
        (``sql`` must select ``filename``): for many rows, whose conversion to Python objects one at a time
        costs more than DuckDB's decoding (100,000 manifest entries: 2.2 s fetched as tuples, 1.0 s as Arrow)."""

        def run(files: list[str], named: Mapping[str, str]) -> list[tuple[pa.Table, list[str]]]:
            cursor = self._con.execute(sql.format(files="read_avro($files, filename = true)"), {"files": files})
            table = cursor.to_arrow_table() if hasattr(cursor, "to_arrow_table") else cursor.fetch_arrow_table()
            located = [named.get(f) for f in table.column("filename").to_pylist()]
            kept = [loc for loc in located if loc is not None]
            if len(kept) < len(located):  # rows of a file DuckDB names otherwise are left out
                table = table.filter(pa.array([loc is not None for loc in located]))
            return [(table, kept)]

        return [t for tables in self._read(locations, run) for t in tables]

    def _read(self, locations: Sequence[str], run: Callable[[list[str], Mapping[str, str]], T]) -> list[T]:
        """``run`` (DuckDB reading the files given, whose paths it is given with the locations they stand for)
        on ``locations``: all at once, or one by one when they cannot be read together; a file DuckDB cannot read
        is left out. S3 objects are fetched into the scratch directory first."""
        import os

        import duckdb

        from lakehouse.storage import read_objects

        remote = [loc for loc in locations if StorageContext.is_s3(loc) and loc not in self._fetched]
        for loc, body in zip(remote, read_objects(remote, self.ctx, threads=16), strict=True):
            scratch = os.path.join(self._scratch, f"{len(self._fetched)}.avro")
            with open(scratch, "wb") as fh:
                fh.write(body)
            self._fetched[loc] = scratch
        # the path DuckDB reads -> the location asked for
        named = {self._fetched.get(loc) or _plain_location(loc): loc for loc in locations}
        if not named:
            return []
        try:  # all at once when they share a schema
            return [run(list(named), named)]
        except duckdb.Error:
            pass
        out: list[T] = []
        for path in named:
            with contextlib.suppress(duckdb.Error):
                out.append(run([path], named))
        return out


class _Bounds:
    """The bounds and null counts of a statement's live entries as DuckDB decoded them (Arrow columns ``lk``,
    ``lv``, ``uk``, ``uv``, ``nk``, ``nv``: each map's keys and values), turned into Python objects for all of
    them on the first use of any: a listing whose files' statistics nobody reads (a dry run's plan, health's
    file counts) never converts the 100,000 files' bounds."""

    __slots__ = ("_columns", "_rows")

    def __init__(self, table: pa.Table) -> None:
        self._columns: pa.Table | None = table.select(["lk", "lv", "uk", "uv", "nk", "nv"])
        self._rows: list[tuple[dict[int, bytes], dict[int, bytes], dict[int, int]]] | None = None

    def row(self, i: int) -> tuple[dict[int, bytes], dict[int, bytes], dict[int, int]]:
        rows = self._rows
        if rows is None:
            columns = self._columns
            assert columns is not None
            lk, lv, uk, uv, nk, nv = (columns.column(c).to_pylist() for c in ("lk", "lv", "uk", "uv", "nk", "nv"))
            rows = [
                (
                    dict(zip(lk[j] or (), lv[j] or (), strict=True)),
                    dict(zip(uk[j] or (), uv[j] or (), strict=True)),
                    dict(zip(nk[j] or (), nv[j] or (), strict=True)),
                )
                for j in range(len(lk))
            ]
            self._rows, self._columns = rows, None
        return rows[i]


@dataclass(slots=True)
class _LiveFile:
    """A live data file of a manifest as DuckDB's Avro reader decoded it: the fields of pyiceberg's ``DataFile``
    that :meth:`IcebergAdapter._convert_files` reads, the partition in Iceberg's internal form."""

    file_path: str
    file_size_in_bytes: int
    record_count: int
    spec_id: int
    partition: tuple[Any, ...]
    bounds: _Bounds
    row: int
    """This file's row in ``bounds``."""

    @property
    def lower_bounds(self) -> dict[int, bytes]:
        return self.bounds.row(self.row)[0]

    @property
    def upper_bounds(self) -> dict[int, bytes]:
        return self.bounds.row(self.row)[1]

    @property
    def null_value_counts(self) -> dict[int, int]:
        return self.bounds.row(self.row)[2]


class _Undecodable(Exception):
    """A value DuckDB decoded that does not map back to Iceberg's internal form exactly: pyiceberg reads it."""


def _internal_int(v: Any) -> Any:
    if v is None or (isinstance(v, int) and not isinstance(v, bool)):
        return v
    raise _Undecodable(v)


def _internal_str(v: Any) -> Any:
    if v is None or isinstance(v, str):
        return v
    raise _Undecodable(v)


def _internal_bool(v: Any) -> Any:
    if v is None or isinstance(v, bool):
        return v
    raise _Undecodable(v)


def _internal_date(v: Any) -> Any:
    """Days since the epoch (what pyiceberg reads from Avro's ``date``; DuckDB gives a date)."""
    if isinstance(v, dt.date) and not isinstance(v, dt.datetime):
        return (v - _EPOCH_DAY).days
    return _internal_int(v)


def _partition_readers(table: Table, spec_ids: Collection[int]) -> dict[int, list[Callable[[Any], Any]]]:
    """Per partition spec, how each field's value DuckDB decodes maps back to Iceberg's internal form; specs with
    a field of another result type (timestamps, decimals, binary, UUIDs: DuckDB's logical types would have to be
    undone) are left out, and their manifests are read by pyiceberg."""
    from pyiceberg import types as it

    by_type: dict[type, Callable[[Any], Any]] = {
        it.IntegerType: _internal_int,
        it.LongType: _internal_int,
        it.StringType: _internal_str,
        it.BooleanType: _internal_bool,
        it.DateType: _internal_date,
    }
    schema, specs = table.schema(), table.specs()
    out: dict[int, list[Callable[[Any], Any]]] = {}
    for spec_id in spec_ids:
        spec = specs.get(spec_id)
        if spec is None:
            continue
        readers: list[Callable[[Any], Any] | None] = []
        for pf in spec.fields:
            try:
                readers.append(by_type.get(type(pf.transform.result_type(schema.find_type(pf.source_id)))))
            except ValueError:  # the source column was dropped since
                readers.append(None)
        if all(r is not None for r in readers):
            out[spec_id] = [r for r in readers if r is not None]
    return out


LOCAL_DECODE_ENTRIES = 10_000
"""Manifest entries on a local disk from which DuckDB decodes them (:func:`_decoded_data_files`): pyiceberg took
about 37 us an entry, DuckDB about 15 us after its 0.2-0.3 s start (100,000 entries of 1,000 manifests)."""


def _decoded_data_files(
    ctx: StorageContext, table: Table, manifests: Sequence[Any], chunk: int = 256, *, local: bool | None = None
) -> dict[str, list[_LiveFile]]:
    """The live data files of data manifests, by manifest (plain location), decoded by DuckDB's Avro reader
    (:class:`_AvroReads`, ``chunk`` files per statement). On the tests' S3 server a 100,000-file list took 12 s
    with pyiceberg's reads (8 threads, each decoding under the GIL) and 6.5 s with DuckDB's. A manifest is left
    out, for pyiceberg to read, where DuckDB could not read it, read another number of live entries than its
    manifest list records (or the list records none), or decoded a partition value that does not map back exactly
    (see :func:`_partition_readers`). What each manifest lists is kept for :meth:`IcebergAdapter.version_paths`,
    as pyiceberg's reads keep it.

    Manifests on a local disk are decoded too where they list :data:`LOCAL_DECODE_ENTRIES` entries or more
    (``local``: True always, for the tests that compare both readings; False never): DuckDB costs a fixed 0.2-0.3 s
    to start (its Avro extension loaded) and then decodes an entry in about a third of pyiceberg's time."""
    if local is None:
        entries = sum(
            int(m.added_files_count or 0) + int(m.existing_files_count or 0)
            for m in manifests
            if not StorageContext.is_s3(m.manifest_path)
        )
        local = entries >= LOCAL_DECODE_ENTRIES
    if not local:
        manifests = [m for m in manifests if StorageContext.is_s3(m.manifest_path)]
    counts: dict[str, int] = {}
    for m in manifests:
        added = m.added_files_count
        existing = m.existing_files_count
        if added is not None and existing is not None:
            counts[_plain_location(m.manifest_path)] = int(added) + int(existing)
    readers = _partition_readers(table, {m.partition_spec_id for m in manifests})
    todo: dict[int, list[str]] = {}  # spec -> manifests (as the list names them)
    for m in manifests:
        if m.partition_spec_id in readers and _plain_location(m.manifest_path) in counts:
            todo.setdefault(m.partition_spec_id, []).append(m.manifest_path)
    if not todo:
        return {}
    content = "data_file.content" if table.metadata.format_version >= 2 else "0"
    try:
        reads = _AvroReads(ctx).__enter__()
    except LakehouseError:  # DuckDB is the [sql] extra: without it pyiceberg reads them all
        return {}
    asked = {_plain_location(loc) for locations in todo.values() for loc in locations}
    live: dict[str, list[str]] = {}  # manifest -> the paths of its live entries (of any content)
    found: dict[str, list[_LiveFile]] = {}  # manifest -> its live data files
    bad: set[str] = set()
    plain = functools.lru_cache(maxsize=None)(_plain_location)
    with reads as avro, gc_paused():
        for spec_id, locations in todo.items():
            fields = readers[spec_id]
            part = "data_file.partition" if fields else "NULL"
            sql = (
                f"SELECT filename, {content} AS content, data_file.file_path AS path, "
                "data_file.file_size_in_bytes AS size, data_file.record_count AS n, "
                f"{part} AS part, map_keys(data_file.lower_bounds) AS lk, map_values(data_file.lower_bounds) AS lv, "
                "map_keys(data_file.upper_bounds) AS uk, map_values(data_file.upper_bounds) AS uv, "
                "map_keys(data_file.null_value_counts) AS nk, map_values(data_file.null_value_counts) AS nv "
                "FROM {files} WHERE status <> 2"
            )
            for start in range(0, len(locations), chunk):
                try:
                    tables = avro.tables(locations[start : start + chunk], sql)
                except (LakehouseError, OSError):  # a manifest not fetched: pyiceberg reads them (and says why)
                    return {}
                for table_, filenames in tables:
                    # column by column (a Python object per row costs more than DuckDB's decoding); the bounds
                    # stay in Arrow until a file's statistics are asked for
                    contents, paths, sizes, ns, parts = (
                        table_.column(c).to_pylist() for c in ("content", "path", "size", "n", "part")
                    )
                    bounds = _Bounds(table_)
                    for i, filename in enumerate(filenames):
                        manifest = plain(filename)
                        live.setdefault(manifest, []).append(paths[i])
                        if contents[i] != 0:  # not a data file (pyiceberg's reading leaves it out too)
                            continue
                        try:
                            values = list(parts[i].values()) if fields else []
                            if len(values) != len(fields):
                                raise _Undecodable(parts[i])
                            partition = tuple(read(v) for read, v in zip(fields, values, strict=True))
                        except (_Undecodable, AttributeError):
                            bad.add(manifest)
                            continue
                        found.setdefault(manifest, []).append(
                            _LiveFile(paths[i], sizes[i], ns[i], spec_id, partition, bounds, i)
                        )
    out: dict[str, list[_LiveFile]] = {}
    for manifest in asked - bad:
        paths = live.get(manifest, [])
        if len(paths) != counts[manifest]:  # DuckDB read another number of entries (or could not read it)
            continue
        if _manifest_paths.get(manifest) is None:
            _manifest_paths.put(manifest, frozenset(plain(p) for p in paths))
        out[manifest] = found.get(manifest, [])
    return out


def _manifest_paths_of(io: Any, isnap: Any, path: str) -> frozenset[str]:
    """The live data files of the manifest ``path`` of snapshot ``isnap`` (read again if no longer kept)."""
    if (kept := _manifest_paths.get(path)) is not None:
        return kept
    manifest = next(m for m in isnap.manifests(io) if _plain_location(m.manifest_path) == path)
    return _manifest_data_paths(io, [manifest])[path]


def _manifest_filter(table: Table, partitions: Expr) -> Callable[[Any], bool]:
    """Which manifests may hold files of a partition matching ``partitions`` (a predicate over partition field
    names and their values as :meth:`IcebergTable.files` reports them), by the manifests' partition summaries.

    A spec the predicate cannot be put to (a field it names is not in the spec, a value that does not convert to
    the field's stored type, such as an hour or a month transform's) keeps all of its manifests: pruning only
    ever skips what cannot match."""
    from pyiceberg.expressions.visitors import manifest_evaluator
    from pyiceberg.io.pyarrow import schema_to_pyarrow
    from pyiceberg.schema import Schema

    schema = table.schema()
    evaluators: dict[int, Callable[[Any], bool] | None] = {}
    for spec_id, spec in table.specs().items():
        evaluators[spec_id] = None
        if spec.is_unpartitioned() or not partitions.columns() <= {f.name for f in spec.fields}:
            continue
        try:
            arrow = schema_to_pyarrow(Schema(*spec.partition_type(schema).fields), include_field_ids=False)
            evaluators[spec_id] = manifest_evaluator(spec, schema, _to_iceberg(partitions, arrow))
        except Exception:  # noqa: BLE001 -- a value or type pyiceberg cannot bind: no pruning for this spec
            evaluators[spec_id] = None

    def keep(manifest: Any) -> bool:
        evaluate = evaluators.get(manifest.partition_spec_id)
        if evaluate is None:
            return True
        try:
            return bool(evaluate(manifest))
        except Exception:  # noqa: BLE001 -- a summary pyiceberg cannot read: keep the manifest
            return True

    return keep


def _plan_snapshot(
    table: Table,
    snapshot_id: int,
    keep_manifest: Callable[[Any], bool] | None = None,
    *,
    ctx: StorageContext | None = None,
) -> _Plan | None:
    """pyiceberg's scan tasks of a snapshot, with its equality delete files collected instead of refused (of
    the manifests ``keep_manifest`` keeps, when given). With ``ctx``, manifests on S3 are read with one GET each
    (see :class:`_GetOnly`)."""
    with gc_paused():
        return _plan_snapshot_files(table, snapshot_id, keep_manifest, ctx=ctx)


def _plan_snapshot_files(
    table: Table, snapshot_id: int, keep_manifest: Callable[[Any], bool] | None, *, ctx: StorageContext | None
) -> _Plan | None:
    scan = table.scan(snapshot_id=snapshot_id)
    snap = scan.snapshot()
    if snap is None:
        return None
    equality: list[Any] = []
    data: list[tuple[int, Any]] = []  # (data sequence number, file)

    def keep(entry: Any) -> bool:
        if entry.data_file.content == DataFileContent.EQUALITY_DELETES:
            equality.append(entry)
            return False
        if entry.data_file.content == DataFileContent.DATA:
            data.append((entry.sequence_number or 0, entry.data_file))
        return True

    manifests = snap.manifests(table.io)
    _manifest_lists.put(_plain_location(snap.manifest_list), tuple(_plain_location(m.manifest_path) for m in manifests))
    if keep_manifest is not None:
        manifests = [m for m in manifests if keep_manifest(m)]
    planner = scan._manifest_planner
    if ctx is not None:
        planner.io = _GetOnly(table.io, ObjectReader(ctx))
    tasks = tuple(planner.plan_files(manifests, manifest_entry_filter=keep))
    specs = table.specs()

    def applies(e: Any) -> bool:
        """An equality delete applies to data files of an older data sequence number, in its partition (or in
        every partition when its spec is unpartitioned); once every such file is rewritten it is dangling."""
        seq, f = e.sequence_number or 0, e.data_file
        glob = specs[f.spec_id].is_unpartitioned()
        return any(s < seq and (glob or (d.spec_id == f.spec_id and d.partition == f.partition)) for s, d in data)

    return _Plan(snapshot_id, tasks, tuple(e.data_file for e in equality if applies(e)))


class _DeleteManifestWriter:
    """pyiceberg 0.12 writes data manifests only; this writes a delete manifest (content ``deletes``) in the
    same format, to retire position delete files."""

    @staticmethod
    def create(ow: Any, spec: Any) -> Any:
        from pyiceberg.manifest import ManifestContent, ManifestWriterV2

        class Writer(ManifestWriterV2):
            def content(self) -> ManifestContent:
                return ManifestContent.DELETES

            @property
            def _meta(self) -> dict[str, str]:
                return {**super()._meta, "content": "deletes"}

        return Writer(spec, ow.schema(), ow.new_manifest_output(), ow.snapshot_id, ow._compression)


def _retire_delete_files(ow: Any, retired: Sequence[Any]) -> None:
    """Make the overwrite ``ow`` also remove the position delete files ``retired`` (they reference only data
    files it removes): the delete manifests holding them are rewritten with those entries marked deleted, and
    the snapshot summary counts them as removed."""
    from pyiceberg.manifest import ManifestContent

    gone = set(retired)
    existing, summary = ow._existing_manifests, ow._summary

    def existing_manifests() -> list[Any]:
        out = []
        for m in existing():
            if m.content != ManifestContent.DELETES:
                out.append(m)
                continue
            entries = m.fetch_manifest_entry(io=ow._io, discard_deleted=True)
            if not any(e.data_file in gone for e in entries):
                out.append(m)
                continue
            writer = _DeleteManifestWriter.create(ow, ow.spec(m.partition_spec_id))
            with writer:
                for e in entries:
                    (writer.delete if e.data_file in gone else writer.existing)(e)
            out.append(writer.to_manifest_file())
        return out

    def with_retired(*args: Any, **kwargs: Any) -> Any:
        ow._deleted_data_files.update(gone)  # counted as removed in the summary only
        try:
            return summary(*args, **kwargs)
        finally:
            ow._deleted_data_files.difference_update(gone)

    ow._existing_manifests = existing_manifests
    ow._summary = with_retired


def _added_in_their_specs(ow: Any) -> None:
    """Make the snapshot producer ``ow`` record each added data file in its own partition spec (``spec_id``).

    pyiceberg 0.12 writes every added file into one manifest of the table's current spec and summarises it in
    that spec, so a rewritten file of an older spec crashed the commit (or, with partition tuples of the same
    length, was recorded under the current spec's fields). Here the files of other specs get a manifest of
    their own spec each, and the summary reads every added file in its spec (else as pyiceberg's)."""
    from pyiceberg.manifest import ManifestEntry, ManifestEntryStatus
    from pyiceberg.table import TableProperties
    from pyiceberg.table.snapshots import SnapshotSummaryCollector, Summary, update_snapshot_summaries

    manifests = ow._manifests

    def per_spec() -> list[Any]:
        current = ow._transaction.table_metadata.default_spec_id
        added = list(ow._added_data_files)
        others: dict[int, list[Any]] = {}
        for f in added:
            if f.spec_id != current:
                others.setdefault(f.spec_id, []).append(f)
        if not others:
            return list(manifests())
        ow._added_data_files[:] = [f for f in added if f.spec_id == current]
        try:
            out = list(manifests())
        finally:
            ow._added_data_files[:] = added
        for spec_id, files in others.items():
            with ow.new_manifest_writer(ow.spec(spec_id)) as writer:
                for f in files:
                    writer.add(
                        ManifestEntry.from_args(
                            status=ManifestEntryStatus.ADDED,
                            snapshot_id=ow.snapshot_id,
                            sequence_number=None,
                            file_sequence_number=None,
                            data_file=f,
                        )
                    )
            out.append(writer.to_manifest_file())
        return out

    def summary(snapshot_properties: Mapping[str, str] | None = None) -> Any:
        meta = ow._transaction.table_metadata
        schema, specs = meta.schema(), meta.specs()
        limit = meta.properties.get(
            TableProperties.WRITE_PARTITION_SUMMARY_LIMIT, TableProperties.WRITE_PARTITION_SUMMARY_LIMIT_DEFAULT
        )
        collector = SnapshotSummaryCollector(partition_summary_limit=int(limit))
        for f in ow._added_data_files:
            collector.add_file(data_file=f, partition_spec=specs[f.spec_id], schema=schema)
        for f in ow._deleted_data_files:
            collector.remove_file(data_file=f, partition_spec=specs[f.spec_id], schema=schema)
        parent = meta.snapshot_by_id(ow._parent_snapshot_id) if ow._parent_snapshot_id is not None else None
        built = update_snapshot_summaries(
            summary=Summary(operation=ow._operation, **collector.build(), **(snapshot_properties or {})),
            previous_summary=parent.summary if parent is not None else None,
        )
        if getattr(ow, "_replace", False):  # a rewrite keeping every row (see _RewriteFiles._summary)
            return Summary(Operation.REPLACE, **built.additional_properties)
        return built

    ow._manifests = per_spec
    ow._summary = summary


def _position_deletes(task: Any) -> frozenset[str]:
    return frozenset(str(d.file_path) for d in task.delete_files if d.content == DataFileContent.POSITION_DELETES)


_FILE_PATH_ID = 2147483546  # the file_path column of position delete files (spec: reserved field id)


def _may_reference(delete_file: Any, paths: Collection[str]) -> bool:
    """Whether a position delete file may delete rows of a data file in ``paths`` (full URIs): by the bounds of
    its file_path column when it has them (truncated bounds stay bounds), else yes."""
    lower = (delete_file.lower_bounds or {}).get(_FILE_PATH_ID)
    upper = (delete_file.upper_bounds or {}).get(_FILE_PATH_ID)
    if lower is None or upper is None:
        return True
    lo, hi = bytes(lower).decode("utf-8", "replace"), bytes(upper).decode("utf-8", "replace")
    return any(lo <= p <= hi for p in paths)


class _Window:
    """Validation of a rewrite against the snapshots committed after it read its inputs (the spec's rule for a
    ``replace``): appends never conflict; a snapshot that removed an input, or added a delete file that may apply
    to one (a position delete whose file_path bounds may cover one, any equality delete), does. Each snapshot is
    looked at once, across attempts; appends are not read at all (by the spec they only add data files).
    When the snapshot the inputs were read at is no longer an ancestor of the head (expired, or a rollback), the
    inputs are checked against the head's whole plan instead."""

    def __init__(self, table: IcebergAdapter, since: int | None, inputs: Mapping[str, Any]) -> None:
        self.table = table
        self.since = since
        self.inputs = {str(t.file.file_path) for t in inputs.values()}
        self.plain = set(inputs)
        self.partitions = {(t.file.spec_id, repr(t.file.partition)) for t in inputs.values()}
        self.after: set[int] = set()
        """Snapshots committed after the inputs were read (their new manifests cannot hold an input)."""

    def fresh(self, manifest: Any) -> bool:
        """Whether ``manifest`` holds only files added after the inputs were read (so none of them)."""
        return (
            manifest.added_snapshot_id in self.after
            and manifest.existing_files_count == 0
            and manifest.deleted_files_count == 0
        )

    def check(self, head: Any) -> None:
        """Validate the snapshots from the last one checked up to ``head``; raise CommitConflictError."""
        if head is None or head.snapshot_id == self.since:
            return
        meta = self.table._table.metadata
        chain = []
        snap = head
        while snap is not None and snap.snapshot_id != self.since:
            chain.append(snap)
            snap = meta.snapshot_by_id(snap.parent_snapshot_id) if snap.parent_snapshot_id is not None else None
        if snap is None and self.since is not None:  # the read snapshot is no ancestor of the head any more
            self.table._live_inputs(self.plain, self.table._plan(head.snapshot_id))
        else:
            for s in reversed(chain):
                self._check_snapshot(s)
        self.after.update(s.snapshot_id for s in chain)
        self.since = head.snapshot_id

    def _check_snapshot(self, snap: Any) -> None:
        if snap.summary is not None and snap.summary.operation == Operation.APPEND:
            return
        name = self.table.name
        io = self.table._table.io
        specs = self.table._table.specs()
        for m in snap.manifests(io):
            if m.added_snapshot_id != snap.snapshot_id:
                continue
            # a data manifest that removed nothing (the other entries a rewrite kept), or a delete manifest that
            # added nothing, cannot conflict: not read
            if m.content == ManifestContent.DATA and m.deleted_files_count == 0:
                continue
            if m.content == ManifestContent.DELETES and m.added_files_count == 0:
                continue
            for e in m.fetch_manifest_entry(io, discard_deleted=False):
                f = e.data_file
                if m.content == ManifestContent.DATA:
                    if e.status == ManifestEntryStatus.DELETED and str(f.file_path) in self.inputs:
                        raise CommitConflictError(
                            f"an input file of this rewrite of {name} was removed by a concurrent commit "
                            f"(snapshot {snap.snapshot_id}); nothing was changed, plan again"
                        )
                    continue
                if e.status != ManifestEntryStatus.ADDED:
                    continue
                glob = specs[f.spec_id].is_unpartitioned() if f.spec_id in specs else True
                here = glob or (f.spec_id, repr(f.partition)) in self.partitions
                if f.content == DataFileContent.EQUALITY_DELETES or (here and _may_reference(f, self.inputs)):
                    raise CommitConflictError(
                        f"a concurrent commit (snapshot {snap.snapshot_id}) deleted rows that may be in input files "
                        f"of this rewrite of {name}; nothing was changed, plan again"
                    )


class _Unstaged(Transaction):
    """A transaction that never stages anything (a rewrite commits its snapshot by itself): its metadata is the
    table's. pyiceberg's copies the whole table metadata on every look, which rewriting many manifests makes
    dominate the cost of a commit."""

    @property
    def table_metadata(self) -> Any:
        return self._table.metadata


MERGE_BY_PARTITION_MAX = 200
"""A rewrite that rewrites manifests writes their remaining entries into one manifest per partition when they
span at most this many partitions (so the next rewrite of one partition reads only its own), else one per
partition spec."""


class _MergeManifests(_MergeAppendFiles):
    """An empty merge-append whose only effect is pyiceberg's manifest merge (per partition spec, into manifests up
    to ``commit.manifest.target-size-bytes``; live entries kept as existing with their sequence numbers), committed
    as the ``replace`` the spec names for a manifest rewrite: no data file is added or removed."""

    def __init__(self, transaction: Any, properties: Mapping[str, str]) -> None:
        super().__init__(
            operation=Operation.APPEND,
            transaction=transaction,
            io=transaction._table.io,
            snapshot_properties=dict(properties),
        )
        self._merge_enabled = True
        self._min_count_to_merge = 2

    def _summary(self, snapshot_properties: dict[str, str] = EMPTY_DICT) -> Summary:
        summary = super()._summary(snapshot_properties)
        return Summary(Operation.REPLACE, **summary.additional_properties)


class _RewriteFiles(_OverwriteFiles):
    """pyiceberg's overwrite producer made into a file rewrite that lands beside fast writers.

    - The snapshot is a ``replace`` when ``replace`` is set (compaction, Z-order, tiering moves keep the rows):
      pyiceberg 0.12 has no such operation, and its summary code refuses it, so the summary is built as an
      overwrite's (the same added/deleted files, records and sizes, and totals) and its operation switched.
    - The manifests holding inputs are read once (manifest files never change): an attempt after a lost race
      reads only manifests it has not seen, and none that holds only files added after the inputs were read
      (``fresh``), so rebasing costs about what an append does.
    - The other entries of those manifests are merged into one manifest per partition (or per spec), written once
      and kept across attempts, instead of each manifest being rewritten without the inputs: appends write one
      manifest per commit over every partition they touch, and rewriting them one by one, partition after
      partition, would cost a rewrite of every manifest per partition.
    - It is committed by :meth:`IcebergAdapter.replace_files`, which validates each attempt (:class:`_Window`);
      pyiceberg's own validation and retries are not used.
    """

    def __init__(self, transaction: Any, *, replace: bool, properties: Mapping[str, str]) -> None:
        super().__init__(
            operation=Operation.OVERWRITE,
            transaction=transaction,
            io=transaction._table.io,
            snapshot_properties=dict(properties),
        )
        self._replace = replace
        self.fresh: Callable[[Any], bool] = lambda manifest: False
        self._untouched: set[str] = set()
        """Manifests known to hold no input."""
        self._touched: dict[str, tuple[list[Any], list[Any]]] = {}
        """Manifest holding inputs -> (the inputs' entries, its other entries)."""
        self._merged: dict[frozenset[str], list[Any]] = {}
        """Manifests holding inputs -> the manifests written with their other entries."""
        self._used: set[str] = set()
        self._evaluators: dict[int, Callable[[Any], bool]] = {}
        self._head: tuple[int | None, list[Any], list[str]] = (None, [], [])

    def _summary(self, snapshot_properties: dict[str, str] = EMPTY_DICT) -> Summary:
        summary = super()._summary(snapshot_properties)
        if not self._replace:
            return summary
        return Summary(Operation.REPLACE, **summary.additional_properties)

    def _validate_concurrency(self) -> None:
        """Validated by the caller, attempt by attempt (:class:`_Window`)."""

    def _holds_inputs(self, manifest: Any) -> bool:
        path = manifest.manifest_path
        if path in self._touched:
            return True
        if path in self._untouched:
            return False
        spec_id = manifest.partition_spec_id
        if manifest.content == ManifestContent.DATA and spec_id not in self._evaluators:
            # the partitions of the inputs (set before the first manifest is looked at); they never change
            self._evaluators[spec_id] = self._build_manifest_evaluator(spec_id)
        if (
            manifest.content == ManifestContent.DATA
            and not self.fresh(manifest)
            and self._evaluators[spec_id](manifest)
        ):
            gone: list[Any] = []
            kept: list[Any] = []
            for e in manifest.fetch_manifest_entry(io=self._io, discard_deleted=True):
                is_input = e.data_file.content == DataFileContent.DATA and e.data_file in self._deleted_data_files
                (gone if is_input else kept).append(e)
            if gone:
                self._touched[path] = (gone, kept)
                return True
        self._untouched.add(path)
        return False

    def _split_head(self) -> tuple[list[Any], list[str]]:
        """(the head's manifests that hold no input, the paths of those that do)."""
        snap = self._transaction.table_metadata.snapshot_by_name(self._target_branch)
        head_id = snap.snapshot_id if snap is not None else None
        if self._head[0] != head_id or head_id is None:
            manifests = list(snap.manifests(io=self._io)) if snap is not None else []
            touched = [m.manifest_path for m in manifests if self._holds_inputs(m)]
            self._head = (head_id, [m for m in manifests if m.manifest_path not in touched], touched)
        return self._head[1], self._head[2]

    def _deleted_entries(self) -> list[Any]:
        _, touched = self._split_head()
        entries = [
            ManifestEntry.from_args(
                status=ManifestEntryStatus.DELETED,
                snapshot_id=self._snapshot_id,
                sequence_number=e.sequence_number,
                file_sequence_number=e.file_sequence_number,
                data_file=e.data_file,
            )
            for path in touched
            for e in self._touched[path][0]
        ]
        self._validate_required_deletes(entries)
        return entries

    def _existing_manifests(self) -> list[Any]:
        untouched, touched = self._split_head()
        key = frozenset(touched)
        if key not in self._merged:
            self._merged[key] = self._write_existing([e for path in touched for e in self._touched[path][1]])
        self._used = {m.manifest_path for m in self._merged[key]}
        return untouched + self._merged[key]

    def _write_existing(self, entries: list[Any]) -> list[Any]:
        """Manifests holding ``entries`` as existing entries: one per partition, or per spec."""
        by_partition = len({(e.data_file.spec_id, repr(e.data_file.partition)) for e in entries})
        groups: dict[Any, list[Any]] = {}
        for e in entries:
            f = e.data_file
            key = (f.spec_id, repr(f.partition)) if by_partition <= MERGE_BY_PARTITION_MAX else f.spec_id
            groups.setdefault(key, []).append(e)
        out = []
        for group in groups.values():
            with self.new_manifest_writer(self.spec(group[0].data_file.spec_id)) as writer:
                for e in group:
                    writer.add_entry(
                        ManifestEntry.from_args(
                            status=ManifestEntryStatus.EXISTING,
                            snapshot_id=e.snapshot_id,
                            sequence_number=e.sequence_number,
                            file_sequence_number=e.file_sequence_number,
                            data_file=e.data_file,
                        )
                    )
            out.append(writer.to_manifest_file())
        return out

    @property
    def _rewritten(self) -> set[str]:
        return {m.manifest_path for ms in self._merged.values() for m in ms}

    def _refresh_for_retry(self) -> None:
        super()._refresh_for_retry()
        # the manifests written with the other entries stay valid (same snapshot id): keep them for the next
        # attempt (pyiceberg would delete them as leftovers of the lost one)
        keep = self._rewritten
        self._uncommitted_manifests = [p for p in self._uncommitted_manifests if p not in keep]
        self._written_manifests = sorted(keep)

    def drop_unused(self) -> None:
        """After the commit: delete the manifests written for an earlier attempt that the committed snapshot does
        not use (the manifests holding inputs changed meanwhile)."""
        for path in self._rewritten - self._used:
            self._io.delete(path)


@dataclass(frozen=True)
class _FileDelete:
    """What deleting rows from one data file means: how many live rows go, and where a file keeping the others
    was written (None: the file stays as it is, or goes whole), with its footer and the (spec id, partition) of
    the file it replaces."""

    deleted: int
    written: str | None = None
    footer: tuple[Any, int] = (None, 0)
    partition: tuple[int | None, Any] = (None, None)
    rows: int = 0  # live rows of the input, where it was read


def _delete_still_valid(
    ow: Any, planned: set[str], applied: Mapping[str, frozenset[str]], may_hold: Callable[[Any], bool]
) -> None:
    """Commit-time validation of a row delete rebased onto commits made since it was planned: its inputs are
    still live with exactly the position deletes it applied, no equality delete appeared, and no data file added
    since (not in ``planned``) may hold a matching row by ``may_hold`` (it would keep rows the delete must
    remove). Raises pyiceberg's ValidationException otherwise: nothing is committed, and the delete is planned
    again on the newer snapshot."""
    window = ow._commit_window
    if window is None or window.is_empty() or window.head is None:
        return
    plan = _plan_snapshot(ow._transaction._table, window.head.snapshot_id)
    if plan is None:
        return
    live = {_plain_location(t.file.file_path): t for t in plan.tasks}
    if set(applied) - live.keys() or plan.equality:
        raise ValidationException("a concurrent commit removed input files of this delete, or added equality deletes")
    if any(_position_deletes(live[p]) != deletes for p, deletes in applied.items()):
        raise ValidationException("a concurrent commit deleted rows of input files of this delete")
    if any(may_hold(task.file) for path, task in live.items() if path not in planned):
        raise ValidationException("a concurrent commit added files that may hold rows this delete removes")


def _sql_str(v: str) -> str:
    return "'" + v.replace("'", "''") + "'"


def _normalise_type(t: pa.DataType) -> pa.DataType:
    if pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return pa.string()
    if pa.types.is_large_binary(t) or pa.types.is_binary_view(t):
        return pa.binary()
    if pa.types.is_timestamp(t) and t.tz is not None:
        return pa.timestamp("us", tz="UTC")
    return t


def _iceberg_type(t: pa.DataType) -> Any:
    """The Iceberg type of an Arrow type (via pyiceberg's own conversion)."""
    from pyiceberg.io.pyarrow import _ConvertToIcebergWithoutIDs, visit_pyarrow

    return visit_pyarrow(t, _ConvertToIcebergWithoutIDs())


def _partition_field(source: str, t: Transform[Any, Any]) -> PartitionField:
    """lakehouse's partition field of an Iceberg transform."""
    if isinstance(t, BucketTransform):
        return PartitionField(source, "bucket", int(t.num_buckets))
    if isinstance(t, TruncateTransform):
        return PartitionField(source, "truncate", int(t.width))
    for name, cls in _TRANSFORMS.items():
        if isinstance(t, cls):
            return PartitionField(source, name)  # type: ignore[arg-type]
    raise InvalidSchemaError(f"partition transform {t} is not supported by lakehouse yet")


def _transform_of(pf: PartitionField) -> Transform[Any, Any]:
    if pf.transform in WIDTH_TRANSFORMS:
        if pf.width is None:
            raise InvalidSchemaError(f"{pf.transform}({pf.column}) needs a width")
        return BucketTransform(pf.width) if pf.transform == "bucket" else TruncateTransform(pf.width)
    return _TRANSFORMS[pf.transform]()  # type: ignore[call-arg]


_FIELD_ID = b"PARQUET:field_id"


def _field_id(f: pa.Field) -> int | None:
    raw = (f.metadata or {}).get(_FIELD_ID)
    return int(raw) if raw is not None else None


def _parquet_schema(io: Any, path: str) -> pa.Schema:
    import pyarrow.parquet as pq

    def read() -> pa.Schema:
        with io.new_input(path).open() as fh:
            return pq.read_schema(fh)

    try:
        return cached_schema(path, read)
    except (OSError, pa.ArrowException) as e:
        raise StorageError(f"cannot read the footer of {path}: {e}") from e


def _mapped_names(mapping: Any, field_id: int) -> list[str]:
    """The names a table's name mapping (``schema.name-mapping.default``) gives a top-level field id."""
    if mapping is None:
        return []
    for mapped in mapping:
        if mapped.field_id == field_id:
            return list(mapped.names)
    return []


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _duck_path(path: str) -> str:
    """A path as DuckDB reads it (and reports it in ``filename``)."""
    plain = _plain_location(path)
    return plain


def _python_value(value: Any, t: Any) -> Any:
    """An identity partition value (Iceberg's internal form: days, microseconds) as a Python value."""
    from pyiceberg import types as it

    if value is None or not isinstance(value, int) or isinstance(value, bool):
        return value
    if isinstance(t, it.DateType):
        return dt.date(1970, 1, 1) + dt.timedelta(days=value)
    if isinstance(t, it.TimestamptzType):
        return dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=value)
    if isinstance(t, it.TimestampType):
        return dt.datetime(1970, 1, 1) + dt.timedelta(microseconds=value)
    if isinstance(t, it.TimeType):
        return (dt.datetime(1970, 1, 1) + dt.timedelta(microseconds=value)).time()
    return value


def _sql_literal(value: Any, t: Any) -> str:
    """A SQL literal of an identity partition value (cast to the column's type by the caller)."""
    value = _python_value(value, t)
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, bytes):
        return f"from_hex({_sql_str(value.hex())})"
    if isinstance(value, dt.date | dt.datetime | dt.time):
        return _sql_str(value.isoformat())
    return _sql_str(str(value))


_METADATA_RE = re.compile(r"(?:^|/)(?:v)?(\d+)(?:-[^/]*)?\.metadata\.json$")


def _metadata_files(location: str, ctx: StorageContext) -> list[str]:
    """Metadata JSON files of a table location, oldest first."""
    base = _plain_location(location).rstrip("/")
    found = []
    for info in list_files(f"{base}/metadata", ctx, recursive=False):
        m = _METADATA_RE.search(info.path)
        if m:
            found.append((int(m.group(1)), info.mtime_s or 0.0, info.path))
    return [p for _, _, p in sorted(found)]


def _to_iceberg(e: Expr, schema: pa.Schema, negate: bool = False) -> ice.BooleanExpression:
    """Render a filter for pyiceberg with NOT pushed down to the leaves (De Morgan holds in three-valued
    logic), so that an unknown leaf (a comparison with NULL) stays unknown instead of being negated."""

    def value(column: str, v: Any) -> Any:
        return coerce(v, schema.field(column).type, column)

    if isinstance(e, Not):
        return _to_iceberg(e.item, schema, not negate)
    if isinstance(e, And | Or):
        parts = [_to_iceberg(i, schema, negate) for i in e.items]
        use_and = isinstance(e, And) != negate
        return ice.And(*parts) if use_and else ice.Or(*parts)
    if isinstance(e, Compare):
        if e.value is None:
            return ice.AlwaysFalse()  # unknown, negated or not
        op = _NEGATED[e.op] if negate else e.op
        if pa.types.is_floating(schema.field(e.column).type):
            return _float_compare(e.column, op, value(e.column, e.value))
        return _COMPARE[op](e.column, value(e.column, e.value))
    if isinstance(e, In):
        negated = e.negated != negate
        values = {value(e.column, v) for v in e.values if v is not None}
        if negated and any(v is None for v in e.values):
            return ice.AlwaysFalse()  # x NOT IN (..., NULL) is never true
        if any(isinstance(v, float) and math.isnan(v) for v in values):  # no literal of NaN: IsNaN / NotNaN
            rest = {v for v in values if not (isinstance(v, float) and math.isnan(v))}
            if negated:
                kept = ice.And(ice.NotNull(e.column), ice.NotNaN(e.column))  # type: ignore[call-arg,arg-type]
                return ice.And(kept, ice.NotIn(e.column, rest)) if rest else kept  # type: ignore[call-arg,arg-type]
            nan = ice.IsNaN(e.column)  # type: ignore[call-arg,arg-type]
            return ice.Or(nan, ice.In(e.column, rest)) if rest else nan  # type: ignore[call-arg,arg-type]
        if not values:
            return ice.NotNull(e.column) if negated else ice.AlwaysFalse()  # type: ignore[call-arg,arg-type]
        return ice.NotIn(e.column, values) if negated else ice.In(e.column, values)  # type: ignore[call-arg,arg-type]
    if isinstance(e, IsNull):
        negated = e.negated != negate
        return ice.NotNull(e.column) if negated else ice.IsNull(e.column)  # type: ignore[call-arg,arg-type]
    raise LakehouseError(f"unsupported filter node {e!r}")


_NEGATED = {"=": "!=", "!=": "=", "<": ">=", "<=": ">", ">": "<=", ">=": "<"}
_COMPARE: dict[str, Any] = {
    "=": ice.EqualTo,
    "!=": ice.NotEqualTo,
    "<": ice.LessThan,
    "<=": ice.LessThanOrEqual,
    ">": ice.GreaterThan,
    ">=": ice.GreaterThanOrEqual,
}


def _float_compare(column: str, op: str, v: float) -> ice.BooleanExpression:
    """A float comparison in SQL's order (NaN equals NaN, above every number; :func:`lakehouse.expr.to_arrow`),
    which pyiceberg (IEEE, and no NaN literal) renders with IsNaN / NotNaN."""
    nan, not_nan = ice.IsNaN(column), ice.NotNaN(column)  # type: ignore[call-arg,arg-type]
    present = ice.And(ice.NotNull(column), not_nan)  # type: ignore[call-arg,arg-type]
    if math.isnan(v):
        return {
            "=": nan,
            ">=": nan,
            "!=": present,
            "<": present,
            "<=": ice.NotNull(column),  # type: ignore[call-arg,arg-type]
            ">": ice.AlwaysFalse(),
        }[op]
    compared = _COMPARE[op](column, v)
    return ice.Or(compared, nan) if op in (">", ">=") else compared


# ---- the Iceberg REST catalog lakehouse serves (lakehouse/served/iceberg_rest.py) -----------------------------------
# Requests and answers are the spec's JSON, parsed and written with pyiceberg's own models (the ones its
# RestCatalog client sends), and applied by the same SQL catalog our jobs commit through: a client's commit passes
# the same compare-and-swap on the catalog row as a compaction's.


class _Named:
    """What pyiceberg's SQL catalog reads of a table it is asked to commit: its identifier."""

    def __init__(self, identifier: tuple[str, str]) -> None:
        self._identifier = identifier

    def name(self) -> tuple[str, str]:
        return self._identifier


def _rest_json(model: Any) -> dict[str, Any]:
    import json

    return dict(json.loads(model.model_dump_json(by_alias=True, exclude_none=True)))


_REST_OPTIONAL: dict[str, dict[str, Any]] = {
    # fields pyiceberg's models declare as required-but-nullable, which the spec makes optional (and clients omit)
    "CreateTableRequest": {"location": None, "partition-spec": None, "write-order": None},
    "RegisterTableRequest": {"overwrite": False},
}


def _parse_rest(model: Any, body: bytes, what: str, defaults: Mapping[str, Any] | None = None) -> Any:
    import json

    from pydantic import ValidationError as PydanticValidationError

    try:
        value = json.loads(body)
        if not isinstance(value, dict):
            raise ValueError("the body must be a JSON object")
        return model.model_validate({**_REST_OPTIONAL.get(model.__name__, {}), **(defaults or {}), **value})
    # pyiceberg's validators raise their own ValidationError (a decimal of precision 99), or meet a value of the
    # wrong shape with a TypeError or an AttributeError ("updates": "x" where a map belongs)
    except (PydanticValidationError, ValueError, TypeError, AttributeError, IcebergValidationError) as e:
        first = str(e).strip().splitlines()
        raise InvalidInputError(f"not a valid {what}: {' '.join(first[:3])[:500]}") from e


def _parse_commit(model: Any, body: bytes, name: TableName) -> Any:
    """A commit-table request for the table of the path (its identifier is optional, and must name that table)."""
    req = _parse_rest(
        model, body, "commit-table request", {"identifier": {"namespace": [name.namespace], "name": name.table}}
    )
    named = (*req.identifier.namespace.root, req.identifier.name)
    if named != (name.namespace, name.table):
        raise InvalidInputError(f"the commit names table {'.'.join(named)}, the path {name}")
    return req


def rest_namespaces(ctx: StorageContext) -> list[str]:
    """Every namespace of the SQL catalog (each holds Iceberg tables or was created empty)."""
    return sorted(Catalog.namespace_to_string(ns) for ns in catalog_for(ctx).list_namespaces())


def rest_namespace_properties(ctx: StorageContext, namespace: str) -> dict[str, str]:
    from pyiceberg.exceptions import NoSuchNamespaceError

    try:
        props = dict(catalog_for(ctx).load_namespace_properties(namespace))
    except NoSuchNamespaceError as e:
        raise NamespaceNotFoundError(f"no namespace {namespace}") from e
    if props.get("exists") == "true":  # pyiceberg's SQL catalog marks a namespace without properties so
        del props["exists"]
    return props


def rest_create_namespace(ctx: StorageContext, namespace: str, properties: Mapping[str, str]) -> None:
    try:
        catalog_for(ctx).create_namespace(namespace, dict(properties))
    except NamespaceAlreadyExistsError as e:
        raise TableExistsError(f"namespace {namespace} already exists") from e


def rest_update_namespace(
    ctx: StorageContext, namespace: str, removals: Collection[str], updates: Mapping[str, str]
) -> dict[str, list[str]]:
    from pyiceberg.exceptions import NoSuchNamespaceError

    try:
        summary = catalog_for(ctx).update_namespace_properties(namespace, set(removals), dict(updates))
    except NoSuchNamespaceError as e:
        raise NamespaceNotFoundError(f"no namespace {namespace}") from e
    except ValueError as e:
        raise InvalidInputError(str(e)) from e
    return {"removed": list(summary.removed), "updated": list(summary.updated), "missing": list(summary.missing)}


def rest_drop_namespace(ctx: StorageContext, namespace: str) -> None:
    from pyiceberg.exceptions import NamespaceNotEmptyError as IceNamespaceNotEmpty
    from pyiceberg.exceptions import NoSuchNamespaceError

    try:
        catalog_for(ctx).drop_namespace(namespace)
    except NoSuchNamespaceError as e:
        raise NamespaceNotFoundError(f"no namespace {namespace}") from e
    except IceNamespaceNotEmpty as e:
        raise NamespaceNotEmptyError(f"namespace {namespace} still has tables") from e


def rest_create_request(body: bytes) -> tuple[str, str | None, bool, dict[str, str]]:
    """(table name, location or None, stage-create, path properties) of a create-table request, checked to
    parse; the path properties are those that tell writers where to put files (see :func:`rest_path_properties`)."""
    from pyiceberg.catalog.rest import CreateTableRequest

    req = _parse_rest(CreateTableRequest, body, "create-table request")
    if not req.table_schema.fields:  # pyiceberg takes {} for a schema
        raise InvalidInputError(f"the create-table request of {req.name} gives a schema without columns")
    ids = _field_ids(req.table_schema.fields)
    if len(ids) != len(set(ids)):  # pyiceberg took it, then loaded the table with an empty schema
        twice = sorted({i for i in ids if ids.count(i) > 1})
        raise InvalidInputError(f"the create-table request of {req.name} gives field id(s) {twice} twice")
    return req.name, req.location, bool(req.stage_create), rest_path_properties(req.properties)


def _field_ids(fields: Iterable[Any]) -> list[int]:
    """Every field id of a schema's fields, nested ones (struct fields, list elements, map keys and values) too."""
    from pyiceberg.types import ListType, MapType, StructType

    out: list[int] = []
    for f in fields:
        out.append(f.field_id)
        t = f.field_type
        if isinstance(t, StructType):
            out += _field_ids(t.fields)
        elif isinstance(t, ListType):
            out += _field_ids([t.element_field])
        elif isinstance(t, MapType):
            out += _field_ids([t.key_field, t.value_field])
    return out


def rest_path_properties(properties: Mapping[str, str]) -> dict[str, str]:
    """The table properties that name a location (Iceberg's ``write.data.path``, ``write.metadata.path``,
    ``write.object-storage.path``...: every key ending in ``.path``): writers, the catalog's own included, put
    files there instead of under the table location."""
    return {k: v for k, v in properties.items() if k.endswith(".path")}


def _rest_paths(req: Any) -> tuple[list[str], dict[str, str]]:
    """Where a commit request would move a table or have readers open files: its ``set-location`` values, and
    (by what they are) the path properties its ``set-properties`` updates set, each added snapshot's manifest
    list and statistics files (a manifest list naming ``/etc/passwd`` made every later read open it)."""
    from pyiceberg.table.update import (
        AddSnapshotUpdate,
        SetLocationUpdate,
        SetPartitionStatisticsUpdate,
        SetPropertiesUpdate,
        SetStatisticsUpdate,
    )

    locations = [u.location for u in req.updates if isinstance(u, SetLocationUpdate)]
    props: dict[str, str] = {}
    for u in req.updates:
        if isinstance(u, SetPropertiesUpdate):
            props.update(rest_path_properties(u.updates))
        elif isinstance(u, SetStatisticsUpdate):
            props[f"statistics file of snapshot {u.statistics.snapshot_id}"] = str(u.statistics.statistics_path)
        elif isinstance(u, SetPartitionStatisticsUpdate):
            stats = u.partition_statistics
            props[f"partition statistics file of snapshot {stats.snapshot_id}"] = str(stats.statistics_path)
        elif isinstance(u, AddSnapshotUpdate):
            props[f"manifest list of snapshot {u.snapshot.snapshot_id}"] = str(u.snapshot.manifest_list)
    return locations, props


def _snapshot_files(req: Any, io: FileIO) -> dict[str, str]:
    """The manifests each snapshot a commit request adds brings, and their data and delete files, by what they
    are (read from its manifest list, which :func:`_rest_paths` has had checked first)."""
    from pyiceberg.table.update import AddSnapshotUpdate

    out: dict[str, str] = {}
    for u in req.updates:
        if not isinstance(u, AddSnapshotUpdate):
            continue
        snap = u.snapshot
        try:
            manifests = snap.manifests(io)
        except Exception as e:  # committed, it would leave the table unreadable
            raise InvalidInputError(
                f"snapshot {snap.snapshot_id}'s manifest list {snap.manifest_list} cannot be read: {e}"
            ) from e
        for m in manifests:
            if m.added_snapshot_id != snap.snapshot_id:
                continue  # carried over from the table's earlier snapshots
            out[f"manifest {m.manifest_path} of snapshot {snap.snapshot_id}"] = str(m.manifest_path)
            try:
                entries = m.fetch_manifest_entry(io, discard_deleted=True)
            except Exception as e:
                raise InvalidInputError(
                    f"manifest {m.manifest_path} of snapshot {snap.snapshot_id} cannot be read: {e}"
                ) from e
            for entry in entries:
                path = str(entry.data_file.file_path)
                out[f"file {path} of snapshot {snap.snapshot_id}"] = path
    return out


RestPathGuard = Callable[[list[str], dict[str, str]], None]
"""Checks a commit's ``set-location`` values and path properties before it is applied (raises to refuse)."""


def rest_register_request(body: bytes) -> tuple[str, str]:
    """(table name, metadata location) of a register-table request."""
    from pyiceberg.catalog.rest import RegisterTableRequest

    req = _parse_rest(RegisterTableRequest, body, "register-table request")
    return req.name, req.metadata_location


def rest_metadata_table_location(metadata_location: str) -> str:
    """The table location a metadata file belongs to (``<table>/metadata/<file>.metadata.json``)."""
    plain = _plain_location(metadata_location)
    parent, _, _ = plain.rpartition("/")
    table_location, _, folder = parent.rpartition("/")
    if folder != "metadata" or not plain.endswith(".metadata.json"):
        raise InvalidInputError(
            f"{metadata_location} is not a table metadata file (<table>/metadata/<name>.metadata.json)"
        )
    return table_location


def rest_stage_create(name: TableName, body: bytes, *, location: str, ctx: StorageContext) -> dict[str, Any]:
    """The metadata a staged create would commit (nothing is written; the client commits it with
    ``assert-create``, see :meth:`IcebergAdapter.rest_commit_create`)."""
    from pyiceberg.catalog.rest import CreateTableRequest
    from pyiceberg.partitioning import UNPARTITIONED_PARTITION_SPEC
    from pyiceberg.table.sorting import UNSORTED_SORT_ORDER

    req = _parse_rest(CreateTableRequest, body, "create-table request")
    catalog = catalog_for(ctx)
    assert isinstance(catalog, SqlCatalog)
    try:
        staged = catalog._create_staged_table(
            identifier=(name.namespace, name.table),
            schema=req.table_schema,
            location=_location_uri(location),
            partition_spec=req.partition_spec or UNPARTITIONED_PARTITION_SPEC,
            sort_order=req.write_order or UNSORTED_SORT_ORDER,
            properties={**DEFAULT_PROPERTIES, **req.properties},
        )
    except (ValueError, TypeError, IcebergValidationError) as e:
        raise InvalidSchemaError(f"cannot create Iceberg table {name}: {e}") from e
    return _table_response(staged.metadata, None)


def _holds(t: Any, kind: type) -> bool:
    """Whether the Iceberg type ``t`` is, or holds at any depth, a type of ``kind``."""
    from pyiceberg.types import ListType, MapType, StructType

    if isinstance(t, kind):
        return True
    if isinstance(t, StructType):
        return any(_holds(f.field_type, kind) for f in t.fields)
    if isinstance(t, ListType):
        return _holds(t.element_type, kind)
    if isinstance(t, MapType):
        return _holds(t.key_type, kind) or _holds(t.value_type, kind)
    return False


def _partition_names(specs: Mapping[int, Any], default_spec_id: int, schema: Any) -> dict[int, list[str]]:
    """Per spec, the name each partition field is reported under. A name that several specs give to different
    fields (``s_t`` for ``truncate[4](s)`` in spec 0 and ``truncate[8](s)`` in spec 2) would make partitions of
    two partitionings one: where the current spec has the name, its field keeps it and the others are named with
    their transform and source (``s_t (truncate[4](s))``); where it has not, all of them are."""
    key = (default_spec_id, schema.schema_id, tuple((i, _spec_signature(spec)) for i, spec in sorted(specs.items())))
    held = _names_cache.get(key)
    if held is not None:
        return held
    fields: dict[str, set[tuple[int, str]]] = {}
    for spec in specs.values():
        for pf in spec.fields:
            fields.setdefault(pf.name, set()).add((pf.source_id, str(pf.transform)))
    current = {pf.name: (pf.source_id, str(pf.transform)) for pf in specs[default_spec_id].fields}

    def source(pf: Any) -> str:
        try:
            return str(schema.find_column_name(pf.source_id))
        except ValueError:
            return str(pf.source_id)

    names = {
        spec_id: [
            pf.name
            if len(fields[pf.name]) == 1 or current.get(pf.name) == (pf.source_id, str(pf.transform))
            else f"{pf.name} ({pf.transform}({source(pf)}))"
            for pf in spec.fields
        ]
        for spec_id, spec in specs.items()
    }
    if len(_names_cache) > 256:
        _names_cache.clear()
    _names_cache[key] = names
    return names


def _spec_signature(spec: Any) -> tuple[tuple[str, int, str], ...]:
    return tuple((pf.name, pf.source_id, str(pf.transform)) for pf in spec.fields)


_names_cache: dict[Any, dict[int, list[str]]] = {}


def _same_partition(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Whether two partitions (as :meth:`IcebergAdapter.files` reports them) are one: equal values, where a float's
    sign counts (0.0 and -0.0 are two partitions) and a NaN is itself."""

    def same(x: Any, y: Any) -> bool:
        if isinstance(x, float) and isinstance(y, float):
            return (x == y and math.copysign(1.0, x) == math.copysign(1.0, y)) or (x != x and y != y)
        return bool(x == y)

    return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)


def _table_response(metadata: TableMetadata, location: str | None) -> dict[str, Any]:
    """The spec's LoadTableResult."""
    answer: dict[str, Any] = {"metadata": _rest_json(metadata), "config": {}}
    if location is not None:
        answer["metadata-location"] = location
    return answer
