"""A profile laid over a prepared shot: the parameters its jobs get in that profile.

Precedence, later winning: ``defaults`` < the profile < the shot < the shot's own
``profiles.<name>`` < the matrix combination. A profile is a second layer of defaults
(``draft`` makes everything cheap unless a shot says otherwise); a shot adjusts it for
itself with ``profiles: {final: {...}}``; a combination's values apply in every profile.
So nothing written is ever silently ignored: a value is only overridden by a more
specific level, as the plan shows.

A shot's adjustment may not set a parameter its matrix has as an axis (which would
apply is ambiguous), as the shot itself may not.
"""

from __future__ import annotations

from dataclasses import replace

from ..errors import ManifestError
from ..manifest import Manifest
from ..manifest.records import PROFILES
from .shots import PreparedShot

__all__ = ["PROFILE_SUFFIX", "for_profile", "profile_names"]

# Between a job's take label and its profile in its label: ``hero/de-DE/9:16#2@final``.
PROFILE_SUFFIX = "@"


def profile_names(manifest: Manifest) -> tuple[str | None, ...]:
    """The profiles a manifest's jobs are expanded for, in the order written; ``(None,)`` without profiles."""
    return tuple(manifest.profiles) or (None,)


def for_profile(shot: PreparedShot, manifest: Manifest, profile: str | None,
                errors: list[ManifestError]) -> PreparedShot | None:
    """``shot`` with the parameters of ``profile`` (itself, without one); None when its adjustment clashes."""
    if profile is None:
        return shot
    own = manifest.shots[shot.index]
    campaign = manifest.profiles[profile]
    adjusted = own.profiles.get(profile)
    axes = {axis.name for axis in shot.axes}
    clashes = [name for name in (adjusted.values if adjusted else ()) if name in axes]
    for name in clashes:
        errors.append(ManifestError(
            f"the shot's profile {profile!r} sets {name!r} and its matrix has an axis {name!r}, "
            "so which applies is ambiguous; remove one of them",
            location=manifest.locate((*own.path, PROFILES, profile, name), at_key=True),
        ))
    if clashes:
        return None
    layers = (manifest.defaults, campaign, own.params, *((adjusted,) if adjusted else ()))
    params = {name: value for layer in layers for name, value in layer.values.items()}
    origins = {name: where for layer in layers for name, where in layer.origins.items()}
    return replace(shot, params=params, origins=origins, profile=profile, _origin_cache={})
