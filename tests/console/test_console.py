"""The web console in a real browser: Debian's headless Chromium driven by Selenium, against ``lakehouse serve``
in its own process. Each test signs in with a key, opens a page and checks what it shows against the API's own
answers; every page is screenshotted (``LAKEHOUSE_SCREENSHOTS=api/console/screenshots`` keeps them: the
README's), and the browser's console must stay free of errors."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from lakehouse.config import load_settings
from lakehouse.core import Lakehouse
from lakehouse.governance.keys import create_key
from lakehouse.governance.pii import scan_table
from lakehouse.maintenance.compaction import optimize
from lakehouse.maintenance.maintain import health
from lakehouse.maintenance.planner import CompactionOptions
from lakehouse.schema import parse_partitioning
from tests.conftest import EVENTS, events
from tests.integration.conftest import serving

webdriver = pytest.importorskip("selenium.webdriver", reason="pip install selenium (the dev extra)")
from selenium.common.exceptions import StaleElementReferenceException, TimeoutException  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support import expected_conditions as ec  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
DRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
pytestmark = pytest.mark.skipif(
    not (os.path.exists(CHROMIUM) and os.path.exists(DRIVER)),
    reason="no Chromium: bash scripts/install-system-deps.sh installs chromium and chromium-driver",
)

PEOPLE = pa.schema([pa.field("id", pa.int64()), pa.field("email", pa.string()), pa.field("city", pa.string())])


class Console:
    """The served warehouse, its keys and a browser."""

    def __init__(self, base: str, keys: dict[str, str], driver: Any, shots: Path, warehouse: str) -> None:
        self.base, self.keys, self.driver, self.shots, self.warehouse = base, keys, driver, shots, warehouse

    def api(self, method: str, path: str, role: str = "admin", body: Any = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method)
        req.add_header("X-API-Key", self.keys[role])
        if data is not None:
            req.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(req, timeout=60) as r:
            return json.loads(r.read())

    def sign_in(self, role: str) -> None:
        d = self.driver
        d.get(self.base + "/health")  # same origin, no console running: forget the previous key here
        d.execute_script("sessionStorage.clear()")
        d.get(self.base + "/")  # redirects to /ui/
        self.wait(ec.visibility_of_element_located((By.ID, "key"))).send_keys(self.keys[role])
        d.find_element(By.CSS_SELECTOR, "#login-form button").click()
        self.wait(ec.presence_of_element_located((By.CSS_SELECTOR, "#tables tbody tr")))
        assert self.driver.find_element(By.ID, "who").text.endswith(f"({role})")

    def go(self, hash_: str, ready: str) -> Any:
        self.driver.get(f"{self.base}/ui/{hash_}")
        return self.wait(ec.presence_of_element_located((By.CSS_SELECTOR, ready)))

    def wait(self, condition: Any, timeout: float = 30) -> Any:
        # a page re-renders what it shows: an element found a moment ago may be replaced (then look again)
        return WebDriverWait(self.driver, timeout, ignored_exceptions=[StaleElementReferenceException]).until(condition)

    def shot(self, name: str) -> None:
        self.driver.save_screenshot(str(self.shots / f"{name}.png"))

    def errors(self) -> list[str]:
        return [e["message"] for e in self.driver.get_log("browser") if e["level"] == "SEVERE"]


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    root = tmp_path_factory.mktemp("console")
    warehouse, catalog_url = str(root / "wh"), f"sqlite:///{root / 'catalog.db'}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LAKEHOUSE_", "AWS_"))}
    settings = load_settings(config_file=False, warehouse=warehouse, catalog_url=catalog_url)
    with Lakehouse(settings) as lh:
        lh.init()
        keys = {role: create_key(lh, name=f"{role}-key", role=role)[1] for role in ("reader", "engineer", "admin")}
        orders = lh.create_table(
            "sales.orders", schema=EVENTS, format="delta", partitioning=parse_partitioning("day(ts)")
        )
        day0 = dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0) - dt.timedelta(days=60)
        for b in range(6):
            orders.append(events(b * 50, 50, day0=day0))
        optimize(lh, "sales.orders", CompactionOptions())  # the table page's before/after histogram
        for b in range(6, 8):
            orders.append(events(b * 50, 50, day0=day0))
        for q in ("SELECT count(*) FROM sales.orders WHERE id < 40", "SELECT * FROM sales.orders WHERE country = 'DE'"):
            lh.query(q)  # the predicates the table page's data-skipping report replays
        clicks = lh.create_table("web.clicks", schema=EVENTS, format="iceberg")
        for b in range(3):
            clicks.append(events(b * 20, 20, day0=day0))
        people = lh.create_table("crm.people", schema=PEOPLE, format="iceberg")
        people.append(
            pa.table(
                {
                    "id": list(range(40)),
                    "email": [f"person{i}@example.com" for i in range(40)],
                    "city": ["Berlin", "Paris"] * 20,
                },
                schema=PEOPLE,
            )
        )
        scan_table(lh, "crm.people")
        lh.set_policy("crm.people", {"masking": {"email": "redact"}})
        # a table another catalog owns (a pyiceberg SQL catalog that is not ours), connected
        from pyiceberg.catalog.sql import SqlCatalog

        from lakehouse import external

        theirs = SqlCatalog("theirs", uri=f"sqlite:///{root / 'theirs.db'}", warehouse=f"file://{root / 'their-wh'}")
        theirs.create_namespace("ops")
        theirs.create_table("ops.logs", schema=EVENTS).append(events(0, 30, day0=day0))
        external.add(lh, "ext", "sql", {"uri": f"sqlite:///{root / 'theirs.db'}", "catalog-name": "theirs"})
        for name in ("sales.orders", "web.clicks", "ext.ops.logs"):
            health(lh, name)  # measured: the table list's score and trend
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    shots = Path(os.environ.get("LAKEHOUSE_SCREENSHOTS") or root / "shots")
    shots.mkdir(parents=True, exist_ok=True)
    with serving(root, ["--warehouse", warehouse, "--catalog-url", catalog_url], env) as base:
        driver = webdriver.Chrome(service=webdriver.ChromeService(DRIVER), options=options)
        try:
            yield Console(base, keys, driver, shots, warehouse)
        finally:
            driver.quit()


@pytest.fixture
def browser(console: Console) -> Iterator[Console]:
    console.driver.get_log("browser")  # what earlier tests left
    yield console
    assert console.errors() == [], "the browser's console logged errors"


def cell_values(row: Any) -> dict[str, str]:
    return {
        c.get_attribute("data-field"): c.get_attribute("data-value")
        for c in row.find_elements(By.CSS_SELECTOR, "[data-field]")
    }


def as_number(text: str) -> float | None:
    return float(text) if text not in ("", None) else None


@pytest.mark.slow
def test_the_tables_page_shows_the_apis_numbers(browser: Console) -> None:
    browser.sign_in("admin")
    expected = {t["name"]: t for t in browser.api("GET", "/console/tables")["items"]}
    rows = browser.driver.find_elements(By.CSS_SELECTOR, "#tables tbody tr")
    assert sorted(r.get_attribute("data-table") for r in rows) == sorted(expected)
    for row in rows:
        api = expected[row.get_attribute("data-table")]
        values = cell_values(row)
        for field in ("bytes", "files", "score", "small_file_share"):
            assert as_number(values[field]) == api[field], (row.get_attribute("data-table"), field)
    assert expected["sales.orders"]["score"] is not None and expected["crm.people"]["pii"] == ["email"]
    assert "email" in browser.driver.find_element(By.CSS_SELECTOR, "tr[data-table='crm.people']").text
    browser.shot("tables")
    assert browser.driver.find_element(By.CSS_SELECTOR, "tr[data-table='ext.ops.logs']").text.split()[1] == "ext"
    # one connected catalog's tables only
    Select(browser.driver.find_element(By.ID, "table-catalog")).select_by_value("ext")
    browser.wait(
        lambda d: (
            [r.get_attribute("data-table") for r in d.find_elements(By.CSS_SELECTOR, "#tables tbody tr")]
            == ["ext.ops.logs"]
        )
    )
    Select(browser.driver.find_element(By.ID, "table-catalog")).select_by_value("")
    browser.wait(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#tables tbody tr")) == len(expected))
    # sorted by size, largest first; then filtered by name
    browser.driver.find_element(By.CSS_SELECTOR, "button[data-sort='bytes']").click()
    browser.wait(lambda d: "▼" in d.find_element(By.CSS_SELECTOR, "button[data-sort='bytes']").text)
    first = browser.driver.find_element(By.CSS_SELECTOR, "#tables tbody tr").get_attribute("data-table")
    assert first == max((t for t in expected.values() if t["bytes"] is not None), key=lambda t: t["bytes"])["name"]
    search = browser.driver.find_element(By.ID, "table-search")
    search.send_keys("clicks\n")
    browser.wait(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#tables tbody tr")) == 1)
    # measuring the unmeasured tables (an engineer's button) fills their scores in
    browser.driver.find_element(By.ID, "table-search").send_keys(Keys.CONTROL, "a")
    browser.driver.find_element(By.ID, "table-search").send_keys("people\n")
    browser.wait(ec.element_to_be_clickable((By.ID, "measure"))).click()
    browser.wait(
        lambda d: (
            d.find_element(By.CSS_SELECTOR, "tr[data-table='crm.people'] [data-field='score']").get_attribute(
                "data-value"
            )
            != ""
        )
    )
    assert browser.api("GET", "/console/tables?q=people")["items"][0]["score"] is not None


@pytest.mark.slow
def test_the_table_page_matches_the_api_and_travels_in_time(browser: Console) -> None:
    browser.sign_in("admin")
    browser.go("#/table/sales.orders", "#summary")
    detail = browser.api("GET", "/tables/sales.orders")
    page = browser.api("GET", "/console/tables/sales.orders")
    versions = browser.api("GET", "/tables/sales.orders/versions")
    summary = cell_values(browser.driver.find_element(By.ID, "summary"))
    assert int(summary["files"]) == detail["files"] and int(summary["bytes"]) == detail["bytes"]
    assert int(summary["rows"]) == detail["rows"] == 400
    assert int(summary["small_files"]) == detail["health"]["small_files"]
    cells = browser.driver.find_elements(By.CSS_SELECTOR, "#partitions-strip .cell")
    assert len(cells) == len(page["partitions"]) == 3
    assert {c.get_attribute("data-tier") for c in cells} == {p["tier"] for p in page["partitions"]}
    assert len(browser.driver.find_elements(By.CSS_SELECTOR, "#versions li")) == len(versions)
    assert page["histogram_before_last_optimize"]["operation"] == "compact"
    drawn = browser.driver.execute_script("const c = Chart.getChart('histogram'); return c && c.data.datasets.length")
    assert drawn == 2, "the histogram shows before the last compaction and now"
    skipping = browser.driver.find_element(By.ID, "skipping").text
    assert "id < 40" in skipping and "country = 'DE'" in skipping
    browser.wait(ec.presence_of_element_located((By.ID, "monthly-cost")))
    browser.shot("table")
    # "query as of this version": version 1 (the first append; 0 created the table), as the API reads it
    first = 1
    assert any(v["version"] == first and not v["expired"] for v in versions)
    browser.driver.find_element(By.CSS_SELECTOR, f"#versions a[data-as-of='{first}']").click()
    count = browser.wait(ec.presence_of_element_located((By.ID, "sql-count")))
    old = browser.api(
        "POST", "/query", body={"sql": "SELECT * FROM sales.orders LIMIT 100", "as_of": {"sales.orders": str(first)}}
    )
    assert count.text.startswith(f"{len(old['rows'])} rows") and len(old["rows"]) == 50
    browser.shot("sql")


@pytest.mark.slow
def test_a_dry_run_from_the_button_appears_in_jobs(browser: Console) -> None:
    browser.sign_in("engineer")
    browser.go("#/table/web.clicks", "#summary")
    browser.wait(ec.element_to_be_clickable((By.ID, "plan-optimize"))).click()
    plan = json.loads(browser.wait(ec.presence_of_element_located((By.ID, "job-result"))).text)
    assert plan["dry_run"] is True and plan["planned_job"] > 0
    assert browser.driver.find_element(By.ID, "apply-optimize").is_displayed()
    browser.driver.find_element(By.LINK_TEXT, "See it in Jobs").click()
    row = browser.wait(ec.presence_of_element_located((By.CSS_SELECTOR, f"#jobs tr[data-job='{plan['planned_job']}']")))
    assert row.get_attribute("data-kind") == "optimize" and row.get_attribute("data-state") == "planned"
    job = browser.api("GET", f"/jobs/{plan['planned_job']}")
    assert job["state"] == "planned" and job["metrics"]["plan"]["input_files"] == plan["plan"]["input_files"]
    browser.shot("jobs")
    # applied from the table page: the rewrite runs and the list shows it committed
    browser.go("#/table/web.clicks", "#summary")
    browser.wait(ec.element_to_be_clickable((By.ID, "plan-optimize"))).click()
    browser.wait(ec.element_to_be_clickable((By.ID, "apply-optimize"))).click()
    result = browser.wait(
        lambda d: d.find_element(By.ID, "job-result") if "result" in d.find_element(By.ID, "job-output").text else False
    )
    applied = json.loads(result.text)
    assert applied["dry_run"] is False and applied["job_id"]
    browser.go("#/jobs", f"#jobs tr[data-job='{applied['job_id']}'][data-state='committed']")


@pytest.mark.slow
def test_following_a_lineage_edge_opens_the_table(browser: Console) -> None:
    # another tool's run (posted as OpenLineage) read the table: its job shows up downstream
    event = {
        "eventType": "COMPLETE",
        "eventTime": dt.datetime.now(dt.UTC).isoformat(),
        "run": {"runId": "3f1e8f3e-0000-4000-8000-00000000c0de"},
        "job": {"namespace": "airflow", "name": "daily_report"},
        "inputs": [{"namespace": browser.warehouse, "name": "sales.orders"}],
        "outputs": [{"namespace": "s3://reports", "name": "daily_revenue"}],
    }
    browser.api("POST", "/lineage", role="engineer", body=event)
    browser.sign_in("reader")
    browser.go("#/lineage/sales.orders", "#lineage-edges li")
    edges = browser.driver.find_element(By.ID, "lineage-edges").text
    assert "daily_report" in edges and "daily_revenue" in edges, edges
    graph = browser.api("GET", "/lineage?dataset=sales.orders&depth=3", role="reader")
    assert len(browser.driver.find_elements(By.CSS_SELECTOR, "#lineage-edges li")) == len(graph["edges"])
    drawn = browser.driver.execute_script("return document.querySelector('#lineage-graph canvas') !== null")
    assert drawn, "Cytoscape drew the graph"
    browser.shot("lineage")
    link = browser.driver.find_element(By.CSS_SELECTOR, "#lineage-edges a[data-node]")
    target = link.text
    link.click()
    browser.wait(lambda d: d.find_element(By.CSS_SELECTOR, "#page h1").text == target)
    assert browser.driver.current_url.endswith(f"#/table/{target}")


@pytest.mark.slow
def test_a_reader_sees_masked_values_and_no_job_buttons(browser: Console) -> None:
    browser.sign_in("reader")
    assert browser.driver.find_elements(By.ID, "measure") == []
    browser.go("#/table/crm.people", "#summary")
    assert browser.driver.find_elements(By.ID, "plan-optimize") == []
    assert "email" in browser.driver.find_element(By.ID, "schema").text
    browser.go("#/sql", "#sql")
    box = browser.driver.find_element(By.ID, "sql")
    box.clear()
    box.send_keys("SELECT id, email FROM crm.people ORDER BY id LIMIT 5")
    browser.driver.find_element(By.ID, "run-sql").click()
    table = browser.wait(ec.presence_of_element_located((By.ID, "sql-table")))
    shown = [r.find_elements(By.TAG_NAME, "td")[1].text for r in table.find_elements(By.CSS_SELECTOR, "tbody tr")]
    assert len(shown) == 5 and not any("@example.com" in v for v in shown), shown
    raw = browser.api("POST", "/query", body={"sql": "SELECT email FROM crm.people ORDER BY id LIMIT 1"})
    assert raw["rows"][0]["email"] == "person0@example.com", "an admin reads the raw value"
    browser.shot("sql-reader")


def test_a_wrong_key_is_refused_with_a_message(browser: Console) -> None:
    d = browser.driver
    d.get(browser.base + "/health")
    d.execute_script("sessionStorage.clear()")
    d.get(browser.base + "/ui/")
    browser.wait(ec.visibility_of_element_located((By.ID, "key"))).send_keys("lhk_nope_nope")
    d.find_element(By.CSS_SELECTOR, "#login-form button").click()
    try:
        browser.wait(lambda dr: dr.find_element(By.ID, "login-error").text, timeout=10)
    except TimeoutException:
        pytest.fail("no message for a refused key")
    assert "not accepted" in d.find_element(By.ID, "login-error").text
    d.get_log("browser")  # the 401 of the refused key is the expected network error
