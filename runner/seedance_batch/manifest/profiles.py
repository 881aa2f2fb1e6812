"""The manifest's profiles, checked as names: the default one declared, every shot's adjustment of one that exists.

A profile is a named set of request parameters (``profiles: {draft: {...}, final: {...}}``);
``profile:`` names the one a command uses without ``--profile``. It is required once
profiles are declared, so that what a bare ``run`` (a CI render on every push) spends is
written in the manifest, never decided by the order the profiles happen to be listed in.
A shot adjusts a profile for itself with its own ``profiles: {final: {...}}``; an
adjustment of a profile the manifest does not declare would silently never apply.

Runs on the data as parsed, before the schema has said it is valid, so that a misspelt
profile is reported together with every other mistake; data of the wrong shape is left
to the schema, which reports it once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..errors import Location, ManifestError
from .records import PROFILES, ManifestPath
from .schema_check import did_you_mean
from .yamlsrc import shown

__all__ = ["DEFAULT_PROFILE", "profile_errors"]

# The top-level key naming the profile used without --profile.
DEFAULT_PROFILE = "profile"

Locate = Callable[[ManifestPath, bool], Location]


def profile_errors(data: Any, locate: Locate) -> list[ManifestError]:
    """Every mistake in how the manifest names its profiles, in source order."""
    if not isinstance(data, dict):
        return []
    declared = data.get(PROFILES)
    names = [name for name in declared if isinstance(name, str)] if isinstance(declared, dict) else []
    default = data.get(DEFAULT_PROFILE)
    errors: list[ManifestError] = []
    if isinstance(declared, dict) and declared and DEFAULT_PROFILE not in data:
        errors.append(ManifestError(
            f"profiles are declared, so say which one a command uses without --profile: add "
            f"'profile: {names[0] if names else 'NAME'}' (profiles: {', '.join(names)})",
            location=locate((PROFILES,), True),
        ))
    if isinstance(default, str) and default not in names:
        errors.append(ManifestError(_unknown(f"profile {shown(default)} is not declared", default, names),
                      location=locate((DEFAULT_PROFILE,), False)))
    shots = data.get("shots")
    for index, shot in enumerate(shots if isinstance(shots, list) else []):
        own = shot.get(PROFILES) if isinstance(shot, dict) else None
        for name in own if isinstance(own, dict) else ():
            if isinstance(name, str) and name not in names:
                errors.append(ManifestError(
                    _unknown(f"the shot adjusts profile {shown(name)}, which the manifest does not declare", name, names),
                    location=locate(("shots", index, PROFILES, name), True),
                ))
    return errors


def _unknown(what: str, name: str, names: list[str]) -> str:
    if not names:
        return f"{what}: the manifest declares no profiles (add them under profiles:)"
    near = did_you_mean(name, names)
    return what + (f" (did you mean {near!r}?)" if near else "") + f"; profiles: {', '.join(names)}"
