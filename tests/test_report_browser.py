"""The study report in a real headless browser (Debian's chromium and chromium-driver, driven by
selenium): every image loads, the console stays clean, user strings stay text, and a screenshot
is saved. CI installs the browser and sets AEVAE_REQUIRE_BROWSER=1, so there it cannot skip."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest

from aevae.study import StudySettings, run_study

HOSTILE = ("<script>alert(1)</script>", "<img src=x onerror=alert(2)>", "a&b \"q\"")


def _browser_paths() -> tuple[str | None, str | None]:
    browser = next((path for name in ("chromium", "chromium-browser", "google-chrome")
                    if (path := shutil.which(name))), None)
    return browser, shutil.which("chromedriver")


@pytest.fixture(scope="module")
def driver():
    browser, chromedriver = _browser_paths()
    required = os.environ.get("AEVAE_REQUIRE_BROWSER") == "1"
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.options import Options
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        if required:
            raise
        pytest.skip("selenium is not installed")
    if browser is None or chromedriver is None:
        if required:
            pytest.fail("AEVAE_REQUIRE_BROWSER=1 but chromium or chromedriver is missing")
        pytest.skip("no chromium / chromedriver on this machine")
    options = Options()
    options.binary_location = browser
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu",
                     "--disable-dev-shm-usage", "--window-size=1280,1000"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    session = webdriver.Chrome(service=Service(chromedriver), options=options)
    yield session
    session.quit()


@pytest.fixture(scope="module")
def hostile_report(tmp_path_factory, tiny_budget):
    """A study of digits saved as user data whose name and class names are markup."""
    from sklearn.datasets import load_digits

    folder = tmp_path_factory.mktemp("hostile")
    bunch = load_digits()
    names = np.array([HOSTILE[digit % 3] + f" {digit}" for digit in range(10)])
    path = folder / "digits<b>bold</b>.npz".replace("/", "_")
    np.savez(path, x=(bunch.images / 16.0).astype(np.float32), y=names[bunch.target])
    out = folder / "study"
    settings = StudySettings(data=str(path), models="ae,vae", seeds=2, budget=tiny_budget)
    run_study(settings, out, progress=False)
    return out / "report.html"


def test_report_renders_cleanly_in_a_browser(driver, hostile_report, tmp_path):
    from selenium.common.exceptions import NoAlertPresentException

    driver.get(hostile_report.as_uri())
    images = driver.execute_script(
        "return Array.from(document.images).map(i => [i.complete, i.naturalWidth, i.alt]);")
    assert len(images) >= 2 * 5  # per model: three grids and two strips
    broken = [alt for complete, width, alt in images if not complete or width == 0]
    assert not broken, f"images that did not load: {broken}"
    assert driver.execute_script("return document.querySelectorAll('svg').length") >= 8
    assert driver.execute_script("return document.scripts.length") == 0
    with pytest.raises(NoAlertPresentException):
        driver.switch_to.alert.text  # noqa: B018  (an injected script would have alerted)
    errors = [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
    assert not errors, errors
    # The user's strings are shown as text, never parsed as markup.
    text = driver.execute_script("return document.body.textContent")
    assert "digits<b>bold<_b>" in text
    for name in HOSTILE:
        assert name in text
    assert driver.execute_script("return document.querySelectorAll('main b img').length") == 0
    screenshot = tmp_path / "report.png"
    assert driver.save_screenshot(str(screenshot))
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_bottom_line_is_visible_above_the_fold(driver, hostile_report):
    """The AE-vs-VAE table is the first thing a reader sees: in the 1280x1000 window, without
    scrolling, its heading, its header row and its first goal's row are on screen."""
    driver.get(hostile_report.as_uri())
    boxes = driver.execute_script("""
        const table = document.querySelector('#bottom-line table.bottom');
        const rect = element => element.getBoundingClientRect();
        return {scrolled: window.scrollY, height: window.innerHeight,
                heading: rect(document.querySelector('#bottom-line h2')).top,
                header: rect(table.tHead).bottom,
                first: rect(table.tBodies[0].rows[0]).bottom,
                first_section: document.querySelector('main section').id,
                text: table.tBodies[0].rows[0].textContent};""")
    assert boxes["scrolled"] == 0 and boxes["first_section"] == "bottom-line"
    assert 0 <= boxes["heading"] < boxes["header"] < boxes["first"] <= boxes["height"]
    assert boxes["text"].startswith("compress")
