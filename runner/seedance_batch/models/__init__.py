"""Stage 3: each job checked against its model's rules and priced; render-time priors.

The rules, prices and render-time figures are data (``schemas/models.json``, or a
user's copy passed with ``--prices``), validated on load (:mod:`.catalog`). The
checks are one per kind of request parameter, driven by the parameter table
(:mod:`.rules`); prices and the download bound are :mod:`.prices`; the render
time expected before anything is learned is :mod:`.render`; which media each URL
field takes, and how large, is :mod:`.media`.
"""

from __future__ import annotations

from .catalog import Catalog, ModelRules, Rate, RenderTime, Span, load_catalog
from .media import URL_FIELDS, MediaKind, MediaLimits
from .prices import Cost, PricedJob, max_video_bytes, price_jobs, price_request
from .render import render_prior_seconds, render_time
from .rules import RuleViolation, check_request

__all__ = [
    "URL_FIELDS",
    "Catalog",
    "Cost",
    "MediaKind",
    "MediaLimits",
    "ModelRules",
    "PricedJob",
    "Rate",
    "RenderTime",
    "RuleViolation",
    "Span",
    "check_request",
    "load_catalog",
    "max_video_bytes",
    "price_jobs",
    "price_request",
    "render_prior_seconds",
    "render_time",
]
