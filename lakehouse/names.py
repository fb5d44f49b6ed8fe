"""Table names: the one validated ``namespace.table`` spelling (``catalog.namespace.table`` for a table of a
connected external catalog), and the naming rules built on it (a target table's quarantine). Below the
settings, which key per-table policies by name, and below everything that stores, reads or refuses a table by
its name.

    >>> is_quarantine(quarantine_name(TableName.parse("sales.orders")))
    True
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from lakehouse.errors import InvalidTableNameError

_IDENT = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


@dataclass(frozen=True, order=True)
class TableName:
    """A validated ``namespace.table`` name (lower case letters, digits and ``_``); a table an external catalog
    owns (see :mod:`lakehouse.external`) is ``catalog.namespace.table``.

    >>> TableName.parse("Sales.Orders")
    TableName(namespace='sales', table='orders', catalog='')
    >>> str(TableName.parse("glue.sales.orders")), TableName.parse("glue.sales.orders").external
    ('glue.sales.orders', True)
    """

    namespace: str
    table: str
    catalog: str = ""
    """The external catalog that owns the table; empty for lakehouse's own catalog."""

    @classmethod
    def parse(cls, text: str | TableName) -> TableName:
        if isinstance(text, TableName):
            return text
        raw = (text or "").strip()
        parts = raw.split(".")
        if len(parts) not in (2, 3):
            raise InvalidTableNameError(
                f"invalid table name {raw!r}",
                hint="write namespace.table, e.g. events.clicks (catalog.namespace.table for a connected catalog)",
            )
        lowered = [p.lower() for p in parts]
        for p in lowered:
            if not _IDENT.match(p):
                raise InvalidTableNameError(
                    f"invalid table name {raw!r}: {p!r} must start with a letter or _ and hold only "
                    "letters, digits and _ (at most 63)"
                )
        if len(lowered) == 3:
            check_catalog_name(lowered[0])
            if len(lowered[0]) + 1 + len(lowered[1]) > 64:
                raise InvalidTableNameError(f"invalid table name {raw!r}: catalog.namespace is longer than 64")
            return cls(lowered[1], lowered[2], lowered[0])
        return cls(lowered[0], lowered[1])

    @property
    def external(self) -> bool:
        """Whether an external catalog owns the table."""
        return bool(self.catalog)

    @property
    def qualified_namespace(self) -> str:
        """The namespace with its catalog (``glue.sales``), as the catalog database stores it."""
        return f"{self.catalog}.{self.namespace}" if self.catalog else self.namespace

    def __str__(self) -> str:
        return f"{self.qualified_namespace}.{self.table}"


def check_catalog_name(name: str) -> str:
    """A connected catalog's name, checked and lower-cased (the first part of its tables' names).

    >>> check_catalog_name("Glue")
    'glue'
    """
    lowered = (name or "").strip().lower()
    if not _IDENT.match(lowered) or len(lowered) > 32:
        raise InvalidTableNameError(
            f"invalid catalog name {name!r}: it must start with a letter or _ and hold only letters, digits and _ "
            "(at most 32)"
        )
    return lowered


QUARANTINE_SUFFIX = "__quarantine"
"""Bad records of ``ns.t`` go to ``ns.t__quarantine`` (see :mod:`lakehouse.ingest.pipeline`)."""


def quarantine_name(target: TableName) -> TableName:
    return TableName(target.namespace, f"{target.table}{QUARANTINE_SUFFIX}", target.catalog)


def is_quarantine(name: TableName | str) -> bool:
    """Whether a table is the quarantine of another (``<namespace>.<table>__quarantine``)."""
    return TableName.parse(name).table.endswith(QUARANTINE_SUFFIX)
