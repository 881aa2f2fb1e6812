"""Model rules and prices: read from schemas/models.json, checked and priced by pure functions."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from seedance_batch.errors import Location, ManifestError, ManifestErrors, PriceFileError
from seedance_batch.expand import Job, request_key
from seedance_batch.models import (
    check_request,
    load_catalog,
    price_jobs,
    price_request,
    render_prior_seconds,
    render_time,
)

REPO = Path(__file__).resolve().parents[1]
CONTRACT_RATES = {  # (model, resolution, video input) -> credits/s, from apidot-contract.md
    ("seedance-2", "480p", True): 10, ("seedance-2", "480p", False): 20,
    ("seedance-2", "720p", True): 20, ("seedance-2", "720p", False): 40,
    ("seedance-2", "1080p", True): 45, ("seedance-2", "1080p", False): 90,
    ("seedance-2-fast", "480p", True): 8, ("seedance-2-fast", "480p", False): 14,
    ("seedance-2-fast", "720p", True): 16, ("seedance-2-fast", "720p", False): 28,
}


def body(model: str = "seedance-2", **fields: object) -> dict:
    data = {"prompt": "a lighthouse at dusk", "duration": 5, "resolution": "720p"}
    data.update(fields)
    return {"model": model, "input": {k: v for k, v in data.items() if v is not None}}


@pytest.fixture(scope="module")
def catalog():
    return load_catalog()


def test_bundled_catalog_matches_the_published_table(catalog) -> None:
    assert catalog.snapshot_date == "2026-04-19"
    for (model, resolution, video), credits in CONTRACT_RATES.items():
        media = {"reference_video_urls": ["https://cdn.example/ref.mp4"]} if video else {}
        cost = price_request(body(model, resolution=resolution, duration=10, **media), catalog)
        assert cost.credits == credits * 10
        assert cost.usd == Decimal("0.005") * credits * 10


def test_comparison_price_is_listed_beside(catalog) -> None:
    cost = price_request(body("seedance-2", resolution="1080p", duration=4), catalog)
    assert cost.comparison_usd == Decimal("0.685") * 4


def test_valid_request_has_no_violations(catalog) -> None:
    assert check_request(body(aspect_ratio="9:16", generate_audio=True), catalog) == []


@pytest.mark.parametrize(
    ("request_body", "field", "fragment"),
    [
        (body("seedance-3"), "model", "unknown model 'seedance-3'; known models: seedance-2, seedance-2-fast"),
        (body("seedance-2-fast", resolution="1080p"), "input.resolution", "allowed: 480p, 720p"),
        (body(duration=3), "input.duration", "duration 3 is out of range; allowed: 4 to 15 seconds"),
        (body(duration=16), "input.duration", "out of range"),
        (body(duration=5.5), "input.duration", "whole number of seconds"),
        (body(duration=True), "input.duration", "whole number of seconds"),
        (body(aspect_ratio="2:1"), "input.aspect_ratio", "aspect ratio '2:1' is not allowed"),
        (body(prompt="  "), "input.prompt", "prompt is required"),
        (body(generate_audio="yes"), "input.generate_audio", "true or false"),
        (body(image_urls=["https://a/1.png", "https://a/2.png", "https://a/3.png"]), "input.image_urls", "at most 2"),
        (body(image_urls=["file:///etc/passwd"]), "input.image_urls[0]", "not an absolute http(s) URL"),
        (body(reference_audio_urls=["/tmp/a.wav"]), "input.reference_audio_urls[0]", "not an absolute http(s) URL"),
        (
            body(image_urls=["https://a/1.png"], reference_image_urls=["https://a/r.png"]),
            "input.image_urls",
            "frame mode (image_urls) and reference mode (reference_image_urls) cannot be mixed",
        ),
        (body(seed=2**32), "input.seed", "seed 4294967296 is out of range; allowed: 0 to 4294967295"),
    ],
)
def test_each_rule_is_enforced(catalog, request_body, field, fragment) -> None:
    problems = check_request(request_body, catalog)
    assert [p.field for p in problems] == [field]
    assert fragment in problems[0].message


def test_switching_model_changes_only_the_model(catalog) -> None:
    assert check_request(body("seedance-2-fast", resolution="480p"), catalog) == []


def make_job(request: dict, label: str = "hero", origins: dict | None = None) -> Job:
    return Job(
        campaign="spring", shot="hero", label=label, combination={}, request=request,
        key=request_key(request), output_path=f"spring/hero/{label}.mp4",
        location=Location("m.yaml", 10, 5, "shots[0]"), origins=origins or {},
    )


def test_price_jobs_reports_every_violation_at_the_line_that_set_it(catalog) -> None:
    jobs = [
        make_job(body(duration=20), "hero/en", {"duration": Location("m.yaml", 14, 17, "shots[0].matrix.duration[1]")}),
        make_job(body("seedance-2-fast", resolution="1080p"), "hero/fr"),
        make_job(body(), "hero/de"),
    ]
    with pytest.raises(ManifestErrors) as caught:
        price_jobs(jobs, catalog)
    assert caught.value.lines() == [
        "m.yaml:10:5: shots[0] (job hero/fr): resolution '1080p' is not offered by seedance-2-fast; allowed: 480p, 720p",
        "m.yaml:14:17: shots[0].matrix.duration[1] (job hero/en): duration 20 is out of range; allowed: 4 to 15 seconds",
    ]


def test_price_jobs_single_violation_is_one_error(catalog) -> None:
    with pytest.raises(ManifestError) as caught:
        price_jobs([make_job(body(duration=2))], catalog)
    assert not isinstance(caught.value, ManifestErrors)


def test_user_price_file_is_used(tmp_path: Path) -> None:
    data = json.loads((REPO / "schemas" / "models.json").read_text())
    data["snapshot_date"] = "2027-01-01"
    data["models"]["seedance-2"]["prices"]["720p"]["text_or_image"]["credits_per_second"] = 50
    path = tmp_path / "prices.json"
    path.write_text(json.dumps(data))
    catalog = load_catalog(path)
    assert catalog.snapshot_date == "2027-01-01"
    assert price_request(body(duration=4), catalog).credits == 200


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("{", "prices.json:1:2: not valid JSON: Expecting property name enclosed in double quotes"),
        ('{"snapshot_date": "2026-01-01", "credit_usd": 0.005}', "prices.json: 'models' is a required property"),
        (
            '{"snapshot_date": "2026-01-01", "credit_usd": 0.005, "models": {"m": {"resolutions": ["480p"],'
            ' "duration": {"min": 4, "max": 15}, "aspect_ratios": ["1:1"], "max_image_urls": 2, "prices": {}}}}',
            "prices.json: models.m.prices: resolution(s) 480p have no price; every listed resolution needs",
        ),
    ],
)
def test_bad_price_file_is_one_clear_error(tmp_path: Path, monkeypatch, content: str, expected: str) -> None:
    monkeypatch.chdir(tmp_path)
    Path("prices.json").write_text(content)
    with pytest.raises(PriceFileError) as caught:
        load_catalog("prices.json")
    assert caught.value.format().startswith(expected)


def test_missing_price_file(tmp_path: Path) -> None:
    with pytest.raises(PriceFileError, match="price file not found"):
        load_catalog(tmp_path / "nope.json")


def test_jobs_sharing_parameters_share_one_verdict_but_each_prompt_is_checked(catalog) -> None:
    jobs = [make_job(body(prompt=f"take {i}"), f"hero/{i}") for i in range(3)]
    jobs.append(make_job(body(prompt=" "), "hero/blank"))
    with pytest.raises(ManifestError, match="prompt is required"):
        price_jobs(jobs, catalog)
    priced = price_jobs(jobs[:3], catalog)
    assert [p.cost.credits for p in priced] == [200, 200, 200]


def test_unhashable_parameter_values_are_checked_not_crashed(catalog) -> None:
    odd = make_job(body(image_urls=[{"url": "https://a/1.png"}]), "hero/odd")
    with pytest.raises(ManifestError, match="not an absolute http"):
        price_jobs([odd], catalog)


def test_one_mistake_shared_by_many_jobs_is_one_line(catalog) -> None:
    defaults = Location("m.yaml", 6, 15, "defaults.resolution")
    jobs = [make_job(body("seedance-2-fast", resolution="1080p", prompt=f"take {i}"), f"hero/{i}", {"resolution": defaults})
            for i in range(50)]
    with pytest.raises(ManifestError) as caught:
        price_jobs(jobs, catalog)
    assert caught.value.lines() == [
        "m.yaml:6:15: defaults.resolution (job hero/0): resolution '1080p' is not offered by seedance-2-fast; "
        "allowed: 480p, 720p; and 49 more job(s)"
    ]


# --- no limit made up for a model nobody described --------------------------------------------------


def test_an_unknown_model_gets_only_the_checks_that_need_no_model(catalog) -> None:
    mixed = body("seedance-3", duration=99, image_urls=["https://a/1", "https://a/2", "https://a/3"],
                 reference_image_urls=["https://a/r"])
    assert [p.field for p in check_request(mixed, catalog)] == ["model"]
    problems = check_request(body("seedance-3", duration=5.5), catalog)
    assert [p.message for p in problems][1:] == ["duration must be a whole number of seconds, got 5.5"]


# --- the price file: rules keyed as the parameter table names them -----------------------------------


def _price_file(tmp_path: Path, change) -> Path:
    data = json.loads((REPO / "schemas" / "models.json").read_text())
    change(data["models"]["seedance-2"])
    path = tmp_path / "prices.json"
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda m: m.update(aspect_ratio=["1:1"]),
         "models.seedance-2.aspect_ratio: 'aspect_ratio' is not the rule of any request parameter; known keys: "
         "resolutions, duration, aspect_ratios, max_image_urls, seed, prices, max_file, modes, render"),
        (lambda m: m.update(duration=["4"]), "models.seedance-2.duration"),
        (lambda m: m["modes"].update(frame=["image_url"]),
         "models.seedance-2.modes.frame: mode 'frame' names image_url, which is not a request input field"),
    ],
)
def test_a_rule_the_table_does_not_know_is_refused(tmp_path: Path, change, expected: str) -> None:
    with pytest.raises(PriceFileError) as caught:
        load_catalog(_price_file(tmp_path, change))
    assert expected in caught.value.format()


def test_a_price_file_without_modes_mixes_freely(tmp_path: Path) -> None:
    catalog = load_catalog(_price_file(tmp_path, lambda m: m.pop("modes")))
    mixed = body(image_urls=["https://a/1.png"], reference_image_urls=["https://a/r.png"])
    assert check_request(mixed, catalog) == []


# --- render-time priors: data, and the figure polling aimed with before ----------------------------


def _old_prior(model: str, resolution: str, duration: int) -> float:
    """run/polling.prior_seconds as it was, with its constants in code."""
    factor = {"480p": 0.6, "720p": 1.0, "1080p": 2.0}.get(resolution, 1.0) * {"seedance-2-fast": 0.6}.get(model, 1.0)
    return 3.0 + (20.0 + 6.0 * duration) * factor


@pytest.mark.parametrize("model", ["seedance-2", "seedance-2-fast", "seedance-9"])
def test_render_prior_is_the_figure_polling_computed(catalog, model: str) -> None:
    for resolution in ("480p", "720p", "1080p", "4k"):
        for duration in range(4, 16):
            if model == "seedance-2-fast" and resolution == "1080p":
                continue  # not offered: no request asks for it
            assert render_prior_seconds(catalog, model, resolution, duration) == pytest.approx(
                _old_prior(model, resolution, duration), rel=1e-12)


def test_a_model_without_render_figures_gets_the_slowest(tmp_path: Path) -> None:
    catalog = load_catalog(_price_file(tmp_path, lambda m: m.pop("render")))
    # seedance-2 has none here; the slowest left is seedance-2-fast's.
    assert render_prior_seconds(catalog, "seedance-2", "720p", 5) == pytest.approx(3 + (12 + 3.6 * 5) * 1.0)
    for spec in ("seedance-2", "seedance-2-fast"):
        assert render_time(catalog, spec).queue_seconds == 3.0


def test_the_simulator_renders_in_the_models_own_time(catalog) -> None:
    from seedance_batch.simulator.config import Latency, SimulatorConfig
    from seedance_batch.simulator.tasks import make_task

    def render(latency: Latency, model: str, resolution: str) -> tuple[float, float]:
        task = make_task(SimulatorConfig(latency=latency), body(model, resolution=resolution), "k", 0, 100.0, 1, catalog)
        return task.starts_at - task.created, task.ends_at - task.starts_at

    exact = Latency(jitter=0)
    # (base + per_video_second x duration x factor) of each model's figures in models.json
    assert render(exact, "seedance-2", "1080p") == (3.0, pytest.approx(20 + 6 * 5 * 2.0))
    assert render(exact, "seedance-2-fast", "480p") == (3.0, pytest.approx(12 + 3.6 * 5 * 0.6))
    # a figure set on the simulator applies to every model
    assert render(Latency(queue_seconds=0, base_seconds=1, per_video_second=0, jitter=0), "seedance-2-fast", "720p") == (0, 1)
