"""--only: glob patterns over job labels, and the one-line error of a pattern that matches nothing."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from seedance_batch.errors import EXIT_USAGE, Location, UsageError
from seedance_batch.expand import Job, request_key
from seedance_batch.ledger import JobRecord, JobState
from seedance_batch.models import PricedJob, load_catalog, price_jobs
from seedance_batch.plan import check_budget, make_plan, plan_to_dict
from seedance_batch.selection import NoMatch, Selection, nearest_labels

CATALOG = load_catalog()
LABELS = [
    "hero/en-US/9:16", "hero/en-US/16:9", "hero/de-DE/9:16", "hero/de-DE/16:9", "hero/en-US/21:9",
    "product/9:16", "product/1:1", "street/ja-JP/9:16", "street/de-DE/9:16", "street/de-DE/16:9",
]


def job(label: str) -> Job:
    request = {"model": "seedance-2", "input": {"prompt": f"a shot of {label}", "duration": 5, "resolution": "720p"}}
    return Job(campaign="spring", shot=label.split("/")[0], label=label, combination={}, request=request,
               key=request_key(request), output_path=f"{label}.mp4", location=Location("m.yaml", 1, 1))


def priced(labels: list[str] = LABELS) -> list[PricedJob]:
    return price_jobs([job(label) for label in labels], CATALOG)


def chosen(*patterns: str) -> list[str]:
    return [p.job.label for p in Selection(patterns).choose(priced())]


@pytest.mark.parametrize(("patterns", "labels"), [
    (("hero/*",), LABELS[:5]),
    (("*/de-DE/*",), ["hero/de-DE/9:16", "hero/de-DE/16:9", "street/de-DE/9:16", "street/de-DE/16:9"]),
    (("street/ja-JP/9:16",), ["street/ja-JP/9:16"]),
    # A pattern also matches the labels below it, as a folder holds its files.
    (("product",), ["product/9:16", "product/1:1"]),
    (("street/de-DE",), ["street/de-DE/9:16", "street/de-DE/16:9"]),
    # "/" is not special: * crosses it.
    (("*9:16",), [label for label in LABELS if label.endswith("9:16")]),
    (("hero/??-??/21:9",), ["hero/en-US/21:9"]),
    (("street/[jd]?-*/9:16",), ["street/ja-JP/9:16", "street/de-DE/9:16"]),
    # Several patterns: any of them; the manifest's order, each job once.
    (("product/*", "hero/en-US/9:16", "*/9:16"), [label for label in LABELS if "9:16" in label or "product" in label]),
])
def test_patterns_select_by_label(patterns: tuple[str, ...], labels: list[str]) -> None:
    assert chosen(*patterns) == labels


def test_a_pattern_is_a_whole_label_not_a_part_of_one() -> None:
    with pytest.raises(NoMatch):
        chosen("hero/en")  # not a prefix match: "hero/en" is no label, and no label lies below it
    with pytest.raises(NoMatch):
        chosen("ero/*")


def test_labels_are_case_sensitive_and_the_error_says_so() -> None:
    with pytest.raises(NoMatch) as caught:
        chosen("*/de-de/*")
    assert caught.value.exit_code == EXIT_USAGE
    assert caught.value.lines() == [
        "--only '*/de-de/*' matches no job of the manifest (labels are case-sensitive); "
        "nearest labels: hero/de-DE/9:16, hero/de-DE/16:9, street/de-DE/9:16"]


def test_a_typo_suggests_the_nearest_labels() -> None:
    with pytest.raises(NoMatch) as caught:
        chosen("hreo/*")
    assert str(caught.value) == (
        "--only 'hreo/*' matches no job of the manifest; nearest labels: hero/en-US/9:16, hero/de-DE/9:16, "
        "street/ja-JP/9:16")


def test_a_combination_the_matrix_excludes_suggests_its_neighbours() -> None:
    assert nearest_labels("street/ja-JP/16:9", LABELS) == [
        "street/ja-JP/9:16", "street/de-DE/16:9", "street/de-DE/9:16"]


def test_every_pattern_that_matches_nothing_is_one_line() -> None:
    with pytest.raises(NoMatch) as caught:
        chosen("hero/*", "herp/*", "zzz")
    lines = caught.value.lines()
    assert len(lines) == 2
    assert lines[0].startswith("error: --only 'herp/*' matches no job of the manifest; nearest labels: hero/")
    assert lines[1].startswith("error: --only zzz matches no job of the manifest; nearest labels: ")


def test_a_manifest_with_no_jobs_matches_nothing() -> None:
    with pytest.raises(NoMatch) as caught:
        Selection(("hero/*",)).choose([])
    assert str(caught.value) == "--only 'hero/*' matches no job of the manifest (it has no jobs)"


def test_an_empty_pattern_is_refused() -> None:
    with pytest.raises(UsageError) as caught:
        Selection(("hero/*", " "))
    assert str(caught.value) == ("--only needs a pattern over job labels, got an empty one; "
                                 "e.g. --only 'hero/*' or --only '*/de-DE/*'")


def test_suggestions_compare_few_strings_on_a_large_campaign() -> None:
    labels = [f"shot-{s}/l{i:05d}/{r}" for s in range(10) for i in range(2000) for r in ("9:16", "16:9")]
    # "shto-3/*" compares its two parts with the distinct two-part heads: 20,000, not 40,000.
    assert nearest_labels("shto-3/*", labels)[0] == "shot-3/l00000/9:16"


def test_describe_quotes_what_a_shell_would_expand() -> None:
    assert Selection(("hero/*", "street/ja-JP/9:16", "it's")).describe() == (
        "--only 'hero/*' --only street/ja-JP/9:16 --only 'it'\\''s'")


# --- the plan of a selection ------------------------------------------------------------------


def record(of: Job, state: JobState, usd: str = "1.00") -> JobRecord:
    return JobRecord(campaign=of.campaign, key=of.key, label=of.label, shot=of.shot, request=of.request,
                     state=state, task_id="task-1", credits=200, cost_usd=Decimal(usd))


def test_the_plan_its_cost_and_the_budget_cover_only_the_selection() -> None:
    jobs = priced()
    spent_elsewhere = record(jobs[5].job, JobState.DONE, "2.00")  # product/9:16, outside the selection
    plan = make_plan(jobs, [spent_elsewhere], manifest_path=Path("m.yaml"), catalog=CATALOG,
                     budget_usd=Decimal("6.50"), only=Selection(("hero/*",)))
    assert [p.label for p in plan.jobs] == LABELS[:5]
    assert plan.usd == Decimal("5.000")  # five hero jobs at $1.00; the other five new jobs are not counted
    # What the campaign already spent counts whole: the budget is the campaign's.
    assert plan.spent_usd == Decimal("2.00")
    assert (len(plan.jobs), plan.manifest_jobs) == (5, 10)
    assert plan.outside == frozenset(p.job.key for p in jobs[5:])
    with pytest.raises(Exception, match=r"plan costs \$5.00 \(\$2.00 already spent"):
        check_budget(plan)
    assert plan_to_dict(plan)["selection"] == {"only": ["hero/*"], "jobs": 5, "of": 10}


def test_removed_jobs_of_a_selection_are_those_its_patterns_match() -> None:
    gone_hero, gone_street = job("hero/fr-FR/9:16"), job("street/fr-FR/9:16")
    records = [record(gone_hero, JobState.DONE), record(gone_street, JobState.DONE)]
    plan = make_plan(priced(), records, manifest_path=Path("m.yaml"), catalog=CATALOG, budget_usd=None,
                     only=Selection(("hero/*",)))
    assert [r.label for r in plan.removed] == ["hero/fr-FR/9:16"]
    # A job outside the selection is not removed: it is still in the manifest.
    plan = make_plan(priced(), [record(job("street/ja-JP/9:16"), JobState.DONE)], manifest_path=Path("m.yaml"),
                     catalog=CATALOG, budget_usd=None, only=Selection(("hero/*",)))
    assert plan.removed == ()
