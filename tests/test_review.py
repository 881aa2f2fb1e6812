"""The review's pure parts: takes and combinations, the contact sheet, a reviewer's POST, the guard, media paths.

Real jobs (``expand.Job``), priced and planned for real, laid out through the real
report builder; real files for the media checks. The HTTP face is tests/test_review_server.py,
the browser tests/test_review_browser.py.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

import pytest

from report_campaign import CATALOG, make_job, make_record
from seedance_batch.expand import Job, request_key
from seedance_batch.ledger import Decision, JobState, Verdict
from seedance_batch.models import price_jobs
from seedance_batch.plan import make_plan
from seedance_batch.report.data import Report, build_report
from seedance_batch.review.actions import BadAction, needs_video, read_action
from seedance_batch.review.guard import Guard
from seedance_batch.review.media import MediaRefused, open_media
from seedance_batch.review.sheet import Tally, review_sheets, tally
from seedance_batch.review.takes import combination_id, take_of


def _take(shot: str, locale: str, take: int, *, seed_axis: bool = False) -> Job:
    """Take ``take`` of ``shot`` x ``locale``: its own request, its label ``...#N``.

    (A take's request differs by its seed; ``seed`` is the takes feature's parameter, so the
    prompt tells takes apart here, which is all the review needs: a job key of its own.)
    """
    base = make_job(shot, locale, "9:16")
    request = {**base.request, "input": {**base.request["input"], "prompt": f"{shot} {locale}, take {take}"}}
    combination = {**base.combination, **({"seed": 1000 + take} if seed_axis else {})}
    return replace(base, label=f"{base.label}#{take}", take=take, request=request, key=request_key(request),
                   combination=combination, output_path=base.output_path.replace(".mp4", f"-{take}.mp4"))


# --- takes and combinations ----------------------------------------------------------------

def test_a_take_number_comes_from_the_jobs_field_else_its_label_else_1() -> None:
    assert take_of(make_job("hero", "de-DE", "9:16")) == 1
    assert take_of(_take("hero", "de-DE", 3)) == 3
    assert take_of(replace(make_job("hero", "de-DE", "9:16"), label="hero/#2b")) == 1  # not a take suffix

    @dataclass(frozen=True)
    class WithTake:  # the takes feature's own field wins over the label
        shot: str
        label: str
        combination: dict[str, object]
        take: int

    assert take_of(WithTake("hero", "hero/x#2", {}, 7)) == 7
    assert take_of(WithTake("hero", "hero/x#2", {}, 0)) == 2  # not a take number: the label's


def test_every_take_of_a_combination_has_its_id_and_nothing_else_does() -> None:
    takes = [_take("hero", "de-DE", n) for n in (1, 2, 3)]
    seeded = [_take("hero", "de-DE", n, seed_axis=True) for n in (1, 2)]  # an explicit seed axis: takes too
    assert len({combination_id(job) for job in takes + seeded}) == 1
    others = [_take("hero", "fr-FR", 1), _take("outro", "de-DE", 1), make_job("hero", "de-DE", "16:9")]
    assert len({combination_id(job) for job in [takes[0], *others]}) == 4


# --- the sheet -------------------------------------------------------------------------------

def _report(jobs: list[Job], done: frozenset[str] = frozenset()) -> tuple[Report, list[Job]]:
    records = [make_record(job, JobState.DONE) for job in jobs if job.label in done]
    plan = make_plan(price_jobs(jobs, CATALOG), records, manifest_path=Path("c.yaml"), catalog=CATALOG, budget_usd=None)
    ordered = [planned.priced.job for planned in plan.jobs]
    report = build_report(plan, records, report_dir=".", output_dir=".", manifest_sha256="0" * 64,
                          generated_at=datetime.now(timezone.utc),
                          present=frozenset(job.output_path for job in jobs if job.label in done))
    return report, ordered


def test_takes_of_a_combination_sit_side_by_side_in_take_order_with_their_decisions() -> None:
    jobs = [_take("hero", "de-DE", 2), _take("hero", "fr-FR", 1), _take("hero", "de-DE", 1),
            _take("outro", "de-DE", 1), _take("hero", "de-DE", 3)]
    report, ordered = _report(jobs, done=frozenset({"hero/de-DE/9x16#1", "hero/de-DE/9x16#2"}))
    picked = Decision(campaign="spring", key=jobs[0].key, label=jobs[0].label, combination=combination_id(jobs[0]),
                      verdict=Verdict.APPROVED, picked=True, reviewer="ana", at="2026-04-19T10:00:00Z")
    [sheet] = review_sheets(report, ordered, [picked])
    assert [column.title for column in sheet.columns] == ["de-DE · 9:16", "fr-FR · 9:16"]
    assert [line.shot for line in sheet.rows] == ["hero", "outro"]
    hero = sheet.rows[0].cells
    assert [[take.row.label for take in cell] for cell in hero] == [
        ["hero/de-DE/9x16#1", "hero/de-DE/9x16#2", "hero/de-DE/9x16#3"], ["hero/fr-FR/9x16#1"]]
    assert [take.index for cell in hero for take in cell] == [0, 1, 2, 3]
    assert [take.verdict for take in hero[0]] == ["undecided", "approved", "undecided"]
    first, second, third = hero[0]
    assert (second.picked, second.decision and second.decision.reviewer) == (True, "ana")
    assert (first.media, third.media) == ("/media/spring/hero/de-DE/9x16-1.mp4", None)  # #3 is not rendered
    assert (first.decidable, third.decidable) == (True, False)
    assert tally([sheet]) == Tally(takes=5, approved=1, rejected=0, undecided=4, picked=1)


def test_an_explicit_seed_axis_is_not_a_column() -> None:
    jobs = [_take("hero", "de-DE", n, seed_axis=True) for n in (1, 2)]
    report, ordered = _report(jobs)
    [sheet] = review_sheets(report, ordered, [])
    assert [column.values for column in sheet.columns] == [(("locale", "de-DE"), ("ratio", "9:16"))]
    assert [len(cell) for cell in sheet.rows[0].cells] == [2]


# --- a reviewer's POST ----------------------------------------------------------------------

def test_each_action_is_the_change_it_names() -> None:
    assert read_action(b'{"key": "k", "action": "pick"}').change.picked is True
    assert read_action(b'{"key": "k", "action": "unpick"}').change.picked is False
    assert read_action(b'{"key": "k", "action": "clear"}').change.verdict is Verdict.UNDECIDED
    note = read_action(b'{"key": "k", "action": "note", "note": "  trop sombre\\u00a0!\\n  "}')
    assert note.change.note == "trop sombre\u00a0!" and note.change.verdict is None
    assert [needs_video(read_action(f'{{"key": "k", "action": "{a}"}}'.encode())) for a in
            ("approve", "reject", "clear", "pick", "unpick")] == [True, False, False, True, False]


@pytest.mark.parametrize("body", [b"", b"null", b'"approve"', b'{"key": 1, "action": "approve"}',
                                  b'{"key": "k", "action": ["approve"]}', b'{"key": "k", "action": "note"}',
                                  b'{"key": "k", "action": "note", "note": "\\u0000"}', b"\xff\xfe"])
def test_what_is_not_an_action_is_refused(body: bytes) -> None:
    with pytest.raises(BadAction):
        read_action(body)


# --- the guard ------------------------------------------------------------------------------

def test_the_host_check_knows_this_servers_names_and_no_others() -> None:
    loopback, everywhere, lan = Guard("t", "127.0.0.1"), Guard("t", "0.0.0.0"), Guard("t", "192.168.1.5")
    assert loopback.host_ok("127.0.0.1:8790", 8790) and loopback.host_ok("localhost:8790", 8790)
    assert not loopback.host_ok("127.0.0.1:8791", 8790) and not loopback.host_ok("127.0.0.1", 8790)
    assert not loopback.host_ok("rebound.evil.example:8790", 8790) and not loopback.host_ok(None, 8790)
    assert everywhere.host_ok("10.1.2.3:8790", 8790) and not everywhere.host_ok("evil.example:8790", 8790)
    assert lan.host_ok("192.168.1.5:8790", 8790) and not lan.host_ok("localhost:8790", 8790)
    assert loopback.origin_ok(None, 8790) and loopback.origin_ok("http://localhost:8790", 8790)
    assert not loopback.origin_ok("https://127.0.0.1:8790", 8790)
    assert not loopback.origin_ok("http://127.0.0.1:8790/x", 8790)


def test_the_token_is_compared_whole() -> None:
    guard = Guard("s3cret-token", "127.0.0.1")
    assert guard.token_ok("s3cret-token")
    assert not any(guard.token_ok(guess) for guess in (None, "", "s3cret", "s3cret-token ", "S3CRET-TOKEN", "é"))


# --- media paths ----------------------------------------------------------------------------

def test_only_the_campaigns_files_inside_the_output_folder_open(tmp_path: Path) -> None:
    root = tmp_path / "renders"
    (root / "c").mkdir(parents=True)
    (root / "c" / "a.mp4").write_bytes(b"video")
    (tmp_path / "secret.mp4").write_bytes(b"secret")
    (root / "c" / "out.mp4").symlink_to(tmp_path / "secret.mp4")
    allowed = {"c/a.mp4", "c/out.mp4", "c/missing.mp4", "../secret.mp4"}
    opened = open_media(root, "c/a.mp4", allowed)
    try:
        assert (os.read(opened.fd, 10), opened.size, opened.media_type) == (b"video", 5, "video/mp4")
    finally:
        os.close(opened.fd)
    for path, status in (("c/out.mp4", 403), ("../secret.mp4", 403), ("c/missing.mp4", 404), ("c/b.mp4", 404)):
        with pytest.raises(MediaRefused) as caught:
            open_media(root, path, allowed)
        assert caught.value.status == status, path


def test_an_output_folder_that_is_itself_a_link_is_served(tmp_path: Path) -> None:
    (tmp_path / "big-disk" / "c").mkdir(parents=True)
    (tmp_path / "big-disk" / "c" / "a.mp4").write_bytes(b"video")
    (tmp_path / "renders").symlink_to(tmp_path / "big-disk")
    opened = open_media(tmp_path / "renders", "c/a.mp4", {"c/a.mp4"})
    os.close(opened.fd)
    assert opened.size == 5
