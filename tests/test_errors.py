"""Error types: one line each, compiler style, the documented exit codes."""

from __future__ import annotations

import pytest

from seedance_batch import errors
from seedance_batch.errors import (
    EXIT_LEDGER,
    AmbiguousSubmit,
    AuthenticationError,
    BudgetExceeded,
    InsufficientCredits,
    Interrupted,
    InvalidRequest,
    JobsNotDone,
    LedgerError,
    LedgerFailed,
    Location,
    ManifestError,
    ManifestErrors,
    RateLimited,
    SeedanceError,
    TransientError,
    UsageError,
    exit_code,
    run_ending,
)


def test_public_names_are_exactly_all() -> None:
    defined = {
        name for name, value in vars(errors).items()
        if not name.startswith("_") and (getattr(value, "__module__", None) == errors.__name__ or name.startswith("EXIT_"))
    }
    assert defined == set(errors.__all__)


def test_full_location_formats_like_a_compiler() -> None:
    error = ManifestError(
        "duration 20 is out of range",
        location=Location("m.yaml", 12, 15, "shots[1].duration", "hero/en-US"),
        hint="allowed: 4 to 15 seconds",
    )
    assert error.format() == "m.yaml:12:15: shots[1].duration (job hero/en-US): duration 20 is out of range; allowed: 4 to 15 seconds"


@pytest.mark.parametrize(
    ("location", "expected"),
    [
        (Location("m.yaml"), "m.yaml: bad"),
        (Location("m.yaml", 3), "m.yaml:3: bad"),
        (Location("m.yaml", 3, 7, job="hero"), "m.yaml:3:7: job hero: bad"),
        (None, "bad"),
    ],
)
def test_partial_locations(location: Location | None, expected: str) -> None:
    assert ManifestError("bad", location=location).format() == expected


def test_many_errors_sorted_by_position() -> None:
    many = ManifestErrors([
        ManifestError("second", location=Location("m.yaml", 9, 1)),
        ManifestError("first", location=Location("m.yaml", 2, 4)),
    ])
    assert many.lines() == ["m.yaml:2:4: first", "m.yaml:9:1: second"]
    assert many.exit_code == 2


def test_raise_if_any_single_error_is_itself() -> None:
    one = ManifestError("only")
    with pytest.raises(ManifestError) as caught:
        ManifestErrors.raise_if_any([one])
    assert caught.value is one
    ManifestErrors.raise_if_any([])  # nothing to raise


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (UsageError("x"), 2), (ManifestError("x"), 2), (BudgetExceeded("x"), 3),
        (AuthenticationError("x"), 4), (InsufficientCredits("x"), 4), (Interrupted("x"), 130),
        (InvalidRequest("x"), 1), (TransientError("x"), 1), (AmbiguousSubmit("x"), 1), (RateLimited("x"), 1),
        (LedgerError("x"), 2), (LedgerFailed("x"), 5), (JobsNotDone(3), 1),
    ],
)
def test_exit_codes(error: SeedanceError, code: int) -> None:
    assert error.exit_code == code


def test_rate_limited_carries_retry_after() -> None:
    error = RateLimited("slow down", retry_after=2.5)
    assert (error.status, error.retry_after, error.error_class) == (429, 2.5, "rate_limited")


AUTH = AuthenticationError("submit: HTTP 401")


@pytest.mark.parametrize(("ending", "kind", "code"), [
    ({"interrupted": True, "stopped_by": AUTH, "stopped_by_budget": True, "not_done": 4}, Interrupted, 130),
    ({"interrupted": False, "stopped_by": AUTH, "stopped_by_budget": True, "not_done": 4}, AuthenticationError, 4),
    ({"interrupted": False, "stopped_by": None, "stopped_by_budget": True, "not_done": 4}, BudgetExceeded, 3),
    ({"interrupted": False, "stopped_by": None, "stopped_by_budget": False, "not_done": 4}, JobsNotDone, 1),
    ({"interrupted": False, "stopped_by": None, "stopped_by_budget": False, "not_done": 0}, type(None), 0),
], ids=["interrupted", "account", "budget", "not-done", "all-done"])
def test_how_a_run_ended_decides_its_error_and_exit_code(ending: dict, kind: type, code: int) -> None:
    error = run_ending(**ending)
    assert type(error) is kind and exit_code(error) == code


def test_jobs_not_done_prints_nothing_more_than_the_summary() -> None:
    assert JobsNotDone(2).lines() == [] and JobsNotDone(2).message == "2 job(s) not done"


def test_a_ledger_error_mid_run_keeps_its_words_and_exits_5() -> None:
    before = LedgerError("cannot write the ledger: disk full", location=Location(".seedance/ledger.sqlite"),
                         hint="free space")
    during = LedgerFailed.mid_run(before)
    assert during.format() == before.format() and isinstance(during, LedgerError)
    assert exit_code(during) == EXIT_LEDGER == 5 and LedgerFailed.mid_run(during) is during
