"""The dashboard end to end, as an analyst uses it: headless Chromium (driven by Selenium
through Debian's chromedriver) against `postwatch serve --role web` on a loopback port, on a
store of known content (tests/dashboard/known_store.py: May 2024, a Microsoft block, a
complaint spike, a spoofing source, two suppressions).

Log in, open every page and wait for its charts, save a screenshot of each (printed at the
end: pytest's temporary folder, `screenshots/`), change a filter and see a chart change,
find a suppressed address and see why.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import need
from tests.ingest.collectors.servers import free_port, wait_port

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
PASSWORD = "analyst-password"
SEARCH = "?start=2024-05-01&end=2024-05-30"
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run", "--disable-dev-shm-usage", "--window-size=1400,1000")
PLOTTED = """return (function (root) {
    if (!root || root.querySelector('[data-dash-is-loading="true"]')) return false;
    const graphs = Array.from(root.querySelectorAll('.dash-graph'));
    return graphs.every(g => g.querySelector('.main-svg'));
})(document.getElementById(arguments[0]));"""
SENT = """const g = document.querySelector('#ov-volume .js-plotly-plot');
if (!g || !g.data || !g.data.length) return null;
return Array.from(g.data[0].y).map(Number).reduce((a, b) => a + (b || 0), 0);"""


@pytest.fixture(scope="module")
def served(tmp_path_factory, database_factory):
    """`postwatch serve --role web` on a known store; yields (base URL, the server's log lines)."""
    from dashboard.auth import hash_password
    from store.engine import session_factory, upgrade
    from tests.dashboard.known_store import fill

    root = tmp_path_factory.mktemp("e2e")
    database = database_factory(root)
    upgrade(database)
    fill(session_factory(database))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("POSTWATCH_")}
    env.update({"POSTWATCH_DATABASE__URL": database.url, "POSTWATCH_WEB__LISTEN": f"127.0.0.1:{port}",
                "POSTWATCH_WEB__SECRET": "e2e-session-key-0123456789",
                "POSTWATCH_WEB__USERS": f"ann:editor:{hash_password(PASSWORD)},bob:viewer:{hash_password(PASSWORD)}"})
    proc = subprocess.Popen([sys.executable, "-m", "postwatch.cli", "serve", "--role", "web"], cwd=root, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True)
    reader.start()
    try:
        wait_port(port, timeout=90, proc=proc)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=30) as answer:
            assert answer.status == 200
        yield f"http://127.0.0.1:{port}", lines
    finally:
        proc.terminate()
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        reader.join(10)


@pytest.fixture(scope="module")
def browser():
    need(os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK),
         "Debian's chromium and chromium-driver are not installed (apt-get install chromium chromium-driver)")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        need(False, "selenium is not installed (pip install -e '.[test]')")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM  # given explicitly: Selenium Manager must not run (it downloads)
    profile = tempfile.mkdtemp(prefix="postwatch-chromium-")
    for flag in FLAGS + (f"--user-data-dir={profile}",):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("screenshots")
    yield folder
    print(f"\nscreenshots: {folder}")


def _wait(driver, condition, timeout: float = 60.0, why: str = ""):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.2).until(condition, message=why)


def _log_in(driver, base: str, password: str = PASSWORD, user: str = "ann") -> None:
    from selenium.webdriver.common.by import By

    for field, value in (("username", user), ("password", password)):
        element = driver.find_element(By.ID, field)
        element.clear()
        element.send_keys(value)
    button = driver.find_element(By.ID, "login-button")
    button.click()
    # wait for the answer to the form: the old page goes stale once the next one loads, so the
    # caller never reads (or navigates away from) the login page it just submitted
    from selenium.webdriver.support import expected_conditions

    _wait(driver, expected_conditions.staleness_of(button), why="the answer to the login form")


def test_the_dashboard_needs_a_login_and_returns_to_the_page_asked_for(served, browser):
    from selenium.webdriver.common.by import By

    base, _log = served
    browser.get(base + "/tls" + SEARCH)
    _wait(browser, lambda d: "/login" in d.current_url, why="the login form")
    _log_in(browser, base, password="not-the-password")
    assert "is wrong" in browser.find_element(By.ID, "login-error").text
    _log_in(browser, base)
    _wait(browser, lambda d: d.current_url == base + "/tls" + SEARCH, why="back on the TLS page")
    _wait(browser, lambda d: d.execute_script(PLOTTED, "page-tls"), why="the TLS charts")


def test_every_page_draws_its_charts(served, browser, screenshots):
    from selenium.webdriver.common.by import By

    from dashboard.app import PAGES

    base, log = served
    browser.get(base + "/login")
    if "/login" in browser.current_url:
        _log_in(browser, base)
    for page in PAGES:
        browser.get(base + page.PATH + SEARCH)
        _wait(browser, lambda d: d.find_elements(By.ID, f"page-{page.NAME}"), why=f"the {page.TITLE} page")
        _wait(browser, lambda d: d.execute_script(PLOTTED, f"page-{page.NAME}"), why=f"the {page.TITLE} charts")
        assert "Not found" not in browser.find_element(By.ID, "page").text
        browser.save_screenshot(str(screenshots / f"{page.NAME}.png"))
    shots = [screenshots / f"{p.NAME}.png" for p in PAGES]
    assert all(shot.stat().st_size > 10_000 for shot in shots)
    errors = [line for line in log if '" 500 ' in line or "Traceback" in line]
    first = next((i for i, line in enumerate(log) if line in errors), 0)
    assert errors == [], "".join(log[first:first + 40])


def test_changing_the_dates_changes_the_chart_and_the_url(served, browser, screenshots):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    base, _log = served
    browser.get(base + "/" + SEARCH)
    if "/login" in browser.current_url:
        _log_in(browser, base)
    before = _wait(browser, lambda d: d.execute_script(SENT), why="the volume chart")
    assert before == 30 * 1500  # 1,000 a day at Google and 500 at Microsoft, 1-30 May
    start = browser.find_element(By.ID, "f-dates")
    start.click()
    start.send_keys(Keys.CONTROL, "a")
    start.send_keys("2024-05-20", Keys.ENTER)
    _wait(browser, lambda d: "start=2024-05-20" in d.current_url, why="the new start in the URL")
    after = _wait(browser, lambda d: (v := d.execute_script(SENT)) not in (None, before) and v, why="a new chart")
    assert after == 11 * 1500
    browser.save_screenshot(str(screenshots / "overview-from-may-20.png"))
    # the URL is the view: opening it again shows the same
    browser.get(browser.current_url)
    assert _wait(browser, lambda d: d.execute_script(SENT), why="the bookmarked view") == after


def test_find_a_suppressed_address_and_why(served, browser, screenshots):
    from selenium.webdriver.common.by import By

    base, _log = served
    browser.get(base + "/suppressions" + SEARCH)
    if "/login" in browser.current_url:
        _log_in(browser, base)
    box = _wait(browser, lambda d: d.find_elements(By.ID, "su-query"), why="the search box")[0]
    box.send_keys("gone0@gmail")
    browser.find_element(By.ID, "su-find").click()
    found = _wait(browser, lambda d: "gone0@gmail.com" in (t := d.find_element(By.ID, "su-results").text) and t,
                  why="the suppression found")
    assert "userunknown" in found and "bounce" in found
    browser.save_screenshot(str(screenshots / "suppressions-found.png"))
    box.clear()
    box.send_keys("nobody@example.org")
    browser.find_element(By.ID, "su-find").click()
    _wait(browser, lambda d: "is not suppressed" in d.find_element(By.ID, "su-results").text, why="not suppressed")


def test_a_viewer_cannot_remove_a_suppression(served, browser):
    from selenium.webdriver.common.by import By

    base, log = served
    browser.get(base + "/logout")
    _log_in(browser, base, user="bob")
    browser.get(base + "/suppressions" + SEARCH)
    _wait(browser, lambda d: d.find_elements(By.ID, "su-remove"), why="the remove form")
    for field, value in (("su-remove-address", "gone0@gmail.com"), ("su-remove-reason", "asked by the customer")):
        browser.find_element(By.ID, field).send_keys(value)
    browser.find_element(By.ID, "su-remove").click()
    said = _wait(browser, lambda d: (t := d.find_element(By.ID, "su-remove-result").text) and t, why="the refusal")
    assert "Only an editor can remove a suppression" in said and "viewer" in said
    assert "bob (viewer)" in browser.find_element(By.ID, "who").text
    browser.get(base + "/logout")  # the next test logs in as it needs
