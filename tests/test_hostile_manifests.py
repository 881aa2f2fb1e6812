"""Hostile manifests, data files and numbers (issue 8): one line each, exit 2, in bounded time and memory.

Each test writes the hostile input first and runs the real CLI: in-process
(``main([...])`` with capsys) where the old code failed with a traceback or a
wrong answer, in a subprocess with a timeout and an address-space limit where
the old code hung or blew up (a FIFO, a device, a huge number).
"""

from __future__ import annotations

import json
import os
import re
import resource
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import click
import pytest
import yaml

from seedance_batch.cli import cli as click_group
from seedance_batch.cli import main
from seedance_batch.errors import UsageError
from seedance_batch.manifest import MAX_BYTES as MAX_MANIFEST_BYTES
from seedance_batch.manifest import files, load_manifest, schema_check, sources, yamlsrc
from seedance_batch.manifest.schema_check import ecma_pattern, manifest_schema
from seedance_batch.manifest.yamlsrc import INT_MAX, INT_MIN, MAX_NODES, YamlProblem, load_yaml
from seedance_batch.simulator.config import (
    MAX_TIME_SCALE,
    MIN_TIME_SCALE,
    Faults,
    SimulatorConfig,
    WebhookFaults,
)

# validate's promise (the "done"): any hostile manifest ends within these.
DEADLINE_SECONDS = 10
MEMORY_BYTES = 500 * 2**20

HEAD = "version: 1\nname: hostile\ndefaults: {model: seedance-2, resolution: 720p, duration: 5}\n"
SHOT = 'shots:\n  - {id: hero, prompt: "a lighthouse, {{ locale.id }}"}\n'
PLAIN_SHOT = "shots:\n  - {id: hero, prompt: a lighthouse at dusk}\n"
BEYOND = f"is beyond 64 bits; manifests take whole numbers from {INT_MIN} to {INT_MAX}"
SURROGATE = "a \\u escape names half of a surrogate pair, not a character; write the character itself"


def axis_manifest(folder: Path, data_file: str, name: str = "m.yaml") -> Path:
    """A manifest beside ``data_file`` whose one axis loads it (the from: is at 5:18)."""
    path = folder / name
    path.write_text(HEAD + f"matrix:\n  locale: {{from: {data_file}}}\n" + SHOT, encoding="utf-8")
    return path


def validate(folder: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
             manifest: str = "m.yaml") -> tuple[int, str]:
    """``seedance-batch validate`` in-process from ``folder``: (exit code, stderr); stdout must be empty on failure."""
    monkeypatch.chdir(folder)
    code = main(["validate", manifest])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    if code:
        assert out == ""
    return code, err


def _limits() -> None:  # pragma: no cover - runs in the child
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_BYTES, MEMORY_BYTES))


def cli_process(folder: Path, *args: str, timeout: float = DEADLINE_SECONDS) -> subprocess.CompletedProcess[str]:
    """``python -m seedance_batch ARGS`` from ``folder`` within validate's time and memory bounds."""
    return subprocess.run([sys.executable, "-m", "seedance_batch", *args], cwd=folder, capture_output=True,
                          text=True, timeout=timeout, preexec_fn=_limits)


def one_line(done: subprocess.CompletedProcess[str]) -> str:
    """The one error line of a finished process that exited 2 with no traceback."""
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    return lines[0]


def mknod_char_device(path: Path) -> None:
    """A character device like /dev/zero (1, 5) at ``path``; skip when this user may not make one."""
    try:
        os.mknod(path, 0o600 | stat.S_IFCHR, os.makedev(1, 5))
    except (PermissionError, AttributeError, OSError) as exc:
        pytest.skip(f"cannot create a character device here ({exc}); CI runs these as root")


# --- from: data files: regular files only, and bounded ------------------------------------------


def test_a_fifo_as_a_data_file_is_refused_not_waited_on(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "l.csv")  # the old code opened it and waited for a writer forever
    axis_manifest(tmp_path, "l.csv")
    assert one_line(cli_process(tmp_path, "validate", "m.yaml")) == (
        "m.yaml:5:18: matrix.locale.from: 'l.csv' is a named pipe (FIFO), not a regular file; "
        "a data file must be a regular file beside the manifest"
    )


def test_a_fifo_as_the_manifest_is_refused_not_waited_on(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "m.yaml")
    assert one_line(cli_process(tmp_path, "validate", "m.yaml")) == (
        "m.yaml: is a named pipe (FIFO), not a regular file; give the manifest's .yaml file"
    )


def test_a_character_device_as_a_data_file_is_refused_not_read(tmp_path: Path) -> None:
    mknod_char_device(tmp_path / "l.csv")  # st_size 0: the old size guard let it read until MemoryError
    axis_manifest(tmp_path, "l.csv")
    assert one_line(cli_process(tmp_path, "validate", "m.yaml")) == (
        "m.yaml:5:18: matrix.locale.from: 'l.csv' is a character device, not a regular file; "
        "a data file must be a regular file beside the manifest"
    )


def test_a_character_device_as_the_manifest_is_refused_not_read(tmp_path: Path) -> None:
    mknod_char_device(tmp_path / "m.yaml")
    assert one_line(cli_process(tmp_path, "validate", "m.yaml")) == (
        "m.yaml: is a character device, not a regular file; give the manifest's .yaml file"
    )


def test_reading_stops_one_byte_past_the_limit_whatever_the_size(tmp_path: Path) -> None:
    big = tmp_path / "big.csv"
    with big.open("wb") as f:  # sparse: 1 GiB that costs no disk; only limit + 1 bytes may be read
        f.truncate(2**30)
    started = time.perf_counter()
    with pytest.raises(files.FileRefused, match=r"^is larger than 4 MiB$"):
        files.read_regular(big, sources.MAX_BYTES)
    assert time.perf_counter() - started < 1
    (tmp_path / "small.csv").write_bytes(b"x" * 10)
    assert files.read_regular(tmp_path / "small.csv", 10) == b"x" * 10
    with pytest.raises(files.FileRefused):
        files.read_regular(tmp_path / "small.csv", 9)


def test_a_data_file_over_the_limit_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    row = "en,English,a tagline long enough to fill the file quickly\n"
    (tmp_path / "l.csv").write_text("id,language,tagline\n" + row * (sources.MAX_BYTES // len(row) + 1))
    axis_manifest(tmp_path, "l.csv")
    assert validate(tmp_path, capsys, monkeypatch) == (2, (
        "m.yaml:5:18: matrix.locale.from: 'l.csv' is larger than 4 MiB; a data file may be at most 4 MiB: "
        "split or trim it\n"
    ))


def _json_axis_file(path: Path, padding: int) -> None:
    path.write_text(json.dumps([{"id": path.stem, "pad": "x" * padding}]), encoding="utf-8")


def test_data_files_together_over_the_limit_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    each = sources.MAX_TOTAL_BYTES // 3 + 1  # under the limit of one file; three of them are over the total
    for name in ("a", "b", "c"):
        _json_axis_file(tmp_path / f"{name}.json", each)
    text = HEAD + "matrix:\n  a: {from: a.json}\n  b: {from: b.json}\n  c: {from: c.json}\n" + PLAIN_SHOT
    (tmp_path / "m.yaml").write_text(text, encoding="utf-8")
    assert validate(tmp_path, capsys, monkeypatch) == (2, (
        "m.yaml:7:13: matrix.c.from: 'c.json' takes this manifest's data files past 8 MiB; at most 8 MiB in all\n"
    ))


def _csv_rows(path: Path, rows: int) -> None:
    path.write_text("id\n" + "".join(f"v{i}\n" for i in range(rows)), encoding="utf-8")


def test_a_data_file_with_too_many_values_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    _csv_rows(tmp_path / "l.csv", sources.MAX_VALUES + 1)  # the old code expanded them all
    axis_manifest(tmp_path, "l.csv")
    assert validate(tmp_path, capsys, monkeypatch) == (2, (
        "m.yaml:5:18: matrix.locale.from: 'l.csv' holds 10001 values; a data file may hold at most 10000\n"
    ))


def test_data_files_with_too_many_values_together_are_refused(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    shots = ""
    for i in range(3):  # 3 x 7,000 values, each file under its own limit
        _csv_rows(tmp_path / f"l{i}.csv", 7000)
        shots += f'  - {{id: s{i}, prompt: "{{{{ locale.id }}}}", matrix: {{locale: {{from: l{i}.csv}}}}}}\n'
    (tmp_path / "m.yaml").write_text(HEAD + "shots:\n" + shots, encoding="utf-8")
    assert validate(tmp_path, capsys, monkeypatch) == (2, (
        "m.yaml:7:65: shots[2].matrix.locale.from: 'l2.csv' takes this manifest's data files past 20000 values; "
        "at most 20000 in all\n"
    ))


def test_too_many_data_files_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    axes = ""
    for i in range(sources.MAX_FILES + 1):
        (tmp_path / f"a{i}.json").write_text('["x"]', encoding="utf-8")
        axes += f"  a{i}: {{from: a{i}.json}}\n"
    (tmp_path / "m.yaml").write_text(HEAD + "matrix:\n" + axes + PLAIN_SHOT, encoding="utf-8")
    code, err = validate(tmp_path, capsys, monkeypatch)
    assert (code, err) == (2, "m.yaml:105:16: matrix.a100.from: more than 100 data files in one manifest; "
                              "merge some of them\n")


def test_a_manifest_over_the_limit_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    filler = "# " + "x" * 1000 + "\n"
    (tmp_path / "m.yaml").write_text(HEAD + PLAIN_SHOT + filler * (MAX_MANIFEST_BYTES // len(filler) + 1))
    assert validate(tmp_path, capsys, monkeypatch) == (2, (
        "m.yaml: manifest is larger than 8 MiB; a manifest may be at most 8 MiB (long lists go in from: data files)\n"
    ))


def test_too_many_yaml_nodes_are_refused_quickly(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    # ~1 MB of "0," is half a million nodes: the old code built them all (seconds; a gigabyte at 8 MB).
    (tmp_path / "m.yaml").write_text(HEAD + "vars: {x: [" + "0," * (2 * MAX_NODES) + "0]}\n" + PLAIN_SHOT)
    started = time.perf_counter()
    code, err = validate(tmp_path, capsys, monkeypatch)
    # 14 nodes come before the list (lines 1-3, "vars", "x"): item k, at column 10 + 2k, is node 14 + k.
    assert (code, err) == (2, f"m.yaml:4:{10 + 2 * (MAX_NODES + 1 - 14)}: more than {MAX_NODES} values in one file; "
                              "split it or trim it\n")
    assert time.perf_counter() - started < DEADLINE_SECONDS / 2


# --- JSON data files: held to what YAML is --------------------------------------------------------


@pytest.mark.parametrize(("content", "message"), [
    ('[{"id": "a", "n": 1,\n  "n": 2}]', "a.json:2:3: duplicate key 'n' (first written on line 1); keep one"),
    ('[{"id": "a", "x": {"k": 1}, "y": {"k": 2, "k": 3}}]',
     "a.json:1:43: duplicate key 'k' (first written on line 1); keep one"),
    ('[{"id": "a", "\\u0069d": "b"}]', "a.json:1:14: duplicate key 'id' (first written on line 1); keep one"),
    ('["en",\n "\\ud800"]', f"a.json:2:3: {SURROGATE}"),
    ('["\\udc00"]', f"a.json:1:3: {SURROGATE}"),
    ('[{"id": "a", "k\\ud83d": 1}]', f"a.json:1:16: {SURROGATE}"),
    ('["a\\\\\\ud800"]', f"a.json:1:6: {SURROGATE}"),
    ("[" + "9" * 5000 + "]", "a.json:1:2: whole number '" + "9" * 59 + f"… (4942 more characters) {BEYOND}"),
    ('[{"id": "a", "n": 9223372036854775808}]', f"a.json:1:19: whole number '9223372036854775808' {BEYOND}"),
    ('[{"id": "a", "n": -9223372036854775809}]', f"a.json:1:19: whole number '-9223372036854775809' {BEYOND}"),
    ('[1,\n 1.5e400]', "a.json:2:2: 1.5e400 is not a finite number; give finite numbers only"),
    ('["x", NaN]', "a.json:1:7: NaN is not a finite number; give finite numbers only"),
])
def test_json_data_files_refuse_what_yaml_refuses(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                   monkeypatch: pytest.MonkeyPatch, content: str, message: str) -> None:
    (tmp_path / "a.json").write_text(content, encoding="utf-8")
    axis_manifest(tmp_path, "a.json")
    assert validate(tmp_path, capsys, monkeypatch) == (2, message + "\n")


def test_json_that_only_looks_suspect_loads(tmp_path: Path) -> None:
    content = ('[{"id": "a", "text": "\\ud83d\\ude00 and \\\\ud800", "n": 9223372036854775807,'
               ' "m": -9223372036854775808, "f": 12345678901234567890.5, "g": 1e-400,'
               ' "x": {"k": 1}, "y": {"k": 2}}]')
    (tmp_path / "a.json").write_text(content, encoding="utf-8")
    value = load_manifest(axis_manifest(tmp_path, "a.json")).matrix.axes[0].values[0]
    assert value["text"] == "\U0001f600 and \\ud800"
    assert (value["n"], value["m"], value["g"]) == (INT_MAX, INT_MIN, 0.0)
    assert value["x"] == {"k": 1} and value["y"] == {"k": 2}


def test_a_lone_surrogate_no_longer_reaches_plan_json(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    # It used to validate, then crash `plan --json`, `--report` and `run` when written out.
    (tmp_path / "a.json").write_text('["\\ud800x"]', encoding="utf-8")
    axis_manifest(tmp_path, "a.json")
    monkeypatch.chdir(tmp_path)
    code = main(["plan", "--json", "--state", str(tmp_path / "ledger.sqlite"), "m.yaml"])
    out, err = capsys.readouterr()
    assert (code, out, err) == (2, "", f"a.json:1:3: {SURROGATE}\n")  # at the backslash


def test_a_slow_json_scan_stays_within_the_deadline(tmp_path: Path) -> None:
    # The worst a data file can ask of the position scan: objects to the limit, the duplicate last.
    body = '{"k": 1},' * ((sources.MAX_BYTES - 100) // 9)
    (tmp_path / "a.json").write_text("[" + body + '{"k": 1, "k": 2}]', encoding="utf-8")
    axis_manifest(tmp_path, "a.json")
    line = one_line(cli_process(tmp_path, "validate", "m.yaml"))
    assert line.endswith("duplicate key 'k' (first written on line 1); keep one")


# --- YAML: numbers, surrogates, control characters ------------------------------------------------


@pytest.mark.parametrize(("text", "value"), [
    (f"n: {INT_MAX}\n", INT_MAX), (f"n: {INT_MIN}\n", INT_MIN), ("n: 0x7fffffffffffffff\n", INT_MAX),
    ("n: 0o777777777777777777777\n", INT_MAX), ("n: 000000000000000000000000042\n", 42),
])
def test_whole_numbers_up_to_64_bits_load(text: str, value: int) -> None:
    assert load_yaml(text)[0] == {"n": value}


@pytest.mark.parametrize("number", [
    str(INT_MAX + 1), str(INT_MIN - 1), "0x8000000000000000", "0o1000000000000000000000", "1" * 4301,
    "0x" + "f" * 5000,
])
def test_whole_numbers_beyond_64_bits_are_refused_with_their_place(number: str) -> None:
    with pytest.raises(YamlProblem) as excinfo:
        load_yaml(f"a: 1\nn: {number}\n")
    assert (excinfo.value.line, excinfo.value.col) == (2, 4)
    assert excinfo.value.message == f"whole number {yamlsrc.shown(number)} {BEYOND}"


def test_a_huge_number_in_run_confirm_above_usd_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "m.yaml").write_text(HEAD + "run: {confirm_above_usd: 1" + "0" * 4400 + "}\n" + PLAIN_SHOT)
    code, err = validate(tmp_path, capsys, monkeypatch)
    assert code == 2 and err.startswith("m.yaml:4:26: whole number '1000") and err.endswith(f"{BEYOND}\n")


@pytest.mark.parametrize(("run", "message"), [
    # Both at 1e300 made a run whose stuck job was polled never and timed out never.
    ("run: {timeout: 1e300}", "m.yaml:4:16: run.timeout: 1e+300 is too large; at most 259200"),
    ("run: {poll_interval: 1e300}", "m.yaml:4:22: run.poll_interval: 1e+300 is too large; at most 3600"),
    ("run: {confirm_above_usd: 2e9}", "m.yaml:4:26: run.confirm_above_usd: 2000000000.0 is too large; at most 1000000000"),
    ("budget: {max_usd: 1e300}", "m.yaml:4:19: budget.max_usd: 1e+300 is too large; at most 1000000000"),
])
def test_numbers_past_any_meaning_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                              monkeypatch: pytest.MonkeyPatch, run: str, message: str) -> None:
    (tmp_path / "m.yaml").write_text(HEAD + run + "\n" + PLAIN_SHOT, encoding="utf-8")
    assert validate(tmp_path, capsys, monkeypatch) == (2, message + "\n")


@pytest.fixture
def python_parser(monkeypatch: pytest.MonkeyPatch) -> None:
    """PyYAML's own Python parser, used where libyaml is not built."""
    monkeypatch.setattr(yamlsrc, "_Parser", yaml.SafeLoader)


@pytest.mark.usefixtures("python_parser")
def test_the_python_parser_refuses_surrogate_escapes_too() -> None:
    # libyaml refuses "\uD800" itself; PyYAML's Python scanner turns it into a lone surrogate.
    with pytest.raises(YamlProblem) as excinfo:
        load_yaml('a: 1\nb: "x \\uD800"\n')
    assert (excinfo.value.message, excinfo.value.line, excinfo.value.col) == (SURROGATE, 2, 4)


@pytest.mark.parametrize("parser", ["libyaml", "python"])
@pytest.mark.parametrize(("char", "col"), [("\x00", 9), ("\x1b", 9), ("\x7f", 9), ("\ufffe", 9)])
def test_a_raw_control_character_is_one_line_with_its_column(monkeypatch: pytest.MonkeyPatch, parser: str,
                                                               char: str, col: int) -> None:
    if parser == "python":
        monkeypatch.setattr(yamlsrc, "_Parser", yaml.SafeLoader)
    # Characters of 2, 3 and 4 UTF-8 bytes first: libyaml counts bytes, the message characters.
    with pytest.raises(YamlProblem) as excinfo:
        load_yaml(f"a: 1\nb: é€😀 x{char}y\n")
    assert (excinfo.value.line, excinfo.value.col) == (2, col)
    assert excinfo.value.message == (
        f"character U+{ord(char):04X} is not allowed in YAML (control characters and non-characters are not); "
        "remove it"
    )


def test_a_lone_surrogate_in_text_given_to_the_loader_is_refused() -> None:
    with pytest.raises(YamlProblem) as excinfo:
        load_yaml("a: 1\nb: x\ud800\n")
    assert (excinfo.value.line, excinfo.value.col) == (2, 5)


# --- patterns mean what they mean in ECMA-262 -----------------------------------------------------


@pytest.mark.parametrize(("where", "text", "expected"), [
    ("name", 'name: "rt\\n"', "m.yaml:2:7: name: 'rt\\n' is not allowed; use lowercase letters"),
    ("vars key", 'vars: {"brand\\n": x}', "m.yaml:4:8: vars.brand\\x0a: key 'brand\\n' is not allowed; use letters"),
    ("include key", 'matrix: {locale: [en], include: [{"locale\\n": de}]}',
     "m.yaml:4:35: matrix.include[0].locale\\x0a: key 'locale\\n' is not allowed; use letters"),
    ("from", 'matrix: {locale: {from: "l.csv\\n"}}',
     "m.yaml:4:25: matrix.locale.from: 'l.csv\\n' is not allowed; name a .csv, .yaml, .yml or .json file"),
])
def test_a_final_newline_does_not_pass_a_pattern(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                  monkeypatch: pytest.MonkeyPatch, where: str, text: str,
                                                  expected: str) -> None:
    # Python's `$` matches before a final newline; ECMA-262's (the schema's dialect) does not.
    manifest = HEAD.replace("name: hostile", text) if where == "name" else HEAD + text + "\n"
    (tmp_path / "m.yaml").write_text(manifest + PLAIN_SHOT, encoding="utf-8")
    code, err = validate(tmp_path, capsys, monkeypatch)
    assert code == 2 and err.startswith(expected), err


def test_ecma_pattern_turns_only_unescaped_dollars_outside_classes_into_end_of_text() -> None:
    assert ecma_pattern("^a$").search("a") and not ecma_pattern("^a$").search("a\n")
    assert ecma_pattern("^[$]$").search("$") and not ecma_pattern("^[$]$").search("$\n")
    assert ecma_pattern(r"^\$$").search("$") and not ecma_pattern(r"^\$$").search("\\")
    assert ecma_pattern(r"^[\]$]+$").search("]$]") and not ecma_pattern(r"^[\]$]+$").search("]\n")
    assert ecma_pattern("a$|^b$").search("b") and not ecma_pattern("a$|^b$").search("a\n")


def _patterns(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["pattern"]] if isinstance(node.get("pattern"), str) else []
        return found + [p for key, value in node.items() if key != "pattern" for p in _patterns(value)]
    if isinstance(node, list):
        return [p for item in node for p in _patterns(item)]
    return []


# What the schema's patterns may use: constructs that mean the same in Python's re and ECMA-262
# once `$` is translated: classes of literals, ranges and \xHH; escaped punctuation; \s (Unicode
# whitespace in both; they differ only on U+001C-U+001F and U+FEFF). Not \d \w \b (ASCII-only in
# ECMA), not '.' outside a class (it differs on line terminators), no (?...) groups.
_CLASS = r"\[\^?(?:\\x[0-9a-fA-F]{2}|\\[\-\]\\s]|[^\]\\])*\]"
_PORTABLE = re.compile(rf"(?:{_CLASS}|\\x[0-9a-fA-F]{{2}}|\\[.\-/\\s$]|[^\\.(\[]|\((?!\?))*")


def test_every_schema_pattern_is_portable_and_checked_the_ecma_way() -> None:
    patterns = _patterns(manifest_schema())
    assert len(patterns) >= 7
    for pattern in patterns:
        assert _PORTABLE.fullmatch(pattern), pattern
        assert r"\Z" in ecma_pattern(pattern).pattern or "$" not in pattern, pattern
    # The validator itself uses them: jsonschema's own `pattern` (Python's `$`) is not in play.
    errors = list(schema_check._validator().iter_errors({"version": 1, "name": "rt\n", "shots": [{"id": "a"}]}))
    assert [e.validator for e in errors] == ["pattern"]


# --- control characters in output paths ---------------------------------------------------------


@pytest.mark.parametrize(("key", "value", "col"), [("dir", "renders\\0x", 15), ("dir", "renders\\n", 15),
                                                   ("filename", "{{ slug }}\\t.mp4", 20)])
def test_output_paths_refuse_control_characters(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                monkeypatch: pytest.MonkeyPatch, key: str, value: str,
                                                col: int) -> None:
    # A NUL in output.dir used to validate, then kill the run at its first mkdir.
    (tmp_path / "m.yaml").write_text(HEAD + f'output: {{{key}: "{value}"}}\n' + PLAIN_SHOT, encoding="utf-8")
    code, err = validate(tmp_path, capsys, monkeypatch)
    assert code == 2 and err.startswith(f"m.yaml:4:{col}: output.{key}: "), err
    assert err.endswith("name has no control characters (NUL, newline, tab...)\n")


# --- amounts and the time scale on the command line ------------------------------------------------


def _manifest(tmp_path: Path) -> Path:
    path = tmp_path / "m.yaml"
    path.write_text(HEAD.replace("hostile", "amounts") + PLAIN_SHOT, encoding="utf-8")
    return path


@pytest.mark.parametrize("amount", ["9e999999999", "1e100000000"])
def test_an_enormous_max_usd_is_refused_at_once(tmp_path: Path, amount: str) -> None:
    # The old code took the first to a MemoryError and spent minutes printing the second.
    _manifest(tmp_path)
    done = cli_process(tmp_path, "plan", "--max-usd", amount, "--state", "ledger.sqlite", "m.yaml")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.splitlines()[-1] == (
        f"Error: Invalid value for '--max-usd': '{amount}' is not an amount in USD from 0 to 1000000000 "
        "(e.g. 25 or 12.50)"
    )


@pytest.mark.parametrize(("amount", "shown"), [
    ("1000000000.01", "'1000000000.01'"), ("inf", "'inf'"), ("-1", "'-1'"), ("nan", "'nan'"),
    ("9" * 5000, "'" + "9" * 39 + "… (4962 more characters)"),
])
def test_max_usd_takes_amounts_from_0_to_a_billion(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                   monkeypatch: pytest.MonkeyPatch, amount: str, shown: str) -> None:
    _manifest(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert main(["plan", "--max-usd", amount, "--state", "ledger.sqlite", "m.yaml"]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"Error: Invalid value for '--max-usd': {shown} is not an amount in USD from 0 to 1000000000 (e.g. 25 or 12.50)"
    )


def test_max_usd_at_the_bounds_is_an_amount() -> None:
    usd = next(p for p in click_group.commands["plan"].params if p.name == "max_usd").type
    assert usd.convert("1000000000", None, None) == 10**9
    assert str(usd.convert("-0", None, None)) == "0"
    assert usd.convert(" 12.50 ", None, None) == usd.convert("12.5", None, None)


@pytest.mark.parametrize("command", ["run", "simulate"])
@pytest.mark.parametrize("scale", ["inf", "1e400", "1001", "0", "1e-7"])
def test_time_scale_out_of_range_is_a_usage_error(tmp_path: Path, command: str, scale: str) -> None:
    # `run --time-scale inf` was a traceback; `simulate --time-scale inf` served on, unusable.
    _manifest(tmp_path)
    args = ["run", "--simulate", "--state", "ledger.sqlite", "m.yaml"] if command == "run" else ["simulate", "--port", "0"]
    done = cli_process(tmp_path, *args, "--time-scale", scale)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.splitlines()[-1].startswith("Error: Invalid value for '--time-scale': ")
    assert done.stderr.splitlines()[-1].endswith(" is not in the range 1e-06<=x<=1000.0.")


def test_the_command_line_time_scale_range_is_the_simulators() -> None:
    for command in ("run", "simulate"):
        option = next(p for p in click_group.commands[command].params if p.name == "time_scale")
        assert isinstance(option.type, click.FloatRange)
        assert (option.type.min, option.type.max) == (MIN_TIME_SCALE, MAX_TIME_SCALE)
        assert not (option.type.min_open or option.type.max_open)


@pytest.mark.parametrize(("make", "message"), [
    (lambda: SimulatorConfig(time_scale=float("inf")),
     "time_scale must be from 1e-06 to 1000 real seconds per service second, got inf"),
    (lambda: SimulatorConfig(time_scale=float("nan")), "time_scale must be above 0, got nan"),
    (lambda: SimulatorConfig(url_ttl=float("inf")), "url_ttl must be at most 2592000 seconds, got inf"),
    (lambda: SimulatorConfig(credits=2**63), f"credits must be from 0 to {2**63 - 1}, got {2**63}"),
    (lambda: SimulatorConfig(submits_per_minute=10**400), "submits_per_minute must be at most 1000000, got 1"),
    (lambda: Faults(slow_seconds=float("inf")), "faults.slow_seconds must be at most 2592000 seconds, got inf"),
    (lambda: Faults(hang_seconds=1e300), "faults.hang_seconds must be at most 2592000 seconds, got 1e+300"),
    (lambda: WebhookFaults(delay_seconds=float("inf")),
     "webhooks.delay_seconds must be at most 2592000 seconds, got inf"),
])
def test_simulator_numbers_are_finite_and_bounded(make: Any, message: str) -> None:
    with pytest.raises(UsageError) as excinfo:
        make()
    assert excinfo.value.message.startswith(message)


def test_simulate_with_an_endless_url_lifetime_is_one_line(tmp_path: Path) -> None:
    # It used to start serving, then fail every status call with an OverflowError.
    done = cli_process(tmp_path, "simulate", "--port", "0", "--url-ttl", "inf")
    assert one_line(done) == "error: url_ttl must be at most 2592000 seconds, got inf"


# --- the promise: any hostile manifest ends within 10 s and 500 MB, one line per problem ----------


def test_a_battery_of_hostile_manifests_each_ends_in_bounds(tmp_path: Path) -> None:
    # One process (imports paid once) validating each in turn, under validate's memory bound.
    cases = {
        "numbers.yaml": HEAD + "budget: {max_usd: 0x" + "f" * 100_000 + "}\n" + PLAIN_SHOT,
        "nodes.yaml": HEAD + "vars: {x: [" + "[0]," * MAX_NODES + "]}\n" + PLAIN_SHOT,
        "aliases.yaml": HEAD + "vars:\n  a: &a [" + "x," * 5000 + "]\n  b: [" + "*a," * 1000 + "]\n" + PLAIN_SHOT,
        "long-name.yaml": HEAD.replace("hostile", "x" * (4 * 2**20)) + PLAIN_SHOT,
        "json.yaml": HEAD + "matrix:\n  locale: {from: big.json}\n" + SHOT,
        "csv.yaml": HEAD + "matrix:\n  locale: {from: big.csv}\n" + SHOT,
    }
    for name, text in cases.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    (tmp_path / "big.json").write_text("[" + '"\\ud83d\\ude00",' * 250_000 + '"\\udfff"]', encoding="utf-8")
    _csv_rows(tmp_path / "big.csv", sources.MAX_VALUES + 1)
    code = textwrap.dedent(f"""
        import sys, time
        from seedance_batch.cli import main
        for name in {sorted(cases)!r}:
            started = time.perf_counter()
            code = main(["validate", name])
            print(name, code, round(time.perf_counter() - started, 2), file=sys.stderr, flush=True)
    """)
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                          timeout=len(cases) * DEADLINE_SECONDS, preexec_fn=_limits)
    assert "Traceback" not in done.stderr and done.returncode == 0, done.stderr[-2000:]
    timings = [line.split() for line in done.stderr.splitlines() if line.split()[0] in cases]
    assert [name for name, *_ in timings] == sorted(cases), done.stderr[-2000:]
    for name, code_text, seconds in timings:
        assert code_text == "2" and float(seconds) < DEADLINE_SECONDS, (name, code_text, seconds)
    problems = [line for line in done.stderr.splitlines() if line.split()[0] not in cases]
    assert len(problems) == len(cases), problems  # one line each
    assert all(len(line) < 1000 for line in problems), [line[:200] for line in problems]
