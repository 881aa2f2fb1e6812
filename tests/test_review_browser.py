"""The review in a real headless Chromium, over a campaign rendered by a real ``run --simulate``.

One real ``seedance-batch review`` process serves it for the module. The browser opens
the printed link, plays a take in place, approves, picks and notes with the keyboard,
reloads and sees the decisions, which the ledger file holds; a page of another site
posting a decision is refused, and so is a page reached through another name for the
address (a DNS-rebinding page, made with Chromium's host resolver rules).

Uses Debian's chromium and chromedriver. Without them the tests skip, unless
SEEDANCE_REQUIRE_BROWSER=1 (CI sets it), when they fail instead.
"""

from __future__ import annotations

import http.server
import signal
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from browser_support import headless_chromium
from cli_support import clean_environment, run_cli
from review_support import write_campaign

REBOUND = "rebound.example"  # a name an attacker points at 127.0.0.1


class Review:
    """The review process of the module: its folder, link, base URL and ledger file."""

    def __init__(self, folder: Path, link: str) -> None:
        self.folder, self.link = folder, link
        self.base = link.split("/?", 1)[0]
        self.port = int(self.base.rsplit(":", 1)[1])
        self.ledger = folder / ".seedance" / "ledger.sqlite"

    def decisions(self) -> list[tuple[Any, ...]]:
        db = sqlite3.connect(self.ledger)
        try:
            return db.execute("SELECT label, verdict, picked, note, reviewer FROM decisions ORDER BY rowid").fetchall()
        finally:
            db.close()

    def history(self) -> int:
        db = sqlite3.connect(self.ledger)
        try:
            return int(db.execute("SELECT count(*) FROM decision_history").fetchone()[0])
        finally:
            db.close()


@pytest.fixture(scope="module")
def review(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Review]:
    folder = tmp_path_factory.mktemp("campaign")
    write_campaign(folder)
    run_cli(folder, "run", "m.yaml", "--simulate", timeout=120).assert_success()
    assert len(list((folder / "renders").rglob("*.mp4"))) == 8  # the simulator's MP4s, downloaded
    process = subprocess.Popen([sys.executable, "-m", "seedance_batch", "review", "m.yaml", "--reviewer", "ana"],
                               cwd=folder, env=clean_environment(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    try:
        assert process.stdout is not None
        _, link, hint = (process.stdout.readline() for _ in range(3))  # what it prints before serving
        link = link.strip()
        assert link.startswith("http://127.0.0.1:") and hint.startswith("Ctrl-C stops the review"), link
        yield Review(folder, link)
    finally:
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
        assert (process.returncode, err) == (0, ""), err
        assert out.startswith("review stopped; ")


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    # a name of the test's own resolving to loopback: the DNS-rebinding check is tried through it
    yield from headless_chromium(tmp_path_factory.mktemp("chromium-profile"),
                                 f"--host-resolver-rules=MAP {REBOUND} 127.0.0.1")


def _wait(driver: Any, condition: str, timeout: float = 15) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(lambda d: d.execute_script(condition))


def _open(driver: Any, review: Review, at: str = "") -> None:
    driver.get(review.link if not at else f"{review.base}/{at}")
    _wait(driver, "return document.documentElement.getAttribute('data-ready') === 'true'")


def _keys(driver: Any, keys: str) -> None:
    from selenium.webdriver.common.action_chains import ActionChains

    ActionChains(driver).send_keys(keys).perform()


def _saved(driver: Any) -> str:
    """Wait for the page's status line to say the last action was saved (or not); its text."""
    text: str = _wait(driver, "var s = document.getElementById('status').textContent;"
                              "return (s.indexOf('saved') === 0 || s.indexOf('not saved') === 0) && s")
    return text


def test_the_printed_link_opens_the_sheet_clean_with_the_manifests_text_escaped(browser: Any, review: Review,
                                                                               tmp_path: Path) -> None:
    _open(browser, review)
    assert browser.execute_script("return location.search") == ""  # the key left the address bar
    assert browser.execute_script("return document.querySelectorAll('.take').length") == 8
    assert browser.execute_script("return document.querySelectorAll('#sheets tbody tr').length") == 2
    assert browser.execute_script("return document.scripts.length") == 1  # its own, none from a prompt
    prompts = browser.execute_script(
        "return Array.from(document.querySelectorAll('.prompt p')).map(p => p.textContent)")
    assert 'A neon sign that reads <script>alert("x")</script> in de-DE' in prompts
    keys = browser.find_element("id", "keys").text
    assert "approve, then next" in keys and "pick for its combination" in keys
    browser.save_screenshot(str(tmp_path / "review.png"))
    errors = [entry for entry in browser.get_log("browser") if entry["level"] in ("SEVERE", "ERROR")]
    assert errors == []


def test_a_take_plays_in_place(browser: Any, review: Review) -> None:
    _open(browser, review, "#take-2")
    _wait(browser, "return document.querySelector('.take.current video') !== null")
    assert browser.execute_script("return document.querySelector('.take.current').id") == "take-2"
    _keys(browser, " ")
    _wait(browser, "var v = document.querySelector('.take.current video'); return !v.paused && v.currentTime > 0.2")
    size = browser.execute_script("var v = document.querySelector('.take.current video');"
                                  "return [v.videoWidth, v.videoHeight, v.src.indexOf('/media/review-test/') > 0]")
    assert size == [320, 180, True]
    _keys(browser, " ")
    _wait(browser, "return document.querySelector('.take.current video').paused")


def test_approve_pick_and_note_with_the_keyboard_survive_a_reload_and_are_in_the_ledger(browser: Any,
                                                                                       review: Review) -> None:
    _open(browser, review, "#take-0")
    _keys(browser, "a")
    assert _saved(browser) == "saved: hero/de-DE/9:16: approved"
    assert browser.execute_script("return document.querySelector('.take.current').id") == "take-1"  # moved on
    _keys(browser, "p")
    assert _saved(browser) == "saved: hero/de-DE/16:9: approved, picked"
    _keys(browser, "n")
    _wait(browser, "return document.activeElement.id === 'note-text'")
    _keys(browser, "warmer <b>grade</b>\n")
    assert _saved(browser) == "saved: hero/de-DE/16:9: note"
    browser.refresh()
    _wait(browser, "return document.documentElement.getAttribute('data-ready') === 'true'")
    states = browser.execute_script("return [0, 1].map(i => { var t = document.getElementById('take-' + i);"
                                    "return [t.dataset.verdict, t.dataset.picked, t.querySelector('.note').textContent,"
                                    "t.querySelector('.who').textContent.split(' · ')[0]]; })")
    assert states == [["approved", "false", "", "ana"], ["approved", "true", "warmer <b>grade</b>", "ana"]]
    assert browser.execute_script("return document.querySelector('#take-1 .note b')") is None
    assert review.decisions() == [("hero/de-DE/9:16", "approved", 0, "", "ana"),
                                  ("hero/de-DE/16:9", "approved", 1, "warmer <b>grade</b>", "ana")]


class _EvilPage(http.server.BaseHTTPRequestHandler):
    """Another site: its page posts a decision to the review, by script and by a form."""

    target = ""
    key = ""

    def do_GET(self) -> None:  # http.server's name for it
        body = f"""<!doctype html><title>evil</title>
<form id="f" method="POST" action="{self.target}/api/decision" enctype="text/plain">
<input name='{{"key":"{self.key}","action":"reject","x":"' value='"}}'></form>
<script>
fetch("{self.target}/api/decision", {{method: "POST", mode: "no-cors", credentials: "include",
  headers: {{"Content-Type": "text/plain"}}, body: JSON.stringify({{key: "{self.key}", action: "reject"}})}})
  .finally(() => {{ document.title = "sent"; setTimeout(() => document.getElementById("f").submit(), 50); }});
</script>""".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_a_forged_post_from_another_site_is_refused(browser: Any, review: Review) -> None:
    _open(browser, review)  # the reviewer's browser holds the session cookie
    key = browser.execute_script("return document.getElementById('take-4').dataset.key")
    before = (review.decisions(), review.history())
    handler = type("Evil", (_EvilPage,), {"target": review.base, "key": key})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        browser.get(f"http://localhost:{server.server_address[1]}/")  # another site than 127.0.0.1
        _wait(browser, f"return location.href.indexOf('{review.base}') === 0 && document.body"
                       " && document.body.textContent.length > 0")
        # the form's POST reached the review and was refused with the reason; so was the script's
        assert browser.execute_script("return document.body.textContent") == "requests from other sites are refused"
    finally:
        server.shutdown()
        server.server_close()
    assert (review.decisions(), review.history()) == before


def test_a_page_reached_through_another_name_is_refused(browser: Any, review: Review) -> None:
    browser.get(f"http://{REBOUND}:{review.port}/")  # DNS rebinding: the name resolves to 127.0.0.1
    assert browser.execute_script("return document.body.textContent") == (
        "this server answers only to its own address (Host)")
    browser.get(f"http://{REBOUND}:{review.port}/?token={review.link.rsplit('=', 1)[1]}")  # even with the key
    assert browser.execute_script("return document.body.textContent") == (
        "this server answers only to its own address (Host)")


def test_a_path_outside_the_output_folder_is_refused_by_the_running_review(review: Review) -> None:
    import http.client

    token = review.link.rsplit("=", 1)[1]
    for path in ("/media/../m.yaml", "/media/%2e%2e/.seedance/ledger.sqlite", "/media/../../../../etc/passwd"):
        connection = http.client.HTTPConnection("127.0.0.1", review.port, timeout=10)
        connection.request("GET", path, headers={"Cookie": f"seedance_review_{review.port}={token}"})
        answer = connection.getresponse()
        assert (answer.status, answer.read()) == (404, b"not a video of this campaign"), path
        connection.close()
