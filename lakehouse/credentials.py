"""One credentials model, rendered into each library's dialect.

This is the only module that knows that delta-rs wants ``AWS_ALLOW_HTTP``, pyiceberg wants ``s3.endpoint``,
DuckDB wants ``CREATE SECRET (TYPE s3, ...)`` and boto3 wants ``endpoint_url``.

Example::

    >>> c = S3Credentials(endpoint_url="http://127.0.0.1:9000", region="us-east-1",
    ...                   access_key_id="k", secret_access_key="s")
    >>> c.delta_storage_options()["AWS_ALLOW_HTTP"]
    'true'
    >>> c.pyiceberg_properties()["s3.endpoint"]
    'http://127.0.0.1:9000'

Retries are rendered from the same model (:class:`Retries`, the ``[s3]`` settings ``max_retries``,
``retry_backoff``, ``retry_max_backoff`` and ``retry_timeout``), each into the client's own retry settings, so
every client retries a 503 SlowDown, a 5xx or a reset connection the same number of times with backoff::

    >>> c.delta_storage_options()["max_retries"], c.duckdb_settings()["http_retries"]
    ('6', 6)
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from lakehouse.errors import ConfigError

if TYPE_CHECKING:
    from pyarrow.fs import FileSystem

    from lakehouse.config import S3Settings


def _secret(value: Any) -> str | None:
    if value is None:
        return None
    return str(value.get_secret_value() if hasattr(value, "get_secret_value") else value)


@dataclass(frozen=True)
class Retries:
    """How every S3 client retries one failed request: ``max_retries`` after the first attempt, the first
    pause ``backoff`` seconds, doubling up to ``max_backoff``; delta-rs also gives up after ``timeout`` seconds."""

    max_retries: int = 6
    backoff: float = 0.1
    max_backoff: float = 10.0
    timeout: float = 180.0

    @property
    def attempts(self) -> int:
        """Attempts in all, the first one included (pyarrow's and boto3's count)."""
        return self.max_retries + 1


_RETRY_CLASS = re.compile(r"S3RetryAttempts(\d{1,3})")


def __getattr__(name: str) -> Any:
    """``S3RetryAttempts<n>``: a pyarrow retry strategy class making ``n`` attempts. pyiceberg takes its retry
    strategy as an importable class path and builds it without arguments (``s3.retry-strategy-impl``), so the
    attempt count travels in the class name (see :meth:`S3Credentials.pyiceberg_properties`)."""
    found = _RETRY_CLASS.fullmatch(name)
    if found is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from pyarrow import fs

    attempts = int(found.group(1))

    def __init__(self: Any) -> None:
        fs.AwsStandardS3RetryStrategy.__init__(self, max_attempts=attempts)

    cls = type(name, (fs.AwsStandardS3RetryStrategy,), {"__init__": __init__, "__module__": __name__})
    globals()[name] = cls
    return cls


@dataclass(frozen=True, repr=False)
class S3Credentials:
    """Endpoint, region and keys for S3. ``None`` keys mean the SDK's default chain (instance role...)."""

    endpoint_url: str | None = None
    region: str = "us-east-1"
    access_key_id: str | None = None
    secret_access_key: str | None = None
    session_token: str | None = None
    path_style: bool = False
    retries: Retries = field(default_factory=Retries)

    def __repr__(self) -> str:  # never print secrets
        return (
            f"S3Credentials(endpoint_url={self.endpoint_url!r}, region={self.region!r}, path_style={self.path_style})"
        )

    @classmethod
    def from_settings(cls, s3: S3Settings, environ: dict[str, str] | None = None) -> S3Credentials:
        """Merge the ``[s3]`` settings with the standard ``AWS_*`` variables (settings win)."""
        env = os.environ if environ is None else environ
        endpoint = s3.endpoint or env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL")
        if endpoint:
            parsed = urlparse(endpoint)
            if parsed.scheme not in ("http", "https") or not parsed.netloc:
                raise ConfigError(
                    f"S3 endpoint {endpoint!r} must be a URL such as http://127.0.0.1:9000",
                )
            endpoint = endpoint.rstrip("/")
        region = s3.region or env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1"
        # a key pair and its session token come from one source: the settings' keys with a shell's assumed-role
        # token are a signature every request fails
        if _secret(s3.access_key_id) or _secret(s3.secret_access_key):
            key, secret, token = _secret(s3.access_key_id), _secret(s3.secret_access_key), _secret(s3.session_token)
            if not (key and secret):
                raise ConfigError(
                    f"s3.{'secret_access_key' if key else 'access_key_id'} is not set beside "
                    f"s3.{'access_key_id' if key else 'secret_access_key'}: a key and its secret come together",
                    hint="set both in [s3] (or LAKEHOUSE_S3__*), or neither to use the AWS_* variables",
                )
        else:
            key, secret = env.get("AWS_ACCESS_KEY_ID"), env.get("AWS_SECRET_ACCESS_KEY")
            token = _secret(s3.session_token) or env.get("AWS_SESSION_TOKEN")
        return cls(
            endpoint_url=endpoint,
            region=region,
            access_key_id=key,
            secret_access_key=secret,
            session_token=token,
            path_style=s3.path_style if s3.path_style is not None else endpoint is not None,
            retries=Retries(
                max_retries=s3.max_retries,
                backoff=s3.retry_backoff,
                max_backoff=s3.retry_max_backoff,
                timeout=s3.retry_timeout,
            ),
        )

    @classmethod
    def from_iceberg_properties(
        cls, props: dict[str, str], fallback: S3Credentials | None = None
    ) -> S3Credentials | None:
        """The credentials an external Iceberg catalog's ``s3.*`` properties describe (pyiceberg's names: the
        store its tables' files are on), each missing one from ``fallback``; ``fallback`` when none is given.

        >>> c = S3Credentials.from_iceberg_properties({"s3.endpoint": "http://h:9", "s3.access-key-id": "k",
        ...                                            "s3.secret-access-key": "s"})
        >>> c.endpoint_url, c.path_style, c.access_key_id
        ('http://h:9', True, 'k')
        """
        if not any(k.startswith("s3.") for k in props):
            return fallback
        base = fallback or cls()
        endpoint = props.get("s3.endpoint") or base.endpoint_url
        if endpoint:
            parsed = urlparse(endpoint)
            if parsed.scheme not in ("http", "https") or not parsed.netloc:
                raise ConfigError(f"s3.endpoint {endpoint!r} must be a URL such as http://127.0.0.1:9000")
            endpoint = endpoint.rstrip("/")
        if "s3.path-style-access" in props:
            path_style = props["s3.path-style-access"].lower() == "true"
        elif "s3.force-virtual-addressing" in props:
            path_style = props["s3.force-virtual-addressing"].lower() != "true"
        else:
            path_style = base.path_style if fallback is not None else endpoint is not None
        own_keys = "s3.access-key-id" in props
        return cls(
            endpoint_url=endpoint,
            region=props.get("s3.region") or props.get("client.region") or base.region,
            access_key_id=props.get("s3.access-key-id") if own_keys else base.access_key_id,
            secret_access_key=props.get("s3.secret-access-key") if own_keys else base.secret_access_key,
            session_token=props.get("s3.session-token") if own_keys else base.session_token,
            path_style=path_style,
            retries=base.retries,
        )

    @property
    def allow_http(self) -> bool:
        return bool(self.endpoint_url and self.endpoint_url.startswith("http://"))

    @property
    def endpoint_host(self) -> str | None:
        """``host:port`` of the endpoint, as DuckDB wants it."""
        return urlparse(self.endpoint_url).netloc if self.endpoint_url else None

    # ---- renderings -----------------------------------------------------------------------------------

    def delta_storage_options(self, location: str | None = None) -> dict[str, str]:
        """Options for delta-rs (object_store) for a table at ``location``. Commits use S3 conditional put: no
        lock needed. With an endpoint and virtual-hosted-style requests, object_store takes the endpoint as the
        bucket's own URL (it adds no bucket name): the bucket goes into the endpoint's host (without it, the files
        were written into a bucket named after the first folder of the path).

        >>> c = S3Credentials(endpoint_url="https://s3.example.net", region="r", path_style=False)
        >>> c.delta_storage_options("s3://sales/wh/t")["AWS_ENDPOINT_URL"]
        'https://sales.s3.example.net'
        """
        opts: dict[str, str] = {"AWS_REGION": self.region}
        if self.endpoint_url:
            opts["AWS_ENDPOINT_URL"] = self.endpoint_url
            bucket = urlparse(location).netloc if location and location.startswith(("s3://", "s3a://")) else ""
            if not self.path_style and bucket:
                endpoint = urlparse(self.endpoint_url)
                opts["AWS_ENDPOINT_URL"] = endpoint._replace(netloc=f"{bucket}.{endpoint.netloc}").geturl()
        if self.allow_http:
            opts["AWS_ALLOW_HTTP"] = "true"
        opts["AWS_VIRTUAL_HOSTED_STYLE_REQUEST"] = "false" if self.path_style else "true"
        if self.access_key_id:
            opts["AWS_ACCESS_KEY_ID"] = self.access_key_id
        if self.secret_access_key:
            opts["AWS_SECRET_ACCESS_KEY"] = self.secret_access_key
        if self.session_token:
            opts["AWS_SESSION_TOKEN"] = self.session_token
        # object_store's RetryConfig: retries with exponential backoff (base 2) on 5xx, 429 and connection errors
        r = self.retries
        opts["max_retries"] = str(r.max_retries)
        opts["retry_timeout"] = f"{_ms(r.timeout)}ms"
        opts["backoff_config.init_backoff"] = f"{_ms(r.backoff)}ms"
        opts["backoff_config.max_backoff"] = f"{_ms(r.max_backoff)}ms"
        opts["backoff_config.base"] = "2"
        return opts

    def pyiceberg_properties(self) -> dict[str, str]:
        """FileIO properties for pyiceberg."""
        props: dict[str, str] = {"s3.region": self.region}
        if self.endpoint_url:
            props["s3.endpoint"] = self.endpoint_url
        props["s3.force-virtual-addressing"] = "false" if self.path_style else "true"
        if self.access_key_id:
            props["s3.access-key-id"] = self.access_key_id
        if self.secret_access_key:
            props["s3.secret-access-key"] = self.secret_access_key
        if self.session_token:
            props["s3.session-token"] = self.session_token
        # pyarrow's S3FileSystem under pyiceberg: the AWS SDK's standard strategy (jittered exponential backoff)
        props["s3.retry-strategy-impl"] = f"{__name__}.S3RetryAttempts{self.retries.attempts}"
        return props

    def pyiceberg_client_properties(self) -> dict[str, str]:
        """What a catalog client needs to reach the store, without any secret: the endpoint, region and
        addressing style (the served Iceberg REST catalog's table config; clients bring their own keys)."""
        props: dict[str, str] = {"s3.region": self.region}
        if self.endpoint_url:
            props["s3.endpoint"] = self.endpoint_url
            props["s3.path-style-access"] = "true" if self.path_style else "false"
        props["s3.force-virtual-addressing"] = "false" if self.path_style else "true"
        return props

    def spark_conf(self, catalog: str) -> dict[str, str]:
        """Spark settings: Iceberg's ``S3FileIO`` for the Iceberg catalog ``catalog`` and Hadoop's S3A for Delta
        paths. Both need jars pyspark lacks (``iceberg-aws-bundle``; ``hadoop-aws`` + the AWS SDK): list them
        in the ``spark.jars`` / ``spark.packages`` settings."""
        c = f"spark.sql.catalog.{catalog}."
        conf: dict[str, str] = {
            c + "io-impl": "org.apache.iceberg.aws.s3.S3FileIO",
            c + "client.region": self.region,
            c + "s3.path-style-access": "true" if self.path_style else "false",
            "spark.hadoop.fs.s3.impl": "org.apache.hadoop.fs.s3a.S3AFileSystem",
            "spark.hadoop.fs.s3a.path.style.access": "true" if self.path_style else "false",
            "spark.hadoop.fs.s3a.endpoint.region": self.region,
            c + "s3.retry.num-retries": str(self.retries.max_retries),
            c + "s3.retry.min-wait-ms": str(_ms(self.retries.backoff)),
            c + "s3.retry.max-wait-ms": str(_ms(self.retries.max_backoff)),
            "spark.hadoop.fs.s3a.attempts.maximum": str(self.retries.max_retries),
            "spark.hadoop.fs.s3a.retry.limit": str(self.retries.max_retries),
            "spark.hadoop.fs.s3a.retry.interval": f"{_ms(self.retries.backoff)}ms",
        }
        if self.endpoint_url:
            conf[c + "s3.endpoint"] = self.endpoint_url
            conf["spark.hadoop.fs.s3a.endpoint"] = self.endpoint_url
            conf["spark.hadoop.fs.s3a.connection.ssl.enabled"] = "false" if self.allow_http else "true"
        if self.access_key_id and self.secret_access_key:
            conf[c + "s3.access-key-id"] = self.access_key_id
            conf[c + "s3.secret-access-key"] = self.secret_access_key
            conf["spark.hadoop.fs.s3a.access.key"] = self.access_key_id
            conf["spark.hadoop.fs.s3a.secret.key"] = self.secret_access_key
            if self.session_token:
                conf[c + "s3.session-token"] = self.session_token
                conf["spark.hadoop.fs.s3a.session.token"] = self.session_token
                conf["spark.hadoop.fs.s3a.aws.credentials.provider"] = (
                    "org.apache.hadoop.fs.s3a.TemporaryAWSCredentialsProvider"
                )
        return conf

    def duckdb_secret_sql(self, name: str = "lakehouse_s3", *, scope: str | None = None) -> str:
        """A ``CREATE OR REPLACE SECRET`` statement for DuckDB's httpfs (for paths under ``scope`` only, when
        given)."""

        def q(v: str) -> str:
            return "'" + v.replace("'", "''") + "'"

        parts = ["TYPE s3", f"REGION {q(self.region)}"]
        if self.access_key_id:
            parts.append(f"KEY_ID {q(self.access_key_id)}")
        if self.secret_access_key:
            parts.append(f"SECRET {q(self.secret_access_key)}")
        if self.session_token:
            parts.append(f"SESSION_TOKEN {q(self.session_token)}")
        if self.endpoint_host:
            parts.append(f"ENDPOINT {q(self.endpoint_host)}")
            parts.append(f"USE_SSL {'false' if self.allow_http else 'true'}")
        parts.append(f"URL_STYLE {q('path' if self.path_style else 'vhost')}")
        if not self.access_key_id:
            # the AWS default chain, looked up when the secret is created; none found is not an error until a
            # request needs one (a store that only some tables use must not stop every query)
            parts.append("PROVIDER credential_chain")
            parts.append("VALIDATION 'none'")
        if scope is not None:
            parts.append(f"SCOPE {q(scope)}")
        return f"CREATE OR REPLACE SECRET {name} ({', '.join(parts)})"

    def duckdb_settings(self) -> dict[str, int | float]:
        """DuckDB httpfs's retry settings (``SET`` before the configuration is locked): retries on I/O errors
        and retryable statuses, waiting ``http_retry_wait_ms`` multiplied by ``http_retry_backoff`` each time."""
        return {
            "http_retries": self.retries.max_retries,
            "http_retry_wait_ms": _ms(self.retries.backoff),
            "http_retry_backoff": 2.0,
        }

    def boto3_client_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``boto3.client("s3", **kwargs)``: botocore's standard retry mode (jittered
        exponential backoff on throttling, 5xx and connection errors)."""
        from botocore.config import Config

        kwargs: dict[str, Any] = {
            "region_name": self.region,
            "config": Config(
                s3={"addressing_style": "path" if self.path_style else "virtual"},
                retries={"mode": "standard", "total_max_attempts": self.retries.attempts},
            ),
        }
        if self.endpoint_url:
            kwargs["endpoint_url"] = self.endpoint_url
        if self.access_key_id:
            kwargs["aws_access_key_id"] = self.access_key_id
        if self.secret_access_key:
            kwargs["aws_secret_access_key"] = self.secret_access_key
        if self.session_token:
            kwargs["aws_session_token"] = self.session_token
        return kwargs

    def pyarrow_filesystem(self) -> FileSystem:
        """A ``pyarrow.fs.S3FileSystem`` for direct object reads and writes."""
        from pyarrow import fs

        scheme = None
        endpoint = None
        if self.endpoint_url:
            parsed = urlparse(self.endpoint_url)
            scheme, endpoint = parsed.scheme, parsed.netloc
        return fs.S3FileSystem(
            access_key=self.access_key_id,
            secret_key=self.secret_access_key,
            session_token=self.session_token,
            region=self.region,
            endpoint_override=endpoint,
            scheme=scheme or "https",
            force_virtual_addressing=not self.path_style,
            retry_strategy=fs.AwsStandardS3RetryStrategy(max_attempts=self.retries.attempts),
        )


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))
