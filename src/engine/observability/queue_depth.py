"""Queue depth and age, read from the Redis broker when ``/metrics`` is scraped.

Read at scrape time rather than kept as gauges: no process owns the queue, and a gauge written by each worker would
not add up across processes. Three cheap commands per scrape: ``LLEN`` of the ready list and of the delayed list
(Dramatiq keeps ``{namespace}:{queue}`` and ``{namespace}:{queue}.DQ``), and the oldest ready message's enqueue
time (``LINDEX 0``, then its body in ``….msgs``). Messages a worker has prefetched have left the list: depth is what
waits for a worker. Only the Redis broker is read (RabbitMQ and the embedded worker export nothing here).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator

import redis
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from engine.settings import Settings

log = logging.getLogger("tether.metrics")

#: A scrape must answer even when Redis does not: each command gets at most this long.
REDIS_TIMEOUT_SECONDS = 1.0


class QueueDepth(Collector):
    def __init__(self, url: str, namespace: str, queue: str) -> None:
        self._client = redis.Redis.from_url(
            url, socket_timeout=REDIS_TIMEOUT_SECONDS, socket_connect_timeout=REDIS_TIMEOUT_SECONDS
        )
        self._ready = f"{namespace}:{queue}"
        self._delayed = f"{namespace}:{queue}.DQ"
        self._queue = queue

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            ready, delayed = self._client.llen(self._ready), self._client.llen(self._delayed)
            age = self._oldest_age()
        except (redis.RedisError, OSError) as exc:
            # The scrape still answers with every other metric; the gap in these series says the broker was down.
            log.warning("queue depth not read: %s", type(exc).__name__)
            return
        depth = GaugeMetricFamily(
            "tether_queue_depth",
            "Messages waiting in the broker, by queue and state (ready, delayed).",
            labels=["queue", "state"],
        )
        depth.add_metric([self._queue, "ready"], ready)
        depth.add_metric([self._queue, "delayed"], delayed)
        yield depth
        oldest = GaugeMetricFamily(
            "tether_queue_oldest_age_seconds",
            "Seconds since the oldest ready message was enqueued (0 when none waits).",
            labels=["queue"],
        )
        oldest.add_metric([self._queue], age)
        yield oldest

    def _oldest_age(self) -> float:
        message_id = self._client.lindex(self._ready, 0)
        if message_id is None:
            return 0.0
        raw = self._client.hget(f"{self._ready}.msgs", message_id)
        if raw is None:  # fetched between the two commands
            return 0.0
        enqueued_ms = json.loads(raw).get("message_timestamp")
        if not isinstance(enqueued_ms, int | float):
            return 0.0
        return max(0.0, time.time() - enqueued_ms / 1000)


def queue_collectors(settings: Settings) -> list[Collector]:
    """The collectors for this deployment's broker: one for a Redis broker, none otherwise."""
    url = settings.broker_url.strip()
    if not url.startswith(("redis://", "rediss://", "unix://")):
        return []
    return [QueueDepth(url, settings.broker_namespace.strip() or "tether", settings.queue.strip() or "tether")]
