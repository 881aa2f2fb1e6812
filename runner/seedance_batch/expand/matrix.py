"""Matrix combinations, exactly as GitHub Actions expands ``strategy.matrix``.

1. The cartesian product of the axes in declared order (first axis slowest).
2. Every ``exclude`` entry removes each combination matching all of its keys
   (a partial match suffices).
3. Each ``include`` entry, in order, is merged into every original combination
   where none of its keys would overwrite an original axis value (values added
   by earlier includes may be overwritten); an entry that fits no original
   combination becomes a combination of its own. With no axes, each include
   entry is one combination; no axes and no includes give one empty combination.

Axis values are scalars or mappings with an ``id``; in include/exclude a scalar
matches a mapping whose ``id`` equals it. Pure functions over plain data.

Size before work: :func:`matrix_size` says how many combinations a matrix makes
and how many (combination, include entry) merges its include entries cost
without building any combination, so a caller can refuse 10^9 combinations
before they take the memory. Neither function walks the whole cartesian product
when exclude entries remove most of it (an exclude entry is a box of the
product; the walk skips every box it is inside), and an include entry finds its
combinations by the values it names, not by testing every combination: the work
is about the size of the result. The work per combination is a few dictionary
operations (100,000 jobs must plan in well under a second).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from itertools import product
from typing import Any

__all__ = [
    "WORK_LIMIT", "Axis", "Combination", "Entry", "MatrixSize", "MatrixTooComplex",
    "combinations", "matrix_size", "same_value", "value_id",
]

# Steps (alive boxes looked at, states visited) one matrix_size call may take: about a
# second of Python. Real exclude lists (tens of entries) take thousands; only thousands
# of entries overlapping on several axes get near it.
WORK_LIMIT = 5_000_000
_DEAD = -1  # a state some exclude box covers entirely: nothing below it is kept

# Axis position -> indices of that axis's values an entry matches; positions the
# entry does not name match every value.
Selector = dict[int, frozenset[int]]


class MatrixTooComplex(ValueError):
    """Working out a matrix's combinations took more than :data:`WORK_LIMIT` steps.

    (Exclude entries overlapping in too many ways; the caller says so at the matrix.)
    """


@dataclass(frozen=True, slots=True)
class Axis:
    """One matrix axis: its name and its values in declared order."""

    name: str
    values: tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class Entry:
    """An include or exclude entry (its ``shot`` selector already applied).

    ``index`` is its position in the manifest's list, for error locations.
    """

    index: int
    values: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Combination:
    """One combination: key -> value, and where its values came from.

    ``axis_index`` holds the index into each axis for an original combination
    and is None for one an include entry created; ``includes`` lists the
    include entries (by ``Entry.index``) merged into it, in order.
    """

    values: Mapping[str, Any]
    axis_index: tuple[int, ...] | None
    includes: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class MatrixSize:
    """What expanding a matrix costs, worked out without expanding it.

    ``combinations`` is exactly ``len(combinations(...))``; ``merges`` the number
    of (original combination, include entry) merges; ``busiest`` the index of the
    include entry that merges into the most combinations (None without merges).
    """

    combinations: int
    merges: int = 0
    busiest: int | None = None
    busiest_merges: int = 0


def value_id(value: Any) -> Any:
    """What identifies a value: a mapping's ``id``, a scalar itself."""
    return value.get("id") if isinstance(value, Mapping) else value


def same_value(actual: Any, wanted: Any) -> bool:
    """Whether an include/exclude value matches a combination value."""
    if isinstance(wanted, Mapping) and "id" not in wanted:
        return bool(actual == wanted)
    a, b = value_id(actual), value_id(wanted)
    # True == 1 in Python, but a YAML true is not the number 1.
    return a == b and isinstance(a, bool) == isinstance(b, bool)


def matrix_size(axes: Sequence[Axis], exclude: Sequence[Entry] = (), include: Sequence[Entry] = ()) -> MatrixSize:
    """How many combinations :func:`combinations` would return, and the include merges it would do.

    The work is about (axes x exclude entries) per state of the walk and per
    include entry, whatever the number of combinations. Raises
    :class:`MatrixTooComplex` past :data:`WORK_LIMIT` steps.
    """
    if not axes:
        return MatrixSize(len(include) or 1)
    indexes = [_AxisIndex(axis) for axis in axes]
    space = _Space(axes, [_selector(indexes, entry.values) for entry in exclude], WORK_LIMIT)
    count, merges, busiest, most = space.count(), 0, None, 0
    for entry in include:
        fits = space.count(_selector(indexes, entry.values))
        count += fits == 0
        merges += fits
        if fits > most:
            busiest, most = entry.index, fits
    return MatrixSize(count, merges, busiest, most)


def combinations(axes: Sequence[Axis], exclude: Sequence[Entry] = (), include: Sequence[Entry] = ()) -> list[Combination]:
    """All combinations of a matrix, in GitHub Actions order.

    Every exclude key must name an axis (callers check this first: a key that
    names no axis would silently exclude nothing). Callers check
    :func:`matrix_size` first: this builds every combination it counts.
    """
    if not axes:
        if not include:
            return [Combination({}, ())]
        return [Combination(dict(e.values), None, (e.index,)) for e in include]
    indexes = [_AxisIndex(axis) for axis in axes]
    space = _Space(axes, [_selector(indexes, entry.values) for entry in exclude])
    kept = space.tuples()
    extras: dict[int, tuple[dict[str, Any], list[int]]] = {}
    created: list[Combination] = []
    names = {axis.name for axis in axes}
    rank = space.ranker(kept) if include else None
    for entry in include:
        selector = _selector(indexes, entry.values)
        fits = space.tuples(selector)
        if not fits:
            created.append(Combination(_resolved(axes, selector, entry.values), None, (entry.index,)))
            continue
        added = {k: v for k, v in entry.values.items() if k not in names}
        for n in map(rank, fits):  # type: ignore[arg-type]
            values, merged = extras.setdefault(n, ({}, []))
            values.update(added)
            merged.append(entry.index)
    return _originals(axes, kept, extras) + created


class _AxisIndex:
    """Finds the values of one axis an include/exclude value matches (:func:`same_value`) by lookup."""

    def __init__(self, axis: Axis) -> None:
        self.name = axis.name
        self.values = axis.values
        self.by_id: dict[tuple[bool, Any], list[int]] = {}
        # Values a lookup cannot find, compared one by one: mappings without an id and
        # unhashable ids (the manifest schema lets neither through, so this stays empty).
        self.odd: list[int] = []
        for i, value in enumerate(axis.values):
            ident = value_id(value)
            if isinstance(value, Mapping) and "id" not in value:
                self.odd.append(i)
                continue
            try:
                self.by_id.setdefault((isinstance(ident, bool), ident), []).append(i)
            except TypeError:
                self.odd.append(i)

    def matching(self, wanted: Any) -> frozenset[int]:
        """Indices of the values ``wanted`` matches, as :func:`same_value` decides."""
        found: list[int] = []
        if not (isinstance(wanted, Mapping) and "id" not in wanted):
            ident = value_id(wanted)
            with suppress(TypeError):  # an unhashable id equals no hashable one
                found = list(self.by_id.get((isinstance(ident, bool), ident), ()))
        found += [i for i in self.odd if same_value(self.values[i], wanted)]
        return frozenset(found)


def _selector(indexes: Sequence[_AxisIndex], values: Mapping[str, Any]) -> Selector:
    """For each axis an entry names: the indices of the values it matches."""
    return {position: index.matching(values[index.name]) for position, index in enumerate(indexes) if index.name in values}


@dataclass(frozen=True, slots=True)
class _Split:
    """Where one state leads: per value some alive box names, its next state (or dead); every other value, ``rest``.

    ``live`` is the named values whose next state is not dead, in value order.
    """

    children: dict[int, int]
    rest: int
    live: list[tuple[int, int]]


class _Space:
    """The kept index tuples of a matrix: its product minus the exclude boxes, counted and listed lazily.

    A state of the walk is an axis position and the boxes still *alive* there:
    those whose named axes before the position all match the prefix. A box alive
    past its last named axis covers the whole subtree (dead); no box alive means
    every completion is kept (a plain product). Values of one axis that no alive
    box names lead to the same state, so they are counted once. States are
    interned as small ints, so memo keys are cheap to hash.
    """

    def __init__(self, axes: Sequence[Axis], boxes: Sequence[Selector], limit: int | None = None) -> None:
        self.sizes = tuple(len(axis.values) for axis in axes)
        # A box naming a value its axis does not have excludes nothing.
        self.boxes = [box for box in boxes if all(box.values())]
        self.last = [max(box, default=-1) for box in self.boxes]
        self.states: list[tuple[int, ...]] = [()]
        self.ids: dict[tuple[int, ...], int] = {(): 0}
        self.splits: dict[tuple[int, int], _Split] = {}
        self.unnamed_values: dict[tuple[int, int], list[int]] = {}
        self.limit, self.steps = limit, 0
        # A box naming no axis at all excludes everything.
        self.top = _DEAD if -1 in self.last else self.intern(tuple(range(len(self.boxes))))
        self.full = _Walk(self, {})

    def intern(self, alive: tuple[int, ...]) -> int:
        """The id of a state's alive boxes."""
        found = self.ids.get(alive)
        if found is None:
            found = self.ids[alive] = len(self.states)
            self.states.append(alive)
        return found

    def work(self, steps: int) -> None:
        """Count steps against the limit."""
        self.steps += steps
        if self.limit is not None and self.steps > self.limit:
            raise MatrixTooComplex(f"more than {self.limit:,} steps")

    def split(self, position: int, state: int) -> _Split:
        """Where a state leads at ``position`` (worked out once per state)."""
        key = (position, state)
        found = self.splits.get(key)
        if found is None:
            alive = self.states[state]
            rest = tuple(e for e in alive if position not in self.boxes[e])
            named: dict[int, list[int]] = {}
            dead: set[int] = set()
            for e in alive:
                for value in self.boxes[e].get(position, ()):
                    if self.last[e] == position:  # the box is complete here: everything below is excluded
                        dead.add(value)
                    else:
                        named.setdefault(value, []).append(e)
            children = dict.fromkeys(dead, _DEAD)
            for value in sorted(named):
                if value not in dead:
                    children[value] = self.intern(tuple(sorted(rest + tuple(named[value]))))
            self.work(len(alive) + (len(children) - len(dead)) * len(rest))
            live = sorted((v, child) for v, child in children.items() if child != _DEAD)
            found = self.splits[key] = _Split(children, self.intern(rest), live)
        return found

    def unnamed(self, position: int, state: int) -> list[int]:
        """The values of axis ``position`` no box alive in ``state`` names, in order."""
        key = (position, state)
        found = self.unnamed_values.get(key)
        if found is None:
            children = self.split(position, state).children
            self.work(self.sizes[position])
            found = self.unnamed_values[key] = [v for v in range(self.sizes[position]) if v not in children]
        return found

    def count(self, restrict: Selector | None = None) -> int:
        """How many kept tuples lie within ``restrict`` (all of them by default)."""
        if self.top == _DEAD:
            return 0
        return (_Walk(self, restrict) if restrict else self.full).count(0, self.top)

    def tuples(self, restrict: Selector | None = None) -> list[tuple[int, ...]]:
        """The kept tuples within ``restrict``, in product order."""
        if not self.boxes and not restrict:
            return list(product(*map(range, self.sizes)))
        if self.top == _DEAD:
            return []
        return (_Walk(self, restrict) if restrict else self.full).tuples(self.top)

    def ranker(self, kept: list[tuple[int, ...]]) -> Any:
        """A function from a kept tuple to its position in ``kept``."""
        if self.boxes:
            return {index: n for n, index in enumerate(kept)}.__getitem__
        strides = [1] * len(self.sizes)
        for position in range(len(self.sizes) - 2, -1, -1):
            strides[position] = strides[position + 1] * self.sizes[position + 1]
        return lambda index: sum(i * s for i, s in zip(index, strides, strict=True))


class _Walk:
    """Counts and lists of a :class:`_Space`, optionally restricted to the values an include entry names.

    Below the deepest restricted axis a restricted walk is the full walk, so it
    uses the full walk's memo there.
    """

    def __init__(self, space: _Space, restrict: Selector) -> None:
        self.space = space
        self.allowed = [restrict.get(p) for p in range(len(space.sizes))]
        self.values: list[Sequence[int]] = [
            sorted(allowed) if allowed is not None else range(size)
            for allowed, size in zip(self.allowed, space.sizes, strict=True)
        ]
        self.free = [1] * (len(space.sizes) + 1)  # free[p]: completions from position p with no box alive
        for position in range(len(space.sizes) - 1, -1, -1):
            self.free[position] = self.free[position + 1] * len(self.values[position])
        self.deepest = max(restrict, default=-1)
        self.counts: dict[tuple[int, int], int] = {}
        self.entries: dict[tuple[int, int], list[tuple[int, int]]] = {}

    def count(self, position: int, state: int) -> int:
        """Kept completions of any prefix in this state."""
        if state <= 0:
            return 0 if state == _DEAD else self.free[position]
        if 0 <= self.deepest < position:
            return self.space.full.count(position, state)
        key = (position, state)
        found = self.counts.get(key)
        if found is None:
            split = self.space.split(position, state)
            allowed = self.allowed[position]
            if allowed is None:
                named, live = len(split.children), [child for _, child in split.live]
            else:
                named = sum(v in split.children for v in allowed)
                live = [split.children[v] for v in allowed if split.children.get(v, _DEAD) != _DEAD]
            self.space.work(len(live) + 1)
            found = (len(self.values[position]) - named) * self.count(position + 1, split.rest)
            found += sum(self.count(position + 1, child) for child in live)
            self.counts[key] = found
        return found

    def tuples(self, state: int) -> list[tuple[int, ...]]:
        """Every kept tuple, in product order; only states with something kept are entered."""
        out: list[tuple[int, ...]] = []
        if self.count(0, state):
            self._walk(0, (), state, out)
        return out

    def _walk(self, position: int, prefix: tuple[int, ...], state: int, out: list[tuple[int, ...]]) -> None:
        if state == 0:
            out.extend(prefix + rest for rest in product(*self.values[position:]))
            return
        # Below the deepest restricted axis this walk is the full one: share its memo.
        walk = self.space.full if 0 <= self.deepest < position else self
        for value, child in walk.entered(position, state):
            walk._walk(position + 1, (*prefix, value), child, out)

    def entered(self, position: int, state: int) -> list[tuple[int, int]]:
        """The (value, next state) pairs of a state that keep something, in value order.

        Worked out once per state, from the values that can keep something, so
        each visit of the state costs about what it yields.
        """
        key = (position, state)
        found = self.entries.get(key)
        if found is None:
            split = self.space.split(position, state)
            allowed = self.allowed[position]
            if allowed is not None:
                pairs = [(v, split.children.get(v, split.rest)) for v in self.values[position]]
            else:
                pairs = list(split.live)
                if self.count(position + 1, split.rest):
                    pairs = sorted(pairs + [(v, split.rest) for v in self.space.unnamed(position, state)])
            self.space.work(len(pairs))
            found = self.entries[key] = [(v, child) for v, child in pairs if self.count(position + 1, child)]
        return found


def _resolved(axes: Sequence[Axis], selector: Selector, values: Mapping[str, Any]) -> dict[str, Any]:
    """A new combination's values; a scalar naming a mapping axis value by its id becomes that mapping.

    (An extension of GitHub's rules: it lets ``locale: en-US`` in an include entry
    bring the whole ``{id: en-US, language: ...}`` row, so templates work the same.)
    """
    result = dict(values)
    for position, axis in enumerate(axes):
        if position in selector and not isinstance(result[axis.name], Mapping):
            found = [axis.values[i] for i in sorted(selector[position]) if isinstance(axis.values[i], Mapping)]
            if found:
                result[axis.name] = found[0]
    return result


def _originals(
    axes: Sequence[Axis], kept: list[tuple[int, ...]], extras: dict[int, tuple[dict[str, Any], list[int]]]
) -> list[Combination]:
    names = [axis.name for axis in axes]
    columns = [axis.values for axis in axes]
    result = []
    for n, index in enumerate(kept):
        values = {name: column[i] for name, column, i in zip(names, columns, index)}
        merged: tuple[int, ...] = ()
        if n in extras:
            added, applied = extras[n]
            values.update(added)
            merged = tuple(applied)
        result.append(Combination(values, index, merged))
    return result
