"""The console's table list over many tables: how long the Tables page takes to show, in a real browser.

A local warehouse gets ``--tables`` Delta tables (each with one small append: a real table, files and log), of
which ``--measured`` are measured with ``health()`` (the autopilot's measurement, which the list shows as score,
trend, size and files); ``lakehouse serve`` serves it. Then, median of ``--repeat`` runs:

  ours       ``GET /console/tables`` (one page of ``--page`` rows, sorted by size), and the Tables page in headless
             Chromium from navigation until its rows are on screen (the page sets ``data-rendered``);
  baseline   what a console without the overview route would call for the same page: ``GET /tables`` and
             ``GET /tables/{name}`` for each of its rows (each opens the table).

    .venv/bin/python benchmarks/console_bench.py --tables 1000 --measured 100 --page 50
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pyarrow as pa

from lakehouse.config import load_settings
from lakehouse.core import Lakehouse
from lakehouse.governance.keys import create_key
from lakehouse.maintenance.maintain import health

EXE = shutil.which("lakehouse", path=os.path.dirname(sys.executable)) or "lakehouse"
SCHEMA = pa.schema([("id", pa.int64()), ("name", pa.string()), ("amount", pa.float64())])


def build(root: Path, tables: int, measured: int) -> tuple[str, str]:
    settings = load_settings(config_file=False, warehouse=str(root / "wh"))
    started = time.perf_counter()
    with Lakehouse(settings) as lh:
        lh.init()
        key = create_key(lh, name="bench", role="admin")[1]
        for i in range(tables):
            t = lh.create_table(f"ns{i % 20}.t{i}", schema=SCHEMA, format="delta")
            t.append(pa.table({"id": list(range(i % 50 + 1)), "name": ["x"] * (i % 50 + 1),
                               "amount": [1.0] * (i % 50 + 1)}, schema=SCHEMA))  # fmt: skip
            if i < measured:
                health(lh, f"ns{i % 20}.t{i}")
    print(f"built {tables} tables ({measured} measured) in {time.perf_counter() - started:.0f} s", flush=True)
    return str(root / "wh"), key


def get(base: str, path: str, key: str) -> object:
    req = urllib.request.Request(base + path, headers={"X-API-Key": key})
    with urllib.request.urlopen(req, timeout=120) as r:
        return json.loads(r.read())


def timed(fn: object, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tables", type=int, default=1000)
    ap.add_argument("--measured", type=int, default=100)
    ap.add_argument("--page", type=int, default=50)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="console-bench-"))
    warehouse, key = build(root, args.tables, args.measured)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LAKEHOUSE_", "AWS_"))}
    log = open(root / "serve.log", "wb")
    server = subprocess.Popen([EXE, "-w", warehouse, "serve", "--port", str(port)], stdout=log, stderr=log, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                urllib.request.urlopen(base + "/health", timeout=1).close()
                break
            except OSError:
                time.sleep(0.5)
        listing = f"/console/tables?sort=bytes&desc=true&limit={args.page}"
        page = get(base, listing, key)
        names = [t["name"] for t in page["items"]]  # type: ignore[index]
        ours_api = timed(lambda: get(base, listing, key), args.repeat)

        def baseline() -> None:
            get(base, f"/tables?limit={args.page}", key)
            for n in names:
                get(base, f"/tables/{n}", key)

        base_api = timed(baseline, max(1, args.repeat // 2))
        render = browser_render(base, key, args.repeat)
        print(f"tables: {args.tables} ({args.measured} measured); page: {args.page} rows")
        print(f"ours:     GET /console/tables {ours_api * 1000:8.1f} ms; Tables page on screen {render * 1000:8.1f} ms")
        print(f"baseline: GET /tables + GET /tables/{{name}} x {args.page} {base_api * 1000:8.1f} ms")
        print(f"ratio baseline/ours (API): {base_api / ours_api:.1f}x; target: page on screen < 1000 ms")
    finally:
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(root, ignore_errors=True)


def browser_render(base: str, key: str, repeat: int) -> float:
    from selenium import webdriver
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000"):
        options.add_argument(arg)
    service = webdriver.ChromeService(shutil.which("chromedriver") or "/usr/bin/chromedriver")
    driver = webdriver.Chrome(service=service, options=options)
    try:
        driver.get(base + "/health")
        driver.execute_script("sessionStorage.setItem('lakehouse-key', arguments[0])", key)
        times = []
        for _ in range(repeat):
            driver.get(base + "/ui/#/tables")
            WebDriverWait(driver, 60).until(ec.presence_of_element_located((By.CSS_SELECTOR, "#tables tbody tr")))
            WebDriverWait(driver, 60).until(lambda d: d.execute_script("return document.body.dataset.rendered"))
            # from the navigation's start until the rows were on the page (performance.now counts from it)
            times.append(float(driver.execute_script("return document.body.dataset.rendered")) / 1000)
        return statistics.median(times)
    finally:
        driver.quit()


if __name__ == "__main__":
    main()
