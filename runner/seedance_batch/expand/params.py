"""THE table of request parameters: every list of parameters in the code is derived from it.

One row per parameter a manifest may set and a request may carry: its name, the
kind of value, its place in the request (``order``: the plan JSON shows requests
in it), whether its text is a Jinja template, whether templates see its
resolved value by name, whether a job needs it, where the request carries it,
the key of the model's data in ``schemas/models.json`` that its rule reads, and
its report column. The rows are in the order the reports show the parameters.

Adding a parameter is a row here, its property in ``schemas/manifest.schema.json``
(``$defs.params`` and ``$defs.shot``) and, when it has a rule, that key in each
model of ``schemas/models.json``; tests/test_params.py holds the three in agreement.
``seed`` was added so (a whole number, sent as ``input.seed``, optional, not a
template, a ``seed`` column at the end of report.csv)::

    Param("seed", INTEGER, order=10, rule="seed", csv="seed")

with ``"seed": {"min": 0, "max": 4294967295}`` in each model of models.json. It is the
one parameter APIDot does not list in its public field table: its own playground and
client code send it (see ../shared/apidot-contract.md), so it is sent here as they send it.

The kinds say how a value is checked against its model (:mod:`seedance_batch.models`):

``model``    a model id the catalog knows
``text``     non-empty text
``integer``  a whole number; with a rule, within the model's ``{"min", "max"}``
``choice``   text; with a rule, one of the model's list of values
``boolean``  true or false
``urls``     a list of absolute http(s) URLs; with a rule, at most the model's number of them
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

__all__ = [
    "BOOLEAN", "CHOICE", "CONTEXT", "CSV_AFTER_STATE", "CSV_AT_END", "INPUT", "INTEGER", "IN_REQUEST_ORDER", "KINDS",
    "MODEL", "NAMES", "PARAMS", "REQUIRED", "TEMPLATED", "TEXT", "URLS", "Param", "by_name", "csv_params",
]

# The kinds of value (see the module's docstring).
MODEL, TEXT, INTEGER, CHOICE, BOOLEAN, URLS = "model", "text", "integer", "choice", "boolean", "urls"
KINDS = (MODEL, TEXT, INTEGER, CHOICE, BOOLEAN, URLS)
# Where a parameter's column sits in report.csv (and its key in report.json's jobs): the
# first report version's parameter columns follow ``state``; report columns are a stable
# interface, so any later one goes after every column shipped before it (report/tables.py
# keeps the order they shipped in). Either way, in table order.
CSV_AFTER_STATE, CSV_AT_END = "after state", "at the end"


@dataclass(frozen=True, slots=True)
class Param:
    """One request parameter (see the module's docstring for the columns).

    ``in_input``: sent as ``input.<name>`` (else at the top of the request, as
    ``model`` is). ``words``: how a message names it, when not by its name.
    ``unit``: what a whole number counts (``duration must be a whole number of
    seconds``). ``refused``: how a value not among the model's choices reads
    (``{model}`` is the model's id). ``limit_note``: why a list has the model's
    limit. ``csv``: its report column, at ``csv_place``.
    """

    name: str
    kind: str
    order: int
    templated: bool = False
    in_context: bool = False
    required: bool = False
    in_input: bool = True
    rule: str | None = None
    csv: str | None = None
    csv_place: str = CSV_AT_END
    words: str | None = None
    unit: str | None = None
    refused: str = "is not allowed"
    limit_note: str | None = None

    @property
    def field(self) -> str:
        """Where the request carries it: ``input.duration``, or ``model``."""
        return f"input.{self.name}" if self.in_input else self.name

    @property
    def said(self) -> str:
        """How a message names it: ``aspect ratio``, ``duration``."""
        return self.words or self.name


PARAMS: tuple[Param, ...] = (
    Param("model", MODEL, order=0, in_context=True, required=True, in_input=False, csv="model", csv_place=CSV_AFTER_STATE),
    Param("prompt", TEXT, order=1, templated=True, required=True),
    Param("resolution", CHOICE, order=3, in_context=True, required=True, rule="resolutions",
          refused="is not offered by {model}", csv="resolution", csv_place=CSV_AFTER_STATE),
    Param("duration", INTEGER, order=2, in_context=True, required=True, rule="duration", unit="seconds",
          csv="duration_s", csv_place=CSV_AFTER_STATE),
    Param("aspect_ratio", CHOICE, order=4, in_context=True, rule="aspect_ratios", words="aspect ratio",
          csv="aspect_ratio", csv_place=CSV_AFTER_STATE),
    Param("generate_audio", BOOLEAN, order=5, in_context=True, csv="generate_audio", csv_place=CSV_AFTER_STATE),
    Param("image_urls", URLS, order=6, templated=True, rule="max_image_urls", limit_note="first and last frame"),
    Param("reference_image_urls", URLS, order=7, templated=True),
    Param("reference_video_urls", URLS, order=8, templated=True),
    Param("reference_audio_urls", URLS, order=9, templated=True),
    # Undocumented by APIDot's field table, sent by its own playground and client code.
    Param("seed", INTEGER, order=10, rule="seed", csv="seed"),
)

# --- Derived: every other list of parameters in the code ------------------------------------------

NAMES: tuple[str, ...] = tuple(p.name for p in PARAMS)
_BY_NAME: Mapping[str, Param] = MappingProxyType({p.name: p for p in PARAMS})
# The parameters in the order a request lists them (``model``, then ``input``'s fields).
IN_REQUEST_ORDER: tuple[Param, ...] = tuple(sorted(PARAMS, key=lambda p: p.order))
# The request's ``input`` fields, in the order it lists them.
INPUT: tuple[str, ...] = tuple(p.name for p in IN_REQUEST_ORDER if p.in_input)
# What a manifest sets that is a template (rendered per job), in request order.
TEMPLATED: tuple[str, ...] = tuple(p.name for p in IN_REQUEST_ORDER if p.templated)
# The resolved parameters templates see by name.
CONTEXT: tuple[str, ...] = tuple(p.name for p in PARAMS if p.in_context)
# What every job must have, wherever it was set (a job missing several hears of them in this order).
REQUIRED: tuple[str, ...] = tuple(p.name for p in PARAMS if p.required)


def by_name(name: str) -> Param | None:
    """The parameter called ``name``, or None when it is not one."""
    return _BY_NAME.get(name)


def csv_params(place: str) -> tuple[Param, ...]:
    """The parameters with a report column at ``place``, in table order."""
    return tuple(p for p in PARAMS if p.csv is not None and p.csv_place == place)
