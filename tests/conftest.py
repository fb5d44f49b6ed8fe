"""Shared fixtures.

S3: a session-wide S3 server on loopback (moto's server, real HTTP). Point the suite at a real MinIO instead
with ``LAKEHOUSE_TEST_S3_ENDPOINT=http://127.0.0.1:9000`` (plus ``LAKEHOUSE_TEST_S3_ACCESS_KEY`` /
``LAKEHOUSE_TEST_S3_SECRET_KEY``, default minioadmin/minioadmin). Each test gets its own bucket.

Tests never read the user's configuration: ``LAKEHOUSE_*`` and ``AWS_*`` variables are cleared and every test
runs in its own temporary working directory.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pyarrow as pa
import pytest

from lakehouse.config import Settings, load_settings
from lakehouse.core import Lakehouse
from tests import scheduling
from tests.faults import summary
from tests.faults.summary import pytest_terminal_summary  # noqa: F401 (a hook: see that module)

FORMATS = ("delta", "iceberg")

TEST_JVM_OPTIONS = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"
"""How the tests' JVMs run: the client compiler only and one GC thread. A test's Spark job is short, and the
server compiler's background compilation was a third of the JVM's CPU (``tests/conformance/test_spark_foreign.py``
alone on 2 cores: 153 CPU-s of the machine without these options, 96 s with them; 99 s -> 77 s). A test
setting; lakehouse's own sessions keep the JVM's defaults. ``SPARK_SUBMIT_OPTS`` reaches every driver JVM
(in-process sessions and the CLI's), ``SPARK_DAEMON_JAVA_OPTS`` a standalone master and its workers."""
os.environ.setdefault("SPARK_SUBMIT_OPTS", TEST_JVM_OPTIONS)
os.environ.setdefault("SPARK_DAEMON_JAVA_OPTS", TEST_JVM_OPTIONS)


def pytest_configure(config: pytest.Config) -> None:
    summary.pytest_configure(config)
    scheduling.configure(config)


def pytest_unconfigure(config: pytest.Config) -> None:
    summary.pytest_unconfigure(config)
    scheduling.unconfigure(config)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    scheduling.note_collection(config, items)


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """The tests that start Spark in this process go to one worker (``tests/scheduling.py``)."""
    return scheduling.make_scheduler(config, log)


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto``: two workers more than the cores this process may use (``PYTEST_XDIST_AUTO_NUM_WORKERS``
    still decides where set). Many tests wait on subprocesses, servers (moto, the broker, Spark) and S3 retry
    pauses; extra workers fill those waits (the whole suite on 2 cores: 1,169 s with 2 workers, 1,036 s with
    3, an earlier suite; this one's clean-clone CI: 1,174 s of tests with 4 workers, 1,195 s and 1,243 s with
    3, each worker about 58 % busy on its own CPU with 3)."""
    if value := os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS"):
        return int(value)
    return len(os.sched_getaffinity(0)) + 2


@dataclass(frozen=True)
class S3Endpoint:
    url: str
    access_key: str
    secret_key: str
    region: str = "us-east-1"

    def client(self) -> Any:
        return boto3.client(
            "s3",
            endpoint_url=self.url,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name=self.region,
        )


@pytest.fixture(autouse=True)
def _isolate(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    isolate(monkeypatch, tmp_path / "cwd")


def isolate(monkeypatch: pytest.MonkeyPatch, cwd: Path) -> None:
    """What every test runs in: none of the machine's ``LAKEHOUSE_*``/``AWS_*`` settings, no instance metadata, an
    empty working directory. Fixtures of a wider scope (set up before the autouse one) call it themselves."""
    for key in list(os.environ):
        if key.startswith(("LAKEHOUSE_", "AWS_")) and not key.startswith("LAKEHOUSE_TEST_"):
            monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    cwd.mkdir()
    monkeypatch.chdir(cwd)


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[S3Endpoint]:
    external = os.environ.get("LAKEHOUSE_TEST_S3_ENDPOINT")
    if external:
        yield S3Endpoint(
            external,
            os.environ.get("LAKEHOUSE_TEST_S3_ACCESS_KEY", "minioadmin"),
            os.environ.get("LAKEHOUSE_TEST_S3_SECRET_KEY", "minioadmin"),
        )
        return
    # A separate process, not moto's ThreadedMotoServer: some delta-rs calls (history, is_deltatable) block
    # while holding the GIL, which starves an S3 server running in this interpreter's threads. moto's server
    # without its stock launcher's per-request overheads (tests/fixtures/s3_server.py): the same answers.
    with moto_server([sys.executable, str(Path(__file__).parent / "fixtures" / "s3_server.py")]) as url:
        yield S3Endpoint(url, "testing-key", "testing-secret")


@contextlib.contextmanager
def moto_server(command: list[str]) -> Iterator[str]:
    """moto's server (``command`` + host and port arguments) on a free loopback port until the block ends; yields
    its URL."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen(
        [*command, "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(f"{url}/moto-api/", timeout=1).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError(f"the moto server ({' '.join(command)}) did not start") from None
            time.sleep(0.1)
    try:
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:  # moto frees every object on exit: 200,000 of them take longer
            proc.kill()
            proc.wait()


def _pg_bin(name: str) -> str | None:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found[-1] if found else shutil.which(name)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A throw-away PostgreSQL cluster on loopback (or LAKEHOUSE_TEST_POSTGRES_URL); yields a server URL."""
    external = os.environ.get("LAKEHOUSE_TEST_POSTGRES_URL")
    if external:
        yield external.rstrip("/")
        return
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if not initdb or not pg_ctl:
        pytest.skip("PostgreSQL server binaries are not installed (scripts/install-system-deps.sh installs them)")
    # not under pytest's tmp dir: that one is private to root, and the server runs as the postgres user
    base = Path(tempfile.mkdtemp(prefix="lakehouse-pg-"))
    prefix: list[str] = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        shutil.chown(base, user="postgres")
        prefix = ["runuser", "-u", "postgres", "--"]
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    data = base / "data"
    subprocess.run(
        [*prefix, initdb, "-D", str(data), "-A", "trust", "-U", "lakehouse", "--no-sync"],
        check=True,
        capture_output=True,
    )
    opts = f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off"
    subprocess.run(
        [*prefix, pg_ctl, "-D", str(data), "-o", opts, "-l", str(base / "log"), "-w", "start"],
        check=True,
        capture_output=True,
    )
    try:
        yield f"postgresql+psycopg://lakehouse@127.0.0.1:{port}"
    finally:
        subprocess.run([*prefix, pg_ctl, "-D", str(data), "-m", "immediate", "stop"], check=False, capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_server: str) -> str:
    """A fresh, empty database on the PostgreSQL server."""
    import sqlalchemy as sa

    name = f"lh_{uuid.uuid4().hex[:12]}"
    engine = sa.create_engine(f"{postgres_server}/postgres", isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text(f"CREATE DATABASE {name}"))
    engine.dispose()
    return f"{postgres_server}/{name}"


@pytest.fixture
def bucket(s3_endpoint: S3Endpoint) -> str:
    name = f"lh-test-{uuid.uuid4().hex[:12]}"
    s3_endpoint.client().create_bucket(Bucket=name)
    return name


def s3_settings(endpoint: S3Endpoint, bucket: str, tmp_path: Any, **extra: Any) -> Settings:
    return load_settings(
        config_file=False,
        warehouse=f"s3://{bucket}/warehouse",
        catalog_url=f"sqlite:///{tmp_path}/catalog.db",
        s3={
            "endpoint": endpoint.url,
            "access_key_id": endpoint.access_key,
            "secret_access_key": endpoint.secret_key,
            "region": endpoint.region,
        },
        **extra,
    )


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.s3)])
def storage(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make_lakehouse(storage: str, tmp_path: Any, request: pytest.FixtureRequest) -> Iterator[Callable[..., Lakehouse]]:
    """Build Lakehouse objects on the parametrised storage; each call may name its own catalog file."""
    made: list[Lakehouse] = []

    def factory(catalog: str = "catalog.db", **extra: Any) -> Lakehouse:
        if storage == "s3":
            endpoint = request.getfixturevalue("s3_endpoint")
            bucket = request.getfixturevalue("bucket")
            settings = s3_settings(endpoint, bucket, tmp_path, **extra)
            settings = settings.model_copy(update={"catalog_url": f"sqlite:///{tmp_path}/{catalog}"})
        else:
            settings = load_settings(
                config_file=False,
                warehouse=str(tmp_path / "warehouse"),
                catalog_url=f"sqlite:///{tmp_path}/{catalog}",
                **extra,
            )
        lh = Lakehouse(settings)
        made.append(lh)
        return lh

    yield factory
    for lh in made:
        lh.close()


@pytest.fixture
def lh(make_lakehouse: Callable[..., Lakehouse]) -> Lakehouse:
    return make_lakehouse()


@pytest.fixture(params=FORMATS)
def fmt(request: pytest.FixtureRequest) -> str:
    return str(request.param)


EVENTS = pa.schema(
    [
        pa.field("id", pa.int64(), nullable=False),
        pa.field("ts", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("country", pa.string()),
        pa.field("amount", pa.float64()),
        pa.field("note", pa.string()),
    ]
)


def events(start: int, n: int, *, day0: dt.datetime | None = None, days: int = 3) -> pa.Table:
    """Deterministic events: id start..start+n, spread over ``days`` days, a few null notes."""
    base = day0 or dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
    ids = list(range(start, start + n))
    return pa.table(
        {
            "id": pa.array(ids, pa.int64()),
            "ts": pa.array(
                [base + dt.timedelta(hours=(i * 7) % (24 * days), minutes=i % 60) for i in ids],
                pa.timestamp("us", tz="UTC"),
            ),
            "country": pa.array([("DE", "FR", "US", None)[i % 4] for i in ids]),
            "amount": pa.array([round(i * 1.25, 2) for i in ids], pa.float64()),
            "note": pa.array([None if i % 5 == 0 else f"note {i}" for i in ids]),
        },
        schema=EVENTS,
    )


def sorted_rows(table: pa.Table, key: str = "id") -> list[dict[str, Any]]:
    """Full contents as a list of rows in key order (for exact comparisons)."""
    return table.sort_by(key).to_pylist()


def their_iceberg_table(root: Path, schema: Any, spec: Any = None) -> tuple[Any, Any]:
    """An Iceberg table another writer made: pyiceberg's own SQL catalog under ``root`` (made here), table
    ``ns.t`` at ``<root>/t``. Returns (catalog, table); dispose of ``catalog.engine`` once written."""
    from pyiceberg.catalog.sql import SqlCatalog
    from pyiceberg.partitioning import UNPARTITIONED_PARTITION_SPEC

    root.mkdir()
    catalog = SqlCatalog("theirs", uri=f"sqlite:///{root}/c.db", warehouse=f"file://{root}")
    catalog.create_namespace("ns")
    table = catalog.create_table(
        "ns.t", schema=schema, partition_spec=spec or UNPARTITIONED_PARTITION_SPEC, location=f"file://{root}/t"
    )
    return catalog, table
