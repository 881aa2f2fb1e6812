"""The ledger's contract for many runners, on every backend: leases, takeover, limited claims, the
account's submit schedule (what seedance_batch.ledger.claims promises).

Leases run out on the database's clock: a test that needs one expired leases it for a few
milliseconds and waits past that (a time condition, not a race). The budget and the
in-flight limit are raced by real processes claiming at once.
"""

from __future__ import annotations

import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from seedance_batch.ledger import JobState, Ledger, TransitionRefused, open_ledger
from seedance_batch.ledger.claims import AccountBusy, Claim, ClaimTerms, OverBudget
from test_ledger_contract import CAMPAIGN, REQUEST, _race, led, put, where  # the suite's own: every backend, fresh

__all__ = ["led", "where"]  # used as fixtures, not unused imports

S = JobState
EXPIRED = 0.05  # seconds: a lease that runs out before the test looks again
LONG = 600.0


def claim(ledger: Ledger, key: str, *, owner: str = "r-test", cost: str = "1.00", interval: float = 0.0,
          after: int = 0, **limits: Any) -> Claim:
    """A runner's claim (with no limits unless given, and a schedule of ``interval`` seconds)."""
    return ledger.claim(campaign=CAMPAIGN, key=key, label=f"s/{key}", shot="s", request=REQUEST, credits=200,
                        cost_usd=Decimal(cost), output_path=None,
                        terms=ClaimTerms(owner=owner, interval=interval, after=after, **limits))


def dead_runner(ledger: Ledger) -> str:
    """A runner whose lease has run out."""
    runner = ledger.join(CAMPAIGN, EXPIRED)
    time.sleep(EXPIRED * 3)
    return runner


def test_a_lease_is_renewed_while_it_lives_and_renewing_a_lapsed_one_says_so(led: Ledger) -> None:
    live = led.join(CAMPAIGN, LONG)
    assert led.renew(live, LONG) is True
    lapsed = dead_runner(led)
    assert led.renew(lapsed, LONG) is False  # its rows may have been taken over meanwhile...
    assert led.renew(lapsed, LONG) is True   # ...and it is leased again
    led.leave(live)
    assert led.renew(live, LONG) is False
    with pytest.raises(ValueError, match="above 0"):
        led.join(CAMPAIGN, 0)


def test_a_dead_runners_in_flight_rows_are_taken_over_and_its_submits_made_unknown(led: Ledger) -> None:
    dead = led.join(CAMPAIGN, LONG)
    for key, state in (("k1", S.SUBMITTED), ("k2", S.FINISHED), ("k3", S.SUBMITTING), ("k4", S.DONE)):
        claim(led, key, owner=dead)
        if state is not S.SUBMITTING:
            led.submitted(CAMPAIGN, key, f"task-{key}", "not_started")
        if state in (S.FINISHED, S.DONE):
            led.finished(CAMPAIGN, key, "https://files.example/v.mp4")
        if state is S.DONE:
            led.downloaded(CAMPAIGN, key, f"c/{key}.mp4", 1, "ab" * 32)
    me = led.join(CAMPAIGN, LONG)
    assert led.take_over(CAMPAIGN, me, ["k1", "k2", "k3", "k4"]).tracked == ()  # the owner lives: nothing
    if led.shared:  # (a SQLite file's recover() holds the run lock: every submitting row is a dead run's)
        assert led.recover() == []
    led.renew(dead, EXPIRED)
    time.sleep(EXPIRED * 3)
    taken = led.take_over(CAMPAIGN, me, ["k1", "k2", "k3", "k4"])
    assert sorted((r.key, r.state) for r in taken.tracked) == [("k1", S.SUBMITTED), ("k2", S.FINISHED)]
    assert [(r.key, r.state, r.error_class) for r in taken.unknown] == [("k3", S.UNKNOWN, "ambiguous_submit")]
    assert [e.kind for e in led.events(CAMPAIGN) if e.key == "k3"][-1] == "recovered"
    assert led.take_over(CAMPAIGN, me, ["k1", "k2", "k3"]) == type(taken)()  # mine now: nothing more
    other = led.join(CAMPAIGN, LONG)
    assert led.take_over(CAMPAIGN, other, ["k1", "k2"]).tracked == ()  # a live owner's rows stay its own


def test_takeover_only_tracks_the_callers_keys_and_rows_left_without_an_owner(led: Ledger) -> None:
    put(led, "k1", S.SUBMITTED)  # claimed without an owner (a run that left, or an older version)
    put(led, "k2", S.TIMED_OUT)
    put(led, "k3", S.SUBMITTING)  # no owner: nothing says its runner is dead
    me = led.join(CAMPAIGN, LONG)
    taken = led.take_over(CAMPAIGN, me, ["k2", "k3"])
    assert [(r.key, r.state) for r in taken.tracked] == [("k2", S.TIMED_OUT)] and taken.unknown == ()
    assert led.record(CAMPAIGN, "k3").state is S.SUBMITTING
    assert [r.key for r in led.take_over(CAMPAIGN, me, ["k1"]).tracked] == ["k1"]


def test_a_runner_that_leaves_frees_its_rows_and_its_submits_in_the_air_become_unknown(led: Ledger) -> None:
    runner = led.join(CAMPAIGN, LONG)
    claim(led, "k1", owner=runner)
    led.submitted(CAMPAIGN, "k1", "task-1", "not_started")
    claim(led, "k2", owner=runner)
    led.leave(runner)
    led.leave(runner)  # idempotent
    assert led.record(CAMPAIGN, "k2").state is S.UNKNOWN
    after = led.join(CAMPAIGN, LONG)
    assert [r.key for r in led.take_over(CAMPAIGN, after, ["k1", "k2"]).tracked] == ["k1"]  # at once: no lease to wait


def test_recover_makes_only_dead_owners_submits_unknown(led: Ledger) -> None:
    live, dead = led.join(CAMPAIGN, LONG), led.join(CAMPAIGN, LONG)
    claim(led, "k1", owner=live)
    claim(led, "k2", owner=dead)
    led.renew(dead, EXPIRED)
    time.sleep(EXPIRED * 3)
    if led.shared:
        assert [r.key for r in led.recover()] == ["k2"]
        assert led.record(CAMPAIGN, "k1").state is S.SUBMITTING
    else:  # one run at a time: whoever recovers holds the run lock, and every submitting row is a dead run's
        assert [r.key for r in led.recover()] == ["k1", "k2"]


def test_a_claim_past_the_budget_is_refused_and_writes_nothing(led: Ledger) -> None:
    claim(led, "k1", cost="3.00", max_usd=Decimal("5"))
    put(led, "k0", S.PENDING)  # not charged
    with pytest.raises(OverBudget, match=r"s/k2: \$2.50 more would take the campaign past its budget "
                                         r"\(\$3.00 spent, in flight or unknown, of \$5\)") as refused:
        claim(led, "k2", cost="2.50", max_usd=Decimal("5"))
    assert (refused.value.committed, refused.value.limit) == (Decimal("3.00"), Decimal(5))
    assert led.record(CAMPAIGN, "k2") is None and [e.key for e in led.events(CAMPAIGN)].count("k2") == 0
    led.release(CAMPAIGN, "k1", "rate_limited", "429")  # no task: its hold is let go
    claim(led, "k2", cost="2.50", max_usd=Decimal("5"))
    with pytest.raises(TransitionRefused):  # the row's state is judged before the budget
        claim(led, "k2", cost="9.00", max_usd=Decimal("5"))


def test_a_claim_past_the_in_flight_limit_is_refused_until_one_ends(led: Ledger) -> None:
    put(led, "k1", S.SUBMITTED)
    put(led, "k2", S.FINISHED)
    put(led, "k3", S.TIMED_OUT)  # let go, as a runner lets it go
    with pytest.raises(AccountBusy, match="the account has 2 jobs in flight"):
        claim(led, "k4", max_in_flight=2)
    assert led.record(CAMPAIGN, "k4") is None
    led.downloaded(CAMPAIGN, "k2", "c/k2.mp4", 1, "ab" * 32)
    assert claim(led, "k4", max_in_flight=2).record.state is S.SUBMITTING


def test_each_claim_takes_the_next_submit_turn_and_a_refused_one_takes_none(led: Ledger) -> None:
    waits = [claim(led, f"k{index}", interval=0.5).wait for index in range(4)]
    assert waits[0] == pytest.approx(0, abs=0.05)
    for index, wait in enumerate(waits):
        assert wait == pytest.approx(0.5 * index, abs=0.1), waits
    with pytest.raises(TransitionRefused):
        claim(led, "k0", interval=0.5)  # refused: no turn taken
    assert claim(led, "k9", interval=0.5).wait == pytest.approx(2.0, abs=0.1)
    led.delay_turns(30)  # a 429: every runner's next turn waits
    assert claim(led, "k10", interval=0.5).wait == pytest.approx(30, abs=0.5)


def test_a_claim_says_which_jobs_were_claimed_since_the_runner_last_looked(led: Ledger) -> None:
    first = claim(led, "k1", owner="a")
    claim(led, "k2", owner="b")
    put(led, "k3", S.SUBMITTED)  # claimed by begin_submit (a single runner's): an event all the same
    seen = claim(led, "k4", owner="a", after=first.cursor)
    assert seen.claimed == ("k2", "k3") and seen.cursor > first.cursor
    assert claim(led, "k5", owner="a", after=seen.cursor).claimed == ()  # its own claim is not news


# --- real processes claiming at once --------------------------------------------------------------

def _claim_within(where: str, keys: list[str], budget: str, in_flight: int | None, start: Any,
                  results: Any) -> None:
    """In a child process: claim every job at $1 within ``budget``; what each claim got."""
    outcome = {}
    with open_ledger(where) as ledger:
        ledger.records(CAMPAIGN)
        start.wait(timeout=30)
        for key in keys:
            try:
                claim(ledger, key, max_usd=Decimal(budget), max_in_flight=in_flight)
                outcome[key] = "won"
            except OverBudget:
                outcome[key] = "over budget"
            except AccountBusy:
                outcome[key] = "busy"
            except TransitionRefused:
                outcome[key] = "taken"
    results.put(outcome)


@pytest.mark.parametrize("limit", ["budget", "in_flight"])
def test_two_processes_claiming_at_once_never_pass_the_budget_or_the_in_flight_limit(where: str,
                                                                                     limit: str) -> None:
    keys = [f"k{index:03d}" for index in range(60)]
    open_ledger(where).close()
    budget, in_flight = ("25", None) if limit == "budget" else ("1000", 25)
    # different jobs each (two versions of a manifest), and the same ones from both ends
    args = [(keys[:40], budget, in_flight), (list(reversed(keys[20:])), budget, in_flight)]
    first, second = _race(_claim_within, where, *args)
    won = [key for outcome in (first, second) for key, got in outcome.items() if got == "won"]
    assert len(won) == len(set(won)) == 25, (first, second)
    with open_ledger(where) as ledger:
        rows = ledger.records(CAMPAIGN)
    assert sorted(r.key for r in rows) == sorted(won) and sum(r.cost_usd for r in rows) == Decimal(25)


def test_the_async_facade_has_every_runner_operation(led: Ledger, tmp_path: Path) -> None:
    import anyio

    from seedance_batch.ledger import AsyncLedger

    async def calls() -> None:
        facade = AsyncLedger(led)
        runner = await facade.join(CAMPAIGN, LONG)
        assert await facade.renew(runner, LONG)
        made = await facade.claim(campaign=CAMPAIGN, key="k1", label="s/k1", shot="s", request=REQUEST, credits=1,
                                  cost_usd=Decimal("0.01"), output_path=None,
                                  terms=ClaimTerms(owner=runner, interval=0.01, max_usd=Decimal(1), max_in_flight=1))
        assert made.record.state is S.SUBMITTING and made.wait == pytest.approx(0, abs=0.05)
        assert (await facade.take_over(CAMPAIGN, runner, ["k1"])).tracked == ()
        await facade.delay_turns(0.01)
        await facade.leave(runner)
        assert (await facade.record(CAMPAIGN, "k1")).state is S.UNKNOWN

    anyio.run(calls)


def test_a_companion_renews_the_lease_while_the_ledger_waits_for_another_runners_lock(led: Ledger,
                                                                                       where: str) -> None:
    """A runner's lease is renewed on a connection of its own: a claim of the run that waits for
    another runner's lock (here held by a plain connection) does not hold the renewal up."""
    import threading

    companion = led.companion()
    if not led.shared:
        assert companion is led  # one runner holds a SQLite file: nothing to wait for
        return
    import psycopg

    runner = led.join(CAMPAIGN, LONG)
    other = psycopg.connect(where)  # another runner, in the middle of its claim's transaction
    try:
        other.execute("SELECT 1 FROM seedance.limits WHERE name = 'claims' FOR UPDATE")
        claiming = threading.Thread(target=claim, args=(led, "k1"), kwargs={"interval": 0.0})
        claiming.start()
        renewed: list[bool] = []
        renewing = threading.Thread(target=lambda: renewed.append(companion.renew(runner, LONG)))
        renewing.start()
        renewing.join(timeout=10)
        assert renewed == [True]  # done while the claim still waits for the lock...
        assert claiming.is_alive()
    finally:
        other.rollback()  # ...which it gets now
        other.close()
    claiming.join(timeout=10)
    assert not claiming.is_alive()
    assert led.record(CAMPAIGN, "k1").state is S.SUBMITTING  # type: ignore[union-attr]
    companion.close()
    assert led.renew(runner, LONG) is True  # the ledger itself is open still
