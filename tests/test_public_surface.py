"""Every module says what it offers in ``__all__``, and says it completely (httpx's test_exported_members).

A name in ``__all__`` must exist; every public class and function a module defines must
be in its ``__all__`` (or start with ``_``), so the surface a reader sees is the surface
there is. Package ``__init__`` modules re-export their rooms' public names.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from types import ModuleType

import pytest

import seedance_batch

MODULES = sorted(
    info.name for info in pkgutil.walk_packages(seedance_batch.__path__, "seedance_batch.")
    if not info.name.endswith("__main__")
)


def _module(name: str) -> ModuleType:
    return importlib.import_module(name)


def test_every_room_is_walked() -> None:
    assert {"seedance_batch.cli", "seedance_batch.pipeline", "seedance_batch.expand.params",
            "seedance_batch.ledger.api", "seedance_batch.run.engine"} <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_all_names_exist_and_are_unique(name: str) -> None:
    module = _module(name)
    exported = getattr(module, "__all__", None)
    assert isinstance(exported, (list, tuple)), f"{name} has no __all__"
    assert len(set(exported)) == len(exported), f"{name}.__all__ repeats a name"
    missing = [n for n in exported if not hasattr(module, n)]
    assert missing == [], f"{name}.__all__ names what it does not have: {missing}"


@pytest.mark.parametrize("name", MODULES)
def test_every_public_definition_is_exported(name: str) -> None:
    module = _module(name)
    defined = {
        n for n, obj in vars(module).items()
        if not n.startswith("_") and (inspect.isclass(obj) or inspect.isfunction(obj))
        and getattr(obj, "__module__", None) == name
    }
    unexported = sorted(defined - set(getattr(module, "__all__", ())))
    assert unexported == [], f"{name} defines public names it does not export: {unexported}"
