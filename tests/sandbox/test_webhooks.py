"""The sandbox's change events: Standard Webhooks signatures (checked with the ``standardwebhooks`` reference
library on what the receiver got), delivered through egress to Tether's real webhook endpoint of an integration
whose webhook verifies Standard Webhooks, after the change committed; ``duplicate`` re-sends the same
``webhook-id`` (recorded once by Tether); the subscription records how the last delivery went."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import standardwebhooks
from sqlmodel import col, select

from engine.sandbox.database import sandbox_db
from engine.sandbox.sender import sign
from engine.sandbox.tables import SandboxWebhook
from engine.store.tables import WebhookDelivery, WebhookEndpoint
from engine.webhooks.endpoints import ensure_endpoints
from engine.webhooks.targets import endpoint_secret
from sandbox.conftest import LiveSandbox, start
from support.webhook_kit import APP_SECRET, SLACK_SECRET, add_integration

ACME = {"X-Api-Key": "sbx_key_acme"}


@pytest.fixture(scope="module")
def hooks(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveSandbox]:
    """A live sandbox beside the test definition ``hooks`` (a webhook of every scheme)."""
    path = tmp_path_factory.mktemp("hooks")
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setenv("TETHER_SECRET_HOOKS_SLACK_SIGNING_SECRET", SLACK_SECRET)
        monkeypatch.setenv("TETHER_SECRET_HOOKS_APP_WEBHOOK_SECRET", APP_SECRET)
        yield from start(
            f"sqlite:///{path / 'tether.db'}", str(path), monkeypatch, definition_modules="support.webhook_definition"
        )


def subscribe(live: LiveSandbox) -> tuple[str, str, str]:
    """An integration's Standard Webhooks endpoint, subscribed for ``acme``: (subscription id, endpoint id, secret)."""
    integration = add_integration(live.runtime, owner=f"o-{datetime.now(UTC).timestamp()}")
    endpoints = {e.webhook: e for e in asyncio.run(ensure_endpoints(live.runtime, integration))}
    endpoint = endpoints["standard"]
    with live.runtime.db.session() as session:
        secret = endpoint_secret(live.runtime, session.get_one(WebhookEndpoint, endpoint.id))
    assert secret and endpoint.url.startswith(f"{live.base}/v1/webhooks/")
    answer = live.http.post(
        f"{live.sandbox}/api/v1/webhooks", headers=ACME, json={"url": endpoint.url, "secret": secret}
    )
    assert answer.status_code == 201, answer.text
    return answer.json()["id"], endpoint.id, secret


def deliveries(live: LiveSandbox, endpoint_id: str) -> list[WebhookDelivery]:
    with live.runtime.db.session() as session:
        return list(session.exec(select(WebhookDelivery).where(col(WebhookDelivery.endpoint_id) == endpoint_id)))


def test_sign_matches_the_reference_library() -> None:
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    body = b'{"type":"record.created"}'
    signature = sign(secret, "msg_1", 1_700_000_000, body)
    expected = standardwebhooks.Webhook(secret).sign("msg_1", datetime.fromtimestamp(1_700_000_000, UTC), body.decode())
    assert signature == expected


def test_a_change_arrives_verified_and_a_duplicate_is_recorded_once(hooks: LiveSandbox) -> None:
    subscription, endpoint_id, secret = subscribe(hooks)
    created = hooks.control("acme/records/users", json={"email": "hook@acme.example", "name": "Hook Person"})
    assert created.status_code == 201, created.text
    sent = created.json()
    [outcome] = [d for d in sent["deliveries"] if d["subscription"] == subscription]
    assert 200 <= outcome["status"] < 300 and outcome["error"] == "", sent
    # The delivery row is recorded before Tether acknowledges it, so it is there now.
    [row] = deliveries(hooks, endpoint_id)
    assert row.delivery_id == sent["event_id"]  # recorded (verified) before Tether acknowledged it
    # What the receiver got verifies with the reference library, under the integration's endpoint secret.
    payload = standardwebhooks.Webhook(secret).verify(row.body, {k.lower(): v for k, v in row.headers.items()})
    assert payload == {"type": "record.created", "kind": "users", "data": created.json()["record"]}
    # The sandbox's API already shows the change the event announced (sent after the commit).
    listed = hooks.http.get(f"{hooks.sandbox}/api/v1/users", headers=ACME, params={"limit": "100"}).json()["data"]
    assert sent["record"]["id"] in {u["id"] for u in listed}

    again = hooks.control("acme/duplicate")
    assert again.status_code == 200 and again.json()["event_id"] == sent["event_id"]
    assert all(200 <= d["status"] < 300 for d in again.json()["deliveries"] if d["subscription"] == subscription)
    assert len(deliveries(hooks, endpoint_id)) == 1
    with sandbox_db(hooks.runtime.db).session() as session:
        recorded = session.get_one(SandboxWebhook, subscription)
    assert recorded.last_status is not None and 200 <= recorded.last_status < 300
    assert hooks.control("acme/reset").status_code == 200
    assert hooks.http.delete(f"{hooks.sandbox}/api/v1/webhooks/{subscription}", headers=ACME).status_code == 204


def test_a_refused_delivery_is_recorded_on_the_subscription(hooks: LiveSandbox) -> None:
    subscription, endpoint_id, _ = subscribe(hooks)
    with sandbox_db(hooks.runtime.db).session() as session:  # a URL of this origin the sender is not admitted to
        row = session.get_one(SandboxWebhook, subscription)
        row.url = f"{hooks.base}/v1/integrations"
        session.add(row)
    changed = hooks.control("acme/records/groups", json={"name": "Hooks"})
    assert changed.status_code == 201
    [outcome] = [d for d in changed.json()["deliveries"] if d["subscription"] == subscription]
    assert outcome == {"subscription": subscription, "status": 0, "error": "egress_refused"}
    with sandbox_db(hooks.runtime.db).session() as session:
        recorded = session.get_one(SandboxWebhook, subscription)
    assert (recorded.last_status, recorded.last_error) == (0, "egress_refused")
    assert deliveries(hooks, endpoint_id) == []
    assert hooks.control("acme/reset").status_code == 200
    assert hooks.http.delete(f"{hooks.sandbox}/api/v1/webhooks/{subscription}", headers=ACME).status_code == 204


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"url": "https://elsewhere.example/hook", "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}, 400),
        ({"url": "{base}/v1/webhooks/x", "secret": "not base64!"}, 400),
        ({"url": "{base}/v1/webhooks/x", "secret": "whsec_AAAA"}, 400),
        ({"url": "{base}/v1/webhooks/x"}, 400),
        ({"url": "{base}/v1/webhooks/x", "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "events": ["*"]}, 400),
        ([], 400),
    ],
)
def test_bad_subscriptions_are_400(hooks: LiveSandbox, body: object, status: int) -> None:
    if isinstance(body, dict):
        body = {k: v.replace("{base}", hooks.base) if isinstance(v, str) else v for k, v in body.items()}
    answer = hooks.http.post(f"{hooks.sandbox}/api/v1/webhooks", headers=ACME, json=body)
    assert answer.status_code == status, answer.text
    assert answer.json()["error"] == "invalid_request"


def test_a_subscription_belongs_to_its_account(hooks: LiveSandbox) -> None:
    subscription, _, _ = subscribe(hooks)
    other = hooks.http.delete(
        f"{hooks.sandbox}/api/v1/webhooks/{subscription}", headers={"X-Api-Key": "sbx_key_globex"}
    )
    assert other.status_code == 404
    assert hooks.http.delete(f"{hooks.sandbox}/api/v1/webhooks/{subscription}", headers=ACME).status_code == 204
