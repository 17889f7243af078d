"""Queue depth and the oldest message's age, read from a real Redis broker at scrape time."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import redis
from dramatiq import Message
from prometheus_client.parser import text_string_to_metric_families

from engine.observability import metrics
from engine.observability.queue_depth import queue_collectors
from engine.queue.worker import build_broker
from engine.settings import Settings
from support.workers import REDIS_URL


@pytest.fixture
def namespace(redis_client: redis.Redis) -> Iterator[str]:
    name = f"tether_metrics_{uuid.uuid4().hex[:12]}"
    yield name
    keys = list(redis_client.scan_iter(f"{name}:*"))
    if keys:
        redis_client.delete(*keys)


def scrape(settings: Settings) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = metrics.exposition(queue_collectors(settings)).decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name.startswith("tether_queue_")
    }


def test_depth_counts_ready_and_delayed_messages_and_age_is_the_oldest_ready_ones(namespace: str) -> None:
    settings = Settings(broker_url=REDIS_URL, broker_namespace=namespace, queue="metrics")
    assert scrape(settings) == {
        ("tether_queue_depth", (("queue", "metrics"), ("state", "ready"))): 0,
        ("tether_queue_depth", (("queue", "metrics"), ("state", "delayed"))): 0,
        ("tether_queue_oldest_age_seconds", (("queue", "metrics"),)): 0,
    }
    broker = build_broker(REDIS_URL, namespace=namespace)
    broker.declare_queue("metrics")
    # The oldest was enqueued an hour ago (its timestamp says so); no assertion depends on the clock's speed.
    old = Message(queue_name="metrics", actor_name="a", args=("r1",), kwargs={}, options={})
    old = old.copy(message_timestamp=old.message_timestamp - 3_600_000)
    broker.enqueue(old)
    broker.enqueue(Message(queue_name="metrics", actor_name="a", args=("r2",), kwargs={}, options={}))
    broker.enqueue(Message(queue_name="metrics", actor_name="a", args=("r3",), kwargs={}, options={}), delay=600_000)
    found = scrape(settings)
    assert found[("tether_queue_depth", (("queue", "metrics"), ("state", "ready")))] == 2
    assert found[("tether_queue_depth", (("queue", "metrics"), ("state", "delayed")))] == 1
    assert found[("tether_queue_oldest_age_seconds", (("queue", "metrics"),))] >= 3600
    broker.close()


def test_an_unreachable_broker_leaves_the_queue_series_out_and_the_scrape_answers() -> None:
    settings = Settings(broker_url="redis://127.0.0.1:1/0", broker_namespace="none", queue="metrics")
    assert scrape(settings) == {}
    assert b"tether_runs_total" in metrics.exposition(queue_collectors(settings))


def test_brokers_other_than_redis_export_no_queue_series() -> None:
    assert queue_collectors(Settings(broker_url="")) == []
    assert queue_collectors(Settings(broker_url="amqp://guest:guest@127.0.0.1:5672/")) == []
