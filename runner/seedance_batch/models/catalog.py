"""The model and price data in force: ``schemas/models.json`` (or a ``--prices`` copy), checked, frozen.

The file is validated against ``schemas/models.schema.json``, then against the
parameter table (:mod:`seedance_batch.expand.params`): every key of a model that is
not one of its own (prices, the download bound, modes, render time) must be the
rule of a request parameter, in the shape that parameter's kind reads.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cache
from pathlib import Path
from types import MappingProxyType
from typing import Any

import jsonschema

from .._data import data_path
from ..errors import Location, PriceFileError
from ..expand.params import CHOICE, INPUT, INTEGER, PARAMS, URLS, Param
from ..safetext import bound
from .media import MediaLimits, bundled_media_limits, media_limits

__all__ = [
    "FALLBACK_MARGIN_MIB", "FALLBACK_MBIT_PER_SECOND", "MIB", "Catalog", "ModelRules", "Rate", "RenderTime", "Span",
    "load_catalog",
]

# A price file without a ``max_file`` bound for a resolution (an older copy, a new
# resolution) gets this one: several times any Seedance output seen (1080p is well under
# 20 Mbit/s), so a real video is never refused, while an endless body still stops.
FALLBACK_MBIT_PER_SECOND = 100.0
FALLBACK_MARGIN_MIB = 8.0
MIB = 1 << 20
# The model data is a handful of levels deep (models.<id>.prices.<res>.<kind>.<field>);
# a file nested deeper is not one (and deep enough, it would exhaust the parser's stack).
MAX_PRICE_FILE_DEPTH = 32
# The keys of a model that are its own, not the rule of a request parameter.
_OWN_KEYS = ("prices", "max_file", "modes", "render")
# The parameters whose rule reads a key of the model's data, by that key.
_RULED: Mapping[str, Param] = {p.rule: p for p in PARAMS if p.rule is not None}
# What each kind's rule data is, in a price file's words.
_RULE_SHAPES = {INTEGER: "a range {min, max}", CHOICE: "a list of choices", URLS: "a number of items"}


@dataclass(frozen=True, slots=True)
class Rate:
    """Price of one second of video for one model, resolution and input kind.

    ``comparison_usd_per_second`` is what the comparison provider (``Catalog.comparison``)
    charges; the price file calls it ``fal_usd_per_second``.
    """

    credits_per_second: int
    comparison_usd_per_second: Decimal


@dataclass(frozen=True, slots=True)
class Span:
    """A whole-number range a model allows, both ends included."""

    low: int
    high: int


@dataclass(frozen=True, slots=True)
class RenderTime:
    """How long a model is expected to take, in service seconds, before any job has finished.

    Assumption: APIDot publishes no render times; the figures in models.json are
    plausible for Seedance 2 and only set the first guess, which a run corrects.
    """

    queue_seconds: float
    base_seconds: float
    per_video_second: float
    resolution_factor: Mapping[str, float]

    def factor(self, resolution: str) -> float:
        """The resolution's factor; 1 (the figures as they are) for one the data does not list."""
        return self.resolution_factor.get(resolution, 1.0)

    def prior_seconds(self, resolution: str, duration: int) -> float:
        """``queue + (base + per_video_second x duration) x factor``: the expected render time."""
        return self.queue_seconds + (self.base_seconds + self.per_video_second * duration) * self.factor(resolution)


@dataclass(frozen=True, slots=True)
class ModelRules:
    """What one model accepts and what it costs.

    ``rules`` holds the model's data for each parameter's rule, keyed as the parameter
    table's ``rule`` names it: a :class:`Span`, a tuple of choices, or a number of items.
    ``modes`` are groups of input fields one request may not mix (frame vs reference).
    """

    id: str
    resolutions: tuple[str, ...]
    rules: Mapping[str, Any]
    # (resolution, video_input) -> rate
    rates: Mapping[tuple[str, bool], Rate]
    modes: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # resolution -> the highest bitrate a finished video may have (bounds a download)
    max_mbit_per_second: Mapping[str, float] = field(default_factory=dict)
    file_margin_bytes: int = int(FALLBACK_MARGIN_MIB * MIB)
    render: RenderTime | None = None

    def rule(self, param: Param) -> Any:
        """The model's data for ``param``'s rule; None when it has none."""
        return self.rules.get(param.rule) if param.rule is not None else None


@dataclass(frozen=True, slots=True)
class Catalog:
    """The model and price data in force, with where it came from and its date."""

    provider: str
    snapshot_date: str
    credit_usd: Decimal
    comparison: str
    models: Mapping[str, ModelRules]
    source: str
    # Which media each request URL field takes (the ``media`` section; absent: the bundled file's).
    media: MediaLimits = field(default_factory=bundled_media_limits)


def load_catalog(path: Path | str | None = None) -> Catalog:
    """Read and validate the model/price file (the bundled one when ``path`` is None)."""
    if path is None:
        return bundled_catalog()
    return _read_catalog(Path(path))


@cache
def bundled_catalog() -> Catalog:
    """The catalog shipped in ``schemas/models.json``, read once."""
    return _read_catalog(data_path("models.json"))


def _read_catalog(path: Path) -> Catalog:
    raw = _read_json(path)
    _check_schema(raw, path)
    models = {model_id: _model_rules(model_id, spec, path) for model_id, spec in raw["models"].items()}
    for rules in models.values():
        _check_rules(rules, path)
    return Catalog(
        provider=raw.get("provider", "APIDot"),
        snapshot_date=raw["snapshot_date"],
        credit_usd=Decimal(str(raw["credit_usd"])),
        comparison=raw.get("comparison", "fal.ai"),
        models=models,
        source=str(path),
        media=media_limits(raw.get("media"), path),
    )


def _check_schema(raw: Any, path: Path) -> None:
    schema = json.loads(data_path("models.schema.json").read_text(encoding="utf-8"))
    try:
        error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(schema).iter_errors(raw))
    except RecursionError:  # past the depth check, still too deep for the validator: refuse it whole
        raise PriceFileError("nested too deeply to be a price file", location=Location(file=str(path))) from None
    if error is not None:
        dotted = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path).lstrip(".")
        # the message quotes the offending value, which may be huge: bounded
        raise PriceFileError(bound(error.message), location=Location(file=str(path), path=bound(dotted, 200) or None))


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


def _model_rules(model_id: str, spec: Mapping[str, Any], path: Path) -> ModelRules:
    max_file = spec.get("max_file", {})
    return ModelRules(
        id=model_id,
        resolutions=tuple(spec["resolutions"]),
        rules=MappingProxyType(_rules_of(model_id, spec, path)),
        rates=_rates(spec["prices"]),
        modes=MappingProxyType(_modes_of(model_id, spec.get("modes", {}), path)),
        max_mbit_per_second={r: float(v) for r, v in max_file.get("mbit_per_second", {}).items()},
        file_margin_bytes=int(float(max_file.get("margin_mib", FALLBACK_MARGIN_MIB)) * MIB),
        render=_render_of(spec.get("render")),
    )


def _rates(prices: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> dict[tuple[str, bool], Rate]:
    rates = {}
    for resolution, kinds in prices.items():
        for kind, rate in kinds.items():
            rates[(resolution, kind == "video_input")] = Rate(
                credits_per_second=int(rate["credits_per_second"]),
                comparison_usd_per_second=Decimal(str(rate["fal_usd_per_second"])),
            )
    return rates


def _rules_of(model_id: str, spec: Mapping[str, Any], path: Path) -> dict[str, Any]:
    """The model's rule data by key, each in the shape its parameter's kind reads."""
    found: dict[str, Any] = {}
    for key, value in spec.items():
        if key in _OWN_KEYS:
            continue
        param = _RULED.get(key)
        where = Location(file=str(path), path=f"models.{model_id}.{key}")
        if param is None:
            known = ", ".join([*_RULED, *_OWN_KEYS])
            raise PriceFileError(f"{key!r} is not the rule of any request parameter; known keys: {known}",
                                 location=where)
        data = _rule_data(param.kind, value)
        if data is None:
            raise PriceFileError(f"expected {_RULE_SHAPES.get(param.kind, 'no rule')} for {param.name}",
                                 location=where)
        found[key] = data
    return found


def _rule_data(kind: str, value: Any) -> Any:
    """``value`` as the rule of a parameter of ``kind`` reads it; None when it has another shape."""
    if kind == INTEGER and isinstance(value, Mapping) and value.keys() == {"min", "max"}:
        return Span(int(value["min"]), int(value["max"]))
    if kind == CHOICE and isinstance(value, list):
        return tuple(value)
    if kind == URLS and isinstance(value, int) and not isinstance(value, bool):
        return value
    return None


def _modes_of(model_id: str, modes: Mapping[str, list[str]], path: Path) -> dict[str, tuple[str, ...]]:
    for mode, names in modes.items():
        strangers = [name for name in names if name not in INPUT]
        if strangers:
            raise PriceFileError(
                f"mode {mode!r} names {_one_of(strangers)}, which is not a request input field",
                location=Location(file=str(path), path=f"models.{model_id}.modes.{mode}"),
                hint=f"input fields: {_one_of(INPUT)}",
            )
    return {mode: tuple(names) for mode, names in modes.items()}


def _render_of(spec: Mapping[str, Any] | None) -> RenderTime | None:
    if spec is None:
        return None
    return RenderTime(
        queue_seconds=float(spec["queue_seconds"]),
        base_seconds=float(spec["base_seconds"]),
        per_video_second=float(spec["per_video_second"]),
        resolution_factor=MappingProxyType({r: float(v) for r, v in spec["resolution_factor"].items()}),
    )


def _one_of(values: Iterable[str]) -> str:
    return ", ".join(values)
