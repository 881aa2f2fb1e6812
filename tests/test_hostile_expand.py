"""Hostile manifests for expansion: job count, include matching, output file names (issue 8).

Each test writes the hostile manifest first and runs the real CLI on it: in-process
(``main(["validate", ...])``, from the manifest's folder, so messages name ``m.yaml``)
where the old code answered wrongly but quickly, and as a subprocess with a timeout
(and a memory limit for the 10^9 case) where the old code hung or died: a 10^9-job
matrix was a MemoryError traceback, a 10^9 product cut down by exclude entries walked
all 10^9 combinations, and 5,000 include entries took 57 s (quadratic matching).
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import textwrap
import unicodedata
from collections.abc import Mapping, Sequence
from itertools import product
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from seedance_batch.cli import main
from seedance_batch.expand import safe_output_path
from seedance_batch.expand.matrix import Axis, Combination, Entry, combinations, matrix_size, same_value
from seedance_batch.expand.shots import slug_part

HEAD = "version: 1\nname: demo\ndefaults: {model: seedance-2, resolution: 720p, duration: 5}\n"
# What validate may take on any manifest (the promise).
SECONDS = 10
MEMORY = 500 * 2**20


def values(prefix: str, n: int) -> str:
    """A YAML flow list of ``n`` distinct values."""
    return json.dumps([f"{prefix}{i}" for i in range(n)])


def validate(
    tmp_path: Path, body: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> tuple[int, str, str]:
    """``seedance-batch validate m.yaml`` in-process from ``tmp_path``: (exit code, stdout, stderr)."""
    (tmp_path / "m.yaml").write_text(HEAD + textwrap.dedent(body), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    code = main(["validate", "m.yaml"])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY, MEMORY))


def validate_in_subprocess(tmp_path: Path, body: str) -> subprocess.CompletedProcess[str]:
    """The real command in a child with the issue's limits: 10 s (else TimeoutExpired) and 500 MB of address space."""
    (tmp_path / "m.yaml").write_text(HEAD + textwrap.dedent(body), encoding="utf-8")
    env = {**os.environ, "SEEDANCE_STATE": str(tmp_path / "ledger.sqlite")}
    return subprocess.run(
        [sys.executable, "-m", "seedance_batch", "validate", "m.yaml"], cwd=tmp_path, env=env,
        capture_output=True, text=True, timeout=SECONDS, preexec_fn=_limit_memory,
    )


# --- how many jobs: counted before anything is built ---------------------------------------------


def test_a_billion_jobs_is_one_line_within_the_time_and_memory_promised(tmp_path: Path) -> None:
    # The manifest: 15 KB, three 1,000-value axes. It was a MemoryError traceback at 2.4 GB.
    result = validate_in_subprocess(tmp_path, f"""\
        matrix:
          a: {values("a", 1000)}
          b: {values("b", 1000)}
          c: {values("c", 1000)}
        shots:
          - {{id: s, prompt: "{{{{ a }}}} {{{{ b }}}} {{{{ c }}}}"}}
        """)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == (
        "m.yaml:5:3: matrix: the manifest expands to 1,000,000,000 jobs, more than the limit of 150,000 "
        "(this matrix: 1,000 x 1,000 x 1,000 values for 1 shot); split the campaign into several manifests, "
        "or exclude combinations\n"
    )


def test_the_job_limit_counts_every_shot_that_shares_a_matrix(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # 100 x 1,000 = 100,000 combinations is fine for one shot; two shots make 200,000 jobs.
    code, out, err = validate(tmp_path, f"""\
        matrix:
          a: {values("a", 100)}
          b: {values("b", 1000)}
        shots:
          - {{id: s, prompt: "{{{{ a }}}} {{{{ b }}}}"}}
          - {{id: t, prompt: "again {{{{ a }}}} {{{{ b }}}}"}}
        """, capsys, monkeypatch)
    assert (code, out) == (2, "")
    assert err == (
        "m.yaml:5:3: matrix: the manifest expands to 200,000 jobs, more than the limit of 150,000 "
        "(this matrix: 100 x 1,000 values for 2 shots); split the campaign into several manifests, "
        "or exclude combinations\n"
    )


def test_the_job_limit_points_at_the_matrix_making_most_of_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, _, err = validate(tmp_path, f"""\
        matrix:
          a: {values("a", 100)}
          b: {values("b", 600)}
        shots:
          - {{id: s, prompt: "{{{{ a }}}} {{{{ b }}}}"}}
          - id: t
            prompt: "{{{{ c }}}}"
            matrix:
              c: {values("c", 100)}
              d: {values("d", 1000)}
        """, capsys, monkeypatch)
    assert code == 2
    assert err == (
        "m.yaml:12:7: shots[1].matrix: the manifest expands to 160,000 jobs, more than the limit of 150,000 "
        "(this matrix makes 100,000 of them: 100 x 1,000 values for 1 shot); split the campaign into several "
        "manifests, or exclude combinations\n"
    )


def test_a_huge_product_cut_down_by_exclude_is_counted_not_walked(tmp_path: Path) -> None:
    # 10^9 combinations minus 1,997 exclude boxes leave 2 x 1,000 x 1 = 2,000 jobs. The old
    # code tested each of the 10^9 combinations against every entry (hours).
    exclude = [{"c": f"c{i}"} for i in range(1, 1000)] + [{"a": f"a{i}"} for i in range(2, 1000)]
    result = validate_in_subprocess(tmp_path, f"""\
        matrix:
          a: {values("a", 1000)}
          b: {values("b", 1000)}
          c: {values("c", 1000)}
          exclude: {json.dumps(exclude)}
        shots:
          - {{id: s, prompt: "{{{{ a }}}} {{{{ b }}}} {{{{ c }}}}"}}
        """)
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == "m.yaml: ok: campaign 'demo', 2000 job(s) from 1 shot(s)\n"


def test_five_thousand_includes_are_matched_by_lookup(tmp_path: Path) -> None:
    # The 43 s case (57 s here): each entry was tested against every combination.
    include = "\n".join(f"    - {{a: a{i}, tagline: t{i}}}" for i in range(5000))
    result = validate_in_subprocess(tmp_path, f"""\
matrix:
  a: {values("a", 5000)}
  include:
{include}
shots:
  - {{id: s, prompt: "{{{{ a }}}} says {{{{ tagline }}}}"}}
""")
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == "m.yaml: ok: campaign 'demo', 5000 job(s) from 1 shot(s)\n"


def test_include_entries_merging_everywhere_are_refused_before_merging(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # An entry naming no axis merges into every combination: four of them on 100,000
    # combinations are 400,000 merges (a thousand were minutes and gigabytes).
    code, _, err = validate(tmp_path, f"""\
        matrix:
          a: {values("a", 100)}
          b: {values("b", 1000)}
          include:
            - {{x: 1}}
            - {{y: 2}}
            - {{z: 3}}
            - {{w: 4}}
        shots:
          - {{id: s, prompt: "{{{{ a }}}} {{{{ b }}}} {{{{ x }}}}"}}
        """, capsys, monkeypatch)
    assert code == 2
    assert err == (
        "m.yaml:8:7: matrix.include[0]: the include entries merge into combinations 400,000 times, more than the "
        "limit of 300,000 (this entry alone merges into 100,000); name the axis values each entry is for, or put "
        "what every job shares in vars\n"
    )


def test_a_matrix_with_too_many_axes_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    axes = "".join(f"  k{i}: [a, b]\n" for i in range(13))
    code, _, err = validate(tmp_path, "matrix:\n" + axes + "shots:\n  - {id: s, prompt: '{{ k0 }}'}\n", capsys, monkeypatch)
    assert code == 2
    assert err == (
        "m.yaml:5:3: matrix: the matrix has 13 axes, more than the limit of 12; move one-value axes to vars, "
        "or split the shot\n"
    )


def test_exclude_entries_too_tangled_to_count_are_one_line_not_a_hang(tmp_path: Path) -> None:
    # 5,000 entries overlapping on several axes: working out what is left would take minutes.
    exclude = [{"a": "a0", "c": f"c{i % 1000}"} for i in range(2500)]
    exclude += [{"b": f"b{i % 1000}", "c": f"c{i % 1000}"} for i in range(2500)]
    result = validate_in_subprocess(tmp_path, f"""\
        matrix:
          a: {values("a", 1000)}
          b: {values("b", 1000)}
          c: {values("c", 1000)}
          exclude: {json.dumps(exclude)}
        shots:
          - {{id: s, prompt: "{{{{ a }}}}"}}
        """)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == (
        "m.yaml:8:12: matrix.exclude: the exclude entries of this matrix overlap in too many ways to work out which "
        "combinations are left (more than 5,000,000 steps); write fewer, broader entries or split the matrix\n"
    )


def test_jobs_holding_too_much_text_stop_the_expansion(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A 19,000-character text in vars, in the prompt of 6,000 jobs, is 109 MiB of requests: the
    # jobs stop at 96 MiB. Each job holds about 19,105 bytes (the prompt, the rest of its JSON,
    # label and file name), so the limit of 100,663,296 bytes is passed by job 5,269.
    code, _, err = validate(tmp_path, f"""\
        vars:
          story: {"x" * 19_000}
        matrix:
          a: {values("a", 6000)}
        shots:
          - {{id: s, prompt: "{{{{ story }}}} {{{{ a }}}}"}}
        """, capsys, monkeypatch)
    assert code == 2
    assert err == (
        "m.yaml:9:5: shots[0] (job s/a5268): the jobs' requests, labels and file names add up to more than 96 MiB "
        "by this one (5,269 of 6,000 jobs built); shorten the prompts or the matrix values, or split the campaign\n"
    )


# --- output file names: the same files on every OS -----------------------------------------------

DEVICE = "a device name on Windows ({}, reserved with any extension)"
IN_PATH = "has a folder or file name that is " + DEVICE + "; choose another name"
REFUSED_NAMES = [
    ("CON", IN_PATH.format("CON")),
    ("clips/nul.mp4", IN_PATH.format("NUL")),
    ("com1.mp4", IN_PATH.format("COM1")),
    ("Lpt9/take.mp4", IN_PATH.format("LPT9")),
    ("aux.tar.gz", IN_PATH.format("AUX")),
    ("prn .mp4", IN_PATH.format("PRN")),
    ("com\u00b9", IN_PATH.format("COM\u00b9")),
    ("x/conout$", IN_PATH.format("CONOUT$")),
    ("invoice\u202egnp.mp4", "contains the bidirectional control U+202E; a file name must be visible text in reading order"),
    ("a\u2066b", "contains the bidirectional control U+2066; a file name must be visible text in reading order"),
    ("a\u200fb", "contains the bidirectional control U+200F; a file name must be visible text in reading order"),
    ("del\x7f", "contains the control character U+007F; a file name must be visible text in reading order"),
    ("next\x85line", "contains the control character U+0085; a file name must be visible text in reading order"),
    ("a\u2028b", "contains the control character U+2028; a file name must be visible text in reading order"),
    ("a\nb", "contains a backslash or control character; use '/' between folders"),
    *[(f"take{c}1", f"contains {c!r}, which Windows does not allow in file names (< > : \" | ? *)") for c in '<>:"|?*'],
    ("take./x", "has a folder name ending in a dot or space, which Windows drops"),
    ("take /x", "has a folder name ending in a dot or space, which Windows drops"),
]


@pytest.mark.parametrize(("rendered", "why"), REFUSED_NAMES)
def test_names_some_system_cannot_save_are_refused(rendered: str, why: str) -> None:
    assert safe_output_path(rendered) == (None, why)


@pytest.mark.parametrize(("rendered", "path"), [
    ("console.mp4", "console.mp4"),          # a device name only when it is the whole stem
    ("com10", "com10.mp4"),                  # COM0-COM9 only
    ("nul_take/con-x.mp4", "nul_take/con-x.mp4"),
    ("caf\u0065\u0301", "caf\u00e9.mp4"),    # NFD becomes NFC
    ("\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645", "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645.mp4"),  # Persian ZWNJ
    ("take.", "take..mp4"),                  # the file ends in .mp4, not the dot
])
def test_names_every_system_can_save_are_kept(rendered: str, path: str) -> None:
    assert safe_output_path(rendered) == (path, "")


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40))
@example("CON")
@example("nul.")
@example("a\u202eb\x85c\x7f")
@example('<>:"|?*')
@example("x. ")
@example("cafe\u0301")
@example("\u00b9")
def test_default_slug_never_trips_the_name_checks(value: str) -> None:
    # Without output.filename a video goes to <campaign>/<shot>/<shot>_<parts>.mp4.
    part = slug_part(value)
    assert unicodedata.is_normalized("NFC", part)
    assert safe_output_path(f"demo/hero/hero_{part}") == (f"demo/hero/hero_{part}.mp4", "")


def test_nfc_and_nfd_twins_are_one_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The same word typed on macOS (NFD) and elsewhere (NFC): two files on Linux, one on macOS.
    code, _, err = validate(tmp_path, """\
        matrix:
          locale: ["caf\\u00e9", "cafe\\u0301"]
        shots:
          - {id: hero, prompt: "a lighthouse, {{ locale }}"}
        """, capsys, monkeypatch)
    assert code == 2
    assert err == (
        "m.yaml:7:5: shots[0] (job hero/cafe\u0301): jobs 'hero/caf\u00e9' and 'hero/cafe\u0301' would write the same "
        "file 'demo/hero/hero_caf\u00e9.mp4' (their values are one text in two Unicode forms, NFC and NFD: file names "
        "are NFC); keep one of the two values\n"
    )


def test_reserved_campaign_name_and_shot_id_are_refused_where_they_name_folders(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "m.yaml").write_text(textwrap.dedent("""\
        version: 1
        name: aux
        defaults: {model: seedance-2, resolution: 720p, duration: 5}
        shots:
          - {id: nul, prompt: a lighthouse}
          - {id: com1, prompt: a harbour}
          - {id: hero, prompt: a beach}
        """), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    assert main(["validate", "m.yaml"]) == 2
    assert capsys.readouterr().err == (
        f"m.yaml:2:7: name: the campaign name 'aux' is {DEVICE.format('AUX')}, and it names folders (reports, videos); "
        "choose another\n"
        f"m.yaml:5:10: shots[0].id: the shot id 'nul' is {DEVICE.format('NUL')}, and it names the folder and files of "
        "the shot's videos; choose another, or set output.filename\n"
        f"m.yaml:6:10: shots[1].id: the shot id 'com1' is {DEVICE.format('COM1')}, and it names the folder and files of "
        "the shot's videos; choose another, or set output.filename\n"
    )


def test_a_reserved_shot_id_is_fine_when_output_filename_names_the_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, err = validate(tmp_path, """\
        output: {filename: "videos/{{ shot.id }}-{{ key }}"}
        shots:
          - {id: nul, prompt: a lighthouse}
        """, capsys, monkeypatch)
    assert (code, err) == (0, "")
    assert out == "m.yaml: ok: campaign 'demo', 1 job(s) from 1 shot(s)\n"


def test_a_file_that_another_job_needs_as_a_folder_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Both used to pass validate; whichever video arrived second could never be saved.
    code, _, err = validate(tmp_path, """\
        output: {filename: "{{ path }}"}
        matrix:
          path: [X.MP4, x.mp4/y.mp4]
        shots:
          - {id: hero, prompt: "a lighthouse, {{ path }}"}
        """, capsys, monkeypatch)
    assert code == 2
    assert err == (
        "m.yaml:8:5: shots[0] (job hero/x.mp4/y.mp4): job 'hero/X.MP4' writes the file 'X.MP4', which job "
        "'hero/x.mp4/y.mp4' needs as a folder for 'x.mp4/y.mp4'; give the two different names in output.filename\n"
    )


def test_one_clash_every_job_repeats_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # 300 jobs writing one file were 299 lines.
    code, _, err = validate(tmp_path, f"""\
        output: {{filename: same}}
        matrix:
          a: {values("a", 300)}
        shots:
          - {{id: s, prompt: "{{{{ a }}}}"}}
        """, capsys, monkeypatch)
    assert code == 2
    assert err == (
        "m.yaml:8:5: shots[0] (job s/a1): jobs 's/a0' and 's/a1' would write the same file 'same.mp4'; "
        "put {{ slug }} or another distinguishing value in output.filename; and 298 more like it\n"
    )


def test_a_huge_refused_file_name_is_quoted_short(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, _, err = validate(tmp_path, """\
        vars: {long: "%s"}
        output: {filename: "{{ long }}\\u202e.mp4"}
        shots:
          - {id: s, prompt: a lighthouse}
        """ % ("y" * 5000), capsys, monkeypatch)
    assert code == 2
    assert err == (
        f"m.yaml:5:20: output.filename (job s): output file name '{'y' * 200}… (4805 more characters)' contains the "
        "bidirectional control U+202E; a file name must be visible text in reading order\n"
    )


def test_an_unknown_shot_among_many_lists_ten(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every line used to list every shot: 5,000 entries x 5,000 shots was gigabytes of output.
    shots = "".join(f"  - {{id: shot{i:02d}, prompt: 'p {i} {{{{ a }}}}'}}\n" for i in range(30))
    code, _, err = validate(tmp_path, "matrix:\n  a: [x, y]\n  include:\n    - {shot: zzz, a: w}\nshots:\n" + shots,
                            capsys, monkeypatch)
    assert code == 2
    assert err == (
        "m.yaml:7:14: matrix.include[0].shot: include entry names shot 'zzz', which does not exist; shots: shot00, "
        "shot01, shot02, shot03, shot04, shot05, shot06, shot07, shot08, shot09 and 20 more\n"
    )


# --- the matrix rules, against a reference that tests every combination --------------------------


def reference(axes: Sequence[Axis], exclude: Sequence[Entry], include: Sequence[Entry]) -> list[Combination]:
    """GitHub Actions' rules as written, by brute force (the old implementation's way)."""
    if not axes:
        return [Combination(dict(e.values), None, (e.index,)) for e in include] or [Combination({}, ())]

    def fits(values: Sequence[Any], entry: Mapping[str, Any]) -> bool:
        return all(same_value(values[p], entry[a.name]) for p, a in enumerate(axes) if a.name in entry)

    kept = [index for index in product(*(range(len(a.values)) for a in axes))
            if not any(fits([a.values[i] for a, i in zip(axes, index, strict=True)], e.values) for e in exclude)]
    extras: dict[int, tuple[dict[str, Any], list[int]]] = {}
    created = []
    for entry in include:
        hits = [n for n, index in enumerate(kept) if fits([a.values[i] for a, i in zip(axes, index, strict=True)], entry.values)]
        for n in hits:
            added, merged = extras.setdefault(n, ({}, []))
            added.update({k: v for k, v in entry.values.items() if k not in {a.name for a in axes}})
            merged.append(entry.index)
        if not hits:
            values = dict(entry.values)
            for a in axes:
                if a.name in values and not isinstance(values[a.name], Mapping):
                    rows = [v for v in a.values if isinstance(v, Mapping) and same_value(v, values[a.name])]
                    values[a.name] = rows[0] if rows else values[a.name]
            created.append(Combination(values, None, (entry.index,)))
    originals = []
    for n, index in enumerate(kept):
        values = {a.name: a.values[i] for a, i in zip(axes, index, strict=True)}
        added, merged = extras.get(n, ({}, []))
        originals.append(Combination({**values, **added}, index, tuple(merged)))
    return originals + created


POOL = ["x", "y", 1, 2, True, 1.0, None, {"id": "x", "row": 1}, {"id": 2}, {"k": 1}, [1]]
value = st.sampled_from(POOL)
names = ["a", "b", "c"]


@st.composite
def matrices(draw: st.DrawFn) -> tuple[list[Axis], list[Entry], list[Entry]]:
    axes = [Axis(name, tuple(draw(st.lists(value, min_size=1, max_size=4)))) for name in names[: draw(st.integers(0, 3))]]
    entry = st.dictionaries(st.sampled_from([*names, "extra", "more"]), value, max_size=3)
    drawn = draw(st.lists(entry, max_size=4))
    exclude = [Entry(i, {k: v for k, v in e.items() if k in names}) for i, e in enumerate(drawn)]
    include = [Entry(i, e) for i, e in enumerate(draw(st.lists(entry, max_size=4)))]
    return axes, exclude, include


@settings(max_examples=400, deadline=None)
@given(matrices())
def test_combinations_and_their_count_follow_the_rules(matrix: tuple[list[Axis], list[Entry], list[Entry]]) -> None:
    axes, exclude, include = matrix
    found = combinations(axes, exclude, include)
    assert [(dict(c.values), c.axis_index, c.includes) for c in found] == [
        (dict(c.values), c.axis_index, c.includes) for c in reference(axes, exclude, include)
    ]
    size = matrix_size(axes, exclude, include)
    assert size.combinations == len(found)
    assert size.merges == sum(len(c.includes) for c in found if c.axis_index is not None)
