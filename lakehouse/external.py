"""External Iceberg catalogs: maintain tables where they already live, without a split brain.

A table that AWS Glue, an Iceberg REST catalog (Polaris, Lakekeeper, another lakehouse's ``/iceberg``), a
SQL/JDBC catalog or a Hive metastore owns stays owned by it. ``lakehouse catalog add NAME --type ...`` (or
``[catalogs.NAME]`` in ``lakehouse.toml``) connects the catalog through pyiceberg's own implementation of its
type; its tables are then ``NAME.namespace.table`` everywhere (``table list``, jobs, policies, SQL), and every
commit of every job goes **through the owner catalog**, with that catalog's concurrency check (Glue's table
version, the REST server's requirements, the SQL row's compare-and-swap). Nothing of the table is copied into
our catalog: its rows in ``lh_tables`` only mirror what the owner lists (name, location, definition), refreshed
by :func:`sync`, so that our own bookkeeping (jobs, policies, leases, audit, lineage) has a key.

Credentials: a catalog's ``s3.*`` properties (pyiceberg's names) describe the store its tables' files are on;
a ``[stores.NAME]`` setting whose prefix holds a table's location wins over them; otherwise the warehouse's
``[s3]``. A property value ``${VAR}`` is read from the environment when the catalog is opened, so secrets
need not be stored in the catalog database.

    >>> resolve_properties({"uri": "http://h", "credential": "${LH_DOCTEST_SECRET}"}, {"LH_DOCTEST_SECRET": "k:s"})
    {'uri': 'http://h', 'credential': 'k:s'}
    >>> redacted({"uri": "http://h", "credential": "k:s", "s3.secret-access-key": "x"})
    {'uri': 'http://h', 'credential': '***', 's3.secret-access-key': '***'}
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from lakehouse.catalog import CatalogEntry, SyncedTable
from lakehouse.credentials import S3Credentials
from lakehouse.errors import ConfigError, InvalidInputError, LakehouseError, TableNotFoundError
from lakehouse.names import TableName, check_catalog_name
from lakehouse.storage import ExternalCatalog, StorageContext
from lakehouse.tables.registry import adapter_class

if TYPE_CHECKING:
    from lakehouse.workspace import Workspace

TYPES = ("glue", "rest", "sql", "hive")
"""Catalog types, by pyiceberg's names (Hive needs ``pip install 'pyiceberg[hive]'``)."""

_SECRET_KEYS = re.compile(r"secret|password|token|credential|session", re.IGNORECASE)
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def resolve_properties(props: Mapping[str, str], environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """``${VAR}`` references replaced by the environment's values.

    Raises:
        ConfigError: a referenced variable is not set."""
    env = os.environ if environ is None else environ

    def value(m: re.Match[str]) -> str:
        if m.group(1) not in env:
            raise ConfigError(f"catalog property refers to ${{{m.group(1)}}}, which is not set in the environment")
        return env[m.group(1)]

    return {k: _ENV_REF.sub(value, v) for k, v in props.items()}


def redacted(props: Mapping[str, str]) -> dict[str, str]:
    """Properties to show: secrets (keys, passwords, tokens, credentials) as ``***`` unless an ``${ENV}``
    reference."""
    return {k: ("***" if _SECRET_KEYS.search(k) and not _ENV_REF.fullmatch(v) else v) for k, v in props.items()}


def connected(lh: Workspace) -> dict[str, CatalogEntry]:
    """Every connected catalog by name: ``[catalogs.NAME]`` settings and ``lakehouse catalog add`` entries (a
    name in both is the settings')."""
    out = {e.name: e for e in lh.catalog.stored_catalogs()}
    for name, c in lh.settings.catalogs.items():
        out[name] = CatalogEntry(name, c.type, dict(c.properties), source="settings")
    return dict(sorted(out.items()))


def entry(lh: Workspace, name: str) -> CatalogEntry:
    found = connected(lh).get(name)
    if found is None:
        raise TableNotFoundError(
            f"no catalog {name} is connected", hint="see `lakehouse catalog list`; connect one with `catalog add`"
        )
    return found


def context(lh: Workspace, catalog: CatalogEntry, location: str | None = None) -> StorageContext:
    """The storage context of ``catalog``'s tables (of the one at ``location``, which may be on a store of its
    own): commits go to the catalog, files are reached with the store's, the catalog's or the warehouse's
    credentials, in that order."""
    props = resolve_properties(catalog.properties)
    base = lh.ctx
    creds = S3Credentials.from_iceberg_properties(props, base.credentials)
    if location is not None and StorageContext.is_s3(location):
        store = base.credentials_for(location)
        if store is not base.credentials:
            creds = store
    spec = ExternalCatalog(catalog.name, catalog.type, tuple(sorted(props.items())))
    return replace(base, credentials=creds, external=spec)


@dataclass
class SyncReport:
    """What one catalog's sync changed in the catalog database."""

    catalog: str
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    error: str | None = None
    """Why the catalog could not be listed (its rows stay as they were)."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "catalog": self.catalog,
            "added": self.added,
            "updated": self.updated,
            "removed": self.removed,
            "skipped": self.skipped,
            "error": self.error,
        }


def sync(lh: Workspace, names: Iterable[str] | None = None) -> list[SyncReport]:
    """Mirror what each connected catalog (or the named ones) lists into the catalog database. A catalog that
    cannot be reached is reported with its error and keeps its rows: one unreachable catalog never stops the
    others, ``table list`` or the autopilot."""
    catalogs = connected(lh)
    wanted = list(catalogs) if names is None else [check_catalog_name(n) for n in names]
    reports = []
    for name in wanted:
        report = SyncReport(name)
        reports.append(report)
        try:
            catalog = catalogs.get(name) or entry(lh, name)
            ctx = context(lh, catalog)
            found, skipped = adapter_class("iceberg").catalog_tables(ctx)
            report.skipped.update(skipped)
            added, updated, removed, refused = lh.catalog.sync_catalog_tables(
                name, [SyncedTable(n, loc, d) for n, loc, d in found], actor=lh.actor
            )
            report.added, report.updated, report.removed = added, updated, removed
            report.skipped.update(refused)
        except LakehouseError as e:
            report.error = e.message
    return reports


def add(lh: Workspace, name: str, type_: str, properties: Mapping[str, str]) -> SyncReport:
    """Connect a catalog: checked by listing it first (a catalog that cannot be listed is not stored), then
    stored and synced."""
    name = check_catalog_name(name)
    if type_ not in TYPES:
        raise InvalidInputError(f"unknown catalog type {type_!r}", hint=f"use one of: {', '.join(TYPES)}")
    if name in lh.settings.catalogs:
        raise InvalidInputError(f"catalog {name} is connected by the settings ([catalogs.{name}] in lakehouse.toml)")
    if name == lh.ctx.catalog_name:
        raise InvalidInputError(f"{name} is the name of lakehouse's own catalog; pick another")
    props = {str(k): str(v) for k, v in properties.items()}
    probe = CatalogEntry(name, type_, props)
    ctx = context(lh, probe)
    try:
        adapter_class("iceberg").catalog_tables(ctx)  # reachable, and the credentials work
    finally:
        adapter_class("iceberg").release(ctx)
    lh.catalog.add_catalog(name, type_, props, actor=lh.actor)
    return sync(lh, [name])[0]


def remove(lh: Workspace, name: str) -> list[str]:
    """Disconnect a catalog: its tables' rows, policies and tags go from our catalog database (the job history
    and the audit log stay); nothing changes in the catalog itself or in the tables."""
    name = check_catalog_name(name)
    if name in lh.settings.catalogs:
        raise InvalidInputError(
            f"catalog {name} is connected by the settings", hint=f"remove [catalogs.{name}] from lakehouse.toml"
        )
    return lh.catalog.remove_catalog(name, actor=lh.actor)


def owner_of(lh: Workspace, location: str) -> TableName | None:
    """The connected catalog's table at ``location`` (after a sync of every catalog when none is known)."""
    from lakehouse.storage import normalize_path

    def known() -> TableName | None:
        loc = normalize_path(location).rstrip("/")
        for record in lh.catalog.list_tables():
            if record.name.external and normalize_path(record.location).rstrip("/") == loc:
                return record.name
        return None

    found = known()
    if found is None and connected(lh):
        sync(lh)
        found = known()
    return found
