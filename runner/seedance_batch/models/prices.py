"""What a request costs, and the jobs of a manifest checked and priced together."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from ..errors import ManifestErrors, RepeatedProblems
from ..expand.params import PARAMS, TEXT
from .catalog import FALLBACK_MARGIN_MIB, FALLBACK_MBIT_PER_SECOND, MIB, Catalog
from .rules import RuleViolation, check_request, check_value

if TYPE_CHECKING:
    from ..expand import Job

__all__ = ["VIDEO_INPUT", "Cost", "PricedJob", "max_video_bytes", "price_jobs", "price_request"]

# The price file's ``video_input`` rate applies when a request has this field.
VIDEO_INPUT = "reference_video_urls"
# Parameters that differ in (nearly) every job, so are checked per job, not per parameter set:
# the texts (the prompt), and the seed (every take has its own: keyed into the parameter set,
# 100,000 takes would be 100,000 sets, eight times the plan's pricing time).
_PER_JOB = tuple(p for p in PARAMS if p.kind == TEXT and p.in_input)
_PER_TAKE = tuple(p for p in PARAMS if p.name == "seed")
_PER_JOB_NAMES = frozenset(p.name for p in (*_PER_JOB, *_PER_TAKE))


@dataclass(frozen=True, slots=True)
class Cost:
    """What one request costs: APIDot credits and USD, and what the comparison provider would charge."""

    credits: int
    usd: Decimal
    comparison_usd: Decimal


@dataclass(frozen=True, slots=True)
class PricedJob:
    """A job that passed its model's rules, with its cost."""

    job: Job
    cost: Cost


def price_request(request: Mapping[str, Any], catalog: Catalog) -> Cost:
    """Cost of one valid request: rate(model, resolution, video input) x duration."""
    data = request["input"]
    rules = catalog.models[request["model"]]
    rate = rules.rates[(data["resolution"], bool(data.get(VIDEO_INPUT)))]
    seconds = int(data["duration"])
    credits = rate.credits_per_second * seconds
    return Cost(credits=credits, usd=catalog.credit_usd * credits,
                comparison_usd=rate.comparison_usd_per_second * seconds)


def max_video_bytes(request: Mapping[str, Any], catalog: Catalog) -> int:
    """The most bytes the finished video of ``request`` may take: a download past it is refused.

    The model's highest bitrate for the request's resolution (``max_file.mbit_per_second``
    in the model data) times its duration, plus the model's margin (``max_file.margin_mib``:
    the container, the audio track, a slow first second).
    """
    model = request.get("model")
    rules = catalog.models.get(model) if isinstance(model, str) else None
    data = request.get("input")
    data = data if isinstance(data, Mapping) else {}
    duration = data.get("duration")
    seconds = duration if isinstance(duration, int) and not isinstance(duration, bool) and duration > 0 else 1
    if rules is None:
        return int(FALLBACK_MBIT_PER_SECOND * 1_000_000 / 8 * seconds + FALLBACK_MARGIN_MIB * MIB)
    mbps = rules.max_mbit_per_second.get(str(data.get("resolution")), FALLBACK_MBIT_PER_SECOND)
    return int(mbps * 1_000_000 / 8 * seconds) + rules.file_margin_bytes


def price_jobs(jobs: Iterable[Job], catalog: Catalog) -> list[PricedJob]:
    """Check every job against its model and price it; all violations are raised together.

    Jobs of one campaign share a handful of parameter sets, so the rules and the
    price are worked out once per set (everything but the prompt) and shared.
    """
    priced: list[PricedJob] = []
    violations = RepeatedProblems()
    verdicts: dict[tuple[Any, ...], tuple[list[RuleViolation], Cost | None]] = {}
    for job in jobs:
        request = job.request
        data = request.get("input")
        signature = _signature(request.get("model"), data)
        verdict = verdicts.get(signature)
        if verdict is None:
            verdict = verdicts[signature] = _verdict(request, catalog)
        problems, cost = verdict
        values = data if isinstance(data, Mapping) else {}
        for param in _PER_JOB:  # the texts every job has its own of (the prompt)
            value = values.get(param.name)
            if value.__class__ is not str or not value.strip():  # the usual answer, without a call
                problems = [*problems, *check_value(param, value, None)]
        for param in _PER_TAKE:  # checked against the job's model's range (an unknown model is one problem already)
            value = values.get(param.name)
            if value is not None:
                model = request.get("model")
                rules = catalog.models.get(model) if isinstance(model, str) else None
                problems = [*problems, *check_value(param, value, rules)]
        if problems:
            for problem in problems:
                _add_violation(violations, job, problem)
        else:
            priced.append(PricedJob(job, cost))  # type: ignore[arg-type]
    ManifestErrors.raise_if_any(violations.errors())
    return priced


def _signature(model: Any, data: Any) -> tuple[Any, ...]:
    if not isinstance(data, Mapping):
        return (model, repr(data))
    signature = (model, *[(k, tuple(v) if v.__class__ is list else v) for k, v in data.items() if k not in _PER_JOB_NAMES])
    try:
        hash(signature)
    except TypeError:  # a value of an unexpected type: still one verdict per distinct value
        return (model, repr(sorted((k, v) for k, v in data.items() if k not in _PER_JOB_NAMES)))
    return signature


def _verdict(request: Mapping[str, Any], catalog: Catalog) -> tuple[list[RuleViolation], Cost | None]:
    """The rule violations (but the per-job texts') and the price of one parameter set."""
    data = request.get("input")
    if isinstance(data, Mapping):
        own = {k: v for k, v in data.items() if k not in _PER_JOB_NAMES}  # the seed is checked per job too
        request = {**request, "input": {**own, **{p.name: "checked per job" for p in _PER_JOB}}}
    problems = check_request(request, catalog)
    return problems, (None if problems else price_request(request, catalog))


def _add_violation(violations: RepeatedProblems, job: Job, problem: RuleViolation) -> None:
    # Point at the line that set the offending field (e.g. a matrix value), not just the shot.
    name = problem.field.removeprefix("input.").split("[", 1)[0]
    origin = job.origins.get(name, job.location)
    violations.add((problem.message, origin.file, origin.line, origin.col), problem.message, origin, job.label)
