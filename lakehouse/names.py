"""Table names: the one validated ``namespace.table`` spelling, and the naming rules built on it (a target
table's quarantine). Below the settings, which key per-table policies by name, and below everything that
stores, reads or refuses a table by its name.

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
    """A validated ``namespace.table`` name (lower case letters, digits and ``_``).

    >>> TableName.parse("Sales.Orders")
    TableName(namespace='sales', table='orders')
    """

    namespace: str
    table: str

    @classmethod
    def parse(cls, text: str | TableName) -> TableName:
        if isinstance(text, TableName):
            return text
        raw = (text or "").strip()
        parts = raw.split(".")
        if len(parts) != 2:
            raise InvalidTableNameError(f"invalid table name {raw!r}", hint="write namespace.table, e.g. events.clicks")
        ns, tb = (p.lower() for p in parts)
        for p in (ns, tb):
            if not _IDENT.match(p):
                raise InvalidTableNameError(
                    f"invalid table name {raw!r}: {p!r} must start with a letter or _ and hold only "
                    "letters, digits and _ (at most 63)"
                )
        return cls(ns, tb)

    def __str__(self) -> str:
        return f"{self.namespace}.{self.table}"


QUARANTINE_SUFFIX = "__quarantine"
"""Bad records of ``ns.t`` go to ``ns.t__quarantine`` (see :mod:`lakehouse.ingest.pipeline`)."""


def quarantine_name(target: TableName) -> TableName:
    return TableName(target.namespace, f"{target.table}{QUARANTINE_SUFFIX}")


def is_quarantine(name: TableName | str) -> bool:
    """Whether a table is the quarantine of another (``<namespace>.<table>__quarantine``)."""
    return TableName.parse(name).table.endswith(QUARANTINE_SUFFIX)
