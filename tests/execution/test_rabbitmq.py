"""Queued runs through the real RabbitMQ broker (``TETHER_BROKER_URL=amqp://…``) and a real worker subprocess.

The same actor, middleware and executor as with Redis: only the broker differs, so these cover the broker-specific
parts (declaring the queue, delivery, acknowledgement, and retries through RabbitMQ's delay queue).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from conftest import service_unavailable
from engine.queue import worker as worker_module
from engine.runtime import Runtime
from engine.settings import Settings
from engine.store.database import Database
from engine.store.tables import RunStatus
from execution.conftest import Env, _make_env, _teardown
from support.workers import REDIS_URL

AMQP_URL = os.environ.get("TETHER_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")


@pytest.fixture
def rabbit_ops(postgres_database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Env]:
    import pika

    try:
        connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    except pika.exceptions.AMQPError as exc:
        service_unavailable("RabbitMQ", type(exc).__name__)
    queue = f"tether_test_{uuid.uuid4().hex[:12]}"
    monkeypatch.setenv("TETHER_QUEUE", queue)
    env = _make_env(postgres_database, tmp_path, monkeypatch, redis.Redis.from_url(REDIS_URL))
    env.env.update(TETHER_BROKER_URL=AMQP_URL, TETHER_QUEUE=queue)
    monkeypatch.setenv("TETHER_BROKER_URL", AMQP_URL)
    worker_module.reset()
    env.runtime.close()
    env.runtime = Runtime.start(Settings())
    yield env
    _teardown(env)
    channel = connection.channel()
    for name in (queue, f"{queue}.DQ", f"{queue}.XQ"):
        channel.queue_delete(name)
    connection.close()


async def test_enqueue_run_succeeds_through_rabbitmq(rabbit_ops: Env) -> None:
    broker = worker_module.get_broker()
    assert type(broker).__name__ == "RabbitmqBroker"
    integration = rabbit_ops.connect()
    rabbit_ops.start_worker()
    run_id = await rabbit_ops.runtime.executor.dispatch(integration, "Echo", trigger="api", config={"value": "mq"})
    run = await rabbit_ops.wait(run_id)
    assert run.status == RunStatus.succeeded
    assert run.result == {"echo": "mq", "n": 1}
    assert run.attempts == 1


async def test_transient_failure_is_retried_through_the_rabbitmq_delay_queue(rabbit_ops: Env) -> None:
    integration = rabbit_ops.connect()
    rabbit_ops.start_worker()
    run_id = await rabbit_ops.runtime.executor.dispatch(integration, "Flaky", trigger="api", config={"fail_times": 2})
    run = await rabbit_ops.wait(run_id)
    assert run.status == RunStatus.succeeded
    assert run.attempts == 3
