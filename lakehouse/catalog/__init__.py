"""The catalog database: tables, jobs, leases, keys, access log, lineage, audit and policies (see
:mod:`lakehouse.catalog.store`)."""

from lakehouse.catalog.catalogs import CatalogEntry, SyncedTable
from lakehouse.catalog.records import AuditRecord, JobRecord, TableRecord
from lakehouse.catalog.schema import LEASED_KINDS, make_engine
from lakehouse.catalog.store import CatalogStore

__all__ = [
    "LEASED_KINDS",
    "AuditRecord",
    "CatalogEntry",
    "CatalogStore",
    "JobRecord",
    "SyncedTable",
    "TableRecord",
    "make_engine",
]
