"""A small campaign with every state a report must show, built from the real records.

Shared by the report tests (tests/test_report*.py): jobs are real ``expand.Job``s,
priced by the real catalog, planned by the real planner, with ``JobRecord``s as the
ledger returns them. Nothing here is a mock.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from seedance_batch.errors import Location
from seedance_batch.expand import Job, request_key
from seedance_batch.ledger import JobRecord, JobState
from seedance_batch.models import load_catalog, price_jobs
from seedance_batch.plan import Plan, make_plan

CATALOG = load_catalog()
SAMPLE_MP4 = Path(__file__).resolve().parents[1] / "runner" / "seedance_batch" / "assets" / "sample.mp4"

API_KEY = "sk-test-0123456789abcdef"
SIGNED = "https://cdn.example.com/out/v.mp4?X-Signature=topsecret123&Expires=99"
SCRIPT_PROMPT = 'A neon sign that reads <script>alert("x")</script> over a wet street'
TRICKY_PROMPT = 'Slow dolly in, "golden hour", rain\non glass, 50mm; see https://ref.example.com/mood?token=abc123'
PRIVATE_PROMPT = "Unreleased phone model X9 reveal, confidential"

SHOTS = ("hero", "product", "outro")
LOCALES = ("en-US", "fr-FR", "ja-JP")
RATIOS = ("16:9", "9:16")


def make_job(shot: str, locale: str, ratio: str, *, prompt: str | None = None, private: bool = False,
             duration: int = 5, campaign: str = "spring") -> Job:
    """One job of the campaign, as expansion would produce it."""
    label = f"{shot}/{locale}/{ratio.replace(':', 'x')}"
    text = prompt or f"{shot} shot for {locale}, cinematic"
    request = {"model": "seedance-2", "input": {
        "prompt": text, "duration": duration, "resolution": "720p", "aspect_ratio": ratio, "generate_audio": True,
    }}
    return Job(
        campaign=campaign, shot=shot, label=label, combination={"locale": locale, "ratio": ratio},
        request=request, key=request_key(request), output_path=f"{campaign}/{label}.mp4",
        location=Location("campaign.yaml", 3, 1), private=private,
    )


def make_record(job: Job, state: JobState, **fields: object) -> JobRecord:
    """The job's ledger row in ``state``; charged states carry the job's price."""
    charged = state is not JobState.PENDING
    base: dict[str, object] = {
        "task_id": f"task-{job.key[:8]}" if state is not JobState.PENDING else None,
        "attempts": 1, "credits": 200 if charged else 0,
        "cost_usd": Decimal("1.00") if charged else Decimal(0),
        "created_at": "2026-04-19T10:00:00Z", "submitted_at": "2026-04-19T10:00:05Z",
        "updated_at": "2026-04-19T10:01:40Z",
    }
    base.update(fields)
    return JobRecord(campaign=job.campaign, key=job.key, label=job.label, shot=job.shot,
                     request=job.request, state=state, **base)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Campaign:
    """A planned campaign, its ledger records, and the folders of a working directory."""

    plan: Plan
    records: tuple[JobRecord, ...]
    jobs: dict[str, Job]


def campaign(budget: Decimal | None = Decimal("30")) -> Campaign:
    """3 shots x 3 locales x 2 ratios = 18 jobs in every state, with hostile texts."""
    jobs: dict[str, Job] = {}
    for shot in SHOTS:
        for locale in LOCALES:
            for ratio in RATIOS:
                prompt, private = None, False
                if (shot, locale, ratio) == ("hero", "en-US", "16:9"):
                    prompt = SCRIPT_PROMPT
                elif (shot, locale, ratio) == ("hero", "fr-FR", "16:9"):
                    prompt = TRICKY_PROMPT
                elif (shot, locale, ratio) == ("product", "ja-JP", "9:16"):
                    prompt, private = PRIVATE_PROMPT, True
                job = make_job(shot, locale, ratio, prompt=prompt, private=private)
                jobs[job.label] = job
    records = _records(jobs)
    plan = make_plan(price_jobs(list(jobs.values()), CATALOG), records, manifest_path=Path("campaign.yaml"),
                     catalog=CATALOG, budget_usd=budget)
    return Campaign(plan, tuple(records), jobs)


def _records(jobs: dict[str, Job]) -> list[JobRecord]:
    done = {"finished_at": "2026-04-19T10:01:35Z", "downloaded_at": "2026-04-19T10:01:40Z",
            "file_url": SIGNED, "size": 1234, "sha256": "ab" * 32, "api_status": "finished"}
    states: dict[str, tuple[JobState, dict[str, object]]] = {
        "hero/en-US/16x9": (JobState.DONE, done),
        "hero/en-US/9x16": (JobState.DONE, done),
        "hero/fr-FR/16x9": (JobState.DONE, done),
        "hero/fr-FR/9x16": (JobState.FAILED, {
            "attempts": 3, "error_class": "invalid_request", "finished_at": "2026-04-19T10:00:50Z",
            "error_message": f"content policy: see {SIGNED} (key {API_KEY})",
        }),
        "hero/ja-JP/16x9": (JobState.UNKNOWN, {"task_id": None, "error_class": "ambiguous_submit",
                                               "error_message": "no answer to the submit after 30 s"}),
        "hero/ja-JP/9x16": (JobState.TIMED_OUT, {}),
        "product/en-US/16x9": (JobState.SUBMITTED, {}),
        "product/en-US/9x16": (JobState.FINISHED, {"file_url": SIGNED}),
        "product/ja-JP/9x16": (JobState.DONE, done),
        "product/fr-FR/16x9": (JobState.DONE, {**done, "downloaded_at": None}),  # file never written
    }
    return [make_record(jobs[label], state, **fields) for label, (state, fields) in states.items()]


def lay_out_files(root: Path, camp: Campaign) -> None:
    """Put the sample MP4 where every downloaded job's file lives, under root/renders/."""
    for record in camp.records:
        if record.state is JobState.DONE and record.downloaded_at:
            target = root / "renders" / camp.jobs[record.label].output_path
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(SAMPLE_MP4, target)
