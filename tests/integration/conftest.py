"""Fixtures of the served catalogs' tests: ``lakehouse serve`` in its own process on loopback over a warehouse
with Iceberg and Delta tables, one of each with PII (a masking policy)."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from lakehouse.config import load_settings
from lakehouse.core import Lakehouse
from lakehouse.governance.keys import create_key

EXE = shutil.which("lakehouse", path=os.path.dirname(sys.executable)) or "lakehouse"
SCHEMA = pa.schema([pa.field("id", pa.int64()), pa.field("name", pa.string()), pa.field("amount", pa.float64())])


@dataclass
class Served:
    url: str  # the catalog URI: http://127.0.0.1:<port>/iceberg
    keys: dict[str, str]
    warehouse: str
    catalog_url: str

    def lakehouse(self) -> Lakehouse:
        return Lakehouse(load_settings(config_file=False, warehouse=self.warehouse, catalog_url=self.catalog_url))

    def rest(self, role: str = "admin", **props: str) -> Any:
        from pyiceberg.catalog.rest import RestCatalog

        return RestCatalog("lh", uri=self.url, token=self.keys[role], **props)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def serving(root: Path, options: list[str], env: dict[str, str]) -> Iterator[str]:
    """``lakehouse <options> serve`` on a free loopback port, until the block ends; yields its base URL."""
    port = _free_port()
    log = open(root / "serve.log", "wb")
    proc = subprocess.Popen(
        [EXE, *options, "serve", "--port", str(port)], stdout=log, stderr=subprocess.STDOUT, env=env, cwd=root
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{base}/health", timeout=1).read()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError((root / "serve.log").read_text()) from None
                time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("rest")
    warehouse, catalog_url = str(root / "wh"), f"sqlite:///{root / 'catalog.db'}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LAKEHOUSE_", "AWS_"))}
    with Lakehouse(load_settings(config_file=False, warehouse=warehouse, catalog_url=catalog_url)) as lh:
        lh.init()
        keys = {role: create_key(lh, name=f"{role} key", role=role)[1] for role in ("reader", "engineer", "admin")}
        sales = lh.create_table("sales.orders", schema=SCHEMA, format="iceberg")
        sales.append(pa.table({"id": [1, 2, 3], "name": ["a", "b", "c"], "amount": [1.5, 2.5, 3.5]}, schema=SCHEMA))
        sales.append(pa.table({"id": [4], "name": ["d"], "amount": [4.5]}, schema=SCHEMA))
        deltas = lh.create_table("sales.deltas", schema=SCHEMA, format="delta")
        deltas.append(pa.table({"id": [1, 2], "name": ["x", "y"], "amount": [1.0, 2.0]}, schema=SCHEMA))
        deltas.append(pa.table({"id": [3], "name": ["z"], "amount": [3.0]}, schema=SCHEMA))
        contacts = lh.create_table("crm.contacts", schema=SCHEMA, format="delta")
        contacts.append(pa.table({"id": [1], "name": ["Bob"], "amount": [0.0]}, schema=SCHEMA))
        lh.set_policy("crm.contacts", {"masking": {"name": "redact"}})
        crm = lh.create_table("crm.people", schema=SCHEMA, format="iceberg")
        crm.append(pa.table({"id": [1], "name": ["Ann"], "amount": [0.0]}, schema=SCHEMA))
        lh.set_policy("crm.people", {"masking": {"name": "redact"}})
    with serving(root, ["--warehouse", warehouse, "--catalog-url", catalog_url], env) as base:
        yield Served(f"{base}/iceberg", keys, warehouse, catalog_url)
