"""Fixtures of the governor suite: budgets in process and in the real Redis (a namespace per test), and a runtime
whose ``governed`` definition calls a local provider that counts what it is sent."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis
from fastapi import FastAPI, Response

from engine.custody.crypto import generate_master_key
from engine.governor import Governor, LocalGovernor
from engine.governor.redis import RedisGovernor
from engine.runtime import Runtime
from engine.settings import Settings
from engine.store.database import Database
from engine.store.tables import Integration, IntegrationStatus
from support.server import free_port, serve
from support.workers import REDIS_URL


def _drop(client: redis.Redis, namespace: str) -> None:
    keys = list(client.scan_iter(f"{namespace}:*"))
    if keys:
        client.delete(*keys)


@pytest.fixture(params=["local", "redis"])
def governor(request: pytest.FixtureRequest) -> Iterator[Governor]:
    if request.param == "local":
        yield LocalGovernor()
        return
    client: redis.Redis = request.getfixturevalue("redis_client")
    namespace = f"tether_test_{uuid.uuid4().hex[:12]}"
    yield RedisGovernor(REDIS_URL, namespace=namespace)
    _drop(client, namespace)


@dataclass
class Provider:
    """A local provider: ``/ok`` answers 200, ``/limited`` 429 with ``Retry-After: 120``; ``hits`` counts both."""

    url: str
    hits: dict[str, int] = field(default_factory=dict)


@pytest.fixture
def provider() -> Iterator[Provider]:
    app = FastAPI()
    hits: dict[str, int] = {}

    @app.get("/{name}")
    def answer(name: str) -> Response:
        hits[name] = hits.get(name, 0) + 1
        if name == "limited":
            return Response(status_code=429, headers={"Retry-After": "120"})
        return Response(content=b"{}", media_type="application/json")

    with serve(app, free_port()) as url:
        yield Provider(url, hits)


@dataclass
class World:
    runtime: Runtime

    def connect(self, tenant: str) -> str:
        from support.governed_definition import GovernedKey

        with self.runtime.db.session() as session:
            integration = Integration(
                tenant_id=tenant,
                owner_id="u1",
                definition_id="governed",
                status=IntegrationStatus.connected,
                provider_data={"connection": "GovernedConnection"},
            )
            session.add(integration)
        self.runtime.keystore.save(integration.id, GovernedKey(key="k"))  # type: ignore[arg-type]
        return integration.id


@pytest.fixture(params=["local", "redis"])
def world(
    request: pytest.FixtureRequest, sqlite_database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[World]:
    """A runtime on SQLite whose budgets are in process (the embedded default) or in Redis (a deployment)."""
    env = {
        "TETHER_DATABASE_URL": sqlite_database.url,
        "TETHER_SECRET_MASTER_KEY": generate_master_key(),
        "TETHER_DEFINITION_MODULES": "support.governed_definition",
        "TETHER_STATE_DIR": str(tmp_path / "state"),
        "TETHER_ALLOW_LOOPBACK_PROVIDERS": "1",
    }
    namespace = f"tether_test_{uuid.uuid4().hex[:12]}"
    if request.param == "redis":
        client = request.getfixturevalue("redis_client")
        env |= {"TETHER_GOVERNOR_URL": REDIS_URL, "TETHER_BROKER_NAMESPACE": namespace}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    runtime = Runtime.start(Settings())
    runtime.executor.enqueue = lambda run_id, delay, limit: None  # executed in-process by the tests
    yield World(runtime)
    runtime.close()
    if request.param == "redis":
        _drop(client, namespace)
