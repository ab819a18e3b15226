"""Screenshot of a study's report.html in headless Chromium (for the README).

    python scripts/report_screenshot.py compare-digits/report.html docs/report-digits.png

Needs selenium, chromium and chromedriver (Debian: apt-get install chromium chromium-driver).
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--width", type=int, default=1200)
    parser.add_argument("--height", type=int, default=1500)
    arguments = parser.parse_args()

    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = shutil.which("chromium") or shutil.which("chromium-browser")
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                     f"--window-size={arguments.width},{arguments.height}"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    try:
        driver.get(arguments.report.resolve().as_uri())
        arguments.out.parent.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(arguments.out))
    finally:
        driver.quit()
    print(f"wrote {arguments.out}")


if __name__ == "__main__":
    main()
