"""The subset of the Unity Catalog OSS REST API (``/api/2.1/unity-catalog``) that engines use to attach Delta
tables: catalogs, schemas, tables with their storage location and columns, and temporary table credentials.

One catalog (named by the ``catalog_name`` setting) holds lakehouse's namespaces as schemas and its Delta tables
(Iceberg tables are served by the Iceberg REST catalog, :mod:`lakehouse.served.iceberg_rest`). The API is
read-only: engines read and write the tables by their location, and the Delta log is the table's catalog of
record, so a write there is a commit lakehouse's jobs see and respect (they commit with delta-rs's conflict
checks), and ``table show`` and the history show it.

Governance is the Iceberg catalog's: a table with PII (tags or a masking policy) is neither listed to nor
described for a caller who may not read PII (403 naming the columns), since an engine reads its files itself.

Credentials: on a local warehouse there are none to vend (the answer holds only an expiry). On S3 lakehouse does
not vend its own credentials to clients (they would not be table-scoped): the credentials request answers 501
and the engine uses the S3 credentials it is configured with.
"""

from __future__ import annotations

import time
import uuid
from typing import TYPE_CHECKING, Any, Final

from lakehouse.errors import (
    ForbiddenError,
    InvalidInputError,
    LakehouseError,
    NamespaceNotFoundError,
    TableNotFoundError,
    UnsupportedOperationError,
)
from lakehouse.names import is_quarantine
from lakehouse.storage import StorageContext
from lakehouse.tables.base import TableName

if TYPE_CHECKING:
    from lakehouse.catalog.records import TableRecord
    from lakehouse.core import Lakehouse

PREFIX: Final = "/api/2.1/unity-catalog"
CREDENTIAL_TTL_MS: Final = 3_600_000


class UnityCatalog:
    """One caller's view: ``reads_pii`` says whether tables with PII are listed and described."""

    def __init__(self, lh: Lakehouse, *, reads_pii: bool) -> None:
        self.lh = lh
        self.reads_pii = reads_pii
        self.name = lh.ctx.catalog_name

    # ---- catalogs and schemas -------------------------------------------------------------------------------

    def catalog_info(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "comment": f"lakehouse warehouse {self.lh.ctx.warehouse}",
            "properties": {},
            "id": str(uuid.uuid5(uuid.NAMESPACE_URL, self.lh.ctx.warehouse)),
        }

    def list_catalogs(self) -> dict[str, Any]:
        return {"catalogs": [self.catalog_info()]}

    def get_catalog(self, name: str) -> dict[str, Any]:
        self._catalog(name)
        return self.catalog_info()

    def list_schemas(self, catalog_name: str) -> dict[str, Any]:
        self._catalog(catalog_name)
        namespaces = sorted({r.name.namespace for r in self.lh.list_tables() if not r.name.external})
        return {"schemas": [self._schema_info(ns) for ns in namespaces]}

    def get_schema(self, full_name: str) -> dict[str, Any]:
        catalog, _, ns = full_name.partition(".")
        self._catalog(catalog)
        if not ns or not self.lh.list_tables(namespace=ns):
            raise NamespaceNotFoundError(f"no schema {full_name}")
        return self._schema_info(ns)

    # ---- tables ---------------------------------------------------------------------------------------------

    def list_tables(self, catalog_name: str, schema_name: str) -> dict[str, Any]:
        self._catalog(catalog_name)
        records = self.lh.list_tables(namespace=schema_name, format="delta")
        tables = []
        for record in records:
            if record.error is None and (self.reads_pii or not self._pii_columns(record.name)):
                try:
                    tables.append(self._table_info(record))
                except LakehouseError:  # one table that cannot be opened (its files gone) hides no other
                    continue
        return {"tables": tables}

    def get_table(self, full_name: str) -> dict[str, Any]:
        record = self._record(full_name)
        self._check_pii(record.name)
        return self._table_info(record)

    def temporary_credentials(self, table_id: str, operation: str) -> dict[str, Any]:
        if operation not in ("READ", "READ_WRITE"):
            raise InvalidInputError(f"operation must be READ or READ_WRITE, not {operation!r}")
        record = next((r for r in self.lh.list_tables(format="delta") if self._table_id(r.name) == table_id), None)
        if record is None:
            raise TableNotFoundError(f"no Delta table with id {table_id}")
        self._check_pii(record.name)
        if StorageContext.is_s3(record.location):
            raise UnsupportedOperationError(
                "lakehouse does not vend S3 credentials (they would not be scoped to one table)",
                hint="configure the engine with S3 credentials of its own for the warehouse bucket",
            )
        return {"expiration_time": int(time.time() * 1000) + CREDENTIAL_TTL_MS, "url": _uri(record.location)}

    # ---- helpers --------------------------------------------------------------------------------------------

    def _catalog(self, name: str) -> None:
        if name != self.name:
            raise NamespaceNotFoundError(f"no catalog {name}; this server's catalog is {self.name}")

    def _schema_info(self, ns: str) -> dict[str, Any]:
        return {"name": ns, "catalog_name": self.name, "full_name": f"{self.name}.{ns}", "properties": {}}

    def _record(self, full_name: str) -> TableRecord:
        parts = full_name.split(".")
        if len(parts) != 3:
            raise InvalidInputError(f"a table's full name is catalog.schema.table, not {full_name!r}")
        self._catalog(parts[0])
        record = self.lh.catalog.get_table(TableName.parse(f"{parts[1]}.{parts[2]}"))
        if record.format != "delta":
            raise TableNotFoundError(f"{record.name} is an {record.format} table: attach the Iceberg REST catalog")
        return record

    def _table_id(self, name: TableName) -> str:
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{self.lh.ctx.warehouse}#{name}"))

    def _table_info(self, record: TableRecord) -> dict[str, Any]:
        table = self.lh.table(record.name)
        columns = table.catalog_columns()
        uri = _uri(record.location)
        return {
            "name": record.name.table,
            "catalog_name": self.name,
            "schema_name": record.name.namespace,
            "full_name": f"{self.name}.{record.name}",
            "table_type": "EXTERNAL",
            "data_source_format": "DELTA",
            "storage_location": uri,
            "table_id": self._table_id(record.name),
            "columns": columns,
            "properties": {},
            "created_at": int(record.created_at.timestamp() * 1000),
            "updated_at": int(record.updated_at.timestamp() * 1000),
        }

    def _pii_columns(self, name: TableName) -> set[str]:
        if is_quarantine(name):  # raw input: every column (no policy knows which part of a payload is PII)
            return {"<quarantine: raw input>"}
        return {t["column"] for t in self.lh.catalog.pii_tags(name)} | set(self.lh.policy(name).masking)

    def _check_pii(self, name: TableName) -> None:
        if self.reads_pii:
            return
        columns = self._pii_columns(name)
        if columns:
            raise ForbiddenError(
                f"table {name} has PII columns ({', '.join(sorted(columns))}): an engine reads the files "
                "themselves, so masking cannot apply; handing it over needs the admin role",
                hint="query it masked through POST /query",
            )


def _uri(location: str) -> str:
    return location if StorageContext.is_s3(location) else "file://" + location
