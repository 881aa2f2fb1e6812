"""Who may post a callback: the run's secret in the path, Standard Webhooks signatures, content types.

Real receivers on loopback over real ledger files; the simulator's signing mode for the
signatures (its own signer, not this package's).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import click
import httpx
import pytest

from seedance_batch import cli
from seedance_batch.errors import UsageError
from seedance_batch.ledger import Ledger, open_ledger
from seedance_batch.simulator.signing import signature_headers
from seedance_batch.verifiers import (
    TOKEN_PREFIX,
    VERIFIERS,
    Delivery,
    LedgerTokens,
    StaticTokens,
    VerifierSetup,
    make_verifiers,
    mint_token,
    token_digest,
    with_token,
)
from seedance_batch.verifiers.secret_path import SecretPath
from seedance_batch.verifiers.standard import StandardWebhooks, sign
from seedance_batch.webhooks import LOG_EVERY_SECONDS, ReceiverStats, run_receiver, secret_path_for

REQUEST = {"model": "seedance-2-fast", "input": {"prompt": "p", "duration": 4, "resolution": "480p"}}
TOKEN = mint_token()
SECRET = "whsec_" + base64.b64encode(b"a signing key of 24 bytes").decode()
EVENT = {"data": {"task_id": "task-1", "status": "finished", "files": []}}


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    with open_ledger(tmp_path / "ledger.sqlite") as opened:
        opened.begin_submit(campaign="c", key="k1", label="s/one", shot="s", request=REQUEST, credits=56,
                            cost_usd=Decimal("0.28"), output_path="c/s/one.mp4")
        opened.submitted("c", "k1", "task-1", "not_started")
        yield opened


def webhook_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "seedance_batch.webhooks"]


# --- the secret path ------------------------------------------------------------------------------


def test_tokens_are_random_long_and_credential_shaped_and_go_last_in_the_path() -> None:
    assert TOKEN.startswith(TOKEN_PREFIX) and len(TOKEN) == len(TOKEN_PREFIX) + 43 and mint_token() != TOKEN
    assert token_digest(TOKEN) == hashlib.sha256(TOKEN.encode()).hexdigest()
    assert with_token("https://hooks.example.com/apidot/", TOKEN) == f"https://hooks.example.com/apidot/{TOKEN}"
    assert with_token("https://h.example/a?x=1", TOKEN) == f"https://h.example/a/{TOKEN}?x=1"
    from seedance_batch.safetext import scrub

    assert TOKEN not in scrub(f"callback_url https://h.example/{TOKEN} is wrong")  # echoed back: masked


def test_a_post_without_the_secret_is_404_before_its_body_is_read_and_logged_without_it(
        ledger: Ledger, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="seedance_batch.webhooks")
    stats = ReceiverStats()
    with run_receiver(ledger, campaign="c", verifiers=secret_path_for(TOKEN, "c"), stats=stats) as url, \
            httpx.Client(base_url=url) as http:
        for path in ("/hook", f"/hook/{mint_token()}", f"/hook/{TOKEN[:-1]}x", f"/hook/{TOKEN}extra"):
            answer = http.post(path, json={**EVENT, "marker": "BODY-MARKER"})
            assert (answer.status_code, answer.json()) == (404, {"ok": False, "error": "not found"}), path
        assert http.post(f"/hook/{TOKEN}", json=EVENT).status_code == 200
        assert http.post(f"/{TOKEN}/behind-a-proxy", json=EVENT).status_code == 200
    assert [e.kind for e in ledger.events("c")].count("webhook") == 2
    assert (stats.stored, stats.refused) == (2, {404: 4})
    lines = webhook_lines(caplog)
    assert lines and all("BODY-MARKER" not in line and TOKEN_PREFIX not in line for line in lines)
    assert lines[0] == "webhook receiver: refused a POST from 127.0.0.1: 404, no callback secret in the path"


def test_a_flood_of_refusals_logs_one_line_per_reason_per_interval_with_a_count() -> None:
    now = [1000.0]
    stats = ReceiverStats(clock=lambda: now[0])
    logger = logging.getLogger("seedance_batch.webhooks")
    seen: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: seen.append(record.getMessage())  # type: ignore[method-assign]
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.INFO)
    try:
        for _ in range(500):
            stats.refuse(404, "no callback secret in the path", "203.0.113.9")
        stats.refuse(415, "not JSON", "203.0.113.9")
        now[0] += LOG_EVERY_SECONDS
        stats.refuse(404, "no callback secret in the path", "203.0.113.9")
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    assert seen == [
        "webhook receiver: refused a POST from 203.0.113.9: 404, no callback secret in the path",
        "webhook receiver: refused a POST from 203.0.113.9: 415, not JSON",
        "webhook receiver: refused a POST from 203.0.113.9: 404, no callback secret in the path "
        "(and 499 more like it since the last line)",
    ]
    assert stats.refused == {404: 501, 415: 1}


def test_ledger_tokens_see_a_new_run_and_a_revoked_one(ledger: Ledger) -> None:
    now = [0.0]
    book = LedgerTokens(ledger, clock=lambda: now[0])
    first, second = mint_token(), mint_token()
    ledger.add_callback_token("c", token_digest(first))

    async def campaign(token: str) -> str | None:
        return await book.campaign(token)

    assert asyncio.run(campaign(first)) == "c"
    ledger.add_callback_token("other", token_digest(second))  # a run started since
    assert asyncio.run(campaign(second)) is None  # not re-read within a second of the last read...
    now[0] += 1.0
    assert asyncio.run(campaign(second)) == "other"  # ...then it is
    ledger.revoke_callback_token(token_digest(first))
    now[0] += 10.0
    assert asyncio.run(campaign(first)) is None  # revoked: refused within REFRESH_SECONDS
    assert asyncio.run(SecretPath(StaticTokens({first: "c"})).verify(Delivery(f"/h/{first}", {}))).campaign == "c"


def test_a_secret_of_another_campaign_is_refused_by_a_runs_receiver(ledger: Ledger) -> None:
    other = mint_token()
    verifiers = (SecretPath(StaticTokens({TOKEN: "c", other: "other"})),)
    with run_receiver(ledger, campaign="c", verifiers=verifiers) as url:
        assert httpx.post(f"{url}/{other}", json=EVENT).status_code == 404
        assert httpx.post(f"{url}/{TOKEN}", json=EVENT).status_code == 200


# --- content types --------------------------------------------------------------------------------


@pytest.mark.parametrize(("content_type", "status"), [
    ("application/json", 200), ("application/json; charset=utf-8", 200), ("application/webhook+json", 200),
    (None, 200), ("text/plain", 415), ("application/x-www-form-urlencoded", 415), ("multipart/form-data", 415),
])
def test_a_body_that_says_it_is_not_json_is_415(ledger: Ledger, content_type: str | None, status: int) -> None:
    import json

    headers = {"content-type": content_type} if content_type else {}
    with run_receiver(ledger, campaign="c", verifiers=secret_path_for(TOKEN, "c")) as url, \
            httpx.Client(base_url=url) as http:
        request = http.build_request("POST", f"/{TOKEN}", content=json.dumps(EVENT).encode(), headers=headers)
        assert request.headers.get("content-type") == content_type  # none at all when None
        answer = http.send(request)
    assert answer.status_code == status
    if status == 415:
        assert answer.json() == {"ok": False, "error": "the body must be JSON (Content-Type: application/json)"}


# --- Standard Webhooks ----------------------------------------------------------------------------


def _verify(verifier: StandardWebhooks, body: bytes, headers: dict[str, str]) -> tuple[bool, int, str]:
    verdict = asyncio.run(verifier.verify(Delivery("/", headers, body)))
    return verdict.ok, verdict.status, verdict.reason


def test_standard_webhooks_accepts_the_simulators_signature_and_nothing_else() -> None:
    key = base64.b64decode(SECRET.removeprefix("whsec_"))
    now = int(time.time())
    body = b'{"data": {"task_id": "task-1", "status": "finished", "files": []}}'
    verifier = StandardWebhooks(SECRET)
    good = signature_headers(key, "msg_1", now, body)  # the simulator's signer, not ours
    assert _verify(verifier, body, good) == (True, 200, "")
    assert good["webhook-signature"] == sign(SECRET, "msg_1", now, body)  # and ours agrees with it
    rotated = {**good, "webhook-signature": f"v1,{base64.b64encode(b'x' * 32).decode()} {good['webhook-signature']}"}
    assert _verify(verifier, body, rotated)[0]  # any of several signatures (a secret being rotated)
    refused = {
        "tampered body": (body.replace(b"finished", b"failed"), good),
        "another key": (body, signature_headers(b"another key", "msg_1", now, body)),
        "another id": (body, {**good, "webhook-id": "msg_2"}),
        "no signature": (body, {k: v for k, v in good.items() if k != "webhook-signature"}),
        "v2 only": (body, {**good, "webhook-signature": "v2," + good["webhook-signature"][3:]}),
        "not base64": (body, {**good, "webhook-signature": "v1,!!!"}),
        "bad timestamp": (body, {**good, "webhook-timestamp": "soon"}),
    }
    for name, (sent, headers) in refused.items():
        ok, status, reason = _verify(verifier, sent, headers)
        assert (ok, status) == (False, 401), name
        assert "msg_" not in reason and "v1," not in reason, name


def test_standard_webhooks_refuses_a_delivery_outside_the_replay_window() -> None:
    key = base64.b64decode(SECRET.removeprefix("whsec_"))
    body = b"{}"
    now = [1_800_000_000.0]
    verifier = StandardWebhooks(SECRET, tolerance_seconds=300, clock=lambda: now[0])
    for offset, ok in ((-301, False), (-300, True), (0, True), (300, True), (301, False)):
        headers = signature_headers(key, "msg_1", int(now[0]) + offset, body)
        assert _verify(verifier, body, headers)[0] is ok, offset
    stale = signature_headers(key, "msg_1", int(now[0]) - 3600, body)
    assert _verify(verifier, body, stale)[2] == ("webhook-timestamp is more than 300 s away from now "
                                                "(a replay, or a clock off)")


def test_a_bad_signing_secret_and_a_missing_one_are_one_clear_line() -> None:
    with pytest.raises(UsageError, match="the webhook signing secret is not whsec_ followed by base64") as caught:
        StandardWebhooks("whsec_%%%not-base64-sk-123")
    assert "%%%" not in str(caught.value)
    setup = VerifierSetup(tokens=StaticTokens({}))
    with pytest.raises(UsageError, match="--verify standard-webhooks needs the signing secret in "
                                         "APIDOT_WEBHOOK_SECRET"):
        make_verifiers(["secret-path", "standard-webhooks"], setup)
    with pytest.raises(UsageError, match="no webhook verifier 'psychic'"):
        make_verifiers(["psychic"], setup)


def test_the_cli_offers_exactly_the_registered_verifiers() -> None:
    choices = {param.name: param.type for param in cli.cli.commands["run"].params}["verify"]
    assert isinstance(choices, click.Choice) and set(choices.choices) == set(VERIFIERS)
    receive = {param.name: param.type for param in cli.cli.commands["receive"].params}["verify"]
    assert isinstance(receive, click.Choice) and set(receive.choices) == set(VERIFIERS)


def test_a_receiver_with_both_verifiers_needs_the_secret_and_a_signature(ledger: Ledger) -> None:
    key = base64.b64decode(SECRET.removeprefix("whsec_"))
    verifiers = make_verifiers(["secret-path", "standard-webhooks"],
                               VerifierSetup(tokens=StaticTokens({TOKEN: "c"}), signing_secret=SECRET))
    body = b'{"task_id": "task-1", "status": "finished", "files": []}'
    signed = {**signature_headers(key, "msg_9", int(time.time()), body), "content-type": "application/json"}
    with run_receiver(ledger, campaign="c", verifiers=verifiers) as url, httpx.Client(base_url=url) as http:
        assert http.post(f"/{TOKEN}", content=body, headers=signed).status_code == 200
        assert http.post(f"/{TOKEN}", content=body, headers={"content-type": "application/json"}).status_code == 401
        assert http.post("/no-secret", content=body, headers=signed).status_code == 404
    assert [e.kind for e in ledger.events("c")].count("webhook") == 1
