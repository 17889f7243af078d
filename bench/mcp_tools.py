"""``python -m bench mcp_tools``: the MCP server's cost per request, with the official ``mcp`` client over HTTP.

A live Tether (uvicorn on 127.0.0.1, scratch SQLite, the sandbox on) with one owner whose sandbox integration is
connected by API key. Measured, each as seconds per request (median and 95th percentile) and requests a second:

1. ``tools/list`` (the caller's tools built from the database on every request);
2. ``tools/call`` of ``sandbox__HealthCheck``: an inline run end to end (run row, claim, the sandbox's ``/me``
   through the egress guard, finish), one client calling in a loop;
3. the same from ``CONCURRENT`` clients at once;
4. for comparison, the same operation through the REST API (``POST .../operations/HealthCheck``, one client): what
   the MCP layer adds is the difference between 2 and 4.

Last line is one JSON object.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from bench._serve import free_port, serve
from engine.api import create_app
from engine.api.principal import create_api_key
from engine.custody.crypto import generate_master_key
from engine.runtime import Runtime
from engine.settings import Settings

ROUNDS = int(os.environ.get("BENCH_MCP_ROUNDS", "200"))
CONCURRENT = 8


async def timed(rounds: int, step: Callable[[], Awaitable[Any]]) -> list[float]:
    spent = []
    for _ in range(rounds):
        started = time.perf_counter()
        await step()
        spent.append(time.perf_counter() - started)
    return spent


def summary(spent: list[float], wall: float | None = None) -> dict[str, float]:
    ordered = sorted(spent)
    return {
        "median_ms": round(statistics.median(ordered) * 1000, 2),
        "p95_ms": round(ordered[int(len(ordered) * 0.95) - 1] * 1000, 2),
        "per_second": round(len(ordered) / (wall if wall is not None else sum(ordered)), 1),
    }


async def measure(url: str, key: str, iid: str) -> dict[str, Any]:
    def client() -> tuple[Any, Client]:
        http = create_mcp_http_client(headers={"Authorization": f"Bearer {key}"})
        return http, Client(streamable_http_client(url, http_client=http))

    http, mcp = client()
    async with http, mcp:
        await mcp.list_tools()  # warm: definitions, the client's first connection
        listed = await timed(ROUNDS, lambda: mcp.list_tools(cache_mode="refresh"))
        calls = await timed(ROUNDS, lambda: mcp.call_tool("sandbox__HealthCheck", {}))
    pairs = [client() for _ in range(CONCURRENT)]
    per_client = max(1, ROUNDS // CONCURRENT)

    async def one(pair: tuple[Any, Client]) -> list[float]:
        async with pair[0], pair[1]:
            await pair[1].list_tools()
            return await timed(per_client, lambda: pair[1].call_tool("sandbox__HealthCheck", {}))

    started = time.perf_counter()
    together = [s for spent in await asyncio.gather(*(one(p) for p in pairs)) for s in spent]
    wall = time.perf_counter() - started
    base = url.removesuffix("/mcp")
    async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=60) as rest:

        async def operation() -> None:
            answered = await rest.post(f"/v1/integrations/{iid}/operations/HealthCheck", json={})
            assert answered.status_code == 200, answered.text

        await operation()
        over_rest = await timed(ROUNDS, operation)
    return {
        "tools_list": summary(listed),
        "call_tool": summary(calls),
        f"call_tool_{CONCURRENT}_clients": summary(together, wall),
        "rest_operation": summary(over_rest),
    }


def main() -> None:
    with tempfile.TemporaryDirectory() as scratch:
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        database = f"sqlite:///{scratch}/tether.db"
        # The sandbox is reached at the public URL through the egress guard's own-origin rule, which reads the
        # environment: both say the served origin.
        os.environ.update(
            TETHER_SECRET_MASTER_KEY=generate_master_key(),
            TETHER_SANDBOX="1",
            TETHER_DATABASE_URL=database,
            TETHER_PUBLIC_URL=base,
        )
        settings = Settings(database_url=database, state_dir=scratch, sandbox=True, public_url=base)
        runtime = Runtime.start(settings, migrate=True)
        try:
            with serve(create_app(runtime), port):
                server_key, _ = create_api_key(runtime.db, tenant="bench", role="server")
                key, _ = create_api_key(runtime.db, tenant="bench", role="user", owner="agent-user")
                with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {server_key}"}) as api:
                    made = api.post("/v1/integrations", json={"definition_id": "sandbox", "owner_id": "agent-user"})
                    iid = made.json()["id"]
                    connected = api.post(
                        f"/v1/integrations/{iid}/credentials/SandboxApiKey", json={"api_key": "sbx_key_acme"}
                    )
                    assert connected.status_code == 200, connected.text
                figures = asyncio.run(measure(f"{base}/mcp", key, iid))
        finally:
            runtime.close()
    for name, numbers in figures.items():
        print(f"{name:>24}: median {numbers['median_ms']} ms, p95 {numbers['p95_ms']} ms, {numbers['per_second']}/s")
    print(json.dumps({"bench": "mcp_tools", "rounds": ROUNDS, **figures}))


if __name__ == "__main__":
    main()
