"""A query worker's limits mean the same on every machine: its thread pools do not size themselves by the core
count or the environment (a 64-core CI machine once turned the 1 GB address-space limit into "cannot start a
thread" for an ordinary 8-way join, answered as a 400 instead of the time limit's 408)."""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pytest

from lakehouse.config import load_settings
from lakehouse.core import Lakehouse
from lakehouse.errors import QueryTimeoutError
from lakehouse.sql import worker

PEOPLE = pa.schema([pa.field("id", pa.int64(), nullable=False), pa.field("email", pa.string())])


def children_threads() -> dict[int, int]:
    """Thread counts of this process's query workers (child processes running lakehouse.sql.worker; the test
    process may have others, such as the session's S3 server), from /proc."""
    me = os.getpid()
    found: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if "lakehouse.sql.worker" not in cmdline:
            continue
        fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
        if int(fields.get("PPid", "0").strip()) == me:
            found[int(entry.name)] = int(fields["Threads"].strip())
    return found


@pytest.mark.parametrize("fmt", ["delta", "iceberg"])
def test_a_worker_ignores_a_many_core_environment(fmt: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OMP_NUM_THREADS", "ARROW_IO_THREADS", "TOKIO_WORKER_THREADS"):
        monkeypatch.setenv(name, "64")  # what these pools take from a 64-core machine
    settings = load_settings(
        config_file=False, warehouse=str(tmp_path / "wh"), query={"worker_memory": "1GB", "workers": 1}
    )
    with Lakehouse(settings) as lh:
        lh.create_table("crm.people", schema=PEOPLE, format=fmt)
        rows = [{"id": i, "email": f"user{i}@example.com"} for i in range(20)]
        lh.append("crm.people", pa.Table.from_pylist(rows, schema=PEOPLE))
        tables = ", ".join(f"crm.people t{i}" for i in range(8))  # 8 scans at once, 20^8 rows
        slow = f"SELECT sum(t0.id * t1.id + t2.id * t3.id - t4.id * t5.id + t6.id * t7.id) FROM {tables}"
        with pytest.raises(QueryTimeoutError):
            lh.query(slow, isolated=True, timeout=1)
        result = lh.query("SELECT count(*) AS n FROM crm.people", isolated=True, timeout=30)
        assert result.table.to_pylist() == [{"n": 20}]
        threads = children_threads()
        assert threads, "no worker process found"
        pools = 4  # DuckDB's, Arrow's CPU and I/O pools, delta-rs's runtime
        bound = pools * worker.worker_threads(None) + 16  # plus the interpreter's and the allocators' own
        assert all(n <= bound for n in threads.values()), threads
