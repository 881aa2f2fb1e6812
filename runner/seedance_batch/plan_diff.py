"""What changed, field by field: each ``changed`` job against the ledger row it replaces.

Pure functions over the plan's records. A prompt is compared word by word (a word is
what lies between whitespace) and shown as the changed words in a few words of
context, git's plain word-diff markers around them::

    … on the glass. Slow [-push-in-]{+dolly-in+}, warm morning light, …

Other parameters read ``old -> new``. Jobs with the same change (the same fields, the
same words removed and added, the same old and new values) form one
:class:`ChangeGroup`, so one edited template reads once, "and 10 more job(s)".

The cost is linear in the number of changed jobs: each distinct (old, new) text pair
is compared once (a cache), and each comparison first drops the words both ends share,
so a one-word edit of a long prompt compares one word with another.

A private job's prompt is never compared: its change reads ``prompt changed
(private)``. Whether a job is private is the manifest's word now (the ledger does not
keep it), so a prompt made public and edited in one change shows its old words.
"""

from __future__ import annotations

import difflib
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import orjson

from .expand.params import IN_REQUEST_ORDER, TEXT, by_name
from .ledger import VOCABULARY

if TYPE_CHECKING:  # the plan imports this module for its JSON: no cycle at run time
    from .plan import Plan, PlannedJob

__all__ = [
    "ADD", "DROP", "GAP", "KEEP", "NO_CHANGES", "ChangeGroup", "Differ", "FieldChange", "PlanDiff", "RemovedJob", "diff_plan",
    "plain_words", "state_word", "word_diff",
]

# The kinds of a word diff's segments: words both have, removed, added, and elided context.
KEEP, DROP, ADD, GAP = "=", "-", "+", "…"
Segment = tuple[str, str]
# Words of context shown on each side of a change.
CONTEXT = 3
# The longest text one old or new parameter value shows (a list of signed URLs can be long).
MAX_VALUE = 300
# Punctuation that stays out of the markers when both sides end (or start) with it:
# "push-in," -> "dolly-in," reads [-push-in-]{+dolly-in+}, not [-push-in,-]{+dolly-in,+}.
_TRAILING = frozenset(".,;:!?)]}\"'»”’…")
_LEADING = frozenset("([{\"'«“‘")


@dataclass(frozen=True, slots=True)
class FieldChange:
    """One request field that differs: its values as the requests carry them, and as shown.

    ``words`` is a text's word diff in context (empty for other fields, and for a
    private prompt, whose ``old`` and ``new`` are None too); ``before``/``after`` are
    other values as shown. Shown texts are
    the caller's ``clean`` of the values (reports scrub secrets and URL queries there).
    """

    name: str
    old: Any
    new: Any
    private: bool = False
    text: bool = False
    words: tuple[Segment, ...] = ()
    before: str = ""
    after: str = ""

    def summary(self) -> str:
        """The change as one plain line: ``prompt: … [-push-in-]{+dolly-in+} …``, ``duration: 8 -> 10``."""
        if self.private:
            return f"{self.name} changed (private)"
        if self.text:
            return f"{self.name}: {plain_words(self.words) if self.words else 'whitespace changed only'}"
        if self.before == self.after:  # the difference is in what clean() hides
            return f"{self.name} changed (in a part not shown, such as a URL's query string)"
        return f"{self.name}: {self.before} -> {self.after}"

    def signature(self) -> tuple[Any, ...]:
        """What makes two jobs' changes of this field the same change."""
        if self.private:
            return (self.name, "private")
        if self.text:
            return (self.name, tuple(s for s in self.words if s[0] in (DROP, ADD)))
        return (self.name, _canonical(self.old), _canonical(self.new))


def plain_words(words: Iterable[Segment]) -> str:
    """A word diff as plain text: ``[-removed-]``, ``{+added+}``, ``…`` for elided words."""
    marks = {KEEP: "{}", DROP: "[-{}-]", ADD: "{{+{}+}}", GAP: "…"}
    return "".join(marks[kind].format(text) for kind, text in words)


@dataclass(frozen=True, slots=True)
class ChangeGroup:
    """Changed jobs with the same change: the first one's fields and label, how many, the money.

    ``first`` is the first job's label (cleaned: only it is ever shown; each job's own
    changes are in ``plan --json``); ``usd`` is what rendering them costs now;
    ``old_usd`` what their old renders were charged, net of refunds (the ledger rows they replace);
    ``old_states`` those rows' states, counted.
    """

    changes: tuple[FieldChange, ...]
    first: str
    jobs: int
    usd: Decimal
    old_usd: Decimal
    old_states: Mapping[str, int]

    def heading(self) -> str:
        """``hero/en-US/9:16 and 10 more job(s)``."""
        more = self.jobs - 1
        return self.first + (f" and {more} more job(s)" if more else "")

    def cost(self) -> str:
        """What the change costs, and what the old render was."""
        states = ", ".join(f"{n} {state_word(state)}" for state, n in self.old_states.items())
        if self.jobs == 1:
            return f"${self.usd:,.2f} for the new render; the old render cost ${self.old_usd:,.2f} ({states})"
        return (f"${self.usd:,.2f} for {self.jobs} new renders; "
                f"the old renders cost ${self.old_usd:,.2f} ({states})")


@dataclass(frozen=True, slots=True)
class RemovedJob:
    """A job rendered before that the manifest no longer has (see :attr:`Plan.removed`)."""

    label: str
    state: str
    spent_usd: Decimal

    def summary(self) -> str:
        """``product/4:5 (done, $0.56 spent)``."""
        return f"{self.label} ({state_word(self.state)}, ${self.spent_usd:,.2f} spent)"


@dataclass(frozen=True, slots=True)
class PlanDiff:
    """Every change of a plan, grouped, and the jobs it no longer has."""

    groups: tuple[ChangeGroup, ...]
    removed: tuple[RemovedJob, ...]

    @property
    def changed_jobs(self) -> int:
        """How many changed jobs the groups hold."""
        return sum(g.jobs for g in self.groups)


# The diff of a plan with nothing changed or removed.
NO_CHANGES = PlanDiff((), ())


def state_word(state: str) -> str:
    """A ledger state in the user's word (``submitted`` -> ``in flight``), as reports say it."""
    info = VOCABULARY.get(state)
    return info.word if info is not None else state.replace("_", " ")


def _same(text: str) -> str:
    return text


class Differ:
    """Compares requests field by field; each distinct pair of texts is word-diffed once."""

    def __init__(self, clean: Callable[[str], str] = _same, *, context: int = CONTEXT) -> None:
        self.clean = clean
        self._context = context
        self._words: dict[tuple[str, str], tuple[Segment, ...]] = {}

    @property
    def compared(self) -> int:
        """How many distinct pairs of texts were word-diffed so far."""
        return len(self._words)

    def changes(self, old: Mapping[str, Any], new: Mapping[str, Any], *, private: bool) -> tuple[FieldChange, ...]:
        """The fields of request ``new`` that differ from request ``old``, in request order."""
        before, after = _fields(old), _fields(new)
        names = _names(before, after)
        found = [self._change(name, before.get(name), after.get(name), private) for name in names
                 if before.get(name) != after.get(name) or type(before.get(name)) is not type(after.get(name))]
        if not found:  # equal to Python, not to JSON (a 1 and a 1.0 inside a list): compare what the key hashes
            found = [self._change(name, before.get(name), after.get(name), private) for name in names
                     if _canonical(before.get(name)) != _canonical(after.get(name))]
        return tuple(found)

    def _change(self, name: str, old: Any, new: Any, private: bool) -> FieldChange:
        param = by_name(name)
        if param is not None and param.kind == TEXT and isinstance(old, str) and isinstance(new, str):
            if private:  # its words are kept nowhere, so no format can show them
                return FieldChange(name, None, None, private=True, text=True)
            return FieldChange(name, old, new, text=True, words=self.words(old, new))
        return FieldChange(name, old, new, before=self._shown(old), after=self._shown(new))

    def words(self, old: str, new: str) -> tuple[Segment, ...]:
        """The word diff of two texts (cleaned first), in context; cached by the pair."""
        pair = (old, new)
        found = self._words.get(pair)
        if found is None:
            found = self._words[pair] = word_diff(self.clean(old), self.clean(new), self._context)
        return found

    def _shown(self, value: Any) -> str:
        text = _value_text(value, self.clean)
        return text if len(text) <= MAX_VALUE else f"{text[:MAX_VALUE]}… ({len(text) - MAX_VALUE} more characters)"


def diff_plan(plan: Plan, differ: Differ | None = None) -> PlanDiff:
    """The plan's changed jobs, grouped by their change, and its removed jobs (the labels shown cleaned too)."""
    differ = differ or Differ()
    groups: dict[tuple[Any, ...], list[tuple[PlannedJob, tuple[FieldChange, ...]]]] = {}
    for planned in plan.jobs:
        previous = planned.previous
        if previous is None or planned.record is not None:  # only a changed job has these
            continue
        changes = differ.changes(previous.request, planned.priced.job.request, private=planned.priced.job.private)
        groups.setdefault(tuple(c.signature() for c in changes), []).append((planned, changes))
    removed = tuple(RemovedJob(differ.clean(r.label), r.state.value, r.spent_usd)
                    for r in plan.removed)
    return PlanDiff(tuple(_group(members, differ.clean) for members in groups.values()), removed)


def _group(members: list[tuple[PlannedJob, tuple[FieldChange, ...]]], clean: Callable[[str], str]) -> ChangeGroup:
    olds = [planned.previous for planned, _ in members if planned.previous is not None]
    return ChangeGroup(
        changes=members[0][1],
        first=clean(members[0][0].label),
        jobs=len(members),
        usd=sum((planned.priced.cost.usd for planned, _ in members), Decimal(0)),
        old_usd=sum((r.spent_usd for r in olds), Decimal(0)),
        old_states=dict(Counter(r.state.value for r in olds)),
    )


def word_diff(old: str, new: str, context: int = CONTEXT) -> tuple[Segment, ...]:
    """``old`` -> ``new`` word by word: segments to show, context elided past ``context`` words.

    Empty when the words are the same (only whitespace differs).
    """
    a, b = old.split(), new.split()
    if a == b:
        return ()
    head = _same_words(a, b)
    tail = _same_words(reversed(a[head:]), reversed(b[head:]))
    # Only the words between the common head and tail are matched: an edit of a long
    # prompt compares a few words, not the whole text.
    ops: list[tuple[str, list[str], list[str]]] = [(KEEP, a[:head], [])]
    middle_a, middle_b = a[head:len(a) - tail], b[head:len(b) - tail]
    if len(middle_a) <= 1 or len(middle_b) <= 1 or set(middle_a).isdisjoint(middle_b):  # nothing to match
        ops.append((DROP, middle_a, middle_b))
    else:
        for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, middle_a, middle_b, autojunk=False).get_opcodes():
            ops.append((KEEP, middle_a[i1:i2], []) if tag == "equal" else (DROP, middle_a[i1:i2], middle_b[j1:j2]))
    ops.append((KEEP, a[len(a) - tail:], []))
    ops = [op for op in ops if op[1] or op[2]]
    line = _Line()
    for index, (kind, words, added) in enumerate(ops):
        if kind == KEEP:
            line.keep(words, first=index == 0, last=index == len(ops) - 1, context=context)
        else:
            line.change(" ".join(words), " ".join(added))
    return line.segments()


def _same_words(a: Iterable[str], b: Iterable[str]) -> int:
    """How many words the two sequences start with in common."""
    count = 0
    for x, y in zip(a, b, strict=False):  # of different lengths: the shorter ends it
        if x != y:
            break
        count += 1
    return count


class _Line:
    """Builds a word diff's segments: spaces between words, none between a removal and its addition."""

    def __init__(self) -> None:
        self.parts: list[list[str]] = []

    def segments(self) -> tuple[Segment, ...]:
        """What was built, as (kind, text) pairs."""
        return tuple((kind, text) for kind, text in self.parts)

    def add(self, kind: str, text: str, *, glued: bool = False) -> None:
        if not text:
            return
        if self.parts and not glued:
            self._append(KEEP, " ")
        self._append(kind, text)

    def _append(self, kind: str, text: str) -> None:
        if self.parts and self.parts[-1][0] == kind == KEEP:
            self.parts[-1][1] += text
        else:
            self.parts.append([kind, text])

    def keep(self, words: list[str], *, first: bool, last: bool, context: int) -> None:
        """Words both texts have: ``context`` words by each change, the rest elided when it is more than that."""
        keep_head = 0 if first else context
        keep_tail = 0 if last else context
        if len(words) <= keep_head + keep_tail + context:
            self.add(KEEP, " ".join(words))
            return
        self.add(KEEP, " ".join(words[:keep_head]))
        self.add(GAP, GAP)
        self.add(KEEP, " ".join(words[len(words) - keep_tail:]))

    def change(self, drop: str, add: str) -> None:
        """Removed and added words side by side, common punctuation at either end kept outside."""
        lead = _common(drop, add, _LEADING, reverse=False) if drop and add else ""
        trail = _common(drop[len(lead):], add[len(lead):], _TRAILING, reverse=True) if drop and add else ""
        self.add(KEEP, lead)
        end_drop, end_add = len(drop) - len(trail), len(add) - len(trail)
        self.add(DROP, drop[len(lead):end_drop], glued=bool(lead))
        self.add(ADD, add[len(lead):end_add], glued=bool(lead) or bool(drop))
        self.add(KEEP, trail, glued=True)


def _common(a: str, b: str, chars: frozenset[str], *, reverse: bool) -> str:
    """The punctuation ``a`` and ``b`` both start (or end) with, never all of either."""
    count = 0
    while count < min(len(a), len(b)) - 1:
        x, y = (a[-1 - count], b[-1 - count]) if reverse else (a[count], b[count])
        if x != y or x not in chars:
            break
        count += 1
    if not count:
        return ""
    return a[len(a) - count:] if reverse else a[:count]


def _fields(request: Mapping[str, Any]) -> dict[str, Any]:
    """A request's fields by name: ``model`` and the rest of the top level, then ``input``'s."""
    fields = {k: v for k, v in request.items() if k not in ("input", "callback_url")}
    data = request.get("input")
    if isinstance(data, Mapping):
        fields.update(data)
    return fields


def _names(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    """Every field either request has: the parameter table's order, then any other by name."""
    known = [p.name for p in IN_REQUEST_ORDER if p.name in before or p.name in after]
    seen = set(known)
    return known + sorted(n for n in {*before, *after} if n not in seen)


def _value_text(value: Any, clean: Callable[[str], str]) -> str:
    if value is None:
        return "(not set)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_value_text(v, clean) for v in value) + "]"
    if isinstance(value, Mapping):
        return clean(orjson.dumps(dict(value), option=orjson.OPT_SORT_KEYS).decode())
    return clean(str(value))


def _canonical(value: Any) -> str:
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
    except TypeError:  # a value orjson refuses (an integer past 64 bits): its repr still tells it apart
        return repr(value)

