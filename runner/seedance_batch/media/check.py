"""The source media check: every distinct URL the jobs to submit use, asked about once, before spending.

:func:`check_media` takes the URLs' uses (:func:`~.uses.media_uses`), answers what it
can from the ledger's cache, asks the hosts for the rest (``concurrency`` at a time,
each within its deadline: :mod:`.probe`), keeps what it learned, and holds each file
against the kind of media its field takes (``models.json``'s ``media`` section). The
problems come back as one :class:`~seedance_batch.errors.ManifestError` each (exit 2):
the caller raises them before anything is submitted.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import partial
from typing import TYPE_CHECKING

from ..errors import LedgerError, ManifestError, ManifestErrors
from ..ledger import CachedMedia, Ledger, media_key
from ..models import MediaLimits
from .cache import entry_for, facts_of, is_fresh
from .records import Facts, MediaPolicy, Probe
from .uses import MediaUse, fit_problem, media_errors

if TYPE_CHECKING:  # the HTTP stack is imported only when a URL must be asked (see _ask)
    import httpx

__all__ = ["MediaReport", "check_media"]


@dataclass(frozen=True, slots=True)
class MediaReport:
    """What the check found: how many URLs, answered how, and the problems (empty: all fit).

    ``requests`` counts every HTTP request sent (redirect hops and ranged GETs included);
    ``cache_note`` says why nothing was kept, when the cache could not be written.
    """

    urls: int = 0
    jobs: int = 0
    cached: int = 0
    asked: int = 0
    unchanged: int = 0
    requests: int = 0
    problems: tuple[ManifestError, ...] = field(default=())
    cache_note: str | None = None

    def summary(self) -> str:
        """``media checked: 20 URL(s) for 500 job(s): 12 from the cache, 8 asked (3 unchanged)``."""
        if not self.urls:
            return "media checked: the jobs to submit use no source media URLs"
        unchanged = f" ({self.unchanged} unchanged)" if self.unchanged else ""
        line = (f"media checked: {self.urls} URL(s) for {self.jobs} job(s): {self.cached} from the cache, "
                f"{self.asked} asked{unchanged}")
        if self.cache_note:
            line += f"; not cached: {self.cache_note}"
        if self.problems:
            line += f"; {len(self.problems)} problem(s)"
        return line

    def raise_if_any(self) -> None:
        """Raise the problems (one :class:`ManifestError`, or all of them together)."""
        ManifestErrors.raise_if_any(self.problems)


def check_media(uses: Mapping[str, Sequence[MediaUse]], limits: MediaLimits, cache: Ledger | None, *,
                policy: MediaPolicy | None = None, now: datetime | None = None,
                transport: httpx.AsyncBaseTransport | None = None,
                note: Callable[[str], None] | None = None) -> MediaReport:
    """Check every URL of ``uses`` (``cache`` None: ask every one, keep nothing).

    ``now`` is the check's clock (tests move it past the hour); ``note`` hears a line
    before a long check starts.
    """
    policy = policy or MediaPolicy()
    now = now or datetime.now(timezone.utc)
    facts, stale, unread = _from_cache(list(uses), cache, now, policy)
    if note is not None and len(stale) > policy.concurrency:
        note(f"checking {len(stale)} source media URL(s), {policy.concurrency} at a time")
    probes = _ask(stale, policy, transport) if stale else {}
    problems, kept = _learn(probes, stale, facts, now)
    cache_note = unread or _keep(cache, kept)  # one that could not be read is not written either

    def problem_of(url: str, use: MediaUse) -> str | None:
        kind = limits.kind_of(use.field)
        found = problems.get(url)
        return found if found is not None or kind is None else fit_problem(facts[url], kind, use.field)

    return MediaReport(
        urls=len(uses), jobs=len({use.label for its in uses.values() for use in its}), cached=len(uses) - len(stale),
        asked=len(stale), unchanged=sum(p.unchanged for p in probes.values()),
        requests=sum(p.requests for p in probes.values()), problems=tuple(media_errors(uses, problem_of)),
        cache_note=cache_note,
    )


def _from_cache(urls: list[str], cache: Ledger | None, now: datetime, policy: MediaPolicy,
                ) -> tuple[dict[str, Facts], dict[str, CachedMedia | None], str | None]:
    """The facts the cache holds fresh, by URL; the URLs to ask, each with its stale entry (or None);
    and why the cache could not be read, if it could not (then every URL is asked)."""
    keys = {url: media_key(url) for url in urls}
    try:
        entries = cache.media_checks(list(keys.values())) if cache is not None and urls else {}
    except LedgerError as exc:  # a cache that cannot be read costs the cache only
        return {}, dict.fromkeys(urls), exc.message
    fresh: dict[str, Facts] = {}
    stale: dict[str, CachedMedia | None] = {}
    for url, key in keys.items():
        entry = entries.get(key)
        if entry is not None and is_fresh(entry, now, policy.fresh_seconds):
            fresh[url] = facts_of(entry)
        else:
            stale[url] = entry
    return fresh, stale, None


def _learn(probes: Mapping[str, Probe], stale: Mapping[str, CachedMedia | None], facts: dict[str, Facts],
           now: datetime) -> tuple[dict[str, str], list[CachedMedia]]:
    """Fold the answers into ``facts``; the problems by URL, and the entries to keep (reached files only)."""
    problems: dict[str, str] = {}
    kept: list[CachedMedia] = []
    for url, found in probes.items():
        entry = stale[url]
        if found.unchanged and entry is not None:
            facts[url] = facts_of(entry)
        elif found.facts is not None:
            facts[url] = found.facts
        else:
            problems[url] = found.problem or "no usable answer"
            continue
        kept.append(entry_for(url, facts[url], now))
    return problems, kept


def _keep(cache: Ledger | None, kept: list[CachedMedia]) -> str | None:
    """Save what was learned; a ledger that cannot take it costs the cache only (the check stands)."""
    if cache is None or not kept:
        return None
    try:
        cache.save_media_checks(kept)
    except LedgerError as exc:
        return exc.message
    return None


def _ask(stale: Mapping[str, CachedMedia | None], policy: MediaPolicy,
         transport: httpx.AsyncBaseTransport | None) -> dict[str, Probe]:
    """Ask the hosts about every URL of ``stale`` (an event loop of its own: callers are synchronous)."""
    import anyio

    return anyio.run(partial(_ask_all, stale, policy, transport))


async def _ask_all(stale: Mapping[str, CachedMedia | None], policy: MediaPolicy,
                   transport: httpx.AsyncBaseTransport | None) -> dict[str, Probe]:
    """Ask about every URL, ``policy.concurrency`` at a time, over one client."""
    import anyio

    from .probe import media_client, probe

    found: dict[str, Probe] = {}
    todo = iter(stale.items())  # shared by the workers: each URL is taken once

    async def worker(client: httpx.AsyncClient) -> None:
        for url, entry in todo:
            found[url] = await probe(client, url, policy, facts_of(entry) if entry is not None else None)

    async with media_client(policy, transport) as client, anyio.create_task_group() as workers:
        for _ in range(min(policy.concurrency, len(stale))):
            workers.start_soon(worker, client)
    return found
