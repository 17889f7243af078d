"""App-wide (static) webhooks: a delivery matching several integrations is recorded and processed for each; one
matching none is kept on the unrouted list, counted, and visible at ``GET /v1/unrouted-deliveries``."""

from __future__ import annotations

from typing import Any

import httpx
from sqlmodel import select

from engine.api import create_app
from engine.api.principal import create_api_key
from engine.store.tables import DeliveryStatus, UnroutedDelivery, WebhookDelivery
from engine.webhooks.endpoints import ensure_endpoints
from support import webhook_definition as hooks
from support.embedded import EmbeddedWorker
from support.webhook_kit import Setup, add_integration, event_body, sign

URL = "/v1/webhooks/static/hooks/app"


def deliveries(setup: Setup) -> list[WebhookDelivery]:
    with setup.runtime.db.session() as session:
        return list(session.exec(select(WebhookDelivery).order_by(WebhookDelivery.integration_id)))


def unrouted(setup: Setup) -> list[UnroutedDelivery]:
    with setup.runtime.db.session() as session:
        return list(session.exec(select(UnroutedDelivery)))


async def test_a_delivery_matching_several_integrations_is_processed_for_each(
    setup: Setup, app_for: Any, embedded: EmbeddedWorker
) -> None:
    # A second tenant connected the same installation (installation 42, like the fixture's integration).
    other = add_integration(setup.runtime, tenant="t2", owner="o2", installation="42")
    await ensure_endpoints(setup.runtime, other)
    add_integration(setup.runtime, tenant="t3", owner="o3", installation="43")  # not a match
    app, client = app_for(setup.runtime)
    embedded.start(app)
    body = event_body("github", "item.changed", "fan-1")
    response = await client.post(URL, content=body, headers=sign("app", body, setup.secret("app"), delivery="fan-1"))
    assert (response.status_code, response.json()["status"]) == (202, "received")
    replay = await client.post(URL, content=body, headers=sign("app", body, setup.secret("app"), delivery="fan-1"))
    assert (replay.status_code, replay.json()["status"]) == (200, "duplicate")
    await embedded.drain()
    rows = deliveries(setup)
    assert sorted(r.integration_id for r in rows) == sorted([setup.integration.id, other.id])
    assert all(r.status == DeliveryStatus.processed and r.delivery_id == "fan-1" for r in rows)
    # The handler ran once per integration, never twice for one.
    assert [seen for seen in hooks.SEEN if seen[1] == "fan-1"] == [("AppItemChanged", "fan-1")] * 2
    assert unrouted(setup) == []


async def test_a_delivery_matching_none_is_kept_counted_and_listed(
    setup: Setup, app_for: Any, embedded: EmbeddedWorker
) -> None:
    _, client = app_for(setup.runtime)
    secret = setup.secret("app")
    stranger = event_body("github", "item.changed", "u-1").replace(b'"id": 42', b'"id": 7')
    unroutable = b'{"type": "item.changed"}'  # route() finds no installation at all
    for body, delivery in ((stranger, "u-1"), (stranger, "u-2"), (unroutable, "u-3")):
        response = await client.post(URL, content=body, headers=sign("app", body, secret, delivery=delivery))
        assert (response.status_code, response.json()["status"]) == (202, "unrouted")
    bad = await client.post(URL, content=stranger, headers=sign("app", stranger, "wrong", delivery="u-4"))
    assert bad.status_code == 401  # never verified: not kept
    kept = unrouted(setup)
    assert sorted(r.reason for r in kept) == ["no_integration", "no_integration", "no_route"]
    assert {r.body for r in kept} == {stranger, unroutable}
    assert all("x-hub-signature-256" in r.headers and "authorization" not in r.headers for r in kept)
    assert deliveries(setup) == []

    api = create_app(setup.runtime)
    server_key, _ = create_api_key(setup.runtime.db, tenant="t1", role="server")
    user_key, _ = create_api_key(setup.runtime.db, tenant="t1", role="user", owner="o1")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=api), base_url="http://tether.test") as http:
        listing = await http.get("/v1/unrouted-deliveries", headers={"Authorization": f"Bearer {server_key}"})
        assert listing.status_code == 200, listing.text
        page = listing.json()
        assert (page["total"], page["counts"]) == (3, {"hooks": 3})
        assert {d["reason"] for d in page["deliveries"]} == {"no_integration", "no_route"}
        assert all("body" not in d and "headers" not in d for d in page["deliveries"])
        limited = await http.get("/v1/unrouted-deliveries?limit=1&definition_id=hooks",
                                 headers={"Authorization": f"Bearer {server_key}"})
        assert len(limited.json()["deliveries"]) == 1 and limited.json()["total"] == 3
        other = await http.get("/v1/unrouted-deliveries?definition_id=slack",
                               headers={"Authorization": f"Bearer {server_key}"})
        assert other.json()["deliveries"] == []
        refused = await http.get("/v1/unrouted-deliveries", headers={"Authorization": f"Bearer {user_key}"})
        assert refused.status_code == 403
        anonymous = await http.get("/v1/unrouted-deliveries")
        assert anonymous.status_code == 401
