"""The library entry point the CLI and the API share: settings -> storage, catalog, tables, SQL.

>>> from lakehouse.config import load_settings
>>> import tempfile
>>> lh = Lakehouse(load_settings(config_file=False, warehouse=tempfile.mkdtemp()))
>>> lh.list_tables()
[]
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Mapping, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from lakehouse.catalog import AuditRecord, CatalogStore, JobRecord, TableRecord
from lakehouse.config import Settings
from lakehouse.credentials import S3Credentials
from lakehouse.errors import (
    CommitConflictError,
    InvalidInputError,
    LakehouseError,
    TableExistsError,
    TableNotFoundError,
    UnsupportedOperationError,
    error_text,
)
from lakehouse.policy import TablePolicy, build_policy, merge, resolve_unsets
from lakehouse.schema import PartitionField, check_storable, parse_partitioning
from lakehouse.sql import QueryResult, SqlEngine
from lakehouse.storage import create_bucket, delete_tree, ensure_warehouse, list_files
from lakehouse.tables.base import (
    AsOf,
    CommitResult,
    LakehouseTable,
    StorageContext,
    TableDefinition,
    TableName,
)
from lakehouse.tables.registry import adapter_class, detect_format, loaded_formats

if TYPE_CHECKING:
    from lakehouse.engines.spark import SparkEngine
    from lakehouse.sql.worker import IsolatedEngine


class Lakehouse:
    """One warehouse with its catalog."""

    def __init__(self, settings: Settings, *, actor: str = "cli") -> None:
        self.settings = settings
        self.actor = actor
        credentials = S3Credentials.from_settings(settings.s3) if settings.is_s3 else None
        self.ctx = StorageContext(
            warehouse=settings.warehouse_uri,
            catalog_url=settings.resolved_catalog_url,
            catalog_name=settings.catalog_name,
            credentials=credentials,
            stores=tuple((s.prefix, S3Credentials.from_settings(s)) for s in settings.stores.values()),
        )
        self._shared: dict[str, Any] = {}
        """Engines shared with the copies :meth:`as_actor` makes (created on first use by any of them)."""
        import threading

        self._shared_lock = threading.Lock()

    @property
    def isolated_sql(self) -> IsolatedEngine:
        """The engine of isolated queries (worker processes; see :mod:`lakehouse.sql.worker`), shared with
        every :meth:`as_actor` copy."""
        with self._shared_lock:
            engine = self._shared.get("isolated")
            if engine is None:
                from lakehouse.governance.ops import mask_secret
                from lakehouse.sql.worker import IsolatedEngine

                engine = self._shared["isolated"] = IsolatedEngine(
                    self.ctx, self.settings.query, mask_secret=mask_secret(self)
                )
            return engine

    @cached_property
    def catalog(self) -> CatalogStore:
        if not self.settings.is_s3:
            ensure_warehouse(self.ctx)
        from lakehouse.units import parse_duration

        store = CatalogStore(
            self.ctx.catalog_url, lease_ttl=parse_duration(self.settings.autopilot.lease_ttl).total_seconds()
        )
        store.on_job = self._job_lineage
        return store

    def _job_lineage(self, event_type: str, job_id: int, kind: str, table: str | None, metrics: Any) -> None:
        """Every job of the history is an OpenLineage run (START, then COMPLETE or FAIL)."""
        from lakehouse.governance.lineage import emit, job_event

        emit(self, job_event(self, event_type=event_type, job_id=job_id, kind=kind, table=table, metrics=metrics))

    @cached_property
    def sql(self) -> SqlEngine:
        return SqlEngine(self.ctx, self.settings.query)

    @cached_property
    def _spark(self) -> SparkEngine:
        from lakehouse.engines import open_spark

        return open_spark(self.settings, self.ctx)

    def spark(self) -> SparkEngine:
        """The Spark engine of this lakehouse (``settings.spark``); its session starts on first use and lives as
        long as the process (a JVM)."""
        return self._spark

    def close(self) -> None:
        if "sql" in self.__dict__:
            self.sql.close()
        with self._shared_lock:
            isolated = self._shared.pop("isolated", None)
        if isolated is not None:
            isolated.close()
        with self._shared_lock:
            contexts = [self.ctx, *self._shared.pop("contexts", set())]
        for fmt in loaded_formats():
            for ctx in contexts:
                adapter_class(fmt).release(ctx)
        if "catalog" in self.__dict__:
            self.catalog.dispose()

    def as_actor(self, actor: str) -> Lakehouse:
        """The same lakehouse (shared catalog and SQL engine) acting for someone else; do not close it."""
        import copy

        other = copy.copy(self)
        other.actor = actor
        return other

    def __enter__(self) -> Lakehouse:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        try:
            if exc_type is not None and not issubclass(exc_type, Exception) and "catalog" in self.__dict__:
                # stopped (Ctrl-C, SIGTERM as SystemExit): no job of this process is left 'running'
                self.catalog.interrupt_running(exc_type.__name__)
        finally:
            self.close()

    # ---- warehouse -----------------------------------------------------------------------------------

    def init(self, *, create_bucket_if_missing: bool = False) -> dict[str, Any]:
        """Create the warehouse (directory, or check/create the bucket) and the catalog database."""
        created_bucket = False
        if self.settings.is_s3 and create_bucket_if_missing:
            created_bucket = create_bucket(self.ctx)
        ensure_warehouse(self.ctx)
        _ = self.catalog
        return {
            "warehouse": self.ctx.warehouse,
            "catalog_url": _redact(self.ctx.catalog_url),
            "created_bucket": created_bucket,
        }

    # ---- tables --------------------------------------------------------------------------------------

    def create_table(
        self,
        name: str | TableName,
        *,
        schema: pa.Schema,
        format: str | None = None,
        partitioning: Sequence[PartitionField] = (),
        keys: Sequence[str] = (),
        properties: Mapping[str, str] | None = None,
        location: str | None = None,
    ) -> LakehouseTable:
        """Create a table in its format and register it in the catalog."""
        fmt = format or self.settings.default_format
        cls = adapter_class(fmt)
        tname, loc = self.prepare_create(name, location)
        definition = TableDefinition(
            schema=schema,
            partitioning=tuple(partitioning),
            keys=tuple(keys),
            properties=dict(properties or {}),
        )
        check_definition(definition)  # nothing is written for a definition the catalog could not store
        try:
            table = cls.create(tname, definition, location=loc, ctx=self.ctx)
            table.commit_timeout = self.settings.commit_timeout_seconds
        except LakehouseError:
            raise
        except Exception as e:  # an SDK refusing a type or feature the adapter did not translate
            # the location was empty and the name free: whatever is there now is this create's own
            cls.forget(tname, ctx=self.ctx)
            if list_files(loc, self.ctx):
                delete_tree(loc, self.ctx)
            detail = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise UnsupportedOperationError(f"cannot create {fmt} table {tname}: {detail}") from e
        try:
            # the row and its audit entry in one transaction, checked to read back
            self.catalog.add_table(
                tname,
                fmt,
                loc,
                table.definition,
                audit=("table.create", self.actor, {"format": fmt, "location": loc}),
            )
        except BaseException:
            # never leave a table the catalog does not list; the location was empty before, so everything
            # under it is this create's own
            table.drop(purge=True)
            raise
        return table

    def create_table_native(
        self, name: str | TableName, *, format: str, spec: bytes, location: str | None = None
    ) -> LakehouseTable:
        """Create a table from its format's own table description (an Iceberg REST create-table request for
        Iceberg: the served catalog's create) and register it, with the same checks and clean-up as
        :meth:`create_table`."""
        cls = adapter_class(format)
        tname, loc = self.prepare_create(name, location)
        table = cls.create_native(tname, spec, location=loc, ctx=self.ctx)
        table.commit_timeout = self.settings.commit_timeout_seconds
        return self._add_created(table, format, loc, "table.create")

    def prepare_create(
        self, name: str | TableName, location: str | None, *, written: bool = False
    ) -> tuple[TableName, str]:
        """A new table's checked name and location: a free name in lakehouse's own catalog, and an empty location
        that overlaps no other table (the warehouse checked first on S3). ``written``: the commit of a staged
        create, whose client has written its first data and manifests there already (the location was empty
        when it was staged): it may hold files, but no table's metadata (an Iceberg metadata file, a Delta log)."""
        tname = _own(TableName.parse(name), "created")
        try:
            self.catalog.get_table(tname)
        except LookupError:
            pass
        else:
            raise TableExistsError(f"table {tname} already exists", hint="pick another name or drop it first")
        if self.settings.is_s3:
            ensure_warehouse(self.ctx)
        if location:
            loc = _normalise_location(location)
            self._check_location_free(loc, written=written)
            return tname, loc
        loc = self.ctx.default_location(tname)
        try:
            self._check_location_free(loc)
        except TableExistsError:
            # the name's usual place is taken: a table renamed from this name keeps its files there, or one was
            # dropped without its files; a new table of the name goes beside it (never into it)
            loc = f"{loc}-{uuid.uuid4().hex[:8]}"
            self._check_location_free(loc)
        return tname, loc

    def adopt_created(self, table: LakehouseTable, *, format: str) -> LakehouseTable:
        """Register a table its format's catalog created by itself (an Iceberg REST client's staged create,
        committed): the same catalog row and audit entry as :meth:`create_table`."""
        table.commit_timeout = self.settings.commit_timeout_seconds
        return self._add_created(table, format, table.location, "table.create")

    def _add_created(self, table: LakehouseTable, fmt: str, loc: str, action: str) -> LakehouseTable:
        try:
            self.catalog.add_table(
                table.name, fmt, loc, table.definition, audit=(action, self.actor, {"format": fmt, "location": loc})
            )
        except BaseException:
            table.drop(purge=True)  # the location was empty before: everything under it is this create's own
            raise
        return table

    def _check_location_free(self, location: str, *, written: bool = False) -> None:
        """A new table needs an empty location that neither holds, nor lies inside, another table or the
        warehouse root (so that a failed create or a purge can only ever delete its own files); ``written``: see
        :meth:`prepare_create`."""
        loc = location.rstrip("/")
        root = self.ctx.warehouse.rstrip("/")
        if loc == root or root.startswith(loc + "/"):
            raise InvalidInputError(f"location {location} is the warehouse root or above it; give a sub-directory")
        self._check_apart(location)
        held = list_files(loc, self.ctx)
        if written:
            held = [f for f in held if f.path.endswith(".metadata.json") or "/_delta_log/" in f.path]
        if held:
            raise TableExistsError(
                f"location {location} is not empty",
                hint="register an existing table with `lakehouse table register`, or pick an empty location",
            )

    def _check_apart(self, location: str, *, hint: str | None = None) -> None:
        """No registered table at, inside or above ``location``: jobs on one table would rewrite, expire or
        purge files of the other (a vacuum of the outer table deletes the inner one's files as its orphans)."""
        loc = location.rstrip("/")
        for record in self.catalog.list_tables():
            other = record.location.rstrip("/")
            if loc == other or loc.startswith(other + "/") or other.startswith(loc + "/"):
                raise TableExistsError(
                    f"location {location} overlaps table {record.name} at {record.location}", hint=hint
                )

    def register_table(
        self,
        name: str | TableName,
        *,
        location: str,
        format: str | None = None,
        metadata_location: str | None = None,
        warn: Callable[[str], None] | None = None,
    ) -> LakehouseTable:
        """Adopt an existing Delta or Iceberg table at ``location`` (format detected when not given; an Iceberg
        table at its newest metadata file, or at ``metadata_location``).

        An Iceberg table a connected catalog owns is refused (maintain it as ``catalog.namespace.table``: our
        commits would not reach its owner, a split brain); one whose owner is unknown is adopted with a warning
        (``warn``) that commits land in lakehouse's catalog only."""
        tname = _own(TableName.parse(name), "registered")
        loc = _normalise_location(location)
        ctx = self.ctx.for_location(loc)
        fmt = format or detect_format(loc, ctx)
        cls = adapter_class(fmt)
        try:
            self.catalog.get_table(tname)
        except LookupError:
            pass
        else:
            raise TableExistsError(f"table {tname} is already registered")
        if fmt == "iceberg":
            from lakehouse import external

            owner = external.owner_of(self, loc)
            if owner is not None:
                raise InvalidInputError(
                    f"the Iceberg table at {loc} belongs to connected catalog {owner.catalog} as {owner}; registering "
                    "it here would send our commits to our catalog while its writers commit to theirs",
                    hint=f"maintain it as {owner} (e.g. `lakehouse optimize {owner}`)",
                )
        self._check_apart(
            loc, hint="a table's location holds its files only: register each table at its own location, apart"
        )
        table = cls.register(tname, location=loc, ctx=ctx, metadata_location=metadata_location)
        table.commit_timeout = self.settings.commit_timeout_seconds
        try:
            # the row and its audit entry in one transaction, after checking the definition reads back
            self.catalog.add_table(
                tname,
                fmt,
                loc,
                table.definition,
                audit=("table.register", self.actor, {"format": fmt, "location": loc}),
            )
        except BaseException:
            # undo what the adapter recorded in its own catalog (pyiceberg's iceberg_tables); never the files,
            # which are someone else's
            cls.forget(tname, ctx=ctx)
            raise
        if fmt == "iceberg" and warn is not None:
            warn(
                f"registered {tname} by location: commits go to lakehouse's catalog only; if another catalog owns "
                "this table, its writers will not see them (connect that catalog with `lakehouse catalog add` and "
                "use its name instead)"
            )
        return table

    def drop_table(self, name: str | TableName, *, purge: bool = False) -> None:
        """Unregister a table; with ``purge`` also delete its files.

        Works for a table whose catalog entry cannot be read (the entry goes; with ``purge`` its files too). The
        catalog row and its audit entry go in one transaction, last: a drop that fails before leaves the row,
        and a table the format's own catalog had forgotten for it is registered there again."""
        tname = TableName.parse(name)
        record = self.catalog.get_table(tname, readable=False)
        if tname.external:
            raise UnsupportedOperationError(
                f"{tname} belongs to catalog {tname.catalog}: drop it there (lakehouse forgets it on the next sync)",
                hint=f"`lakehouse catalog remove {tname.catalog}` disconnects the whole catalog",
            )
        if purge:
            self._check_purgeable(record)
        cls = adapter_class(record.format)
        try:
            table: LakehouseTable | None = self.table(tname) if record.error is None else None
        except TableNotFoundError:
            table = None
        if table is not None:
            table.drop(purge=False)  # forget it in the format's catalog (Iceberg); the files stay for now
        else:
            # its files are gone already, or its entry cannot be read: forget it without opening it
            cls.forget(tname, ctx=self.ctx)
        try:
            if purge:
                delete_tree(record.location, self.ctx)
            self.catalog.remove_table(tname, audit=("table.drop", self.actor, {"purge": purge}))
        except BaseException:
            if table is not None and cls.exists_at(record.location, ctx=self.ctx):
                with contextlib.suppress(LakehouseError):  # put it back where it was in its format's catalog
                    cls.register(tname, location=record.location, ctx=self.ctx)
            raise

    def rename_table(self, name: str | TableName, new: str | TableName) -> None:
        """Give a table a new name (its files stay where they are): in the format's catalog, then in ours; a
        failure in ours renames it back."""
        old, target = TableName.parse(name), _own(TableName.parse(new), "renamed to")
        record = self.catalog.get_table(old)
        if old.external:
            raise UnsupportedOperationError(f"{old} belongs to catalog {old.catalog}: rename it there")
        try:
            self.catalog.get_table(target, readable=False)
        except TableNotFoundError:
            pass
        else:
            raise TableExistsError(f"table {target} already exists")
        cls = adapter_class(record.format)
        # a job's lease is the table's name: while one runs, the table keeps its name (a job on the new name
        # would run beside it); while the rename runs, no job starts on the old name
        holder = f"rename:{self.actor}:{uuid.uuid4().hex[:8]}"
        if not self.catalog.acquire_lease(old, holder, ttl=60):
            lease = self.catalog.lease(old) or {}
            raise CommitConflictError(
                f"table {old} is being maintained by {lease.get('holder', 'another job')}: it keeps its name until "
                "that job ends",
                hint="rename it once the job has finished (`lakehouse jobs` shows it)",
            )
        try:
            cls.rename(old, target, ctx=self.ctx)
            try:
                self.catalog.rename_table(old, target, audit=("table.rename", self.actor, {"from": str(old)}))
            except BaseException:
                with contextlib.suppress(LakehouseError):
                    cls.rename(target, old, ctx=self.ctx)
                raise
        finally:
            with contextlib.suppress(LakehouseError):
                self.catalog.release_lease(old, holder)

    def _check_purgeable(self, record: TableRecord) -> None:
        loc = record.location.rstrip("/")
        root = self.ctx.warehouse.rstrip("/")
        if loc == root or root.startswith(loc + "/"):
            raise InvalidInputError(f"refusing to purge {record.location}: it is the warehouse root or above it")
        for other in self.catalog.list_tables():
            if other.name != record.name and other.location.rstrip("/").startswith(loc + "/"):
                raise InvalidInputError(f"refusing to purge {record.location}: table {other.name} lives inside it")

    def table(self, name: str | TableName) -> LakehouseTable:
        """Open a registered table (it knows which versions retention removed, to say so on time travel). Within
        a read-only measurement (:func:`lakehouse.storage.shared_listings`: health, the cost report) the table
        opened first is every part's: a Delta log or Iceberg metadata read once, not per part."""
        from lakehouse.storage import shared_opened

        record = self.catalog.get_table(TableName.parse(name))

        def opened() -> LakehouseTable:
            ctx = self.table_context(record.name, record.location)
            table = adapter_class(record.format).open(record.name, location=record.location, ctx=ctx)
            table.expired = self.catalog.expired(record.name)
            table.commit_timeout = self.settings.commit_timeout_seconds
            return table

        # a read-only measurement (health, cost: a shared_listings block) opens the table once for all its parts
        return shared_opened(("table", id(self), str(record.name), record.format, record.location), opened)

    def table_context(self, name: TableName, location: str) -> StorageContext:
        """Where the table ``name`` at ``location`` lives: its owner catalog (an external one for
        ``catalog.namespace.table``) and the credentials of its store."""
        if name.external:
            from lakehouse import external

            ctx = external.context(self, external.entry(self, name.catalog), location)
        else:
            ctx = self.ctx.for_location(location)
        if ctx is not self.ctx:
            with self._shared_lock:
                self._shared.setdefault("contexts", set()).add(ctx)
        return ctx

    # ---- external catalogs -----------------------------------------------------------------------------

    def sync_catalogs(self, names: Sequence[str] | None = None) -> list[Any]:
        """Mirror the tables of connected external catalogs into the catalog database (see
        :mod:`lakehouse.external`); one report per catalog, an unreachable one with its error."""
        from lakehouse import external

        return external.sync(self, names)

    # ---- policies ------------------------------------------------------------------------------------

    def policy(self, name: str | TableName) -> TablePolicy:
        """The effective maintenance policy of a table: defaults < [policy] < [tables."ns.t"] < stored."""
        tname = TableName.parse(name)
        self.catalog.get_table(tname)  # must exist
        return build_policy(
            self.settings.policy,
            self.settings.tables.get(str(tname), {}),
            self.catalog.policy(tname),
            source=f"policy of {tname}",
        )

    def _check_policy_columns(self, name: TableName, policy: TablePolicy) -> None:
        """Columns a policy names must exist with a fitting type (else every ingest would fail later)."""
        from lakehouse.masking import check_column, parse_mask

        schema = self.catalog.get_table(name).definition.schema
        named = {
            "dedup.keys": list(policy.dedup.keys),
            "dedup.order": [policy.dedup.order] if policy.dedup.order else [],
            "compaction.zorder": list(policy.compaction.zorder),
            "tiering.column": [policy.tiering.column] if policy.tiering.column else [],
            "retention.expire_column": [policy.retention.expire_column] if policy.retention.expire_column else [],
            "masking": list(policy.masking),
        }
        for where, columns in named.items():
            for c in columns:
                if schema.get_field_index(c) < 0:
                    raise InvalidInputError(f"{where} names {c}, which table {name} does not have")
                if where in ("dedup.keys", "dedup.order", "compaction.zorder") and pa.types.is_nested(
                    schema.field(c).type
                ):  # the job would fail on every pass of maintain and the autopilot
                    raise InvalidInputError(
                        f"{where} names {c}, a {schema.field(c).type} column of {name}: keys, orders and clustering "
                        "columns must be plain values",
                        hint="name a plain column (a field of a struct cannot be named here)",
                    )
        definition = self.catalog.get_table(name).definition
        partition_columns = {p.column for p in definition.partitioning if p.transform == "identity"}
        partition_columns |= {p.name for p in definition.partitioning}
        flat = sorted(set(policy.compaction.zorder) & partition_columns)
        if flat:  # optimize refuses it, so maintain and the autopilot would fail on every pass
            raise InvalidInputError(
                f"compaction.zorder names {', '.join(flat)}, a partition column of {name}: Z-order by it clusters "
                "nothing (every file holds one value of it)",
                hint="cluster by columns queries filter on inside a partition",
            )
        for where in ("tiering.column", "retention.expire_column"):  # each dates rows: ages are counted from it
            for dating in named[where]:
                t = schema.field(dating).type
                if not (pa.types.is_timestamp(t) or pa.types.is_date(t)):
                    raise InvalidInputError(
                        f"{where} names {dating}, a {t} column of {name}; it must be a timestamp or date"
                    )
        for column, spec in policy.masking.items():
            check_column(parse_mask(spec), schema.field(column))
            if parse_mask(spec).kind == "hash" and self.settings.governance.mask_secret is None:
                raise InvalidInputError(  # ingestion, masked reads and pii mask would all fail on it
                    f"masking.{column}=hash needs a secret, and governance.mask_secret is not set",
                    hint="set governance.mask_secret in lakehouse.toml or LAKEHOUSE_GOVERNANCE__MASK_SECRET first",
                )
        if policy.masking:  # a partition derived from a masked column would keep its raw value
            from lakehouse.governance.ops import check_partition_sources

            check_partition_sources(self.table(name), policy.masking, where="masking policy")

    def set_policy(self, name: str | TableName, changes: Mapping[str, Any], *, replace: bool = False) -> TablePolicy:
        """Store policy values for a table in the catalog (merged into what is stored unless ``replace``); a
        bad value is an :class:`InvalidInputError`."""
        from lakehouse.errors import ConfigError

        tname = TableName.parse(name)
        self.catalog.get_table(tname)
        if replace:
            stored = dict(changes)
        else:  # key=none of a setting that cannot be none: back to the layers below (settings, defaults)
            kept, changed = resolve_unsets(self.catalog.policy(tname), changes)
            stored = merge(kept, changed)
        operator = (self.settings.policy, self.settings.tables.get(str(tname), {}))
        build_policy(*operator, source="settings")  # the operator's layers: a ConfigError there is not the caller's
        try:
            policy = build_policy(*operator, stored, source="policy")
        except ConfigError as e:  # so the bad value is the caller's
            raise InvalidInputError(e.message, hint=e.hint) from e
        self._check_policy_columns(tname, policy)
        self.catalog.set_policy(tname, stored, actor=self.actor)
        self.catalog.audit("policy.set", table=tname, actor=self.actor, details={"stored": stored})
        return self.policy(tname)

    def table_record(self, name: str | TableName) -> TableRecord:
        return self.catalog.get_table(TableName.parse(name))

    def list_tables(self, *, namespace: str | None = None, format: str | None = None) -> list[TableRecord]:
        return self.catalog.list_tables(namespace=namespace, fmt=format)

    def append(
        self, name: str | TableName, data: pa.Table, *, properties: Mapping[str, str] | None = None
    ) -> CommitResult:
        from lakehouse.governance.ops import mask_secret, table_masks
        from lakehouse.masking import apply_masks

        table = self.table(name)
        masks = table_masks(self, table)
        result = table.append(apply_masks(data, masks, mask_secret(self)) if masks else data, properties=properties)
        self.catalog.update_table(table.name)
        return result

    def restore(self, name: str | TableName, as_of: AsOf) -> CommitResult:
        """Restore a table to an earlier version; recorded in the job history."""
        table = self.table(name)
        target = table.snapshot(as_of)
        if not target.is_current:
            table.check_restorable(target)
        job = self.catalog.start_job(
            "restore",
            table=table.name,
            params={"as_of": str(as_of), "target_version": target.version},
            actor=self.actor,
        )
        try:
            result = table.restore(target.version)
        except BaseException as e:
            self.catalog.finish_job(job, state="failed", error=error_text(e))
            raise
        self.catalog.finish_job(job, state="committed", metrics=result.as_dict())
        self.catalog.update_table(table.name, table.definition)
        return result

    def audit_log(
        self, name: str | TableName | None = None, *, action: str | None = None, limit: int = 100
    ) -> list[AuditRecord]:
        return self.catalog.audit_log(table=TableName.parse(name) if name else None, action=action, limit=limit)

    def jobs(self, name: str | TableName | None = None, *, limit: int = 100) -> list[JobRecord]:
        return self.catalog.jobs(table=TableName.parse(name) if name else None, limit=limit)

    # ---- SQL -----------------------------------------------------------------------------------------

    def query(
        self,
        sql: str,
        *,
        as_of: Mapping[str, AsOf] | None = None,
        max_rows: int | None = None,
        masked: bool = False,
        isolated: bool = False,
        timeout: float | None = None,
        engine: str = "local",
    ) -> QueryResult:
        """Run SQL over catalog tables through DuckDB (see :mod:`lakehouse.sql` for time travel), or on Spark
        with ``engine="spark"`` (same table names and time travel).

        ``isolated`` runs the query in a worker process with hard memory and time limits whose engine cannot
        touch files (:mod:`lakehouse.sql.worker`): for callers not trusted with the machine (the API).
        ``masked`` is for callers without the PII-read permission and implies ``isolated``: columns with a
        masking policy, and columns a PII scan tagged, are masked before the query's engine sees them."""
        from lakehouse.engines import check_engine

        def readable(name: TableName) -> LakehouseTable:
            table = self.table(name)
            with table.pinned(refresh=False):  # at the version just opened: no second load of the table
                table.check_names("queried")  # names differing only in case would be read as one another
            return table

        if check_engine(engine) == "spark":
            if masked or isolated or timeout is not None:
                raise UnsupportedOperationError(
                    "masked and isolated reads and query time limits run on the local engine only",
                    hint="drop --engine spark, or query as a caller with the PII-read permission",
                )
            result = self.spark().query(sql, resolve=readable, as_of=as_of, max_rows=max_rows)
        elif masked or isolated:
            from lakehouse.governance.ops import read_masks

            result = self.isolated_sql.query(
                sql,
                resolve=readable,
                as_of=as_of,
                max_rows=max_rows,
                masks=(lambda table: read_masks(self, table)) if masked else None,
                timeout=timeout,
            )
        else:
            result = self.sql.query(sql, resolve=readable, as_of=as_of, max_rows=max_rows, timeout=timeout)
        self._record_access(result)
        return result

    def _record_access(self, result: QueryResult) -> None:
        """The access log feeds the autopilot (Z-order proposals, hot partitions, unread tables)."""
        import contextlib

        with contextlib.suppress(LakehouseError):  # never fail a query for its log
            self.catalog.record_access(list(result.access))


def _own(name: TableName, what: str) -> TableName:
    """``name``, unless it names a table of an external catalog: lakehouse creates, registers and renames tables
    in its own catalog only."""
    if name.external:
        raise UnsupportedOperationError(
            f"{name} names a table of external catalog {name.catalog}: tables are {what} in lakehouse's own "
            "catalog only (namespace.table)",
            hint=f"create it through {name.catalog} itself; lakehouse lists it after `lakehouse catalog sync`",
        )
    return name


def check_definition(definition: TableDefinition) -> None:
    """Raise :class:`InvalidSchemaError` unless the catalog can store ``definition`` and read it back as it is
    (every column type has a type string, every partition field reads back)."""
    from lakehouse.errors import InvalidSchemaError

    check_storable(definition.schema)
    text = ", ".join(str(p) for p in definition.partitioning)
    if parse_partitioning(text) != tuple(definition.partitioning):
        raise InvalidSchemaError(f"partitioning {text!r} does not read back as declared")


def _normalise_location(location: str) -> str:
    """``s3://bucket/key``, ``s3a://`` (as ``s3://``), ``file:///path`` or a local path; any other scheme, and an
    S3 location without a bucket, is refused (they were made local directories named ``gs:`` or ``s3:``)."""
    import re

    from lakehouse.config import URL_SPECIAL

    loc = location.strip().rstrip("/")
    if odd := sorted(set(loc) & URL_SPECIAL):  # delta-rs cut the path at `?` or `#`: the data went elsewhere
        raise InvalidInputError(
            f"location {location!r} holds {' '.join(odd)}, which table formats read as part of a URL",
            hint="choose a path without ? # [ ]",
        )
    if loc.lower() in ("s3:", "s3a:"):
        raise InvalidInputError(f"location {location!r} names no bucket", hint="write s3://bucket/path")
    scheme = re.match(r"([A-Za-z][A-Za-z0-9+.-]*):", loc)
    if scheme and scheme[1].lower() in ("s3", "s3a") and scheme[1] != scheme[1].lower():
        loc = scheme[1].lower() + loc[len(scheme[1]) :]
    for prefix in ("s3a://", "s3://"):
        if loc.startswith(prefix):
            if not loc[len(prefix) :].split("/", 1)[0]:
                raise InvalidInputError(f"location {location!r} names no bucket", hint="write s3://bucket/path")
            return "s3://" + loc[len(prefix) :]
    if loc.startswith("file://"):
        loc = loc[len("file://") :]
    elif scheme and len(scheme[1]) > 1:  # a Windows drive letter is no scheme
        raise InvalidInputError(
            f"unsupported location scheme {scheme[1]!r} in {location!r}",
            hint="use s3://bucket/path (S3, MinIO), file:///path or a local path",
        )
    from pathlib import Path

    return str(Path(loc).expanduser().resolve())


def _redact(url: str) -> str:
    """Hide a password in a database URL."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - any unparsable URL is shown as is, it has no password to hide
        return url
