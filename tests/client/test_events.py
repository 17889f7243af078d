"""Outbound events end to end with the client: an endpoint registered through the client, events Tether's own
workers deliver (the event sweep, then the embedded worker's delivery actor), a host receiver on 127.0.0.1 that
verifies every delivery with ``verify_event`` alone and records each event once by ``webhook-id``, and the delivery
log read back through ``iter_event_deliveries``."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from engine.processes import sweep_events
from support.embedded import EmbeddedWorker
from support.ops_definition import OpsToken
from support.server import free_port, serve
from tether_client import AsyncClient, EventVerificationError, InvalidInput, verify_event

from .conftest import Live


class Receiver:
    def __init__(self) -> None:
        self.secret = ""
        self.events: dict[str, Any] = {}
        self.refused = 0
        self.lock = threading.Lock()

    async def hook(self, request: Request) -> Response:
        body = await request.body()
        try:
            event = verify_event(body, dict(request.headers), self.secret)
        except EventVerificationError:
            with self.lock:
                self.refused += 1
            return Response(status_code=400)
        with self.lock:
            self.events.setdefault(request.headers["webhook-id"], event)
        return Response(status_code=204)


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, str]]:
    host = Receiver()
    with serve(Starlette(routes=[Route("/tether-events", host.hook, methods=["POST"])]), free_port()) as base:
        yield host, f"{base}/tether-events"


async def test_events_tether_delivers_verify_with_verify_event(
    live: Live, embedded: EmbeddedWorker, receiver: tuple[Receiver, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TETHER_ALLOW_LOOPBACK_PROVIDERS", "1")  # the receiver is on 127.0.0.1 (read per client)
    live.runtime.settings.allow_loopback_providers = True
    host, url = receiver
    async with AsyncClient(live.base, api_key=live.key) as tether:
        with pytest.raises(ValidationError):  # the server's request model, generated: refused before sending
            await tether.create_event_endpoint(url, ["no.such_event"])
        with pytest.raises(InvalidInput) as refused_url:  # what only the server knows: not a URL it will call
            await tether.create_event_endpoint("ftp://app.example/events", ["run.failed"])
        assert refused_url.value.status in (400, 422)
        endpoint = await tether.create_event_endpoint(url, ["integration.connected", "run.succeeded"])
        assert endpoint.secret.startswith("whsec_")
        assert [e.id for e in await tether.list_event_endpoints()] == [endpoint.id]
        host.secret = endpoint.secret

        iid = (await tether.create_integration("ops", owner_id="gina")).id
        await tether.submit_credential(iid, OpsToken.slot_id(), {"token": "ops-secret-5"})
        ping = await tether.run(iid, "Ping")
        async for run in tether.iter_runs(iid):
            assert (await tether.get_run(run.id, wait=60)).status == "succeeded"

        assert sweep_events(live.runtime) >= 2
        await embedded.drain()

        types = sorted(e["type"] for e in host.events.values())
        assert "integration.connected" in types and "run.succeeded" in types
        assert host.refused == 0
        deliveries = [d async for d in tether.iter_event_deliveries(endpoint_id=endpoint.id)]
        assert {d.status for d in deliveries} == {"delivered"}
        assert len(deliveries) == len(host.events)  # each delivered once, each recorded once
        run_ids = {e["data"]["run_id"] for e in host.events.values() if e["type"] == "run.succeeded"}
        assert ping.run.id in run_ids

        rotated = await tether.rotate_event_secret(endpoint.id)
        assert rotated.secret != endpoint.secret and rotated.previous_secret_expires_at is not None
        await tether.delete_event_endpoint(endpoint.id)
        assert await tether.list_event_endpoints() == []
