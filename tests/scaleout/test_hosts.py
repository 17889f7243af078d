"""Scale-out on more than one host: a server and two workers, each in a network namespace of its own, reach
PostgreSQL and Redis at one address of a bridge the test makes. Runs dispatched through the server's API are
executed exactly once while one worker host is cut off mid-way (its link taken down, as a pulled cable: its
connections hang, nothing resets), and the rate governor holds a provider's limit across both worker hosts.

Skipped, saying why, where the kernel or the sandbox refuses network namespaces.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
from fastapi import FastAPI, Response
from sqlalchemy.engine import make_url
from sqlmodel import select

from engine.api.principal import create_api_key
from engine.custody.crypto import generate_master_key
from engine.runtime import Runtime
from engine.settings import Settings
from engine.store.database import Database
from engine.store.tables import (
    DeliveryStatus,
    Integration,
    IntegrationStatus,
    Run,
    RunStatus,
    WebhookDelivery,
    WebhookEndpoint,
)
from engine.webhooks.endpoints import ensure_endpoints
from engine.webhooks.targets import endpoint_secret
from ingest.models.asset import Asset
from support.netns import Hosts, NamespacesRefused
from support.server import free_port, serve
from support.webhook_kit import APP_SECRET, SLACK_SECRET, add_integration, event_body, sign

TESTS = Path(__file__).resolve().parents[1]
SERVER_PORT = 8000


@pytest.fixture
def topology() -> Iterator[Hosts]:
    made = Hosts(("server", "worker1", "worker2"))
    try:
        made.up()
    except NamespacesRefused as exc:
        made.down()
        pytest.skip(str(exc))
    try:
        yield made
    finally:
        made.down()


@pytest.fixture
def provider_hits() -> Iterator[tuple[str, dict[str, int]]]:
    """A provider on the root namespace's loopback, counting what it is sent."""
    app = FastAPI()
    hits: dict[str, int] = {}

    @app.get("/{name}")
    def answer(name: str) -> Response:
        hits[name] = hits.get(name, 0) + 1
        return Response(content=b"{}", media_type="application/json")

    port = free_port()
    with serve(app, port):
        yield f"127.0.0.1:{port}", hits


def _on_bridge(url: str, gateway: str, port: int) -> str:
    """``url`` of the root namespace's 127.0.0.1 service, as the hosts reach it: the bridge address's forwarder.
    A session that stays idle in a transaction (its host cut off mid-statement) is ended by PostgreSQL after 5 s,
    as a production deployment would configure it, so its row locks do not outlive the host."""
    parsed = make_url(url).set(host=gateway, port=port)
    if parsed.drivername.startswith("postgresql"):
        options = parsed.query.get("options", "")
        parsed = parsed.update_query_dict({"options": f"{options} -cidle_in_transaction_session_timeout=5000"})
    return parsed.render_as_string(hide_password=False)


class Cluster:
    def __init__(self, topology: Hosts, runtime: Runtime, env: dict[str, str]) -> None:
        self.topology, self.runtime, self.env = topology, runtime, env
        self.base = f"http://{topology.address('server')}:{SERVER_PORT}"

    def start_worker(self, host: str) -> subprocess.Popen[str]:
        argv = [sys.executable, "-m", "engine.cli_workers", "worker", "--threads", "4"]
        proc = self.topology.start(host, argv, self.env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        assert proc.stdout is not None and "tether worker ready" in proc.stdout.readline(), f"{host} did not start"
        return proc

    def integration(self, definition: str, connection: str, tenant: str = "t1", owner: str = "o1") -> str:
        from support.governed_definition import GovernedKey
        from support.ops_definition import OpsToken

        with self.runtime.db.session() as session:
            row = Integration(
                tenant_id=tenant,
                owner_id=owner,
                definition_id=definition,
                status=IntegrationStatus.connected,
                provider_data={"connection": connection},
            )
            session.add(row)
        slot = GovernedKey(key="k") if definition == "governed" else OpsToken(token="t")
        self.runtime.keystore.save(row.id, slot)  # type: ignore[arg-type]
        return row.id

    def runs(self, ids: list[str]) -> list[Run]:
        with self.runtime.db.session() as session:
            return list(session.exec(select(Run).where(Run.id.in_(ids))))  # type: ignore[attr-defined]

    async def wait(self, ids: list[str], done: set[RunStatus], bound: float = 120.0) -> list[Run]:
        """Poll until every run is in ``done`` (a bound against hangs, not a timing assertion)."""
        deadline = time.monotonic() + bound
        while True:
            runs = self.runs(ids)
            if len(runs) == len(ids) and all(r.status in done for r in runs):
                return runs
            if time.monotonic() > deadline:
                raise AssertionError(sorted((r.status, r.attempts, r.error_code) for r in runs))
            await asyncio.sleep(0.2)


@pytest.fixture
def cluster(
    topology: Hosts,
    postgres_database: Database,
    redis_client: redis.Redis,
    provider_hits: tuple[str, dict[str, int]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Cluster]:
    namespace = f"tether_test_{uuid.uuid4().hex[:12]}"
    gateway = topology.gateway
    pg_port, redis_port, provider_port = free_port(), free_port(), free_port()
    provider, _ = provider_hits
    topology.forward(None, {f"{gateway}:{pg_port}": "127.0.0.1:5432", f"{gateway}:{redis_port}": "127.0.0.1:6379"})
    topology.forward(None, {f"{gateway}:{provider_port}": provider})
    for worker in ("worker1", "worker2"):  # each worker host reaches the provider on its own loopback
        topology.forward(worker, {f"127.0.0.1:{provider_port}": f"{gateway}:{provider_port}"})
    shared = {
        "TETHER_SECRET_MASTER_KEY": generate_master_key(),
        "TETHER_DEFINITION_MODULES": "support.ops_definition,support.governed_definition,support.webhook_definition",
        "TETHER_SECRET_HOOKS_SLACK_SIGNING_SECRET": SLACK_SECRET,
        "TETHER_SECRET_HOOKS_APP_WEBHOOK_SECRET": APP_SECRET,
        "TETHER_BROKER_NAMESPACE": namespace,
        "TETHER_ALLOW_LOOPBACK_PROVIDERS": "1",
        "TETHER_SANDBOX": "0",
        "TETHER_RUN_HEARTBEAT_SECONDS": "0.3",
        "TETHER_RUN_STALE_SECONDS": "3",
        "TETHER_REAP_INTERVAL_SECONDS": "0.5",
        "TETHER_RETRY_MIN_BACKOFF_SECONDS": "0.1",
        # A cut-off worker's prefetched messages come back after 3 s (maintenance on one command in ten).
        "TETHER_BROKER_HEARTBEAT_TIMEOUT_SECONDS": "3",
        "TETHER_BROKER_MAINTENANCE_CHANCE": "100000",
        # A cut-off worker's claimed deliveries are taken over after 3 s; the sweep looks every half second.
        "TETHER_DELIVERY_LEASE_SECONDS": "3",
        "TETHER_DELIVERY_SWEEP_SECONDS": "0.5",
        "TETHER_DELIVERY_SWEEP_AFTER_SECONDS": "2",
        "TETHER_STATE_DIR": str(tmp_path / "state"),
    }
    for key, value in {**shared, "TETHER_DATABASE_URL": postgres_database.url, "TETHER_BROKER_URL": ""}.items():
        monkeypatch.setenv(key, value)
    runtime = Runtime.start(Settings())
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("TETHER_")},
        **shared,
        "TETHER_DATABASE_URL": _on_bridge(postgres_database.url, gateway, pg_port),
        "TETHER_BROKER_URL": f"redis://{gateway}:{redis_port}/0",
        "TETHER_PUBLIC_URL": f"http://{topology.address('server')}:{SERVER_PORT}",
        "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
    }
    made = Cluster(topology, runtime, env)
    argv = [sys.executable, "-m", "engine.cli", "serve", "--host", topology.address("server"), "--port", "8000"]
    topology.start("server", argv, env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{made.base}/healthz", timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            pass  # not listening yet
        if time.monotonic() > deadline:
            raise AssertionError("the server host did not come up")
        time.sleep(0.2)
    os.environ["TETHER_PROVIDER_PORT"] = str(provider_port)
    yield made
    runtime.close()
    keys = list(redis_client.scan_iter(f"{namespace}:*"))
    if keys:
        redis_client.delete(*keys)


async def _dispatch(client: httpx.AsyncClient, integration: str, operation: str, config: dict) -> str:
    response = await client.post(f"/v1/integrations/{integration}/operations/{operation}", json={"config": config})
    assert response.status_code == 202, response.text
    return response.json()["run_id"]


async def test_runs_are_executed_once_with_a_worker_host_cut_off_mid_way(cluster: Cluster) -> None:
    key, _ = create_api_key(cluster.runtime.db, tenant="t1", role="server")
    ops = cluster.integration("ops", "OpsKey")
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=cluster.base, headers=headers, timeout=30) as client:
        cluster.start_worker("worker1")  # alone at first: the slow runs are in flight on this host
        slow = [await _dispatch(client, ops, "Slow", {"seconds": 60}) for _ in range(4)]
        await cluster.wait(slow, {RunStatus.running})
        cluster.start_worker("worker2")
        flood = [await _dispatch(client, ops, "Echo", {"value": str(i)}) for i in range(60)]
        cluster.topology.cut("worker1")
        more = [await _dispatch(client, ops, "Echo", {"value": f"late-{i}"}) for i in range(20)]
        runs = await cluster.wait(slow + flood + more, {RunStatus.succeeded, RunStatus.failed})
    assert {r.status for r in runs} == {RunStatus.succeeded}, sorted((r.status, r.error_code) for r in runs)
    by_id = {r.id: r for r in runs}
    # The slow runs lost their host: the reaper on the other one retried each once, where it finished.
    assert all(by_id[i].attempts == 2 and by_id[i].result == {"attempt": 2} for i in slow)
    # Every flood run ran to success once (a claim is one conditional UPDATE; a second claim finds it finished).
    assert all(by_id[i].result == {"echo": by_id[i].config["value"], "n": 1} for i in flood + more)


async def test_the_governor_holds_a_providers_limit_across_worker_hosts(
    cluster: Cluster, provider_hits: tuple[str, dict[str, int]]
) -> None:
    _, hits = provider_hits
    port = os.environ["TETHER_PROVIDER_PORT"]
    key_a, _ = create_api_key(cluster.runtime.db, tenant="t1", role="server")
    key_b, _ = create_api_key(cluster.runtime.db, tenant="t2", role="server")
    a = cluster.integration("governed", "GovernedConnection", tenant="t1")
    b = cluster.integration("governed", "GovernedConnection", tenant="t2")
    cluster.start_worker("worker1")
    cluster.start_worker("worker2")
    config = {"url": f"http://127.0.0.1:{port}/ok", "n": 2}
    ids = []
    for key, integration in ((key_a, a), (key_b, b)):
        async with httpx.AsyncClient(base_url=cluster.base, headers={"Authorization": f"Bearer {key}"}) as client:
            ids += [await _dispatch(client, integration, "Calls", config) for _ in range(5)]
    # The declared burst is 4 calls and it never refills within the test: two hosts, ten runs, four calls.
    deadline = time.monotonic() + 120
    while True:
        runs = cluster.runs(ids)
        settled = [r for r in runs if r.status == RunStatus.succeeded or r.error_code == "rate_limited"]
        if len(settled) == len(ids):
            break
        assert time.monotonic() < deadline, sorted((r.status, r.error_code) for r in runs)
        await asyncio.sleep(0.2)
    assert hits == {"ok": 4}
    assert sum(r.status == RunStatus.succeeded for r in runs) <= 2
    assert all(r.status in (RunStatus.succeeded, RunStatus.queued) for r in runs)


async def test_a_delivery_flood_is_processed_once_with_a_worker_host_cut_off_mid_way(cluster: Cluster) -> None:
    runtime = cluster.runtime
    integration = add_integration(runtime)  # of the ``hooks`` definition: a GitHub-style signed endpoint
    [endpoint] = [e for e in await ensure_endpoints(runtime, integration) if e.webhook == "github"]
    with runtime.db.session() as session:
        secret = endpoint_secret(runtime, session.get_one(WebhookEndpoint, endpoint.id))
    assert secret is not None
    token = endpoint.url.rsplit("/", 1)[1]
    cluster.start_worker("worker1")
    cluster.start_worker("worker2")

    def processed() -> list[WebhookDelivery]:
        with runtime.db.session() as session:
            return list(session.exec(select(WebhookDelivery).where(WebhookDelivery.integration_id == integration.id)))

    async def post(client: httpx.AsyncClient, ids: list[str]) -> None:
        for delivery in ids:
            body = event_body("github", "item.changed", delivery, item={"id": delivery, "name": f"item {delivery}"})
            answer = await client.post(
                f"/v1/webhooks/{token}", content=body, headers=sign("github", body, secret, delivery=delivery)
            )
            assert answer.status_code == 202, answer.text

    ids = [f"flood-{i}" for i in range(150)]
    async with httpx.AsyncClient(base_url=cluster.base, timeout=30) as client:
        await asyncio.gather(*(post(client, ids[i::10]) for i in range(10)))  # ten senders at once
        deadline = time.monotonic() + 60
        while sum(r.status == DeliveryStatus.processed for r in processed()) < 30:  # mid-way through
            assert time.monotonic() < deadline, "the workers processed nothing"
            await asyncio.sleep(0.1)
        cluster.topology.cut("worker1")
    deadline = time.monotonic() + 120
    while True:
        rows = processed()
        if len(rows) == len(ids) and all(r.status == DeliveryStatus.processed for r in rows):
            break
        assert time.monotonic() < deadline, sorted((r.status, r.attempts) for r in rows)[:20]
        await asyncio.sleep(0.2)
    assert sorted(r.delivery_id for r in rows) == sorted(ids)  # each recorded once, each processed
    with runtime.db.session() as session:
        assets = session.exec(select(Asset.source_identifier).where(Asset.integration_id == integration.id)).all()
    assert sorted(assets) == sorted(ids)  # and each one's record written once
