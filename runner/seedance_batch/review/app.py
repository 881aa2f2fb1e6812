"""The review app: a Starlette app over one campaign's plan and its ledger.

Routes (every one behind :class:`~.guard.GuardMiddleware`)::

    GET  /                  the contact sheet, rebuilt from the ledger at every load
    POST /api/decision      one reviewer action; answered after the ledger committed it
    GET  /media/{path}      a video of the campaign, from the output folder only (.media)
    GET  /static/{name}     the page's own script and stylesheet

The plan is made once, when the review starts (the manifest as it was then); the ledger
is read at every page load, so a reload shows what a run rendered meanwhile and what
other reviewers decided. Ledger calls go through :class:`~seedance_batch.ledger.AsyncLedger`
and building the page through a worker thread, so neither stalls the server's loop.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import anyio.to_thread
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from ..errors import LedgerError
from ..expand import Job
from ..ledger import AsyncLedger, Decision, JobRecord, JobState, Ledger
from ..ledger.decisions import decision_json
from ..plan import Plan
from ..report.data import build_report
from .actions import MAX_BODY_BYTES, Action, BadAction, needs_video, read_action
from .guard import Guard, GuardMiddleware
from .media import MediaRefused, media_response, open_media
from .page import ASSETS, asset, review_html
from .sheet import review_sheets, tally
from .takes import combination_id

__all__ = ["ReviewCampaign", "create_review_app"]


@dataclass(frozen=True, slots=True)
class ReviewCampaign:
    """What one review session serves, fixed when it starts.

    ``output_dir`` is the campaign's output folder (``output.dir``): the only place
    videos are served from. ``secrets`` are scrubbed from every text the page shows.
    """

    plan: Plan
    manifest_path: str
    manifest_sha256: str
    output_dir: Path
    reviewer: str
    profile: str | None = None
    secrets: tuple[str, ...] = ()


class _Review:
    """The route handlers, bound to one campaign, its ledger and its guard."""

    def __init__(self, campaign: ReviewCampaign, ledger: Ledger, guard: Guard) -> None:
        self.campaign, self.sync, self.guard = campaign, ledger, guard
        self.jobs: Sequence[Job] = [planned.priced.job for planned in campaign.plan.jobs]
        self.by_key = {job.key: job for job in self.jobs}
        self.videos = frozenset(posixpath.normpath(job.output_path) for job in self.jobs)
        self._ledger: AsyncLedger | None = None

    @property
    def ledger(self) -> AsyncLedger:
        if self._ledger is None:  # made on the loop that serves: the one it is used on
            self._ledger = AsyncLedger(self.sync)
        return self._ledger

    async def page(self, request: Request) -> Response:
        name = self.campaign.plan.campaign
        records = await self.ledger.records(name)
        decisions = await self.ledger.decisions(name)
        html = await anyio.to_thread.run_sync(self._render, records, decisions)
        return HTMLResponse(html, headers={"cache-control": "no-store"})

    def _render(self, records: Iterable[JobRecord], decisions: Iterable[Decision]) -> str:
        campaign = self.campaign
        on_disk = frozenset(job.output_path for job in self.jobs if (campaign.output_dir / job.output_path).is_file())
        report = build_report(campaign.plan, records, report_dir=".", output_dir=".",
                              manifest_sha256=campaign.manifest_sha256, generated_at=datetime.now(timezone.utc),
                              present=on_disk, secrets=campaign.secrets, manifest_path=campaign.manifest_path)
        sheets = review_sheets(report, self.jobs, decisions)
        return review_html(report, sheets, tally(sheets), token=self.guard.token, reviewer=campaign.reviewer,
                           profile=campaign.profile)

    async def decision(self, request: Request) -> Response:
        if request.headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
            return _refuse(415, "a decision is sent as JSON")
        try:
            action = read_action(await _body(request))
        except _TooLarge:
            return _refuse(413, f"a decision is at most {MAX_BODY_BYTES} bytes")
        except ClientDisconnect:
            return _refuse(400, "the body was cut short")
        except BadAction as exc:
            return _refuse(400, str(exc))
        job = self.by_key.get(action.key)
        if job is None:
            return _refuse(404, "not a take of this campaign (reload the page)")
        try:
            return await self._decide(job, action)
        except LedgerError as exc:
            return _refuse(503, f"the decision could not be saved: {exc.message}")

    async def _decide(self, job: Job, action: Action) -> Response:
        campaign = self.campaign.plan.campaign
        if needs_video(action):
            record = await self.ledger.record(campaign, job.key)
            if record is None or record.state is not JobState.DONE:
                return _refuse(409, "this take has no video yet: it can be rejected, not approved or picked")
        changed = await self.ledger.decide(campaign, job.key, action.change, label=job.label,
                                           combination=combination_id(job), reviewer=self.campaign.reviewer)
        return JSONResponse({"ok": True, "decisions": [decision_json(d) for d in changed]},
                            headers={"cache-control": "no-store"})

    async def media(self, request: Request) -> Response:
        try:
            opened = await anyio.to_thread.run_sync(open_media, self.campaign.output_dir,
                                                    request.path_params["path"], self.videos)
        except MediaRefused as refused:
            return PlainTextResponse(refused.message, refused.status)
        return media_response(opened, request.headers.get("range"))

    async def static(self, request: Request) -> Response:
        name = request.path_params["name"]
        if name not in ASSETS:
            return PlainTextResponse("not found", 404)
        found = asset(name)
        return Response(found.body, media_type=found.media_type, headers={"cache-control": "no-cache"})


class _TooLarge(Exception):
    """The body passed :data:`~.actions.MAX_BODY_BYTES`."""


async def _body(request: Request) -> bytes:
    """The body, counted as it streams; :class:`_TooLarge` past the limit (a declared length is checked first)."""
    declared = request.headers.get("content-length", "")
    if declared.strip().isdigit() and int(declared) > MAX_BODY_BYTES:
        raise _TooLarge
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise _TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _refuse(status: int, error: str) -> JSONResponse:
    return JSONResponse({"ok": False, "error": error}, status_code=status, headers={"cache-control": "no-store"})


def _crashed(request: Request, exc: Exception) -> Response:
    # A bug: one line for the page, nothing else (the guarded server prints nothing per request).
    return _refuse(500, f"the review app failed: {type(exc).__name__}")


def create_review_app(campaign: ReviewCampaign, ledger: Ledger, guard: Guard) -> Starlette:
    """The review app of ``campaign`` over ``ledger`` (opened for writing), guarded by ``guard``."""
    review = _Review(campaign, ledger, guard)
    routes = [
        Route("/", review.page, methods=["GET"]),
        Route("/api/decision", review.decision, methods=["POST"]),
        Route("/media/{path:path}", review.media, methods=["GET"]),
        Route("/static/{name}", review.static, methods=["GET"]),
    ]
    return Starlette(routes=routes, middleware=[Middleware(GuardMiddleware, guard=guard)],
                     exception_handlers={Exception: _crashed})
