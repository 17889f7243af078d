"""The hand-off to Dramatiq: with ``TETHER_BROKER_URL`` set, each committed batch of deliveries is one message on the
real Redis broker carrying only row IDs, and a real ``tether worker`` subprocess processes them. A broker that cannot
be reached loses nothing: the deliveries stay ``received`` for the sweep."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from sqlmodel import select

from engine.custody.crypto import generate_master_key
from engine.queue import worker as worker_module
from engine.store.database import Database
from engine.store.tables import DeliveryStatus, Run, WebhookDelivery
from engine.webhooks.deliveries import record_delivery, redeliver_pending
from engine.webhooks.targets import load_target
from support import webhook_definition as hooks
from support.webhook_kit import Setup, build_setup, event_body, sign
from support.workers import REDIS_URL, start_worker

TESTS = Path(__file__).resolve().parents[1]


def deliveries(setup: Setup) -> list[WebhookDelivery]:
    with setup.runtime.db.session() as session:
        return list(session.exec(select(WebhookDelivery)))


async def post_many(client: Any, setup: Setup, ids: list[str]) -> list[Any]:
    secret = setup.secret("github")

    async def one(delivery: str) -> Any:
        body = event_body("github", "item.changed", delivery, item={"id": delivery, "name": "n"})
        headers = sign("github", body, secret, delivery=delivery)
        return await client.post(f"/v1/webhooks/{setup.token('github')}", content=body, headers=headers)

    return await asyncio.gather(*(one(d) for d in ids))


class Queued:
    def __init__(self, setup: Setup, env: dict[str, str], namespace: str, client: redis.Redis) -> None:
        self.setup, self.env, self.namespace, self.redis = setup, env, namespace, client
        self.procs: list[subprocess.Popen[str]] = []

    def messages(self) -> list[dict[str, Any]]:
        """The messages waiting in the queue, as the broker stores them."""
        queue = f"{self.namespace}:{worker_module.queue_name()}"
        stored = self.redis.hgetall(queue + ".msgs")
        return [json.loads(stored[m]) for m in self.redis.lrange(queue, 0, -1)]

    def start_worker(self) -> subprocess.Popen[str]:
        proc = start_worker(self.env)
        self.procs.append(proc)
        return proc

    async def wait_final(self, count: int, bound: float = 60.0) -> list[WebhookDelivery]:
        """Poll until ``count`` deliveries are final (a bound against hangs, not a timing assertion)."""
        deadline = time.monotonic() + bound
        while True:
            rows = deliveries(self.setup)
            if sum(r.status != DeliveryStatus.received for r in rows) >= count:
                return rows
            if time.monotonic() > deadline:
                raise AssertionError(f"{[r.status for r in rows]} after {bound} s")
            await asyncio.sleep(0.1)


@pytest.fixture
async def queued(
    postgres_database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, redis_client: redis.Redis
) -> Any:
    """The webhook setup on a scratch PostgreSQL schema with a private Redis namespace as the broker."""
    namespace = f"tether_test_{uuid.uuid4().hex[:12]}"
    env = {
        "TETHER_DATABASE_URL": postgres_database.url,
        "TETHER_SECRET_MASTER_KEY": generate_master_key(),
        "TETHER_DEFINITION_MODULES": "support.webhook_definition",
        "TETHER_STATE_DIR": str(tmp_path / "state"),
        "TETHER_BROKER_URL": REDIS_URL,
        "TETHER_BROKER_NAMESPACE": namespace,
        "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    worker_module.reset()
    setup = await build_setup(postgres_database, monkeypatch)  # the operator secrets it sets reach the worker too
    state = Queued(setup, env, namespace, redis_client)
    yield state
    for proc in state.procs:
        if proc.poll() is None:
            proc.terminate()
        proc.wait(timeout=30)
    worker_module.reset()
    keys = list(redis_client.scan_iter(f"{namespace}:*"))
    if keys:
        redis_client.delete(*keys)


async def test_batches_are_queued_as_row_ids_and_processed_by_a_worker(queued: Queued, app_for: Any) -> None:
    setup = queued.setup
    assert setup.runtime.settings.broker_url == REDIS_URL
    app, client = app_for(setup.runtime)
    ids = [f"q-{i}" for i in range(30)]
    responses = await post_many(client, setup, ids)
    assert [r.status_code for r in responses] == [202] * 30
    rows = deliveries(setup)
    assert len(rows) == 30 and {r.status for r in rows} == {DeliveryStatus.received}
    assert hooks.SEEN == []  # nothing processed in the server process

    assert app.state.webhook_sender.wait_idle()  # sent from its own thread: the answers did not wait for Redis
    messages = queued.messages()
    recorder = app.state.webhook_recorder
    assert len(messages) == app.state.webhook_sender.sent <= recorder.batches < 30  # a message per batch or fewer
    assert {m["actor_name"] for m in messages} == {worker_module.DELIVERIES_ACTOR_NAME}
    queued_ids = [row_id for m in messages for row_id in m["args"][0]]
    assert sorted(queued_ids) == sorted(r.id for r in rows)
    assert all(m["args"] == [m["args"][0]] and m["kwargs"] == {} for m in messages)  # row IDs and nothing else
    text = json.dumps(messages)
    assert "item.changed" not in text and setup.secret("github") not in text and "q-1" not in text

    queued.start_worker()
    rows = await queued.wait_final(30)
    assert {r.status for r in rows} == {DeliveryStatus.processed}
    assert all(r.attempts == 1 for r in rows)
    with setup.runtime.db.session() as session:
        runs = session.exec(select(Run).where(Run.trigger == "webhook")).all()
    assert sorted(r.delivery_id for r in runs) == sorted(r.id for r in rows)
    assert {r.status for r in runs} == {"succeeded"}

    # A duplicate afterwards is answered from the database and queues nothing.
    [again] = await post_many(client, setup, ["q-1"])
    assert app.state.webhook_sender.wait_idle()
    assert again.json()["status"] == "duplicate" and queued.messages() == []


async def test_an_unreachable_broker_leaves_the_delivery_for_the_sweep(
    database: Database, app_for: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Recorded and acknowledged; the enqueue fails (nothing listens on the broker's port); the sweep processes it."""
    monkeypatch.setenv("TETHER_BROKER_URL", "redis://127.0.0.1:1/0")
    worker_module.reset()
    try:
        down = await build_setup(database, monkeypatch)
        assert down.runtime.settings.broker_url == "redis://127.0.0.1:1/0"
        app, client = app_for(down.runtime)
        with caplog.at_level(logging.WARNING):
            [response] = await post_many(client, down, ["lost-1"])
            assert app.state.webhook_sender.wait_idle()
        assert response.status_code == 202 and response.json()["status"] == "received"
        assert app.state.webhook_sender.failed == 1
        assert any("left for the sweep" in r.getMessage() for r in caplog.records)
        [row] = deliveries(down)
        assert row.status == DeliveryStatus.received and hooks.SEEN == []
        [outcome] = await redeliver_pending(down.runtime, older_than=timedelta(0))
        assert outcome.status == DeliveryStatus.processed
        assert deliveries(down)[0].status == DeliveryStatus.processed and hooks.SEEN == [("GhItemChanged", "lost-1")]
    finally:
        worker_module.reset()


async def test_the_worker_sweep_queues_deliveries_left_received(queued: Queued) -> None:
    """A delivery recorded whose hand-off never happened (a failed enqueue, a process that died after the commit):
    a ``tether worker``'s reaper sweeps it onto the queue and the worker processes it."""
    setup = queued.setup
    body = event_body("github", "item.changed", "swept-1")
    headers = {"x-github-event": "item.changed", "x-github-delivery": "swept-1"}
    target = load_target(setup.runtime, setup.token("github"))
    recorded = record_delivery(setup.runtime.db, target, "swept-1", body, headers)
    assert queued.messages() == []
    queued.env.update(
        {
            "TETHER_REAP_INTERVAL_SECONDS": "0.2",
            "TETHER_DELIVERY_SWEEP_SECONDS": "0.2",
            "TETHER_DELIVERY_SWEEP_AFTER_SECONDS": "0",
        }
    )
    queued.start_worker()
    [row] = await queued.wait_final(1)
    assert (row.id, row.status, row.attempts) == (recorded.row_id, DeliveryStatus.processed, 1)
