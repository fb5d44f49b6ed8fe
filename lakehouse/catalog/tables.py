"""The table registry: one row per table (format, location, definition); create, register and drop are atomic with
their audit entry."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pyarrow as pa
import sqlalchemy as sa

from lakehouse.catalog.audit import AuditMixin
from lakehouse.catalog.records import TableRecord, _aware, _now
from lakehouse.catalog.schema import expired_t, layouts_t, pii_t, policies_t, tables_t
from lakehouse.errors import (
    CatalogEntryError,
    InvalidSchemaError,
    LakehouseError,
    TableExistsError,
    TableNotFoundError,
)
from lakehouse.schema import PartitionField, parse_partitioning, schema_from_dict, schema_to_dict
from lakehouse.tables.base import TableDefinition, TableName


class TablesMixin(AuditMixin):
    def add_table(
        self,
        name: TableName,
        fmt: str,
        location: str,
        definition: TableDefinition,
        *,
        audit: tuple[str, str, Mapping[str, Any]] | None = None,
    ) -> TableRecord:
        """Store a table's row (and its audit entry ``(action, actor, details)``) in one transaction, after
        checking that the definition reads back as it is: a definition that cannot be stored changes nothing.

        Raises:
            InvalidSchemaError: naming the column whose type cannot be stored.
            TableExistsError: the name or location is taken.
        """
        columns = self._definition_columns(definition)
        now = _now()
        with self._tx() as conn:
            existing = conn.execute(
                sa.select(tables_t.c.name).where(sa.or_(tables_t.c.name == str(name), tables_t.c.location == location))
            ).first()
            if existing:
                raise TableExistsError(
                    f"the catalog already has table {existing.name}"
                    + (f" at {location}" if existing.name != str(name) else "")
                )
            conn.execute(
                tables_t.insert().values(
                    name=str(name),
                    namespace=name.qualified_namespace,
                    format=fmt,
                    location=location,
                    created_at=now,
                    updated_at=now,
                    **columns,
                )
            )
            row = conn.execute(sa.select(tables_t).where(tables_t.c.name == str(name))).one()
            record = self._record(row)  # what every later read will see; raises (and rolls back) if unreadable
            if audit is not None:
                self._audit_row(conn, audit[0], table=name, actor=audit[1], details=audit[2])
        return record

    @classmethod
    def _definition_columns(cls, definition: TableDefinition) -> dict[str, str]:
        """The stored form of a definition, checked to read back as the same definition.

        Raises:
            InvalidSchemaError: naming the column (or partition field) that would not read back."""
        from lakehouse.schema import check_storable, plain_flavours

        # Arrow's large and view flavours of strings, binaries and lists are one type to both formats (pyiceberg
        # reports nested ones as large): the catalog keeps the plain one
        schema = pa.schema([f.with_type(plain_flavours(f.type)) for f in definition.schema])
        check_storable(schema)
        columns = {
            "schema_json": json.dumps(schema_to_dict(schema)),
            "partitioning": ", ".join(str(p) for p in definition.partitioning),
            "keys_json": json.dumps(list(definition.keys)),
            "properties_json": json.dumps(dict(definition.properties), sort_keys=True),
        }
        back = cls._definition(columns["schema_json"], columns["partitioning"], columns["keys_json"], "{}")
        if back.partitioning != tuple(definition.partitioning):
            raise InvalidSchemaError(
                f"partitioning {columns['partitioning']!r} does not read back as stored; lakehouse cannot store it"
            )
        return columns

    def update_table(self, name: TableName, definition: TableDefinition | None = None) -> None:
        """Refresh the stored definition (after a schema change) and bump ``updated_at``."""
        values: dict[str, Any] = {"updated_at": _now()}
        if definition is not None:
            values.update(self._definition_columns(definition))
        with self._tx() as conn:
            conn.execute(tables_t.update().where(tables_t.c.name == str(name)).values(**values))

    def remove_table(self, name: TableName, *, audit: tuple[str, str, Mapping[str, Any]] | None = None) -> None:
        """Remove a table's row and everything the catalog keeps about it (and write its audit entry
        ``(action, actor, details)``), in one transaction."""
        with self._tx() as conn:
            conn.execute(layouts_t.delete().where(layouts_t.c.table_name == str(name)))
            conn.execute(expired_t.delete().where(expired_t.c.table_name == str(name)))
            conn.execute(policies_t.delete().where(policies_t.c.table_name == str(name)))
            conn.execute(pii_t.delete().where(pii_t.c.table_name == str(name)))
            result = conn.execute(tables_t.delete().where(tables_t.c.name == str(name)))
            if result.rowcount == 0:
                raise TableNotFoundError(f"no table {name} in the catalog")
            if audit is not None:
                self._audit_row(conn, audit[0], table=name, actor=audit[1], details=audit[2])

    def rename_table(
        self, name: TableName, new: TableName, *, audit: tuple[str, str, Mapping[str, Any]] | None = None
    ) -> None:
        """Give a table's row, and what the catalog keeps about it (policies, PII tags, layouts, expired
        versions), a new name in one transaction; its location stays. The job history and the audit log keep
        the name each entry was made under."""
        with self._tx() as conn:
            if conn.execute(sa.select(tables_t.c.name).where(tables_t.c.name == str(new))).first():
                raise TableExistsError(f"the catalog already has table {new}")
            result = conn.execute(
                tables_t.update()
                .where(tables_t.c.name == str(name))
                .values(name=str(new), namespace=new.qualified_namespace, updated_at=_now())
            )
            if result.rowcount == 0:
                raise TableNotFoundError(f"no table {name} in the catalog")
            for t in (layouts_t, expired_t, policies_t, pii_t):
                conn.execute(t.update().where(t.c.table_name == str(name)).values(table_name=str(new)))
            if audit is not None:
                self._audit_row(conn, audit[0], table=new, actor=audit[1], details=audit[2])

    def get_table(self, name: TableName, *, readable: bool = True) -> TableRecord:
        """The table's record.

        Raises:
            TableNotFoundError: no such table.
            CatalogEntryError: its stored definition cannot be read (unless ``readable=False``, which returns
                the record with ``error`` set and an empty definition: enough to drop it).
        """
        with self._tx() as conn:
            row = conn.execute(sa.select(tables_t).where(tables_t.c.name == str(name))).first()
        if row is None:
            raise TableNotFoundError(
                f"no table {name} in the catalog", hint="see `lakehouse table list`, or create/register it"
            )
        record = self._record(row, strict=False)
        if readable and record.error is not None:
            raise CatalogEntryError(
                f"the catalog entry of table {name} cannot be read: {record.error}; `lakehouse table drop {name}` "
                f"removes the entry (the files stay), then `lakehouse table register {name} {record.location}` "
                "adopts the table again"
            )
        return record

    def list_tables(self, *, namespace: str | None = None, fmt: str | None = None) -> list[TableRecord]:
        """Every table's record; one whose stored definition cannot be read is listed with ``error`` set."""
        query = sa.select(tables_t).order_by(tables_t.c.name)
        if namespace:
            query = query.where(tables_t.c.namespace == namespace.lower())
        if fmt:
            query = query.where(tables_t.c.format == fmt)
        with self._tx() as conn:
            rows = conn.execute(query).all()
        return [self._record(r, strict=False) for r in rows]

    @staticmethod
    def _definition(schema_json: str, partitioning: str, keys_json: str, properties_json: str) -> TableDefinition:
        parts: tuple[PartitionField, ...] = parse_partitioning(partitioning) if partitioning else ()
        return TableDefinition(
            schema=schema_from_dict(json.loads(schema_json)),
            partitioning=parts,
            keys=tuple(json.loads(keys_json)),
            properties=json.loads(properties_json),
        )

    @classmethod
    def _record(cls, row: Any, *, strict: bool = True) -> TableRecord:
        error: str | None = None
        try:
            definition = cls._definition(row.schema_json, row.partitioning, row.keys_json, row.properties_json)
        except (LakehouseError, ValueError, TypeError, KeyError, AttributeError) as e:
            # an older release's type string, hand-edited or corrupt JSON: the row is still listed and droppable
            if strict:
                raise
            error = e.message if isinstance(e, LakehouseError) else f"corrupt definition ({type(e).__name__}: {e})"
            definition = TableDefinition(schema=pa.schema([]))
        return TableRecord(
            name=TableName.parse(row.name),
            format=row.format,
            location=row.location,
            definition=definition,
            created_at=_aware(row.created_at) or _now(),
            updated_at=_aware(row.updated_at) or _now(),
            error=error,
        )
