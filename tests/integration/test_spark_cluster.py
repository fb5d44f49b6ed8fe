"""The Spark engine against a real Spark standalone cluster: a master and two workers on loopback, started from
the pyspark distribution (``bin/spark-class``), each executor in its own JVM. ``lakehouse optimize --engine spark
--spark-master spark://...`` runs in its own process (a process holds one Spark session, and the module
``test_spark.py`` holds a ``local[2]`` one). The rows are compared with what they were before; the master's
status page shows the application ran on the cluster's executors."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lakehouse.config import load_settings
from lakehouse.core import Lakehouse
from lakehouse.schema import parse_partitioning
from tests.conftest import EVENTS, TEST_JVM_OPTIONS, events, sorted_rows

pytestmark = [pytest.mark.spark(in_process=False), pytest.mark.slow]  # its Spark runs in other processes

EXE = shutil.which("lakehouse", path=os.path.dirname(sys.executable)) or "lakehouse"


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _status(ui: int) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{ui}/json/", timeout=5) as r:
        return dict(json.loads(r.read()))


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int, Path]]:
    """A standalone master and two workers (1 core, 1 GB each) on loopback; yields (master URL, master UI port,
    the directory of the workers' work directories)."""
    import pyspark

    if shutil.which("java") is None:
        pytest.skip("no Java: bash scripts/install-system-deps.sh installs openjdk-17-jre-headless")
    home = os.path.dirname(pyspark.__file__)
    root = tmp_path_factory.mktemp("spark-cluster")
    env = {**os.environ, "SPARK_HOME": home, "SPARK_LOCAL_IP": "127.0.0.1", "SPARK_LOG_DIR": str(root)}
    # the executors a worker launches inherit its environment (their stderr files say "Picked up ...")
    env["JAVA_TOOL_OPTIONS"] = TEST_JVM_OPTIONS
    port, ui = _port(), _port()
    spark_class = os.path.join(home, "bin", "spark-class")
    procs: list[subprocess.Popen[bytes]] = []

    def start(name: str, *args: str) -> None:
        log = open(root / f"{name}.log", "wb")
        procs.append(subprocess.Popen([spark_class, *args], env=env, stdout=log, stderr=subprocess.STDOUT))

    start("master", "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1", "--port", str(port),
          "--webui-port", str(ui))  # fmt: skip
    url = f"spark://127.0.0.1:{port}"
    for i in range(2):
        work = root / f"work{i}"
        work.mkdir()
        start(f"worker{i}", "org.apache.spark.deploy.worker.Worker", url, "--cores", "1", "--memory", "1g",
              "--webui-port", str(_port()), "--work-dir", str(work))  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if len([w for w in _status(ui).get("workers", []) if w.get("state") == "ALIVE"]) == 2:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                logs = "\n".join((root / f"{n}.log").read_text()[-2000:] for n in ("master", "worker0", "worker1"))
                raise RuntimeError(f"the Spark cluster did not come up:\n{logs}")
            time.sleep(0.5)
        yield url, ui, root
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()


def test_optimize_on_a_standalone_cluster(cluster: tuple[str, int, Path], tmp_path: Path) -> None:
    url, ui, root = cluster
    wh = str(tmp_path / "wh")
    with Lakehouse(load_settings(config_file=False, warehouse=wh)) as lh:
        table = lh.create_table("s.events", schema=EVENTS, format="iceberg", partitioning=parse_partitioning("day(ts)"))
        for b in range(8):
            table.append(events(b * 100, 100))
        expected = sorted_rows(table.scan())
        files_before = len(table.files())
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LAKEHOUSE_", "AWS_"))}
    proc = subprocess.run(
        [EXE, "-w", wh, "optimize", "s.events", "--engine", "spark", "--spark-master", url, "--json"],
        capture_output=True,
        text=True,
        timeout=600,
        env={**env, "LAKEHOUSE_SPARK__DRIVER_MEMORY": "768m"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout)
    assert result["engine"]["engine"] == "spark" and result["engine"]["spark_master"] == url
    assert result["files_before"] == files_before == 24 and result["files_after"] == 3
    assert result["rows_in"] == result["rows_out"] == len(expected)
    with Lakehouse(load_settings(config_file=False, warehouse=wh)) as lh:
        assert sorted_rows(lh.table("s.events").scan()) == expected
        job = next(j for j in lh.jobs("s.events") if j.kind == "optimize")
        assert job.state == "committed" and job.params["spark_master"] == url
    # the master ran the application on its workers' executors, and it has finished
    status = _status(ui)
    apps = status.get("completedapps", []) + status.get("activeapps", [])
    assert [a["name"] for a in apps] == ["lakehouse"], status
    # each executor ran in a JVM of its own, launched by a worker into <work dir>/<app id>/<executor id>
    executors = [d for d in root.glob(f"work*/{apps[0]['id']}/*") if d.is_dir()]
    assert executors, list(root.glob("work*/*"))
    assert all((d / "stderr").exists() for d in executors)
