"""A request against its model's rules: one generic check per kind of parameter, read from the table.

Which fields a request may have, and how each is checked, come from the parameter
table (:mod:`seedance_batch.expand.params`); the limits come from the model's data
in models.json (its choices, ranges, list limits and exclusive modes). The same
:func:`check_request` serves the planner and the simulator, so the two can never
disagree about what is valid.

Problems come in a fixed order: the model, the input's shape and unknown fields,
then every parameter's value in table order, then list limits, then modes.
When the model is unknown, only what needs no model is checked (types, URLs):
no limit is made up for a model nobody described.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from ..expand.params import BOOLEAN, CHOICE, IN_REQUEST_ORDER, INPUT, INTEGER, TEXT, URLS, Param
from .catalog import Catalog, ModelRules, Span

__all__ = ["RuleViolation", "check_request", "check_value"]

_INPUT = frozenset(INPUT)
_INPUT_PARAMS = tuple(p for p in IN_REQUEST_ORDER if p.in_input)
_LIMITED = tuple(p for p in _INPUT_PARAMS if p.kind == URLS and p.rule is not None)


@dataclass(frozen=True, slots=True)
class RuleViolation:
    """One way a request breaks its model's rules. ``field`` is e.g. ``input.duration``."""

    field: str
    message: str


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
    for name in sorted(set(data) - _INPUT):
        problems.append(RuleViolation(f"input.{name}", f"unknown input field {name!r}"))
    for param in _INPUT_PARAMS:
        problems += check_value(param, data.get(param.name), rules)
    if rules is not None:
        for param in _LIMITED:
            problems += _too_many(param, data.get(param.name), rules.rule(param))
        problems += _mixed_modes(data, rules)
    return problems


def check_value(param: Param, value: Any, rules: ModelRules | None) -> list[RuleViolation]:
    """The problems of one parameter's value (None: not set) for a model (None: unknown)."""
    if value is None and not param.required:
        return []
    check = _CHECKS.get(param.kind)
    return check(param, value, rules) if check is not None else []


def _text(param: Param, value: Any, rules: ModelRules | None) -> list[RuleViolation]:
    if isinstance(value, str) and value.strip():
        return []
    need = "is required and must be" if param.required else "must be"
    return [RuleViolation(param.field, f"{param.said} {need} non-empty text")]


def _integer(param: Param, value: Any, rules: ModelRules | None) -> list[RuleViolation]:
    span = rules.rule(param) if rules is not None else None
    unit = f" {param.unit}" if param.unit else ""
    if isinstance(value, bool) or not isinstance(value, int):
        within = f" from {span.low} to {span.high}" if isinstance(span, Span) else ""
        of = f" of{unit}" if unit else ""
        return [RuleViolation(param.field, f"{param.said} must be a whole number{of}{within}, got {value!r}")]
    if isinstance(span, Span) and not span.low <= value <= span.high:
        return [RuleViolation(param.field, f"{param.said} {value} is out of range; allowed: {span.low} to {span.high}{unit}")]
    return []


def _choice(param: Param, value: Any, rules: ModelRules | None) -> list[RuleViolation]:
    if value is None:
        return [RuleViolation(param.field, f"{param.said} is required")]
    choices = rules.rule(param) if rules is not None else None
    if rules is None or choices is None or value in choices:
        return []
    refused = param.refused.format(model=rules.id)
    return [RuleViolation(param.field, f"{param.said} {value!r} {refused}; allowed: {_one_of(choices)}")]


def _boolean(param: Param, value: Any, rules: ModelRules | None) -> list[RuleViolation]:
    if isinstance(value, bool):
        return []
    return [RuleViolation(param.field, f"{param.said} must be true or false, got {value!r}")]


def _urls(param: Param, value: Any, rules: ModelRules | None) -> list[RuleViolation]:
    if not _is_list(value):
        return [RuleViolation(param.field, f"{param.said} must be a list of URLs")]
    return [RuleViolation(f"{param.field}[{index}]", f"{url!r} is not an absolute http(s) URL")
            for index, url in enumerate(value) if not _is_http_url(url)]


_CHECKS: Mapping[str, Callable[[Param, Any, ModelRules | None], list[RuleViolation]]] = {
    TEXT: _text, INTEGER: _integer, CHOICE: _choice, BOOLEAN: _boolean, URLS: _urls,
}


def _too_many(param: Param, value: Any, limit: Any) -> list[RuleViolation]:
    if not isinstance(limit, int) or not _is_list(value) or len(value) <= limit:
        return []
    why = f" ({param.limit_note})" if param.limit_note else ""
    return [RuleViolation(param.field, f"{param.said} has {len(value)} URLs; at most {limit}{why}")]


def _mixed_modes(data: Mapping[str, Any], rules: ModelRules) -> list[RuleViolation]:
    """One problem when the request uses fields of more than one of the model's modes."""
    used = [(mode, present) for mode, names in rules.modes.items() if (present := [n for n in names if data.get(n)])]
    if len(used) < 2:
        return []
    modes = " and ".join(f"{mode} mode ({', '.join(present)})" for mode, present in used)
    return [RuleViolation(f"input.{used[0][1][0]}", f"{modes} cannot be mixed in one request")]


def _is_list(value: Any) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, str)


def _is_http_url(url: Any) -> bool:
    if not isinstance(url, str):
        return False
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def _one_of(values: Iterable[str]) -> str:
    return ", ".join(values)
