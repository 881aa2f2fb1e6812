"""The review: a local web app where people judge a campaign's takes, and the ledger keeps what they decided.

``seedance-batch review MANIFEST`` serves it (:func:`.server.review_until_signal`) on
127.0.0.1 and a free port. By meaning: :mod:`.takes` (which take of which combination a
job is), :mod:`.sheet` (the contact sheet, a pure function of the report and the
decisions), :mod:`.page` (its HTML, script and style), :mod:`.actions` (a reviewer's
POST, checked), :mod:`.media` (the campaign's videos, from its output folder only),
:mod:`.guard` (Host, session key, cross-site refusals), :mod:`.app` (the routes) and
:mod:`.server` (serving it). The decisions themselves are the ledger's
(:mod:`seedance_batch.ledger.decisions`).
"""

from __future__ import annotations

from .app import ReviewCampaign, create_review_app
from .guard import Guard
from .server import RunningReview, parse_listen, review_until_signal, reviewer_name, serve_review
from .takes import combination_id, take_of

__all__ = [
    "Guard",
    "ReviewCampaign",
    "RunningReview",
    "combination_id",
    "create_review_app",
    "parse_listen",
    "review_until_signal",
    "reviewer_name",
    "serve_review",
    "take_of",
]
