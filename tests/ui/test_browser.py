"""The web catalog in a real headless Chromium (Debian's ``chromium`` + ``chromium-driver``, through
Selenium): every page kind loads without a console error or a failed request, the search answers as
you type, a model's lineage leads to its table, a table travels back to an older version, and an edit
goes through. A screenshot of each page is written under the test's temp dir (and, with
``LARDER_UI_SCREENSHOTS=<dir>``, copied there: ``docs/img`` is made that way)."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ui_world import DECLARATIVE, FUNCTION, HOUSES, MODEL_NAME, RIDERSHIP, SPEC, TOKEN

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver") or ("/usr/bin/chromedriver" if Path("/usr/bin/chromedriver").exists()
                                                else None)
pytestmark = pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None,
    reason="chromium and chromium-driver are not installed (apt-get install chromium chromium-driver)",
)
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars", "--window-size=1400,1000"]


class Browser:
    """One Chromium for the session; every check of a page reads and clears the browser's console and
    network logs, so an error is reported by the step that caused it."""

    def __init__(self, base: str, shots: Path) -> None:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        self.base, self.shots = base, shots
        self.urls: dict[str, str] = {}
        self.profile = tempfile.mkdtemp(prefix="larder-chromium-")
        opts = webdriver.ChromeOptions()
        opts.binary_location = CHROMIUM  # type: ignore[assignment]
        for flag in [*FLAGS, f"--user-data-dir={self.profile}"]:
            opts.add_argument(flag)
        opts.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
        self.driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
        self.driver.set_page_load_timeout(60)
        self.drain()

    def drain(self) -> tuple[list[str], list[str]]:
        """Console messages (warnings and errors) and failed requests since the last call."""
        console = [f"{e['level']}: {e['message']}" for e in self.driver.get_log("browser")
                   if e["level"] in ("SEVERE", "WARNING")]
        failed = []
        for entry in self.driver.get_log("performance"):
            msg = json.loads(entry["message"])["message"]
            params = msg.get("params", {})
            if msg["method"] == "Network.requestWillBeSent":
                url = params["request"]["url"]
                self.urls[params["requestId"]] = url
                # the browser's own pages (chrome://) are not the catalog's requests
                if not url.startswith((self.base, "data:", "chrome://", "chrome-untrusted://", "about:")):
                    failed.append(f"request to another origin: {url}")
            elif msg["method"] == "Network.loadingFailed" and not params.get("canceled"):
                url = self.urls.get(params.get("requestId"), "?")
                if url.startswith(self.base):
                    failed.append(f"{params.get('errorText')}: {url}")
            elif msg["method"] == "Network.responseReceived" and params["response"]["status"] >= 400:
                failed.append(f"{params['response']['status']} {params['response']['url']}")
        return console, failed

    def check(self, shot: str | None = None) -> None:
        """Fail on anything the page logged or any request that failed; then save a screenshot."""
        self.wait(lambda d: d.execute_script("return document.readyState") == "complete")
        time.sleep(0.1)  # let deferred scripts run and log
        console, failed = self.drain()
        assert console == [] and failed == [], (self.driver.current_url, console, failed)
        if shot:
            height = self.driver.execute_script("return document.documentElement.scrollHeight")
            self.driver.set_window_size(1400, min(max(int(height), 700), 2600))
            path = self.shots / f"ui-{shot}.png"
            self.driver.save_screenshot(str(path))
            self.driver.set_window_size(1400, 1000)
            assert path.stat().st_size > 10_000

    def open(self, path: str, shot: str | None = None) -> None:
        self.driver.get(self.base + path)
        self.check(shot)

    def wait(self, cond: Any, timeout: float = 20) -> Any:
        from selenium.webdriver.support.ui import WebDriverWait

        return WebDriverWait(self.driver, timeout).until(cond)

    def css(self, selector: str) -> Any:
        from selenium.webdriver.common.by import By

        return self.driver.find_element(By.CSS_SELECTOR, selector)

    def all(self, selector: str) -> list[Any]:
        from selenium.webdriver.common.by import By

        return self.driver.find_elements(By.CSS_SELECTOR, selector)

    def text(self, selector: str) -> str | None:
        """The text of the first match, or None while it is missing or the page is being replaced."""
        from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException

        try:
            return str(self.css(selector).text)
        except (NoSuchElementException, StaleElementReferenceException):
            return None

    def h1(self) -> str:
        return self.text("h1") or ""

    def quit(self) -> None:
        self.driver.quit()
        shutil.rmtree(self.profile, ignore_errors=True)


@pytest.fixture(scope="module")
def browser(ui_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    shots = tmp_path_factory.mktemp("ui-screenshots")
    b = Browser(ui_server, shots)
    try:
        b.driver.get(f"{ui_server}/tables?token={TOKEN}")  # signs in: cookie set, token dropped from the URL
        b.check()
        assert b.driver.current_url == f"{ui_server}/tables"
        yield b
    finally:
        b.quit()
        keep = os.environ.get("LARDER_UI_SCREENSHOTS")
        if keep:
            Path(keep).mkdir(parents=True, exist_ok=True)
            for png in shots.glob("*.png"):
                shutil.copy(png, Path(keep) / png.name)


def test_the_console_check_catches_a_broken_page(browser: Browser) -> None:
    browser.driver.get("data:text/html,<script>console.error('deliberate')</script>")
    time.sleep(0.2)
    console, _ = browser.drain()
    assert any("deliberate" in line for line in console)
    browser.driver.get(browser.base + "/static/nothing-here.css")
    time.sleep(0.2)
    _, failed = browser.drain()
    assert any("404" in f for f in failed)


PAGES = [
    ("tables", "/tables", "Feature tables"),
    ("table", f"/tables/{HOUSES}", HOUSES),
    ("quality", f"/tables/{HOUSES}/quality", HOUSES),
    ("drift", f"/tables/{HOUSES}/drift?baseline=0&current=2", HOUSES),
    ("features", "/features", "Declarative features"),
    ("feature", f"/features/{DECLARATIVE}", DECLARATIVE),
    ("functions", "/functions", "Feature functions"),
    ("function", f"/functions/{FUNCTION}", FUNCTION),
    ("specs", "/specs", "Feature specs"),
    ("spec", f"/specs/{SPEC}", SPEC),
    ("models", "/models", "Models"),
    ("model", f"/models/{MODEL_NAME}/versions/1", MODEL_NAME),
    ("online", "/online", "Online publications"),
    ("lineage", "/lineage", "Lineage"),
    ("edits", "/edits", "Edits"),
    ("api", "/api-docs", "JSON API"),
]


@pytest.mark.parametrize(("shot", "path", "heading"), PAGES, ids=[p[0] for p in PAGES])
def test_each_page_kind_loads_cleanly(browser: Browser, shot: str, path: str, heading: str) -> None:
    browser.open(path, shot)
    assert browser.h1().startswith(heading)
    if shot == "quality":
        assert len(browser.all("#profile-columns svg.chart")) >= 5
    if shot == "drift":
        assert len(browser.all("#drift-plots svg rect.bar.base")) > 10
    if shot == "lineage":
        assert len(browser.all("svg.lineage a.node")) >= 8


def test_search_answers_as_you_type(browser: Browser) -> None:
    browser.open("/tables")
    assert len(browser.all("#table-rows tr")) == 3
    box = browser.css("#table-search")
    box.send_keys("square")
    browser.wait(lambda d: len(browser.all("#table-rows tr")) == 1 and browser.all("#table-rows a.table-link"))
    assert browser.css("#table-rows a.table-link").text == HOUSES
    assert "feature GrLivArea" in browser.css("#table-rows .matches").text
    assert "1 of 3 tables" in browser.css("#table-count").text
    assert browser.driver.current_url.endswith("/tables?q=square")
    box.clear()
    box.send_keys("transit")
    browser.wait(lambda d: [a.text for a in browser.all("#table-rows a.table-link")] == [RIDERSHIP])
    browser.check("search")
    browser.css("#table-rows a.table-link").click()
    browser.wait(lambda d: browser.h1() == RIDERSHIP)
    browser.check()


def test_a_models_lineage_leads_to_its_table(browser: Browser) -> None:
    browser.open("/models")
    browser.css("a.model-link").click()
    browser.wait(lambda d: browser.h1().startswith(MODEL_NAME))
    browser.check()
    browser.css("#model-lineage").click()
    browser.wait(lambda d: browser.all("svg.lineage a.node"))
    browser.check("lineage-model")
    nodes = {a.get_attribute("data-node") for a in browser.all("svg.lineage a.node")}
    assert f"table:{HOUSES}" in nodes and "table:main.default.house_sales" not in nodes
    browser.css(f'svg.lineage a.node[data-node="table:{HOUSES}"]').click()
    browser.wait(lambda d: d.current_url.endswith(f"/tables/{HOUSES}"))
    assert browser.h1() == HOUSES
    browser.check()


def test_a_table_travels_back_to_an_older_version(browser: Browser) -> None:
    from selenium.webdriver.support.ui import Select

    browser.open(f"/tables/{HOUSES}")
    assert browser.css("#shown-version").text == "2" and "of 85 rows" in browser.css("#preview-meta").text
    Select(browser.css("#version-select")).select_by_value("0")  # the change submits the form
    browser.wait(lambda d: "version=0" in d.current_url and browser.text("#shown-version") == "0")
    browser.check("table-version-0")
    assert "of 60 rows" in browser.css("#preview-meta").text
    assert len(browser.all("#preview-rows tbody tr")) == 20
    assert not browser.all("#preview-rows td.null")  # the null areas came with version 2
    browser.all("#versions a.version-link")[1].click()  # version 1, from the history
    browser.wait(lambda d: browser.text("#shown-version") == "1")
    browser.check()


def test_an_edit_goes_through_and_is_recorded(browser: Browser) -> None:
    browser.open(f"/tables/{RIDERSHIP}")
    browser.driver.execute_script("localStorage.setItem('larder-editor', 'grace')")
    browser.css("#table-editor summary").click()
    owner = browser.css("#edit-form input[name=owner]")
    owner.clear()
    owner.send_keys("transit-team")
    browser.css("#edit-form button[type=submit]").click()
    browser.wait(lambda d: browser.text("#table-facts [data-edit=owner]") == "transit-team")
    browser.check("table-edited")
    browser.open("/edits")
    row = browser.css("table.edits tbody tr").text
    assert "grace" in row and "owner" in row and "transit-team" in row
