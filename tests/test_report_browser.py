"""report.html in a real headless Chromium: it loads clean, renders, sorts, filters, plays.

Uses Debian's chromium and chromedriver. Without them the tests skip, unless
SEEDANCE_REQUIRE_BROWSER=1 (CI sets it), when they fail instead.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from browser_support import headless_chromium
from report_campaign import SCRIPT_PROMPT, campaign, lay_out_files
from seedance_batch.report import write_reports


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    yield from headless_chromium(tmp_path_factory.mktemp("chromium-profile"))


@pytest.fixture(scope="module")
def report_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    root = tmp_path_factory.mktemp("work")
    camp = campaign()
    lay_out_files(root, camp)
    paths = write_reports(camp.plan, camp.records, out_dir=root / "reports" / "spring",
                          output_dir=root / "renders", manifest_sha256="0" * 64)
    return paths.html.resolve().as_uri()


def _wait(driver, condition, timeout: float = 15):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(lambda d: d.execute_script(condition))


def _visible_labels(driver) -> list[str]:
    return driver.execute_script(
        "return Array.from(document.querySelectorAll('#jobs tbody tr:not([hidden]) td.label'))"
        ".map(td => td.textContent.trim())"
    )


def test_report_loads_without_console_errors_and_renders(browser, report_url: str, tmp_path: Path) -> None:
    browser.get(report_url)
    _wait(browser, "return document.readyState === 'complete'")
    # 3 shots x 6 combinations, one job per cell.
    assert browser.execute_script("return document.querySelectorAll('#sheets tbody tr').length") == 3
    assert browser.execute_script("return document.querySelectorAll('#sheets thead th').length") == 1 + 6
    assert browser.execute_script("return document.querySelectorAll('#sheets figure.cell').length") == 18
    assert browser.execute_script("return document.querySelectorAll('#jobs tbody tr').length") == 18
    # Four files were downloaded: four players (made as they come near the screen);
    # the fifth "done" job's file is missing and says so.
    assert browser.execute_script(
        "return document.querySelectorAll('#sheets video, #sheets .frame[data-video]').length") == 4
    badges = browser.execute_script(
        "return Array.from(document.querySelectorAll('#sheets .frame .badge')).map(b => b.textContent)")
    assert sorted(set(badges)) == ["downloading", "failed", "file missing", "in flight", "planned",
                                   "timed out", "unknown"]
    # The prompt with a <script> tag is text, and the only script is the report's own.
    assert browser.execute_script("return document.scripts.length") == 1
    assert SCRIPT_PROMPT in browser.execute_script("return document.getElementById('jobs').textContent")
    browser.save_screenshot(str(tmp_path / "report.png"))
    errors = [entry for entry in browser.get_log("browser") if entry["level"] in ("SEVERE", "ERROR")]
    assert errors == []


def test_videos_load_lazily_from_relative_paths(browser, report_url: str) -> None:
    browser.get(report_url)
    first = "document.querySelector('#sheets video')"
    _wait(browser, f"return {first} !== null")
    assert browser.execute_script(f"return [{first}.getAttribute('src'), {first}.preload, {first}.controls]") == [
        "../../renders/spring/hero/en-US/16x9.mp4#t=0.1", "metadata", True]
    # The browser found the file and read its metadata: 320x180, 2 seconds.
    _wait(browser, f"return {first}.readyState >= 1")
    assert browser.execute_script(f"return [{first}.videoWidth, {first}.videoHeight, {first}.duration]") == [
        320, 180, 2]
    # The last column is off screen, so its player does not exist yet; scrolled to, it does.
    waiting = "document.querySelectorAll('#sheets .frame[data-video]').length"
    assert browser.execute_script(f"return {waiting}") >= 1
    browser.execute_script("document.querySelector('.sheet-wrap').scrollLeft = 1e6")
    _wait(browser, f"return {waiting} === 0")
    assert browser.execute_script("return document.querySelectorAll('#sheets video').length") == 4


def test_table_sorts_by_a_column_both_ways(browser, report_url: str) -> None:
    browser.get(report_url)
    header = browser.find_element("xpath", "//table[@id='jobs']//th[normalize-space()='attempts']")
    header.click()
    attempts = browser.execute_script(
        "return Array.from(document.querySelectorAll('#jobs tbody tr')).map(r => +r.cells[6].dataset.v)")
    assert attempts == sorted(attempts) and attempts[0] == 0
    header.click()
    attempts = browser.execute_script(
        "return Array.from(document.querySelectorAll('#jobs tbody tr')).map(r => +r.cells[6].dataset.v)")
    assert attempts[0] == 3 and attempts == sorted(attempts, reverse=True)
    label = browser.find_element("xpath", "//table[@id='jobs']//th[normalize-space()='label']")
    label.click()
    labels = _visible_labels(browser)
    assert labels == sorted(labels, key=_natural)  # 9x16 before 16x9, as people count


def _natural(text: str) -> list[object]:
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", text)]


def test_table_filters_by_text_and_state(browser, report_url: str, tmp_path: Path) -> None:
    from selenium.webdriver.support.ui import Select

    browser.get(report_url)
    box = browser.find_element("id", "filter")
    box.send_keys("ja-JP 16x9")
    assert sorted(_visible_labels(browser)) == ["hero/ja-JP/16x9", "outro/ja-JP/16x9", "product/ja-JP/16x9"]
    assert browser.find_element("id", "shown").text == "3 of 18 jobs"
    box.clear()
    box.send_keys(" ")  # an input event with an empty query: every row again
    Select(browser.find_element("id", "state")).select_by_value("problems")
    assert sorted(_visible_labels(browser)) == ["hero/fr-FR/9x16", "hero/ja-JP/16x9", "hero/ja-JP/9x16"]
    Select(browser.find_element("id", "state")).select_by_value("done")
    assert len(_visible_labels(browser)) == 5
    browser.save_screenshot(str(tmp_path / "filtered.png"))


def test_report_is_readable_on_a_phone(browser, report_url: str, tmp_path: Path) -> None:
    browser.set_window_size(390, 844)
    try:
        browser.get(report_url)
        # The page itself never scrolls sideways: wide parts scroll inside their own boxes.
        overflow = browser.execute_script(
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow <= 0
        browser.save_screenshot(str(tmp_path / "phone.png"))
    finally:
        browser.set_window_size(1400, 1000)
