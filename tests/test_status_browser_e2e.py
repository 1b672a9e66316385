"""The status page as a person sees it: the demo in a real process, opened in headless Chromium.

The page must refresh itself from /api/v1/status and, at each moment, show exactly what /metrics
serves for the same snapshot (both carry the snapshot's time). Screenshots land in test-artifacts/.
"""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from exporter.serve.status.charts import sparkline
from tests.conftest import require_tool
from tests.helpers import ExporterProcess, http_get, run_exporter
from tests.status_checks import (
    SPECS,
    ShownFigure,
    assert_every_series_is_shown,
    assert_figures_match,
    json_figures,
    snapshot_time,
)

pytestmark = [pytest.mark.e2e, pytest.mark.browser, pytest.mark.slow]

ARTIFACTS = Path(__file__).parent.parent / "test-artifacts"
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
)
READ_PAGE = """
const figures = [...document.querySelectorAll('[data-metric]')].map((node) => ({
  metric: node.dataset.metric, labels: JSON.parse(node.dataset.labels), value: node.dataset.value,
  text: node.textContent, path: document.getElementById(node.id + '-chart').querySelector('path').getAttribute('d'),
}));
return {takenAt: document.body.dataset.takenAt, figures, summary: document.getElementById('summary').textContent,
        sources: [...document.querySelectorAll('[id^=src-][id$=-state]')].map((node) => node.textContent),
        loadedOnce: window.loadedOnce === true};
"""


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[ExporterProcess]:
    with run_exporter(["demo", "--seed", "3"], tmp_path) as exporter:
        yield exporter


@pytest.fixture
def browser(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Headless Chromium through the local chromedriver; nothing is downloaded (no Selenium Manager)."""
    chromium = require_tool("chromium", "apt-get install chromium")
    chromedriver = require_tool("chromedriver", "apt-get install chromium-driver")
    monkeypatch.setenv("SE_OFFLINE", "true")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'chromium-profile'}", "--window-size=1280,900"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=chromedriver))
    driver.set_page_load_timeout(60)
    driver.set_script_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def _shown(figures: list[dict[str, Any]]) -> list[ShownFigure]:
    return [
        ShownFigure(f["metric"], f["labels"], float(f["value"]) if f["value"] else None, f["text"]) for f in figures
    ]


def _next_refresh(driver: Any, after: str, timeout: float = 60.0) -> dict[str, Any]:
    """Wait for the page's script to apply a newer snapshot than ``after``; return the page as read then."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        page: dict[str, Any] = driver.execute_script(READ_PAGE)
        if page["takenAt"] != after:
            return page
        time.sleep(0.01)
    raise AssertionError(f"the page did not refresh within {timeout}s (still at {after})")


def _same_moment(driver: Any, demo: ExporterProcess, timeout: float = 120.0) -> tuple[dict[str, Any], str, Any]:
    """A refreshed page, /metrics and /api/v1/status of one snapshot (retried when a poll falls in between)."""
    deadline = time.monotonic() + timeout
    page: dict[str, Any] = driver.execute_script(READ_PAGE)
    while time.monotonic() < deadline:
        page = _next_refresh(driver, page["takenAt"])
        metrics_text = demo.metrics()
        status = json.loads(http_get(demo.base + "/api/v1/status")[1])
        if snapshot_time(metrics_text) == float(page["takenAt"]) == status["taken_at_unix"]:
            return page, metrics_text, status
    raise AssertionError(f"never caught the page, /metrics and the JSON at one snapshot within {timeout}s")


def _screenshot(driver: Any, name: str) -> Path:
    """Save the whole page, beyond the viewport, as a PNG under test-artifacts/."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    size = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
    clip = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}
    shot = driver.execute_cdp_cmd(
        "Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True, "clip": clip}
    )
    path.write_bytes(base64.b64decode(shot["data"]))
    assert path.stat().st_size > 10_000
    return path


def test_the_status_page_refreshes_itself_and_matches_metrics_at_the_same_moment(
    demo: ExporterProcess, browser: Any
) -> None:
    browser.get(demo.base + "/")
    assert browser.title.startswith("Inference status")
    browser.execute_script("window.loadedOnce = true;")

    page, metrics_text, status = _same_moment(browser, demo)

    figures = _shown(page["figures"])
    assert_figures_match(figures, metrics_text, currency="USD")
    assert_every_series_is_shown(figures, metrics_text)
    assert figures == json_figures(status)
    assert {f.metric for f in figures} == set(SPECS), "every kind of figure is on the page"
    assert page["loadedOnce"], "the page reloaded instead of refreshing in place"
    assert page["summary"] == status["summary"]
    assert re.match(r"\d of 6 servers up · NVML (up, 10 GPUs|down)", page["summary"]), page["summary"]
    assert page["sources"] == [source["display"] for source in status["sources"]]
    slots = status["history"]["slots"]
    cards = status["cost"] + status["deployments"] + status["models"] + status["gpus"]
    drawn = [sparkline(f["history"], slots) for card in cards for f in card["figures"]]
    assert [f["path"] for f in page["figures"]] == drawn, "the script drew other charts than the server would"
    assert all(f["path"].startswith("M") for f in page["figures"] if f["value"]), "a figure without its chart"

    resources = browser.execute_script("return performance.getEntriesByType('resource').map((e) => e.name)")
    assert all(name.startswith(demo.base + "/") for name in resources), resources
    errors = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert not errors, errors

    _screenshot(browser, "status-page.png")


def test_the_status_page_reads_on_a_phone_without_sideways_scrolling(demo: ExporterProcess, browser: Any) -> None:
    phone = {"width": 375, "height": 812, "deviceScaleFactor": 2, "mobile": True}
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", phone)
    browser.get(demo.base + "/")
    assert browser.execute_script("return window.innerWidth") == 375
    page = _next_refresh(browser, browser.execute_script("return document.body.dataset.takenAt"))
    assert len(page["figures"]) >= 8 * 5
    overflow = browser.execute_script("return document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the page is {overflow}px wider than a phone's screen"
    smallest = browser.execute_script(
        "return Math.min(...[...document.querySelectorAll('body *')].filter((n) => n.childNodes.length"
        " && [...n.childNodes].some((c) => c.nodeType === 3 && c.textContent.trim()))"
        ".map((n) => parseFloat(getComputedStyle(n).fontSize)))"
    )
    assert smallest >= 12, f"text as small as {smallest}px is hard to read on a phone"
    _screenshot(browser, "status-page-phone.png")
