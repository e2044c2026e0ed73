"""The rendered digest opened in headless Chromium at 600 px: nothing wider than 640 px, every
chart image loaded; a screenshot of it is kept in the test's folder."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from analysis.digest.figures import gather
from analysis.digest.message import build, write_preview
from analysis.digest.schedule import Period, Scope
from postwatch.config import Config
from tests.analysis.digest_history import NOW, WEEK, fortnight_store
from tests.conftest import need

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    need(os.access(CHROMIUM, os.X_OK), f"headless Chromium is not at {CHROMIUM} (Debian package chromium)")
    need(os.access(CHROMEDRIVER, os.X_OK), f"chromedriver is not at {CHROMEDRIVER} (Debian package chromium-driver)")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        need(False, "selenium is not installed (pip install -e '.[test]')")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM  # given explicitly: Selenium Manager never runs (it would download)
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-dev-shm-usage",
                 f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}", "--window-size=600,900"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def fortnight(tmp_path_factory, database_factory):
    return fortnight_store(database_factory(tmp_path_factory.mktemp("digest-browser")))


def _open(browser, sessions, period: Period, folder: Path):
    with sessions() as s:
        rendered = build(gather(s, Config(), period, Scope(), NOW))
    write_preview(rendered, folder)
    browser.set_window_size(600, 900)
    # the viewport itself must be 600 px wide, whatever the window decorations take
    inner = browser.execute_script("return window.innerWidth")
    if inner != 600:
        browser.set_window_size(600 + (600 - inner), 900)
    browser.get((folder / "digest.html").as_uri())
    browser.execute_script("return document.readyState")
    return rendered


def _state(browser) -> dict:
    return browser.execute_script("""
        const imgs = Array.from(document.images);
        return {inner: window.innerWidth, scroll: document.documentElement.scrollWidth,
                body: document.body.scrollWidth, scripts: document.scripts.length,
                images: imgs.map(i => ({src: i.getAttribute('src'), complete: i.complete, w: i.naturalWidth,
                                        shown: i.getBoundingClientRect().width}))};""")


def test_the_digest_at_600px_fits_and_its_images_load(browser, fortnight, tmp_path):
    rendered = _open(browser, fortnight, WEEK, tmp_path / "weekly")
    state = _state(browser)
    assert state["inner"] == 600
    assert state["scroll"] <= 640 and state["body"] <= 640, state
    assert state["scripts"] == 0
    assert [i["src"] for i in state["images"]] == [f"{c.name}.png" for c in rendered.charts]
    assert all(i["complete"] and i["w"] > 0 and 0 < i["shown"] <= 600 for i in state["images"]), state["images"]
    shot = tmp_path / "digest-600px.png"
    assert browser.save_screenshot(str(shot)) and shot.read_bytes().startswith(b"\x89PNG")
    keep = os.environ.get("POSTWATCH_SCREENSHOTS")  # a folder to copy the screenshot to, to look at it
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(keep) / shot.name)


def test_an_empty_period_in_the_browser_says_so(browser, fortnight, tmp_path):
    from datetime import date

    _open(browser, fortnight, Period("daily", date(2025, 1, 1), date(2025, 1, 1)), tmp_path / "empty")
    state = _state(browser)
    assert state["images"] == [] and state["scroll"] <= 640
    assert "No data for this period" in browser.find_element("id", "no-data").text
