"""The Iceberg REST catalog (Apache Iceberg's REST OpenAPI spec) over lakehouse's catalog.

Every answer comes from the catalog the CLI uses: the table registry (``table list``) and pyiceberg's SQL catalog
on the same database, which holds each Iceberg table's current metadata file. A client's commit (an append by
pyiceberg, DuckDB or Spark) is applied by that SQL catalog with its requirements checked against the current
metadata and the catalog row swapped only if no one committed meanwhile, exactly as a lakehouse compaction
commits; a lost race answers 409 and the client retries on fresh metadata. Each commit lands in the job history
(kind ``rest-commit``, with its snapshots), hence in lineage, and in the audit log.

Governance: clients read and write the data files themselves, so masking cannot be applied after the handover.
A table with PII (tags from ``pii scan`` or a masking policy) is handed only to a caller who may read PII (the
admin role); anyone else gets 403 naming the columns, and can query it masked through ``POST /query``.

What is not served: views, multi-table transactions, server-side scan planning, vended storage credentials
(clients bring their own object-store credentials; on a local warehouse they read the files by path).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

from lakehouse.errors import (
    ForbiddenError,
    InvalidInputError,
    InvalidTableNameError,
    LakehouseError,
    NamespaceNotEmptyError,
    NamespaceNotFoundError,
    TableNotFoundError,
)
from lakehouse.names import is_quarantine
from lakehouse.storage import StorageContext, lies_within, normalize_path
from lakehouse.tables import iceberg as ice
from lakehouse.tables.base import TableName

if TYPE_CHECKING:
    from lakehouse.core import Lakehouse

PREFIX: Final = "/iceberg"
"""Where the API serves it: clients take ``http://host:port/iceberg`` as the catalog URI."""

ENDPOINTS: Final = (
    "GET /v1/{prefix}/namespaces",
    "POST /v1/{prefix}/namespaces",
    "GET /v1/{prefix}/namespaces/{namespace}",
    "HEAD /v1/{prefix}/namespaces/{namespace}",
    "DELETE /v1/{prefix}/namespaces/{namespace}",
    "POST /v1/{prefix}/namespaces/{namespace}/properties",
    "GET /v1/{prefix}/namespaces/{namespace}/tables",
    "POST /v1/{prefix}/namespaces/{namespace}/tables",
    "GET /v1/{prefix}/namespaces/{namespace}/tables/{table}",
    "HEAD /v1/{prefix}/namespaces/{namespace}/tables/{table}",
    "POST /v1/{prefix}/namespaces/{namespace}/tables/{table}",
    "DELETE /v1/{prefix}/namespaces/{namespace}/tables/{table}",
    "POST /v1/{prefix}/namespaces/{namespace}/register",
    "POST /v1/{prefix}/namespaces/{namespace}/tables/{table}/metrics",
    "POST /v1/{prefix}/tables/rename",
)
"""What ``GET /v1/config`` advertises: the routes this module answers (clients check before calling)."""

JOB_KIND: Final = "rest-commit"


class IcebergRestCatalog:
    """One caller's view of the served catalog: ``reads_pii`` says whether tables with PII may be handed over."""

    def __init__(self, lh: Lakehouse, *, reads_pii: bool) -> None:
        self.lh = lh
        self.reads_pii = reads_pii

    # ---- config and namespaces ------------------------------------------------------------------------------

    def config(self) -> dict[str, Any]:
        return {"defaults": {}, "overrides": {}, "endpoints": list(ENDPOINTS)}

    def list_namespaces(self, parent: str | None = None) -> dict[str, Any]:
        if parent:
            self._namespace(parent)
            return {"namespaces": []}  # lakehouse namespaces have one level
        return {"namespaces": [[ns] for ns in self._namespaces()]}

    def create_namespace(self, body: Mapping[str, Any]) -> dict[str, Any]:
        parts = body.get("namespace")
        props = body.get("properties") or {}
        if not isinstance(parts, list) or not all(isinstance(p, str) for p in parts):
            raise InvalidInputError('a namespace is a list of strings, e.g. {"namespace": ["sales"]}')
        if not isinstance(props, dict) or not all(isinstance(v, str) for v in props.values()):
            raise InvalidInputError("namespace properties are a map of strings")
        ns = self._check_name(parts)
        ice.rest_create_namespace(self.lh.ctx, ns, props)
        self.lh.catalog.audit("namespace.create", table=None, actor=self.lh.actor, details={"namespace": ns})
        return {"namespace": [ns], "properties": props}

    def load_namespace(self, namespace: str) -> dict[str, Any]:
        ns = self._namespace(namespace)
        try:
            props = ice.rest_namespace_properties(self.lh.ctx, ns)
        except NamespaceNotFoundError:
            props = {}  # it holds only tables lakehouse registered (Delta ones, say): it exists, without properties
        return {"namespace": [ns], "properties": props}

    def update_namespace(self, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]:
        ns = self._namespace(namespace)
        removals = body.get("removals") or []
        updates = body.get("updates") or {}
        if not isinstance(removals, list) or not isinstance(updates, dict):
            raise InvalidInputError('expected {"removals": [keys], "updates": {key: value}}')
        if not all(isinstance(v, str) for v in updates.values()) or not all(isinstance(r, str) for r in removals):
            raise InvalidInputError("namespace properties are a map of strings, and removals a list of keys")
        if ns not in ice.rest_namespaces(self.lh.ctx):
            ice.rest_create_namespace(self.lh.ctx, ns, {})
        result = ice.rest_update_namespace(self.lh.ctx, ns, [str(r) for r in removals], updates)
        self.lh.catalog.audit("namespace.update", table=None, actor=self.lh.actor, details={"namespace": ns, **result})
        return result

    def drop_namespace(self, namespace: str) -> None:
        ns = self._namespace(namespace)
        held = [str(r.name) for r in self.lh.list_tables(namespace=ns)]
        if held:
            raise NamespaceNotEmptyError(
                f"namespace {ns} still has tables: {', '.join(held[:10])}", hint="drop its tables first"
            )
        ice.rest_drop_namespace(self.lh.ctx, ns)
        self.lh.catalog.audit("namespace.drop", table=None, actor=self.lh.actor, details={"namespace": ns})

    # ---- tables ---------------------------------------------------------------------------------------------

    def list_tables(self, namespace: str) -> dict[str, Any]:
        ns = self._namespace(namespace)
        records = self.lh.list_tables(namespace=ns, format="iceberg")
        return {"identifiers": [{"namespace": [ns], "name": r.name.table} for r in records]}

    def create_table(self, namespace: str, body: bytes) -> dict[str, Any]:
        ns = self._namespace(namespace)
        table_name, location, staged, paths = ice.rest_create_request(body)
        name = self._new_name(self._table_name(ns, table_name))
        if location is not None:
            self._check_in_warehouse(location)
        name, loc = self.lh.prepare_create(name, location)
        self._check_paths(paths, loc)
        if staged:
            return self._with_config(ice.rest_stage_create(name, body, location=loc, ctx=self.lh.ctx))
        table = self.lh.create_table_native(name, format="iceberg", spec=body, location=loc)
        return self._with_config(self._adapter(table).rest_table())

    def register_table(self, namespace: str, body: bytes) -> dict[str, Any]:
        ns = self._namespace(namespace)
        table_name, metadata_location = ice.rest_register_request(body)
        name = self._new_name(self._table_name(ns, table_name))
        location = ice.rest_metadata_table_location(metadata_location)
        self._check_in_warehouse(location)  # lakehouse's jobs would write there
        table = self.lh.register_table(name, location=location, format="iceberg", metadata_location=metadata_location)
        return self._with_config(self._adapter(table).rest_table())

    def load_table(self, namespace: str, table: str) -> dict[str, Any]:
        name = self._existing(namespace, table)
        self._check_pii(name)
        return self._with_config(self._adapter(self.lh.table(name)).rest_table())

    def table_exists(self, namespace: str, table: str) -> None:
        self._existing(namespace, table)

    def commit(self, namespace: str, table: str, body: bytes) -> dict[str, Any]:
        """Apply a client's commit; a staged create's commit creates and registers the table."""
        ns = self._namespace(namespace)
        name = self._table_name(ns, table)
        try:
            record = self.lh.catalog.get_table(name)
        except TableNotFoundError:

            def new_table(locations: list[str], paths: dict[str, str]) -> None:
                self._new_name(name)
                if len(set(locations)) != 1:
                    raise InvalidInputError("a staged create's commit sets the table's location exactly once")
                self._check_in_warehouse(locations[0])
                _, loc = self.lh.prepare_create(name, locations[0], written=True)
                self._check_paths(paths, loc)

            created, answer = ice.IcebergAdapter.commit_create(name, body, ctx=self.lh.ctx, guard=new_table)
            self.lh.adopt_created(created, format="iceberg")
            return answer
        if record.format != "iceberg":
            raise TableNotFoundError(f"{name} is a {record.format} table, not an Iceberg one")
        self._check_pii(name)
        adapter = self._adapter(self.lh.table(name))

        def same_place(locations: list[str], paths: dict[str, str]) -> None:
            for location in locations:
                if normalize_path(location).rstrip("/") != normalize_path(record.location).rstrip("/"):
                    raise InvalidInputError(
                        f"the commit moves {name} to {location}: the served catalog does not move tables "
                        f"(it stays at {record.location})",
                        hint="leave set-location out, or give the table's current location",
                    )
            self._check_paths(paths, record.location)

        answer, summary = adapter.rest_commit(body, guard=same_place)
        # the commit landed: what follows only records it, and a failure there does not undo or hide it
        metrics = {
            "snapshots": len(summary["snapshots"]),
            "rows_added": sum(s["added_records"] for s in summary["snapshots"]),
            "rows_deleted": sum(s["deleted_records"] for s in summary["snapshots"]),
            "metadata_location": answer.get("metadata-location"),
        }
        try:
            job = self.lh.catalog.record_job(
                JOB_KIND, table=name, params=summary, state="committed", metrics=metrics, actor=self.lh.actor
            )
            self.lh.catalog.audit(
                "table.rest-commit", table=name, actor=self.lh.actor, details={**summary, **metrics}, job_id=job
            )
            self.lh.catalog.update_table(name, adapter.definition)
        except LakehouseError:
            self.lh.catalog.update_table(name)
        return answer

    def drop_table(self, namespace: str, table: str, *, purge: bool) -> None:
        name = self._existing(namespace, table)
        self.lh.drop_table(name, purge=purge)

    def rename_table(self, body: Mapping[str, Any]) -> None:
        def ident(key: str) -> TableName:
            value = body.get(key)
            if not isinstance(value, dict):
                raise InvalidInputError(f'{key} must be {{"namespace": [...], "name": ...}}')
            parts = value.get("namespace")
            if not isinstance(parts, list):
                raise InvalidInputError(f"{key}.namespace must be a list of strings")
            table = value.get("name")
            if not isinstance(table, str) or not table:
                raise InvalidInputError(f"{key}.name must be a table name (a non-empty string)")
            return self._table_name(self._check_name(parts), table)

        source, target = ident("source"), self._new_name(ident("destination"))
        self._existing(source.namespace, source.table)
        self._check_pii(source)  # renaming a quarantine table away would hand it to whoever may read the new name
        self._namespace(target.namespace)  # the spec's 404 for a destination namespace that does not exist
        self.lh.rename_table(source, target)

    def report_metrics(self, namespace: str, table: str) -> None:
        self._existing(namespace, table)

    # ---- helpers --------------------------------------------------------------------------------------------

    def _with_config(self, answer: dict[str, Any]) -> dict[str, Any]:
        """A load-table answer with where the files are (S3 endpoint, region, addressing; never a secret)."""
        credentials = self.lh.ctx.credentials
        if credentials is not None and StorageContext.is_s3(self.lh.ctx.warehouse):
            answer["config"] = {**credentials.pyiceberg_client_properties(), **answer.get("config", {})}
        return answer

    def _check_in_warehouse(self, location: str) -> None:
        """The served catalog puts tables inside the warehouse only: a client's location cannot reach any other
        place the server may write (another bucket, ``/etc``, a path relative to the server's directory)."""
        if not lies_within(location, self.lh.ctx.warehouse):
            raise ForbiddenError(
                f"location {location} is not inside the warehouse {self.lh.ctx.warehouse}: the served catalog "
                "keeps its tables there",
                hint="leave the location out (the table goes to its default place) or give one under the warehouse",
            )

    @staticmethod
    def _check_paths(paths: Mapping[str, str], location: str) -> None:
        """Path properties (``write.data.path``, ``write.metadata.path``...) may only point inside the table's
        location: the catalog writes metadata files there, and lakehouse's jobs data files."""
        for key, value in sorted(paths.items()):
            if not lies_within(value, location):
                what = f"table property {key}={value}" if "." in key.split(" ")[0] else f"the commit's {key}"
                raise ForbiddenError(
                    f"{what} points outside the table's location {location}"
                    + ("" if what.startswith("table property") or value in key else f" ({value})"),
                    hint="leave it out, or give a path under the table's location",
                )

    def _namespaces(self) -> list[str]:
        held = {r.name.namespace for r in self.lh.list_tables(format="iceberg") if not r.name.external}
        return sorted(held | set(ice.rest_namespaces(self.lh.ctx)))

    def _namespace(self, namespace: str) -> str:
        """A namespace that exists: pyiceberg's SQL catalog knows it, or a registered table lives in it."""
        ns = self._check_name(namespace.split("\x1f"))  # the spec's separator between levels in a path
        if ns in self._namespaces() or self.lh.list_tables(namespace=ns):
            return ns
        raise NamespaceNotFoundError(f"no namespace {ns}", hint="create it first: POST /v1/namespaces")

    @staticmethod
    def _check_name(parts: list[str]) -> str:
        if len(parts) != 1:
            raise InvalidInputError(
                f"namespace {'.'.join(parts)!r} has {len(parts)} levels; lakehouse namespaces have exactly one"
            )
        try:
            return TableName.parse(f"{parts[0]}.x").namespace
        except InvalidTableNameError as e:
            raise InvalidInputError(f"invalid namespace {parts[0]!r}: {e.message}") from e

    @staticmethod
    def _table_name(namespace: str, table: str) -> TableName:
        return TableName.parse(f"{namespace}.{table}")

    @staticmethod
    def _new_name(name: TableName) -> TableName:
        """A name a client may give a table: not a quarantine table's (ingestion makes those, holding raw input
        only admins read; a client's table of that name would be taken for one, or take its place)."""
        if is_quarantine(name):
            raise ForbiddenError(
                f"{name}: names ending in __quarantine are reserved for ingestion's quarantine tables",
                hint="pick another name",
            )
        return name

    def _existing(self, namespace: str, table: str) -> TableName:
        ns = self._namespace(namespace)
        name = self._table_name(ns, table)
        record = self.lh.catalog.get_table(name)
        if record.format != "iceberg":
            raise TableNotFoundError(f"{name} is a {record.format} table, not an Iceberg one")
        return name

    def _check_pii(self, name: TableName) -> None:
        if self.reads_pii:
            return
        if is_quarantine(name):
            raise ForbiddenError(
                f"{name} is a quarantine table: it holds raw input, handed over with the PII-read permission only",
                hint="ask an admin",
            )
        columns = {t["column"] for t in self.lh.catalog.pii_tags(name)} | set(self.lh.policy(name).masking)
        if columns:
            raise ForbiddenError(
                f"table {name} has PII columns ({', '.join(sorted(columns))}): a catalog client reads the files "
                "themselves, so masking cannot apply; handing it over needs the admin role",
                hint="query it masked through POST /query",
            )

    @staticmethod
    def _adapter(table: Any) -> ice.IcebergAdapter:
        if not isinstance(table, ice.IcebergAdapter):
            raise TableNotFoundError(f"{table.name} is not an Iceberg table")
        return table


def client_snippets(base_url: str) -> str:
    """How to attach each engine to the catalog served at ``base_url`` (``lakehouse serve`` prints this)."""
    uri = base_url.rstrip("/") + PREFIX
    tokens = f"{uri}/v1/oauth/tokens"
    return f"""Iceberg REST catalog: {uri}  (bearer: an API key, or a token from {tokens})

DuckDB (iceberg extension):
  CREATE SECRET lh (TYPE iceberg, CLIENT_ID 'duckdb', CLIENT_SECRET '<api key>', OAUTH2_SERVER_URI '{tokens}');
  ATTACH 'lakehouse' AS lh (TYPE iceberg, ENDPOINT '{uri}', SECRET lh);
  SHOW ALL TABLES;

Spark (Iceberg runtime jar on the classpath):
  --conf spark.sql.catalog.lh=org.apache.iceberg.spark.SparkCatalog
  --conf spark.sql.catalog.lh.type=rest
  --conf spark.sql.catalog.lh.uri={uri}
  --conf spark.sql.catalog.lh.credential=spark:<api key>
  --conf spark.sql.catalog.lh.oauth2-server-uri={tokens}

pyiceberg:
  from pyiceberg.catalog.rest import RestCatalog
  catalog = RestCatalog("lh", uri="{uri}", token="<api key>")

Unity Catalog API for the Delta tables: {base_url.rstrip("/")}/api/2.1/unity-catalog

DuckDB (unity_catalog extension):
  CREATE SECRET (TYPE unity_catalog, TOKEN '<api key>', ENDPOINT '{base_url.rstrip("/")}', AWS_REGION 'us-east-1');
  ATTACH '<catalog_name setting, default lakehouse>' AS uc (TYPE unity_catalog);

delta-rs (by location; `lakehouse table show` prints it):
  from deltalake import DeltaTable
  DeltaTable("<table location>")

Tables with PII columns are handed only to admin keys (clients read files directly, so masking cannot apply).
"""
