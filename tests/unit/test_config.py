"""Settings precedence and the credentials model's renderings."""

from __future__ import annotations

from pathlib import Path

import pytest

from lakehouse.config import load_settings
from lakehouse.credentials import S3Credentials
from lakehouse.errors import ConfigError
from lakehouse.policy import RetentionPolicy


def test_defaults(tmp_path: Path) -> None:
    s = load_settings()
    assert s.warehouse == "warehouse"
    assert s.warehouse_uri == str(Path.cwd() / "warehouse")
    assert s.resolved_catalog_url == f"sqlite:///{Path.cwd() / 'warehouse' / '_catalog.db'}"
    assert s.default_format == "delta" and not s.is_s3


def test_precedence_defaults_toml_env_args(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    Path("lakehouse.toml").write_text(
        'warehouse = "s3://from-file/wh"\ndefault_format = "iceberg"\n'
        '[s3]\nendpoint = "http://file:9000"\nregion = "eu-west-1"\n'
        "[query]\nmax_rows = 5\n"
    )
    s = load_settings()
    assert (s.warehouse, s.default_format, s.s3.endpoint, s.s3.region, s.query.max_rows) == (
        "s3://from-file/wh",
        "iceberg",
        "http://file:9000",
        "eu-west-1",
        5,
    )
    assert s.resolved_catalog_url.endswith(".lakehouse/catalog.db")
    monkeypatch.setenv("LAKEHOUSE_WAREHOUSE", "s3://from-env/wh")
    monkeypatch.setenv("LAKEHOUSE_S3__ENDPOINT", "http://env:9000")
    s = load_settings()
    assert (s.warehouse, s.s3.endpoint, s.s3.region, s.default_format) == (
        "s3://from-env/wh",
        "http://env:9000",
        "eu-west-1",
        "iceberg",
    )
    s = load_settings(warehouse="/tmp/from-arg", default_format=None)
    assert s.warehouse == "/tmp/from-arg" and s.default_format == "iceberg"
    assert load_settings(config_file=False).default_format == "delta"


def test_named_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "x.toml"
    cfg.write_text('warehouse = "/data/wh"\n')
    assert load_settings(config_file=cfg).warehouse == "/data/wh"
    monkeypatch.setenv("LAKEHOUSE_CONFIG", str(cfg))
    assert load_settings().warehouse == "/data/wh"
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(config_file=tmp_path / "missing.toml")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"warehouse": "gs://bucket/x"}, "unsupported warehouse scheme"),
        ({"warehouse": "s3://"}, "names no bucket"),
        ({"default_format": "hudi"}, "default_format"),
        ({"query": {"max_rows": 0}}, "query.max_rows"),
        ({"nonsense": 1}, "nonsense"),
    ],
)
def test_invalid_settings(overrides: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(config_file=False, **overrides)


def test_aws_variables_are_honoured_and_settings_win(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "env-key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "env-secret")
    monkeypatch.setenv("AWS_REGION", "ap-south-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9000")
    c = S3Credentials.from_settings(load_settings(config_file=False).s3)
    assert (c.access_key_id, c.secret_access_key, c.region, c.endpoint_url, c.path_style) == (
        "env-key",
        "env-secret",
        "ap-south-1",
        "http://127.0.0.1:9000",
        True,
    )
    s = load_settings(
        config_file=False,
        s3={"access_key_id": "mine", "secret_access_key": "my-secret", "region": "eu-central-1", "path_style": False},
    )
    monkeypatch.setenv("AWS_SESSION_TOKEN", "assumed-role-token")
    c = S3Credentials.from_settings(s.s3)
    # the settings' key pair, without the shell's session token (a pair signed with another's token fails)
    assert (c.access_key_id, c.secret_access_key, c.session_token, c.region, c.path_style) == (
        "mine",
        "my-secret",
        None,
        "eu-central-1",
        False,
    )
    assert "mine" not in repr(c) and "my-secret" not in repr(c)
    assert S3Credentials.from_settings(load_settings(config_file=False).s3).session_token == "assumed-role-token"
    with pytest.raises(ConfigError, match="a key and its secret come together"):
        S3Credentials.from_settings(load_settings(config_file=False, s3={"access_key_id": "mine"}).s3)


def test_bad_endpoint_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="must be a URL"):
        S3Credentials.from_settings(load_settings(config_file=False, s3={"endpoint": "localhost:9000"}).s3)


def test_retry_settings_render_into_every_client() -> None:
    s = load_settings(config_file=False, s3={"max_retries": 2, "retry_backoff": 0.05, "retry_timeout": 9})
    c = S3Credentials.from_settings(s.s3)
    delta = c.delta_storage_options()
    assert (delta["max_retries"], delta["retry_timeout"], delta["backoff_config.init_backoff"]) == (
        "2",
        "9000ms",
        "50ms",
    )
    assert c.duckdb_settings() == {"http_retries": 2, "http_retry_wait_ms": 50, "http_retry_backoff": 2.0}
    assert c.boto3_client_kwargs()["config"].retries == {"mode": "standard", "total_max_attempts": 3}
    # pyiceberg builds its strategy from a class path with no arguments: the class makes 3 attempts
    import importlib

    path = c.pyiceberg_properties()["s3.retry-strategy-impl"]
    module, _, name = path.rpartition(".")
    strategy = getattr(importlib.import_module(module), name)()
    assert strategy.max_attempts == 3
    assert c.pyarrow_filesystem() is not None
    with pytest.raises(AttributeError):
        importlib.import_module("lakehouse.credentials").S3RetryAttemptsX  # noqa: B018
    assert c.spark_conf("x")["spark.sql.catalog.x.s3.retry.num-retries"] == "2"
    with pytest.raises(ConfigError):
        load_settings(config_file=False, s3={"max_retries": -1})


def test_renderings_agree() -> None:
    c = S3Credentials(
        endpoint_url="http://127.0.0.1:9000",
        region="us-east-1",
        access_key_id="k",
        secret_access_key="s'x",
        session_token="t",
        path_style=True,
    )
    assert c.delta_storage_options() == {
        "AWS_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9000",
        "AWS_ALLOW_HTTP": "true",
        "AWS_VIRTUAL_HOSTED_STYLE_REQUEST": "false",
        "AWS_ACCESS_KEY_ID": "k",
        "AWS_SECRET_ACCESS_KEY": "s'x",
        "AWS_SESSION_TOKEN": "t",
        "max_retries": "6",
        "retry_timeout": "180000ms",
        "backoff_config.init_backoff": "100ms",
        "backoff_config.max_backoff": "10000ms",
        "backoff_config.base": "2",
    }
    assert c.pyiceberg_properties() == {
        "s3.region": "us-east-1",
        "s3.endpoint": "http://127.0.0.1:9000",
        "s3.force-virtual-addressing": "false",
        "s3.access-key-id": "k",
        "s3.secret-access-key": "s'x",
        "s3.session-token": "t",
        "s3.retry-strategy-impl": "lakehouse.credentials.S3RetryAttempts7",
    }
    sql = c.duckdb_secret_sql("x")
    assert "ENDPOINT '127.0.0.1:9000'" in sql and "USE_SSL false" in sql and "SECRET 's''x'" in sql
    assert "URL_STYLE 'path'" in sql
    kw = c.boto3_client_kwargs()
    assert kw["endpoint_url"] == "http://127.0.0.1:9000" and kw["aws_secret_access_key"] == "s'x"
    assert kw["config"].s3 == {"addressing_style": "path"}
    aws = S3Credentials(region="eu-west-1")
    assert "AWS_ENDPOINT_URL" not in aws.delta_storage_options()
    assert "PROVIDER credential_chain" in aws.duckdb_secret_sql() and "USE_SSL" not in aws.duckdb_secret_sql()


def test_duckdb_secret_is_accepted_by_duckdb() -> None:
    import duckdb

    from lakehouse.sql import extension_path

    con = duckdb.connect(config={"autoinstall_known_extensions": False, "autoload_known_extensions": False})
    con.execute(f"LOAD '{extension_path('httpfs')}'")
    c = S3Credentials(endpoint_url="http://127.0.0.1:9000", access_key_id="k", secret_access_key="s", path_style=True)
    con.execute(c.duckdb_secret_sql("probe"))
    assert con.sql("SELECT name, type FROM duckdb_secrets()").fetchall() == [("probe", "s3")]


def test_spark_settings_reach_the_session_conf(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The [spark] section (file < env < argument) and the S3 credentials end up in the Spark configuration the
    engine would start with; nothing here starts a JVM."""
    from lakehouse.engines.spark import ICEBERG_RUNTIME, SparkEngine
    from lakehouse.tables.base import StorageContext

    Path("lakehouse.toml").write_text(
        '[spark]\nmaster = "spark://file:7077"\npackages = ["org.apache.hadoop:hadoop-aws:3.3.4"]\n'
        '[spark.conf]\n"spark.executor.memory" = "4g"\n"spark.sql.shuffle.partitions" = "64"\n'
    )
    monkeypatch.setenv("LAKEHOUSE_SPARK__DRIVER_MEMORY", "3g")
    s = load_settings(
        warehouse="s3://b/wh",
        s3={"endpoint": "http://127.0.0.1:9000", "access_key_id": "AK", "secret_access_key": "SK"},
    )
    assert s.spark.master == "spark://file:7077" and s.spark.driver_memory == "3g"
    creds = S3Credentials.from_settings(s.s3)
    ctx = StorageContext(warehouse=s.warehouse_uri, catalog_url=f"sqlite:///{tmp_path}/c.db", credentials=creds)
    conf = SparkEngine(s, ctx)._conf()
    jars = conf["spark.jars"].split(",")
    assert ICEBERG_RUNTIME in jars[0] and Path(jars[0]).is_file()
    assert any(Path(j).is_file() and "sqlite-jdbc" in j for j in jars)
    assert conf["spark.jars.packages"] == "org.apache.hadoop:hadoop-aws:3.3.4"
    assert conf["spark.driver.memory"] == "3g" and "spark.driver.host" not in conf  # a cluster: no loopback
    assert conf["spark.sql.shuffle.partitions"] == "64" and conf["spark.executor.memory"] == "4g"  # user wins
    cat = "spark.sql.catalog.lakehouse."
    assert conf[cat + "uri"] == f"jdbc:sqlite:{tmp_path}/c.db" and conf[cat + "warehouse"] == "s3://b/wh"
    assert conf[cat + "jdbc.init-catalog-tables"] == "false" and conf[cat + "cache-enabled"] == "false"
    assert conf[cat + "s3.endpoint"] == "http://127.0.0.1:9000" and conf[cat + "s3.access-key-id"] == "AK"
    assert conf["spark.hadoop.fs.s3a.endpoint"] == "http://127.0.0.1:9000"
    assert conf["spark.hadoop.fs.s3a.connection.ssl.enabled"] == "false"
    assert conf["spark.hadoop.fs.s3a.path.style.access"] == "true"
    assert "io.delta" not in conf["spark.sql.extensions"]
    delta = load_settings(config_file=False, spark={"jars": ["/opt/jars/delta-spark_2.12-3.3.2.jar"]})
    delta_conf = SparkEngine(delta, ctx)._conf()
    assert "io.delta.sql.DeltaSparkSessionExtension" in delta_conf["spark.sql.extensions"]
    assert delta_conf["spark.sql.catalog.spark_catalog"].endswith("DeltaCatalog")
    assert delta_conf["spark.driver.host"] == "127.0.0.1"  # local[*]: bound to loopback


def test_policy_lists_from_the_command_line_and_bad_values() -> None:
    from lakehouse.errors import ConfigError
    from lakehouse.governance.policy import build_policy, parse_assignments

    policy = build_policy(parse_assignments(["compaction.zorder=country, amount", "dedup.keys=id"]))
    assert policy.compaction.zorder == ["country", "amount"] and policy.dedup.keys == ["id"]
    assert build_policy({"compaction": {"zorder": ["a"]}}).compaction.zorder == ["a"], "lists (TOML) still work"
    with pytest.raises(ConfigError, match="keep_read_hot"):
        build_policy(parse_assignments(["tiering.keep_read_hot=xx"]))
    with pytest.raises(ConfigError, match="zorder"):
        build_policy(parse_assignments(["compaction.zorder=a,b,c,d,e"]))


def test_policy_values_every_pass_would_refuse_are_refused_when_set(tmp_path: Path) -> None:
    """A stored policy that maintain and the autopilot would fail on at every pass is refused by ``set_policy``
    (the CLI's ``policy set``, the API's PUT): nested keys, orders and clustering columns, a tier file size under
    the rewrite's minimum, an empty maintenance window, a hash mask without a secret. ``key=none`` of a setting
    with a default goes back to it."""
    import pyarrow as pa

    from lakehouse.core import Lakehouse
    from lakehouse.errors import InvalidInputError
    from lakehouse.policy import parse_assignments

    schema = pa.schema(
        [
            ("id", pa.int64()),
            ("ts", pa.timestamp("us", tz="UTC")),
            ("tags", pa.list_(pa.string())),
            ("attrs", pa.struct([("k", pa.string())])),
            ("email", pa.string()),
        ]
    )
    with Lakehouse(load_settings(config_file=False, warehouse=str(tmp_path / "wh"))) as lh:
        lh.create_table("p.t", schema=schema, format="delta")
        refused = {
            "dedup.keys=tags": "list<item: string> column",
            "dedup.order=attrs": "struct<k: string> column",
            "compaction.zorder=id,attrs": "plain values",
            "tiering.target_file_size=100B": "at least 1KB",
            "autopilot.window=05:00-05:00": "is empty",
            "masking.email=hash": "governance.mask_secret is not set",
        }
        for assignment, why in refused.items():
            with pytest.raises(InvalidInputError, match=why):
                lh.set_policy("p.t", parse_assignments([assignment]))
        assert lh.catalog.policy(lh.table("p.t").name) == {}, "nothing refused is stored"
        from lakehouse.maintenance.dedup import plan_dedup

        with pytest.raises(InvalidInputError, match="plain columns"):  # `dedup --key tags`: was a traceback
            plan_dedup(lh, "p.t", keys=["tags"])
        lh.set_policy("p.t", parse_assignments(["retention.retain=3d", "compaction.zorder=id", "dedup.order=ts"]))
        assert lh.policy("p.t").retention.retain == "3d"
        lh.set_policy("p.t", parse_assignments(["retention.retain=none", "compaction.zorder=", "dedup.order=none"]))
        policy = lh.policy("p.t")
        assert policy.retention.retain == RetentionPolicy().retain and policy.compaction.zorder == []
        assert policy.dedup.order is None
        assert lh.catalog.policy(lh.table("p.t").name) == {"dedup": {"order": None}}


def test_a_misspelt_key_in_a_section_or_a_variable_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`[governance] mask_secert` was ignored (erase receipts then fell back to a guessable hash), as was
    `LAKEHOUSE_S3__ENDPONT`; only top-level typos were refused."""
    toml = tmp_path / "lakehouse.toml"
    toml.write_text('[governance]\nmask_secert = "k"\n')
    with pytest.raises(ConfigError, match=r"governance\.mask_secert: Extra inputs are not permitted"):
        load_settings(config_file=toml)
    monkeypatch.setenv("LAKEHOUSE_S3__ENDPONT", "http://x")
    with pytest.raises(ConfigError, match=r"s3\.endpont"):
        load_settings(config_file=False)


def test_a_list_or_table_variable_that_is_not_json_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAKEHOUSE_SPARK__JARS", "/a.jar,/b.jar")  # a traceback of 80 lines
    with pytest.raises(ConfigError, match='field "spark"') as e:
        load_settings(config_file=False)
    assert "JSON" in (e.value.hint or "")
    monkeypatch.setenv("LAKEHOUSE_SPARK__JARS", '["/a.jar", "/b.jar"]')
    assert load_settings(config_file=False).spark.jars == ["/a.jar", "/b.jar"]


def test_the_catalog_password_is_never_in_a_message() -> None:
    from lakehouse.catalog import CatalogStore
    from lakehouse.errors import StorageError

    with pytest.raises(StorageError) as e:
        CatalogStore("postgresql+psycopg://etl:S3cretPw@127.0.0.1:1/cat")
    assert "S3cretPw" not in str(e.value) and "etl:***@127.0.0.1" in str(e.value)


@pytest.mark.parametrize("odd", ["?", "#", "["])
def test_a_warehouse_or_location_a_url_reader_would_cut_is_refused(tmp_path: Path, odd: str) -> None:
    """delta-rs reads a location as a URL: a warehouse `lake?prod` put the Delta log and data under `lake`,
    outside the table's location (ingest said it worked; the table could not be read)."""
    with pytest.raises(ConfigError, match="read as part of a URL"):
        load_settings(config_file=False, warehouse=str(tmp_path / f"lake{odd}prod"))
    import pyarrow as pa

    from lakehouse.core import Lakehouse
    from lakehouse.errors import InvalidInputError

    with Lakehouse(load_settings(config_file=False, warehouse=str(tmp_path / "wh"))) as lh:
        with pytest.raises(InvalidInputError, match="read as part of a URL"):
            lh.create_table("a.t", schema=pa.schema([("id", pa.int64())]), location=str(tmp_path / f"t{odd}x"))
        assert lh.list_tables() == [] and not list(tmp_path.glob("t*"))
