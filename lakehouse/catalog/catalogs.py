"""Connected external Iceberg catalogs, and the rows of their tables (``catalog.namespace.table``) that let every
job, policy, lease and record work on them as on our own tables. What the catalog is asked and how is
:mod:`lakehouse.external`'s business; this part only stores."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from lakehouse.catalog.records import _now
from lakehouse.catalog.schema import catalogs_t, expired_t, layouts_t, pii_t, policies_t, tables_t
from lakehouse.catalog.tables import TablesMixin
from lakehouse.errors import InvalidInputError, TableNotFoundError
from lakehouse.tables.base import TableDefinition, TableName


@dataclass(frozen=True)
class CatalogEntry:
    """One connected catalog as stored (``properties`` may hold ``${ENV}`` references, resolved on use)."""

    name: str
    type: str
    properties: dict[str, str]
    source: str = "database"
    """``database`` (``lakehouse catalog add``) or ``settings`` (``[catalogs.NAME]`` in lakehouse.toml)."""


@dataclass(frozen=True)
class SyncedTable:
    """A table an external catalog listed, as the catalog row will hold it."""

    name: TableName
    location: str
    definition: TableDefinition


class CatalogsMixin(TablesMixin):
    def add_catalog(self, name: str, type_: str, properties: Mapping[str, str], *, actor: str) -> None:
        with self._tx() as conn:
            if conn.execute(sa.select(catalogs_t.c.name).where(catalogs_t.c.name == name)).first():
                raise InvalidInputError(
                    f"catalog {name} is connected already", hint=f"`lakehouse catalog remove {name}` first"
                )
            conn.execute(
                catalogs_t.insert().values(
                    name=name,
                    type=type_,
                    properties_json=json.dumps(dict(properties), sort_keys=True),
                    created_at=_now(),
                    created_by=actor,
                )
            )
            self._audit_row(conn, "catalog.add", table=None, actor=actor, details={"catalog": name, "type": type_})

    def stored_catalogs(self) -> list[CatalogEntry]:
        with self._tx() as conn:
            rows = conn.execute(sa.select(catalogs_t).order_by(catalogs_t.c.name)).all()
        return [CatalogEntry(r.name, r.type, json.loads(r.properties_json)) for r in rows]

    def remove_catalog(self, name: str, *, actor: str) -> list[str]:
        """Forget a catalog and the rows of its tables (with their policies, tags and layouts); the job history
        and the audit log keep what was done. Returns the table names forgotten."""
        with self._tx() as conn:
            gone = conn.execute(catalogs_t.delete().where(catalogs_t.c.name == name))
            names = self._forget_tables(conn, [str(n) for n in self._catalog_table_names(conn, name)])
            if gone.rowcount == 0 and not names:
                raise TableNotFoundError(f"no catalog {name} is connected", hint="see `lakehouse catalog list`")
            self._audit_row(
                conn, "catalog.remove", table=None, actor=actor, details={"catalog": name, "tables": len(names)}
            )
        return names

    @staticmethod
    def _catalog_table_names(conn: Any, catalog: str) -> list[TableName]:
        rows = conn.execute(sa.select(tables_t.c.name).where(tables_t.c.namespace.like(f"{catalog}.%"))).all()
        return [n for n in (TableName.parse(r.name) for r in rows) if n.catalog == catalog]

    @staticmethod
    def _forget_tables(conn: Any, names: Sequence[str]) -> list[str]:
        for t in (layouts_t, expired_t, policies_t, pii_t):
            conn.execute(t.delete().where(t.c.table_name.in_(names)))
        conn.execute(tables_t.delete().where(tables_t.c.name.in_(names)))
        return list(names)

    def sync_catalog_tables(
        self, catalog: str, tables: Sequence[SyncedTable], *, actor: str
    ) -> tuple[list[str], list[str], list[str], dict[str, str]]:
        """Make the rows of ``catalog``'s tables what it listed, in one transaction: new tables added, moved or
        changed ones updated, tables it no longer lists forgotten (with their policies). Returns (added,
        updated, removed, skipped with the reason): a table whose definition cannot be stored, or whose
        location another row holds, is skipped and the rest go on."""
        added: list[str] = []
        updated: list[str] = []
        skipped: dict[str, str] = {}
        now = _now()
        with self._tx() as conn:
            present = {str(n) for n in self._catalog_table_names(conn, catalog)}
            listed = {str(t.name) for t in tables}
            # tables gone from the owner first: a table renamed there keeps its location, which its old row
            # would still hold when the new name is added
            removed = self._forget_tables(conn, sorted(present - listed))
            for t in tables:
                key = str(t.name)
                try:
                    columns = self._definition_columns(t.definition)
                except Exception as e:  # noqa: BLE001 - a type the catalog cannot store: that table only
                    skipped[key] = getattr(e, "message", str(e))
                    continue
                holder = conn.execute(
                    sa.select(tables_t.c.name).where(tables_t.c.location == t.location, tables_t.c.name != key)
                ).first()
                if holder is not None:
                    skipped[key] = f"its location {t.location} is table {holder.name}'s"
                    continue
                if key in present:
                    row = conn.execute(sa.select(tables_t).where(tables_t.c.name == key)).one()
                    if row.location != t.location or any(getattr(row, c) != v for c, v in columns.items()):
                        conn.execute(
                            tables_t.update()
                            .where(tables_t.c.name == key)
                            .values(location=t.location, updated_at=now, **columns)
                        )
                        updated.append(key)
                else:
                    conn.execute(
                        tables_t.insert().values(
                            name=key,
                            namespace=t.name.qualified_namespace,
                            format="iceberg",
                            location=t.location,
                            created_at=now,
                            updated_at=now,
                            **columns,
                        )
                    )
                    added.append(key)
            if added or removed:
                self._audit_row(
                    conn,
                    "catalog.sync",
                    table=None,
                    actor=actor,
                    details={"catalog": catalog, "added": added, "removed": removed, "skipped": sorted(skipped)},
                )
        return added, updated, removed, skipped
