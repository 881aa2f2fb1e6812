"""Profiles in a plan: the profile in force, each job's counterparts, and ``--approved``.

A manifest with ``profiles:`` is expanded in every profile (each checked against the
model rules, so a ``final`` that cannot render is refused before a draft is paid for),
and a command plans one of them: ``--profile NAME``, else the manifest's ``profile:``.
The jobs of the other profiles are the plan's *counterparts*: the same shot, combination
and take (the same take label, ``hero/de-DE/9:16#2``) in another profile, another
request with its own key and ledger row. The plan knows each profile's whole cost, so
``plan --profile final`` can say what the finals cost beside the drafts.

``--approved`` plans only the takes a reviewer approved (:mod:`seedance_batch.review`):
a take is approved when one of its jobs (in any profile, usually its draft) has the
verdict ``approved`` in the ledger; where a combination has a picked take, only the
picked one is promoted (picking is choosing the one to deliver). A decision on a job the
manifest no longer has (its draft's prompt changed since) counts for nothing: the new
draft has not been reviewed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from .errors import UsageError
from .expand import expand_profiles
from .ledger import Decision, Verdict
from .manifest import Manifest
from .manifest.schema_check import did_you_mean
from .models import Catalog, PricedJob, price_jobs
from .safetext import one_line

__all__ = ["ProfileChoice", "ProfileTotal", "ProfileView", "choose_profile", "seed_range"]


@dataclass(frozen=True, slots=True)
class ProfileTotal:
    """Every job of one profile, and what rendering all of them costs (whatever the ledger holds)."""

    jobs: int = 0
    credits: int = 0
    usd: Decimal = Decimal(0)
    comparison_usd: Decimal = Decimal(0)

    def plus(self, priced: PricedJob) -> ProfileTotal:
        cost = priced.cost
        return ProfileTotal(self.jobs + 1, self.credits + cost.credits, self.usd + cost.usd,
                            self.comparison_usd + cost.comparison_usd)


@dataclass(frozen=True, slots=True)
class ProfileView:
    """The profiles of a plan (present only when the manifest declares some).

    ``profile`` is the one in force and ``chosen_by`` says why (``--profile`` or the
    manifest's ``profile:``); ``totals`` what each profile's jobs cost in all;
    ``counterparts`` maps a take label to its job in each profile; ``approved`` and
    ``picked`` are the take labels the review approved and picked; ``promoted`` the
    take labels ``--approved`` selected (None without it).
    """

    profile: str
    chosen_by: str
    names: tuple[str, ...]
    totals: Mapping[str, ProfileTotal]
    counterparts: Mapping[str, Mapping[str, PricedJob]] = field(default_factory=dict)
    approved: frozenset[str] = frozenset()
    picked: frozenset[str] = frozenset()
    promoted: frozenset[str] | None = None

    def counterpart(self, take_label: str, profile: str) -> PricedJob | None:
        """The job of the take labelled ``take_label`` in ``profile`` (None: it has none there)."""
        return self.counterparts.get(take_label, {}).get(profile)

    @property
    def takes(self) -> int:
        """How many takes the profile in force has (its jobs, each one take)."""
        return self.totals[self.profile].jobs

    def promotion_cost(self) -> ProfileTotal:
        """What the profile in force costs for the approved takes (picks winning in their combination)."""
        total = ProfileTotal()
        if not self.approved:  # nothing to promote, nothing to group (a hash per take at 100,000 takes)
            return total
        for take in _promoted(self.approved, self.picked, self._combinations()):
            found = self.counterpart(take, self.profile)
            if found is not None:
                total = total.plus(found)
        return total

    def _combinations(self) -> Mapping[str, str]:
        return _combinations(self.counterparts, self.approved | self.picked)


@dataclass(frozen=True, slots=True)
class ProfileChoice:
    """The jobs a command plans (``jobs``), every other job of the manifest (``others``), and the view."""

    jobs: list[PricedJob]
    others: list[PricedJob]
    view: ProfileView | None


def seed_range(catalog: Catalog) -> tuple[int, int]:
    """The seeds every model of the catalog accepts, so a take's seed is valid in each profile."""
    from .expand.takes import SEED, SEED_RANGE

    spans = [rules.rules[SEED] for rules in catalog.models.values() if SEED in rules.rules]
    if not spans:
        return SEED_RANGE
    low, high = max(span.low for span in spans), min(span.high for span in spans)
    return (low, high) if low <= high else SEED_RANGE


def choose_profile(manifest: Manifest, catalog: Catalog, decisions: Iterable[Decision], *,
                   profile: str | None, approved: bool) -> ProfileChoice:
    """Expand and price every profile, then pick the jobs of the profile in force (the approved takes' only).

    Raises :class:`UsageError` (exit 2) for a ``--profile`` the manifest does not
    declare (naming those it does) and for ``--approved`` without profiles.
    """
    names = tuple(manifest.profiles)
    if profile is not None and profile not in names:
        raise UsageError(_unknown_profile(profile, names))
    if approved and not names:
        raise UsageError("--approved promotes approved takes to another profile, and the manifest declares no "
                         "profiles", hint="add profiles: (e.g. draft and final) and profile: to the manifest")
    expanded = expand_profiles(manifest, seeds=seed_range(catalog))
    # Every profile priced: a rule a profile breaks is refused now, naming its line and job.
    priced = price_jobs([job for jobs in expanded.values() for job in jobs], catalog)
    if not names:
        return ProfileChoice(priced, [], None)
    in_force = profile if profile is not None else manifest.profile
    assert in_force is not None  # the loader requires profile: with profiles:
    view = _view(priced, decisions, in_force, "--profile" if profile is not None else "profile:", names, approved)
    chosen = [p for p in priced if p.job.profile == in_force
              and (view.promoted is None or p.job.take_label in view.promoted)]
    chosen_keys = {p.job.key for p in chosen}
    return ProfileChoice(chosen, [p for p in priced if p.job.key not in chosen_keys], view)


def _view(priced: Sequence[PricedJob], decisions: Iterable[Decision], in_force: str, chosen_by: str,
          names: tuple[str, ...], approved: bool) -> ProfileView:
    totals = dict.fromkeys(names, ProfileTotal())
    counterparts: dict[str, dict[str, PricedJob]] = {}
    by_key: dict[str, PricedJob] = {}
    for item in priced:
        job = item.job
        assert job.profile is not None
        totals[job.profile] = totals[job.profile].plus(item)
        counterparts.setdefault(job.take_label, {})[job.profile] = item
        by_key[job.key] = item
    approvals, picks = _decided(decisions, by_key)
    promoted = None
    if approved:
        promoted = frozenset(_promoted(approvals, picks, _combinations(counterparts, approvals | picks)))
    return ProfileView(in_force, chosen_by, names, totals, counterparts, approvals, picks, promoted)


def _decided(decisions: Iterable[Decision], by_key: Mapping[str, PricedJob]) -> tuple[frozenset[str], frozenset[str]]:
    """The take labels approved, and picked, by a decision on a job the manifest still has."""
    approved: set[str] = set()
    picked: set[str] = set()
    for decision in decisions:
        found = by_key.get(decision.key)
        if found is None or decision.verdict is not Verdict.APPROVED:
            continue
        approved.add(found.job.take_label)
        if decision.picked:
            picked.add(found.job.take_label)
    return frozenset(approved), frozenset(picked)


def _promoted(approved: frozenset[str], picked: frozenset[str], combinations: Mapping[str, str]) -> list[str]:
    """The approved takes, but only the picked one in a combination that has a pick."""
    with_pick = {combinations.get(take) for take in picked}
    return sorted(take for take in approved if take in picked or combinations.get(take) not in with_pick)


def _combinations(counterparts: Mapping[str, Mapping[str, PricedJob]], takes: Iterable[str]) -> dict[str, str]:
    """The combination each of ``takes`` belongs to (the same in each of its profiles)."""
    return {take: next(iter(counterparts[take].values())).job.combination_id for take in takes}


def _unknown_profile(name: str, names: tuple[str, ...]) -> str:
    shown = one_line(repr(name))
    if not names:
        return f"--profile {shown}: the manifest declares no profiles (add them under profiles:)"
    near = did_you_mean(name, list(names))
    hint = f" (did you mean {near!r}?)" if near else ""
    return f"--profile {shown} is not a profile of the manifest{hint}; profiles: {', '.join(names)}"
