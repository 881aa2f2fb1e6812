"""What changed, field by field: the word diff, the field diff, the groups, and their cost."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from seedance_batch import plan_diff
from seedance_batch.errors import Location
from seedance_batch.expand import Job, request_key
from seedance_batch.ledger import JobRecord, JobState
from seedance_batch.models import load_catalog, price_jobs
from seedance_batch.plan import Plan, make_plan
from seedance_batch.plan_diff import Differ, diff_plan, plain_words, word_diff

CATALOG = load_catalog()
HERO = ("A sunlit {market} kitchen at dawn; a hand pours cold brew over ice, condensation beading on the "
        "glass. Slow push-in, warm morning light, shallow depth of field. A narrator says: {tagline}")


def words(old: str, new: str, context: int = 3) -> str:
    return plain_words(word_diff(old, new, context))


@pytest.mark.parametrize(("old", "new", "shown"), [
    (HERO, HERO.replace("push-in", "dolly-in"),
     "… the glass. Slow [-push-in-]{+dolly-in+}, warm morning light, …"),
    ("a b c", "a x c", "a [-b-]{+x+} c"),
    ("a b c", "a b c d", "a b c {+d+}"),
    ("a b c", "z a b c", "{+z+} a b c"),
    ("a b c", "a c", "a [-b-] c"),
    ("(hello) world", "(bye) world", "([-hello-]{+bye+}) world"),
    ('say "hi."', 'say "bye."', 'say "[-hi-]{+bye+}."'),
    ("x", "y", "[-x-]{+y+}"),
    ("", "all new", "{+all new+}"),
    ("one two three four five six seven eight nine ten", "one two three four five six seven eight nine ten eleven",
     "… eight nine ten {+eleven+}"),
    # Two edits far apart: each with its context, the words between them elided.
    ("a b c d e f g h i j k l m n o p", "a B c d e f g h i j k l m n O p", "a [-b-]{+B+} c d e … l m n [-o-]{+O+} p"),
    # Two edits close together: the words between them all shown.
    ("a b c d e f g", "a B c d e F g", "a [-b-]{+B+} c d e [-f-]{+F+} g"),
])
def test_word_diff_shows_only_the_changed_words_in_context(old: str, new: str, shown: str) -> None:
    assert words(old, new) == shown


def test_line_breaks_and_spaces_are_not_words() -> None:
    assert word_diff("a  b\nc", "a b c") == ()
    change = Differ().changes(_request("a  b"), _request("a b"), private=False)
    assert [c.summary() for c in change] == ["prompt: whitespace changed only"]


def test_a_whole_new_prompt_reads_as_one_removal_and_one_addition() -> None:
    assert words("a dog on a porch", "the sea at night") == "[-a dog on a porch-]{+the sea at night+}"


def _request(prompt: str, **fields: Any) -> dict[str, Any]:
    model = fields.pop("model", "seedance-2")
    return {"model": model, "input": {"prompt": prompt, "duration": 5, "resolution": "720p", **fields}}


def test_parameters_read_old_to_new_in_request_order() -> None:
    old = _request("a lighthouse", aspect_ratio="16:9")
    new = _request("a lighthouse", aspect_ratio="9:16", generate_audio=True, model="seedance-2-fast")
    new["input"]["duration"] = 8
    changes = Differ().changes(old, new, private=False)
    assert [c.summary() for c in changes] == [
        "model: seedance-2 -> seedance-2-fast", "duration: 5 -> 8", "aspect_ratio: 16:9 -> 9:16",
        "generate_audio: (not set) -> true",
    ]
    assert (changes[1].old, changes[1].new) == (5, 8)


def test_a_field_unknown_to_the_parameter_table_is_still_shown() -> None:
    old, new = _request("a"), _request("a", seed=7)
    assert [c.summary() for c in Differ().changes(old, new, private=False)] == ["seed: (not set) -> 7"]


def test_a_value_of_another_type_is_a_change() -> None:
    old, new = _request("a"), _request("a")
    new["input"]["duration"] = 5.0
    assert [c.name for c in Differ().changes(old, new, private=False)] == ["duration"]


def test_a_private_prompt_never_shows_its_words() -> None:
    secret_old, secret_new = "launch codename NIGHTJAR reveal", "launch codename KESTREL reveal"
    [change] = Differ().changes(_request(secret_old), _request(secret_new), private=True)
    assert change.summary() == "prompt changed (private)"
    assert change.words == ()
    assert "NIGHTJAR" not in repr(change.signature()) and "KESTREL" not in repr(change.signature())


def test_clean_is_applied_before_the_words_are_compared() -> None:
    """What a report hides (a URL's token) is hidden before diffing, so no hunk can carry it."""
    def clean(text: str) -> str:
        return text.replace("sig=abc", "REDACTED").replace("sig=xyz", "REDACTED")

    differ = Differ(clean=clean)
    old = _request("see https://cdn.example/a.png?sig=abc now", image_urls=["https://cdn.example/a.png?sig=abc"])
    new = _request("see https://cdn.example/a.png?sig=xyz later", image_urls=["https://cdn.example/a.png?sig=xyz"])
    prompt, urls = differ.changes(old, new, private=False)
    assert prompt.summary() == "prompt: see https://cdn.example/a.png?REDACTED [-now-]{+later+}"
    assert urls.summary() == "image_urls changed (in a part not shown, such as a URL's query string)"


def test_a_long_value_is_bounded() -> None:
    old, new = _request("a", image_urls=["https://x.example/" + "a" * 500]), _request("a")
    [change] = Differ().changes(old, new, private=False)
    assert change.summary().startswith("image_urls: [https://x.example/aaa")
    assert change.summary().endswith("more characters) -> (not set)")
    assert len(change.before) < 400


def test_each_distinct_pair_of_texts_is_compared_once(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, str]] = []
    real = plan_diff.word_diff

    def counting(old: str, new: str, context: int = 3) -> tuple[plan_diff.Segment, ...]:
        calls.append((old, new))
        return real(old, new, context)

    monkeypatch.setattr(plan_diff, "word_diff", counting)
    differ = Differ()
    for index in range(500):
        market = "Japan" if index % 2 else "Germany"
        old = HERO.format(market=market, tagline="hi")
        differ.changes(_request(old), _request(old.replace("push-in", "dolly-in")), private=False)
    assert len(calls) == 2


# --- plans: groups, cost, removed -------------------------------------------------------------


def job(label: str, prompt: str, duration: int = 5, **fields: Any) -> Job:
    request = {"model": "seedance-2", "input": {"prompt": prompt, "duration": duration, "resolution": "720p", **fields}}
    return Job(campaign="spring", shot=label.split("/")[0], label=label, combination={}, request=request,
               key=request_key(request), output_path=f"{label}.mp4", location=Location("m.yaml", 1, 1),
               private=label.startswith("secret"))


def rendered(of: Job, state: JobState = JobState.DONE, usd: str = "1.00") -> JobRecord:
    return JobRecord(campaign=of.campaign, key=of.key, label=of.label, shot=of.shot, request=of.request, state=state,
                     task_id="task-1", credits=200, cost_usd=Decimal(usd))


def plan_of(jobs: list[Job], records: list[JobRecord]) -> Plan:
    return make_plan(price_jobs(jobs, CATALOG), records, manifest_path=Path("m.yaml"), catalog=CATALOG,
                     budget_usd=None)


MARKETS = ("Germany", "Japan", "France")


def test_one_edited_template_is_one_group_whatever_the_words_around_it() -> None:
    olds = [job(f"hero/{m}", HERO.format(market=m, tagline=f"{m}!")) for m in MARKETS]
    news = [job(j.label, j.request["input"]["prompt"].replace("push-in", "dolly-in")) for j in olds]
    diff = diff_plan(plan_of(news, [rendered(j, usd="0.80") for j in olds]))  # an older price list
    [group] = diff.groups
    assert group.heading() == "hero/Germany and 2 more job(s)"
    assert (group.first, group.jobs) == ("hero/Germany", 3)
    assert [c.summary() for c in group.changes] == [
        "prompt: … the glass. Slow [-push-in-]{+dolly-in+}, warm morning light, …"]
    assert group.cost() == "$3.00 for 3 new renders; the old renders cost $2.40 (3 done)"


def test_different_changes_are_different_groups_and_keep_the_plans_order() -> None:
    a_old, b_old, c_old = job("a", "a lighthouse"), job("b", "a harbour"), job("c", "a pier")
    news = [job("a", "a lighthouse", duration=8), job("b", "a harbour at dusk"), job("c", "a pier", duration=8)]
    diff = diff_plan(plan_of(news, [rendered(a_old), rendered(b_old, JobState.FAILED, "0.50"), rendered(c_old)]))
    assert [(g.first, g.jobs, [c.summary() for c in g.changes]) for g in diff.groups] == [
        ("a", 2, ["duration: 5 -> 8"]),
        ("b", 1, ["prompt: a harbour {+at dusk+}"]),
    ]
    # One job: what its render costs now, and what the failed render it replaces cost (charged: it had a task).
    assert diff.groups[1].cost() == "$1.00 for the new render; the old render cost $0.50 (1 failed)"
    assert diff.changed_jobs == 3


def test_new_and_done_jobs_have_no_changes() -> None:
    a = job("a", "a lighthouse")
    diff = diff_plan(plan_of([a, job("b", "a harbour")], [rendered(a)]))
    assert diff.groups == () and diff.removed == ()


def test_private_changes_group_together_and_show_no_words() -> None:
    olds = [job("secret/1", "codename NIGHTJAR one"), job("secret/2", "codename NIGHTJAR two")]
    news = [job("secret/1", "codename KESTREL one"), job("secret/2", "a different KESTREL two")]
    [group] = diff_plan(plan_of(news, [rendered(j) for j in olds])).groups
    assert [c.summary() for c in group.changes] == ["prompt changed (private)"]
    assert "NIGHTJAR" not in repr(group) and "KESTREL" not in repr(group)


def test_removed_jobs_are_the_labels_the_manifest_no_longer_has() -> None:
    kept, gone, renamed = job("kept", "a lighthouse"), job("gone", "a harbour"), job("old-name", "a pier")
    older_gone = job("gone", "a harbour, first try")
    records = [rendered(older_gone), rendered(kept), rendered(gone, JobState.UNKNOWN, "0.75"), rendered(renamed)]
    # "old-name" was renamed "new-name" with the same request: the same job, not a removed one.
    plan = plan_of([kept, job("new-name", "a pier")], records)
    assert [(r.label, r.key) for r in plan.removed] == [("gone", gone.key)]  # the label's latest row, once
    [removed] = diff_plan(plan).removed
    assert removed.summary() == "gone (unknown, $0.75 spent)"


def test_a_removed_job_that_never_charged_shows_nothing_spent() -> None:
    gone = job("gone", "a harbour")
    failed = JobRecord(campaign="spring", key=gone.key, label="gone", shot="gone", request=gone.request,
                       state=JobState.FAILED, cost_usd=Decimal("1.00"))  # refused: no task, no charge
    [removed] = diff_plan(plan_of([job("kept", "a lighthouse")], [failed])).removed
    assert removed.summary() == "gone (failed, $0.00 spent)"


def test_a_change_only_json_sees_is_still_shown() -> None:
    """1 and 1.0 are equal to Python but not in the request's JSON, so the key differs: the field is named."""
    old, new = _request("a", image_urls=[1]), _request("a", image_urls=[1.0])
    assert [c.summary() for c in Differ().changes(old, new, private=False)] == ["image_urls: [1] -> [1.0]"]


def test_old_renders_are_counted_in_the_users_words() -> None:
    old = job("a", "a lighthouse")
    in_flight = JobRecord(campaign="spring", key=old.key, label="a", shot="a", request=old.request,
                          state=JobState.SUBMITTED, task_id="t", cost_usd=Decimal("1.00"))
    [group] = diff_plan(plan_of([job("a", "a lighthouse at dusk")], [in_flight])).groups
    assert group.cost() == "$1.00 for the new render; the old render cost $1.00 (1 in flight)"
