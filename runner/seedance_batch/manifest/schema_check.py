"""Check data against schemas/manifest.schema.json and say what is wrong in words.

jsonschema's own messages ("Additional properties are not allowed ...") are
rewritten into one line each that names the key, says what is allowed, and
suggests the nearest known key for a typo. Positions come from the caller's
``locate`` (a path in the data -> Location in the YAML source). A value is
quoted in a message at most ``yamlsrc.MAX_SHOWN`` characters long.

``pattern`` means what it means in ECMA-262, the dialect JSON Schema names and
editors use: ``$`` is the end of the text. Python's ``$`` also matches before a
final newline, so ``name: "rt\\n"`` would pass ``^[a-z0-9._-]*$`` and make a
folder with a newline; :func:`ecma_pattern` compiles patterns with ``\\Z`` for
``$``. The schema stays portable, and every pattern in it (``propertyNames``
too) is checked the way editors check it.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Callable, Iterable
from functools import cache
from typing import Any, Protocol

import jsonschema
from jsonschema.exceptions import ValidationError, best_match

from .._data import data_path
from ..errors import Location, ManifestError
from ..expand.params import CHOICE, INTEGER, MODEL, PARAMS
from .yamlsrc import shown

__all__ = ["Locate", "axis_value_errors", "did_you_mean", "ecma_pattern", "manifest_errors", "manifest_schema"]

# The catalog (schemas/models.json or --prices) is the authority on a parameter's model,
# choices and range; the schema's enums and bounds exist for editor completion, so the
# loader leaves them to models.check_request. (A list's maxItems stays the schema's: it
# holds at load for every model, and the catalog's own limit is checked again per job.)
_CATALOG_KEYWORDS = {MODEL: ("enum",), CHOICE: ("enum",), INTEGER: ("minimum", "maximum")}
_CATALOG_OWNED = frozenset(
    (param.name, keyword)
    for param in PARAMS if param.kind == MODEL or param.rule is not None
    for keyword in _CATALOG_KEYWORDS.get(param.kind, ())
)

_DID_YOU_MEAN = re.compile(r"did you mean ('[^']*')\?")
_TYPE_WORDS = {
    "object": "a mapping", "array": "a list", "string": "text", "integer": "a whole number",
    "number": "a number", "boolean": "true or false", "null": "nothing",
}


class Locate(Protocol):
    """Where a path in the data was written (``at_key``: the key itself)."""

    def __call__(self, path: tuple[str | int, ...], at_key: bool = False) -> Location: ...


@cache
def manifest_schema() -> dict[str, Any]:
    """The manifest JSON Schema (schemas/manifest.schema.json) as data."""
    schema: dict[str, Any] = json.loads(data_path("manifest.schema.json").read_text(encoding="utf-8"))
    return schema


@cache
def ecma_pattern(pattern: str) -> re.Pattern[str]:
    """``pattern`` compiled with ECMA-262's ``$`` (the end of the text), for Python's ``re``.

    Every unescaped ``$`` outside a character class becomes ``\\Z``. The schema's
    patterns avoid the other constructs whose meaning differs (``\\d``, ``\\w``,
    ``\\b``, ``.``); tests/test_hostile_manifests.py keeps them so.
    """
    out: list[str] = []
    index, in_class = 0, False
    while index < len(pattern):
        char = pattern[index]
        if char == "\\":  # an escape: copied as it is, with the character it escapes
            out.append(pattern[index:index + 2])
            index += 2
            continue
        if in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True  # until the first unescaped "]", as in ECMA-262
        elif char == "$":
            char = "\\Z"
        out.append(char)
        index += 1
    return re.compile("".join(out))


def _pattern(validator: Any, rule: str, instance: Any, schema: dict[str, Any]) -> Iterable[ValidationError]:
    """The ``pattern`` keyword with ECMA-262 semantics (:func:`ecma_pattern`)."""
    if validator.is_type(instance, "string") and not ecma_pattern(rule).search(instance):
        yield ValidationError(f"{shown(instance)} does not match {rule!r}")


_Validator = jsonschema.validators.extend(jsonschema.Draft202012Validator, {"pattern": _pattern})


@cache
def _validator(definition: str | None = None) -> Any:
    schema = manifest_schema()
    if definition is not None:
        schema = {"$ref": f"#/$defs/{definition}", "$defs": schema["$defs"]}
    return _Validator(schema)


def manifest_errors(data: Any, locate: Locate) -> list[ManifestError]:
    """Every schema violation in a manifest, one error each, in source order."""
    if not isinstance(data, dict):
        got = "an empty file" if data is None else _describe(data)
        return [ManifestError(
            f"a manifest is a mapping with version, name and shots; got {got}", location=locate(())
        )]
    return _errors(_validator().iter_errors(data), locate)


def axis_value_errors(values: Any, locate: Locate) -> list[ManifestError]:
    """Schema violations of a list of matrix values loaded from a ``from:`` file."""
    return _errors(_validator("axisValues").iter_errors(values), locate)


def _errors(found: Iterable[ValidationError], locate: Locate) -> list[ManifestError]:
    explained = [(path, at_key, message) for top in found for path, at_key, message in _explain(best_match([top]))
                 if message is not None]
    # "missing 'shots'" says nothing new next to "unknown key 'shot' (did you mean 'shots'?)".
    typos = {(path[:-1], m.group(1)) for path, _, message in explained
             if message.startswith("unknown key") and (m := _DID_YOU_MEAN.search(message))}
    errors: dict[tuple[Any, ...], ManifestError] = {}
    for path, at_key, message in explained:
        if message.startswith("missing required key ") and (path, message[len("missing required key "):]) in typos:
            continue
        errors.setdefault((path, message), ManifestError(message, location=locate(path, at_key)))
    return list(errors.values())


def _explain(error: ValidationError) -> list[tuple[tuple[Any, ...], bool, str | None]]:
    """(path, point at the key?, message) for one jsonschema error; None drops it."""
    path = tuple(error.absolute_path)
    kind = error.validator
    if "propertyNames" in error.relative_schema_path:
        return [((*path, error.instance), True, _bad_key(error))]
    if kind == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        extras = [k for k in error.instance if k not in allowed]
        return [((*path, key), True, _unknown_key(key, allowed)) for key in extras]
    if kind == "required":
        missing = [k for k in error.validator_value if k not in error.instance]
        return [(path, False, f"missing required key {name!r}") for name in missing]
    if path and (path[-1], kind) in _CATALOG_OWNED:
        return [(path, False, None)]
    return [(path, False, _message(error))]


def _message(error: ValidationError) -> str:
    value, kind, rule = error.instance, error.validator, error.validator_value
    schema = error.schema if isinstance(error.schema, dict) else {}
    simple: dict[str, Callable[[], str]] = {
        "type": lambda: f"expected {_expected(rule)}, got {_describe(value)}",
        "enum": lambda: f"{shown(value)} is not allowed; allowed: {', '.join(map(str, rule))}" + _suggest(value, rule),
        "const": lambda: f"{shown(value)} is not supported; allowed: {rule!r}",
        "pattern": lambda: f"{shown(value)} is not allowed; {schema.get('patternErrorMessage') or 'must match ' + rule}",
        "minItems": lambda: "must not be empty" if rule == 1 else f"needs at least {rule} items",
        "maxItems": lambda: f"has {len(value)} items; at most {rule} allowed",
        "minLength": lambda: "must not be empty",
        "maxLength": lambda: f"is longer than {rule} characters",
        "minProperties": lambda: "must not be empty",
        "minimum": lambda: f"{shown(value)} is too small; at least {rule}",
        "maximum": lambda: f"{shown(value)} is too large; at most {rule}",
        "exclusiveMinimum": lambda: f"{shown(value)} is too small; must be more than {rule}",
        "not": lambda: f"{shown(value)} is reserved; choose another name",
    }
    if kind in simple:
        return simple[kind]()
    if kind in ("anyOf", "oneOf"):
        what = (schema.get("description") or schema.get("title") or "a valid value").rstrip(".")
        return f"not valid here ({_describe(value)}); expected {what[0].lower()}{what[1:]}"
    return str(error.message)


def _bad_key(error: ValidationError) -> str:
    name = error.instance
    if error.validator == "not":
        return f"key {shown(name)} is reserved; choose another name"
    hint = error.schema.get("patternErrorMessage") if isinstance(error.schema, dict) else None
    return f"key {shown(name)} is not allowed; {hint or 'must match ' + str(error.validator_value)}"


def _unknown_key(key: Any, allowed: list[str]) -> str:
    return f"unknown key {shown(key)}{_suggest(key, allowed)}; allowed: {', '.join(allowed)}"


def did_you_mean(word: Any, choices: Iterable[Any]) -> str | None:
    """The nearest of ``choices`` to a mistyped ``word``, if any is near enough."""
    if not isinstance(word, str):
        return None
    near = difflib.get_close_matches(word, [c for c in choices if isinstance(c, str)], n=1, cutoff=0.6)
    return near[0] if near else None


def _suggest(word: Any, choices: Iterable[Any]) -> str:
    near = did_you_mean(word, choices)
    return f" (did you mean {near!r}?)" if near else ""


def _expected(rule: Any) -> str:
    kinds = [rule] if isinstance(rule, str) else list(rule)
    return " or ".join(_TYPE_WORDS.get(k, k) for k in kinds)


def _describe(value: Any) -> str:
    """A value's kind in the user's words, with the value when short."""
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"{str(value).lower()}"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    kind = "text" if isinstance(value, str) else "a number"
    shown = repr(value)
    return f"{kind} {shown}" if len(shown) <= 40 else kind
