"""``POST /v1/webhooks/{token}`` end to end, in-process, with requests signed by the providers' reference signers."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
from sqlmodel import select

from engine.api.principal import create_api_key
from engine.store.tables import DeliveryStatus, Run, WebhookDelivery, WebhookEndpoint
from engine.webhooks.deliveries import redeliver_pending
from engine.webhooks.endpoints import ensure_endpoints, remove_endpoints
from support import webhook_definition as hooks
from support.embedded import EmbeddedWorker, die_after_acknowledging
from support.webhook_kit import (
    REQUIRED_HEADER,
    SCHEMES,
    TIMESTAMPED,
    Setup,
    add_integration,
    event_body,
    make_app,
    make_runtime,
    sign,
    wrong_secret,
)


def deliveries(setup: Setup) -> list[WebhookDelivery]:
    with setup.runtime.db.session() as session:
        return list(session.exec(select(WebhookDelivery).order_by(WebhookDelivery.received_at)))


async def post(client: Any, setup: Setup, scheme: str, body: bytes, headers: dict[str, str]) -> Any:
    return await client.post(f"/v1/webhooks/{setup.token(scheme)}", content=body, headers=headers)


@pytest.mark.parametrize("scheme", SCHEMES)
async def test_signed_delivery_is_acknowledged_then_processed(
    sqlite_setup: Setup, app_for: Any, scheme: str, embedded: EmbeddedWorker
) -> None:
    app, client = app_for(sqlite_setup.runtime)
    embedded.start(app)
    body = event_body(scheme, "item.changed", f"{scheme}-1")
    response = await post(client, sqlite_setup, scheme, body, sign(scheme, body, sqlite_setup.secret(scheme)))
    assert response.status_code == 202, response.text
    assert response.json()["status"] == "received"
    await embedded.drain()
    [row] = deliveries(sqlite_setup)
    assert row.status == DeliveryStatus.processed and row.event_type == "item.changed" and row.attempts == 1
    assert row.body == body and "authorization" not in row.headers
    assert [name for name, _ in hooks.SEEN] == [f"{prefix(scheme)}ItemChanged"]
    with sqlite_setup.runtime.db.session() as session:
        [run] = session.exec(select(Run).where(Run.delivery_id == row.id)).all()
    assert run.trigger == "webhook" and run.status == "succeeded" and run.payloads_out == 1


def prefix(scheme: str) -> str:
    return {"github": "Gh", "slack": "Slack", "standard": "Std", "stripe": "Stripe", "bearer": "Bearer"}[scheme]


@pytest.mark.parametrize("scheme", SCHEMES)
async def test_rejections_over_http(sqlite_setup: Setup, app_for: Any, scheme: str) -> None:
    _, client = app_for(sqlite_setup.runtime)
    body = event_body(scheme, "item.changed", "x-1")
    secret = sqlite_setup.secret(scheme)
    headers = sign(scheme, body, secret)
    cases: list[tuple[bytes, dict[str, str], str]] = [
        (body, sign(scheme, body, wrong_secret(scheme)), "invalid_signature"),
        (body, {k: v for k, v in headers.items() if k != REQUIRED_HEADER[scheme]}, "invalid_signature"),
    ]
    if scheme != "bearer":
        cases.append((body[:-2] + b" }", headers, "invalid_signature"))
    if scheme in TIMESTAMPED:
        cases.append((body, sign(scheme, body, secret, timestamp=int(time.time()) - 600), "stale_delivery"))
    for content, hdrs, code in cases:
        response = await post(client, sqlite_setup, scheme, content, hdrs)
        assert response.status_code == 401, (code, response.text)
        assert response.json()["error"]["code"] == code
    assert deliveries(sqlite_setup) == []


async def test_unknown_token_and_oversized_body(sqlite_setup: Setup, app_for: Any) -> None:
    _, client = app_for(sqlite_setup.runtime)
    response = await client.post("/v1/webhooks/" + "x" * 43, content=b"{}")
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"
    response = await client.post("/v1/webhooks/short", content=b"{}")
    assert response.status_code == 404
    big = b"{" + b" " * (1024 * 1024) + b"}"
    response = await post(client, sqlite_setup, "github", big, sign("github", big, sqlite_setup.secret("github")))
    assert response.status_code == 413 and response.json()["error"]["code"] == "body_too_large"


async def test_fifty_concurrent_duplicates_are_processed_once(
    setup: Setup, app_for: Any, embedded: EmbeddedWorker
) -> None:
    app, client = app_for(setup.runtime)
    embedded.start(app)
    body = event_body("github", "item.changed", "dup-1")
    headers = sign("github", body, setup.secret("github"), delivery="dup-1")
    responses = await asyncio.gather(*(post(client, setup, "github", body, headers) for _ in range(50)))
    statuses = sorted(r.json()["status"] for r in responses)
    assert statuses == ["duplicate"] * 49 + ["received"], statuses
    recorder = app.state.webhook_recorder  # group commit: the duplicates shared batches (and their commits)
    assert recorder.items == 50 and recorder.batches < 50
    await embedded.drain()
    await redeliver_pending(setup.runtime, older_than=__import__("datetime").timedelta(0))
    [row] = deliveries(setup)
    assert row.status == DeliveryStatus.processed and row.attempts == 1
    assert hooks.SEEN == [("GhItemChanged", "dup-1")]


async def test_delivery_recorded_but_not_processed_is_processed_after_restart(
    setup: Setup, app_for: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datetime import timedelta

    app, client = app_for(setup.runtime)
    body = event_body("stripe", "item.changed", "evt_crash")
    response = await post(client, setup, "stripe", body, sign("stripe", body, setup.secret("stripe")))
    assert response.status_code == 202
    die_after_acknowledging(app)
    [row] = deliveries(setup)
    assert row.status == DeliveryStatus.received and hooks.SEEN == []

    restarted = make_runtime(setup.runtime.db, monkeypatch)  # a new process over the same database
    assert await redeliver_pending(restarted, older_than=timedelta(seconds=3600)) == []  # too recent to sweep
    [outcome] = await redeliver_pending(restarted, older_than=timedelta(0))
    assert outcome.status == DeliveryStatus.processed and outcome.persisted + outcome.rejected == 1
    assert deliveries(setup)[0].status == DeliveryStatus.processed
    assert hooks.SEEN == [("StripeItemChanged", "evt_crash")]
    assert await redeliver_pending(restarted, older_than=timedelta(0)) == []  # nothing twice


async def test_claimed_delivery_of_a_dead_worker_is_reclaimed_after_its_lease(
    setup: Setup, app_for: Any
) -> None:
    from datetime import timedelta

    from engine.webhooks.deliverystore import claim_deliveries

    app, client = app_for(setup.runtime)
    body = event_body("github", "item.changed", "lease-1")
    await post(
        client, setup, "github", body, sign("github", body, setup.secret("github"), delivery="lease-1")
    )
    die_after_acknowledging(app)
    [row] = deliveries(setup)
    [claimed] = await claim_deliveries(setup.runtime.db, [row.id], timedelta(minutes=5))  # a worker claims, dies
    assert claimed is not None
    assert await redeliver_pending(setup.runtime, older_than=timedelta(0)) == []  # its lease still holds
    [outcome] = await redeliver_pending(setup.runtime, older_than=timedelta(0), lease=timedelta(0))
    assert outcome.status == DeliveryStatus.processed
    assert deliveries(setup)[0].attempts == 2


async def test_unrouted_event_is_kept_and_counted(setup: Setup, app_for: Any, embedded: EmbeddedWorker) -> None:
    app, client = app_for(setup.runtime)
    embedded.start(app)
    key, _ = create_api_key(setup.runtime.db, tenant="t1", role="server")
    body = event_body("standard", "item.unknown", "msg_unrouted")
    response = await post(
        client, setup, "standard", body, sign("standard", body, setup.secret("standard"), delivery="msg_unrouted")
    )
    assert response.status_code == 202
    await embedded.drain()
    [row] = deliveries(setup)
    assert row.status == DeliveryStatus.unrouted and row.event_type == "item.unknown" and row.body == body
    listing = await client.get(
        f"/v1/integrations/{setup.integration.id}/deliveries", headers={"Authorization": f"Bearer {key}"}
    )
    assert listing.status_code == 200
    assert listing.json()["counts"] == {"unrouted": 1}
    assert listing.json()["deliveries"][0]["delivery_id"] == "msg_unrouted"


async def test_dispatching_event_and_failing_handler(setup: Setup, app_for: Any, embedded: EmbeddedWorker) -> None:
    app, client = app_for(setup.runtime)
    embedded.start(app)
    body = event_body("github", "item.deleted", "del-1")
    await post(
        client,
        setup,
        "github",
        body,
        sign("github", body, setup.secret("github"), event="item.deleted", delivery="del-1"),
    )
    body2 = event_body("github", "item.explodes", "boom-1")
    await post(
        client,
        setup,
        "github",
        body2,
        sign("github", body2, setup.secret("github"), event="item.explodes", delivery="boom-1"),
    )
    await embedded.drain()
    assert setup.dispatched == [(setup.integration.id, "Refresh", {"id": None})]
    by_id = {r.delivery_id: r for r in deliveries(setup)}
    assert by_id["del-1"].status == DeliveryStatus.processed
    failed = by_id["boom-1"]
    assert failed.status == DeliveryStatus.failed and failed.error_code == "handler_error"
    assert "secret-ish" not in failed.error_message and "RuntimeError" in failed.error_message


async def test_bearer_without_delivery_id_is_deduplicated_by_content(
    sqlite_setup: Setup, app_for: Any, embedded: EmbeddedWorker
) -> None:
    app, client = app_for(sqlite_setup.runtime)
    embedded.start(app)
    body = event_body("bearer", "item.changed", "")
    headers = sign("bearer", body, sqlite_setup.secret("bearer"))
    first = await post(client, sqlite_setup, "bearer", body, headers)
    second = await post(client, sqlite_setup, "bearer", body, headers)
    other = await post(client, sqlite_setup, "bearer", body + b" ", headers)
    assert [first.json()["status"], second.json()["status"], other.json()["status"]] == [
        "received",
        "duplicate",
        "received",
    ]
    assert first.json()["delivery_id"].startswith("body:")
    await embedded.drain()


async def test_slack_url_verification_is_answered(sqlite_setup: Setup, app_for: Any) -> None:
    _, client = app_for(sqlite_setup.runtime)
    challenge = "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"
    body = json.dumps({"token": "x", "challenge": challenge, "type": "url_verification"}).encode()
    response = await post(client, sqlite_setup, "slack", body, sign("slack", body, sqlite_setup.secret("slack")))
    assert response.status_code == 200
    assert response.json() == {"challenge": challenge}
    unsigned = await client.post(f"/v1/webhooks/{sqlite_setup.token('slack')}", content=body)
    assert unsigned.status_code == 401  # verification comes before the handshake
    assert deliveries(sqlite_setup) == []


async def test_static_webhook_routes_by_provider_data(
    sqlite_setup: Setup, app_for: Any, embedded: EmbeddedWorker
) -> None:
    app, client = app_for(sqlite_setup.runtime)
    embedded.start(app)
    secret = sqlite_setup.secret("app")
    url = "/v1/webhooks/static/hooks/app"
    ping = b'{"zen": "Keep it logically awesome.", "hook_id": 1}'
    response = await client.post(url, content=ping, headers=sign("app", ping, secret, event="ping"))
    assert response.status_code == 200 and response.json() == {"status": "pong"}
    body = event_body("github", "item.changed", "s-1")  # installation 42: the fixture's integration
    response = await client.post(url, content=body, headers=sign("app", body, secret, delivery="s-1"))
    assert response.status_code == 202 and response.json()["status"] == "received"
    stranger = body.replace(b'"id": 42', b'"id": 7')
    response = await client.post(url, content=stranger, headers=sign("app", stranger, secret, delivery="s-2"))
    assert response.status_code == 202 and response.json()["status"] == "unrouted"
    bad = await client.post(url, content=body, headers=sign("app", body, "wrong", delivery="s-3"))
    assert bad.status_code == 401 and bad.json()["error"]["code"] == "invalid_signature"
    assert (await client.post("/v1/webhooks/static/hooks/github", content=body)).status_code == 404
    await embedded.drain()
    [row] = deliveries(sqlite_setup)
    assert row.integration_id == sqlite_setup.integration.id and row.status == DeliveryStatus.processed


async def test_delivery_log_is_scoped_to_the_principal(sqlite_setup: Setup, app_for: Any) -> None:
    _, client = app_for(sqlite_setup.runtime)
    db = sqlite_setup.runtime.db
    other_tenant, _ = create_api_key(db, tenant="t2", role="server")
    other_owner, _ = create_api_key(db, tenant="t1", role="user", owner="someone-else")
    owner, _ = create_api_key(db, tenant="t1", role="user", owner="o1")
    url = f"/v1/integrations/{sqlite_setup.integration.id}/deliveries"
    for key in (other_tenant, other_owner):
        response = await client.get(url, headers={"Authorization": f"Bearer {key}"})
        assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"
    assert (await client.get(url)).status_code == 401
    response = await client.get(url, headers={"Authorization": f"Bearer {owner}"})
    assert response.status_code == 200 and response.json() == {"deliveries": [], "counts": {}}


async def test_endpoints_are_idempotent_sealed_registered_and_removed(
    sqlite_setup: Setup, app_for: Any, embedded: EmbeddedWorker
) -> None:
    runtime = sqlite_setup.runtime
    again = {e.webhook: e for e in await ensure_endpoints(runtime, sqlite_setup.integration)}
    assert again == sqlite_setup.endpoints
    github = again["github"]
    assert github.registered and github.provider_ref == "hook-123"
    assert hooks.REGISTERED.count((sqlite_setup.integration.id, github.url)) == 1
    assert again["app"].url == "https://tether.example/v1/webhooks/static/hooks/app"
    with runtime.db.session() as session:
        rows = {r.webhook: r for r in session.exec(select(WebhookEndpoint))}
    assert rows["slack"].secret_ciphertext is None and rows["github"].secret_ciphertext is not None
    assert sqlite_setup.secret("github").encode() not in rows["github"].secret_ciphertext
    assert sqlite_setup.secret("standard").startswith("whsec_")
    assert len(rows["github"].token) >= 40
    # Key rotation re-seals endpoint secrets with the same AAD: they still open.
    runtime.keys.keyring.add_key("rotated", b"r" * 32)
    assert runtime.keystore.rewrap_all() >= 4
    app, client = app_for(runtime)
    embedded.start(app)
    body = event_body("github", "item.changed", "after-rotate")
    assert (
        await post(client, sqlite_setup, "github", body, sign("github", body, sqlite_setup.secret("github")))
    ).status_code == 202
    await embedded.drain()
    token = sqlite_setup.token("github")
    assert await remove_endpoints(runtime, sqlite_setup.integration) == 6
    assert "hook-123" in hooks.UNREGISTERED
    response = await client.post(f"/v1/webhooks/{token}", content=body, headers=sign("github", body, "x"))
    assert response.status_code == 404


async def test_two_integrations_have_distinct_tokens_and_secrets(sqlite_setup: Setup) -> None:
    second = add_integration(sqlite_setup.runtime, tenant="t2", installation="43")
    mine = await ensure_endpoints(sqlite_setup.runtime, second)
    tokens = {e.url for e in mine} | {e.url for e in sqlite_setup.endpoints.values() if not e.static}
    assert len(tokens) == 6 + 5  # the static URL is shared


async def test_a_delivery_for_a_disconnected_integration_is_kept_but_not_processed(
    setup: Setup, app_for: Any
) -> None:
    """A delivery recorded just before (or, through another process's endpoint cache, just after) a disconnect."""
    from datetime import timedelta

    from engine.store.tables import Integration, IntegrationStatus

    app, client = app_for(setup.runtime)
    body = event_body("stripe", "item.changed", "evt_late")
    response = await post(client, setup, "stripe", body, sign("stripe", body, setup.secret("stripe")))
    assert response.status_code == 202
    die_after_acknowledging(app)  # processing happens after the disconnect
    with setup.runtime.db.session() as session:
        row = session.get(Integration, setup.integration.id)
        assert row is not None
        row.status = IntegrationStatus.disconnected
        session.add(row)
    [outcome] = await redeliver_pending(setup.runtime, older_than=timedelta(0))
    assert (outcome.status, outcome.error_code) == (DeliveryStatus.failed, "integration_disconnected")
    [kept] = deliveries(setup)
    assert kept.status == DeliveryStatus.failed and kept.body == body and hooks.SEEN == []


async def test_the_documented_route_and_the_fast_lane_answer_alike(
    sqlite_setup: Setup, embedded: EmbeddedWorker
) -> None:
    """``TetherApp``'s fast lane serves ``POST /v1/webhooks/{token}``; the FastAPI route of the same path is what the
    OpenAPI document describes, and behaves the same where it serves (a plain FastAPI app with the router)."""
    import httpx
    from fastapi import FastAPI

    from engine.api import webhooks as webhooks_api
    from engine.api.errors import install_error_handlers
    from engine.api.limits import BodyLimit

    app = make_app(sqlite_setup.runtime)
    embedded.start(app)
    post_doc = app.openapi()["paths"]["/v1/webhooks/{token}"]["post"]
    assert {"200", "202"} <= set(post_doc["responses"])
    stacked: list[str] = []

    @app.middleware("http")
    async def count(request: Any, call_next: Any) -> Any:  # the lane passes no middleware
        stacked.append(request.url.path)
        return await call_next(request)

    slow = FastAPI()
    slow.state.runtime = sqlite_setup.runtime
    install_error_handlers(slow)
    slow.add_middleware(BodyLimit)
    slow.include_router(webhooks_api.router)
    embedded.start(slow)
    answers = []
    for target in (app, slow):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=target), base_url="http://t") as client:
            body = event_body("github", "item.changed", f"alike-{len(answers)}")
            headers = sign("github", body, sqlite_setup.secret("github"), delivery=f"alike-{len(answers)}")
            ok = await post(client, sqlite_setup, "github", body, headers)
            again = await post(client, sqlite_setup, "github", body, headers)
            forged = await post(client, sqlite_setup, "github", body, sign("github", body, "wrong"))
            missing = await client.post("/v1/webhooks/" + "x" * 43, content=b"{}")
            malformed = await client.post("/v1/webhooks/not%20a%20token", content=b"{}")
            too_large = await post(client, sqlite_setup, "github", b"x" * (1024 * 1024 + 1), headers)
            answers.append(
                [
                    (r.status_code, r.headers["content-type"], r.json().get("status") or r.json()["error"]["code"])
                    for r in (ok, again, forged, missing, malformed, too_large)
                ]
            )
    assert (
        answers[0]
        == answers[1]
        == [
            (202, "application/json", "received"),
            (200, "application/json", "duplicate"),
            (401, "application/json", "invalid_signature"),
            (404, "application/json", "not_found"),
            (404, "application/json", "not_found"),
            (413, "application/json", "body_too_large"),
        ]
    )
    assert stacked == []
    await embedded.drain()


@pytest.mark.parametrize(
    ("method", "path", "root_path", "token"),
    [
        ("POST", "/v1/webhooks/abcdefghijklmnop", "", "abcdefghijklmnop"),
        ("POST", "/tether/v1/webhooks/abcdefghijklmnop", "/tether", "abcdefghijklmnop"),
        ("POST", "/v1/webhooks/bad token", "", "bad token"),  # the lane answers 404 for it, as the route does
        # Providers' handshakes (Okta's GET) and probes (HEAD) take the lane too; each webhook says what it takes.
        ("GET", "/v1/webhooks/abcdefghijklmnop", "", "abcdefghijklmnop"),
        ("HEAD", "/v1/webhooks/abcdefghijklmnop", "", "abcdefghijklmnop"),
        ("PUT", "/v1/webhooks/abcdefghijklmnop", "", None),
        ("DELETE", "/v1/webhooks/abcdefghijklmnop", "", None),
        ("POST", "/v1/webhooks/static/github_app/events", "", None),
        ("POST", "/v1/webhooks/", "", None),
        ("POST", "/v1/webhooks", "", None),
        ("POST", "/v1/integrations", "", None),
    ],
)
def test_the_fast_lane_takes_only_deliveries(method: str, path: str, root_path: str, token: str | None) -> None:
    from engine.api.webhooks import delivery_token

    scope = {"type": "http", "method": method, "path": path, "root_path": root_path}
    assert delivery_token(scope) == token
    assert delivery_token({"type": "websocket", "path": path, "root_path": ""}) is None
