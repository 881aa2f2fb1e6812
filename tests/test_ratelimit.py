"""The pacer learns the server's rate from its 429s: its arithmetic, and a run of it against the
simulator's own rate windows on a clock the test drives (no sleeping, no timing).

Each simulated call is admitted by the pacer at the earliest moment it allows, counted by a
real :mod:`seedance_batch.simulator.limits` window, and answered ``LATENCY`` later (success or
429, as the run does). What is checked: every job gets through, the time it takes against
the ideal ``N / R``, how many 429s it cost, and the rate learned.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

import pytest

from seedance_batch.errors import RateLimited, TransientError
from seedance_batch.run.ratelimit import MARGIN, PROBES_PER_WINDOW, RAISE, RAISE_AFTER_WINDOWS, Pacer
from seedance_batch.run.retry import Backoff
from seedance_batch.run.settings import RunSettings
from seedance_batch.simulator.limits import make_window

R = 50.0   # the server's rate, a second
W = 0.5    # its window, seconds
LATENCY = 0.01


@dataclass
class Outcome:
    wall: float
    limited: int
    pacer: Pacer


def drive(mode: str, *, client: float, jobs: int = 1000, in_flight: int = 16, start: float = 1000.37,
          window: float | None = W) -> Outcome:
    """``jobs`` calls through a pacer allowed ``client`` x R against a server window of ``mode``."""
    now = [start]
    pacer = Pacer(client * R * 60, window=window, clock=lambda: now[0])
    server = make_window(mode, round(R * W), W)
    answers: list[tuple[float, int, bool, float]] = []  # (when, order, accepted, sent)
    done = limited = order = 0

    def answer_next() -> None:
        nonlocal done
        at, _, ok, sent = heapq.heappop(answers)
        now[0] = max(now[0], at)
        if ok:
            done += 1
            pacer.succeeded(sent)
        else:
            pacer.slow_down(None, sent)  # no Retry-After: the contract does not promise one

    while done < jobs:
        if len(answers) >= in_flight or (answers and answers[0][0] <= max(now[0], pacer.next_admission)):
            answer_next()
            continue
        if done + len(answers) >= jobs:
            answer_next()
            continue
        now[0] = max(now[0], pacer.next_admission)
        pacer.admit(now[0])
        accepted = server.admit(now[0]) is None
        limited += not accepted
        order += 1
        heapq.heappush(answers, (now[0] + LATENCY, order, accepted, now[0]))
    return Outcome(now[0] - start, limited, pacer)


@pytest.mark.parametrize("mode", ["fixed", "lockout", "sliding"])
def test_at_twice_the_servers_rate_the_pacer_learns_it_and_finishes_near_the_ideal(mode: str) -> None:
    outcome = drive(mode, client=2.0)
    ideal = 1000 / R
    assert outcome.wall <= 1.12 * ideal  # the run's 1.2x target leaves the rest for the render time L
    assert outcome.limited <= 40  # a few episodes, not one 429 per call beyond the limit
    assert outcome.pacer.ceiling is not None and 0.9 * R <= outcome.pacer.ceiling <= 1.05 * R


@pytest.mark.parametrize("mode", ["fixed", "lockout", "sliding"])
def test_bouncing_off_the_limit_instead_would_lose_time_in_lockouts(mode: str) -> None:
    # The same run without the window known (the old halving): learning is what makes the difference.
    learned = drive(mode, client=2.0)
    halving = drive(mode, client=2.0, window=None)
    assert learned.limited < halving.limited
    if mode == "lockout":
        assert learned.wall < halving.wall


@pytest.mark.parametrize("mode", ["fixed", "lockout", "sliding"])
def test_at_the_servers_own_rate_nothing_is_refused(mode: str) -> None:
    outcome = drive(mode, client=1.0)
    assert outcome.limited == 0 and outcome.pacer.ceiling is None


def test_the_rate_is_learned_once_per_episode_from_the_calls_sent_in_the_window_before_its_trip() -> None:
    now = [100.0]
    pacer = Pacer(6000, window=1.0, clock=lambda: now[0])  # asked for 100 a second
    for i in range(30):  # 30 sent within the second before 100.0, their answers in
        pacer.succeeded(99.2 + i * 0.02)
    pacer.slow_down(None, 100.0)  # the trip: the call sent at 100.0 was refused
    assert pacer.decreases == 1 and pacer.rate == pytest.approx(MARGIN * 30)  # what is known so far
    assert pacer.next_admission == pytest.approx(100.0 + 1.0 / PROBES_PER_WINDOW)
    now[0] = 100.02
    pacer.succeeded(99.99)  # a late answer of a call sent before the trip: the episode goes on
    pacer.slow_down(None, 100.01)  # a call already in the air: the same episode
    now[0] = 100.1
    pacer.slow_down(None, 100.1)  # the probe, refused: the same episode, the next probe later
    assert pacer.decreases == 1 and pacer.limited == 3
    assert pacer.next_admission == pytest.approx(100.2)
    now[0] = 100.25
    pacer.succeeded(100.2)  # the next probe went through: the episode ends, counted with every answer in
    assert pacer.rate == pytest.approx(MARGIN * 31) and pacer.ceiling == pacer.rate
    now[0] = 100.3
    pacer.slow_down(None, 100.0)  # a straggler of that episode: not a new one
    assert pacer.decreases == 1


def test_a_trip_at_the_learned_rate_measures_again() -> None:
    now = [0.0]
    pacer = Pacer(6000, window=1.0, clock=lambda: now[0])
    for i in range(20):
        pacer.succeeded(i * 0.04)
    pacer.slow_down(None, 0.8)
    pacer.succeeded(0.9)
    first = pacer.rate
    assert first == pytest.approx(MARGIN * 20)
    for i in range(15):  # a slower server now
        pacer.succeeded(10 + i * 0.06)
    now[0] = 11.0
    pacer.slow_down(None, 10.9)
    now[0] = 11.2
    pacer.succeeded(11.1)
    assert pacer.rate == pytest.approx(MARGIN * 15)


def test_retry_after_is_honoured_and_a_429_with_nothing_accepted_halves() -> None:
    now = [50.0]
    pacer = Pacer(600, window=10.0, clock=lambda: now[0])  # 10 a second
    pacer.slow_down(3.0)
    assert pacer.next_admission >= 53.0
    assert pacer.rate == pytest.approx(5.0) and pacer.ceiling is None  # nothing went through lately: halve


def test_a_learned_rate_is_raised_a_tenth_after_30_windows_without_a_429() -> None:
    now = [0.0]
    pacer = Pacer(6000, window=1.0, clock=lambda: now[0])
    for i in range(10):
        pacer.succeeded(i * 0.1)
    now[0] = 1.0
    pacer.slow_down(None, 0.95)
    pacer.succeeded(1.0)
    learned = pacer.ceiling
    assert learned == pytest.approx(MARGIN * 10)
    now[0] = 1.0 + RAISE_AFTER_WINDOWS * 1.0 - 0.5
    pacer.succeeded()
    assert pacer.ceiling == learned
    now[0] = 1.0 + RAISE_AFTER_WINDOWS * 1.0 + 0.5
    pacer.succeeded()
    assert pacer.ceiling == pytest.approx(learned * RAISE)


def test_a_429_is_free_within_the_patience_then_counts() -> None:
    patient = Backoff(RunSettings(rate_limit_patience=60.0), (RateLimited, TransientError))
    assert patient.free(RateLimited("submit: HTTP 429")) is True
    assert patient.free(TransientError("submit: HTTP 503")) is False  # attempts are for transient faults
    impatient = Backoff(RunSettings(rate_limit_patience=1e-9), (RateLimited,))
    impatient.free(RateLimited("x"))
    assert impatient.free(RateLimited("x")) is False
    refusing = Backoff(RunSettings(), (TransientError,))  # a loop that does not retry 429s at all
    assert refusing.free(RateLimited("x")) is False

