"""Expand a manifest into jobs: matrix x shots, include/exclude, sandboxed Jinja.

Per shot, its matrix (or the campaign's) gives combinations (:mod:`.matrix`);
each combination is one :class:`Job`. Parameters resolve ``defaults`` < shot <
combination; every string of the prompt and the URL lists is a Jinja template
(:mod:`.templating`) rendered with, later winning: the resolved model,
resolution, duration, aspect_ratio and generate_audio; ``vars``; the shot's
``vars``; the combination's keys; ``shot`` (its ``id``) and ``campaign``.

All independent problems are raised together (:class:`ManifestErrors`); a
problem every job of a shot shares is reported once, naming its first job.
Two jobs with the same request, label or output file are errors too: the same
request is one job, paid for once.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from operator import getitem, itemgetter
from typing import TYPE_CHECKING, Any

import orjson

from .errors import Location, ManifestError, ManifestErrors, RepeatedProblems
from .matrix import Combination
from .shotplan import PARAMS, TEMPLATED, ShotPlan, label_part, shot_plans, slug_part
from .templating import TemplateProblem, compile_template

if TYPE_CHECKING:
    from .manifest import Manifest

__all__ = ["Job", "expand", "request_key", "safe_output_path"]

_PARAMS = frozenset(PARAMS)
REQUIRED = ("model", "prompt", "resolution", "duration")
# The resolved parameters templates see by name (prompt and URLs are the templates).
CONTEXT_PARAMS = ("model", "resolution", "duration", "aspect_ratio", "generate_audio")
_DRIVE = re.compile(r"^[A-Za-z]:")
_MAX_NAME = 255  # bytes in one file or folder name on common file systems


@dataclass(frozen=True, slots=True)
class Job:
    """One concrete API request the manifest implies.

    ``request`` is the exact submit body without ``callback_url``:
    ``{"model": ..., "input": {...}}`` with unset optional fields omitted.
    ``key`` is its identity (see :func:`request_key`): same request, same job.
    ``origins`` says where each request field's value was written (``"prompt"``,
    ``"duration"``, ``"image_urls"``... -> location), so a rule violation points
    at the line to fix. ``output_path`` is relative to the manifest's output dir.
    """

    campaign: str
    shot: str
    label: str
    combination: Mapping[str, Any]
    request: Mapping[str, Any]
    key: str
    output_path: str
    location: Location
    origins: Mapping[str, Location] = field(default_factory=dict)
    private: bool = False

    @property
    def model(self) -> str:
        return str(self.request["model"])

    @property
    def input(self) -> Mapping[str, Any]:
        return self.request["input"]


def request_key(request: Mapping[str, Any]) -> str:
    """A job's identity: sha256 of the canonical JSON of its request (no callback_url).

    Canonical JSON is ``json.dumps(body, sort_keys=True, separators=(",", ":"),
    ensure_ascii=False)`` encoded as UTF-8. orjson produces the same bytes about ten
    times faster (a test holds the two equal); the json module takes what orjson
    refuses (integers past 64 bits, lone surrogates).
    """
    body = {k: v for k, v in request.items() if k != "callback_url"} if "callback_url" in request else request
    try:
        canonical = orjson.dumps(body, option=orjson.OPT_SORT_KEYS)
    except orjson.JSONEncodeError:
        canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8", "surrogatepass")
    return hashlib.sha256(canonical).hexdigest()


def expand(manifest: Manifest) -> list[Job]:
    """Every job the manifest implies, in shot order then matrix order.

    Raises :class:`ManifestErrors` (or one :class:`ManifestError`) with every
    independent problem: matrix mistakes, template errors, undefined variables,
    unsafe output paths, duplicate requests, labels or output files.
    """
    errors: list[ManifestError] = []
    problems = RepeatedProblems("more job(s) of this shot")
    jobs: list[Job] = []
    for plan in shot_plans(manifest, errors):
        builder = _Builder(manifest, plan, problems)
        for combo in plan.combos:
            job = builder.job(combo)
            if job is not None:
                jobs.append(job)
    errors += problems.errors()
    if not errors:
        errors += _clashes(jobs)
    ManifestErrors.raise_if_any(errors)
    return jobs


class _Builder:
    """Builds the jobs of one shot; everything per shot is computed once here.

    Per job only what differs is built; parameters and origins that a
    combination does not touch are the shot's own, shared objects.
    """

    def __init__(self, manifest: Manifest, plan: ShotPlan, problems: RepeatedProblems) -> None:
        self.manifest, self.plan, self.problems = manifest, plan, problems
        self.campaign = manifest.name
        self.axis_names = [axis.name for axis in plan.axes]
        self.param_axes = [axis.name for axis in plan.axes if axis.name in _PARAMS]
        positions = [p for p, axis in enumerate(plan.axes) if axis.name in _PARAMS]
        # The indices of the parameter axes' values: what tells combinations' origins apart.
        self.param_index: Callable[[tuple[int, ...]], Any] = itemgetter(*positions) if positions else _nothing
        self.filename = manifest.output_filename
        self.filename_at = manifest.locate(("output", "filename")) if self.filename is not None else None
        # Context, later wins: resolved parameters < vars < shot vars < combination keys
        # < shot, campaign. A parameter a combination sets is also one of its keys, so
        # it has the combination's precedence there too.
        shot_params = {k: plan.params[k] for k in CONTEXT_PARAMS if plan.params.get(k) is not None}
        self.base = {**shot_params, **plan.vars}
        self.last = {"shot": plan.context, "campaign": self.campaign}
        self.origins: dict[tuple[Any, ...], Mapping[str, Location]] = {}
        self.label_parts = [[f"/{part}" for part in column] for column in plan.parts]
        self.slug_parts = [[f"_{part}" for part in column] for column in plan.slugs]

    def job(self, combo: Combination) -> Job | None:
        plan = self.plan
        values = combo.values
        params = plan.params
        original = combo.axis_index is not None and not combo.includes
        combo_set = self.param_axes if original else [k for k in values if k in _PARAMS]
        if combo_set:
            params = {**params, **{k: values[k] for k in combo_set}}
        label, slug = self.label(combo)
        origins = self.origins_of(combo, combo_set) if combo_set else plan.origins
        missing = [name for name in REQUIRED if params.get(name) is None]
        if missing:
            self.missing(missing, label)
            return None
        context = {**self.base, **values, **self.last}
        request = self.request(params, context, origins, label)
        if request is None:
            return None
        key = request_key(request)
        output = self.output_path(label, slug, key, context)
        if output is None:
            return None
        return Job(self.campaign, plan.id, label, values, request, key, output, plan.location, origins, plan.private)

    def origins_of(self, combo: Combination, combo_set: list[str]) -> Mapping[str, Location]:
        """The shot's origins with the combination's own values; shared by equal combinations."""
        index = combo.axis_index
        cache_key = (None if index is None else self.param_index(index), combo.includes)
        found = self.origins.get(cache_key)
        if found is None:
            locate = self.manifest.locate
            found = {**self.plan.origins, **{k: self.plan.origin(combo, k, locate) for k in combo_set}}
            self.origins[cache_key] = found
        return found

    def label(self, combo: Combination) -> tuple[str, str]:
        plan = self.plan
        if combo.axis_index is not None:
            index = combo.axis_index  # per axis, the part of the value at that index
            label = plan.id + "".join(map(getitem, self.label_parts, index))
            return label, plan.id + "".join(map(getitem, self.slug_parts, index))
        # A combination an include entry created: its axis values, then its own keys;
        # request parameters only when nothing else tells it apart.
        keys = [k for k in self.axis_names if k in combo.values]
        keys += [k for k in combo.values if k not in self.axis_names and k not in _PARAMS]
        if not keys:
            keys = [k for k in combo.values if k not in TEMPLATED]
        parts = [p for p in (label_part(combo.values[k]) for k in keys) if p is not None]
        return "/".join([plan.id, *parts]), "_".join([plan.id, *map(slug_part, parts)])

    def missing(self, names: list[str], label: str) -> None:
        for name in names:
            self.problems.add(
                (self.plan.index, "missing", name),
                f"no {name} for this job; set {name!r} in defaults, on the shot, or as a matrix axis",
                self.plan.location, label,
            )

    def request(self, params: dict[str, Any], context: dict[str, Any], origins: Mapping[str, Location], label: str) -> dict[str, Any] | None:
        data = {name: params[name] for name in _INPUT_ORDER if params.get(name) is not None}
        for name in _TEMPLATED_ORDER:
            if name in data:
                value = self.render(name, data[name], context, origins, label)
                if value is None:
                    return None
                data[name] = value
        return {"model": params["model"], "input": data}

    def render(self, name: str, value: Any, context: dict[str, Any], origins: Mapping[str, Location], label: str) -> Any:
        try:
            if isinstance(value, str):
                return compile_template(value)(context)
            if isinstance(value, list):
                return [compile_template(v)(context) if isinstance(v, str) else v for v in value]
            return value
        except TemplateProblem as problem:
            self.template_problem(name, problem, origins.get(name, self.plan.location), context, label)
            return None

    def template_problem(self, name: str, problem: TemplateProblem, where: Location, context: dict[str, Any], label: str) -> None:
        message = problem.message
        if problem.line is not None and problem.line > 1:
            message += f" (line {problem.line} of the template)"
        if problem.undefined:
            message += f"; defined: {', '.join(sorted(context))}"
        self.problems.add((self.plan.index, name, problem.message), message, where, label)

    def output_path(self, label: str, slug: str, key: str, context: dict[str, Any]) -> str | None:
        """Where the job's video goes below output.dir; None (and a problem) if it cannot be written."""
        if self.filename is None:
            if len(slug.encode("utf-8")) > _MAX_NAME - len(".mp4"):  # found now, not when the paid video arrives
                self.problems.add(
                    (self.plan.index, "long slug"),
                    f"the job's file name {slug[:40]}...mp4 is longer than {_MAX_NAME} bytes (long matrix values); "
                    "set output.filename, e.g. '{{ shot.id }}/{{ key }}'",
                    self.plan.location, label,
                )
                return None
            return f"{self.campaign}/{self.plan.id}/{slug}.mp4"
        where = self.filename_at or self.plan.location
        context = {**context, "label": label, "slug": slug, "key": key}
        try:
            rendered = compile_template(self.filename)(context)
        except TemplateProblem as problem:
            self.template_problem("filename", problem, where, context, label)
            return None
        safe, why = safe_output_path(rendered)
        if safe is None:
            self.problems.add((self.plan.index, "filename", why), f"output file name {rendered!r} {why}", where, label)
        return safe


def _nothing(index: tuple[int, ...]) -> tuple[()]:
    return ()


_INPUT_ORDER = ("prompt", "duration", "resolution", "aspect_ratio", "generate_audio",
                "image_urls", "reference_image_urls", "reference_video_urls", "reference_audio_urls")
_TEMPLATED_ORDER = tuple(name for name in _INPUT_ORDER if name in TEMPLATED)


def safe_output_path(rendered: str) -> tuple[str | None, str]:
    """``(normalised relative path, "")``, or ``(None, why it is refused)``.

    A render path must stay below the output folder: never absolute, never
    ``..``; ``.`` and empty segments are dropped; ``.mp4`` is added when missing.
    """
    text = rendered.strip()
    if not text:
        return None, "is empty"
    if "\\" in text or "\0" in text or any(ord(c) < 32 for c in text):
        return None, "contains a backslash or control character; use '/' between folders"
    if text.startswith("/") or _DRIVE.match(text):
        return None, "is absolute; it must be a relative path below output.dir"
    parts = [p for p in text.split("/") if p not in ("", ".")]
    if ".." in parts:
        return None, "contains '..'; it must stay below output.dir"
    if not parts or any(len(p.encode("utf-8")) > _MAX_NAME for p in parts):
        return None, f"has a path segment that is empty or longer than {_MAX_NAME} bytes"
    path = "/".join(parts)
    return (path if path.lower().endswith(".mp4") else path + ".mp4"), ""


def _clashes(jobs: list[Job]) -> list[ManifestError]:
    """Two jobs with one label, one request, or one output file."""
    if _all_distinct(jobs):
        return []
    errors: list[ManifestError] = []
    labels: dict[str, Job] = {}
    keys: dict[str, Job] = {}
    files: dict[str, Job] = {}
    for job in jobs:
        first = labels.setdefault(job.label, job)
        if first is not job:
            errors.append(ManifestError(
                f"two jobs have the label {job.label!r}", location=_at(job),
                hint="give the include entries a value that tells them apart",
            ))
            continue
        first = keys.setdefault(job.key, job)
        if first is not job:
            errors.append(ManifestError(
                f"jobs {first.label!r} and {job.label!r} make the identical request (key {job.key[:12]}); "
                "the same request is one job and is paid for once", location=_at(job),
                hint="use the value that tells them apart in the prompt or a parameter, or drop one of them",
            ))
        first = files.setdefault(job.output_path.casefold(), job)
        if first is not job:
            errors.append(ManifestError(
                f"jobs {first.label!r} and {job.label!r} would write the same file {job.output_path!r}", location=_at(job),
                hint="put {{ slug }} or another distinguishing value in output.filename",
            ))
    return errors


def _all_distinct(jobs: list[Job]) -> bool:
    # The usual answer, found at set speed; only a clash needs the slower walk that names both jobs.
    n = len(jobs)
    return (len({job.label for job in jobs}) == n and len({job.key for job in jobs}) == n
            and len({job.output_path.casefold() for job in jobs}) == n)


def _at(job: Job) -> Location:
    where = job.location
    return Location(where.file, where.line, where.col, where.path, job.label)
