"""``python -m bench governor``: three worker processes share one provider's per-app limit through the governor.

A local provider (its own process) enforces a per-app token bucket of ``LIMIT`` requests/s (burst ``BURST``) and
answers 429 with ``Retry-After`` beyond it; it counts each tenant's requests and its 429s. The ``governed_bench``
definition declares the limit Tether should keep (``DECLARED``: a little under the provider's, as an operator would
set it) and its one operation calls the provider ``CALLS`` times per run. Two tenants queue ``RUNS`` runs each on
PostgreSQL + Redis; ``WORKERS`` ``tether worker`` processes execute them. After ``WARMUP`` seconds the provider's
counters are reset and read again ``SECONDS`` later.

Last line: one JSON object with the 429 share of all calls (target < 0.01), the achieved rate over the provider's
limit (target ≥ 0.9) and the fairness between the two tenants (min/max of their calls, target ≥ 0.8).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from pydantic import BaseModel

from engine import Definition, Operation, OperationContext, Policy, RateLimit
from engine.kit.egress import egress_client

LIMIT = float(os.environ.get("TETHER_BENCH_GOVERNOR_LIMIT", "40"))
BURST = int(os.environ.get("TETHER_BENCH_GOVERNOR_BURST", "10"))
DECLARED = RateLimit(per_second=LIMIT * 0.95, burst=max(1, BURST - 2))
CALLS = int(os.environ.get("TETHER_BENCH_GOVERNOR_CALLS", "10"))
RUNS = int(os.environ.get("TETHER_BENCH_GOVERNOR_RUNS", "150"))
WORKERS = int(os.environ.get("TETHER_BENCH_GOVERNOR_WORKERS", "3"))
THREADS = int(os.environ.get("TETHER_BENCH_GOVERNOR_THREADS", "4"))
WARMUP = float(os.environ.get("TETHER_BENCH_GOVERNOR_WARMUP", "5"))
SECONDS = float(os.environ.get("TETHER_BENCH_GOVERNOR_SECONDS", "20"))
REDIS_URL = os.environ.get("TETHER_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
POSTGRES_URL = os.environ.get("TETHER_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
ROOT = Path(__file__).resolve().parents[1]
#: The worker processes import the engine of this checkout (its ``src``) first, not the one the environment installed
#: (with only ``ROOT`` on the path, a git worktree's bench measured the main checkout's workers; as in ``bench.queue``).
CHECKOUT_PATH = os.pathsep.join([str(ROOT / "src"), str(ROOT)])


class CallsConfig(BaseModel):
    url: str


class Calls(Operation):
    """Call the provider ``CALLS`` times, as one page loop of a sync would."""

    config = CallsConfig
    policy = Policy.queued(max_retries=0)

    async def run(self, ctx: OperationContext) -> int:
        url = ctx.config.url  # type: ignore[attr-defined]
        async with egress_client(allow_loopback=True, timeout=10) as client:
            for _ in range(CALLS):
                (await client.get(url)).raise_for_status()
        return CALLS


definition = Definition(
    id="governed_bench",
    name="Governed bench",
    description="Calls a local provider under its per-app limit.",
    operations=(Calls,),
    rate_limit=DECLARED,
)


# -- the provider ----------------------------------------------------------------------------------------------


def provider(port: int) -> None:
    """The provider's process: a per-app token bucket, 429 beyond it, counts per tenant."""
    import uvicorn
    from fastapi import FastAPI, Response

    lock = threading.Lock()
    state = {"tokens": float(BURST), "stamp": time.monotonic()}
    counts: dict[str, int] = {}
    app = FastAPI()

    @app.get("/t/{tenant}")
    def call(tenant: str) -> Response:
        with lock:
            now = time.monotonic()
            state["tokens"] = min(BURST, state["tokens"] + (now - state["stamp"]) * LIMIT)
            state["stamp"] = now
            if state["tokens"] < 1:
                counts["429"] = counts.get("429", 0) + 1
                return Response(status_code=429, headers={"Retry-After": "1"})
            state["tokens"] -= 1
            counts[tenant] = counts.get(tenant, 0) + 1
        return Response(content=b"{}", media_type="application/json")

    @app.post("/counts")
    def read_and_reset() -> dict[str, int]:
        with lock:
            seen = dict(counts)
            counts.clear()
        return seen

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_up(url: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.post(f"{url}/counts", timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise RuntimeError("the bench provider did not start")


def _phase(runtime: Any, definition_id: str, base: str, env: dict[str, str]) -> dict[str, Any]:
    """Queue both tenants' runs of ``definition_id``, start the workers, count what the provider saw."""
    from engine.store.tables import Integration, IntegrationStatus

    tenants: dict[str, list[str]] = {"tenant_a": [], "tenant_b": []}
    with runtime.db.session() as session:
        for tenant, ids in tenants.items():
            for owner in range(3):
                integration = Integration(
                    tenant_id=tenant,
                    owner_id=f"o{owner}",
                    definition_id=definition_id,
                    status=IntegrationStatus.connected,
                )
                session.add(integration)
                session.flush()
                ids.append(integration.id)

    async def dispatch_all() -> None:
        for index in range(RUNS):  # interleaved, as two tenants' schedules would be
            for tenant, ids in tenants.items():
                config = {"url": f"{base}/t/{tenant}"}
                await runtime.executor.dispatch(ids[index % len(ids)], "Calls", trigger="api", config=config)

    asyncio.run(dispatch_all())
    workers: list[subprocess.Popen[str]] = []
    try:
        for _ in range(WORKERS):
            worker = subprocess.Popen(
                [sys.executable, "-m", "engine.cli_workers", "worker", "--threads", str(THREADS)],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
            )
            workers.append(worker)
            assert worker.stdout is not None and "ready" in worker.stdout.readline()
        time.sleep(WARMUP)
        httpx.post(f"{base}/counts", timeout=5)
        began = time.monotonic()
        time.sleep(SECONDS)
        counts = httpx.post(f"{base}/counts", timeout=5).json()
        elapsed = time.monotonic() - began
    finally:
        _stop(workers)
    refused = counts.pop("429", 0)
    served = sum(counts.values())
    shares = [counts.get(tenant, 0) for tenant in tenants]
    return {
        "seconds": round(elapsed, 2),
        "calls_served": served,
        "calls_refused_429": refused,
        "share_429": round(refused / max(1, served + refused), 4),
        "achieved_per_s": round(served / elapsed, 2),
        "achieved_over_limit": round(served / elapsed / LIMIT, 3),
        "tenant_calls": dict(zip(tenants, shares, strict=True)),
        "fairness_min_over_max": round(min(shares) / max(1, max(shares)), 3),
    }


def _stop(procs: list[subprocess.Popen[str]]) -> None:
    for proc in procs:
        proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:  # a worker finishing its in-flight runs: the phase is over anyway
            proc.kill()
            proc.wait(timeout=30)


def main() -> None:
    import redis
    from sqlalchemy import create_engine, text

    from engine.custody.crypto import generate_master_key
    from engine.runtime import Runtime
    from engine.settings import Settings
    from engine.store.database import normalize_url

    schema = f"tether_bench_{uuid.uuid4().hex[:10]}"
    namespace = f"tether_bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(normalize_url(POSTGRES_URL), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        "TETHER_DATABASE_URL": f"{POSTGRES_URL}?options=-csearch_path%3D{schema}",
        "TETHER_SECRET_MASTER_KEY": generate_master_key(),
        "TETHER_DEFINITION_MODULES": "bench.governor,bench._ungoverned",
        "TETHER_ENABLED_DEFINITIONS": "governed_bench,ungoverned_bench",
        "TETHER_STATE_DIR": f"/tmp/{namespace}",
        "TETHER_BROKER_URL": REDIS_URL,
        "TETHER_BROKER_NAMESPACE": namespace,
        "TETHER_ALLOW_LOOPBACK_PROVIDERS": "1",
        "TETHER_SANDBOX": "0",
        "PYTHONPATH": CHECKOUT_PATH,
    }
    os.environ.update(env)
    runtime = Runtime.start(Settings(), migrate=True)
    provider_proc = subprocess.Popen(
        [sys.executable, "-c", f"from bench.governor import provider; provider({port})"], env={**os.environ}, text=True
    )
    try:
        _wait_up(base)
        governed = _phase(runtime, "governed_bench", base, {**os.environ})
        ungoverned = _phase(runtime, "ungoverned_bench", base, {**os.environ})
    finally:
        _stop([provider_proc])
        runtime.close()
        with admin.connect() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        client = redis.Redis.from_url(REDIS_URL)
        keys = list(client.scan_iter(f"{namespace}:*"))
        if keys:
            client.delete(*keys)
    for name, figures in (("governed", governed), ("ungoverned", ungoverned)):
        print(
            f"{name}: {figures['calls_served']} calls served in {figures['seconds']} s "
            f"({figures['achieved_per_s']}/s of a {LIMIT:g}/s limit), {figures['calls_refused_429']} refused with 429; "
            f"tenants {list(figures['tenant_calls'].values())}"
        )
    print(
        json.dumps(
            {
                "provider_limit_per_s": LIMIT,
                "declared_per_s": DECLARED.per_second,
                "workers": WORKERS,
                "threads": THREADS,
                **governed,
                "ungoverned": ungoverned,
            }
        )
    )
