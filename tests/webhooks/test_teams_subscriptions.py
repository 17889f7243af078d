"""Graph subscriptions kept by the engine for Teams' channel messages, against the local Graph
(``support.graph_server``) on a real port with the Tether app on another, as ``test_graph_subscriptions.py`` does for
Entra: one subscription per channel the user is in (listed from Graph), created at the first connection and
validated by Graph, renewed by the scheduler within Graph's one-hour limit, following the channels the user joins and
leaves, adopted rather than doubled after a worker died or restarted, deleted on disconnect; and a notification for
a subscribed channel, delivered over HTTP, lands the message it names in ``message``.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import select as sa_select
from sqlmodel import select

from definitions.microsoft_teams import definition as teams
from definitions.microsoft_teams.connections import TeamsOAuthConnection
from definitions.microsoft_teams.slots import TeamsOAuthToken
from engine.runs.scheduler import Scheduler, SchedulerThread
from engine.runtime import Runtime
from engine.store.database import Database
from engine.store.tables import (
    Integration,
    IntegrationStatus,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookSubscription,
    utcnow,
)
from engine.webhooks.deliveries import process_delivery
from engine.webhooks.endpoints import ensure_endpoints, remove_endpoints
from engine.webhooks.subscriptions import PENDING_LEASE
from engine.webhooks.targets import endpoint_secret, endpoint_url
from ingest.changes import table_of
from support.graph_server import APP_TOKEN, FakeGraph, fake_graph
from support.server import free_port, serve
from support.webhook_kit import make_app, make_runtime

TEAM = "fbe2bf47-16c8-47cf-b4a5-4b9b187c508b"
GENERAL = "19:4a95f7d8db4c4e7fae857bcebe0623e6@thread.tacv2"
RANDOM = "19:8d9da062ec7647d4bb1976126e788b47@thread.tacv2"
OTHER_TEAM = "172b0cce-e65d-44ce-9a49-91d9f2e8493a"
OTHER = "19:f127a8c55ad949d1a238464d22f0f99e@thread.skype"
PUBLISHED = Path(__file__).parents[1] / "fixtures" / "microsoft_teams" / "published"


def resource(team: str, channel: str) -> str:
    return f"/teams/{team}/channels/{channel}/messages"


@dataclass
class World:
    runtime: Runtime
    graph: FakeGraph
    integration: Integration
    database: Database
    monkeypatch: pytest.MonkeyPatch
    port: int

    def rows(self) -> list[WebhookSubscription]:
        with self.runtime.db.session() as session:
            return list(session.exec(select(WebhookSubscription).order_by(WebhookSubscription.key)))

    def endpoint(self) -> WebhookEndpoint:
        with self.runtime.db.session() as session:
            return session.exec(select(WebhookEndpoint)).one()

    def held(self) -> list[str]:
        return sorted(s["resource"] for s in self.graph.subscriptions.values())

    def restart(self) -> Runtime:
        """A new process's runtime over the same database and keys (a worker restart)."""
        fresh = make_runtime(self.database, self.monkeypatch, teams, public_url=self.runtime.settings.public_url)
        fresh.keys = self.runtime.keys
        return fresh


@pytest.fixture
def world(database: Database, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    monkeypatch.setenv("TETHER_MICROSOFT_TEAMS_CLIENT_ID", "11112222-3333-4444-5555-666677778888")
    monkeypatch.setenv("TETHER_SECRET_MICROSOFT_TEAMS_CLIENT_SECRET", "app-secret")
    monkeypatch.setenv("TETHER_ALLOW_LOOPBACK_PROVIDERS", "1")
    port = free_port()
    runtime = make_runtime(database, monkeypatch, teams, public_url=f"http://127.0.0.1:{port}")
    with fake_graph() as graph, serve(make_app(runtime), port):
        graph.channels = {TEAM: [GENERAL, RANDOM]}
        monkeypatch.setattr("definitions.microsoft_teams.client.GRAPH_URL", graph.url)
        integration = Integration(
            tenant_id="t1",
            owner_id="o1",
            definition_id="microsoft_teams",
            status=IntegrationStatus.connected,
            provider_data={"connection": TeamsOAuthConnection.connection_id()},
        )
        with runtime.db.session() as session:
            session.add(integration)
        # The signed-in user's delegated token (the local Graph accepts this one); no expiry: never refreshed here.
        runtime.keystore.save(
            integration.id, TeamsOAuthToken(access_token=SecretStr(APP_TOKEN), refresh_token=SecretStr("refresh"))
        )
        yield World(runtime, graph, integration, database, monkeypatch, port)


def due_in(world: World, delta: timedelta) -> None:
    with world.runtime.db.session() as session:
        for row in session.exec(select(WebhookSubscription)):
            row.expires_at = utcnow() + delta
            session.add(row)


async def test_the_first_connection_subscribes_to_each_channel_without_resource_data(world: World) -> None:
    await ensure_endpoints(world.runtime, world.integration)
    graph, endpoint = world.graph, world.endpoint()
    url, secret = endpoint_url(world.runtime, endpoint), endpoint_secret(world.runtime, endpoint)
    assert world.held() == sorted([resource(TEAM, GENERAL), resource(TEAM, RANDOM)])
    for subscription in graph.subscriptions.values():
        assert subscription["notificationUrl"] == subscription["lifecycleNotificationUrl"] == url
        assert subscription["clientState"] == secret
        assert subscription["changeType"] == "created,updated,deleted"
        assert "includeResourceData" not in subscription  # no encryption certificate: notifications carry IDs
    assert graph.validations and all(
        status == 200 and kind.startswith("text/plain") for _, status, kind in graph.validations
    )
    rows = world.rows()
    assert [(r.key, r.status) for r in rows] == [
        (resource(TEAM, GENERAL), "active"),
        (resource(TEAM, RANDOM), "active"),
    ]
    assert {r.provider_id for r in rows} == set(graph.subscriptions)
    # Within Graph's one-hour maximum for chatMessage subscriptions.
    assert all(
        r.expires_at is not None and utcnow() + timedelta(minutes=50) < r.expires_at <= utcnow() + timedelta(minutes=60)
        for r in rows
    )
    await ensure_endpoints(world.runtime, world.integration)  # a reconnect subscribes nothing new
    assert graph.count("POST") == 2 and len(graph.subscriptions) == 2


async def test_the_scheduler_renews_within_the_hour_and_when_graph_asks(world: World) -> None:
    await ensure_endpoints(world.runtime, world.integration)
    scheduler = Scheduler(world.runtime)
    nothing = await scheduler.subscriptions()
    assert nothing.renewed == [] and world.graph.count("PATCH") == 0  # 55 minutes left: nothing due
    due_in(world, timedelta(minutes=10))  # inside renew_before (20 minutes)
    passed = await scheduler.subscriptions()
    assert len(passed.renewed) == 2 and world.graph.count("PATCH") == 2
    assert all(r.expires_at > utcnow() + timedelta(minutes=50) for r in world.rows())
    general = world.rows()[0]
    with world.runtime.db.session() as session:
        row = session.get_one(WebhookSubscription, general.id)
        row.renew_requested = True  # what a reauthorizationRequired leaves (test_teams_notifications.py)
        session.add(row)
    passed = await scheduler.subscriptions()
    assert passed.renewed == [general.id] and world.graph.count("PATCH") == 3
    assert world.graph.count("POST") == 2


async def test_channels_joined_and_left_are_followed_at_the_next_listing(world: World) -> None:
    await ensure_endpoints(world.runtime, world.integration)
    random_id = next(r.provider_id for r in world.rows() if r.key == resource(TEAM, RANDOM))
    world.graph.channels = {TEAM: [GENERAL], OTHER_TEAM: [OTHER]}  # RANDOM deleted; a team joined
    # Within the hour the channels are not listed again: nothing changes.
    await Scheduler(world.runtime).subscriptions()
    assert world.held() == sorted([resource(TEAM, GENERAL), resource(TEAM, RANDOM)])
    # A restarted process lists at its first pass (so does this one once list_keys_every has passed).
    passed = await Scheduler(world.restart()).subscriptions()
    assert len(passed.created) == 1
    assert world.held() == sorted([resource(TEAM, GENERAL), resource(OTHER_TEAM, OTHER)])
    assert ("DELETE", random_id) in world.graph.calls
    assert [r.key for r in world.rows()] == sorted([resource(TEAM, GENERAL), resource(OTHER_TEAM, OTHER)])
    assert world.graph.count("POST") == 3


async def test_a_worker_that_died_mid_create_and_restarts_leave_no_double_subscription(world: World) -> None:
    await ensure_endpoints(world.runtime, world.integration)
    with world.runtime.db.session() as session:
        general = session.exec(
            select(WebhookSubscription).where(WebhookSubscription.key == resource(TEAM, GENERAL))
        ).one()
        held_at_graph = general.provider_id
        general.status, general.provider_id = "pending", ""  # Graph created it; the answer was never written down
        general.updated_at = utcnow() - PENDING_LEASE - timedelta(seconds=1)
        session.add(general)
    passed = await Scheduler(world.restart()).subscriptions()
    assert len(passed.created) == 1
    assert len(world.graph.subscriptions) == 2 and world.graph.count("POST") == 2  # adopted, not created again
    general = next(r for r in world.rows() if r.key == resource(TEAM, GENERAL))
    assert (general.status, general.provider_id) == ("active", held_at_graph)
    for _ in range(2):
        await Scheduler(world.restart()).subscriptions()
    assert world.graph.count("POST") == 2 and len(world.rows()) == 2 and len(world.graph.subscriptions) == 2


async def test_a_subscription_graph_lost_is_created_again(world: World) -> None:
    await ensure_endpoints(world.runtime, world.integration)
    lost = next(s for s in world.graph.subscriptions.values() if s["resource"] == resource(TEAM, GENERAL))
    del world.graph.subscriptions[lost["id"]]  # expired at Graph's side (an hour passed with no renewal)
    due_in(world, timedelta(minutes=5))
    await Scheduler(world.runtime).subscriptions()
    general = next(r for r in world.rows() if r.key == resource(TEAM, GENERAL))
    assert general.status == "active" and general.provider_id != lost["id"]
    assert general.provider_id in world.graph.subscriptions and len(world.graph.subscriptions) == 2


async def test_a_refused_channel_listing_is_recorded_and_tried_again(world: World) -> None:
    world.runtime.keystore.save(
        world.integration.id, TeamsOAuthToken(access_token=SecretStr("revoked"), refresh_token=SecretStr("refresh"))
    )
    await ensure_endpoints(world.runtime, world.integration)  # Graph answers 401: no keys, nothing created
    assert world.rows() == [] and world.graph.subscriptions == {}
    calls = world.graph.count("GET")
    await Scheduler(world.runtime).subscriptions()  # within RETRY_LISTING: not asked again
    assert world.graph.count("GET") == calls
    world.runtime.keystore.save(
        world.integration.id, TeamsOAuthToken(access_token=SecretStr(APP_TOKEN), refresh_token=SecretStr("refresh"))
    )
    await Scheduler(world.restart()).subscriptions()
    assert len(world.graph.subscriptions) == 2


async def test_disconnect_deletes_every_channel_subscription(world: World) -> None:
    await ensure_endpoints(world.runtime, world.integration)
    ids = set(world.graph.subscriptions)
    await remove_endpoints(world.runtime, world.integration)
    assert world.graph.subscriptions == {} and {ref for m, ref in world.graph.calls if m == "DELETE"} == ids
    assert world.rows() == []


def test_the_scheduler_thread_creates_and_renews(world: World) -> None:
    asyncio.run(ensure_endpoints(world.runtime, world.integration))
    due_in(world, timedelta(minutes=5))
    world.graph.channels[OTHER_TEAM] = [OTHER]
    thread = SchedulerThread(world.restart(), interval=0.05)  # a restarted scheduler: it lists the channels again
    thread.start()
    try:
        deadline = time.monotonic() + 30  # a bound on waiting, not a timing assertion
        while (world.graph.count("PATCH") < 2 or len(world.graph.subscriptions) < 3) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        thread.stop()
        thread.join(timeout=10)
    assert world.graph.count("PATCH") >= 2 and world.graph.count("POST") == 3
    assert len(world.graph.subscriptions) == 3 and len(world.rows()) == 3
    assert all(r.expires_at > utcnow() + timedelta(minutes=50) for r in world.rows())


def published(name: str) -> dict[str, Any]:
    return json.loads((PUBLISHED / f"{name}.json").read_text())["body"]


async def test_a_notification_over_http_lands_the_message_it_names(world: World) -> None:
    await ensure_endpoints(world.runtime, world.integration)
    general = next(r for r in world.rows() if r.key == resource(TEAM, GENERAL))
    message = published("channel_messages")["value"][0]  # a published chatMessage of this channel
    world.graph.messages[f"{TEAM}/{GENERAL}/{message['id']}"] = message
    [item] = published("notification_channel_message")["value"]
    target = f"teams('{TEAM}')/channels('{GENERAL}')/messages('{message['id']}')"
    notification = {
        **item,
        "subscriptionId": general.provider_id,
        "resource": target,
        "clientState": endpoint_secret(world.runtime, world.endpoint()),
        "resourceData": {**item["resourceData"], "id": message["id"], "@odata.id": target},
    }
    async with httpx.AsyncClient(timeout=10) as client:
        answer = await client.post(endpoint_url(world.runtime, world.endpoint()), json={"value": [notification]})
    assert answer.status_code == 202, answer.text
    with world.runtime.db.session() as session:
        [delivery] = session.exec(select(WebhookDelivery)).all()
    dispatched: list[tuple[str, dict[str, Any]]] = []

    async def capture(rt: Any, integration_id: str, operation_id: str, config: dict[str, Any]) -> str:
        dispatched.append((operation_id, config))
        return "run-1"

    # The worker's part: the handler names the message; the run then goes through the one execution path.
    await process_delivery(world.runtime, delivery.id, dispatcher=capture)
    [(operation, config)] = dispatched
    assert (operation, config) == (
        "FetchChangedMessages",
        {
            "messages": [
                {
                    "team_id": TEAM,
                    "channel_id": GENERAL,
                    "message_id": message["id"],
                    "reply_id": None,
                    "change_type": "created",
                }
            ]
        },
    )
    done = await world.runtime.executor.run_inline(world.integration.id, operation, trigger="webhook", config=config)
    assert done.run.status == "succeeded", done.run
    assert ("GET", f"{TEAM}/{GENERAL}/{message['id']}") in world.graph.calls
    table = table_of("message")
    with world.runtime.db.engine.connect() as connection:
        [row] = connection.execute(sa_select(table).where(table.c.integration_id == world.integration.id)).mappings()
    assert (row["external_id"], row["channel_id"], row["team_id"], row["kind"]) == (
        f"{GENERAL}/{message['id']}",
        GENERAL,
        TEAM,
        "chat",
    )
    assert "body" not in dict(row)  # the message model stores no bodies
