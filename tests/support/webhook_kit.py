"""Helpers of the webhook suite: a runtime over a real database, an integration with endpoints, the app, and
requests signed by each provider's reference signer."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlmodel import select

from engine.api import webhooks as webhooks_api
from engine.api.app import TetherApp
from engine.api.errors import install_error_handlers
from engine.api.limits import BodyLimit
from engine.authoring.definition import Definition
from engine.catalog.registry import Registry
from engine.custody.crypto import KeyRing, generate_master_key
from engine.custody.masterkey import KeySource
from engine.runtime import Runtime
from engine.settings import Settings
from engine.store.database import Database
from engine.store.tables import Integration, IntegrationStatus, WebhookDelivery, WebhookEndpoint
from engine.webhooks.endpoints import EndpointInfo, ensure_endpoints
from engine.webhooks.targets import endpoint_secret
from support import webhook_definition as hooks
from support.embedded import EmbeddedWorker

SLACK_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
APP_SECRET = "It's a Secret to Everybody"


def make_runtime(
    db: Database,
    monkeypatch: pytest.MonkeyPatch,
    definition: Definition = hooks.definition,
    *also: Definition,
    public_url: str = "https://tether.example",
) -> Runtime:
    """A runtime serving ``definition`` (by default the one with every scheme), and ``also``, at ``public_url``."""
    monkeypatch.setenv("TETHER_SECRET_HOOKS_SLACK_SIGNING_SECRET", SLACK_SECRET)
    monkeypatch.setenv("TETHER_SECRET_HOOKS_APP_WEBHOOK_SECRET", APP_SECRET)
    registry = Registry()
    for each in (definition, *also):
        registry.register(each)
    runtime = Runtime(
        Settings(database_url=db.url, public_url=public_url),
        db,
        registry,
        KeySource(KeyRing.from_master_key(generate_master_key()), "env"),
    )
    runtime._load_operator_configs()
    return runtime


@dataclass
class Setup:
    runtime: Runtime
    integration: Integration
    endpoints: dict[str, EndpointInfo]
    dispatched: list[tuple[str, str, dict[str, Any]]]

    def token(self, webhook: str) -> str:
        return self.endpoints[webhook].url.rsplit("/", 1)[1]

    def secret(self, webhook: str) -> str:
        if webhook == "slack":
            return SLACK_SECRET
        if webhook == "app":
            return APP_SECRET
        with self.runtime.db.session() as session:
            row = session.get_one(WebhookEndpoint, self.endpoints[webhook].id)
        value = endpoint_secret(self.runtime, row)
        assert value is not None
        return value


def add_integration(
    runtime: Runtime, *, tenant: str = "t1", owner: str = "o1", installation: str = "42"
) -> Integration:
    row = Integration(
        tenant_id=tenant,
        owner_id=owner,
        definition_id="hooks",
        status=IntegrationStatus.connected,
        provider_data={"installation_id": installation},
    )
    with runtime.db.session() as session:
        session.add(row)
    return row


async def build_setup(db: Database, monkeypatch: pytest.MonkeyPatch, *also: Definition) -> Setup:
    hooks.SEEN.clear()
    runtime = make_runtime(db, monkeypatch, hooks.definition, *also)
    integration = add_integration(runtime)
    endpoints = {e.webhook: e for e in await ensure_endpoints(runtime, integration)}
    dispatched: list[tuple[str, str, dict[str, Any]]] = []

    async def fake_dispatch(rt: Runtime, integration_id: str, operation_id: str, config: dict[str, Any]) -> str:
        dispatched.append((integration_id, operation_id, config))
        return f"run-{len(dispatched)}"

    # The execution layer is a stand-in here: the suite proves the hand-over, not the executor.
    monkeypatch.setattr("engine.webhooks.deliveries.dispatch_operation", fake_dispatch)
    return Setup(runtime, integration, endpoints, dispatched)


@dataclass
class ConnectedEndpoint:
    """One connected integration of a real definition with its single endpoint, the app in front of it (over
    ASGI) and an embedded worker processing what it records."""

    runtime: Runtime
    integration: Integration
    client: httpx.AsyncClient
    #: The endpoint's path (``/v1/webhooks/{token}``) and opened secret.
    url: str
    secret: str
    #: Operation IDs the delivery handlers dispatched (the executor is a stand-in).
    dispatched: list[str]
    worker: EmbeddedWorker

    def deliveries(self) -> list[WebhookDelivery]:
        with self.runtime.db.session() as session:
            return list(session.exec(select(WebhookDelivery)))


async def connected_endpoint(
    database: Database,
    monkeypatch: pytest.MonkeyPatch,
    embedded: EmbeddedWorker,
    definition: Definition,
    prepare: Callable[[Runtime, Integration], None] | None = None,
) -> AsyncIterator[ConnectedEndpoint]:
    """A fixture body: ``definition``'s one webhook endpoint for a connected integration (``prepare`` runs after
    the endpoint exists, e.g. to set a subscription row)."""
    runtime = make_runtime(database, monkeypatch, definition)
    integration = Integration(tenant_id="t1", owner_id="o1", definition_id=definition.id,
                              status=IntegrationStatus.connected)
    with runtime.db.session() as session:
        session.add(integration)
    [endpoint] = await ensure_endpoints(runtime, integration)
    with runtime.db.session() as session:
        secret = endpoint_secret(runtime, session.get_one(WebhookEndpoint, endpoint.id))
    assert secret
    if prepare is not None:
        prepare(runtime, integration)
    dispatched: list[str] = []

    async def fake_dispatch(rt: Runtime, integration_id: str, operation_id: str, config: dict[str, Any]) -> str:
        dispatched.append(operation_id)
        return "run-1"

    # The executor is not under test: the delivery's hand-over to it is.
    monkeypatch.setattr("engine.webhooks.deliveries.dispatch_operation", fake_dispatch)
    app = make_app(runtime)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://tether.test") as client:
        yield ConnectedEndpoint(runtime, integration, client, endpoint.url.removeprefix(runtime.settings.public_url),
                                secret, dispatched, embedded.start(app))


def make_app(runtime: Runtime) -> FastAPI:
    """The webhook routes on ``TetherApp``, so deliveries take the fast lane as in ``create_app``."""
    app = TetherApp()
    app.state.runtime = runtime
    install_error_handlers(app)
    app.add_middleware(BodyLimit)
    app.include_router(webhooks_api.router)
    return app


# -- requests signed by the providers' reference signers -----------------------------------------------------------

SCHEMES = ("github", "slack", "standard", "stripe", "bearer")
#: Schemes whose signature covers a timestamp (so a replayed old one is ``stale_delivery``).
TIMESTAMPED = ("slack", "standard", "stripe")


def event_body(scheme: str, event: str, delivery: str, item: dict[str, Any] | None = None) -> bytes:
    """A body in the shape each scheme's webhook reads its event type (and delivery ID) from."""
    item = item if item is not None else {"id": "i-1", "name": "one"}
    if scheme == "slack":
        data: dict[str, Any] = {"type": "event_callback", "event_id": delivery, "event": {"type": event}, "item": item}
    elif scheme == "stripe":
        data = {"id": delivery, "type": event, "item": item}
    else:
        data = {"type": event, "item": item, "installation": {"id": 42}}
    return json.dumps(data).encode()


def sign(
    scheme: str,
    body: bytes,
    secret: str,
    *,
    event: str = "item.changed",
    delivery: str = "d-1",
    timestamp: int | None = None,
) -> dict[str, str]:
    """Headers for ``body`` produced by the provider's own library (never by the code under test)."""
    ts = int(time.time()) if timestamp is None else timestamp
    headers = {"content-type": "application/json"}
    if scheme in ("github", "app"):
        import githubkit.webhooks

        headers |= {
            "X-Hub-Signature-256": githubkit.webhooks.sign(secret, body),
            "X-GitHub-Event": event,
            "X-GitHub-Delivery": delivery,
        }
    elif scheme == "slack":
        from slack_sdk.signature import SignatureVerifier

        signature = SignatureVerifier(secret).generate_signature(timestamp=str(ts), body=body)
        assert signature is not None
        headers |= {"X-Slack-Request-Timestamp": str(ts), "X-Slack-Signature": signature}
    elif scheme == "standard":
        import standardwebhooks

        signature = standardwebhooks.Webhook(secret).sign(delivery, datetime.fromtimestamp(ts, UTC), body.decode())
        headers |= {"webhook-id": delivery, "webhook-timestamp": str(ts), "webhook-signature": signature}
    elif scheme == "stripe":
        import stripe

        headers |= {"Stripe-Signature": stripe.WebhookSignature.generate_signature_header(body.decode(), secret, ts)}
    elif scheme == "bearer":
        headers |= {"Authorization": f"Bearer {secret}", "X-Event": event}
    else:
        raise ValueError(scheme)
    return headers


#: The header each scheme cannot do without.
REQUIRED_HEADER = {
    "github": "X-Hub-Signature-256",
    "app": "X-Hub-Signature-256",
    "slack": "X-Slack-Signature",
    "standard": "webhook-signature",
    "stripe": "Stripe-Signature",
    "bearer": "Authorization",
}


def wrong_secret(scheme: str) -> str:
    if scheme == "standard":
        return "whsec_" + base64.b64encode(b"w" * 32).decode()
    return "not-the-secret"
