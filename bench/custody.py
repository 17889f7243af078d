"""``python -m bench custody``: the cost of ``get_access_token``.

1. A cached, valid token: microseconds per call (target < 50 µs).
2. An expired token asked for by 50 concurrent callers: how long until all have it, and how many refreshes reached
   the token endpoint (must be 1). The endpoint is a small local server that counts requests and answers after a
   20 ms delay, like a nearby provider.

Runs on a scratch SQLite file; last line is one JSON object.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import uvicorn
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from engine import Connection, Definition, OAuth2, OAuth2Token, OperatorConfig, Revoke
from engine.catalog.registry import Registry
from engine.custody.crypto import generate_master_key
from engine.runtime import Runtime
from engine.settings import Settings
from engine.store.tables import Integration, IntegrationStatus

CALLERS = 50
CACHED_CALLS = 20_000


class BenchConfig(OperatorConfig):
    client_id: str
    client_secret: SecretStr


class BenchGrant(OAuth2Token):
    pass


def definition(port: int) -> Definition:
    base = f"http://127.0.0.1:{port}"

    class BenchOAuth(Connection):
        credential = BenchGrant
        auth = OAuth2(
            slot=BenchGrant, authorize_url=f"{base}/authorize", token_url=f"{base}/token", revoke_url=f"{base}/revoke"
        )
        disconnect = Revoke(BenchGrant)

    return Definition(
        id="bench",
        name="Bench",
        description="bench",
        operator_config=BenchConfig,
        slots=(BenchGrant,),
        connections=(BenchOAuth,),
    )


class TokenEndpoint:
    def __init__(self) -> None:
        self.calls = 0

    async def token(self, request: Request) -> JSONResponse:
        self.calls += 1
        await asyncio.sleep(0.02)
        n = self.calls
        return JSONResponse(
            {"access_token": f"at-{n}", "refresh_token": f"rt-{n}", "token_type": "Bearer", "expires_in": 3600}
        )


def serve(endpoint: TokenEndpoint) -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    app = Starlette(routes=[Route("/token", endpoint.token, methods=["POST"])])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.01)
    return port


async def measure(runtime: Runtime, integration_id: str) -> tuple[float, float]:
    custody = runtime.custody
    await custody.get_access_token(integration_id)  # warm the cache
    start = time.perf_counter()
    for _ in range(CACHED_CALLS):
        await custody.get_access_token(integration_id)
    cached_us = (time.perf_counter() - start) / CACHED_CALLS * 1e6

    stored = runtime.keystore.require(integration_id, BenchGrant)
    expired = stored.slot.model_copy(update={"expires_at": datetime.now(UTC) - timedelta(minutes=1)})
    runtime.keystore.save(integration_id, expired)
    custody.forget(integration_id)
    start = time.perf_counter()
    tokens = await asyncio.gather(*(custody.get_access_token(integration_id) for _ in range(CALLERS)))
    concurrent_ms = (time.perf_counter() - start) * 1e3
    assert len({t.token for t in tokens}) == 1
    return cached_us, concurrent_ms


def main() -> None:
    endpoint = TokenEndpoint()
    port = serve(endpoint)
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.update(
            {
                "TETHER_BENCH_CLIENT_ID": "bench",
                "TETHER_SECRET_BENCH_CLIENT_SECRET": "bench-secret",
                "TETHER_SECRET_MASTER_KEY": generate_master_key(),
            }
        )
        registry = Registry(allow_loopback=True)
        registry.register(definition(port))
        settings = Settings(
            database_url=f"sqlite:///{Path(tmp) / 'bench.db'}", allow_loopback_providers=True, state_dir=tmp
        )
        runtime = Runtime.start(settings, registry=registry, migrate=True)
        with runtime.db.session() as session:
            integration = Integration(
                tenant_id="t",
                owner_id="o",
                definition_id="bench",
                provider_data={"connection": "BenchOAuth"},
                status=IntegrationStatus.connected,
            )
            session.add(integration)
            runtime.keystore.save(
                integration.id,
                BenchGrant(
                    access_token=SecretStr("at-0"),
                    refresh_token=SecretStr("rt-0"),
                    expires_at=datetime.now(UTC) + timedelta(hours=1),
                ),
                session=session,
            )
        cached_us, concurrent_ms = asyncio.run(measure(runtime, integration.id))
        runtime.close()
    print(f"cached token: {cached_us:.2f} µs/call over {CACHED_CALLS} calls")
    print(
        f"{CALLERS} concurrent callers on an expired token: {concurrent_ms:.1f} ms, "
        f"{endpoint.calls} upstream refresh call(s)"
    )
    print(
        json.dumps(
            {
                "cached_token_us": round(cached_us, 2),
                "concurrent_callers": CALLERS,
                "upstream_refresh_calls": endpoint.calls,
                "concurrent_refresh_ms": round(concurrent_ms, 1),
            }
        )
    )
