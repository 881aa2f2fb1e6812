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
matches a mapping whose ``id`` equals it. Pure functions over plain data; the
work per combination is a few dictionary operations (100,000 jobs must plan in
well under a second).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import product
from typing import Any

__all__ = ["Axis", "Combination", "Entry", "combinations", "same_value", "value_id"]


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


def value_id(value: Any) -> Any:
    """What identifies a value: a mapping's ``id``, a scalar itself."""
    return value.get("id") if isinstance(value, Mapping) else value


def same_value(actual: Any, wanted: Any) -> bool:
    """Whether an include/exclude value matches a combination value."""
    if isinstance(wanted, Mapping) and "id" not in wanted:
        return actual == wanted
    a, b = value_id(actual), value_id(wanted)
    # True == 1 in Python, but a YAML true is not the number 1.
    return a == b and isinstance(a, bool) == isinstance(b, bool)


def combinations(axes: Sequence[Axis], exclude: Sequence[Entry] = (), include: Sequence[Entry] = ()) -> list[Combination]:
    """All combinations of a matrix, in GitHub Actions order.

    Every exclude key must name an axis (callers check this first: a key that
    names no axis would silently exclude nothing).
    """
    if not axes:
        if not include:
            return [Combination({}, ())]
        return [Combination(dict(e.values), None, (e.index,)) for e in include]
    kept = _after_exclude(axes, exclude)
    extras: dict[int, tuple[dict[str, Any], list[int]]] = {}
    created: list[Combination] = []
    names = {axis.name for axis in axes}
    for entry in include:
        selector = _selector(axes, entry.values)
        added = {k: v for k, v in entry.values.items() if k not in names}
        fits = [n for n, index in enumerate(kept) if _hits(index, selector)]
        if not fits:
            created.append(Combination(_resolved(axes, entry.values), None, (entry.index,)))
        for n in fits:
            values, merged = extras.setdefault(n, ({}, []))
            values.update(added)
            merged.append(entry.index)
    return _originals(axes, kept, extras) + created


def _resolved(axes: Sequence[Axis], values: Mapping[str, Any]) -> dict[str, Any]:
    """A new combination's values; a scalar naming a mapping axis value by its id becomes that mapping.

    (An extension of GitHub's rules: it lets ``locale: en-US`` in an include entry
    bring the whole ``{id: en-US, language: ...}`` row, so templates work the same.)
    """
    result = dict(values)
    for axis in axes:
        wanted = result.get(axis.name)
        if axis.name in result and not isinstance(wanted, Mapping):
            found = [v for v in axis.values if isinstance(v, Mapping) and same_value(v, wanted)]
            if found:
                result[axis.name] = found[0]
    return result


def _after_exclude(axes: Sequence[Axis], exclude: Sequence[Entry]) -> list[tuple[int, ...]]:
    ranges = [range(len(axis.values)) for axis in axes]
    selectors = [_selector(axes, entry.values) for entry in exclude]
    if not selectors:
        return list(product(*ranges))
    return [index for index in product(*ranges) if not any(_hits(index, s) for s in selectors)]


def _selector(axes: Sequence[Axis], values: Mapping[str, Any]) -> list[tuple[int, frozenset[int]]]:
    """For each axis an entry names: (axis position, indices of the values it matches)."""
    selector = []
    for position, axis in enumerate(axes):
        if axis.name in values:
            wanted = values[axis.name]
            selector.append((position, frozenset(i for i, v in enumerate(axis.values) if same_value(v, wanted))))
    return selector


def _hits(index: tuple[int, ...], selector: list[tuple[int, frozenset[int]]]) -> bool:
    return all(index[position] in allowed for position, allowed in selector)


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
