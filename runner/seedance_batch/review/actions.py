"""A reviewer's action, as the page POSTs it: read, checked, and made a ledger change.

The body is one small JSON object, ``{"key": JOB_KEY, "action": ACTION}`` (and
``"note": TEXT`` for ``note``), at most :data:`MAX_BODY_BYTES`. Anything else is a
:class:`BadAction` saying what is wrong, answered 400: the page shows it, the ledger is
not touched.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..ledger import DecisionChange, Verdict
from ..ledger.decisions import MAX_NOTE_CHARS

__all__ = ["ACTIONS", "MAX_BODY_BYTES", "Action", "BadAction", "needs_video", "read_action"]

# A note of MAX_NOTE_CHARS, every character escaped as \uXXXX (6 bytes), and room for the rest.
MAX_BODY_BYTES = 6 * MAX_NOTE_CHARS + 1024

# action -> what it changes (a note's text is the body's)
ACTIONS: Mapping[str, DecisionChange] = {
    "approve": DecisionChange(verdict=Verdict.APPROVED),
    "reject": DecisionChange(verdict=Verdict.REJECTED),
    "clear": DecisionChange(verdict=Verdict.UNDECIDED),
    "pick": DecisionChange(picked=True),
    "unpick": DecisionChange(picked=False),
    "note": DecisionChange(),
}
# Approving or picking a take says "I saw it, this one": only a take whose video is there.
_SEEN = frozenset({"approve", "pick"})


class BadAction(ValueError):
    """A body that is not an action the review takes; the message says why (one line)."""


@dataclass(frozen=True, slots=True)
class Action:
    """One checked action: which job, its name, and the change for the ledger."""

    key: str
    name: str
    change: DecisionChange


def read_action(body: bytes) -> Action:
    """The action in ``body``; :class:`BadAction` says what is wrong with it."""
    try:
        payload: Any = json.loads(body)
    except RecursionError:
        raise BadAction("the body nests too deeply") from None
    except ValueError:
        raise BadAction("the body is not JSON") from None
    if not isinstance(payload, dict):
        raise BadAction("the body is not a JSON object")
    unknown = sorted(set(payload) - {"key", "action", "note"})
    if unknown:
        raise BadAction(f"unknown field {unknown[0][:40]!r} (the fields are key, action and note)")
    key, name = payload.get("key"), payload.get("action")
    if not isinstance(key, str) or not key:
        raise BadAction("key: the job key of a take is required")
    if not isinstance(name, str) or name not in ACTIONS:
        raise BadAction(f"action: one of {', '.join(ACTIONS)}")
    note = payload.get("note")
    if (name == "note") != (note is not None):
        raise BadAction("note: the text of the note, with action note only")
    if name != "note":
        return Action(key, name, ACTIONS[name])
    if not isinstance(note, str):
        raise BadAction("note: text")
    try:
        return Action(key, name, DecisionChange(note=note.strip()))
    except ValueError as exc:
        raise BadAction(f"note: {exc}") from None


def needs_video(action: Action) -> bool:
    """Approving and picking are for takes the reviewer could watch (rendered and downloaded)."""
    return action.name in _SEEN
