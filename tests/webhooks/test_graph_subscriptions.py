"""Graph subscriptions kept by the engine for Entra's webhook, against a local Graph (``support.graph_server``) on a
real port, with the Tether app on another one so Graph's validation request reaches it as in production: created at
the first connection, renewed by the scheduler before they expire (and when Graph asks), created again when Graph
lost them, adopted rather than doubled after a worker died mid-create or restarted, deleted on disconnect.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

import pytest
from sqlmodel import select

from definitions.azure_entra_id import definition as entra
from definitions.azure_entra_id.connections import EntraAdminConsentConnection
from definitions.azure_entra_id.slots import EntraTenant
from engine.runs.scheduler import Scheduler, SchedulerThread
from engine.runtime import Runtime
from engine.store.database import Database
from engine.store.tables import Integration, IntegrationStatus, WebhookEndpoint, WebhookSubscription, utcnow
from engine.webhooks.endpoints import ensure_endpoints, remove_endpoints
from engine.webhooks.subscriptions import PENDING_LEASE, maintain_subscriptions
from engine.webhooks.targets import endpoint_secret, endpoint_url
from support.graph_server import FakeGraph, fake_graph
from support.server import free_port, serve
from support.webhook_kit import make_app, make_runtime

TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"


@dataclass
class World:
    runtime: Runtime
    graph: FakeGraph
    integration: Integration
    database: Database
    monkeypatch: pytest.MonkeyPatch

    def rows(self) -> list[WebhookSubscription]:
        with self.runtime.db.session() as session:
            return list(session.exec(select(WebhookSubscription).order_by(WebhookSubscription.key)))

    def endpoint(self) -> WebhookEndpoint:
        with self.runtime.db.session() as session:
            return session.exec(select(WebhookEndpoint)).one()

    def restart(self) -> Runtime:
        """A new process's runtime over the same database and keys (a worker restart)."""
        fresh = make_runtime(self.database, self.monkeypatch, entra, public_url=self.runtime.settings.public_url)
        fresh.keys = self.runtime.keys
        return fresh


@pytest.fixture
def world(database: Database, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    monkeypatch.setenv("TETHER_AZURE_ENTRA_ID_CLIENT_ID", "11112222-3333-4444-5555-666677778888")
    monkeypatch.setenv("TETHER_SECRET_AZURE_ENTRA_ID_CLIENT_SECRET", "app-secret")
    monkeypatch.setenv("TETHER_ALLOW_LOOPBACK_PROVIDERS", "1")
    port = free_port()
    runtime = make_runtime(database, monkeypatch, entra, public_url=f"http://127.0.0.1:{port}")
    with fake_graph() as graph, serve(make_app(runtime), port):
        monkeypatch.setattr("definitions.azure_entra_id.client.GRAPH_URL", graph.url)
        monkeypatch.setattr("definitions.azure_entra_id.client.TOKEN_URL", graph.url + "/{tenant}/oauth2/v2.0/token")
        integration = Integration(tenant_id="t1", owner_id="o1", definition_id="azure_entra_id",
                                  status=IntegrationStatus.connected,
                                  provider_data={"connection": EntraAdminConsentConnection.connection_id()})
        with runtime.db.session() as session:
            session.add(integration)
        runtime.keystore.save(integration.id, EntraTenant(tenant_id=TENANT))
        yield World(runtime, graph, integration, database, monkeypatch)


def due_in(world: World, delta: timedelta) -> None:
    with world.runtime.db.session() as session:
        for row in session.exec(select(WebhookSubscription)):
            row.expires_at = utcnow() + delta
            session.add(row)


async def test_the_first_connection_creates_one_validated_subscription_per_resource(world: World) -> None:
    await ensure_endpoints(world.runtime, world.integration)
    graph, endpoint = world.graph, world.endpoint()
    url, secret = endpoint_url(world.runtime, endpoint), endpoint_secret(world.runtime, endpoint)
    held = sorted(graph.subscriptions.values(), key=lambda s: s["resource"])
    assert [s["resource"] for s in held] == ["groups", "users"]
    for subscription in held:
        assert subscription["notificationUrl"] == subscription["lifecycleNotificationUrl"] == url
        assert subscription["clientState"] == secret and subscription["changeType"] == "updated,deleted"
    # Graph validated the URL before answering, and Tether echoed its token as text/plain.
    assert graph.validations and all(status == 200 and kind.startswith("text/plain")
                                     for _, status, kind in graph.validations)
    rows = world.rows()
    assert [(r.key, r.status) for r in rows] == [("groups", "active"), ("users", "active")]
    assert {r.provider_id for r in rows} == set(graph.subscriptions)
    assert all(r.expires_at is not None and r.expires_at > utcnow() + timedelta(days=28) for r in rows)
    # Connecting again (a reconnect, a second setup pass) subscribes nothing new.
    await ensure_endpoints(world.runtime, world.integration)
    assert graph.count("POST") == 2 and len(graph.subscriptions) == 2


async def test_the_scheduler_renews_what_expires_soon_and_what_graph_asked_for(world: World) -> None:
    await ensure_endpoints(world.runtime, world.integration)
    scheduler = Scheduler(world.runtime)
    nothing = await scheduler.subscriptions()
    assert nothing.renewed == [] and world.graph.count("PATCH") == 0  # 29 days left: nothing due
    due_in(world, timedelta(days=1))  # inside renew_before (3 days)
    passed = await scheduler.subscriptions()
    assert len(passed.renewed) == 2 and world.graph.count("PATCH") == 2
    assert all(r.expires_at > utcnow() + timedelta(days=28) for r in world.rows())
    # reauthorizationRequired sets the flag (test_graph_notifications.py); the next pass renews that one only.
    with world.runtime.db.session() as session:
        users = session.exec(select(WebhookSubscription).where(WebhookSubscription.key == "users")).one()
        users.renew_requested = True
        session.add(users)
    passed = await scheduler.subscriptions()
    assert passed.renewed == [users.id] and world.graph.count("PATCH") == 3
    assert not any(r.renew_requested for r in world.rows())
    assert world.graph.count("POST") == 2


async def test_a_subscription_graph_lost_is_created_again(world: World) -> None:
    await ensure_endpoints(world.runtime, world.integration)
    lost = next(s for s in world.graph.subscriptions.values() if s["resource"] == "users")
    del world.graph.subscriptions[lost["id"]]  # expired or removed at Graph's side without a lifecycle event
    due_in(world, timedelta(hours=1))
    await Scheduler(world.runtime).subscriptions()
    users = next(r for r in world.rows() if r.key == "users")
    assert users.status == "active" and users.provider_id != lost["id"]
    assert users.provider_id in world.graph.subscriptions and len(world.graph.subscriptions) == 2


async def test_a_removed_subscription_is_created_again_by_the_next_pass(world: World) -> None:
    await ensure_endpoints(world.runtime, world.integration)
    with world.runtime.db.session() as session:
        users = session.exec(select(WebhookSubscription).where(WebhookSubscription.key == "users")).one()
        gone = users.provider_id
        users.status, users.provider_id = "removed", ""  # what a subscriptionRemoved lifecycle event leaves
        session.add(users)
    world.graph.subscriptions.pop(gone)
    passed = await maintain_subscriptions(world.runtime)
    assert len(passed.created) == 1 and len(world.graph.subscriptions) == 2
    assert {r.provider_id for r in world.rows()} == set(world.graph.subscriptions)


async def test_a_worker_that_died_mid_create_and_a_restart_leave_no_double_subscription(world: World) -> None:
    await ensure_endpoints(world.runtime, world.integration)
    # The worker died after Graph created the users subscription and before it wrote the answer down: the row is
    # still pending (an old claim), the subscription exists at Graph.
    with world.runtime.db.session() as session:
        users = session.exec(select(WebhookSubscription).where(WebhookSubscription.key == "users")).one()
        held_at_graph = users.provider_id
        users.status, users.provider_id = "pending", ""
        users.updated_at = utcnow() - PENDING_LEASE - timedelta(seconds=1)
        session.add(users)
    restarted = world.restart()
    passed = await Scheduler(restarted).subscriptions()
    assert len(passed.created) == 1
    assert len(world.graph.subscriptions) == 2 and world.graph.count("POST") == 2  # adopted, not created again
    users = next(r for r in world.rows() if r.key == "users")
    assert (users.status, users.provider_id) == ("active", held_at_graph)
    # Another restart and pass: still nothing new.
    await Scheduler(world.restart()).subscriptions()
    assert world.graph.count("POST") == 2 and len(world.rows()) == 2


async def test_a_fresh_pending_claim_is_left_to_its_worker(world: World) -> None:
    await ensure_endpoints(world.runtime, world.integration)
    with world.runtime.db.session() as session:
        users = session.exec(select(WebhookSubscription).where(WebhookSubscription.key == "users")).one()
        users.status, users.updated_at = "pending", utcnow()  # another worker is creating it right now
        session.add(users)
    calls = len(world.graph.calls)
    passed = await Scheduler(world.restart()).subscriptions()
    assert passed.created == [] and len(world.graph.calls) == calls  # Graph not called at all


async def test_disconnect_deletes_the_subscriptions(world: World) -> None:
    await ensure_endpoints(world.runtime, world.integration)
    ids = set(world.graph.subscriptions)
    await remove_endpoints(world.runtime, world.integration)
    assert world.graph.subscriptions == {} and {ref for m, ref in world.graph.calls if m == "DELETE"} == ids
    assert world.rows() == []


def test_the_scheduler_thread_drives_renewal(world: World) -> None:
    import asyncio

    asyncio.run(ensure_endpoints(world.runtime, world.integration))
    due_in(world, timedelta(minutes=30))
    thread = SchedulerThread(world.runtime, interval=0.05)
    thread.start()
    try:
        deadline = time.monotonic() + 30  # a bound on waiting, not a timing assertion
        while world.graph.count("PATCH") < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        thread.stop()
        thread.join(timeout=10)
    assert world.graph.count("PATCH") >= 2
    assert all(r.expires_at > utcnow() + timedelta(days=28) for r in world.rows())
    assert world.graph.count("POST") == 2
