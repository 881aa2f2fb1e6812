"""Sandboxed Jinja for prompts, URLs and output file names.

Templates run in :class:`jinja2.sandbox.ImmutableSandboxedEnvironment` with
:class:`~jinja2.StrictUndefined` (a missing variable is an error, never an empty
string). Immutable: no template can change a list or mapping it reads
(``vars.update(...)``, ``items.append(...)``), so one job's template cannot change
the vars, and so the request and key, of the jobs after it.

On top of Jinja's sandbox, refused before anything runs: names starting with
``_`` (``''.__class__.__mro__``), ``include``/``import``/``extends`` (there is
nothing to load), macros and loops inside loops (their work multiplies: a
template must render in bounded time), sources longer than :data:`MAX_SOURCE`
characters or nesting deeper than :data:`MAX_NESTING` levels (compiling them is
slow, or overflows the stack).

Bounded means bounded (see "Limits" below): every text a template builds, and
the text it renders, has at most :data:`MAX_TEXT` characters, and every list at
most :data:`MAX_ITEMS` items. The check runs *before* the work wherever the work
could be larger than its inputs: ``*``, ``+``, ``%`` and ``~``, format widths
(``"%999999999d"``, ``"{:>999999999}"``), the width-taking filters (``center``,
``indent``, ``wordwrap``, ``format``, ``join``, ``replace``, ``batch``,
``slice``, ``sum``...) and ``str`` methods (``zfill``, ``ljust``, ``center``,
``expandtabs``, ``join``, ``replace``, ``translate``...), slices, and every write.
Jinja folds constant expressions while compiling; the intercepted operators and
the wrapped filters are never folded, so none of this runs unchecked at compile
time either. A render has :data:`MAX_RENDER_SECONDS`; a template that ran out of
time fails at once for every later job (the error repeats, reported once), and
all compiling and rendering of one run shares :data:`MAX_TEMPLATE_SECONDS`, so a
thousand slow jobs cannot take a thousand times the bound.

A rendered request must be the same on every run, since its hash is the job's
key (a different key is a new job, paid for again). So the ``random`` filter is
gone, and writing a function or method (``{{ name.upper }}`` without ``()``) or a
lazy sequence (``{{ items|map('upper') }}``), whose text holds a memory address,
is an error. Each distinct template source is compiled once.

The modules, by meaning: :mod:`.limits` (the bounds), :mod:`.sizes` (sizes
measured without building), :mod:`.budget` and :mod:`.deadline` (time),
:mod:`.formatting` (``%`` and ``str.format``), :mod:`.sandbox` (the environment,
its operators and calls), :mod:`.filters` and :mod:`.guards` (bounded filters;
loops, ``~`` and slices), :mod:`.fastpath`, :mod:`.renderer` (Jinja under the
budget), :mod:`.full` (Jinja's compile and the refusals) and :mod:`.compiler` (the
cache). Importing this package loads no Jinja: the first template that needs it does.
"""

from __future__ import annotations

from .budget import MAX_RENDER_SECONDS, MAX_TEMPLATE_SECONDS, TemplateBudget
from .compiler import compile_template, is_template
from .fastpath import Renderer
from .limits import MAX_ITEMS, MAX_NESTING, MAX_SOURCE, MAX_TEXT, TemplateProblem

__all__ = [
    "MAX_ITEMS",
    "MAX_NESTING",
    "MAX_RENDER_SECONDS",
    "MAX_SOURCE",
    "MAX_TEMPLATE_SECONDS",
    "MAX_TEXT",
    "Renderer",
    "TemplateBudget",
    "TemplateProblem",
    "compile_template",
    "is_template",
]
