"""The parameter table is the one list of request parameters: the schema and the model data agree with it.

And the goal it serves, proven: adding a parameter (issue 12's ``seed``) was a row in
expand/params.py, its property in manifest.schema.json and its rule in models.json, and
every stage (schema, rules, request, report columns) follows: the test re-adds it to a
copy of the package from which those three edits are taken out.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from seedance_batch._data import data_path
from seedance_batch.expand.params import (
    BOOLEAN,
    CHOICE,
    CONTEXT,
    CSV_AFTER_STATE,
    INPUT,
    INTEGER,
    KINDS,
    MODEL,
    NAMES,
    PARAMS,
    REQUIRED,
    TEMPLATED,
    TEXT,
    URLS,
    csv_params,
)
from seedance_batch.manifest.schema_check import _CATALOG_OWNED
from seedance_batch.models import load_catalog
from seedance_batch.report.tables import CSV_COLUMNS

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = json.loads(data_path("manifest.schema.json").read_text(encoding="utf-8"))
MODELS = json.loads(data_path("models.json").read_text(encoding="utf-8"))["models"]
# The JSON Schema type each kind of parameter has.
SCHEMA_TYPE = {MODEL: "string", TEXT: "string", INTEGER: "integer", CHOICE: "string", BOOLEAN: "boolean", URLS: "array"}
# What a shot has besides the request parameters.
SHOT_OWN_KEYS = {"id", "description", "private", "vars", "matrix"}
# report.csv as its first version wrote it: a stable interface (columns only ever appended).
CSV_V1 = (
    "label", "shot", "combination", "state", "model", "resolution", "duration_s", "aspect_ratio",
    "generate_audio", "attempts", "credits", "cost_usd", "fal_usd", "spent_usd", "render_s",
    "submitted_at", "finished_at", "task_id", "file", "size", "sha256", "error_class",
    "error_message", "private", "prompt", "key", "change",
)


def resolved(schema: dict[str, Any]) -> dict[str, Any]:
    """A property's schema with its ``$ref`` chain merged in (the outer keywords win)."""
    merged = dict(schema)
    while "$ref" in merged:
        target = SCHEMA
        for part in merged.pop("$ref").removeprefix("#/").split("/"):
            target = target[part]
        merged = {**target, **merged}
    return merged


def test_the_table_is_well_formed() -> None:
    assert len(set(NAMES)) == len(NAMES)
    assert all(p.kind in KINDS for p in PARAMS)
    assert sorted(p.order for p in PARAMS) == list(range(len(PARAMS)))
    assert [p.name for p in PARAMS if not p.in_input] == ["model"]
    assert all(p.kind in (TEXT, URLS) for p in PARAMS if p.templated)  # only text is a template
    assert len({p.csv for p in PARAMS if p.csv}) == len([p for p in PARAMS if p.csv])


def test_the_derived_lists_are_todays() -> None:
    assert INPUT == ("prompt", "duration", "resolution", "aspect_ratio", "generate_audio",
                     "image_urls", "reference_image_urls", "reference_video_urls", "reference_audio_urls", "seed")
    assert TEMPLATED == ("prompt", "image_urls", "reference_image_urls", "reference_video_urls", "reference_audio_urls")
    assert CONTEXT == ("model", "resolution", "duration", "aspect_ratio", "generate_audio")
    assert REQUIRED == ("model", "prompt", "resolution", "duration")
    owned = {("model", "enum"), ("resolution", "enum"), ("aspect_ratio", "enum"), ("duration", "minimum"),
             ("duration", "maximum"), ("seed", "minimum"), ("seed", "maximum")}
    assert owned == _CATALOG_OWNED


def test_the_manifest_schema_has_exactly_the_table_s_parameters() -> None:
    defs = SCHEMA["$defs"]
    assert set(defs["params"]["properties"]) == set(NAMES) | {"takes"}
    assert set(defs["shot"]["properties"]) == set(NAMES) | SHOT_OWN_KEYS | {"takes", "profiles"}
    assert set(defs["profile"]["properties"]) == set(NAMES) - {"seed"}  # a take is the same take in every profile


@pytest.mark.parametrize("param", PARAMS, ids=lambda p: p.name)
def test_each_parameter_s_schema_has_its_kind(param: Any) -> None:
    for where in ("params", "shot"):
        schema = resolved(SCHEMA["$defs"][where]["properties"][param.name])
        assert schema["type"] == SCHEMA_TYPE[param.kind], where
        if param.kind == URLS:
            assert resolved(schema["items"])["type"] == "string"


@pytest.mark.parametrize("param", [p for p in PARAMS if p.rule or p.kind == MODEL], ids=lambda p: p.name)
def test_the_schema_s_completion_agrees_with_models_json(param: Any) -> None:
    schema = resolved(SCHEMA["$defs"]["params"]["properties"][param.name])
    if param.kind == MODEL:
        assert schema["enum"] == list(MODELS)
        return
    rules = [spec[param.rule] for spec in MODELS.values()]
    if param.kind == CHOICE:
        assert set(schema["enum"]) == {choice for choices in rules for choice in choices}
    elif param.kind == INTEGER:
        assert (schema["minimum"], schema["maximum"]) == (min(r["min"] for r in rules), max(r["max"] for r in rules))
    else:
        assert schema["maxItems"] == max(rules)


def test_every_model_has_every_rule_and_only_rules_the_table_names() -> None:
    own = {"prices", "max_file", "modes", "render"}
    ruled = {p.rule for p in PARAMS if p.rule}
    for model_id, spec in MODELS.items():
        assert set(spec) - own == ruled, model_id
        assert {name for names in spec["modes"].values() for name in names} <= set(INPUT), model_id
    assert set(load_catalog().models) == set(MODELS)


def test_csv_keeps_its_first_columns_and_takes_parameter_columns_from_the_table() -> None:
    assert CSV_COLUMNS[: len(CSV_V1)] == CSV_V1
    after_state = [p.csv for p in csv_params(CSV_AFTER_STATE)]
    start = CSV_COLUMNS.index("state") + 1
    assert list(CSV_COLUMNS[start:start + len(after_state)]) == after_state


# --- adding `seed`: three files, every stage follows ---------------------------------------------------


SEED_ROW = '    Param("seed", INTEGER, order=10, rule="seed", csv="seed"),\n)\n\n# --- Derived'
_SEED_COMMENT = "    # Undocumented by APIDot's field table, sent by its own playground and client code.\n"
SEED_SCHEMA = {"type": "integer", "title": "Seed", "description": "Fixes the render's randomness."}
CHECKS = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    from seedance_batch.cli import main
    from seedance_batch.models import check_request, load_catalog
    from seedance_batch.report.tables import CSV_COLUMNS

    bad = {"model": "seedance-2", "input": {"prompt": "p", "duration": 5, "resolution": "720p", "seed": -1}}
    print(json.dumps({
        "violations": [f"{v.field}: {v.message}" for v in check_request(bad, load_catalog())],
        "csv": list(CSV_COLUMNS),
    }))
    sys.exit(main(["plan", "m.yaml", "--json"]))
""")


def _package_copy(tmp_path: Path) -> Path:
    """A copy of the package and its data under ``tmp_path`` (run with PYTHONPATH=tmp_path/runner); its table."""
    package = tmp_path / "runner" / "seedance_batch"
    shutil.copytree(ROOT / "runner" / "seedance_batch", package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "schemas", tmp_path / "schemas")
    return package / "expand" / "params.py"


def test_a_parameter_added_later_gets_the_last_column_and_no_shipped_column_moves(tmp_path: Path) -> None:
    table = _package_copy(tmp_path)
    shipped = table.read_text(encoding="utf-8")
    table.write_text(shipped.replace(SEED_ROW, SEED_ROW.replace(
        ")\n\n# --- Derived", '    Param("camera_fixed", BOOLEAN, order=11, csv="camera_fixed"),\n)\n\n# --- Derived'), 1),
        encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "runner")}
    done = subprocess.run([sys.executable, "-c", "import json; from seedance_batch.report.tables import CSV_COLUMNS, "
                           "_OWN_TEXT; print(json.dumps([list(CSV_COLUMNS), 'camera_fixed' in _OWN_TEXT]))"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    columns, own_text = json.loads(done.stdout)
    assert columns == [*CSV_COLUMNS, "camera_fixed"]  # appended after note, not before refund_usd
    assert own_text  # a boolean's cell is written by the report itself, never guarded as outside text


def test_adding_seed_touches_the_table_the_schema_and_models_json_only(tmp_path: Path) -> None:
    # A copy of the package and its data, changed in exactly those three files.
    table = _package_copy(tmp_path)
    shipped = table.read_text(encoding="utf-8")
    assert SEED_ROW in shipped  # the row as shipped, which the copy loses and gets back
    without = shipped.replace(SEED_ROW, ")\n\n# --- Derived", 1).replace(_SEED_COMMENT, "", 1)
    table.write_text(without.replace(")\n\n# --- Derived", SEED_ROW, 1), encoding="utf-8")
    schema = json.loads((tmp_path / "schemas" / "manifest.schema.json").read_text(encoding="utf-8"))
    for where in ("params", "shot"):
        del schema["$defs"][where]["properties"]["seed"]
        schema["$defs"][where]["properties"]["seed"] = SEED_SCHEMA
    (tmp_path / "schemas" / "manifest.schema.json").write_text(json.dumps(schema), encoding="utf-8")
    models = json.loads((tmp_path / "schemas" / "models.json").read_text(encoding="utf-8"))
    for spec in models["models"].values():
        spec["seed"] = {"min": 0, "max": 4294967295}
    (tmp_path / "schemas" / "models.json").write_text(json.dumps(models), encoding="utf-8")
    (tmp_path / "m.yaml").write_text(
        "version: 1\nname: seeded\ndefaults: {model: seedance-2, resolution: 720p, duration: 5, seed: 7}\n"
        "shots:\n  - id: hero\n    prompt: a lighthouse\n  - id: other\n    prompt: a harbour\n    seed: 8\n",
        encoding="utf-8",
    )
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "runner")}
    done = subprocess.run([sys.executable, "-c", CHECKS], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    checks, plan = (json.loads(line) for line in done.stdout.splitlines())
    assert checks["violations"] == ["input.seed: seed -1 is out of range; allowed: 0 to 4294967295"]
    columns = checks["csv"]
    assert columns[: len(CSV_V1)] == list(CSV_V1)  # existing columns unmoved, the new one after them
    assert columns.index("seed") > columns.index("change")
    assert [job["request"]["input"]["seed"] for job in plan["jobs"]] == [7, 8]
    assert list(plan["jobs"][0]["request"]["input"])[-1] == "seed"  # sent as input.seed, in its order
