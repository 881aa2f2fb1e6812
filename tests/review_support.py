"""A campaign to review, made for real: a manifest, a real SQLite ledger, the sample MP4 on disk.

Shared by tests/test_review*.py. The manifest is planned by the real pipeline; jobs are
put in the ledger through its own interface (as a run records them) and their videos
copied where a run downloads them, so the review sees exactly what it sees after a run.
Nothing here is a mock. The browser tests render through a real ``run --simulate``.
"""

from __future__ import annotations

import hashlib
import http.client
import shutil
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from seedance_batch.ledger import Ledger, open_ledger
from seedance_batch.manifest import Manifest
from seedance_batch.pipeline import load_plan
from seedance_batch.plan import Plan
from seedance_batch.review import ReviewCampaign, RunningReview, serve_review

SAMPLE_MP4 = Path(__file__).resolve().parents[1] / "runner" / "seedance_batch" / "assets" / "sample.mp4"
HOSTILE_PROMPT = 'A neon sign that reads <script>alert("x")</script> in {{ locale }}'
MANIFEST = """\
version: 1
name: review-test
defaults:
  model: seedance-2-fast
  resolution: 480p
  duration: 4
matrix:
  locale: [de-DE, fr-FR]
  aspect_ratio: ["9:16", "16:9"]
shots:
  - id: hero
    prompt: 'HOSTILE'
  - id: outro
    prompt: "closing card for {{ locale }}"
run:
  submits_per_minute: 600
""".replace("HOSTILE", HOSTILE_PROMPT)


@dataclass(frozen=True)
class Reviewed:
    """A campaign under review: its folder, plan, ledger file and the running review."""

    folder: Path
    manifest: Manifest
    plan: Plan
    ledger_path: Path
    review: RunningReview

    @property
    def port(self) -> int:
        return int(self.review.base_url.rsplit(":", 1)[1])

    def key(self, label: str) -> str:
        """The job key of the take labelled ``label``."""
        return next(p.priced.job.key for p in self.plan.jobs if p.priced.job.label == label)

    def video(self, label: str) -> tuple[str, Path]:
        """The take's video: its URL path on the review server, and its file."""
        job = next(p.priced.job for p in self.plan.jobs if p.priced.job.label == label)
        return f"/media/{job.output_path}", self.folder / self.manifest.output_dir / job.output_path

    def request(self, method: str, path: str, *, headers: Mapping[str, str] | None = None, body: bytes | None = None,
                cookie: bool = True) -> tuple[int, dict[str, str], bytes]:
        """One raw HTTP request (http.client sends the path as written: no ``..`` is normalised away)."""
        sent = {"Host": f"127.0.0.1:{self.port}", **(headers or {})}
        if cookie:
            sent.setdefault("Cookie", f"seedance_review_{self.port}={self.review.token}")
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            connection.request(method, path, body=body, headers=sent)
            answer = connection.getresponse()
            return answer.status, {k.lower(): v for k, v in answer.getheaders()}, answer.read()
        finally:
            connection.close()

    def post(self, body: bytes, **headers: str) -> tuple[int, dict[str, str], bytes]:
        """A decision POST as the page sends it (token, Origin, JSON); ``headers`` override."""
        sent = {"Content-Type": "application/json", "X-Review-Token": self.review.token,
                "Origin": f"http://127.0.0.1:{self.port}", "Sec-Fetch-Site": "same-origin"}
        sent.update({name.replace("_", "-"): value for name, value in headers.items()})
        return self.request("POST", "/api/decision", headers={k: v for k, v in sent.items() if v}, body=body)


def write_campaign(folder: Path) -> Path:
    """The manifest in ``folder``; its path."""
    path = folder / "m.yaml"
    path.write_text(MANIFEST, encoding="utf-8")
    return path


def render_by_hand(folder: Path, ledger: Ledger, *, skip: frozenset[str] = frozenset({"hero/fr-FR/16:9"})) -> None:
    """Record every job but ``skip`` as done in ``ledger``, its video (the sample MP4) where a run puts it."""
    manifest, plan = load_plan(folder / "m.yaml", ledger)
    for index, planned in enumerate(plan.jobs):
        job = planned.priced.job
        if job.label in skip:
            continue
        ledger.begin_submit(campaign=plan.campaign, key=job.key, label=job.label, shot=job.shot, request=job.request,
                            credits=planned.priced.cost.credits, cost_usd=planned.priced.cost.usd,
                            output_path=job.output_path)
        ledger.submitted(plan.campaign, job.key, f"task-{index}", "not_started")
        ledger.finished(plan.campaign, job.key, "https://files.example/v.mp4")
        target = folder / manifest.output_dir / job.output_path
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(SAMPLE_MP4, target)
        ledger.downloaded(plan.campaign, job.key, job.output_path, target.stat().st_size,
                          hashlib.sha256(target.read_bytes()).hexdigest())


@contextmanager
def reviewed(folder: Path, *, reviewer: str = "ana", host: str = "127.0.0.1") -> Iterator[Reviewed]:
    """The campaign of :func:`write_campaign`, rendered by hand, under review on a real loopback server."""
    manifest_path = write_campaign(folder)
    ledger_path = folder / ".seedance" / "ledger.sqlite"
    with open_ledger(ledger_path) as ledger:
        render_by_hand(folder, ledger)
        manifest, plan = load_plan(manifest_path, ledger)
        campaign = ReviewCampaign(plan=plan, manifest_path="m.yaml", manifest_sha256=manifest.sha256,
                                  output_dir=folder / manifest.output_dir, reviewer=reviewer)
        with serve_review(campaign, ledger, host=host) as review:
            yield Reviewed(folder, manifest, plan, ledger_path, review)
