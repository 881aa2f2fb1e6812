"""Copying a campaign's history from one ledger to another (``seedance-batch ledger copy SRC DST``).

How existing users keep what they paid for when they move from a SQLite file to a
shared PostgreSQL ledger (and back). The rules, the same in every backend
(:meth:`~.api.Ledger.copy_in` applies them in one transaction):

- A job's row is copied as it is: its state, task id, attempts, money, stamps. A job
  the destination has no row for gets one; a row that is already there *and equal*
  is left alone (so a second copy changes nothing); a row that is there and differs
  (the destination has moved on, or it is another campaign of the same name) refuses
  the whole copy, naming the job: nothing is written, nothing is overwritten.
- The audit trail's lines are copied in order; a line the destination holds already
  (same job, moment, kind and content) is not copied again. Event ids are each
  ledger's own (the copies get new ones, in the same order).
- Afterwards, :func:`copy_ledger` reads the destination back and checks it row for
  row: the counts and a digest of the copied jobs and events must be the source's.

Pure functions over records here (:func:`plan_copy`, :func:`digest`), the copy over two
opened ledgers (:func:`copy_ledger`), and over two locations (:func:`copy_between`: the
source opened only to read, never written).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any

from ..errors import LedgerError, Location, UsageError
from .records import DERIVED_FIELDS, Event, JobRecord
from .transitions import shown

__all__ = ["CampaignCopy", "CopyCounts", "CopyPlan", "copy_between", "copy_ledger", "digest", "event_content",
           "plan_copy", "record_values"]

# A row's own columns: a refund (DERIVED_FIELDS) is an audit-trail line, copied with the events.
_RECORD_FIELDS = tuple(f.name for f in fields(JobRecord) if f.name not in DERIVED_FIELDS)


@dataclass(frozen=True, slots=True)
class CopyCounts:
    """What one campaign's copy did in the destination."""

    jobs_added: int = 0
    jobs_same: int = 0
    events_added: int = 0
    events_same: int = 0


@dataclass(frozen=True, slots=True)
class CopyPlan:
    """What :meth:`~.api.Ledger.copy_in` writes: the rows and lines the destination lacks."""

    records: tuple[JobRecord, ...]
    events: tuple[Event, ...]
    counts: CopyCounts


@dataclass(frozen=True, slots=True)
class CampaignCopy:
    """One campaign copied and checked: its counts and the digest both ledgers agree on."""

    campaign: str
    jobs: int
    events: int
    counts: CopyCounts
    digest: str


def plan_copy(campaign: str, records: Sequence[JobRecord], events: Sequence[Event],
              here_records: Iterable[JobRecord], here_events: Iterable[Event], where: Location) -> CopyPlan:
    """What to write so the destination holds ``records`` and ``events``; a row that differs refuses it all."""
    here = {rec.key: rec for rec in here_records}
    new: list[JobRecord] = []
    for rec in records:
        if rec.campaign != campaign:
            raise ValueError(f"a record of campaign {rec.campaign!r} in the copy of {campaign!r}")
        mine = here.get(rec.key)
        if mine is None:
            new.append(rec)
        elif _row(mine) != _row(rec):  # the row itself: a refund is compared as the event it is
            raise _differs(rec, mine, where)
    held = Counter(event_content(event) for event in here_events)
    new_events: list[Event] = []
    for event in events:
        content = event_content(event)
        if held[content]:
            held[content] -= 1
        else:
            new_events.append(event)
    counts = CopyCounts(len(new), len(records) - len(new), len(new_events), len(events) - len(new_events))
    return CopyPlan(tuple(new), tuple(new_events), counts)


def _row(rec: JobRecord) -> tuple[Any, ...]:
    return tuple(getattr(rec, name) for name in _RECORD_FIELDS)


def _differs(theirs: JobRecord, mine: JobRecord, where: Location) -> LedgerError:
    names = [name for name in _RECORD_FIELDS if getattr(theirs, name) != getattr(mine, name)]
    what = ", ".join(names[:4]) + (f" and {len(names) - 4} more" if len(names) > 4 else "")
    states = (f" (it is {mine.state.value} there, {theirs.state.value} in the source)"
              if theirs.state is not mine.state else "")
    return LedgerError(f"not copied: this job's row differs in the destination: {what}{states}",
                       location=replace(where, job=shown(theirs.label or theirs.key)),
                       hint="nothing was written; the destination has moved on since: copy the other way, "
                            "or into another --state")


def event_content(event: Event) -> tuple[Any, ...]:
    """An event as it is the same line in any ledger: everything but its id (each ledger's own)."""
    return (event.campaign, event.key, event.label, event.at, event.kind, event.state, event.task_id,
            json.dumps(event.detail, sort_keys=True, separators=(",", ":"), default=str))


def record_values(rec: JobRecord) -> dict[str, Any]:
    """A record's columns as both backends store them (the request as canonical JSON text, the state's word)."""
    values = {name: getattr(rec, name) for name in _RECORD_FIELDS}
    values["request"] = json.dumps(rec.request, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    values["state"] = rec.state.value
    return values


def digest(records: Iterable[JobRecord], events: Iterable[Event]) -> str:
    """sha256 of jobs (by key) and events (in order), by content: equal in any two ledgers holding the same."""
    sha = hashlib.sha256()
    for rec in sorted(records, key=lambda r: r.key):
        values = record_values(rec)
        values["cost_usd"] = str(rec.cost_usd.normalize())  # 1.0 and 1.00 are one amount
        sha.update(json.dumps(values, sort_keys=True, default=str).encode() + b"\n")
    sha.update(b"events\n")
    for event in events:
        sha.update(json.dumps(event_content(event), default=str).encode() + b"\n")
    return sha.hexdigest()


def copy_between(source: str, destination: str, campaigns: Sequence[str] | None = None,
                 done: Callable[[str, CampaignCopy], None] | None = None) -> list[CampaignCopy]:
    """``ledger copy SRC DST``: what it copied; ``done(where, copy)`` is told of each campaign as it is
    copied and checked (``where``: the destination, shown without a password).

    The source is opened read-only (never written, never created); the destination for
    writing (created and migrated when missing).
    """
    from . import open_ledger, shown_location  # the package imports this module: not at import time

    if _same(source, destination):
        raise UsageError(f"{shown_location(source)} is both SRC and DST", hint="copy into another ledger")
    found = open_ledger(source, read_only=True)
    if found is None:
        raise UsageError(f"no ledger at {shown_location(source)} to copy from",
                         hint="SRC is a ledger file (e.g. .seedance/ledger.sqlite) or a postgresql:// URL")
    with found as reading, open_ledger(destination) as writing:
        tell = None if done is None else (lambda copied: done(writing.location, copied))
        return copy_ledger(reading, writing, campaigns, tell)


def _same(source: str, destination: str) -> bool:
    if source == destination:
        return True
    if "://" in source or "://" in destination:
        return False
    return os.path.exists(source) and os.path.exists(destination) and os.path.samefile(source, destination)


def copy_ledger(source: Any, destination: Any, campaigns: Sequence[str] | None = None,
                done: Callable[[CampaignCopy], None] | None = None) -> list[CampaignCopy]:
    """Copy ``campaigns`` (None: every one) from ``source`` into ``destination``, each checked afterwards
    (and handed to ``done``: a campaign copied stays copied when a later one is refused).

    Both are opened :class:`~.api.Ledger` objects (``source`` only read). Raises
    UsageError for a campaign the source does not hold, and LedgerError when a row
    differs (nothing of that campaign written) or the check after the copy fails.
    """
    held = source.campaigns()
    wanted = list(campaigns) if campaigns else held
    missing = [name for name in wanted if name not in held]
    if missing:
        have = ", ".join(shown(name) for name in held[:5]) or "no campaign at all"
        raise UsageError(f"campaign {shown(missing[0])} is not in {source.location} (it holds {have})")
    copies = []
    for name in wanted:
        copies.append(_copy_one(source, destination, name))
        if done is not None:
            done(copies[-1])
    return copies


def _copy_one(source: Any, destination: Any, campaign: str) -> CampaignCopy:
    records, events = source.records(campaign), source.events(campaign)
    counts = destination.copy_in(campaign, records, events)
    keys = {rec.key for rec in records}
    copied = [rec for rec in destination.records(campaign) if rec.key in keys]
    wanted = Counter(event_content(event) for event in events)
    landed = []
    for event in destination.events(campaign):
        content = event_content(event)
        if wanted[content]:
            wanted[content] -= 1
            landed.append(event)
    expected, found = digest(records, events), digest(copied, landed)
    if expected != found or len(copied) != len(records) or len(landed) != len(events):
        raise LedgerError(f"the copy of campaign {shown(campaign)} does not check out: {len(copied)} of "
                          f"{len(records)} job(s) and {len(landed)} of {len(events)} event(s) read back the same",
                          location=Location(file=destination.location),
                          hint="another process may be writing this campaign there; run the copy again")
    return CampaignCopy(campaign, len(records), len(events), counts, expected)
