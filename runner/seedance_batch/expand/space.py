"""The kept index tuples of a matrix: its product minus the exclude boxes, counted and listed lazily.

An exclude entry is a box of the product (per axis it names, the values it
matches). The walk goes axis by axis; its state is the boxes still *alive* (those
whose named axes so far all match the prefix), so values no alive box names lead to
one state and are counted once, and a box alive past its last named axis removes a
whole subtree. The work is about the size of the result, not of the product, and
counted against a limit (:class:`MatrixTooComplex`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import product
from typing import Any

__all__ = ["DEAD", "WORK_LIMIT", "MatrixTooComplex", "Selector", "Space"]

# Steps (alive boxes looked at, states visited) one matrix_size call may take: about a
# second of Python. Real exclude lists (tens of entries) take thousands; only thousands
# of entries overlapping on several axes get near it.
WORK_LIMIT = 5_000_000
DEAD = -1  # a state some exclude box covers entirely: nothing below it is kept

# Axis position -> indices of that axis's values an entry matches; positions the
# entry does not name match every value.
Selector = dict[int, frozenset[int]]


class MatrixTooComplex(ValueError):
    """Working out a matrix's combinations took more than :data:`WORK_LIMIT` steps.

    (Exclude entries overlapping in too many ways; the caller says so at the matrix.)
    """


@dataclass(frozen=True, slots=True)
class _Split:
    """Where one state leads: per value some alive box names, its next state (or dead); every other value, ``rest``.

    ``live`` is the named values whose next state is not dead, in value order.
    """

    children: dict[int, int]
    rest: int
    live: list[tuple[int, int]]


class Space:
    """The kept index tuples of a matrix: its product minus the exclude boxes, counted and listed lazily.

    A state of the walk is an axis position and the boxes still *alive* there:
    those whose named axes before the position all match the prefix. A box alive
    past its last named axis covers the whole subtree (dead); no box alive means
    every completion is kept (a plain product). Values of one axis that no alive
    box names lead to the same state, so they are counted once. States are
    interned as small ints, so memo keys are cheap to hash.
    """

    def __init__(self, sizes: Sequence[int], boxes: Sequence[Selector], limit: int | None = None) -> None:
        self.sizes = tuple(sizes)
        # A box naming a value its axis does not have excludes nothing.
        self.boxes = [box for box in boxes if all(box.values())]
        self.last = [max(box, default=-1) for box in self.boxes]
        self.states: list[tuple[int, ...]] = [()]
        self.ids: dict[tuple[int, ...], int] = {(): 0}
        self.splits: dict[tuple[int, int], _Split] = {}
        self.unnamed_values: dict[tuple[int, int], list[int]] = {}
        self.limit, self.steps = limit, 0
        # A box naming no axis at all excludes everything.
        self.top = DEAD if -1 in self.last else self.intern(tuple(range(len(self.boxes))))
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
            children = dict.fromkeys(dead, DEAD)
            for value in sorted(named):
                if value not in dead:
                    children[value] = self.intern(tuple(sorted(rest + tuple(named[value]))))
            self.work(len(alive) + (len(children) - len(dead)) * len(rest))
            live = sorted((v, child) for v, child in children.items() if child != DEAD)
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
        if self.top == DEAD:
            return 0
        return (_Walk(self, restrict) if restrict else self.full).count(0, self.top)

    def tuples(self, restrict: Selector | None = None) -> list[tuple[int, ...]]:
        """The kept tuples within ``restrict``, in product order."""
        if not self.boxes and not restrict:
            return list(product(*map(range, self.sizes)))
        if self.top == DEAD:
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
    """Counts and lists of a :class:`Space`, optionally restricted to the values an include entry names.

    Below the deepest restricted axis a restricted walk is the full walk, so it
    uses the full walk's memo there.
    """

    def __init__(self, space: Space, restrict: Selector) -> None:
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
            return 0 if state == DEAD else self.free[position]
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
                live = [split.children[v] for v in allowed if split.children.get(v, DEAD) != DEAD]
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
