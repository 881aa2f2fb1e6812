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
from typing import Any

from .space import WORK_LIMIT, MatrixTooComplex, Selector, Space

__all__ = [
    "WORK_LIMIT", "Axis", "Combination", "Entry", "MatrixSize", "MatrixTooComplex",
    "combinations", "matrix_size", "same_value", "value_id",
]

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
    space = Space([len(a.values) for a in axes], [_selector(indexes, entry.values) for entry in exclude], WORK_LIMIT)
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
    space = Space([len(a.values) for a in axes], [_selector(indexes, entry.values) for entry in exclude])
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
        values = {name: column[i] for name, column, i in zip(names, columns, index, strict=True)}
        merged: tuple[int, ...] = ()
        if n in extras:
            added, applied = extras[n]
            values.update(added)
            merged = tuple(applied)
        result.append(Combination(values, index, merged))
    return result
