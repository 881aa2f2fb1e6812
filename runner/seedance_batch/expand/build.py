"""Expand a manifest into jobs: matrix x shots, include/exclude, sandboxed Jinja.

Per shot, its matrix (or the campaign's) gives combinations (:mod:`.matrix`);
each combination is one :class:`Job`, or one per take (:mod:`.takes`), and that in
each profile (:mod:`.profiles`). Parameters resolve ``defaults`` < profile < shot <
the shot's ``profiles.<name>`` < combination; every string of the templated
parameters (the prompt and the URL lists, :data:`~.params.TEMPLATED`) is a Jinja
template (:mod:`.templating`) rendered with, later winning: ``take`` (its number,
with takes) and ``profile`` (its name, with profiles); the resolved
parameters of :data:`~.params.CONTEXT` (model, resolution, duration, aspect_ratio,
generate_audio); ``vars``; the shot's ``vars``; the combination's keys; ``shot``
(its ``id``) and ``campaign``. All templates of one expansion (every
profile's) share one :class:`~.templating.TemplateBudget` of time.

All independent problems are raised together (:class:`ManifestErrors`); a
problem every job of a shot shares is reported once, naming its first job.
Two jobs with the same request, label or output file are errors too
(:mod:`.clashes`). Output files are named so a campaign renders to the same files
on every OS (:mod:`.paths`). The size of the manifest's expansion is bounded
twice: the number of jobs before any is built (:mod:`.limits`), and the bytes the
built jobs hold (:data:`MAX_EXPANDED_BYTES`) while they are built.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from operator import getitem, itemgetter
from typing import TYPE_CHECKING, Any

import orjson

from ..errors import Location, ManifestError, ManifestErrors, RepeatedProblems
from ..safetext import service_text
from .clashes import clashes
from .matrix import Combination
from .params import CONTEXT, IN_REQUEST_ORDER, INPUT, NAMES, REQUIRED, TEMPLATED
from .paths import MAX_NAME, folder_name_problems, safe_output_path
from .profiles import PROFILE_SUFFIX, for_profile, profile_names
from .shots import PreparedShot, label_part, prepare_shots, slug_part
from .takes import SEED, SEED_RANGE, combination_id, take_label, with_seed
from .templating import TemplateBudget, TemplateProblem, compile_template

if TYPE_CHECKING:
    from ..manifest import Manifest

__all__ = ["MAX_EXPANDED_BYTES", "Job", "expand", "expand_profiles", "request_key"]

_PARAMS = frozenset(NAMES)
_TEMPLATED = frozenset(TEMPLATED)
# The parameters a request carries at its top, beside ``input`` (the model).
_TOP = tuple(p.name for p in IN_REQUEST_ORDER if not p.in_input)
# The bytes all jobs of a manifest may hold in requests (canonical JSON), labels and
# file names: what long prompts or matrix values multiply by the number of jobs.
# About 670 bytes a job at MAX_JOBS (bench/plan_scale.py's jobs hold 370), on top of
# what the jobs take themselves, so validate stays within 500 MB; fewer jobs may
# have longer prompts (1 KB each for 100,000).
MAX_EXPANDED_BYTES = 96 * 2**20
# The longest rendered file name quoted in a message (it is the user's text, maybe 100 KB).
_SHOWN_NAME = 200


@dataclass(frozen=True, slots=True)
class Job:
    """One concrete API request the manifest implies.

    ``request`` is the exact submit body without ``callback_url``:
    ``{"model": ..., "input": {...}}`` with unset optional fields omitted.
    ``key`` is its identity (see :func:`request_key`): same request, same job.
    ``origins`` says where each request field's value was written (``"prompt"``,
    ``"duration"``, ``"image_urls"``... -> location), so a rule violation points
    at the line to fix. ``output_path`` is relative to the manifest's output dir.
    ``take`` is its take number (1 for a combination rendered once), ``profile`` the
    profile it was expanded for (None without profiles); both are in its label
    (``hero/de-DE/9:16#2@final``).
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
    take: int = 1
    profile: str | None = None

    @property
    def take_label(self) -> str:
        """Its label without the profile (``hero/de-DE/9:16#2``): the same for its counterpart in every profile."""
        if self.profile is None:
            return self.label
        return self.label[: len(self.label) - len(self.profile) - len(PROFILE_SUFFIX)]

    @property
    def combination_id(self) -> str:
        """Its combination's identity, the same for every take of it in every profile (:func:`.takes.combination_id`)."""
        return combination_id(self.shot, self.combination)

    @property
    def model(self) -> str:
        """The request's model id."""
        return str(self.request["model"])

    @property
    def input(self) -> Mapping[str, Any]:
        """The request's ``input``."""
        data: Mapping[str, Any] = self.request["input"]
        return data


def request_key(request: Mapping[str, Any]) -> str:
    """A job's identity: sha256 of the canonical JSON of its request (no callback_url).

    Canonical JSON is ``json.dumps(body, sort_keys=True, separators=(",", ":"),
    ensure_ascii=False)`` encoded as UTF-8. orjson produces the same bytes about ten
    times faster (a test holds the two equal); the json module takes what orjson
    refuses (integers past 64 bits, lone surrogates).
    """
    return hashlib.sha256(_canonical(request)).hexdigest()


def _canonical(request: Mapping[str, Any]) -> bytes:
    """The canonical JSON bytes :func:`request_key` hashes."""
    body = {k: v for k, v in request.items() if k != "callback_url"} if "callback_url" in request else request
    try:
        return orjson.dumps(body, option=orjson.OPT_SORT_KEYS)
    except orjson.JSONEncodeError:
        return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8", "surrogatepass")


def expand(manifest: Manifest, profile: str | None = None, *, seeds: tuple[int, int] = SEED_RANGE) -> list[Job]:
    """Every job the manifest implies in ``profile`` (None: its default one), in shot order then matrix order.

    Every profile is expanded and checked (see :func:`expand_profiles`): ``profile``'s jobs are returned.
    """
    jobs = expand_profiles(manifest, seeds=seeds)
    return jobs[profile if profile is not None else manifest.profile]


def expand_profiles(manifest: Manifest, *, seeds: tuple[int, int] = SEED_RANGE) -> dict[str | None, list[Job]]:
    """The jobs of every profile of the manifest, by profile (``{None: jobs}`` without profiles).

    Raises :class:`ManifestErrors` (or one :class:`ManifestError`) with every
    independent problem: matrix mistakes, template errors, undefined variables,
    unsafe output paths, duplicate requests, labels or output files (across
    profiles too: a draft and its final are two requests and two files), and a
    manifest too big to expand (too many jobs, or jobs holding more than
    :data:`MAX_EXPANDED_BYTES`, counted over every profile), which stops the
    expansion at once. Its templates share one :class:`~.templating.TemplateBudget`,
    opened here. Derived take seeds fall within ``seeds`` (both ends included).
    """
    names = profile_names(manifest)
    jobs: dict[str | None, list[Job]] = {}
    with TemplateBudget():
        errors: list[ManifestError] = []
        problems = RepeatedProblems("more job(s) of this shot")
        shots = prepare_shots(manifest, errors)
        errors += folder_name_problems(manifest, shots if manifest.output.filename is None else [])
        spent = 0  # bytes the built jobs hold, over every profile
        for name in names:
            profiled = [p for p in (for_profile(shot, manifest, name, errors) for shot in shots) if p is not None]
            jobs[name], spent = _build(manifest, profiled, problems, errors, spent=spent, seeds=seeds)
    errors += problems.errors()
    if not errors:
        # Default paths are all <campaign>/<shot id>/<slug>.mp4: none can be another's folder.
        errors += clashes([job for found in jobs.values() for job in found], nested=manifest.output.filename is not None)
    ManifestErrors.raise_if_any(errors)
    return jobs


def _build(manifest: Manifest, shots: list[PreparedShot], problems: RepeatedProblems, errors: list[ManifestError],
           *, spent: int, seeds: tuple[int, int]) -> tuple[list[Job], int]:
    """The jobs of every prepared shot, and the bytes held since the expansion began (``spent`` before);
    stops at once past :data:`MAX_EXPANDED_BYTES`."""
    jobs: list[Job] = []
    total = sum(len(shot.combos) for shot in shots)
    for shot in shots:
        builder = _Builder(manifest, shot, problems, spent, seeds)
        for combo in shot.combos:
            for take in builder.takes(combo):
                job = builder.job(combo, take)
                if job is not None:
                    jobs.append(job)
                    if builder.spent > MAX_EXPANDED_BYTES:  # stop now: the next jobs would only take more memory
                        too_big = _too_big(shot, job.label, len(jobs), total)
                        ManifestErrors.raise_if_any([*errors, *problems.errors(), too_big])
        spent = builder.spent
    return jobs, spent


def _too_big(plan: PreparedShot, label: str, built: int, total: int) -> ManifestError:
    where = plan.location
    return ManifestError(
        f"the jobs' requests, labels and file names add up to more than {MAX_EXPANDED_BYTES // 2**20} MiB "
        f"by this one ({built:,} of {total:,} jobs built); shorten the prompts or the matrix values, or split the campaign",
        location=Location(where.file, where.line, where.col, where.path, label),
    )


class _Builder:
    """Builds the jobs of one shot; everything per shot is computed once here.

    Per job only what differs is built; parameters and origins that a
    combination does not touch are the shot's own, shared objects.
    """

    def __init__(self, manifest: Manifest, plan: PreparedShot, problems: RepeatedProblems, spent: int = 0,
                 seeds: tuple[int, int] = SEED_RANGE) -> None:
        self.manifest, self.plan, self.problems = manifest, plan, problems
        self.spent = spent  # bytes the jobs built so far hold (this shot's and the shots' before)
        self.seeds = seeds
        # The take and profile parts of labels and file names (``#2``, ``@final``; ``_take2``, ``_final``).
        self.profile = plan.profile
        self.label_end = "" if plan.profile is None else PROFILE_SUFFIX + plan.profile
        self.slug_end = "" if plan.profile is None else "_" + slug_part(plan.profile)
        self.campaign = manifest.name
        self.axis_names = [axis.name for axis in plan.axes]
        self.param_axes = [axis.name for axis in plan.axes if axis.name in _PARAMS]
        positions = [p for p, axis in enumerate(plan.axes) if axis.name in _PARAMS]
        # The indices of the parameter axes' values: what tells combinations' origins apart.
        self.param_index: Callable[[tuple[int, ...]], Any] = itemgetter(*positions) if positions else _nothing
        self.filename = manifest.output.filename
        self.filename_at = manifest.output.filename_location
        # Context, later wins: take, profile < resolved parameters < vars < shot vars <
        # combination keys < shot, campaign. A parameter a combination sets is also one of
        # its keys, so it has the combination's precedence there too. ``take`` and
        # ``profile`` come first, not reserved: a manifest's own axis or var of that name
        # (written before takes existed) keeps its meaning. Each is defined only where it
        # means something (takes rendered, profiles declared).
        shot_params = {k: plan.params[k] for k in CONTEXT if plan.params.get(k) is not None}
        self.base = {**({} if plan.profile is None else {"profile": plan.profile}), **shot_params, **plan.vars}
        self.last = {"shot": plan.context, "campaign": self.campaign}
        self.origins: dict[tuple[Any, ...], Mapping[str, Location]] = {}
        self.label_parts = [[f"/{part}" for part in column] for column in plan.parts]
        self.slug_parts = [[f"_{part}" for part in column] for column in plan.slugs]
        # A seed axis makes takes, named ``#N``: its values are not parts of the label.
        self.take_axes = frozenset() if plan.seed_axis is None else frozenset({SEED})
        if plan.seed_axis is not None:
            self.label_parts[plan.seed_axis] = [""] * len(self.label_parts[plan.seed_axis])
            self.slug_parts[plan.seed_axis] = [""] * len(self.slug_parts[plan.seed_axis])

    def takes(self, combo: Combination) -> range | tuple[int]:
        """The take numbers of ``combo``: 1 to ``takes:``; its seed's place in the seed axis; else just 1."""
        plan = self.plan
        position = plan.seed_axis
        if position is not None:
            if combo.axis_index is not None:
                return (combo.axis_index[position] + 1,)
            values = plan.axes[position].values  # a combination an include made: its seed's place, if any
            seed = combo.values.get(SEED)
            return (values.index(seed) + 1 if seed in values else 1,)
        return range(1, plan.takes.count + 1) if plan.takes is not None else (1,)

    def job(self, combo: Combination, take: int = 1) -> Job | None:
        plan = self.plan
        values = combo.values
        params = plan.params
        original = combo.axis_index is not None and not combo.includes
        combo_set = self.param_axes if original else [k for k in values if k in _PARAMS]
        if combo_set:
            params = {**params, **{k: values[k] for k in combo_set}}
        label, slug = self.label(combo)
        origins = self.origins_of(combo, combo_set) if combo_set else plan.origins
        if plan.named_takes:
            label, slug = take_label(label, take), f"{slug}_take{take}"
            if plan.seed_axis is None:
                seeded, origins = self.seeded(params, origins, label)
                if seeded is None:
                    return None
                params = seeded
        label, slug = label + self.label_end, slug + self.slug_end
        missing = [name for name in REQUIRED if params.get(name) is None]
        if missing:
            self.missing(missing, label)
            return None
        context = {**self.base, **values, **self.last}
        if plan.named_takes:
            context = {"take": take, **context}
        request = self.request(params, context, origins, label)
        if request is None:
            return None
        try:  # request_key's bytes, inline: this runs once per job (no callback_url here)
            canonical = orjson.dumps(request, option=orjson.OPT_SORT_KEYS)
        except orjson.JSONEncodeError:
            canonical = _canonical(request)
        key = hashlib.sha256(canonical).hexdigest()
        output = self.output_path(label, slug, key, context)
        if output is None:
            return None
        self.spent += len(canonical) + len(label) + len(output)
        return Job(self.campaign, plan.id, label, values, request, key, output, plan.location, origins, plan.private,
                   take, self.profile)

    def seeded(self, params: dict[str, Any], origins: Mapping[str, Location],
               label: str) -> tuple[dict[str, Any] | None, Mapping[str, Location]]:
        """The take's parameters with its seed (:func:`.takes.with_seed`; None: a problem, recorded)."""
        takes = self.plan.takes
        assert takes is not None  # named takes without a seed axis come from takes:
        seeded, origins, problem = with_seed(params, origins, label, takes, self.seeds)
        if problem is not None:
            self.problems.add((self.plan.index, "pinned seed", params.get(SEED)), problem,
                              origins.get(SEED, takes.location), label)
        return seeded, origins

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
        keys = [k for k in self.axis_names if k in combo.values and k not in self.take_axes]
        keys += [k for k in combo.values if k not in self.axis_names and k not in _PARAMS]
        if not keys:
            keys = [k for k in combo.values if k not in _TEMPLATED]
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
        data = {name: params[name] for name in INPUT if params.get(name) is not None}
        for name in TEMPLATED:
            if name in data:
                value = self.render(name, data[name], context, origins, label)
                if value is None:
                    return None
                data[name] = value
        request = {}
        for name in _TOP:  # (the model)
            request[name] = params[name]
        request["input"] = data
        return request

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
            if len(slug.encode("utf-8")) > MAX_NAME - len(".mp4"):  # found now, not when the paid video arrives
                self.problems.add(
                    (self.plan.index, "long slug"),
                    f"the job's file name {slug[:40]}...mp4 is longer than {MAX_NAME} bytes (long matrix values); "
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
            shown = service_text(rendered, limit=_SHOWN_NAME)
            self.problems.add((self.plan.index, "filename", why), f"output file name {shown!r} {why}", where, label)
        return safe


def _nothing(index: tuple[int, ...]) -> tuple[()]:
    return ()
