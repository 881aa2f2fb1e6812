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
request is one job, paid for once; so is a job whose file would be a folder of
another's (``x.mp4`` and ``x.mp4/y.mp4``).

Output files are named so a campaign renders to the same files on every OS
(:func:`safe_output_path`): NFC, no device name Windows reserves, no control or
bidirectional character, none of the characters Windows refuses, no folder
ending in a dot or space; file names that differ only in case are one file.
The size of the manifest's expansion is bounded twice: the number of jobs
before any is built (:mod:`.shotplan`), and the bytes the built jobs hold
(:data:`MAX_EXPANDED_BYTES`) while they are built.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from operator import getitem, itemgetter
from typing import TYPE_CHECKING, Any

import orjson

from ..errors import Location, ManifestError, ManifestErrors, RepeatedProblems
from ..safetext import service_text
from .matrix import Combination
from .shots import PARAMS, TEMPLATED, ShotPlan, label_part, shot_plans, slug_part
from .templating import TemplateProblem, compile_template

if TYPE_CHECKING:
    from ..manifest import Manifest

__all__ = ["MAX_EXPANDED_BYTES", "Job", "expand", "request_key", "safe_output_path"]

_PARAMS = frozenset(PARAMS)
REQUIRED = ("model", "prompt", "resolution", "duration")
# The resolved parameters templates see by name (prompt and URLs are the templates).
CONTEXT_PARAMS = ("model", "resolution", "duration", "aspect_ratio", "generate_audio")
_DRIVE = re.compile(r"^[A-Za-z]:")
_MAX_NAME = 255  # bytes in one file or folder name on common file systems
# The bytes all jobs of a manifest may hold in requests (canonical JSON), labels and
# file names: what long prompts or matrix values multiply by the number of jobs.
# About 670 bytes a job at MAX_JOBS (bench/plan_scale.py's jobs hold 370), on top of
# what the jobs take themselves, so validate stays within 500 MB; fewer jobs may
# have longer prompts (1 KB each for 100,000).
MAX_EXPANDED_BYTES = 96 * 2**20
# The longest rendered file name quoted in a message (it is the user's text, maybe 100 KB).
_SHOWN_NAME = 200
# C1 controls, DEL, and the line and paragraph separators: invisible, and some
# terminals and file managers act on them.
_CONTROL = re.compile("[\x7f-\x9f\u2028\u2029]")
# Unicode's Bidi_Control characters: they make a name display in another order than
# it is stored ("invoice\u202egnp.mp4" shows as "invoicemp4.png").
_BIDI = re.compile("[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_WINDOWS_REFUSED = re.compile(r'[<>:"|?*]')
_C0 = re.compile(r"[\x00-\x1f\\]")  # C0 controls (NUL included) and the backslash
# Any of the characters above: a clean name costs one search.
_SUSPECT = re.compile(r'[\x00-\x1f\x7f-\x9f\\\u2028\u2029\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069<>:"|?*]')
# Device names Windows reserves in every folder, also with an extension or trailing
# spaces before it ("nul.mp4", "CON .txt"); COM0/LPT0 and the superscript digits too.
_RESERVED = re.compile(
    r"(?i)(?:^|/)(con|prn|aux|nul|com[0-9\u00b9\u00b2\u00b3]|lpt[0-9\u00b9\u00b2\u00b3]|conin\$|conout\$) *(?:\.[^/]*)?(?=/|$)"
)
# A folder name ending in a dot or a space, which Windows silently drops.
_TRAILING = re.compile(r"[. ](?=/|$)")


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
    return hashlib.sha256(_canonical(request)).hexdigest()


def _canonical(request: Mapping[str, Any]) -> bytes:
    """The canonical JSON bytes :func:`request_key` hashes."""
    body = {k: v for k, v in request.items() if k != "callback_url"} if "callback_url" in request else request
    try:
        return orjson.dumps(body, option=orjson.OPT_SORT_KEYS)
    except orjson.JSONEncodeError:
        return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8", "surrogatepass")


def expand(manifest: Manifest) -> list[Job]:
    """Every job the manifest implies, in shot order then matrix order.

    Raises :class:`ManifestErrors` (or one :class:`ManifestError`) with every
    independent problem: matrix mistakes, template errors, undefined variables,
    unsafe output paths, duplicate requests, labels or output files, and a
    manifest too big to expand (too many jobs, or jobs holding more than
    :data:`MAX_EXPANDED_BYTES`), which stops the expansion at once.
    """
    errors: list[ManifestError] = []
    problems = RepeatedProblems("more job(s) of this shot")
    jobs: list[Job] = []
    plans = shot_plans(manifest, errors)
    errors += _folder_name_problems(manifest, plans if manifest.output_filename is None else [])
    spent = 0  # bytes the built jobs hold
    total = sum(len(plan.combos) for plan in plans)
    for plan in plans:
        builder = _Builder(manifest, plan, problems, spent)
        for combo in plan.combos:
            job = builder.job(combo)
            if job is not None:
                jobs.append(job)
                if builder.spent > MAX_EXPANDED_BYTES:  # stop now: the next jobs would only take more memory
                    too_big = _too_big(plan, job.label, len(jobs), total)
                    ManifestErrors.raise_if_any([*errors, *problems.errors(), too_big])
        spent = builder.spent
    errors += problems.errors()
    if not errors:
        # Default paths are all <campaign>/<shot id>/<slug>.mp4: none can be another's folder.
        errors += _clashes(jobs, nested=manifest.output_filename is not None)
    ManifestErrors.raise_if_any(errors)
    return jobs


def _too_big(plan: ShotPlan, label: str, built: int, total: int) -> ManifestError:
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

    def __init__(self, manifest: Manifest, plan: ShotPlan, problems: RepeatedProblems, spent: int = 0) -> None:
        self.manifest, self.plan, self.problems = manifest, plan, problems
        self.spent = spent  # bytes the jobs built so far hold (this shot's and the shots' before)
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
        try:  # request_key's bytes, inline: this runs once per job (no callback_url here)
            canonical = orjson.dumps(request, option=orjson.OPT_SORT_KEYS)
        except orjson.JSONEncodeError:
            canonical = _canonical(request)
        key = hashlib.sha256(canonical).hexdigest()
        output = self.output_path(label, slug, key, context)
        if output is None:
            return None
        self.spent += len(canonical) + len(label) + len(output)
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
            shown = service_text(rendered, limit=_SHOWN_NAME)
            self.problems.add((self.plan.index, "filename", why), f"output file name {shown!r} {why}", where, label)
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
    It must name the same file on every OS: it is normalised to NFC, and refused
    with a control or bidirectional character, a character Windows refuses
    (``< > : " | ? *``), a folder or file named like a Windows device (``CON``,
    ``nul.mp4``, ``com1``...) or a folder ending in a dot or space. ``why`` names
    no more than a character or a device name, so one mistake repeated by every
    job is one problem.
    """
    text = unicodedata.normalize("NFC", rendered.strip())
    if not text:
        return None, "is empty"
    suspect = _SUSPECT.search(text) is not None  # one search for the usual, clean name
    if suspect and _C0.search(text):
        return None, "contains a backslash or control character; use '/' between folders"
    for pattern, kind in ((_CONTROL, "the control character"), (_BIDI, "the bidirectional control")):
        found = pattern.search(text) if suspect else None
        if found:
            return None, f"contains {kind} U+{ord(found.group()):04X}; a file name must be visible text in reading order"
    if text.startswith("/") or _DRIVE.match(text):
        return None, "is absolute; it must be a relative path below output.dir"
    parts = [p for p in text.split("/") if p not in ("", ".")]
    if ".." in parts:
        return None, "contains '..'; it must stay below output.dir"
    if not parts or any(len(p.encode("utf-8")) > _MAX_NAME for p in parts):
        return None, f"has a path segment that is empty or longer than {_MAX_NAME} bytes"
    path = "/".join(parts)
    path = path if path.lower().endswith(".mp4") else path + ".mp4"
    return (None, why) if (why := _windows_problem(path, suspect=suspect)) else (path, "")


def _windows_problem(path: str, one_name: bool = False, suspect: bool = True) -> str:
    """Why Windows could not save ``path`` as named ("" if it can); ``one_name`` for a single folder name.

    ``suspect=False`` says :data:`_SUSPECT` found nothing in it, so no refused character.
    """
    found = _WINDOWS_REFUSED.search(path) if suspect else None
    if found:
        return f"contains {found.group()!r}, which Windows does not allow in file names (< > : \" | ? *)"
    found = _RESERVED.search(path)
    if found:
        device = f"a device name on Windows ({found.group(1).upper()}, reserved with any extension)"
        return f"is {device}" if one_name else f"has a folder or file name that is {device}; choose another name"
    if _TRAILING.search(path):
        if one_name:
            return "ends in a dot, which Windows drops"
        return "has a folder name ending in a dot or space, which Windows drops"
    return ""


def _folder_name_problems(manifest: Manifest, plans: list[ShotPlan]) -> list[ManifestError]:
    """The campaign name and shot ids that cannot name folders and files on every OS.

    The campaign name always names folders (``reports/<campaign>``). Without
    output.filename a video goes to ``<campaign>/<shot id>/<slug>.mp4`` and the
    slug starts with the shot id (it is the whole slug without axes); slug parts
    are safe by construction (:func:`~seedance_batch.expand.shots.slug_part`).
    ``plans`` are the shots to check (none with output.filename).
    """
    found = []
    why = _windows_problem(manifest.name, one_name=True)
    if why:
        found.append(ManifestError(f"the campaign name {manifest.name!r} {why}, and it names folders (reports, videos)",
                                   location=manifest.locate(("name",)), hint="choose another"))
    for plan in plans:
        why = _windows_problem(plan.id, one_name=True)
        if why:
            found.append(ManifestError(
                f"the shot id {plan.id!r} {why}, and it names the folder and files of the shot's videos",
                location=manifest.locate(("shots", plan.index, "id")), hint="choose another, or set output.filename",
            ))
    return found


def _clashes(jobs: list[Job], nested: bool = True) -> list[ManifestError]:
    """Two jobs with one label, one request, or one output file; a file that is another job's folder.

    One clash repeated across a shot's jobs (every job writing ``same.mp4``) is one
    line, saying how many more there are. ``nested=False`` skips the folder check.
    """
    if _all_distinct(jobs, nested):
        return []
    problems = RepeatedProblems("more like it")
    labels: dict[str, Job] = {}
    keys: dict[str, Job] = {}
    files: dict[str, Job] = {}
    for job in jobs:
        first = labels.setdefault(job.label, job)
        if first is not job:
            _clash(problems, "label", first, job, f"two jobs have the label {job.label!r}; "
                   "give the include entries a value that tells them apart")
            continue
        first = keys.setdefault(job.key, job)
        if first is not job:
            _clash(problems, "request", first, job,
                   f"jobs {first.label!r} and {job.label!r} make the identical request (key {job.key[:12]}); "
                   "the same request is one job and is paid for once; "
                   "use the value that tells them apart in the prompt or a parameter, or drop one of them")
        first = files.setdefault(job.output_path.casefold(), job)
        if first is not job:
            alike = _look_alike(first.label, job.label)
            advice = "keep one of the two values" if alike else (
                "put {{ slug }} or another distinguishing value in output.filename")
            _clash(problems, "file", first, job,
                   f"jobs {first.label!r} and {job.label!r} would write the same file {job.output_path!r}{alike}; {advice}")
    folders = _folders(jobs) if nested else {}
    for job in jobs:
        inner = folders.get(job.output_path.casefold())
        if inner is not None:
            _clash(problems, "folder", job, inner,
                   f"job {job.label!r} writes the file {job.output_path!r}, which job {inner.label!r} needs as a folder "
                   f"for {inner.output_path!r}; give the two different names in output.filename")
    return problems.errors()


def _look_alike(a: str, b: str) -> str:
    """Why two jobs whose labels differ write one file when they look alike: one text in two Unicode forms."""
    if a != b and unicodedata.normalize("NFC", a) == unicodedata.normalize("NFC", b):
        return " (their values are one text in two Unicode forms, NFC and NFD: file names are NFC)"
    return ""


def _clash(problems: RepeatedProblems, kind: str, first: Job, job: Job, message: str) -> None:
    problems.add((kind, first.shot, job.shot), message, job.location, job.label)


def _folders(jobs: list[Job]) -> dict[str, Job]:
    """Every folder some job's file is in (casefolded), with the first such job: linear in the paths."""
    folders: dict[str, Job] = {}
    for job in jobs:
        path = job.output_path.casefold()
        cut = path.rfind("/")
        while cut > 0 and path[:cut] not in folders:  # a folder seen before brings its parents with it
            folders[path[:cut]] = job
            cut = path.rfind("/", 0, cut)
    return folders


def _all_distinct(jobs: list[Job], nested: bool) -> bool:
    # The usual answer, found at set speed; only a clash needs the slower walk that names both jobs.
    n = len(jobs)
    if len({job.label for job in jobs}) != n or len({job.key for job in jobs}) != n:
        return False
    files = {job.output_path.casefold() for job in jobs}
    return len(files) == n and not (nested and _a_folder_is_a_file(files))


def _a_folder_is_a_file(files: set[str]) -> bool:
    """Whether a folder of one (casefolded) path is another path: each folder looked up once."""
    seen: set[str] = set()
    for path in files:
        cut = path.rfind("/")
        while cut > 0 and (folder := path[:cut]) not in seen:
            if folder in files:
                return True
            seen.add(folder)
            cut = path.rfind("/", 0, cut)
    return False
