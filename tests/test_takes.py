"""Takes and profiles: N seeded takes per combination, profiles laid over the shots, and their counterparts."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from seedance_batch.errors import ManifestError, ManifestErrors, UsageError
from seedance_batch.expand import Job, expand, expand_profiles
from seedance_batch.expand.takes import SEED_RANGE, take_seed
from seedance_batch.ledger import Decision, Verdict
from seedance_batch.manifest import load_manifest
from seedance_batch.models import load_catalog
from seedance_batch.promotion import choose_profile, seed_range
from seedance_batch.review.takes import combination_id

HEAD = "version: 1\nname: demo\n"
PROFILES = """\
defaults: {model: seedance-2, resolution: 720p, duration: 5, takes: 2}
profiles:
  draft: {model: seedance-2-fast, resolution: 480p, generate_audio: false}
  final: {resolution: 1080p}
profile: draft
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "m.yaml"
    path.write_text(HEAD + textwrap.dedent(text), encoding="utf-8")
    return path


def profiled(body: str, takes: int = 2) -> str:
    """The manifest text of :data:`PROFILES` (``takes`` takes) followed by ``body`` (indented as written)."""
    return PROFILES.replace("takes: 2", f"takes: {takes}") + textwrap.dedent(body)


def jobs_of(tmp_path: Path, text: str, profile: str | None = None) -> list[Job]:
    return expand(load_manifest(write(tmp_path, text)), profile)


def problems(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises((ManifestError, ManifestErrors)) as excinfo:
        expand_profiles(load_manifest(write(tmp_path, text)))
    return [line.split("m.yaml:", 1)[1] for line in excinfo.value.lines()]


# --- takes ---------------------------------------------------------------------------------------


def test_takes_render_each_combination_n_times_with_derived_seeds_in_labels_and_file_names(tmp_path: Path) -> None:
    text = """\
        defaults: {model: seedance-2, resolution: 720p, duration: 5, takes: 3}
        matrix: {locale: [en, de]}
        shots:
          - {id: hero, prompt: "{{ locale }}"}
        """
    jobs = jobs_of(tmp_path, text)
    assert [j.label for j in jobs] == ["hero/en#1", "hero/en#2", "hero/en#3", "hero/de#1", "hero/de#2", "hero/de#3"]
    assert [j.output_path for j in jobs[:2]] == ["demo/hero/hero_en_take1.mp4", "demo/hero/hero_en_take2.mp4"]
    assert [j.take for j in jobs] == [1, 2, 3] * 2
    seeds = [j.input["seed"] for j in jobs]
    assert seeds == [take_seed(j.label) for j in jobs]  # derived from the take label alone
    assert len(set(seeds)) == 6 and all(SEED_RANGE[0] <= s <= SEED_RANGE[1] for s in seeds)
    assert len({j.key for j in jobs}) == 6  # each take its own request, its own job
    assert [j.input["seed"] for j in jobs_of(tmp_path, text)] == seeds  # a re-plan gives the same takes


def test_a_seed_is_the_same_in_every_profile_and_campaign_and_survives_a_prompt_edit(tmp_path: Path) -> None:
    shots = "shots:\n  - {id: hero, prompt: a lighthouse}\n"
    draft, final = (jobs_of(tmp_path, PROFILES + shots, name) for name in ("draft", "final"))
    assert [j.label for j in draft] == ["hero#1@draft", "hero#2@draft"]
    assert [j.label for j in final] == ["hero#1@final", "hero#2@final"]
    assert [j.input["seed"] for j in draft] == [j.input["seed"] for j in final]
    assert [j.key for j in draft] != [j.key for j in final]  # another request, another job
    assert [j.take_label for j in final] == ["hero#1", "hero#2"]
    edited = jobs_of(tmp_path, PROFILES.replace("demo", "other") + shots.replace("lighthouse", "harbour"), "draft")
    assert [j.input["seed"] for j in edited] == [j.input["seed"] for j in draft]


def test_a_pinned_seed_is_sent_and_a_seed_axis_makes_one_take_per_value(tmp_path: Path) -> None:
    pinned = jobs_of(tmp_path, """\
        defaults: {model: seedance-2, resolution: 720p, duration: 5}
        shots:
          - {id: hero, prompt: x, seed: 42}
          - {id: pier, prompt: y, seed: 7, takes: 1}
        """)
    assert [(j.label, j.input["seed"]) for j in pinned] == [("hero", 42), ("pier#1", 7)]
    axis = jobs_of(tmp_path, """\
        defaults: {model: seedance-2, resolution: 720p, duration: 5}
        matrix: {locale: [en], seed: [11, 22, 33]}
        shots:
          - {id: hero, prompt: "{{ locale }}"}
        """)
    assert [(j.label, j.take, j.input["seed"]) for j in axis] == [
        ("hero/en#1", 1, 11), ("hero/en#2", 2, 22), ("hero/en#3", 3, 33)]
    assert len({combination_id(j) for j in axis}) == 1  # one combination, three takes of it


def test_take_mistakes_name_their_line(tmp_path: Path) -> None:
    found = problems(tmp_path, """\
        defaults: {model: seedance-2, resolution: 720p, duration: 5, takes: 2}
        matrix: {locale: [en]}
        shots:
          - {id: hero, prompt: "{{ locale }}", seed: 5}
          - id: pier
            prompt: "{{ locale }}"
            matrix: {locale: [en], seed: [1, 2]}
        """)
    assert found == [
        "3:69: defaults.takes: takes: 2 and the matrix's seed axis both make takes of shot 'pier'; keep one "
        "(each value of the seed axis is a take)",
        "6:46: shots[0].seed (job hero/en#1): takes: 2 would render 2 identical requests, since seed 5 is pinned "
        "here; remove seed (each take gets its own) or make seed a matrix axis (each value a take); "
        "and 1 more job(s) of this shot",
    ]


def test_an_axis_or_var_named_take_or_profile_keeps_its_meaning_and_take_is_in_templates(tmp_path: Path) -> None:
    jobs = jobs_of(tmp_path, """\
        defaults: {model: seedance-2, resolution: 720p, duration: 5}
        vars: {profile: mine}
        matrix: {take: [wide]}
        shots:
          - {id: hero, prompt: "{{ take }} {{ profile }}"}
          - {id: pier, prompt: "p", takes: 2, matrix: {cut: [a]}}
        output: {filename: "{{ shot.id }}/{{ cut | default(take) }}-{{ take }}"}
        """)
    assert [(j.label, j.input["prompt"]) for j in jobs[:1]] == [("hero/wide", "wide mine")]
    assert [j.output_path for j in jobs] == ["hero/wide-wide.mp4", "pier/a-1.mp4", "pier/a-2.mp4"]


# --- profiles ------------------------------------------------------------------------------------


def test_precedence_defaults_profile_shot_shot_profile_combination(tmp_path: Path) -> None:
    text = profiled("""\
        matrix: {aspect_ratio: ["9:16"], duration: [6]}
        shots:
          - id: hero
            prompt: x
            model: seedance-2
            profiles:
              draft: {resolution: 720p}
        """, takes=1)
    draft, final = (jobs_of(tmp_path, text, name)[0] for name in ("draft", "final"))
    # draft: the profile's fast model loses to the shot's model; the shot's own draft resolution wins;
    # the profile's generate_audio applies; the combination's duration beats every level.
    assert (draft.model, draft.input["resolution"], draft.input["generate_audio"], draft.input["duration"]) == (
        "seedance-2", "720p", False, 6)
    assert (final.model, final.input["resolution"], final.input.get("generate_audio"), final.input["duration"]) == (
        "seedance-2", "1080p", None, 6)


def test_profile_mistakes_come_together_with_their_lines(tmp_path: Path) -> None:
    path = write(tmp_path, """\
        defaults: {model: seedance-2, resolution: 720p, duration: 5}
        profiles:
          draft: {model: seedance-2-fast}
          final: {resolution: 1080p}
        profile: fnial
        shots:
          - {id: hero, prompt: x, profiles: {drfat: {duration: 6}}}
        """)
    with pytest.raises(ManifestErrors) as excinfo:
        load_manifest(path)
    assert [line.split("m.yaml:", 1)[1] for line in excinfo.value.lines()] == [
        "7:10: profile: profile 'fnial' is not declared (did you mean 'final'?); profiles: draft, final",
        "9:38: shots[0].profiles.drfat: the shot adjusts profile 'drfat', which the manifest does not declare "
        "(did you mean 'draft'?); profiles: draft, final",
    ]


def test_a_profile_that_changes_nothing_for_a_shot_is_refused_as_one_request(tmp_path: Path) -> None:
    found = problems(tmp_path, profiled("""\
        shots:
          - {id: hero, prompt: x, model: seedance-2, resolution: 720p, generate_audio: true}
        """))
    assert len(found) == 1 and "jobs 'hero#1@draft' and 'hero#1@final' make the identical request" in found[0]


# --- the plan's profiles and --approved ----------------------------------------------------------


def _decision(job: Job, verdict: Verdict, picked: bool = False) -> Decision:
    return Decision(campaign=job.campaign, key=job.key, label=job.label, combination=combination_id(job),
                    verdict=verdict, picked=picked, reviewer="ana", at="2026-12-01T00:00:00Z")


def test_approved_promotes_approved_takes_and_only_the_pick_where_a_combination_has_one(tmp_path: Path) -> None:
    manifest = load_manifest(write(tmp_path, profiled("""\
        matrix: {locale: [en, de]}
        shots:
          - {id: hero, prompt: "{{ locale }}"}
        """, takes=3)))
    catalog = load_catalog()
    drafts = {j.take_label: j for j in expand(manifest, "draft")}
    decisions = [
        _decision(drafts["hero/en#1"], Verdict.APPROVED), _decision(drafts["hero/en#3"], Verdict.APPROVED),
        _decision(drafts["hero/de#1"], Verdict.APPROVED), _decision(drafts["hero/de#2"], Verdict.APPROVED, picked=True),
        _decision(drafts["hero/de#3"], Verdict.REJECTED),
    ]
    chosen = choose_profile(manifest, catalog, decisions, profile="final", approved=True)
    assert [p.job.label for p in chosen.jobs] == ["hero/en#1@final", "hero/en#3@final", "hero/de#2@final"]
    assert [p.job.input["seed"] for p in chosen.jobs] == [drafts[t].input["seed"] for t in ("hero/en#1", "hero/en#3", "hero/de#2")]
    view = chosen.view
    assert view is not None and (len(view.approved), len(view.picked)) == (4, 1)
    assert {p.job.label for p in chosen.others} >= {"hero/de#1@final", "hero/en#1@draft"}
    assert view.counterpart("hero/de#2", "draft") is not None
    unselected = choose_profile(manifest, catalog, decisions, profile="final", approved=False).view
    assert unselected is not None and unselected.promotion_cost().jobs == 3


def test_unknown_profile_and_approved_without_profiles_are_usage_errors(tmp_path: Path) -> None:
    manifest = load_manifest(write(tmp_path, PROFILES + "shots:\n  - {id: hero, prompt: x}\n"))
    with pytest.raises(UsageError) as excinfo:
        choose_profile(manifest, load_catalog(), [], profile="fianl", approved=False)
    assert excinfo.value.message == ("--profile 'fianl' is not a profile of the manifest (did you mean 'final'?); "
                                     "profiles: draft, final")
    plain = load_manifest(write(tmp_path, "defaults: {model: seedance-2, resolution: 720p, duration: 5}\n"
                                          "shots:\n  - {id: hero, prompt: x}\n"))
    with pytest.raises(UsageError, match="the manifest declares no profiles"):
        choose_profile(plain, load_catalog(), [], profile=None, approved=True)


def test_take_seeds_fall_in_the_range_every_model_accepts(tmp_path: Path) -> None:
    assert seed_range(load_catalog()) == (0, 4294967295)
    manifest = load_manifest(write(tmp_path, PROFILES + "shots:\n  - {id: hero, prompt: x}\n"))
    narrow = expand_profiles(manifest, seeds=(10, 12))
    assert {j.input["seed"] for jobs in narrow.values() for j in jobs} <= {10, 11, 12}


def test_only_patterns_reach_the_takes_and_profiles_of_what_they_name() -> None:
    from seedance_batch.selection import Selection

    selection = Selection.of(["hero/de-DE/9:16", "*/fr-FR/*#2"])
    assert selection is not None
    assert [selection.matches(label) for label in (
        "hero/de-DE/9:16#2@draft", "hero/de-DE/9:16@final", "hero/de-DE/9:16", "street/fr-FR/1:1#2@final",
        "hero/de-DE/9:160#1", "street/fr-FR/1:1#1@final")] == [True, True, True, True, False, False]
