"""JSON data files held to what YAML already is, with line:col for what is refused.

No duplicate keys (json keeps the last one silently), no lone surrogates
(``"\\ud800"``: text no file, terminal or encoder can write), no whole numbers
beyond 64 bits, finite numbers only. The fast C decoder reads the file; only when
it met something to refuse does a scan by tokens find where.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from typing import Any

from ..errors import Location, ManifestError
from ..safetext import bound
from .yamlsrc import MAX_SHOWN, SURROGATE_PROBLEM, bounded_int, int_problem, shown

__all__ = ["parse_json"]

# A surrogate escape in JSON: a backslash run of odd length (so the last one escapes
# the 'u'; backslashes occur only inside strings) and a code from D800 to DFFF.
_SURROGATE_ESCAPE = re.compile(r"(\\+)u([dD][89a-fA-F][0-9a-fA-F]{2})")
# Only a JSON text with one of these can hold a whole number beyond 64 bits (19 digits
# or more) or a float that overflows (an exponent of 3 digits): a cheap search decides
# whether the slow scan by tokens must look.
_LONG_NUMBER = re.compile(r"[0-9]{19}|[eE][+-]?[0-9]{3}")
# What that scan stops at: strings, brackets, the numbers above and the non-finite
# constants. Short numbers, commas and literals are skipped in C, not in Python.
_NUMBER_START = r"(?<![0-9.eE+\-])-?"
_JSON_TOKEN = re.compile(
    rf'["{{}}\[\]]|{_NUMBER_START}[0-9]{{19,}}[0-9.eE+\-]*|{_NUMBER_START}[0-9][0-9.]*[eE][+\-]?[0-9]{{3,}}'
    r"|NaN|-?Infinity"
)
_JSON_SPACE = frozenset(" \t\n\r")
# The decoder's own string reader (C), so keys compare as the decoder built them.
_scanstring: Callable[[str, int], tuple[str, int]] = json.decoder.scanstring  # type: ignore[attr-defined]


class _Recheck(Exception):
    """A decoder hook met something to refuse; :func:`_token_problem` says what and where."""


def _not_finite(constant: str) -> float:
    raise _Recheck  # NaN, Infinity, -Infinity: as in YAML manifests, refused


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    mapping = dict(pairs)
    if len(mapping) != len(pairs):  # json keeps the last of equal keys silently; YAML refuses them
        raise _Recheck
    return mapping


def parse_json(text: str, shown: str) -> Any:
    """The value of a JSON data file (named ``shown`` in messages); a ManifestError for what is refused."""
    try:
        # No parse_int/parse_float hooks: a Python call per number would cost seconds.
        values = json.loads(text, parse_constant=_not_finite, object_pairs_hook=_unique)
        suspect = _LONG_NUMBER.search(text) is not None
    except json.JSONDecodeError as exc:
        raise ManifestError(f"malformed JSON: {exc.msg}", location=Location(file=shown, line=exc.lineno, col=exc.colno)) from None
    except RecursionError:
        raise ManifestError("JSON nested too deeply", location=Location(file=shown)) from None
    except (_Recheck, ValueError):  # ValueError: a whole number past Python's 4,300 digits
        values, suspect = None, True
    found = [p for p in (_surrogate_problem(text), _token_problem(text) if suspect else None) if p is not None]
    if found or values is None:
        message, offset = min(found, key=lambda p: p[1]) if found else ("cannot be read as plain data", 0)
        line, col = _line_col(text, offset)
        raise ManifestError(message, location=Location(file=shown, line=line, col=col))
    return values


def _surrogate_problem(text: str) -> tuple[str, int] | None:
    """The first lone surrogate escape of a valid JSON text (a high one then a low one make one character)."""
    pair_end = -1
    for match in _SURROGATE_ESCAPE.finditer(text):
        if len(match.group(1)) % 2 == 0:  # "\\ud800" in JSON: an escaped backslash, then text
            continue
        start, code = match.end(1) - 1, int(match.group(2), 16)
        if code >= 0xDC00 and start == pair_end:  # the low half of the pair just seen
            continue
        low = _SURROGATE_ESCAPE.match(text, match.end())
        if code < 0xDC00 and low is not None and len(low.group(1)) == 1 and int(low.group(2), 16) >= 0xDC00:
            pair_end = match.end()
            continue
        return SURROGATE_PROBLEM, start
    return None


def _token_problem(text: str) -> tuple[str, int] | None:
    """The first duplicate key or unusable number of a valid JSON text, and its offset.

    A scan by tokens (keys decoded as the decoder does), run only when the fast
    decoder found something to refuse: it knows what, not where.
    """
    stack: list[dict[str, int]] = [{}]  # per open container: an object's keys and their offsets ({} for a list)
    index, end = 0, len(text)
    while (match := _JSON_TOKEN.search(text, index)) is not None:
        start = match.start()
        token = text[start]
        if token == '"':
            string, index = _scanstring(text, start + 1)
            after = index
            while after < end and text[after] in _JSON_SPACE:
                after += 1
            if after < end and text[after] == ":":  # in valid JSON, a string followed by ':' is a key
                keys = stack[-1]
                if string in keys:
                    first = _line_col(text, keys[string])[0]
                    return f"duplicate key {shown(string)} (first written on line {first}); keep one", start
                keys[string] = start
        elif token in "{[":
            stack.append({})
            index = start + 1
        elif token in "]}":
            stack.pop()
            index = start + 1
        else:
            index = match.end()
            if (problem := _number_problem(match.group())) is not None:
                return problem, start
    return None


def _number_problem(token: str) -> str | None:
    if token.lstrip("-").isdigit():
        return int_problem(token) if bounded_int(token) is None else None
    if not math.isfinite(float(token)):
        return f"{bound(token, MAX_SHOWN)} is not a finite number; give finite numbers only"
    return None


def _line_col(text: str, offset: int) -> tuple[int, int]:
    return text.count("\n", 0, offset) + 1, offset - text.rfind("\n", 0, offset)
