"""The source media check against real media hosts on loopback (tests/media_hosts.py), no mocks.

Each failure a host can hand us, as the one line a user reads; what reaches the host
(how many requests, which methods, ranges and validators, never a credential); the
cache in a real SQLite ledger (fresh for an hour, then revalidated with a 304); and
that a signed URL's query string reaches neither a message nor the ledger.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from media_hosts import MediaHost, Served, greedy_host, silent_host
from seedance_batch.errors import Location
from seedance_batch.ledger import Ledger, media_key, open_ledger
from seedance_batch.media import MediaPolicy, MediaReport, MediaUse, check_media, media_uses
from seedance_batch.models import load_catalog

LIMITS = load_catalog().media
MIB = 1 << 20
WHERE = Location("campaign.yaml", 12, 7, "shots[0].image_urls")
VIDEO_WHERE = Location("campaign.yaml", 14, 7, "shots[0].reference_video_urls")
NOW = datetime(2026, 4, 19, 10, 0, tzinfo=timezone.utc)


@pytest.fixture
def host() -> Iterator[MediaHost]:
    with MediaHost().serve() as serving:
        yield serving


def uses_of(*urls: str, field: str = "image_urls", where: Location = WHERE, jobs: int = 1) -> dict[str, list[MediaUse]]:
    return {url: [MediaUse(field, 0, f"hero/{n}", where) for n in range(jobs)] for url in urls}


def check(uses: dict[str, list[MediaUse]], cache: Ledger | None = None, *, now: datetime = NOW,
          policy: MediaPolicy | None = None) -> MediaReport:
    return check_media(uses, LIMITS, cache, now=now, policy=policy)


def lines(report: MediaReport) -> list[str]:
    return [problem.format() for problem in report.problems]


# --- what a host can hand us, as one line each --------------------------------------------

def test_a_missing_file_is_one_line_at_the_line_that_wrote_it_with_the_jobs_that_use_it(host: MediaHost) -> None:
    report = check(uses_of(host.url("/gone.png"), jobs=12))
    assert lines(report) == [
        f"campaign.yaml:12:7: shots[0].image_urls[0]: {host.url('/gone.png')}: not found (HTTP 404); "
        "used by 12 jobs: hero/0 and 11 more"]


def test_a_redirect_loop_and_too_many_redirects_are_refused(host: MediaHost) -> None:
    host.files.update({"/a": Served(redirect="/b"), "/b": Served(redirect="/a")})
    host.files.update({f"/hop{i}": Served(redirect=f"/hop{i + 1}") for i in range(10)})
    report = check(uses_of(host.url("/a"), host.url("/hop0")))
    assert [line.split(": ", 3)[-1] for line in lines(report)] == [
        "redirects in a loop; used by 1 job: hero/0",
        "redirects more than 5 times; used by 1 job: hero/0"]
    assert len([s for s in host.seen if s.path.startswith("/hop")]) == 6  # the first ask and 5 redirects


@pytest.mark.parametrize(("target", "scheme"), [("file:///etc/passwd", "file"), ("data:image/png;base64,AAAA", "data"),
                                                ("ftp://127.0.0.1/x.png", "ftp")])
def test_a_redirect_to_another_scheme_is_never_followed(host: MediaHost, target: str, scheme: str) -> None:
    host.files["/sneaky.png"] = Served(redirect=target)
    report = check(uses_of(host.url("/sneaky.png")))
    assert lines(report)[0].endswith(f"redirects to a {scheme}: URL; only http and https are followed; "
                                     "used by 1 job: hero/0")
    assert [s.path for s in host.seen] == ["/sneaky.png"]


def test_a_redirect_to_http_is_followed_and_its_target_judged(host: MediaHost) -> None:
    host.files.update({"/old.png": Served(redirect="/new.png"), "/new.png": Served(content_type="image/webp")})
    assert check(uses_of(host.url("/old.png"))).problems == ()
    assert [(s.method, s.path) for s in host.seen] == [("HEAD", "/old.png"), ("HEAD", "/new.png")]


def test_an_html_page_where_a_video_is_expected(host: MediaHost) -> None:
    host.files["/clip.mp4"] = Served(content_type="text/html; charset=utf-8")
    report = check(uses_of(host.url("/clip.mp4"), field="reference_video_urls", where=VIDEO_WHERE))
    assert lines(report) == [
        f"campaign.yaml:14:7: shots[0].reference_video_urls[0]: {host.url('/clip.mp4')}: is text/html; "
        "reference_video_urls takes video/*; used by 1 job: hero/0"]


def test_an_image_field_takes_only_the_formats_the_data_lists(host: MediaHost) -> None:
    host.files.update({"/a.gif": Served(content_type="image/gif"), "/b.png": Served(content_type="IMAGE/PNG; x=y"),
                       "/c": Served(content_type=None)})
    report = check(uses_of(host.url("/a.gif"), host.url("/b.png"), host.url("/c")))
    assert [line.split(": ", 3)[-1] for line in lines(report)] == [
        "is image/gif; image_urls takes image/jpeg, image/png or image/webp; used by 1 job: hero/0",
        "the host says no Content-Type; image_urls takes image/jpeg, image/png or image/webp; used by 1 job: hero/0"]


@pytest.mark.parametrize(("field", "content_type", "size", "said"), [
    ("reference_video_urls", "video/mp4", 60 * MIB, "is 60.0 MiB; video files may be at most 50 MiB"),
    ("image_urls", "image/jpeg", 10 * MIB + 1, "is 10.0 MiB; image files may be at most 10 MiB"),
    ("reference_audio_urls", "audio/mpeg", 21 * MIB, "is 21.0 MiB; audio files may be at most 20 MiB"),
    ("reference_audio_urls", "audio/mpeg", 0, "is empty (0 bytes)"),
])
def test_a_file_over_its_kinds_limit(host: MediaHost, field: str, content_type: str, size: int, said: str) -> None:
    host.files["/f"] = Served(content_type=content_type, size=size)
    assert lines(check(uses_of(host.url("/f"), field=field)))[0].split(": ", 3)[-1] == f"{said}; used by 1 job: hero/0"
    host.files["/f"] = Served(content_type=content_type, size=10 * MIB)  # at the image limit: fits every kind
    assert check(uses_of(host.url("/f"), field=field), now=NOW + timedelta(hours=2)).problems == ()


def test_a_host_that_never_answers_costs_at_most_the_deadline() -> None:
    policy = MediaPolicy(read_seconds=30, deadline_seconds=0.5)
    with silent_host() as url:
        started = time.monotonic()
        report = check(uses_of(f"{url}/a.png", f"{url}/b.png"), policy=policy)
        took = time.monotonic() - started
    assert [line.split(": ", 3)[-1] for line in lines(report)] == ["no answer within 0.5 s; used by 1 job: hero/0"] * 2
    assert took < 3  # both at once, each cut at 0.5 s (not the 30 s read timeout)


def test_a_host_that_refuses_connections() -> None:
    with silent_host() as url:
        pass  # closed: nothing listens there now
    report = check(uses_of(f"{url}/a.png"))
    assert lines(report)[0].split(": ", 3)[-1] == "cannot connect (connection refused); used by 1 job: hero/0"


@pytest.mark.parametrize("refusal", [405, 403, 501])
def test_a_head_refusing_host_is_asked_for_one_byte_and_its_size_read_from_content_range(
        host: MediaHost, refusal: int) -> None:
    host.files["/signed.mp4"] = Served(content_type="video/mp4", size=51 * MIB, head_status=refusal)
    report = check(uses_of(host.url("/signed.mp4"), field="reference_video_urls"))
    assert lines(report)[0].split(": ", 3)[-1] == "is 51.0 MiB; video files may be at most 50 MiB; used by 1 job: hero/0"
    assert [(s.method, s.headers.get("range")) for s in host.seen] == [("HEAD", None), ("GET", "bytes=0-0")]


def test_a_head_without_a_size_is_followed_by_a_ranged_get(host: MediaHost) -> None:
    host.files["/song.mp3"] = Served(content_type="audio/mpeg", size=25 * MIB, send_length=False)
    report = check(uses_of(host.url("/song.mp3"), field="reference_audio_urls"))
    assert lines(report)[0].split(": ", 3)[-1] == "is 25.0 MiB; audio files may be at most 20 MiB; used by 1 job: hero/0"


def test_a_host_that_ignores_the_range_never_has_its_body_read() -> None:
    """HEAD refused, and the ranged GET answered with the whole 400 MiB file: the check reads none of it."""
    with greedy_host(400 * MIB) as (url, sent):
        report = check(uses_of(f"{url}/big.mp4", field="reference_video_urls"))
        assert sent.done.wait(10)
    assert lines(report)[0].split(": ", 3)[-1] == "is 400.0 MiB; video files may be at most 50 MiB; used by 1 job: hero/0"
    assert sent.bytes < 64 * MIB  # what the loopback buffers took before the connection closed, not the file


@pytest.mark.parametrize("status", [401, 500, 503])
def test_other_statuses_are_said_as_they_are(host: MediaHost, status: int) -> None:
    host.files["/x.png"] = Served(status=status)
    said = lines(check(uses_of(host.url("/x.png"))))[0].split(": ", 3)[-1]
    assert said.startswith(f"refused (HTTP {status})" if status == 401 else f"HTTP {status} from the host")


# --- bounded: one request per distinct URL, whatever the jobs -------------------------------

def test_500_jobs_sharing_20_urls_make_20_requests(host: MediaHost) -> None:
    host.files.update({f"/{i}.png": Served() for i in range(20)})
    uses: dict[str, list[MediaUse]] = {}
    for job in range(500):
        url = host.url(f"/{job % 20}.png")
        uses.setdefault(url, []).append(MediaUse("image_urls", 0, f"hero/{job}", WHERE))
    report = check(uses)
    assert (report.urls, report.jobs, report.asked, report.problems) == (20, 500, 20, ())
    assert len(host.seen) == report.requests == 20


def test_the_same_bad_url_in_two_places_is_asked_once_and_reported_at_each(host: MediaHost) -> None:
    other = Location("campaign.yaml", 30, 9, "shots[1].image_urls")
    url = host.url("/gone.png")
    uses = {url: [MediaUse("image_urls", 0, "hero/a", WHERE), MediaUse("image_urls", 1, "street/a", other),
                  MediaUse("image_urls", 1, "street/b", other)]}
    assert lines(check(uses)) == [
        f"campaign.yaml:12:7: shots[0].image_urls[0]: {url}: not found (HTTP 404); used by 1 job: hero/a",
        f"campaign.yaml:30:9: shots[1].image_urls[1]: {url}: not found (HTTP 404); used by 2 jobs: street/a and street/b"]
    assert len(host.seen) == 1


# --- the cache: an hour fresh, then revalidated ----------------------------------------------

def test_a_second_check_within_the_hour_asks_nothing(host: MediaHost, ledger: Ledger) -> None:
    host.files.update({f"/{i}.png": Served(etag=f'"v{i}"') for i in range(3)})
    uses = uses_of(*(host.url(f"/{i}.png") for i in range(3)))
    first = check(uses, ledger)
    second = check(uses, ledger, now=NOW + timedelta(minutes=59))
    assert (first.asked, first.cached, second.asked, second.cached) == (3, 0, 0, 3)
    assert len(host.seen) == 3
    assert second.summary() == "media checked: 3 URL(s) for 1 job(s): 3 from the cache, 0 asked"


def test_after_the_hour_an_etag_is_revalidated_and_a_304_keeps_what_was_learned(host: MediaHost,
                                                                                ledger: Ledger) -> None:
    host.files["/clip.mp4"] = Served(content_type="video/mp4", size=60 * MIB, etag='"v1"')
    uses = uses_of(host.url("/clip.mp4"), field="reference_video_urls")
    first = check(uses, ledger)
    later = check(uses, ledger, now=NOW + timedelta(hours=2))
    assert host.seen[-1].headers.get("if-none-match") == '"v1"'
    assert (later.asked, later.unchanged) == (1, 1)
    assert lines(later) == lines(first)  # still too large: the 304 kept the size
    entry = ledger.media_checks([media_key(host.url("/clip.mp4"))])[media_key(host.url("/clip.mp4"))]
    assert entry.checked_at == (NOW + timedelta(hours=2)).isoformat()  # fresh again for an hour
    assert check(uses, ledger, now=NOW + timedelta(hours=2, minutes=30)).asked == 0


def test_a_changed_file_is_learned_on_revalidation(host: MediaHost, ledger: Ledger) -> None:
    host.files["/hero.png"] = Served(content_type="image/png", etag='"v1"', last_modified="Sat, 18 Apr 2026 09:00:00 GMT")
    uses = uses_of(host.url("/hero.png"))
    assert check(uses, ledger).problems == ()
    host.files["/hero.png"] = Served(content_type="image/png", size=12 * MIB, etag='"v2"')
    later = check(uses, ledger, now=NOW + timedelta(hours=2))
    assert host.seen[-1].headers.get("if-modified-since") == "Sat, 18 Apr 2026 09:00:00 GMT"
    assert (later.unchanged, lines(later)[0].split(": ", 3)[-1]) == (
        0, "is 12.0 MiB; image files may be at most 10 MiB; used by 1 job: hero/0")


def test_a_failure_is_never_cached_so_a_fixed_upload_is_seen_at_once(host: MediaHost, ledger: Ledger) -> None:
    uses = uses_of(host.url("/late.png"))
    assert len(check(uses, ledger).problems) == 1
    host.files["/late.png"] = Served()
    assert check(uses, ledger, now=NOW + timedelta(minutes=1)).problems == ()


def test_without_a_writable_ledger_the_check_stands_and_says_nothing_was_kept(host: MediaHost, tmp_path: Path) -> None:
    with open_ledger(tmp_path / "l.sqlite") as writer:
        writer.release_run_lock()
    looking = open_ledger(tmp_path / "l.sqlite", read_only=True)
    assert looking is not None
    host.files["/ok.png"] = Served()
    with looking:
        report = check(uses_of(host.url("/ok.png")), looking)
    assert report.problems == ()
    assert report.summary().endswith("; not cached: this ledger was opened read-only: nothing may be written")


# --- what never leaves, what is never kept ---------------------------------------------------

def test_no_credential_or_proxy_from_the_environment_reaches_a_media_host(host: MediaHost, tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login ana password hunter2-netrc\n", encoding="utf-8")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # nothing listens there: used, every ask would fail
    monkeypatch.setenv("APIDOT_API_KEY", "sk-live-never-sent-0123456789")
    host.files["/ok.png"] = Served(head_status=405)
    assert check(uses_of(host.url("/ok.png"))).problems == ()
    assert len(host.seen) == 2
    for seen in host.seen:
        assert "authorization" not in seen.headers and "cookie" not in seen.headers
        assert "sk-live" not in repr(seen.headers) and "hunter2" not in repr(seen.headers)


def test_a_signed_urls_query_reaches_neither_a_message_nor_the_ledger(host: MediaHost, tmp_path: Path) -> None:
    token = "X-Amz-Signature=feedface0123456789"
    host.files["/ok.png"] = Served(etag='"v1"')
    good, bad = host.url(f"/ok.png?{token}"), host.url(f"/gone.png?{token}")
    path = tmp_path / "ledger.sqlite"
    with open_ledger(path) as led:
        report = check(uses_of(good, bad), led)
        shown = led.media_checks([media_key(good)])[media_key(good)].shown
    assert host.seen[0].query == token  # the host gets the URL whole: it needs the signature
    assert lines(report) == [f"campaign.yaml:12:7: shots[0].image_urls[0]: {host.url('/gone.png')}?REDACTED: "
                             "not found (HTTP 404); used by 1 job: hero/0"]
    assert shown == host.url("/ok.png?REDACTED")
    stored = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.is_file())
    assert b"feedface0123456789" not in stored and b"X-Amz-Signature" not in stored


# --- the URLs of real jobs -------------------------------------------------------------------

def test_media_uses_gathers_each_distinct_url_with_the_line_that_wrote_it(tmp_path: Path) -> None:
    from seedance_batch.pipeline import load_plan

    manifest = tmp_path / "m.yaml"
    manifest.write_text("""version: 1
name: uses
defaults: {model: seedance-2-fast, resolution: 480p, duration: 4}
matrix:
  locale: [en-US, de-DE]
shots:
  - id: hero
    prompt: hero in {{ locale }}
    image_urls:
      - https://cdn.example.com/first.png
      - https://cdn.example.com/{{ locale }}/last.png
  - id: mascot
    prompt: mascot in {{ locale }}
    reference_audio_urls: ["https://cdn.example.com/jingle.mp3"]
""", encoding="utf-8")
    _, plan = load_plan(manifest, None)
    uses = media_uses((p.priced.job for p in plan.jobs), LIMITS)
    assert {url: [(u.field, u.index, u.label, u.origin.line) for u in its] for url, its in uses.items()} == {
        "https://cdn.example.com/first.png": [("image_urls", 0, "hero/en-US", 10), ("image_urls", 0, "hero/de-DE", 10)],
        "https://cdn.example.com/en-US/last.png": [("image_urls", 1, "hero/en-US", 10)],
        "https://cdn.example.com/de-DE/last.png": [("image_urls", 1, "hero/de-DE", 10)],
        "https://cdn.example.com/jingle.mp3": [("reference_audio_urls", 0, "mascot/en-US", 14),
                                               ("reference_audio_urls", 0, "mascot/de-DE", 14)],
    }
