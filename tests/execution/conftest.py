"""Fixtures of the execution suite: a runtime over a scratch database, a Redis namespace of its own, and real
``tether worker`` / ``tether scheduler`` subprocesses."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis

from engine.custody.crypto import generate_master_key
from engine.queue import worker as worker_module
from engine.runtime import Runtime
from engine.settings import Settings
from engine.store.database import Database
from engine.store.tables import Integration, IntegrationStatus, Run, RunStatus
from support.workers import REDIS_URL, start_worker

TESTS = Path(__file__).resolve().parents[1]


@dataclass
class Env:
    runtime: Runtime
    env: dict[str, str]
    namespace: str
    redis: redis.Redis
    procs: list[subprocess.Popen[str]] = field(default_factory=list)

    def start_worker(self, *, threads: int = 2) -> subprocess.Popen[str]:
        proc = start_worker(self.env, threads=threads)
        self.procs.append(proc)
        return proc

    def start_scheduler(self, *, iterations: int, interval: float) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "engine.cli_workers",
                "scheduler",
                "--iterations",
                str(iterations),
                "--interval",
                str(interval),
            ],
            env={**os.environ, **self.env},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.procs.append(proc)
        return proc

    def connect(self, *, owner: str = "u1", token: str = "s3cret-token-value") -> str:
        from support.ops_definition import OpsToken

        with self.runtime.db.session() as session:
            integration = Integration(
                tenant_id="t1",
                owner_id=owner,
                definition_id="ops",
                status=IntegrationStatus.connected,
                provider_data={"connection": "OpsKey"},
            )
            session.add(integration)
        self.runtime.keystore.save(integration.id, OpsToken(token=token))  # type: ignore[arg-type]
        return integration.id

    def run(self, run_id: str) -> Run:
        with self.runtime.db.session() as session:
            run = session.get(Run, run_id)
        assert run is not None
        return run

    async def wait(self, run_id: str, *statuses: RunStatus, bound: float = 60.0) -> Run:
        """Poll until the run reaches one of ``statuses`` (a bound against hangs, not a timing assertion)."""
        wanted = statuses or (RunStatus.succeeded, RunStatus.failed, RunStatus.cancelled, RunStatus.stalled)
        deadline = time.monotonic() + bound
        while True:
            run = self.run(run_id)
            if run.status in wanted:
                return run
            if time.monotonic() > deadline:
                raise AssertionError(f"run {run_id} is still {run.status} (attempts {run.attempts})")
            await asyncio.sleep(0.05)


def _make_env(database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, client: redis.Redis) -> Env:
    namespace = f"tether_test_{uuid.uuid4().hex[:12]}"
    env = {
        "TETHER_DATABASE_URL": database.url,
        "TETHER_SECRET_MASTER_KEY": generate_master_key(),
        "TETHER_DEFINITION_MODULES": "support.ops_definition",
        "TETHER_STATE_DIR": str(tmp_path / "state"),
        "TETHER_BROKER_URL": REDIS_URL,
        "TETHER_BROKER_NAMESPACE": namespace,
        "TETHER_RUN_HEARTBEAT_SECONDS": "0.2",
        "TETHER_RUN_STALE_SECONDS": "1.5",
        "TETHER_RETRY_MIN_BACKOFF_SECONDS": "0.1",
        "TETHER_REAP_INTERVAL_SECONDS": "0.5",
        "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    worker_module.reset()
    return Env(Runtime.start(Settings()), env, namespace, client)


def _teardown(env: Env) -> None:
    for proc in env.procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
    worker_module.reset()
    env.runtime.close()
    keys = list(env.redis.scan_iter(f"{env.namespace}:*"))
    if keys:
        env.redis.delete(*keys)


@pytest.fixture
def ops(postgres_database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, redis_client: redis.Redis):
    """A runtime on a scratch PostgreSQL schema (shared with worker subprocesses) and a private Redis namespace."""
    env = _make_env(postgres_database, tmp_path, monkeypatch, redis_client)
    yield env
    _teardown(env)


@pytest.fixture
def ops_any_db(database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, redis_client: redis.Redis):
    """The same, once per database (SQLite file and PostgreSQL)."""
    env = _make_env(database, tmp_path, monkeypatch, redis_client)
    yield env
    _teardown(env)
