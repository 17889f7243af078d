"""Microsoft Graph change and lifecycle notifications over HTTP, with the real Entra definition, in Graph's documented
shapes (fixtures name their source): the validation request, a wrong ``clientState``, a replayed notification, a
stale subscription's notification, and the three lifecycle events.

``GraphClientState`` is the definition's own ``Verifier`` (a secret inside the body, which no engine scheme reads):
before verifiers were pluggable it registered and every delivery was then refused with 401.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlmodel import select

from definitions.azure_entra_id import definition as entra
from engine.runtime import Runtime
from engine.store.database import Database
from engine.store.tables import DeliveryStatus, Integration, WebhookDelivery, WebhookSubscription
from support.embedded import EmbeddedWorker
from support.webhook_kit import ConnectedEndpoint, connected_endpoint

FIXTURES = Path(__file__).parents[1] / "fixtures" / "azure_entra_id"
NOTIFICATION = json.loads((FIXTURES / "notification_users.json").read_text())["body"]
LIFECYCLE = json.loads((FIXTURES / "lifecycle_notifications.json").read_text())
VALIDATION = json.loads((FIXTURES / "validation_request.json").read_text())
SUBSCRIPTION = NOTIFICATION["value"][0]["subscriptionId"]


class Graph(ConnectedEndpoint):
    def subscription(self, key: str = "users") -> WebhookSubscription:
        with self.runtime.db.session() as session:
            return session.exec(select(WebhookSubscription).where(WebhookSubscription.key == key)).one()

    async def post(self, body: dict[str, Any]) -> httpx.Response:
        return await self.client.post(self.url, content=json.dumps(body).encode(),
                                      headers={"Content-Type": "application/json"})


def users_subscription_held(runtime: Runtime, integration: Integration) -> None:
    """No credential here, so creating the subscriptions failed and was recorded (test_graph_subscriptions.py
    creates them against a local Graph); the users one is set to what Graph would have answered."""
    with runtime.db.session() as session:
        row = session.exec(select(WebhookSubscription).where(WebhookSubscription.key == "users")).one()
        assert row.status == "failed"
        row.status, row.provider_id = "active", SUBSCRIPTION
        session.add(row)


@pytest.fixture
async def graph(database: Database, monkeypatch: pytest.MonkeyPatch, embedded: EmbeddedWorker) -> AsyncIterator[Graph]:
    monkeypatch.setenv("TETHER_AZURE_ENTRA_ID_CLIENT_ID", "tether-app")
    monkeypatch.setenv("TETHER_SECRET_AZURE_ENTRA_ID_CLIENT_SECRET", "tether-app-secret")
    async for found in connected_endpoint(database, monkeypatch, embedded, entra, users_subscription_held):
        yield Graph(**vars(found))


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
