"""The one settings object.

Precedence, lowest first: defaults < ``lakehouse.toml`` < ``LAKEHOUSE_*`` environment < explicit arguments.
Nested settings use ``__`` in the environment (``LAKEHOUSE_S3__ENDPOINT``) and tables in the TOML file
(``[s3] endpoint = ...``). The TOML file is ``./lakehouse.toml`` unless ``LAKEHOUSE_CONFIG`` or the
``config_file`` argument names another; a missing default file is fine, a missing named file is an error.

Example::

    >>> s = load_settings(config_file=False, warehouse="/tmp/wh")
    >>> s.warehouse_uri
    '/tmp/wh'
"""

from __future__ import annotations

import os
import tomllib
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
    TomlConfigSettingsSource,
)

from lakehouse.errors import ConfigError
from lakehouse.pricing import STORAGE, Prices, prices_from

DEFAULT_CONFIG_FILE = "lakehouse.toml"
_config_file: ContextVar[Path | None] = ContextVar("lakehouse_config_file", default=None)

TableFormatName = Literal["delta", "iceberg"]


class S3Settings(BaseModel):
    """Where and how to reach S3 (or MinIO). Unset fields fall back to the standard ``AWS_*`` variables."""

    model_config = {"extra": "forbid"}  # a misspelt key is an error, not silently ignored

    endpoint: str | None = Field(
        default=None, description="S3 endpoint URL, e.g. http://127.0.0.1:9000 for MinIO; unset for AWS."
    )
    region: str | None = Field(default=None, description="Region; falls back to AWS_REGION, then us-east-1.")
    access_key_id: SecretStr | None = None
    secret_access_key: SecretStr | None = None
    session_token: SecretStr | None = None
    path_style: bool | None = Field(
        default=None, description="Path-style addressing; defaults to true when an endpoint is set (MinIO)."
    )
    max_retries: int = Field(
        default=6,
        ge=0,
        le=100,
        description="Retries of one failed S3 request (503 SlowDown, 5xx, a reset connection) after its first "
        "attempt, with exponential backoff; rendered into every client's own retry settings (delta-rs, "
        "pyarrow/pyiceberg, DuckDB, boto3, Spark) by lakehouse.credentials.",
    )
    retry_backoff: float = Field(
        default=0.1,
        gt=0,
        le=60,
        description="Seconds before the first retry; doubles each retry (delta-rs, DuckDB, Spark; pyarrow and "
        "boto3 use their SDK's own jittered backoff).",
    )
    retry_max_backoff: float = Field(
        default=10.0, gt=0, le=600, description="Longest pause between two retries, seconds (delta-rs, Spark)."
    )
    retry_timeout: float = Field(
        default=180.0,
        gt=0,
        description="Seconds after which delta-rs stops retrying a request (object_store's retry_timeout).",
    )


class StoreSettings(S3Settings):
    """Another S3 store: tables whose location starts with ``prefix`` are reached with these settings instead
    of ``[s3]`` (a table on another bucket, another account, another endpoint)."""

    prefix: str = Field(description="The S3 prefix this store serves, e.g. s3://archive-bucket or s3://b/path.")

    @field_validator("prefix")
    @classmethod
    def _check_prefix(cls, v: str) -> str:
        if not v.startswith(("s3://", "s3a://")) or len(v.split("://", 1)[1].strip("/")) == 0:
            raise ValueError(f"prefix {v!r} must be s3://bucket or s3://bucket/path")
        return "s3://" + v.split("://", 1)[1].rstrip("/")


CatalogType = Literal["glue", "rest", "sql", "hive"]


class CatalogSettings(BaseModel):
    """An external Iceberg catalog (``[catalogs.NAME]``): pyiceberg's catalog of ``type`` with ``properties``
    (pyiceberg's own property names, e.g. ``glue.region``, ``uri``, ``credential``, ``s3.endpoint``; a value
    ``${VAR}`` is read from the environment when the catalog is opened)."""

    model_config = {"extra": "forbid"}

    type: CatalogType
    properties: dict[str, str] = Field(default_factory=dict)


class QuerySettings(BaseModel):
    """Limits for SQL through DuckDB."""

    model_config = {"extra": "forbid"}  # a misspelt key is an error, not silently ignored

    max_rows: int = Field(default=10_000, ge=1, description="Rows a query returns at most.")
    memory_limit: str = Field(default="1GB", description="DuckDB memory_limit.")
    threads: int | None = Field(
        default=None,
        ge=1,
        description="DuckDB threads (default: all cores; in a query worker at most 4, see lakehouse.sql.worker).",
    )
    workers: int = Field(
        default=2, ge=1, le=64, description="Worker processes for isolated queries (the API, query --masked)."
    )
    worker_memory: str = Field(
        default="2GB",
        description="Hard memory limit of a query worker (address space beyond its idle size, as an rlimit); a "
        "query that needs more is stopped (HTTP 413). DuckDB's own limit inside is the smaller of this and "
        "memory_limit.",
    )
    timeout_seconds: float = Field(
        default=300, gt=0, le=86_400, description="Wall-clock limit of an isolated query without its own (HTTP 408)."
    )
    max_result_bytes: str = Field(default="256MB", description="Largest answer an isolated query may send back.")
    plan_files: bool = Field(
        default=True,
        description="In-process queries read a table's current version as the Parquet files lakehouse lists for "
        "it, leaving out files whose statistics rule out the WHERE clause, where that reads exactly what the "
        "format's scan reads (lakehouse.sql.planned); false: always DuckDB's delta_scan / iceberg_scan.",
    )


DEFAULT_PRICES = dict(STORAGE)
"""USD per GB-month, AWS S3 us-east-1 list prices (first 50 TB), for the cost report (:mod:`lakehouse.pricing`)."""


class CostSettings(BaseModel):
    """Prices for ``lakehouse cost`` (defaults: AWS S3 us-east-1 list prices, :mod:`lakehouse.pricing`)."""

    model_config = {"extra": "forbid"}  # a misspelt key is an error, not silently ignored

    currency: str = "USD"
    prices: dict[str, float] = Field(
        default_factory=lambda: dict(DEFAULT_PRICES),
        description="Price per GB-month by storage class; entries given here replace the defaults one by one.",
    )
    put_prices: dict[str, float] = Field(
        default_factory=dict, description="Price per 1,000 PUT/COPY/POST/LIST requests by class (over the defaults)."
    )
    get_prices: dict[str, float] = Field(
        default_factory=dict, description="Price per 1,000 GET/HEAD requests by class (over the defaults)."
    )
    retrieval_prices: dict[str, float] = Field(
        default_factory=dict, description="Price per GB read by class (over the defaults: IA 0.01, Glacier IR 0.03)."
    )
    flat_price: float | None = Field(
        default=None,
        description="MinIO / on-premises: every byte at this price per GB-month, whatever its class; requests and "
        "retrievals free.",
    )

    @field_validator("prices", "put_prices", "get_prices", "retrieval_prices")
    @classmethod
    def _merge(cls, v: dict[str, float], info: Any) -> dict[str, float]:
        bad = [k for k, price in v.items() if price < 0]
        if bad:
            raise ValueError(f"negative price for {', '.join(bad)}")
        given = {k.upper(): float(price) for k, price in v.items()}
        return {**DEFAULT_PRICES, **given} if info.field_name == "prices" else given

    @field_validator("flat_price")
    @classmethod
    def _flat(cls, v: float | None) -> float | None:
        if v is not None and v < 0:
            raise ValueError("negative flat price")
        return v

    def price_table(self) -> Prices:
        """The prices as :class:`lakehouse.pricing.Prices`."""
        return prices_from(
            self.prices,
            flat=self.flat_price,
            put=self.put_prices,
            get=self.get_prices,
            retrieval=self.retrieval_prices,
        )


class GovernanceSettings(BaseModel):
    """PII scanning and masking."""

    model_config = {"extra": "forbid"}  # a misspelt key is an error, not silently ignored

    mask_secret: SecretStr | None = Field(
        default=None, description="Secret key of the hash masking policy (HMAC-SHA256); keep it stable."
    )
    pii_sample_rows: int = Field(default=10_000, ge=100, description="Rows `pii scan` samples per table.")


class LineageSettings(BaseModel):
    """Where lineage goes besides the catalog."""

    model_config = {"extra": "forbid"}  # a misspelt key is an error, not silently ignored

    url: str | None = Field(default=None, description="OpenLineage endpoint (e.g. Marquez http://host:5000).")
    namespace: str = Field(default="lakehouse", description="OpenLineage job namespace of lakehouse's jobs.")
    timeout_seconds: float = Field(default=2.0, gt=0, description="Timeout of one forward.")


class ApiSettings(BaseModel):
    """The REST API (`lakehouse serve`)."""

    model_config = {"extra": "forbid"}  # a misspelt key is an error, not silently ignored

    max_body_bytes: int = Field(default=16 * 1024 * 1024, ge=1024, description="Largest request body accepted.")
    query_timeout_seconds: float = Field(default=30.0, gt=0, description="A query is cancelled after this.")
    max_rows: int = Field(default=10_000, ge=1, description="Rows a JSON query answer holds at most.")


class AutopilotSettings(BaseModel):
    """The maintenance scheduler (`lakehouse autopilot`)."""

    model_config = {"extra": "forbid"}  # a misspelt key is an error, not silently ignored

    interval: str = Field(default="5m", description="Time between two passes over the tables.")
    lease_ttl: str = Field(
        default="2m", description="A table lease lapses this long after its last renewal (renewed every third)."
    )
    max_backoff: str = Field(default="1h", description="Longest pause for a table whose maintenance keeps failing.")


class SparkSettings(BaseModel):
    """The Spark engine (`--engine spark`): where the session runs and what it loads.

    The same settings reach a cluster: set ``master`` to its URL (``spark://host:7077``, ``yarn``, ``k8s://...``),
    list the jars or Maven packages it needs (for Delta: ``io.delta:delta-spark_2.12:3.3.2``; for S3:
    ``hadoop-aws`` and the AWS SDK) and any ``spark.*`` option under ``conf``.
    """

    model_config = {"extra": "forbid"}  # a misspelt key is an error, not silently ignored

    master: str = Field(default="local[*]", description="Spark master URL; local[*] runs in this process's JVM.")
    app_name: str = Field(default="lakehouse", description="Spark application name.")
    driver_memory: str = Field(default="1g", description="spark.driver.memory of a session this process starts.")
    jars: list[str] = Field(
        default_factory=list,
        description="Extra jar paths (spark.jars). The Iceberg runtime and the catalog's JDBC driver are found "
        "automatically when not listed.",
    )
    packages: list[str] = Field(
        default_factory=list, description="Maven coordinates (spark.jars.packages); needs a reachable repository."
    )
    conf: dict[str, str] = Field(
        default_factory=dict, description="Any other Spark configuration, applied last (wins over lakehouse's)."
    )
    jdbc_driver: str | None = Field(
        default=None,
        description="JDBC driver jar of the catalog database (default: Debian's sqlite-jdbc / postgresql jars).",
    )
    delta: bool | None = Field(
        default=None,
        description="Load delta-spark (default: when a delta-spark jar or package is configured).",
    )


URL_SPECIAL = frozenset("?#[]")
"""Characters a warehouse or table location may not hold: the format libraries read locations as URLs."""


class Settings(BaseSettings):
    """All settings of a lakehouse process."""

    model_config = SettingsConfigDict(
        env_prefix="LAKEHOUSE_",
        env_nested_delimiter="__",
        extra="forbid",
        validate_default=True,
    )

    warehouse: str = Field(
        default="warehouse",
        description="Warehouse URI: a local directory (default ./warehouse) or s3://bucket/prefix.",
    )
    catalog_url: str | None = Field(
        default=None,
        description=(
            "SQLAlchemy URL of the catalog database. Default: SQLite inside a local warehouse "
            "(<warehouse>/_catalog.db), or ./.lakehouse/catalog.db for an S3 warehouse."
        ),
    )
    catalog_name: str = Field(default="lakehouse", description="Name of the Iceberg SQL catalog.")
    commit_timeout: str = Field(
        default="2m",
        description="Longest a job keeps retrying commits that concurrent writers win (each retry rebases onto "
        "their commits without rewriting data); then it gives up, says why and deletes what it wrote.",
    )
    default_format: TableFormatName = "delta"
    s3: S3Settings = Field(default_factory=S3Settings)
    query: QuerySettings = Field(default_factory=QuerySettings)
    cost: CostSettings = Field(default_factory=CostSettings)
    governance: GovernanceSettings = Field(default_factory=GovernanceSettings)
    lineage: LineageSettings = Field(default_factory=LineageSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)
    autopilot: AutopilotSettings = Field(default_factory=AutopilotSettings)
    spark: SparkSettings = Field(default_factory=SparkSettings)
    stores: dict[str, StoreSettings] = Field(
        default_factory=dict,
        description="Other S3 stores by name ([stores.NAME] prefix = ..., endpoint = ..., keys): tables under a "
        "store's prefix are reached with its settings.",
    )
    catalogs: dict[str, CatalogSettings] = Field(
        default_factory=dict,
        description="External Iceberg catalogs by name ([catalogs.NAME] type = ..., properties = {...}); their "
        "tables are NAME.namespace.table (see `lakehouse catalog`).",
    )
    policy: dict[str, Any] = Field(
        default_factory=dict, description="Maintenance policy defaults for every table (see `lakehouse policy`)."
    )
    tables: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description='Per-table policies: [tables."ns.table"] sections.'
    )

    @field_validator("warehouse")
    @classmethod
    def _check_warehouse(cls, v: str) -> str:
        v = v.strip()
        if not v:
            raise ValueError("warehouse must not be empty")
        if "://" in v:
            scheme, rest = v.split("://", 1)
            if scheme not in ("s3", "s3a", "file"):
                raise ValueError(f"unsupported warehouse scheme in {v!r}: use a directory or s3://bucket/prefix")
            if scheme != "file" and not rest.strip("/"):
                raise ValueError(f"warehouse {v!r} names no bucket: use s3://bucket/prefix")
        if odd := sorted(set(v) & URL_SPECIAL):
            # delta-rs takes a location as a URL: it cut the path at `?` or `#` (the data went outside the table)
            raise ValueError(f"warehouse {v!r} holds {' '.join(odd)}, which table formats read as part of a URL")
        return v.rstrip("/") if v != "/" else v

    @field_validator("commit_timeout")
    @classmethod
    def _check_commit_timeout(cls, v: str) -> str:
        from lakehouse.units import parse_duration

        if parse_duration(v).total_seconds() <= 0:
            raise ValueError("commit_timeout must be longer than 0 s")
        return v

    @field_validator("policy")
    @classmethod
    def _check_policy(cls, v: dict[str, Any]) -> dict[str, Any]:
        from lakehouse.policy import build_policy

        build_policy(v, source="[policy] settings")
        return v

    @field_validator("catalogs")
    @classmethod
    def _check_catalogs(cls, v: dict[str, CatalogSettings]) -> dict[str, CatalogSettings]:
        from lakehouse.names import check_catalog_name

        return {check_catalog_name(name): c for name, c in v.items()}

    @field_validator("tables")
    @classmethod
    def _check_tables(cls, v: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        from lakehouse.names import TableName
        from lakehouse.policy import build_policy

        out = {}
        for name, policy in v.items():
            key = str(TableName.parse(name))
            build_policy(policy, source=f'[tables."{name}"] settings')
            out[key] = policy
        return out

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        path = _config_file.get()
        if path is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        return tuple(sources)

    # ---- derived values -------------------------------------------------------------------------------

    @property
    def commit_timeout_seconds(self) -> float:
        """``commit_timeout`` in seconds."""
        from lakehouse.units import parse_duration

        return parse_duration(self.commit_timeout).total_seconds()

    @property
    def is_s3(self) -> bool:
        """True when the warehouse lives on S3."""
        return self.warehouse.startswith(("s3://", "s3a://"))

    @property
    def warehouse_uri(self) -> str:
        """The warehouse as an absolute path (local) or an ``s3://`` URI."""
        if self.is_s3:
            return "s3://" + self.warehouse.split("://", 1)[1]
        if self.warehouse.startswith("file://"):
            return str(Path(self.warehouse[len("file://") :]).resolve())
        return str(Path(self.warehouse).expanduser().resolve())

    @property
    def resolved_catalog_url(self) -> str:
        """The catalog database URL, with the default filled in."""
        if self.catalog_url:
            return self.catalog_url
        if self.is_s3:
            return f"sqlite:///{Path('.lakehouse/catalog.db').resolve()}"
        return f"sqlite:///{Path(self.warehouse_uri) / '_catalog.db'}"


def _pick_config_file(config_file: str | os.PathLike[str] | Literal[False] | None) -> Path | None:
    if config_file is False:
        return None
    named = config_file if config_file is not None else os.environ.get("LAKEHOUSE_CONFIG")
    if named:
        path = Path(named).expanduser()
        if not path.is_file():
            raise ConfigError(f"config file {str(path)!r} does not exist")
        return path
    default = Path(DEFAULT_CONFIG_FILE)
    return default if default.is_file() else None


def load_settings(config_file: str | os.PathLike[str] | Literal[False] | None = None, **overrides: Any) -> Settings:
    """Load settings with the documented precedence.

    Args:
        config_file: a TOML file; ``None`` means ``$LAKEHOUSE_CONFIG`` or ``./lakehouse.toml`` if present,
            ``False`` means no file at all.
        **overrides: explicit values; they win over everything. ``None`` values are ignored so that unset
            CLI options do not mask the environment.

    Raises:
        ConfigError: when a value is invalid or a named file is missing.
    """
    path = _pick_config_file(config_file)
    token = _config_file.set(path)
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"config file {str(path)!r} is not valid TOML: {e}") from e
    except SettingsError as e:  # a LAKEHOUSE_* variable of a list or table that is not JSON
        raise ConfigError(
            f"invalid settings: {e}",
            hint="a LAKEHOUSE_* variable for a list or table holds JSON, e.g. "
            'LAKEHOUSE_SPARK__JARS=\'["/a.jar", "/b.jar"]\' or LAKEHOUSE_POLICY=\'{"retention": {}}\'',
        ) from e
    except ValidationError as e:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'settings'}: {err['msg']}" for err in e.errors()
        )
        raise ConfigError(f"invalid settings: {problems}") from e
    finally:
        _config_file.reset(token)
