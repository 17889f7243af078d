"""A definition's own ``Verifier`` over HTTP: Microsoft Graph's ``clientState`` (a secret inside the body).

Before verifiers were pluggable, Entra's ``GraphClientState`` registered (it was no engine scheme) and every one of
its deliveries was then refused with 401. Here the real definition's endpoint takes Graph's documented
notification batch carrying the endpoint secret, and refuses it without.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlmodel import select

from definitions.azure_entra_id import definition as entra
from engine.runtime import Runtime
from engine.store.database import Database
from engine.store.tables import (
    DeliveryStatus,
    Integration,
    IntegrationStatus,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookSubscription,
)
from engine.webhooks.endpoints import ensure_endpoints
from engine.webhooks.targets import endpoint_secret
from support.embedded import EmbeddedWorker
from support.webhook_kit import make_app, make_runtime

NOTIFICATION = Path(__file__).parents[1] / "fixtures" / "azure_entra_id" / "notification_users.json"


@dataclass
class Graph:
    runtime: Runtime
    client: httpx.AsyncClient
    url: str
    secret: str
    dispatched: list[tuple[str, str]]
    worker: EmbeddedWorker


@pytest.fixture
async def graph(
    database: Database, monkeypatch: pytest.MonkeyPatch, embedded: EmbeddedWorker
) -> AsyncIterator[Graph]:
    monkeypatch.setenv("TETHER_AZURE_ENTRA_ID_CLIENT_ID", "tether-app")
    monkeypatch.setenv("TETHER_SECRET_AZURE_ENTRA_ID_CLIENT_SECRET", "tether-app-secret")
    runtime = make_runtime(database, monkeypatch, entra)
    integration = Integration(tenant_id="t1", owner_id="o1", definition_id="azure_entra_id",
                              status=IntegrationStatus.connected)
    with runtime.db.session() as session:
        session.add(integration)
    [endpoint] = await ensure_endpoints(runtime, integration)
    with runtime.db.session() as session:
        secret = endpoint_secret(runtime, session.get_one(WebhookEndpoint, endpoint.id))
        # The subscription the fixture's notification names, as the engine holds it once created (no client here:
        # creating it at the provider is tests/webhooks/test_graph_subscriptions.py).
        row = session.exec(select(WebhookSubscription).where(WebhookSubscription.key == "users")).one()
        row.status = "active"
        row.provider_id = json.loads(NOTIFICATION.read_text())["body"]["value"][0]["subscriptionId"]
        session.add(row)
    assert secret
    dispatched: list[tuple[str, str]] = []

    async def fake_dispatch(rt: Runtime, integration_id: str, operation_id: str, config: dict[str, Any]) -> str:
        dispatched.append((integration_id, operation_id))
        return "run-1"

    # The executor is not under test: the delivery's hand-over to it is.
    monkeypatch.setattr("engine.webhooks.deliveries.dispatch_operation", fake_dispatch)
    app = make_app(runtime)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://tether.test") as client:
        yield Graph(runtime, client, endpoint.url.removeprefix("https://tether.example"), secret, dispatched,
                    embedded.start(app))


def batch(client_state: str) -> bytes:
    body = json.loads(NOTIFICATION.read_text())["body"]
    body["value"] = [{**item, "clientState": client_state} for item in body["value"]]
    return json.dumps(body).encode()


def recorded(runtime: Runtime) -> list[WebhookDelivery]:
    with runtime.db.session() as session:
        return list(session.exec(select(WebhookDelivery)))


async def test_a_batch_carrying_the_endpoint_secret_is_taken_and_dispatches_the_sync(graph: Graph) -> None:
    response = await graph.client.post(graph.url, content=batch(graph.secret),
                                       headers={"Content-Type": "application/json"})
    assert response.status_code == 202, response.text
    await graph.worker.drain()
    [row] = recorded(graph.runtime)
    assert row.status == DeliveryStatus.processed and row.event_type == "change_notifications"
    assert [operation for _, operation in graph.dispatched] == ["DirectorySync"]


@pytest.mark.parametrize("client_state", ["", "not-the-secret"])
async def test_a_batch_without_the_endpoint_secret_is_refused(graph: Graph, client_state: str) -> None:
    response = await graph.client.post(graph.url, content=batch(client_state),
                                       headers={"Content-Type": "application/json"})
    assert (response.status_code, response.json()["error"]["code"]) == (401, "invalid_signature")
    assert graph.secret not in response.text
    assert recorded(graph.runtime) == [] and graph.dispatched == []
