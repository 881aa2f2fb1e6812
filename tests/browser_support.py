"""Headless Chromium for the tests that open a page (the report, the review app).

Debian's ``chromium`` and ``chromium-driver``; skipped with the reason when they are
absent, failed instead under ``SEEDANCE_REQUIRE_BROWSER=1`` (as ``.ci/run`` sets).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


def browser_missing() -> str | None:
    """Why no browser can be started here, or None."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if not Path(path).is_file():
            return f"{path} not found (apt-get install chromium chromium-driver)"
    return None


def headless_chromium(profile: Path, *flags: str) -> Iterator[Any]:
    """A headless Chromium driver (its console log kept) with a profile in ``profile`` and these extra flags,
    quit when the generator ends; for a fixture to ``yield from``."""
    missing = browser_missing()
    if missing:
        if os.environ.get("SEEDANCE_REQUIRE_BROWSER") == "1":
            pytest.fail(f"SEEDANCE_REQUIRE_BROWSER=1 but {missing}")
        pytest.skip(missing)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-dev-shm-usage", "--window-size=1400,1000", "--autoplay-policy=no-user-gesture-required",
                 *flags, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
