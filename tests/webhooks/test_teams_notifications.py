"""Teams channel message notifications over HTTP, with the real Teams definition, in Graph's documented shapes (the
published examples under ``tests/fixtures/microsoft_teams/published/``, the validation request and lifecycle events
of ``tests/fixtures/azure_entra_id/``): the validation request, a wrong ``clientState``, a replayed notification, a
stale subscription's notification, a resource that is no channel message, and the three lifecycle events.

The verifier, handshake and lifecycle handling are Entra's (``definitions.microsoft_graph_notifications``); what is
Teams' own is that a change names a message, which the handler hands to ``FetchChangedMessages`` to read by its
resource (``test_teams_subscriptions.py`` runs that read against a local Graph).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlmodel import select

from definitions.microsoft_teams import definition as teams
from engine.runtime import Runtime
from engine.store.database import Database
from engine.store.tables import (
    DeliveryStatus,
    Integration,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookSubscription,
    new_id,
    utcnow,
)
from support.embedded import EmbeddedWorker
from support.webhook_kit import ConnectedEndpoint, connected_endpoint

FIXTURES = Path(__file__).parents[1] / "fixtures"
NOTIFICATION = json.loads(
    (FIXTURES / "microsoft_teams" / "published" / "notification_channel_message.json").read_text()
)["body"]
REPLY = json.loads((FIXTURES / "microsoft_teams" / "published" / "notification_reply.json").read_text())["body"]
LIFECYCLE = json.loads((FIXTURES / "azure_entra_id" / "lifecycle_notifications.json").read_text())
VALIDATION = json.loads((FIXTURES / "azure_entra_id" / "validation_request.json").read_text())
SUBSCRIPTION = NOTIFICATION["value"][0]["subscriptionId"]
TEAM = "fbe2bf47-16c8-47cf-b4a5-4b9b187c508b"
CHANNEL = "19:4a95f7d8db4c4e7fae857bcebe0623e6@thread.tacv2"
STALE = "0bd1a4f5-0000-4000-8000-00000000dead"


class Teams(ConnectedEndpoint):
    configs: list[tuple[str, dict[str, Any]]]

    def subscription(self) -> WebhookSubscription:
        with self.runtime.db.session() as session:
            return session.exec(select(WebhookSubscription)).one()

    async def post(self, body: dict[str, Any]) -> httpx.Response:
        return await self.client.post(
            self.url, content=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
        )


def channel_subscription_held(runtime: Runtime, integration: Integration) -> None:
    """No credential here, so the channels could not be listed and nothing was subscribed
    (test_teams_subscriptions.py subscribes against a local Graph); the channel's row is set to what it would be."""
    with runtime.db.session() as session:
        assert session.exec(select(WebhookSubscription)).all() == []
        endpoint = session.exec(select(WebhookEndpoint)).one()
        session.add(
            WebhookSubscription(
                id=new_id(),
                endpoint_id=endpoint.id,
                integration_id=integration.id,
                key=f"/teams/{TEAM}/channels/{CHANNEL}/messages",
                provider_id=SUBSCRIPTION,
                status="active",
                expires_at=utcnow() + timedelta(minutes=55),
                fence=2,
            )
        )


@pytest.fixture
async def graph(database: Database, monkeypatch: pytest.MonkeyPatch, embedded: EmbeddedWorker) -> AsyncIterator[Teams]:
    monkeypatch.setenv("TETHER_MICROSOFT_TEAMS_CLIENT_ID", "tether-app")
    monkeypatch.setenv("TETHER_SECRET_MICROSOFT_TEAMS_CLIENT_SECRET", "tether-app-secret")
    async for found in connected_endpoint(database, monkeypatch, embedded, teams, channel_subscription_held):
        endpoint = Teams(**vars(found))
        endpoint.configs = []

        async def capture(
            rt: Runtime, integration_id: str, operation_id: str, config: dict[str, Any], into: Teams = endpoint
        ) -> str:
            into.dispatched.append(operation_id)
            into.configs.append((operation_id, config))
            return "run-1"

        # Replaces connected_endpoint's stand-in: these tests check what the handler hands over, configs included.
        monkeypatch.setattr("engine.webhooks.deliveries.dispatch_operation", capture)
        yield endpoint


def with_state(body: dict[str, Any], client_state: str, **changes: Any) -> dict[str, Any]:
    return {**body, "value": [{**item, "clientState": client_state, **changes} for item in body["value"]]}


async def test_the_documented_validation_request_is_echoed_as_plain_text(graph: Teams) -> None:
    response = await graph.client.post(
        f"{graph.url}?{VALIDATION['query']}", content=VALIDATION["body"], headers=VALIDATION["headers"]
    )
    expected = VALIDATION["expected"]
    assert response.status_code == expected["status"], response.text
    assert response.headers["content-type"].startswith(expected["content_type"])
    assert response.text == expected["body"]
    assert graph.deliveries() == []


async def test_the_published_notification_hands_its_message_to_the_fetch(graph: Teams) -> None:
    response = await graph.post(with_state(NOTIFICATION, graph.secret))
    assert response.status_code == 202, response.text
    await graph.worker.drain()
    [row] = graph.deliveries()
    assert (row.status, row.event_type) == (DeliveryStatus.processed, "change_notifications")
    assert graph.configs == [
        (
            "FetchChangedMessages",
            {
                "messages": [
                    {
                        "team_id": TEAM,
                        "channel_id": CHANNEL,
                        "message_id": "1612293113399",
                        "reply_id": None,
                        "change_type": "created",
                    }
                ]
            },
        )
    ]


async def test_a_batch_names_each_message_once_with_its_last_change(graph: Teams) -> None:
    [item] = NOTIFICATION["value"]
    reply = {
        **REPLY["value"][0],
        "subscriptionId": SUBSCRIPTION,
        "resource": f"teams('{TEAM}')/channels('{CHANNEL}')/messages('1612293113399')/replies('1612293200000')",
    }
    body = {"value": [item, {**item, "changeType": "updated"}, reply, {**item, "changeType": "deleted"}]}
    response = await graph.post(with_state(body, graph.secret))
    assert response.status_code == 202, response.text
    await graph.worker.drain()
    [(operation, config)] = graph.configs
    assert operation == "FetchChangedMessages"
    assert [(m["message_id"], m["reply_id"], m["change_type"]) for m in config["messages"]] == [
        ("1612293113399", "1612293200000", "created"),
        ("1612293113399", None, "deleted"),
    ]


@pytest.mark.parametrize("client_state", ["<<--SpecifiedClientState-->>", "", None])
async def test_a_wrong_client_state_is_refused(graph: Teams, client_state: str | None) -> None:
    body = with_state(NOTIFICATION, "ignored")
    if client_state is None:
        del body["value"][0]["clientState"]
    else:
        body["value"][0]["clientState"] = client_state
    response = await graph.post(body)
    assert (response.status_code, response.json()["error"]["code"]) == (401, "invalid_signature")
    assert graph.secret not in response.text
    assert graph.deliveries() == [] and graph.dispatched == []


async def test_a_replayed_notification_is_processed_once(graph: Teams) -> None:
    body = with_state(NOTIFICATION, graph.secret)
    first, replay = await graph.post(body), await graph.post(body)
    assert (first.status_code, first.json()["status"]) == (202, "received")
    assert (replay.status_code, replay.json()["status"]) == (200, "duplicate")
    await graph.worker.drain()
    assert len(graph.deliveries()) == 1 and graph.dispatched == ["FetchChangedMessages"]


async def test_a_stale_subscriptions_notification_is_taken_but_not_acted_on(graph: Teams) -> None:
    response = await graph.post(with_state(NOTIFICATION, graph.secret, subscriptionId=STALE))
    assert response.status_code == 202  # acknowledged, or Graph retries it for hours
    await graph.worker.drain()
    [row] = graph.deliveries()
    assert row.status == DeliveryStatus.processed and graph.dispatched == []


@pytest.mark.parametrize(
    "resource",
    [
        "chats('19:8ea0e38b-efb3-4757-924a-5f94061cf8c2_97f62344@unq.gbl.spaces')/messages('1612289765949')",
        f"teams('{TEAM}')/channels('{CHANNEL}')/messages('1612293113399')/../../members",
        f"teams('{TEAM}')/channels('{CHANNEL}')/messages('16122931133991612293113399')",
        f"teams('{TEAM}')/channels('19:x/y@thread.tacv2')/messages('1612293113399')",
    ],
)
async def test_a_resource_that_is_no_channel_message_is_not_fetched(graph: Teams, resource: str) -> None:
    response = await graph.post(with_state(NOTIFICATION, graph.secret, resource=resource))
    assert response.status_code == 202
    await graph.worker.drain()
    [row] = graph.deliveries()
    assert row.status == DeliveryStatus.processed and graph.dispatched == []


async def lifecycle(graph: Teams, event: str, subscription: str = SUBSCRIPTION) -> WebhookDelivery:
    body = with_state(LIFECYCLE["body"], graph.secret, lifecycleEvent=event, subscriptionId=subscription)
    response = await graph.post(body)
    assert response.status_code == 202, response.text
    await graph.worker.drain()
    [row] = [d for d in graph.deliveries() if event.encode() in d.body]
    assert (row.status, row.event_type) == (DeliveryStatus.processed, "lifecycle_notifications")
    return row


async def test_reauthorization_required_asks_the_scheduler_to_renew(graph: Teams) -> None:
    await lifecycle(graph, "reauthorizationRequired")
    held = graph.subscription()
    assert (held.status, held.renew_requested, held.provider_id) == ("active", True, SUBSCRIPTION)
    assert graph.dispatched == []


async def test_subscription_removed_is_created_again_and_resynced(graph: Teams) -> None:
    await lifecycle(graph, "subscriptionRemoved")
    held = graph.subscription()
    assert (held.status, held.provider_id) == ("removed", "")
    assert graph.dispatched == ["ChannelMessagesSync"]


async def test_missed_notifications_resync(graph: Teams) -> None:
    await lifecycle(graph, "missed")
    assert graph.subscription().status == "active" and graph.dispatched == ["ChannelMessagesSync"]


async def test_a_stale_subscriptions_lifecycle_event_changes_nothing(graph: Teams) -> None:
    await lifecycle(graph, "subscriptionRemoved", subscription=STALE)
    assert graph.subscription().status == "active" and graph.dispatched == []
