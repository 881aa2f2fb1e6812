"""The review app over real HTTP: a real loopback server, a real SQLite ledger, real files.

What a stranger cannot do (another Host, another site, no session key, a path out of the
output folder, a body too large), what a reviewer's POST does (committed before it is
answered, read back from the ledger file by another connection) and how videos are served.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from review_support import SAMPLE_MP4, Reviewed, reviewed
from seedance_batch.ledger import open_ledger
from seedance_batch.pipeline import load_plan
from seedance_batch.review import ReviewCampaign, serve_review
from seedance_batch.review.actions import MAX_BODY_BYTES


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Reviewed]:
    with reviewed(tmp_path) as running:
        yield running


def _decide(app: Reviewed, label: str, action: str, **extra: str) -> tuple[int, dict[str, object]]:
    status, _, body = app.post(json.dumps({"key": app.key(label), "action": action, **extra}).encode())
    return status, json.loads(body)


def _ledger_rows(app: Reviewed, table: str = "decisions") -> list[tuple[object, ...]]:
    """The decisions as another connection reads them from the file: what was committed."""
    db = sqlite3.connect(app.ledger_path)
    try:
        return db.execute(f"SELECT label, verdict, picked, note, reviewer FROM {table} ORDER BY rowid").fetchall()
    finally:
        db.close()


# --- who may ask ---------------------------------------------------------------------------

def test_the_printed_link_sets_the_session_cookie_and_leaves_the_address_bar(app: Reviewed) -> None:
    status, headers, _ = app.request("GET", f"/?token={app.review.token}", cookie=False)
    assert status == 303 and headers["location"] == "/"
    assert headers["set-cookie"] == (f"seedance_review_{app.port}={app.review.token}; HttpOnly; SameSite=Strict; "
                                     "Path=/")
    status, headers, body = app.request("GET", "/")
    assert status == 200 and b"<title>review-test \xc2\xb7 review</title>" in body
    assert "script-src 'self'" in headers["content-security-policy"]
    assert headers["x-frame-options"] == "DENY" and headers["cross-origin-resource-policy"] == "same-origin"


@pytest.mark.parametrize("path", ["/", "/static/review.js", "/media/review-test/hero/hero_de-DE_9-16.mp4"])
def test_without_the_session_key_nothing_is_served(app: Reviewed, path: str) -> None:
    status, headers, body = app.request("GET", path, cookie=False)
    assert (status, body) == (403, b"open the review with the link `seedance-batch review` printed (it carries "
                                    b"the session key)")
    assert "content-security-policy" in headers
    status, _, _ = app.request("GET", path, headers={"Cookie": f"seedance_review_{app.port}=guess"}, cookie=False)
    assert status == 403
    status, _, _ = app.request("GET", f"/?token={'x' * 43}", cookie=False)
    assert status == 403


@pytest.mark.parametrize("host", ["evil.example:{port}", "evil.example", "127.0.0.1:1", "localhost.evil.example:{port}",
                                  "192.168.1.20:{port}", "[::1]:{port}", ""])
def test_a_foreign_host_header_is_refused_even_with_the_key(app: Reviewed, host: str) -> None:
    status, _, body = app.request("GET", "/", headers={"Host": host.format(port=app.port)})
    assert (status, body) == (403, b"this server answers only to its own address (Host)")


def test_loopback_names_with_the_right_port_are_its_own(app: Reviewed) -> None:
    for host in (f"127.0.0.1:{app.port}", f"localhost:{app.port}", f"LOCALHOST:{app.port}"):
        assert app.request("GET", "/", headers={"Host": host})[0] == 200


@pytest.mark.parametrize(("headers", "why"), [
    ({"X-Review-Token": ""}, b"a decision needs the page's session key (reload the page)"),
    ({"X-Review-Token": "not-the-token"}, b"a decision needs the page's session key (reload the page)"),
    ({"Origin": "http://evil.example"}, b"requests from other origins are refused"),
    ({"Origin": "http://127.0.0.1:1"}, b"requests from other origins are refused"),
    ({"Origin": "null"}, b"requests from other origins are refused"),
    ({"Sec-Fetch-Site": "cross-site"}, b"requests from other sites are refused"),
    ({"Sec-Fetch-Site": "same-site"}, b"requests from other sites are refused"),  # another port of 127.0.0.1
    ({"Sec-Fetch-Site": "none"}, b"requests from other sites are refused"),
])
def test_a_forged_post_is_refused_and_writes_nothing(app: Reviewed, headers: dict[str, str], why: bytes) -> None:
    body = json.dumps({"key": app.key("hero/de-DE/9:16"), "action": "approve"}).encode()
    status, _, answer = app.post(body, **{k.replace("-", "_"): v for k, v in headers.items()})
    assert (status, answer) == (403, why)
    assert _ledger_rows(app) == []


def test_a_cross_site_get_is_refused(app: Reviewed) -> None:
    status, _, _ = app.request("GET", app.video("hero/de-DE/9:16")[0], headers={"Sec-Fetch-Site": "cross-site"})
    assert status == 403


# --- what a POST may carry -----------------------------------------------------------------

@pytest.mark.parametrize(("body", "status", "why"), [
    (b"approve", 400, "the body is not JSON"),
    (b"[1]", 400, "the body is not a JSON object"),
    pytest.param(b"[" * 12000, 400, "the body nests too deeply", id="deep"),
    (b'{"key": "k", "action": "approve", "evil": 1}', 400, "unknown field 'evil' (the fields are key, action and note)"),
    (b'{"action": "approve"}', 400, "key: the job key of a take is required"),
    (b'{"key": "k", "action": "delete"}', 400, "action: one of approve, reject, clear, pick, unpick, note"),
    (b'{"key": "k", "action": "approve", "note": "x"}', 400, "note: the text of the note, with action note only"),
    (b'{"key": "k", "action": "note", "note": 5}', 400, "note: text"),
    (b'{"key": "k", "action": "note", "note": "a\\u202eb"}', 400,
     "note: a note holds only printable characters, spaces, newlines and tabs"),
    (b'{"key": "k", "action": "approve"}', 404, "not a take of this campaign (reload the page)"),
])
def test_a_bad_body_is_one_clear_line_and_writes_nothing(app: Reviewed, body: bytes, status: int, why: str) -> None:
    got, _, answer = app.post(body)
    assert (got, json.loads(answer)) == (status, {"ok": False, "error": why})
    assert _ledger_rows(app) == []


def test_a_body_too_large_or_not_json_is_refused_unread(app: Reviewed) -> None:
    note = json.dumps({"key": app.key("hero/de-DE/9:16"), "action": "note", "note": "x" * (MAX_BODY_BYTES + 1)})
    status, _, answer = app.post(note.encode())
    assert (status, json.loads(answer)["error"]) == (413, f"a decision is at most {MAX_BODY_BYTES} bytes")
    status, _, answer = app.post(b"key=k&action=approve", Content_Type="application/x-www-form-urlencoded")
    assert (status, json.loads(answer)["error"]) == (415, "a decision is sent as JSON")
    too_long = json.dumps({"key": app.key("hero/de-DE/9:16"), "action": "note", "note": "x" * 2001})
    status, _, answer = app.post(too_long.encode())
    assert json.loads(answer)["error"] == "note: a note is at most 2000 characters (this one has 2001)"
    assert _ledger_rows(app) == []


# --- decisions -----------------------------------------------------------------------------

def test_each_decision_is_committed_before_it_is_answered(app: Reviewed) -> None:
    status, answer = _decide(app, "hero/de-DE/9:16", "approve")
    assert status == 200 and answer["ok"] is True
    [approved] = answer["decisions"]  # type: ignore[misc]
    assert (approved["verdict"], approved["picked"], approved["reviewer"]) == ("approved", False, "ana")
    assert _ledger_rows(app) == [("hero/de-DE/9:16", "approved", 0, "", "ana")]
    _decide(app, "hero/de-DE/9:16", "note", note="  warmer grade\nand 1 s shorter  ")
    _decide(app, "outro/de-DE/9:16", "reject")
    assert _ledger_rows(app) == [("hero/de-DE/9:16", "approved", 0, "warmer grade\nand 1 s shorter", "ana"),
                                 ("outro/de-DE/9:16", "rejected", 0, "", "ana")]
    assert len(_ledger_rows(app, "decision_history")) == 3


def test_a_take_without_its_video_can_be_rejected_not_approved_or_picked(app: Reviewed) -> None:
    for action in ("approve", "pick"):
        status, answer = _decide(app, "hero/fr-FR/16:9", action)  # never rendered (review_support)
        assert (status, answer["error"]) == (409, "this take has no video yet: it can be rejected, not approved or "
                                                  "picked")
    assert _decide(app, "hero/fr-FR/16:9", "reject")[0] == 200
    assert _ledger_rows(app) == [("hero/fr-FR/16:9", "rejected", 0, "", "ana")]


def test_the_page_shows_the_ledgers_decisions_and_escapes_what_the_manifest_says(app: Reviewed) -> None:
    _decide(app, "hero/de-DE/9:16", "pick")
    _decide(app, "hero/de-DE/9:16", "note", note='<img src=x onerror="alert(1)">')
    _, _, page = app.request("GET", "/")
    text = page.decode()
    assert '<script>alert("x")</script>' not in text
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in text
    assert "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;" in text and "<img" not in text
    assert text.count("<script") == 1  # the page's own, from /static/
    assert 'data-verdict="approved" data-picked="true"' in text
    assert text.count('class="take"') == 8


# --- videos --------------------------------------------------------------------------------

def test_a_video_is_served_whole_or_by_range(app: Reviewed) -> None:
    path = app.video("hero/de-DE/9:16")[0]
    size = SAMPLE_MP4.stat().st_size
    status, headers, body = app.request("GET", path)
    assert (status, headers["content-type"], headers["accept-ranges"], body) == (
        200, "video/mp4", "bytes", SAMPLE_MP4.read_bytes())
    status, headers, body = app.request("GET", path, headers={"Range": "bytes=10-19"})
    assert (status, headers["content-range"], body) == (206, f"bytes 10-19/{size}", SAMPLE_MP4.read_bytes()[10:20])
    status, headers, body = app.request("GET", path, headers={"Range": "bytes=-5"})
    assert (status, body) == (206, SAMPLE_MP4.read_bytes()[-5:])
    status, headers, _ = app.request("GET", path, headers={"Range": f"bytes={size}-"})
    assert (status, headers["content-range"]) == (416, f"bytes */{size}")


@pytest.mark.parametrize("path", [
    "/media/../m.yaml", "/media/../.seedance/ledger.sqlite", "/media/%2e%2e/m.yaml", "/media//etc/passwd",
    "/media/review-test/hero/../../../m.yaml", "/media/review-test/hero/hero_de-DE_9-16.mp4/../../../../m.yaml",
    "/media/review-test/hero/hero_de-DE_9-17.mp4", "/media/review-test/./hero/hero_de-DE_9-16.mp4",
    "/media/" + "a/" * 300,
])
def test_a_path_outside_the_campaigns_videos_is_refused(app: Reviewed, path: str) -> None:
    status, _, body = app.request("GET", path)
    assert (status, body) == (404, b"not a video of this campaign")


def test_a_link_out_of_the_output_folder_is_refused(app: Reviewed, tmp_path: Path) -> None:
    secret = tmp_path / "secret.mp4"
    secret.write_bytes(b"not yours")
    path, video = app.video("hero/de-DE/9:16")
    video.unlink()
    video.symlink_to(secret)
    status, _, body = app.request("GET", path)
    assert (status, body) == (403, b"the video's path leads outside the campaign's output folder")
    path, video = app.video("outro/de-DE/9:16")
    os.rename(video.parent, tmp_path / "elsewhere")  # a folder on the way, linked out
    video.parent.symlink_to(tmp_path / "elsewhere")
    status, _, body = app.request("GET", path)
    assert (status, body) == (403, b"the video's path leads outside the campaign's output folder")


def test_links_inside_the_output_folder_are_followed(app: Reviewed) -> None:
    path, one = app.video("hero/de-DE/9:16")
    one.unlink()
    one.symlink_to(app.video("outro/de-DE/9:16")[1])
    assert app.request("GET", path)[0] == 200


def test_two_reviewers_on_one_ledger_see_each_others_decisions_on_reload(tmp_path: Path) -> None:
    with reviewed(tmp_path, reviewer="ana") as ana:
        _decide(ana, "hero/de-DE/9:16", "approve")
        with open_ledger(ana.ledger_path) as second:  # another process's opening of the same file, as `review` makes
            _, plan = load_plan(tmp_path / "m.yaml", second)
            campaign = ReviewCampaign(plan=plan, manifest_path="m.yaml", manifest_sha256="", reviewer="ben",
                                      output_dir=tmp_path / "renders")
            with serve_review(campaign, second) as running:
                ben = Reviewed(tmp_path, ana.manifest, plan, ana.ledger_path, running)
                _, _, page = ben.request("GET", "/")
                assert _verdicts(page) == {"hero/de-DE/9:16": "approved"}
                _decide(ben, "outro/de-DE/9:16", "reject")
        _, _, page = ana.request("GET", "/")
        assert _verdicts(page) == {"hero/de-DE/9:16": "approved", "outro/de-DE/9:16": "rejected"}
        assert "ben · " in page.decode() and "ana · " in page.decode()


def _verdicts(page: bytes) -> dict[str, str]:
    """The decided takes of a review page, by label (from its data attributes)."""
    found = re.findall(r'data-verdict="(\w+)".*?data-label="([^"]+)"', page.decode(), re.S)
    return {label: verdict for verdict, label in found if verdict != "undecided"}
