"""Expansion: GitHub-style matrices, precedence, templates, labels, keys, output paths, clashes."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
from jinja2 import StrictUndefined
from jinja2.sandbox import SandboxedEnvironment

from seedance_batch.errors import ManifestError, ManifestErrors
from seedance_batch.expand import Job, expand, request_key, safe_output_path
from seedance_batch.expand.matrix import Axis, Entry, combinations
from seedance_batch.expand.templating import TemplateProblem, compile_template
from seedance_batch.manifest import load_manifest

ROOT = Path(__file__).resolve().parent.parent

HEAD = """\
version: 1
name: demo
defaults: {model: seedance-2, resolution: 720p, duration: 5}
"""


def jobs_of(tmp_path: Path, text: str, files: dict[str, str] | None = None) -> list[Job]:
    for name, content in (files or {}).items():
        (tmp_path / name).write_text(content, encoding="utf-8")
    path = tmp_path / "m.yaml"
    body = text[len(HEAD):] if text.startswith(HEAD) else text
    path.write_text(HEAD * text.startswith(HEAD) + textwrap.dedent(body), encoding="utf-8")
    return expand(load_manifest(path))


def problems(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises((ManifestError, ManifestErrors)) as excinfo:
        jobs_of(tmp_path, text)
    return [line.split("m.yaml:", 1)[1] for line in excinfo.value.lines()]


# --- matrix semantics (GitHub Actions) -----------------------------------------------------------


def test_github_docs_include_example() -> None:
    axes = [Axis("fruit", ("apple", "pear")), Axis("animal", ("cat", "dog"))]
    include = [Entry(i, e) for i, e in enumerate([
        {"color": "green"}, {"color": "pink", "animal": "cat"}, {"fruit": "apple", "shape": "circle"},
        {"fruit": "banana"}, {"fruit": "banana", "animal": "cat"},
    ])]
    assert [dict(c.values) for c in combinations(axes, (), include)] == [
        {"fruit": "apple", "animal": "cat", "color": "pink", "shape": "circle"},
        {"fruit": "apple", "animal": "dog", "color": "green", "shape": "circle"},
        {"fruit": "pear", "animal": "cat", "color": "pink"},
        {"fruit": "pear", "animal": "dog", "color": "green"},
        {"fruit": "banana"},
        {"fruit": "banana", "animal": "cat"},
    ]


def test_github_docs_exclude_example_partial_match() -> None:
    axes = [Axis("os", ("macos", "windows")), Axis("version", (12, 14, 16)), Axis("env", ("staging", "production"))]
    exclude = [Entry(0, {"os": "macos", "version": 12, "env": "production"}), Entry(1, {"os": "windows", "version": 16})]
    combos = combinations(axes, exclude)
    assert len(combos) == 12 - 1 - 2
    assert {"os": "macos", "version": 12, "env": "production"} not in [dict(c.values) for c in combos]
    assert not any(c.values["os"] == "windows" and c.values["version"] == 16 for c in combos)


def test_product_order_first_axis_slowest() -> None:
    combos = combinations([Axis("a", (1, 2)), Axis("b", ("x", "y"))])
    assert [c.axis_index for c in combos] == [(0, 0), (0, 1), (1, 0), (1, 1)]


def test_only_includes_give_one_combination_each_and_nothing_gives_one() -> None:
    assert [dict(c.values) for c in combinations([], (), [Entry(0, {"a": 1}), Entry(1, {"a": 2})])] == [{"a": 1}, {"a": 2}]
    assert [dict(c.values) for c in combinations([])] == [{}]


def test_scalar_matches_mapping_id_and_true_is_not_one() -> None:
    axes = [Axis("locale", ({"id": "en", "lang": "English"}, {"id": "de", "lang": "German"})), Axis("flag", (True, 1))]
    combos = combinations(axes, [Entry(0, {"locale": "de"}), Entry(1, {"flag": True})])
    assert [(c.values["locale"]["id"], c.values["flag"]) for c in combos] == [("en", 1)]
    created = combinations(axes[:1], (), [Entry(0, {"locale": "de", "extra": 1}), Entry(1, {"locale": "fr"})])
    assert created[1].values == {"locale": {"id": "de", "lang": "German"}, "extra": 1}
    assert created[2].values == {"locale": "fr"}


def test_manifest_matrix_with_shot_selectors_and_own_matrix(tmp_path: Path) -> None:
    jobs = jobs_of(tmp_path, HEAD + """\
        matrix:
          locale: [en, de]
          ratio: ["16:9", "9:16"]
          exclude:
            - {shot: [b], ratio: "16:9"}
          include:
            - {shot: a, locale: fr, ratio: "1:1"}
        shots:
          - {id: a, prompt: "a {{ locale }} {{ ratio }}"}
          - {id: b, prompt: "b {{ locale }} {{ ratio }}"}
          - {id: c, prompt: "c {{ x }}", matrix: {x: [1, 2]}}
          - {id: d, prompt: "d", matrix: {}}
        """)
    assert [j.label for j in jobs] == [
        "a/en/16:9", "a/en/9:16", "a/de/16:9", "a/de/9:16", "a/fr/1:1",
        "b/en/9:16", "b/de/9:16", "c/1", "c/2", "d",
    ]


# --- parameters, context, request ----------------------------------------------------------------


def test_precedence_and_where_each_value_was_written(tmp_path: Path) -> None:
    (tmp_path / "l.csv").write_text("id,word\nen,hello\nde,hallo\n", encoding="utf-8")
    jobs = jobs_of(tmp_path, HEAD + """\
        matrix:
          locale: {from: l.csv}
          duration: [6]
          include:
            - {locale: de, resolution: 480p}
        shots:
          - id: hero
            resolution: 1080p
            prompt: "{{ locale.word }}"
        """)
    en, de = jobs
    assert en.request == {"model": "seedance-2", "input": {"prompt": "hello", "duration": 6, "resolution": "1080p"}}
    assert de.request["input"]["resolution"] == "480p"
    where = {name: (loc.line, loc.path) for name, loc in de.origins.items()}
    assert where == {
        "model": (3, "defaults.model"), "duration": (6, "matrix.duration[0]"),
        "resolution": (8, "matrix.include[0].resolution"), "prompt": (12, "shots[0].prompt"),
    }
    assert (en.location.line, en.location.path) == (10, "shots[0]")


def test_csv_value_problems_point_at_their_row(tmp_path: Path) -> None:
    (tmp_path / "r.csv").write_text("id\n16:9\n16:9\n", encoding="utf-8")
    with pytest.raises(ManifestErrors) as excinfo:
        jobs_of(tmp_path, HEAD + """\
            matrix:
              aspect_ratio: {from: r.csv}
            shots:
              - {id: hero, prompt: hi}
            """)
    csv = tmp_path / "r.csv"
    assert excinfo.value.lines() == [
        f"{csv}:2: matrix.aspect_ratio[0]: axis 'aspect_ratio' sets the request parameter 'aspect_ratio', "
        "which takes a plain value, not a mapping",
        f"{csv}:3: matrix.aspect_ratio[1]: axis 'aspect_ratio' sets the request parameter 'aspect_ratio', "
        "which takes a plain value, not a mapping",
        f"{csv}:3: matrix.aspect_ratio[1]: value '16:9' appears twice in axis 'aspect_ratio' (also item 0); "
        "each value makes its own jobs: keep one",
    ]


def test_template_context_later_wins(tmp_path: Path) -> None:
    jobs = jobs_of(tmp_path, HEAD + """\
        vars: {who: campaign, where: everywhere, size: vars}
        matrix:
          where: [combo]
        shots:
          - id: hero
            vars: {who: shot}
            aspect_ratio: "16:9"
            prompt: "{{ who }} {{ where }} {{ size }} {{ shot.id }} {{ campaign }} {{ model }} {{ resolution }} {{ duration }} {{ aspect_ratio }}"
        """)
    assert jobs[0].input["prompt"] == "shot combo vars hero demo seedance-2 720p 5 16:9"


def test_unset_optional_fields_are_omitted_and_urls_are_templates(tmp_path: Path) -> None:
    (job,) = jobs_of(tmp_path, HEAD + """\
        vars: {cdn: "https://cdn.example.com"}
        shots:
          - id: hero
            prompt: |
              two lines
              of prompt
            image_urls: ["{{ cdn }}/{{ shot.id }}.jpg"]
        """)
    assert job.request == {"model": "seedance-2", "input": {
        "prompt": "two lines\nof prompt", "duration": 5, "resolution": "720p",
        "image_urls": ["https://cdn.example.com/hero.jpg"],
    }}
    assert job.key == request_key(job.request) == request_key({**job.request, "callback_url": "https://x"})


def test_private_top_level_and_shot_override(tmp_path: Path) -> None:
    jobs = jobs_of(tmp_path, HEAD + """\
        private: true
        shots:
          - {id: a, prompt: x}
          - {id: b, prompt: y, private: false}
        """)
    assert [j.private for j in jobs] == [True, False]


# --- labels and output paths ---------------------------------------------------------------------


def test_labels_use_mapping_ids_and_default_paths_are_safe(tmp_path: Path) -> None:
    jobs = jobs_of(tmp_path, HEAD + """\
        matrix:
          locale: [{id: pt-BR, city: São Paulo}]
          aspect_ratio: ["9:16"]
          take: [true]
        shots:
          - {id: hero, prompt: "{{ locale.city }} {{ take }}"}
        """)
    (job,) = jobs
    assert (job.label, job.output_path, job.combination["locale"]["city"]) == (
        "hero/pt-BR/9:16/true", "demo/hero/hero_pt-BR_9-16_true.mp4", "São Paulo")
    assert job.input["prompt"] == "São Paulo True"


def test_output_filename_template(tmp_path: Path) -> None:
    jobs = jobs_of(tmp_path, HEAD + """\
        matrix: {locale: [en, de]}
        shots:
          - {id: hero, prompt: "{{ locale }}"}
        output: {dir: out, filename: "{{ locale }}/./{{ shot.id }}-{{ key[:8] }}"}
        """)
    assert [j.output_path for j in jobs] == [f"{j.combination['locale']}/hero-{j.key[:8]}.mp4" for j in jobs]


@pytest.mark.parametrize(("rendered", "expected"), [
    ("a/b.mp4", ("a/b.mp4", "")),
    ("a//./b", ("a/b.mp4", "")),
    ("A/B.MP4", ("A/B.MP4", "")),
    ("../x.mp4", (None, "contains '..'; it must stay below output.dir")),
    ("a/../../x.mp4", (None, "contains '..'; it must stay below output.dir")),
    ("/etc/x.mp4", (None, "is absolute; it must be a relative path below output.dir")),
    ("C:/x.mp4", (None, "is absolute; it must be a relative path below output.dir")),
    ("a\\..\\x.mp4", (None, "contains a backslash or control character; use '/' between folders")),
    ("a\nb.mp4", (None, "contains a backslash or control character; use '/' between folders")),
    ("  ", (None, "is empty")),
    ("./.", (None, "has a path segment that is empty or longer than 255 bytes")),
])
def test_safe_output_path(rendered: str, expected: tuple[str | None, str]) -> None:
    assert safe_output_path(rendered) == expected


# --- errors, all at once ------------------------------------------------------------------------


def test_independent_problems_of_several_shots_come_together(tmp_path: Path) -> None:
    found = problems(tmp_path, HEAD + """\
        matrix: {locale: [en, de]}
        shots:
          - {id: a, prompt: "{{ nope }}"}
          - {id: b, prompt: "{{ locale.x }}"}
          - {id: c, prompt: "{% if %}"}
        """)
    assert found == [
        "6:21: shots[0].prompt (job a/en): undefined variable: 'nope' is undefined; defined: campaign, duration, "
        "locale, model, resolution, shot; and 1 more job(s) of this shot",
        "7:21: shots[1].prompt (job b/en): undefined variable: 'str object' has no attribute 'x'; defined: campaign, "
        "duration, locale, model, resolution, shot; and 1 more job(s) of this shot",
        "8:21: shots[2].prompt (job c/en): template syntax error: Expected an expression, got 'end of statement block'; "
        "and 1 more job(s) of this shot",
    ]


def test_same_output_file_differing_only_in_case(tmp_path: Path) -> None:
    found = problems(tmp_path, HEAD + """\
        matrix: {word: [Sun, sun]}
        shots:
          - {id: a, prompt: "{{ word }}"}
        """)
    assert found == [
        "6:5: shots[0] (job a/sun): jobs 'a/Sun' and 'a/sun' would write the same file 'demo/a/a_sun.mp4'; "
        "put {{ slug }} or another distinguishing value in output.filename",
    ]


def test_identical_requests_across_shots_name_both_labels(tmp_path: Path) -> None:
    found = problems(tmp_path, HEAD + """\
        shots:
          - {id: a, prompt: same}
          - {id: b, prompt: same}
        """)
    assert found == [
        "6:5: shots[1] (job b): jobs 'a' and 'b' make the identical request (key "
        f"{request_key({'model': 'seedance-2', 'input': {'prompt': 'same', 'duration': 5, 'resolution': '720p'}})[:12]}); "
        "the same request is one job and is paid for once; use the value that tells them apart in the prompt or a "
        "parameter, or drop one of them",
    ]


def test_include_entry_for_a_shot_with_its_own_matrix_is_an_error(tmp_path: Path) -> None:
    found = problems(tmp_path, HEAD + """\
        matrix:
          include: [{shot: a, x: 1}]
        shots:
          - {id: a, prompt: "{{ x }}", matrix: {x: [2]}}
        """)
    assert found == [
        "5:20: matrix.include[0].shot: include entry names shot 'a', which has its own matrix, so it never "
        "applies; move the entry into that shot's matrix",
    ]


def test_duplicate_axis_values(tmp_path: Path) -> None:
    found = problems(tmp_path, HEAD + """\
        matrix: {locale: [en, {id: en}]}
        shots:
          - {id: a, prompt: "{{ locale }}"}
        """)
    assert found == ["4:23: matrix.locale[1]: value 'en' appears twice in axis 'locale' (also item 0); each value "
                     "makes its own jobs: keep one"]


# --- templates ----------------------------------------------------------------------------------

_JINJA = SandboxedEnvironment(undefined=StrictUndefined)
CONTEXT: dict[str, Any] = {"a": "x", "n": 5, "f": 2.5, "t": True, "none": None, "items": [1, "b"],
                           "m": {"k": "v", "items": "shadowed", "deep": {"z": 0}}}


@pytest.mark.parametrize("source", [
    "plain", "plain\n", "{{ a }}-{{ n }}-{{ f }}-{{ t }}-{{ none }}-{{ items }}", "{{ m.k }} {{ m.deep.z }}",
    "{{ m }}", "{{ m['items'] }}", "{{ a.upper() }}", "{{- a -}} {{ n }}", "{{ a|upper }}", "{% if t %}yes{% endif %}",
    "{ {{ a }} }", "line\n{{ a }}\n", "100% {{ a }} %s %(n)s {{ n }}%%", "{{ m.deep }}{{ items }}", "{# note #}50%",
])
def test_rendering_matches_jinja_exactly(source: str) -> None:
    assert compile_template(source)(CONTEXT) == _JINJA.from_string(source).render(CONTEXT)


@pytest.mark.parametrize(("source", "message"), [
    ("{{ missing }}", "undefined variable: 'missing' is undefined"),
    ("{{ m.nope }}", "undefined variable: 'dict object' has no attribute 'nope'"),
    ("{{ ''.__class__.__mro__ }}", "template uses '__mro__'; names starting with '_' are not allowed (sandbox)"),
    ("{{ m|attr('__class__') }}", "template refused by the sandbox: access to attribute '__class__' of 'dict' object is unsafe."),
    ("{{ m['_x'] }}", "template uses '_x'; names starting with '_' are not allowed (sandbox)"),
    ("{% include 'x' %}", "templates cannot include other templates; write the text inline"),
    ("{% import 'x' as y %}", "templates cannot import other templates; write the text inline"),
    ("{{ 'a' * 1000000 }}", "template refused by the sandbox: repetition would build more than 20000 characters"),
    ("{{ 10 ** 100000 }}", "template refused by the sandbox: power 10 ** 100000 is too large"),
    ("{{ ((10 ** 60) ** 60) ** 60 }}", "template refused by the sandbox: power 1000000000000000000000000000000000000000000000000000000000000 ** 60 is too large"),
    ("{% for i in range(10**6) %}{% endfor %}", "template refused by the sandbox: range of 1000000 items; at most 1000"),
    ("{{ 1 / 0 }}", "template error: ZeroDivisionError: division by zero"),
    ("{{ a }", "template syntax error: unexpected '}'"),
    ("{{ a|nofilter }}", "template syntax error: No filter named 'nofilter'."),
    # A request must render the same on every run: its hash is the job's key.
    ("{{ [1, 2]|random }}", "template syntax error: No filter named 'random'."),
    ("{{ a.upper }}", "template error: this writes a function or method, not a value; "
                      "call it with (), or read a key named like a method as m['items']"),
    ("{{ m.items }}", "template error: this writes a function or method, not a value; "
                      "call it with (), or read a key named like a method as m['items']"),
    ("{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}", "templates cannot define macros; put repeated text in vars"),
    ("{% for a in range(999) %}{% for b in range(999) %}{{ a }}{% endfor %}{% endfor %}",
     "loops inside loops (or recursive loops) are not allowed in templates; loop once, or build the list in vars"),
])
def test_hostile_and_broken_templates(source: str, message: str) -> None:
    with pytest.raises(TemplateProblem) as excinfo:
        compile_template(source)(CONTEXT)
    assert excinfo.value.message == message


def test_template_line_is_reported(tmp_path: Path) -> None:
    found = problems(tmp_path, HEAD + """\
        shots:
          - id: a
            prompt: |
              first line
              {{ nope }}
        """)
    assert found == ["6:13: shots[0].prompt (job a): undefined variable: 'nope' is undefined (line 2 of the template); "
                     "defined: campaign, duration, model, resolution, shot"]


@pytest.mark.parametrize(
    "prompt",
    ["plain", "quote \" backslash \\ slash /", "ctrl \x00\x1f\t\n\r", "ünïcødé 明るい朝を 😀", "sep \u2028\u2029", ""],
)
def test_request_key_is_sha256_of_the_json_module_canonical_form(prompt: str) -> None:
    import hashlib
    import json

    request = {"model": "seedance-2", "input": {"prompt": prompt, "duration": 5, "resolution": "720p",
                                                "generate_audio": False, "image_urls": ["https://a/b?c=1"]}}
    canonical = json.dumps(request, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    assert request_key(request) == hashlib.sha256(canonical).hexdigest()
    assert request_key({**request, "callback_url": "https://hook"}) == request_key(request)


def test_request_key_takes_what_orjson_refuses() -> None:
    huge = {"model": "seedance-2", "input": {"prompt": "x", "duration": 10**30}}
    assert len(request_key(huge)) == 64


def test_signed_url_axis_values_keep_their_token_out_of_labels_and_file_names(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(textwrap.dedent("""\
        version: 1
        name: frames
        defaults: {model: seedance-2, resolution: 720p, duration: 5}
        matrix:
          frame: ["https://cdn.example.com/a.png?X-Sig=SECRET123", "https://cdn.example.com/b.png#SECRET456"]
        shots:
          - id: turn
            prompt: a turntable
            image_urls: ["{{ frame }}"]
        """), encoding="utf-8")
    jobs = expand(load_manifest(path))
    assert [job.request["input"]["image_urls"][0] for job in jobs] == [
        "https://cdn.example.com/a.png?X-Sig=SECRET123", "https://cdn.example.com/b.png#SECRET456"]
    for job in jobs:
        assert "SECRET" not in job.label and "SECRET" not in job.output_path
