"""Model rules and prices: check each request against its model, price it.

The rules and prices are data (``schemas/models.json``, or a user's copy passed
with ``--prices``), validated against ``schemas/models.schema.json`` on load.
The same :func:`check_request` serves the planner and the simulator, so the two
can never disagree about what is valid.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema

from ._data import data_path
from .errors import Location, ManifestErrors, PriceFileError, RepeatedProblems
from .expand import Job
from .safetext import bound

__all__ = [
    "Catalog",
    "Cost",
    "ModelRules",
    "PricedJob",
    "Rate",
    "RuleViolation",
    "check_request",
    "load_catalog",
    "max_video_bytes",
    "price_jobs",
    "price_request",
]

# The fields of a request's ``input`` the contract documents; anything else is rejected.
MEDIA_FIELDS = ("image_urls", "reference_image_urls", "reference_video_urls", "reference_audio_urls")
REFERENCE_FIELDS = MEDIA_FIELDS[1:]
INPUT_FIELDS = frozenset({"prompt", "duration", "resolution", "aspect_ratio", "generate_audio", *MEDIA_FIELDS})
# A price file without a ``max_file`` bound for a resolution (an older copy, a new
# resolution) gets this one: several times any Seedance output seen (1080p is well under
# 20 Mbit/s), so a real video is never refused, while an endless body still stops.
FALLBACK_MBIT_PER_SECOND = 100.0
FALLBACK_MARGIN_MIB = 8.0
MIB = 1 << 20
# The model data is a handful of levels deep (models.<id>.prices.<res>.<kind>.<field>);
# a file nested deeper is not one (and deep enough, it would exhaust the parser's stack).
MAX_PRICE_FILE_DEPTH = 32


@dataclass(frozen=True, slots=True)
class Rate:
    """Price of one second of video for one model, resolution and input kind."""

    credits_per_second: int
    fal_usd_per_second: Decimal


@dataclass(frozen=True, slots=True)
class ModelRules:
    """What one model accepts and what it costs."""

    id: str
    resolutions: tuple[str, ...]
    min_duration: int
    max_duration: int
    aspect_ratios: tuple[str, ...]
    max_image_urls: int
    # (resolution, video_input) -> rate
    rates: Mapping[tuple[str, bool], Rate]
    # resolution -> the highest bitrate a finished video may have (bounds a download)
    max_mbit_per_second: Mapping[str, float] = field(default_factory=dict)
    file_margin_bytes: int = int(FALLBACK_MARGIN_MIB * MIB)


@dataclass(frozen=True, slots=True)
class Catalog:
    """The model and price data in force, with where it came from and its date."""

    provider: str
    snapshot_date: str
    credit_usd: Decimal
    comparison: str
    models: Mapping[str, ModelRules]
    source: str


@dataclass(frozen=True, slots=True)
class Cost:
    """What one request costs: APIDot credits and USD, and the comparison price."""

    credits: int
    usd: Decimal
    fal_usd: Decimal


@dataclass(frozen=True, slots=True)
class RuleViolation:
    """One way a request breaks its model's rules. ``field`` is e.g. ``input.duration``."""

    field: str
    message: str


@dataclass(frozen=True, slots=True)
class PricedJob:
    """A job that passed its model's rules, with its cost."""

    job: Job
    cost: Cost


def load_catalog(path: Path | str | None = None) -> Catalog:
    """Read and validate the model/price file (the bundled one when ``path`` is None)."""
    if path is None:
        return _bundled_catalog()
    return _read_catalog(Path(path))


@cache
def _bundled_catalog() -> Catalog:
    return _read_catalog(data_path("models.json"))


def _read_catalog(path: Path) -> Catalog:
    where = Location(file=str(path))
    raw = _read_json(path)
    schema = json.loads(data_path("models.schema.json").read_text(encoding="utf-8"))
    try:
        error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(schema).iter_errors(raw))
    except RecursionError:  # past the depth check, still too deep for the validator: refuse it whole
        raise PriceFileError("nested too deeply to be a price file", location=where) from None
    if error is not None:
        dotted = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path).lstrip(".")
        # the message quotes the offending value, which may be huge: bounded
        raise PriceFileError(bound(error.message), location=Location(file=str(path), path=bound(dotted, 200) or None))
    models = {model_id: _model_rules(model_id, spec) for model_id, spec in raw["models"].items()}
    for rules in models.values():
        _check_rules(rules, path)
    return Catalog(
        provider=raw.get("provider", "APIDot"),
        snapshot_date=raw["snapshot_date"],
        credit_usd=Decimal(str(raw["credit_usd"])),
        comparison=raw.get("comparison", "fal.ai"),
        models=models,
        source=str(path),
    )


def _read_json(path: Path) -> Any:
    """The JSON value of the price file; every way it cannot be read is one PriceFileError."""
    where = Location(file=str(path))
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PriceFileError("price file not found", location=where) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PriceFileError(f"cannot read price file: {exc}", location=where) from None
    except json.JSONDecodeError as exc:
        raise PriceFileError(f"not valid JSON: {exc.msg}", location=Location(str(path), exc.lineno, exc.colno)) from None
    except (RecursionError, ValueError) as exc:  # nested past the parser's stack; a 5000-digit number
        why = "nested too deeply" if isinstance(exc, RecursionError) else bound(str(exc), 200)
        raise PriceFileError(f"not a usable JSON file: {why}", location=where) from None
    if _depth(raw) > MAX_PRICE_FILE_DEPTH:
        raise PriceFileError(f"nested more than {MAX_PRICE_FILE_DEPTH} levels deep; not a price file",
                             location=where)
    return raw


def _depth(value: Any) -> int:
    """How deeply ``value`` nests (without recursion: it may be nested deep)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, level)
            if level > MAX_PRICE_FILE_DEPTH:
                break
            stack.extend((child, level + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def _check_rules(rules: ModelRules, path: Path) -> None:
    unpriced = [r for r in rules.resolutions if (r, False) not in rules.rates]
    if unpriced:
        raise PriceFileError(
            f"resolution(s) {', '.join(unpriced)} have no price",
            location=Location(file=str(path), path=f"models.{rules.id}.prices"),
            hint="every listed resolution needs text_or_image and video_input rates",
        )
    unknown = [r for r in rules.max_mbit_per_second if r not in rules.resolutions]
    if unknown:
        raise PriceFileError(
            f"resolution(s) {', '.join(unknown)} are not offered by {rules.id}",
            location=Location(file=str(path), path=f"models.{rules.id}.max_file.mbit_per_second"),
            hint=f"list only its resolutions: {_one_of(rules.resolutions)}",
        )


def _model_rules(model_id: str, spec: Mapping[str, Any]) -> ModelRules:
    max_file = spec.get("max_file", {})
    rates = {}
    for resolution, kinds in spec["prices"].items():
        for kind, rate in kinds.items():
            rates[(resolution, kind == "video_input")] = Rate(
                credits_per_second=int(rate["credits_per_second"]),
                fal_usd_per_second=Decimal(str(rate["fal_usd_per_second"])),
            )
    return ModelRules(
        id=model_id,
        resolutions=tuple(spec["resolutions"]),
        min_duration=int(spec["duration"]["min"]),
        max_duration=int(spec["duration"]["max"]),
        aspect_ratios=tuple(spec["aspect_ratios"]),
        max_image_urls=int(spec["max_image_urls"]),
        rates=rates,
        max_mbit_per_second={r: float(v) for r, v in max_file.get("mbit_per_second", {}).items()},
        file_margin_bytes=int(float(max_file.get("margin_mib", FALLBACK_MARGIN_MIB)) * MIB),
    )


def _one_of(values: Iterable[str]) -> str:
    return ", ".join(values)


def check_request(request: Mapping[str, Any], catalog: Catalog) -> list[RuleViolation]:
    """Every way ``request`` (a submit body) breaks its model's rules; empty when valid."""
    problems: list[RuleViolation] = []
    model_id = request.get("model")
    rules = catalog.models.get(model_id) if isinstance(model_id, str) else None
    if rules is None:
        problems.append(RuleViolation("model", f"unknown model {model_id!r}; known models: {_one_of(catalog.models)}"))
    data = request.get("input")
    if not isinstance(data, Mapping):
        problems.append(RuleViolation("input", "input must be an object"))
        return problems
    for name in sorted(set(data) - INPUT_FIELDS):
        problems.append(RuleViolation(f"input.{name}", f"unknown input field {name!r}"))
    prompt = data.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        problems.append(RuleViolation("input.prompt", "prompt is required and must be non-empty text"))
    problems.extend(_check_duration(data.get("duration"), rules))
    problems.extend(_check_choices(data, rules))
    problems.extend(_check_media(data, rules))
    return problems


def _check_duration(duration: Any, rules: ModelRules | None) -> list[RuleViolation]:
    low, high = (rules.min_duration, rules.max_duration) if rules else (4, 15)
    if isinstance(duration, bool) or not isinstance(duration, int):
        return [RuleViolation("input.duration", f"duration must be a whole number of seconds from {low} to {high}, got {duration!r}")]
    if not low <= duration <= high:
        return [RuleViolation("input.duration", f"duration {duration} is out of range; allowed: {low} to {high} seconds")]
    return []


def _check_choices(data: Mapping[str, Any], rules: ModelRules | None) -> list[RuleViolation]:
    problems = []
    resolution = data.get("resolution")
    if resolution is None:
        problems.append(RuleViolation("input.resolution", "resolution is required"))
    elif rules is not None and resolution not in rules.resolutions:
        problems.append(RuleViolation(
            "input.resolution",
            f"resolution {resolution!r} is not offered by {rules.id}; allowed: {_one_of(rules.resolutions)}",
        ))
    ratio = data.get("aspect_ratio")
    if ratio is not None and rules is not None and ratio not in rules.aspect_ratios:
        problems.append(RuleViolation(
            "input.aspect_ratio", f"aspect ratio {ratio!r} is not allowed; allowed: {_one_of(rules.aspect_ratios)}"
        ))
    audio = data.get("generate_audio")
    if audio is not None and not isinstance(audio, bool):
        problems.append(RuleViolation("input.generate_audio", f"generate_audio must be true or false, got {audio!r}"))
    return problems


def _check_media(data: Mapping[str, Any], rules: ModelRules | None) -> list[RuleViolation]:
    problems = []
    for name in MEDIA_FIELDS:
        urls = data.get(name)
        if urls is None:
            continue
        if not isinstance(urls, Sequence) or isinstance(urls, str):
            problems.append(RuleViolation(f"input.{name}", f"{name} must be a list of URLs"))
            continue
        for index, url in enumerate(urls):
            if not _is_http_url(url):
                problems.append(RuleViolation(
                    f"input.{name}[{index}]", f"{url!r} is not an absolute http(s) URL"
                ))
    images = data.get("image_urls")
    limit = rules.max_image_urls if rules else 2
    if isinstance(images, Sequence) and not isinstance(images, str) and len(images) > limit:
        problems.append(RuleViolation(
            "input.image_urls", f"image_urls has {len(images)} URLs; at most {limit} (first and last frame)"
        ))
    references = [name for name in REFERENCE_FIELDS if data.get(name)]
    if data.get("image_urls") and references:
        problems.append(RuleViolation(
            "input.image_urls",
            f"frame mode (image_urls) and reference mode ({', '.join(references)}) cannot be mixed in one request",
        ))
    return problems


def _is_http_url(url: Any) -> bool:
    if not isinstance(url, str):
        return False
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def price_request(request: Mapping[str, Any], catalog: Catalog) -> Cost:
    """Cost of one valid request: rate(model, resolution, video input) x duration."""
    data = request["input"]
    rules = catalog.models[request["model"]]
    video_input = bool(data.get("reference_video_urls"))
    rate = rules.rates[(data["resolution"], video_input)]
    seconds = int(data["duration"])
    credits = rate.credits_per_second * seconds
    return Cost(credits=credits, usd=catalog.credit_usd * credits, fal_usd=rate.fal_usd_per_second * seconds)


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
        prompt = data.get("prompt") if isinstance(data, Mapping) else None
        if not isinstance(prompt, str) or not prompt.strip():
            problems = [*problems, RuleViolation("input.prompt", "prompt is required and must be non-empty text")]
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
    signature = (model, *[(k, tuple(v) if v.__class__ is list else v) for k, v in data.items() if k != "prompt"])
    try:
        hash(signature)
    except TypeError:  # a value of an unexpected type: still one verdict per distinct value
        return (model, repr(sorted((k, v) for k, v in data.items() if k != "prompt")))
    return signature


def _verdict(request: Mapping[str, Any], catalog: Catalog) -> tuple[list[RuleViolation], Cost | None]:
    """The rule violations (but the prompt's) and the price of one parameter set."""
    data = request.get("input")
    if isinstance(data, Mapping):
        request = {**request, "input": {**data, "prompt": "checked per job"}}
    problems = check_request(request, catalog)
    return problems, (None if problems else price_request(request, catalog))


def _add_violation(violations: RepeatedProblems, job: Job, problem: RuleViolation) -> None:
    # Point at the line that set the offending field (e.g. a matrix value), not just the shot.
    name = problem.field.removeprefix("input.").split("[", 1)[0]
    origin = job.origins.get(name, job.location)
    violations.add((problem.message, origin.file, origin.line, origin.col), problem.message, origin, job.label)
