"""What the jobs (maintenance, governance, ingest) need of a lakehouse, declared as a Protocol.

:class:`lakehouse.core.Lakehouse` (the facade) satisfies it structurally; the jobs annotate ``lh: Workspace`` and
never import the facade, which sits above them and is imported only by the CLI, the API and the demo. It lists
exactly what the jobs use: the settings, where tables live, the catalog, who acts, opening tables, their
records and effective policies, storing a policy, creating a table (an ingest's quarantine) and the Spark
engine. A job that needs more of the facade gets it added here, so the dependency stays visible.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import pyarrow as pa

    from lakehouse.catalog import CatalogStore, TableRecord
    from lakehouse.config import Settings
    from lakehouse.engines.spark import SparkEngine
    from lakehouse.names import TableName
    from lakehouse.policy import TablePolicy
    from lakehouse.schema import PartitionField
    from lakehouse.storage import StorageContext
    from lakehouse.tables.base import LakehouseTable


class Workspace(Protocol):
    """One warehouse with its catalog, acting for one actor (see :class:`lakehouse.core.Lakehouse`)."""

    @property
    def settings(self) -> Settings: ...

    @property
    def actor(self) -> str:
        """Who the job acts for (job history, audit log)."""
        ...

    @property
    def ctx(self) -> StorageContext: ...

    @property
    def catalog(self) -> CatalogStore: ...

    def table(self, name: str | TableName) -> LakehouseTable:
        """Open a registered table."""
        ...

    def table_record(self, name: str | TableName) -> TableRecord: ...

    def list_tables(self, *, namespace: str | None = None, format: str | None = None) -> list[TableRecord]: ...

    def policy(self, name: str | TableName) -> TablePolicy:
        """The effective maintenance policy of a table (settings and what the catalog stores)."""
        ...

    def set_policy(self, name: str | TableName, changes: Mapping[str, Any], *, replace: bool = False) -> TablePolicy:
        """Store policy values for a table (checked against its columns)."""
        ...

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
    ) -> LakehouseTable: ...

    def sync_catalogs(self, names: Sequence[str] | None = None) -> list[Any]:
        """Mirror the tables of connected external catalogs (the autopilot does before each round)."""
        ...

    def spark(self) -> SparkEngine:
        """The Spark engine (``--engine spark``); its session starts on first use."""
        ...
