"""Delta Lake adapter (delta-rs). The only module that imports ``deltalake``.

Partition transforms: Delta has no hidden partitioning, so ``day(ts)`` becomes a *generated column*
``ts_day`` with ``delta.generationExpression = CAST(ts AS DATE)``; delta-rs computes it on write and
Spark/Databricks readers understand it. Scans through this interface return the declared columns only.
Key columns are marked with the column metadata ``lakehouse.key`` (Delta rejects unknown table properties).
"""

from __future__ import annotations

import datetime as dt
import json
import urllib.parse
import uuid
from collections.abc import Mapping, Sequence
from typing import Any, Self

import pyarrow as pa

from lakehouse.errors import (
    CommitConflictError,
    InvalidSchemaError,
    LakehouseError,
    SchemaMismatchError,
    StorageError,
    TableExistsError,
    TableNotFoundError,
    UnsupportedOperationError,
    VersionNotFoundError,
)
from lakehouse.expr import Expr, to_arrow
from lakehouse.schema import PartitionField, validate_keys, validate_partitioning
from lakehouse.storage import delete_tree, list_files, split_location
from lakehouse.tables.base import (
    AsOf,
    Capabilities,
    CommitResult,
    DataFile,
    LakehouseTable,
    Snapshot,
    StorageContext,
    TableDefinition,
    TableName,
)

try:
    from deltalake import CommitProperties, DeltaTable, Field, Schema, Transaction, write_deltalake
    from deltalake.exceptions import CommitFailedError, DeltaError, DeltaProtocolError
    from deltalake.exceptions import SchemaMismatchError as DeltaSchemaMismatchError
    from deltalake.exceptions import TableNotFoundError as DeltaTableNotFoundError
    from deltalake.schema import PrimitiveType
except ImportError as e:  # pragma: no cover - exercised only without the extra
    from lakehouse.errors import DependencyMissingError

    raise DependencyMissingError("the Delta Lake adapter needs deltalake", hint="pip install 'lakehouse[delta]'") from e

KEY_METADATA = "lakehouse.key"
GENERATION = "delta.generationExpression"
MAX_COMMIT_RETRIES = 15

_EXPRESSIONS = {
    "year": "CAST(date_trunc('YEAR', {c}) AS DATE)",
    "month": "CAST(date_trunc('MONTH', {c}) AS DATE)",
    "day": "CAST({c} AS DATE)",
    "hour": "date_trunc('HOUR', {c})",
}
_GENERATED_TYPES = {"year": "date", "month": "date", "day": "date", "hour": "timestamp"}


def _translate(e: Exception, what: str) -> LakehouseError:
    """Turn a delta-rs exception into ours, keeping its message."""
    msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    if isinstance(e, CommitFailedError):
        return CommitConflictError(f"{what}: a concurrent commit won and retries ran out ({msg})")
    if isinstance(e, DeltaSchemaMismatchError):
        return SchemaMismatchError(f"{what}: {msg}")
    if isinstance(e, DeltaTableNotFoundError):
        return TableNotFoundError(f"{what}: no Delta table ({msg})")
    if isinstance(e, DeltaProtocolError):
        return UnsupportedOperationError(f"{what}: {msg}")
    if isinstance(e, FileNotFoundError) or "not found" in msg.lower() or "NotFound" in msg:
        return VersionNotFoundError(f"{what}: a file it needs is gone ({msg})")
    return StorageError(f"{what}: {msg}")


class DeltaAdapter(LakehouseTable):
    """A Delta Lake table through delta-rs."""

    format = "delta"
    capabilities = Capabilities(
        hidden_partitioning=False,
        restore_creates_version=True,
        native_compaction=True,
        native_zorder=True,
        native_vacuum=True,
        notes=("partition transforms are generated columns (<column>_<transform>)",),
    )

    def __init__(self, name: TableName, location: str, ctx: StorageContext, dt_: DeltaTable) -> None:
        super().__init__(name, location, ctx)
        self._dt = dt_

    # ---- helpers -------------------------------------------------------------------------------------

    @staticmethod
    def _options(ctx: StorageContext, location: str) -> dict[str, str] | None:
        if StorageContext.is_s3(location):
            if ctx.credentials is None:
                raise StorageError(f"{location} is on S3 but no S3 settings are configured")
            return ctx.credentials.delta_storage_options()
        return None

    @staticmethod
    def _uri(location: str) -> str:
        return location.replace("s3a://", "s3://", 1)

    def _at(self, version: int | None) -> DeltaTable:
        if version is None:
            self._dt.update_incremental()
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
        keyed = pa.schema([f.with_metadata({KEY_METADATA: "true"}) if f.name in definition.keys else f for f in schema])
        fields: list[Field] = list(Schema.from_arrow(keyed).fields)
        partition_by: list[str] = []
        for pf in definition.partitioning:
            if pf.transform == "identity":
                partition_by.append(pf.column)
                continue
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
        try:
            dt_ = DeltaTable(cls._uri(location), storage_options=cls._options(ctx, location))
        except DeltaTableNotFoundError as e:
            raise TableNotFoundError(f"no Delta table at {location} (table {name})") from e
        except (DeltaError, OSError) as e:
            raise _translate(e, f"cannot open Delta table {name} at {location}") from e
        return cls(name, location, ctx, dt_)

    @classmethod
    def exists_at(cls, location: str, *, ctx: StorageContext) -> bool:
        # Listing _delta_log ourselves: delta-rs's is_deltatable() stalls on some S3 servers (moto).
        log = f"{location.rstrip('/')}/_delta_log"
        return any(f.path.endswith((".json", ".checkpoint.parquet")) for f in list_files(log, ctx, recursive=False))

    def drop(self, *, purge: bool = False) -> None:
        if purge:
            delete_tree(self.location, self.ctx)

    # ---- metadata ------------------------------------------------------------------------------------

    @property
    def definition(self) -> TableDefinition:
        arrow = pa.schema(self._dt.schema().to_arrow())
        declared: list[pa.Field] = []
        keys: list[str] = []
        generated: dict[str, str] = {}
        for f in arrow:
            meta = {k.decode(): v.decode() for k, v in (f.metadata or {}).items()}
            if GENERATION in meta:
                generated[f.name] = meta[GENERATION]
                continue
            if meta.get(KEY_METADATA) == "true":
                keys.append(f.name)
            declared.append(pa.field(f.name, _normalise_type(f.type), nullable=f.nullable))
        parts: list[PartitionField] = []
        for col in self._dt.metadata().partition_columns:
            if col in generated:
                parts.append(_transform_of(col, generated[col]))
            else:
                parts.append(PartitionField(col))
        return TableDefinition(
            schema=pa.schema(declared),
            partitioning=tuple(parts),
            keys=tuple(keys),
            properties=dict(self._dt.metadata().configuration),
        )

    def snapshots(self) -> list[Snapshot]:
        self._dt.update_incremental()
        current = self._dt.version()
        out: list[Snapshot] = []
        for h in sorted(self._dt.history(), key=lambda h: h["version"]):
            v = int(h["version"])
            summary = {
                str(k): str(val)
                for k, val in {**h.get("operationMetrics", {}), **h.get("operationParameters", {})}.items()
            }
            for k, val in h.items():
                if k not in ("version", "timestamp", "operation", "operationMetrics", "operationParameters"):
                    summary[str(k)] = str(val)
            out.append(
                Snapshot(
                    version=v,
                    timestamp=dt.datetime.fromtimestamp(h["timestamp"] / 1000, tz=dt.UTC),
                    operation=str(h.get("operation", "")).lower().replace(" ", "-"),
                    parent_version=v - 1 if v > 0 else None,
                    is_current=v == current,
                    summary=summary,
                )
            )
        return out

    def files(self, *, as_of: AsOf | None = None) -> list[DataFile]:
        version = self.snapshot(as_of).version if as_of is not None else None
        table = pa.table(self._at(version).get_add_actions(flatten=True))
        part_cols = [c for c in table.column_names if c.startswith("partition.")]
        stat_cols = [c for c in table.column_names if c.startswith("min.")]
        out: list[DataFile] = []
        for row in table.to_pylist():
            path = urllib.parse.unquote(str(row["path"]))  # the log stores URL-encoded paths
            full = path if "://" in path or path.startswith("/") else f"{self.location.rstrip('/')}/{path}"
            stats = {
                c[len("min.") :]: (
                    row[c],
                    row.get("max." + c[len("min.") :]),
                    row.get("null_count." + c[len("min.") :]),
                )
                for c in stat_cols
            }
            out.append(
                DataFile(
                    path=full,
                    size_bytes=int(row["size_bytes"]),
                    row_count=int(row["num_records"]) if row.get("num_records") is not None else 0,
                    partition={c[len("partition.") :]: row[c] for c in part_cols},
                    stats=stats,
                )
            )
        return out

    # ---- data ----------------------------------------------------------------------------------------

    def _append(self, data: pa.Table, *, properties: dict[str, str], checkpoints: dict[str, int]) -> CommitResult:
        txns = [Transaction(app_id=source, version=int(position)) for source, position in checkpoints.items()]
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
        except (DeltaError, OSError) as e:
            raise _translate(e, f"append to {self.name} failed") from e
        self._dt.update_incremental()
        metrics = self._dt.history(1)[0].get("operationMetrics", {})
        return CommitResult(
            version=self._dt.version(),
            rows_added=data.num_rows,
            files_added=int(metrics.get("num_added_files", 0)),
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
        self._dt.update_incremental()
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
        self._dt.update_incremental()

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
        self._dt.update_incremental()
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
        self._dt.update_incremental()
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
        self._dt.update_incremental()
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

    def _scan(self, expr: Expr | None, columns: list[str] | None, snapshot: Snapshot | None) -> pa.Table:
        table = self._at(snapshot.version if snapshot else None)
        try:
            ds = table.to_pyarrow_dataset()
            flt = to_arrow(expr, self.schema) if expr is not None else None
            return ds.to_table(filter=flt, columns=columns)
        except (DeltaError, OSError, pa.ArrowException) as e:
            raise _translate(
                e, f"cannot read {self.name}" + (f" version {snapshot.version}" if snapshot else "")
            ) from e

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
        self._dt.update_incremental()
        return CommitResult(
            version=self._dt.version(),
            files_added=int(metrics.get("numRestoredFile", metrics.get("num_restored_file", 0))),
            operation="restore",
        )

    def sql_source(self, snapshot: Snapshot | None = None) -> str | None:
        path = _sql_str(self._uri(self.location))
        if snapshot is None:
            return f"delta_scan({path})"
        return f"delta_scan({path}, version={int(snapshot.version)})"


def _partition_literal(v: object) -> str:
    if isinstance(v, dt.datetime):
        return v.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f") if v.tzinfo else v.isoformat(" ")
    if isinstance(v, dt.date):
        return v.isoformat()
    return "" if v is None else str(v)


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
