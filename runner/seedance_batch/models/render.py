"""How long a render is expected to take before any job has finished: the models' own figures.

:func:`render_prior_seconds` is the first guess of when to ask for a job's status
(run/polling.py); the simulator makes its render times from the same figures
(:func:`render_time`). Both read ``render`` in schemas/models.json.
"""

from __future__ import annotations

from .catalog import Catalog, RenderTime, bundled_catalog

__all__ = ["render_prior_seconds", "render_time"]


def render_time(catalog: Catalog, model: str, resolution: str = "", duration: int = 0) -> RenderTime:
    """The render figures of ``model``.

    A model the catalog does not know, or one without ``render`` figures (a price
    file of an older version), gets the slowest figures for ``resolution`` and
    ``duration`` among the catalog's models, else among the bundled catalog's: a
    first status request a little late costs less than many early ones.
    """
    rules = catalog.models.get(model)
    if rules is not None and rules.render is not None:
        return rules.render
    known = [m.render for m in catalog.models.values() if m.render is not None]
    if not known:
        known = [m.render for m in bundled_catalog().models.values() if m.render is not None]
    return max(known, key=lambda figures: figures.prior_seconds(resolution, duration))


def render_prior_seconds(catalog: Catalog, model: str, resolution: str, duration: int) -> float:
    """The render time expected for a job before anything has been learned, in service seconds.

    ``queue_seconds + (base_seconds + per_video_second x duration) x resolution_factor``
    from the model's ``render`` figures (see :func:`render_time` for a model without them).
    """
    return render_time(catalog, model, resolution, duration).prior_seconds(resolution, duration)
