"""Loading manifests: positions, YAML 1.2 scalars, hostile YAML, from: files, the schema, the CLI."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import sysconfig
import textwrap
import tracemalloc
from dataclasses import FrozenInstanceError
from decimal import Decimal
from pathlib import Path

import jsonschema
import pytest

from seedance_batch.cli import main
from seedance_batch.errors import ManifestError, ManifestErrors
from seedance_batch.manifest import Manifest, load_manifest
from seedance_batch.manifest.yamlsrc import MAX_ALIAS_NODES, YamlProblem, load_yaml

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "manifests").glob("*.yaml"))
EXAMPLE_MANIFESTS = [p for p in EXAMPLES if "version:" in p.read_text(encoding="utf-8")]


def write(tmp_path: Path, text: str, name: str = "m.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


MINIMAL = """\
version: 1
name: demo
defaults: {model: seedance-2, resolution: 720p, duration: 5}
shots:
  - id: hero
    prompt: a lighthouse at dusk
"""


def messages(excinfo: pytest.ExceptionInfo[Exception]) -> list[str]:
    error = excinfo.value
    assert isinstance(error, (ManifestError, ManifestErrors))
    return error.lines()


# --- the Manifest record ---------------------------------------------------------------------


def test_example_loads_with_its_fields() -> None:
    path = ROOT / "manifests" / "ad-localization.yaml"
    m = load_manifest(path)
    assert m.name == "brightside-launch"
    assert m.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert m.budget_usd == Decimal("60")
    assert dict(m.run) == {"submits_per_minute": 20, "max_in_flight": 6}
    assert m.output_dir == "renders"
    assert m.output_filename is None
    assert m.private is False
    assert m.description.startswith("Cold-brew launch")
    locale = m.matrix.axes[0]
    assert locale.name == "locale" and locale.source is not None and locale.source.file.endswith("locales.csv")
    assert [v["id"] for v in locale.values] == ["en-US", "de-DE", "fr-FR", "ja-JP", "pt-BR"]
    assert [loc.line for loc in locale.locations] == [2, 3, 4, 5, 6]
    assert locale.locations[0].path == "matrix.locale[0]"  # the data file's line, the manifest's path


def test_defaults_when_sections_are_absent(tmp_path: Path) -> None:
    m = load_manifest(write(tmp_path, MINIMAL))
    assert (m.budget_usd, dict(m.run), m.output_dir, m.output_filename, m.private) == (None, {}, "renders", None, False)


def test_manifest_is_frozen(tmp_path: Path) -> None:
    m = load_manifest(write(tmp_path, MINIMAL))
    with pytest.raises(FrozenInstanceError):
        m.name = "other"  # type: ignore[misc]


def test_budget_is_an_exact_decimal(tmp_path: Path) -> None:
    m = load_manifest(write(tmp_path, MINIMAL + "budget: {max_usd: 0.1}\n"))
    assert m.budget_usd == Decimal("0.1")


def test_locate_gives_line_col_and_dotted_path(tmp_path: Path) -> None:
    m = load_manifest(write(tmp_path, MINIMAL))
    where = m.locate(("shots", 0, "prompt"))
    assert (where.line, where.col, where.path) == (6, 13, "shots[0].prompt")
    key = m.locate(("shots", 0, "prompt"), at_key=True)
    assert (key.line, key.col) == (6, 5)
    # A path that is not written (a missing key) points at its nearest written parent.
    missing = m.locate(("shots", 0, "duration"))
    assert (missing.line, missing.path) == (5, "shots[0].duration")
    assert m.locate(()).line == 1


# --- YAML ----------------------------------------------------------------------------------


def test_yaml_1_2_scalars_keep_ratios_and_words_as_text() -> None:
    data, _ = load_yaml("a: 16:9\nb: no\nc: on\nd: 2024-01-01\ne: 010\nf: 0x1f\ng: true\nh: ~\ni: 1.5\nj: '5'\n")
    assert data == {"a": "16:9", "b": "no", "c": "on", "d": "2024-01-01", "e": 10, "f": 31,
                    "g": True, "h": None, "i": 1.5, "j": "5"}


def test_merge_keys_work_and_explicit_keys_win() -> None:
    data, pos = load_yaml("base: &b {x: 1, y: 2}\nother:\n  <<: *b\n  y: 3\n")
    assert data["other"] == {"x": 1, "y": 3}
    assert pos.items["other"][2].items["y"][0] == 4


@pytest.mark.parametrize(("text", "message", "line"), [
    ("a: 1\na: 2\n", "duplicate key 'a' (first written on line 1); keep one", 2),
    ("a: &a [*a]\n", "recursive alias *a refers to a node that contains it", 1),
    ("a: *nope\n", "alias *nope names no anchor defined before it", 1),
    ("a: !!binary aGk=\n", "unsupported YAML tag 'tag:yaml.org,2002:binary'; manifests use plain data only", 1),
    ("a: !!int twelve\n", "'twelve' is not a valid int", 1),
    ("? [1]\n: 2\n", "a mapping key must be a plain value, not a list or mapping", 1),
    ("a: 1\n---\nb: 2\n", "several YAML documents ('---') in one file; a manifest is one document", 2),
    ("a: 1\nmax_usd: .nan\n", "'.nan' is not a finite number; manifests take finite numbers only", 2),
    ("a: [-.inf]\n", "'-.inf' is not a finite number; manifests take finite numbers only", 1),
    ("a: !!float 1e400\n", "'1e400' is not a finite number; manifests take finite numbers only", 1),
])
def test_yaml_problems_are_reported_with_their_line(text: str, message: str, line: int) -> None:
    with pytest.raises(YamlProblem) as excinfo:
        load_yaml(text)
    assert (excinfo.value.message, excinfo.value.line) == (message, line)


def _billion_laughs(levels: int = 9) -> str:
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, levels + 1):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]")
    return "\n".join(lines) + "\n"


def test_alias_bomb_is_refused_in_bounded_memory() -> None:
    tracemalloc.start()
    try:
        with pytest.raises(YamlProblem) as excinfo:
            load_yaml(_billion_laughs())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert f"aliases repeat more than {MAX_ALIAS_NODES} nodes" in excinfo.value.message
    assert peak < 2 * 2**20


def test_modest_aliases_are_fine() -> None:
    data, _ = load_yaml(_billion_laughs(levels=2))
    assert len(data["a2"]) == 9 and data["a2"][0] is data["a1"]


def _limited_python(code: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter with at most 1 GiB of address space."""
    prelude = "import resource; resource.setrlimit(resource.RLIMIT_AS, (2**30, 2**30))\n"
    return subprocess.run([sys.executable, "-c", prelude + code], capture_output=True, text=True, timeout=timeout)


def test_hostile_yaml_fails_fast_in_a_memory_limited_process(tmp_path: Path) -> None:
    bomb = write(tmp_path, "version: 1\nname: x\nvars:\n" + textwrap.indent(_billion_laughs(), "  ") + "shots: [{id: a, prompt: hi}]\n", "bomb.yaml")
    # 100,000 nested brackets crash PyYAML's C composer (a segfault); we never compose.
    deep = tmp_path / "deep.yaml"
    deep.write_text("a: " + "[" * 100_000 + "]" * 100_000 + "\n", encoding="utf-8")
    code = f"from seedance_batch.cli import main; import sys; sys.exit(main(['validate', {str(bomb)!r}]) * 10 + main(['validate', {str(deep)!r}]))"
    done = _limited_python(code)
    assert done.returncode == 22, done.stderr
    assert "alias bomb" in done.stderr and "nesting deeper than 100 levels" in done.stderr
    assert "Traceback" not in done.stderr


# --- schema errors ---------------------------------------------------------------------------


def test_unknown_nested_key_gets_a_did_you_mean(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + "run:\n  max_inflight: 4\n")
    with pytest.raises(ManifestError) as excinfo:
        load_manifest(path)
    assert messages(excinfo) == [
        f"{path}:8:3: run.max_inflight: unknown key 'max_inflight' (did you mean 'max_in_flight'?); allowed: "
        "callback_url, confirm_above_usd, max_attempts, max_in_flight, poll_interval, status_per_minute, "
        "submits_per_minute, timeout"
    ]


def test_independent_problems_come_together_in_source_order(tmp_path: Path) -> None:
    path = write(tmp_path, """\
        version: 1
        name: Bad Name
        shots:
          - {id: a, prompt: x, duration: long}
          - {id: a, prompt: y}
        """)
    with pytest.raises(ManifestErrors) as excinfo:
        load_manifest(path)
    assert [line.split(": ", 2)[1] for line in messages(excinfo)] == ["name", "shots[0].duration", "shots[1].id"]


def test_catalog_enums_are_left_to_the_catalog(tmp_path: Path) -> None:
    # The schema lists today's models for editors; a user's price file may add one.
    path = write(tmp_path, MINIMAL.replace("seedance-2,", "seedance-9,"))
    assert load_manifest(path).defaults.values["model"] == "seedance-9"


def test_missing_manifest(tmp_path: Path) -> None:
    with pytest.raises(ManifestError) as excinfo:
        load_manifest(tmp_path / "nope.yaml")
    assert messages(excinfo) == [f"{tmp_path / 'nope.yaml'}: manifest not found"]


# --- from: files -------------------------------------------------------------------------------


def _axis_manifest(spec: str, prompt: str = "{{ locale.id }}") -> str:
    return MINIMAL.replace("shots:", f"matrix:\n  locale: {spec}\nshots:").replace(
        "a lighthouse at dusk", f'"{prompt}"')


def test_csv_rows_become_mappings(tmp_path: Path) -> None:
    (tmp_path / "l.csv").write_bytes('\ufeffid,tagline\nen,"Hello, world"\n\nde,Hallo\n'.encode())
    m = load_manifest(write(tmp_path, _axis_manifest("{from: l.csv}")))
    locale = m.matrix.axes[0]
    assert locale.values == ({"id": "en", "tagline": "Hello, world"}, {"id": "de", "tagline": "Hallo"})
    assert [loc.line for loc in locale.locations] == [2, 4]


def test_json_and_yaml_lists(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text('[{"id": "x", "n": 1}, "y"]', encoding="utf-8")
    (tmp_path / "b.yml").write_text("- id: p\n- q\n", encoding="utf-8")
    m = load_manifest(write(tmp_path, _axis_manifest("{from: a.json}")))
    assert m.matrix.axes[0].values == ({"id": "x", "n": 1}, "y")
    m = load_manifest(write(tmp_path, _axis_manifest("{from: b.yml}")))
    assert [loc.line for loc in m.matrix.axes[0].locations] == [1, 2]


@pytest.mark.parametrize("content", ['[1, NaN]', '[{"id": "x", "n": -Infinity}]', '[1e999]'])
def test_json_values_must_be_finite(tmp_path: Path, content: str) -> None:
    (tmp_path / "a.json").write_text(content, encoding="utf-8")
    with pytest.raises(ManifestError) as excinfo:
        load_manifest(write(tmp_path, _axis_manifest("{from: a.json}")))
    assert messages(excinfo)[0].endswith(" is not a finite number; give finite numbers only")


def test_a_file_shared_by_shots_is_read_once(tmp_path: Path) -> None:
    (tmp_path / "l.csv").write_text("id\nen\n", encoding="utf-8")
    text = _axis_manifest("{from: l.csv}") + '  - id: two\n    prompt: "{{ locale.id }} again"\n    matrix: {locale: {from: l.csv}}\n'
    m = load_manifest(write(tmp_path, text))
    own = m.shots[1].matrix
    assert own is not None and m.matrix.axes[0].source is own.axes[0].source


def test_symlink_out_of_the_folder_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "secret.csv"
    outside.write_text("id\nx\n", encoding="utf-8")
    folder = tmp_path / "campaign"
    folder.mkdir()
    os.symlink(outside, folder / "l.csv")
    path = write(folder, _axis_manifest("{from: l.csv}"))
    with pytest.raises(ManifestError) as excinfo:
        load_manifest(path)
    assert messages(excinfo) == [
        f"{path}:5:18: matrix.locale.from: 'l.csv' resolves outside the manifest's folder (a symlink?); "
        "keep data files beside the manifest"
    ]


@pytest.mark.parametrize(("content", "message"), [
    ("", "empty CSV; the first row names the columns (one of them 'id')"),
    ("id,id\nx,y\n", "column 'id' appears twice in the header"),
    ("id\n", "no rows below the header; an axis needs at least one value"),
    ('id,t\nx,"open\n', "malformed CSV: unexpected end of data"),
])
def test_bad_csv(tmp_path: Path, content: str, message: str) -> None:
    (tmp_path / "l.csv").write_text(content, encoding="utf-8")
    with pytest.raises(ManifestError) as excinfo:
        load_manifest(write(tmp_path, _axis_manifest("{from: l.csv}")))
    assert messages(excinfo)[0].endswith(message)


def test_loaded_values_are_checked_like_inline_ones(tmp_path: Path) -> None:
    (tmp_path / "l.csv").write_text("id,x\nok,1\n../up,2\n", encoding="utf-8")
    with pytest.raises(ManifestError) as excinfo:
        load_manifest(write(tmp_path, _axis_manifest("{from: l.csv}")))
    assert messages(excinfo) == [
        f"{tmp_path / 'l.csv'}:3: row 2.id: '../up' is not allowed; use letters, digits, '.', '_', ':', '+' and '-', "
        "starting with a letter or digit (it names files)"
    ]


# --- the schema file ----------------------------------------------------------------------------


def _schema() -> dict:
    return json.loads((ROOT / "schemas" / "manifest.schema.json").read_text(encoding="utf-8"))


def test_schema_is_valid_2020_12_with_an_id() -> None:
    schema = _schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"].endswith("manifest.schema.json")


def test_schema_completion_enums_agree_with_the_model_catalog() -> None:
    defs = _schema()["$defs"]
    catalog = json.loads((ROOT / "schemas" / "models.json").read_text(encoding="utf-8"))["models"]
    assert defs["model"]["enum"] == list(catalog)
    resolutions = {r for spec in catalog.values() for r in spec["resolutions"]}
    assert set(defs["resolution"]["enum"]) == resolutions
    ratios = {r for spec in catalog.values() for r in spec["aspect_ratios"]}
    assert set(defs["aspect_ratio"]["enum"]) == ratios
    assert defs["duration"]["minimum"] == min(s["duration"]["min"] for s in catalog.values())
    assert defs["duration"]["maximum"] == max(s["duration"]["max"] for s in catalog.values())
    assert defs["params"]["properties"]["image_urls"]["maxItems"] == max(s["max_image_urls"] for s in catalog.values())


@pytest.mark.parametrize("path", EXAMPLE_MANIFESTS, ids=lambda p: p.name)
def test_examples_pass_the_raw_schema_as_an_editor_sees_it(path: Path) -> None:
    data, _ = load_yaml(path.read_text(encoding="utf-8"))
    assert list(jsonschema.Draft202012Validator(_schema()).iter_errors(data)) == []


# --- CLI ----------------------------------------------------------------------------------------


def test_schema_command_prints_the_schema(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0
    assert json.loads(capsys.readouterr().out) == _schema()


@pytest.mark.parametrize("path", EXAMPLE_MANIFESTS, ids=lambda p: p.name)
def test_examples_validate(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(path)]) == 0
    assert capsys.readouterr().out.startswith(f"{path}: ok: campaign ")


def test_validate_uses_the_given_price_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    catalog = json.loads((ROOT / "schemas" / "models.json").read_text(encoding="utf-8"))
    catalog["models"]["seedance-9"] = catalog["models"]["seedance-2"]
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps(catalog), encoding="utf-8")
    path = write(tmp_path, MINIMAL.replace("seedance-2,", "seedance-9,"))
    assert main(["validate", str(path)]) == 2
    assert "unknown model 'seedance-9'" in capsys.readouterr().err
    assert main(["validate", str(path), "--prices", str(prices)]) == 0
    assert capsys.readouterr().out == f"{path}: ok: campaign 'demo', 1 job(s) from 1 shot(s)\n"


def test_console_script_exit_codes(tmp_path: Path) -> None:
    # The script pip installed beside this interpreter: a virtualenv need not be on PATH.
    script = str(Path(sysconfig.get_path("scripts")) / "seedance-batch")
    good = subprocess.run([script, "validate", "manifests/ad-localization.yaml"],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert (good.returncode, good.stdout) == (0, "manifests/ad-localization.yaml: ok: campaign 'brightside-launch', 22 job(s) from 3 shot(s)\n")
    bad = subprocess.run([script, "validate", "wrong-version.yaml"],
                         cwd=ROOT / "tests" / "bad_manifests", capture_output=True, text=True, timeout=60)
    assert (bad.returncode, bad.stderr) == (2, "wrong-version.yaml:1:10: version: 2 is not supported; allowed: 1\n")


def test_manifest_type_is_exported() -> None:
    assert Manifest.__name__ == "Manifest"
