"""``NAME=VALUE`` pairs from the ``simulate`` command line as keyword arguments of a knob record.

``--fault drop=0.1 --webhook shape=flat --answer completed=0.2``: each value takes the
type of the field's default (a number, a word, yes/no). ``seed`` and ``on`` are set by
their own flags, and a secret never on a command line (it would show in ``ps``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import MISSING, fields

from ..errors import UsageError

__all__ = ["parse_knobs"]

_NOT_HERE = frozenset({"seed", "on", "secret"})
_YES = frozenset({"1", "true", "yes", "on"})
_NO = frozenset({"0", "false", "no", "off"})


def parse_knobs(pairs: Iterable[str], cls: type, *, flag: str) -> dict[str, object]:
    """``["drop=0.1", "slow_seconds=5"]`` -> keyword arguments for ``cls`` (Faults, WebhookFaults, Answers)."""
    settable = {f.name: f.default for f in fields(cls) if f.name not in _NOT_HERE and f.default is not MISSING}
    out: dict[str, object] = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        name = name.strip().replace("-", "_")
        if not sep or name not in settable:
            raise UsageError(f"{flag} {pair!r}: expected NAME=VALUE", hint=f"NAME is one of: {', '.join(settable)}")
        out[name] = _value(settable[name], text.strip(), flag, pair)
    return out


def _value(default: object, text: str, flag: str, pair: str) -> object:
    if isinstance(default, bool):
        if text.lower() in _YES | _NO:
            return text.lower() in _YES
        raise UsageError(f"{flag} {pair!r}: {text!r} is not yes or no")
    if isinstance(default, str):
        return text
    try:
        return float(text)
    except ValueError:
        raise UsageError(f"{flag} {pair!r}: {text!r} is not a number") from None
