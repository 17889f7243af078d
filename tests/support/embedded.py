"""The embedded worker of ``tether serve`` in a test: the queue actors on Dramatiq's ``StubBroker`` with an
in-process ``dramatiq.Worker``, so deliveries (and queued runs) are processed by the real actors, and a test waits for
that processing to be over instead of sleeping."""

from __future__ import annotations

import asyncio
from typing import Any

from engine.queue import worker as worker_module
from engine.queue.worker import Consumer
from engine.runtime import Runtime


class EmbeddedWorker:
    """Started with ``start(app)`` (the app's runtime binds the actors, as ``start_embedded`` does); ``drain()`` waits
    until every batch the apps' senders took was sent, processed and acknowledged."""

    def __init__(self) -> None:
        self.consumer: Consumer | None = None
        self.runtime: Runtime | None = None
        self.apps: list[Any] = []

    def start(self, app: Any, *, threads: int = 2, keep_queued: bool = False) -> EmbeddedWorker:
        """``keep_queued``: the messages already in this process's in-memory broker stay, for this worker to take."""
        runtime: Runtime = app.state.runtime
        if self.consumer is None:
            if not keep_queued:
                worker_module.reset()  # a broker of an earlier test, its messages and its runtime binding are gone
            assert not runtime.settings.broker_url, "the embedded worker runs on the StubBroker only"
            self.runtime = runtime
            self.consumer = worker_module.start_consumer(runtime, threads=threads)
        assert runtime is self.runtime, "one runtime is bound to this process's actors"
        self.apps.append(app)
        return self

    def _join(self) -> None:
        assert self.consumer is not None and self.runtime is not None, "start(app) first"
        for app in self.apps:
            sender = getattr(app.state, "webhook_sender", None)
            if sender is not None:
                assert sender.wait_idle(), "the delivery sender did not hand its batches over"
        broker = worker_module.get_broker(self.runtime.settings)
        broker.join(worker_module.queue_name(self.runtime.settings))  # type: ignore[attr-defined]
        self.consumer.join()

    async def drain(self) -> None:
        """Wait (in a thread: the test's loop stays free) for the senders, the broker's queue and the worker."""
        await asyncio.to_thread(self._join)

    def stop(self) -> None:
        if self.consumer is not None:
            self.consumer.stop(timeout=10_000)
            self.consumer = None
        worker_module.reset()


def die_after_acknowledging(app: Any) -> None:
    """No worker was started: the delivery's message reached the in-memory broker, and the process stops before any
    worker took it (its memory, the message with it, is gone); the row stays ``received`` for the sweep."""
    sender = app.state.webhook_sender
    assert sender.wait_idle() and sender.sent >= 1 and sender.failed == 0
    worker_module.reset()
