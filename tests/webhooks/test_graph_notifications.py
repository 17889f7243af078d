"""Microsoft Graph change and lifecycle notifications over HTTP, with the real Entra definition, in Graph's documented
shapes (fixtures name their source): the validation request, a wrong ``clientState``, a replayed notification, a
stale subscription's notification, and the three lifecycle events.
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

FIXTURES = Path(__file__).parents[1] / "fixtures" / "azure_entra_id"
NOTIFICATION = json.loads((FIXTURES / "notification_users.json").read_text())["body"]
LIFECYCLE = json.loads((FIXTURES / "lifecycle_notifications.json").read_text())
VALIDATION = json.loads((FIXTURES / "validation_request.json").read_text())
SUBSCRIPTION = NOTIFICATION["value"][0]["subscriptionId"]


@dataclass
class Graph:
    runtime: Runtime
    client: httpx.AsyncClient
    url: str
    secret: str
    dispatched: list[str]
    worker: EmbeddedWorker

    def subscription(self, key: str = "users") -> WebhookSubscription:
        with self.runtime.db.session() as session:
            return session.exec(select(WebhookSubscription).where(WebhookSubscription.key == key)).one()

    def deliveries(self) -> list[WebhookDelivery]:
        with self.runtime.db.session() as session:
            return list(session.exec(select(WebhookDelivery)))

    async def post(self, body: dict[str, Any]) -> httpx.Response:
        return await self.client.post(self.url, content=json.dumps(body).encode(),
                                      headers={"Content-Type": "application/json"})


@pytest.fixture
async def graph(database: Database, monkeypatch: pytest.MonkeyPatch, embedded: EmbeddedWorker) -> AsyncIterator[Graph]:
    monkeypatch.setenv("TETHER_AZURE_ENTRA_ID_CLIENT_ID", "tether-app")
    monkeypatch.setenv("TETHER_SECRET_AZURE_ENTRA_ID_CLIENT_SECRET", "tether-app-secret")
    runtime = make_runtime(database, monkeypatch, entra)
    integration = Integration(tenant_id="t1", owner_id="o1", definition_id="azure_entra_id",
                              status=IntegrationStatus.connected)
    with runtime.db.session() as session:
        session.add(integration)
    # No credential here, so creating the subscriptions fails and is recorded (test_graph_subscriptions.py creates
    # them against a local Graph); the users one is then set to what Graph would have answered.
    [endpoint] = await ensure_endpoints(runtime, integration)
    with runtime.db.session() as session:
        secret = endpoint_secret(runtime, session.get_one(WebhookEndpoint, endpoint.id))
        row = session.exec(select(WebhookSubscription).where(WebhookSubscription.key == "users")).one()
        assert row.status == "failed"
        row.status, row.provider_id = "active", SUBSCRIPTION
        session.add(row)
    assert secret
    dispatched: list[str] = []

    async def fake_dispatch(rt: Runtime, integration_id: str, operation_id: str, config: dict[str, Any]) -> str:
        dispatched.append(operation_id)
        return "run-1"

    # The executor is not under test: the delivery's hand-over to it is.
    monkeypatch.setattr("engine.webhooks.deliveries.dispatch_operation", fake_dispatch)
    app = make_app(runtime)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://tether.test") as client:
        yield Graph(runtime, client, endpoint.url.removeprefix("https://tether.example"), secret, dispatched,
                    embedded.start(app))


def with_state(body: dict[str, Any], client_state: str, **changes: Any) -> dict[str, Any]:
    return {**body, "value": [{**item, "clientState": client_state, **changes} for item in body["value"]]}


async def test_the_documented_validation_request_is_echoed_as_plain_text(graph: Graph) -> None:
    response = await graph.client.post(f"{graph.url}?{VALIDATION['query']}", content=VALIDATION["body"],
                                       headers=VALIDATION["headers"])
    expected = VALIDATION["expected"]
    assert response.status_code == expected["status"], response.text
    assert response.headers["content-type"].startswith(expected["content_type"])
    assert response.text == expected["body"]
    assert response.headers["x-content-type-options"] == "nosniff"
    assert graph.deliveries() == []


@pytest.mark.parametrize("query", ["validationToken=", "validationToken=%00", "validationToken=" + "x" * 1100,
                                   "validationToken=a%0Ab", "validationToken=%ED%A0%80"])
async def test_an_unusable_validation_token_is_a_client_error(graph: Graph, query: str) -> None:
    response = await graph.client.post(f"{graph.url}?{query}", content=b"")
    if query.endswith("%ED%A0%80"):
        # A percent-encoded lone surrogate decodes to U+FFFD (printable): echoed as that, never as a surrogate.
        assert (response.status_code, response.text) == (200, "\ufffd\ufffd\ufffd")
    else:
        assert (response.status_code, response.json()["error"]["code"]) == (400, "invalid_handshake")
    assert graph.deliveries() == []


async def test_a_query_string_of_too_many_fields_is_refused(graph: Graph) -> None:
    query = "&".join(f"f{i}=v" for i in range(60))
    response = await graph.client.post(f"{graph.url}?{query}", content=b"{}")
    assert (response.status_code, response.json()["error"]["code"]) == (400, "invalid_query")


async def test_a_notification_with_the_endpoint_secret_dispatches_the_sync(graph: Graph) -> None:
    response = await graph.post(with_state(NOTIFICATION, graph.secret))
    assert response.status_code == 202, response.text
    await graph.worker.drain()
    [row] = graph.deliveries()
    assert (row.status, row.event_type) == (DeliveryStatus.processed, "change_notifications")
    assert graph.dispatched == ["DirectorySync"]


@pytest.mark.parametrize("client_state", ["secretClientValue", "", None])
async def test_a_wrong_client_state_is_refused(graph: Graph, client_state: str | None) -> None:
    body = with_state(NOTIFICATION, "ignored")
    if client_state is None:
        del body["value"][0]["clientState"]
    else:
        body["value"][0]["clientState"] = client_state
    response = await graph.post(body)
    assert (response.status_code, response.json()["error"]["code"]) == (401, "invalid_signature")
    assert graph.secret not in response.text
    assert graph.deliveries() == [] and graph.dispatched == []


async def test_one_wrong_item_refuses_the_whole_batch(graph: Graph) -> None:
    body = with_state(NOTIFICATION, graph.secret)
    body["value"].append({**body["value"][0], "clientState": graph.secret[:-1]})
    response = await graph.post(body)
    assert response.status_code == 401
    assert graph.deliveries() == []


async def test_a_replayed_notification_is_processed_once(graph: Graph) -> None:
    body = with_state(NOTIFICATION, graph.secret)
    first, replay = await graph.post(body), await graph.post(body)
    assert (first.status_code, first.json()["status"]) == (202, "received")
    assert (replay.status_code, replay.json()["status"]) == (200, "duplicate")
    await graph.worker.drain()
    assert len(graph.deliveries()) == 1 and graph.dispatched == ["DirectorySync"]


async def test_a_stale_subscriptions_notification_is_taken_but_not_acted_on(graph: Graph) -> None:
    stale = with_state(NOTIFICATION, graph.secret, subscriptionId="0bd1a4f5-0000-4000-8000-00000000dead")
    response = await graph.post(stale)
    assert response.status_code == 202  # acknowledged, or Graph retries it for hours
    await graph.worker.drain()
    [row] = graph.deliveries()
    assert row.status == DeliveryStatus.processed and graph.dispatched == []


async def lifecycle(graph: Graph, event: str, subscription: str = SUBSCRIPTION) -> WebhookDelivery:
    body = with_state(LIFECYCLE["body"], graph.secret, lifecycleEvent=event, subscriptionId=subscription)
    response = await graph.post(body)
    assert response.status_code == 202, response.text
    await graph.worker.drain()
    [row] = [d for d in graph.deliveries() if event.encode() in d.body]
    assert (row.status, row.event_type) == (DeliveryStatus.processed, "lifecycle_notifications")
    return row


async def test_reauthorization_required_asks_the_scheduler_to_renew(graph: Graph) -> None:
    assert "reauthorizationRequired" in LIFECYCLE["events"]
    assert graph.subscription().renew_requested is False
    await lifecycle(graph, "reauthorizationRequired")
    held = graph.subscription()
    assert (held.status, held.renew_requested, held.provider_id) == ("active", True, SUBSCRIPTION)
    assert graph.dispatched == []


async def test_subscription_removed_is_created_again_and_resynced(graph: Graph) -> None:
    await lifecycle(graph, "subscriptionRemoved")
    held = graph.subscription()
    assert (held.status, held.provider_id) == ("removed", "")
    assert graph.dispatched == ["DirectorySync"]


async def test_missed_notifications_resync(graph: Graph) -> None:
    await lifecycle(graph, "missed")
    assert graph.subscription().status == "active" and graph.dispatched == ["DirectorySync"]


async def test_a_stale_subscriptions_lifecycle_event_changes_nothing(graph: Graph) -> None:
    await lifecycle(graph, "subscriptionRemoved", subscription="0bd1a4f5-0000-4000-8000-00000000dead")
    assert graph.subscription().status == "active" and graph.dispatched == []
