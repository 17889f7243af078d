"""The event endpoints API and the delivery log (issue 19): server principals only, tenant-scoped, the secret shown
once and sealed at rest, rotation with overlap, bad bodies refused with stable codes, keyset pagination.

Real app over a real database (SQLite and PostgreSQL), through httpx's ASGI transport.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from sqlmodel import select

from engine.api import create_app
from engine.api.principal import create_api_key, sign_principal
from engine.events.endpoints import signing_secrets
from engine.events.outbox import NewEvent, emit
from engine.runtime import Runtime
from engine.store.database import Database
from engine.store.tables import EventDelivery, EventDeliveryStatus, EventEndpoint
from support.sample_runtime import start_sample_runtime

PRINCIPAL_SECRET = "principal-signing-secret-for-event-tests"
URL = "https://hooks.example.com/tether"


class World:
    def __init__(self, runtime: Runtime, client: httpx.AsyncClient) -> None:
        self.runtime = runtime
        self.client = client
        self.server = {"Authorization": f"Bearer {create_api_key(runtime.db, tenant='t1', role='server')[0]}"}
        self.other = {"Authorization": f"Bearer {create_api_key(runtime.db, tenant='t2', role='server')[0]}"}
        self.user = {"X-Tether-Principal": sign_principal(PRINCIPAL_SECRET, tenant="t1", role="user", owner="u1")}

    async def create(self, **body: object) -> dict[str, object]:
        answer = await self.client.post(
            "/v1/event-endpoints", json={"url": URL, "event_types": ["run.failed"], **body}, headers=self.server
        )
        assert answer.status_code == 201, answer.text
        return answer.json()


@pytest.fixture
async def world(database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[World]:
    runtime = start_sample_runtime(monkeypatch, database.url, str(tmp_path), secret_principal_key=PRINCIPAL_SECRET)
    transport = httpx.ASGITransport(app=create_app(runtime))
    async with httpx.AsyncClient(transport=transport, base_url="http://tether.test") as client:
        yield World(runtime, client)
    runtime.close()


def error(response: httpx.Response) -> tuple[int, str]:
    return response.status_code, response.json()["error"]["code"]


async def test_the_secret_is_shown_once_and_sealed_at_rest(world: World) -> None:
    created = await world.create(description="billing")
    secret = str(created["secret"])
    assert secret.startswith("whsec_") and created["event_types"] == ["run.failed"] and created["enabled"] is True
    listed = await world.client.get("/v1/event-endpoints", headers=world.server)
    got = await world.client.get(f"/v1/event-endpoints/{created['id']}", headers=world.server)
    for answer in (listed, got):
        assert answer.status_code == 200 and secret not in answer.text and "secret" not in answer.json()
    with world.runtime.db.engine.connect() as connection:
        (blob,) = connection.execute(text("SELECT secret_ciphertext FROM event_endpoint")).one()
    assert secret.encode() not in bytes(blob) and secret.removeprefix("whsec_").encode() not in bytes(blob)


async def test_update_disable_and_delete(world: World) -> None:
    created = await world.create()
    path = f"/v1/event-endpoints/{created['id']}"
    changed = await world.client.patch(
        path, json={"enabled": False, "event_types": ["run.succeeded", "records.changed"]}, headers=world.server
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["enabled"] is False and changed.json()["event_types"] == ["records.changed", "run.succeeded"]
    assert (await world.client.delete(path, headers=world.server)).status_code == 204
    assert error(await world.client.get(path, headers=world.server)) == (404, "not_found")


async def test_rotation_returns_a_new_secret_and_keeps_the_old_one_for_the_overlap(world: World) -> None:
    created = await world.create()
    rotated = await world.client.post(f"/v1/event-endpoints/{created['id']}/rotate-secret", headers=world.server)
    assert rotated.status_code == 200, rotated.text
    body = rotated.json()
    assert body["secret"].startswith("whsec_") and body["secret"] != created["secret"]
    assert body["previous_secret_expires_at"] is not None
    with world.runtime.db.session() as session:
        row = session.get_one(EventEndpoint, str(created["id"]))
    now = datetime.fromisoformat(body["updated_at"])
    assert signing_secrets(world.runtime.keys.keyring, row, now) == [body["secret"], created["secret"]]


#: Bodies refused, each with its stable code (one runtime for all of them keeps the suite fast).
BAD_BODIES: list[tuple[dict[str, object], str]] = [
    ({"url": URL, "event_types": ["run.failed"], "secret": "mine"}, "invalid_input"),  # unknown field
    ({"url": URL, "event_types": ["run.exploded"]}, "invalid_input"),
    ({"url": URL, "event_types": []}, "invalid_input"),
    ({"event_types": ["run.failed"]}, "missing_field"),  # 400, the project's code for an absent field
    ({"url": "http://hooks.example.com/x", "event_types": ["run.failed"]}, "invalid_endpoint_url"),
    (
        {"url": "http://127.0.0.1:9/x", "event_types": ["run.failed"]},
        "invalid_endpoint_url",
    ),  # loopback: tests only
    ({"url": "https://10.0.0.7/x", "event_types": ["run.failed"]}, "invalid_endpoint_url"),
    ({"url": "https://169.254.169.254/latest", "event_types": ["run.failed"]}, "invalid_endpoint_url"),
    ({"url": "https://localhost/x", "event_types": ["run.failed"]}, "invalid_endpoint_url"),
    ({"url": "https://u:p@hooks.example.com/", "event_types": ["run.failed"]}, "invalid_endpoint_url"),
    ({"url": "ftp://hooks.example.com/", "event_types": ["run.failed"]}, "invalid_endpoint_url"),
    ({"url": "not a url", "event_types": ["run.failed"]}, "invalid_endpoint_url"),
]


async def test_bad_bodies_are_refused_with_stable_codes(world: World) -> None:
    for body, code in BAD_BODIES:
        answer = await world.client.post("/v1/event-endpoints", json=body, headers=world.server)
        assert error(answer) == (400 if code == "missing_field" else 422, code), (body, answer.text)
    with world.runtime.db.session() as session:
        assert session.exec(select(EventEndpoint)).all() == []


async def test_update_refuses_unknown_fields_and_bad_urls(world: World) -> None:
    created = await world.create()
    path = f"/v1/event-endpoints/{created['id']}"
    assert error(await world.client.patch(path, json={"secret": "x"}, headers=world.server)) == (422, "invalid_input")
    bad = await world.client.patch(path, json={"url": "http://hooks.example.com/"}, headers=world.server)
    assert error(bad) == (422, "invalid_endpoint_url")


async def test_only_the_tenants_server_principals_see_endpoints(world: World) -> None:
    created = await world.create()
    path = f"/v1/event-endpoints/{created['id']}"
    assert error(await world.client.get("/v1/event-endpoints", headers=world.user)) == (403, "forbidden")
    assert error(await world.client.get("/v1/event-deliveries", headers=world.user)) == (403, "forbidden")
    assert error(await world.client.get(path, headers=world.other)) == (404, "not_found")
    assert error(await world.client.post(f"{path}/rotate-secret", headers=world.other)) == (404, "not_found")
    assert (await world.client.get("/v1/event-endpoints", headers=world.other)).json() == {"endpoints": []}
    assert error(await world.client.get("/v1/event-endpoints")) == (401, "unauthenticated")


async def test_the_delivery_log_filters_and_pages_with_a_cursor(world: World) -> None:
    failed = await world.create()
    changed = await world.create(event_types=["records.changed", "run.failed"])
    with world.runtime.db.engine.begin() as connection:
        for index in range(3):
            emit(connection, [NewEvent("t1", "run.failed", {"run_id": f"r{index}"})])
        emit(connection, [NewEvent("t1", "records.changed", {"run_id": "r9"}), NewEvent("t2", "run.failed", {})])
    everything = await world.client.get("/v1/event-deliveries", headers=world.server)
    assert everything.status_code == 200 and len(everything.json()["deliveries"]) == 7  # 3x2 + 1; not t2's
    only = await world.client.get(
        "/v1/event-deliveries", params={"endpoint_id": failed["id"], "status": "pending"}, headers=world.server
    )
    assert {d["endpoint_id"] for d in only.json()["deliveries"]} == {failed["id"]} and len(
        only.json()["deliveries"]
    ) == 3
    typed = await world.client.get(
        "/v1/event-deliveries", params={"event_type": "records.changed"}, headers=world.server
    )
    assert [d["endpoint_id"] for d in typed.json()["deliveries"]] == [changed["id"]]
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await world.client.get("/v1/event-deliveries", params=params, headers=world.server)).json()
        seen += [d["id"] for d in page["deliveries"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(d["id"] for d in everything.json()["deliveries"]) and len(set(seen)) == 7
    bad = await world.client.get("/v1/event-deliveries", params={"cursor": "bm9wZQ"}, headers=world.server)
    assert error(bad) == (422, "invalid_cursor")
    assert (
        error(await world.client.get("/v1/event-deliveries", params={"status": "lost"}, headers=world.server))[0] == 422
    )


async def test_redelivery_by_hand(world: World) -> None:
    await world.create()
    with world.runtime.db.engine.begin() as connection:
        (delivery_id,) = emit(connection, [NewEvent("t1", "run.failed", {"run_id": "r1"})])
    with world.runtime.db.session() as session:
        row = session.get_one(EventDelivery, delivery_id)
        row.status = EventDeliveryStatus.dead
        session.add(row)
    again = await world.client.post(f"/v1/event-deliveries/{delivery_id}/redeliver", headers=world.server)
    assert again.status_code == 202 and again.json()["status"] == "pending", again.text
    assert error(await world.client.post(f"/v1/event-deliveries/{delivery_id}/redeliver", headers=world.other)) == (
        404,
        "not_found",
    )
    with world.runtime.db.session() as session:
        row = session.get_one(EventDelivery, delivery_id)
        row.status = EventDeliveryStatus.sending
        session.add(row)
    busy = await world.client.post(f"/v1/event-deliveries/{delivery_id}/redeliver", headers=world.server)
    assert error(busy) == (409, "delivery_in_flight")
    assert error(await world.client.get("/v1/event-deliveries/nope", headers=world.server)) == (404, "not_found")
