"""The long-running processes: ``tether serve``'s embedded worker, ``tether worker`` and ``tether scheduler``, and
what they share: garbage collection and logging (no credential in an access log line, exceptions by type only).

With the CLI and the API these are the surfaces that hold a runtime (``engine.runtime``); the queue actors
(``engine.queue.worker``) are bound to it here, when a process starts its worker.
"""

from __future__ import annotations

import asyncio
import copy
import gc
import logging
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from urllib.parse import unquote_plus

from engine.errors import ConfigurationError
from engine.events import delivery as event_delivery
from engine.observability import tracing
from engine.observability.logs import JsonFormatter, TextFormatter, sink_filters
from engine.queue.worker import Consumer, enqueue_deliveries, enqueue_event_deliveries, queue_name, start_consumer
from engine.runs.scheduler import Scheduler, SchedulerThread
from engine.runtime import Runtime
from engine.webhooks.deliveries import delivery_lease, pending_deliveries

log = logging.getLogger("tether.worker")

#: Allocations between young collections, and the collections of each generation before the next one is collected
#: (CPython's defaults: 700, 10, 10). Measured on the webhook bench (one uvicorn process, 50 connections): p99
#: 40 → 26 ms and 2,900 → 3,300 deliveries/s; a young collection of 20,000 objects still takes about a millisecond.
GC_THRESHOLDS = (20_000, 20, 20)


def tune_gc() -> None:
    """Freeze the start-up heap and collect less often; call once start-up is done.

    Start-up allocates ~200k objects that live as long as the process (definitions, the registry, compiled CEL,
    SQLAlchemy and pydantic metadata). Without ``gc.freeze()`` every full collection walks them again: a busy webhook
    server spent 15-25% of its core in collections of 150-300 ms each, which is where its p99 latency came from.
    Objects created later are collected as usual; nothing frozen is ever freed, which is what start-up objects are
    for anyway. Request handling allocates many short-lived containers, so young collections at CPython's default
    threshold (every 700 allocations) run thousands of times a second; ``GC_THRESHOLDS`` spaces them out.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


# -- logs keep no credentials-in-transit ------------------------------------------------------------------------

#: Query parameters whose values are credentials in transit: the OAuth authorization ``code`` and ``state`` on the
#: callback, and the browser-binding ``session`` of ``/v1/oauth/start``. The access log records every request line.
REDACTED_QUERY_PARAMETERS = frozenset({"code", "state", "session"})
REDACTED = "[redacted]"


def redact_query(target: str) -> str:
    """``target`` (a request path with its query string) with the values of ``REDACTED_QUERY_PARAMETERS`` replaced.

    Names are compared after percent-decoding and case-folding, so ``?%63ode=`` or ``?Code=`` hide nothing."""
    path, sep, query = target.partition("?")
    if not sep:
        return target
    parts = []
    for part in query.split("&"):
        name, eq, _value = part.partition("=")
        hidden = eq and unquote_plus(name).strip().lower() in REDACTED_QUERY_PARAMETERS
        parts.append(f"{name}={REDACTED}" if hidden else part)
    return f"{path}?{'&'.join(parts)}"


class RedactQuery(logging.Filter):
    """On uvicorn's access log, whose records carry ``(client, method, path?query, http version, status)``."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            record.args = (*args[:2], redact_query(args[2]), *args[3:])
        return True


class TypeOnly(logging.Filter):
    """Exceptions are logged by type only (``docs/errors.md``): a traceback's text may hold anything, such as SQL
    bound parameters or a provider's answer. Applied to every handler of the long-running commands, so it covers
    what escapes our own handlers too (uvicorn's ``Exception in ASGI application``, dramatiq's unhandled actor
    errors, asyncio's unretrieved task exceptions)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info:
            kind = record.exc_info[0]
            record.msg = f"{record.getMessage()} [{kind.__name__ if kind is not None else 'exception'}]"
            record.args = None
            record.exc_info = None
            record.exc_text = None
        record.stack_info = None
        return True


WORKER_TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s%(tether_context)s"


def uvicorn_log_config(level: str = "INFO", log_format: str = "text") -> dict[str, Any]:
    """uvicorn's logging config with ``RedactQuery`` on the access log, ``TypeOnly`` and the sink's secret scrubbing
    and IDs (``engine.observability.logs``) everywhere, in ``log_format`` (``TETHER_LOG_FORMAT``: JSON lines or
    uvicorn's text); the root logger (``tether.*``, dramatiq, asyncio) goes to uvicorn's default handler at
    ``level`` (``TETHER_LOG_LEVEL``)."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["filters"] = {
        "redact_query": {"()": "engine.processes.RedactQuery"},
        "type_only": {"()": "engine.processes.TypeOnly"},
        "scrub_secrets": {"()": "engine.observability.logs.ScrubSecrets"},
        "log_context": {"()": "engine.observability.logs.LogContext"},
    }
    config["handlers"]["default"]["filters"] = ["type_only", "scrub_secrets", "log_context"]
    config["handlers"]["access"]["filters"] = ["redact_query", "type_only", "scrub_secrets", "log_context"]
    if log_format == "json":
        config["formatters"] = {"json": {"()": "engine.observability.logs.JsonFormatter"}}
        config["handlers"]["default"]["formatter"] = "json"
        config["handlers"]["access"]["formatter"] = "json"
    else:
        config["formatters"]["default"]["fmt"] = "%(levelprefix)s %(message)s%(tether_context)s"
    config["root"] = {"handlers": ["default"], "level": level.upper()}
    return config


def configure_worker_logging(level: int | str | None = None, log_format: str | None = None) -> None:
    """``logging.basicConfig`` for ``tether worker`` and ``tether scheduler`` at ``level`` (default
    ``TETHER_LOG_LEVEL``), with ``TypeOnly`` and the sink's filters on its handler, in ``log_format`` (default
    ``TETHER_LOG_FORMAT``)."""
    if level is None or log_format is None:
        from engine.settings import Settings

        settings = Settings()
        level = settings.log_level.upper() if level is None else level
        log_format = settings.log_format if log_format is None else log_format
    logging.basicConfig(level=level, format=WORKER_TEXT_FORMAT)
    for handler in logging.getLogger().handlers:
        install_sink(handler, log_format)


def install_sink(handler: logging.Handler, log_format: str) -> None:
    """``TypeOnly``, the secret scrubbing and the IDs on ``handler`` (once), and the formatter of ``log_format``."""
    if not any(isinstance(f, TypeOnly) for f in handler.filters):
        handler.addFilter(TypeOnly())
        for sink in sink_filters():
            handler.addFilter(sink)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter(WORKER_TEXT_FORMAT))


# -- worker processes and the embedded default -------------------------------------------------------------------


class Reaper(threading.Thread):
    """Every ``interval`` seconds, recover runs whose worker died; every ``TETHER_DELIVERY_SWEEP_SECONDS`` (default
    60), queue webhook deliveries left ``received`` (``sweep_deliveries``)."""

    def __init__(self, runtime: Runtime, interval: float) -> None:
        super().__init__(name="tether-reaper", daemon=True)
        self.runtime = runtime
        self.interval = interval
        self.stopped = threading.Event()

    def run(self) -> None:
        sweep_every = self.runtime.settings.delivery_sweep_seconds
        next_sweep = time.monotonic() + sweep_every
        while not self.stopped.wait(self.interval):
            try:
                self.runtime.executor.reap_stale()
            except Exception as exc:  # keep reaping; the next pass retries
                log.warning("reaper pass failed: %s", type(exc).__name__)
            if time.monotonic() >= next_sweep:
                next_sweep = time.monotonic() + sweep_every
                try:
                    sweep_deliveries(self.runtime)
                except Exception as exc:  # the next sweep retries
                    log.warning("delivery sweep failed: %s", type(exc).__name__)

    def stop(self) -> None:
        self.stopped.set()


def sweep_deliveries(runtime: Runtime, *, limit: int = 500) -> int:
    """Queue deliveries still ``received`` ``TETHER_DELIVERY_SWEEP_AFTER_SECONDS`` (default 60) after they were
    recorded and not being processed (``engine.webhooks.deliveries.pending_deliveries``): their hand-off failed or their
    process died. One message for all of them; processing them twice is harmless (the claim is fenced)."""
    after = timedelta(seconds=runtime.settings.delivery_sweep_after_seconds)
    row_ids = pending_deliveries(runtime.db, older_than=after, lease=delivery_lease(runtime), limit=limit)
    if row_ids:
        log.info("delivery sweep: queueing %d deliveries left received", len(row_ids))
        enqueue_deliveries(row_ids, settings=runtime.settings)
    return len(row_ids)


#: Deliveries per message: one message is sent one delivery after another by one worker thread, so a slow receiver
#: holds up at most this many; the rest go to other threads.
EVENT_MESSAGE = 10


class EventSweep(threading.Thread):
    """Every ``TETHER_EVENT_SWEEP_SECONDS`` (default 1), queue the outbound event deliveries that are due: new ones
    (the outbox rows of a committed state change), due retries, and those whose worker's lease expired (a worker
    killed mid-delivery). Several processes may sweep: marking a delivery queued is a conditional UPDATE, so each
    due delivery goes into one message."""

    def __init__(self, runtime: Runtime) -> None:
        super().__init__(name="tether-event-sweep", daemon=True)
        self.runtime = runtime
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self.runtime.settings.event_sweep_seconds):
            try:
                sweep_events(self.runtime)
            except Exception as exc:  # the next sweep retries
                log.warning("event sweep failed: %s", type(exc).__name__)

    def stop(self) -> None:
        self.stopped.set()


def sweep_events(runtime: Runtime, *, limit: int = 500) -> int:
    """One pass of ``EventSweep``: the due deliveries in messages of ``EVENT_MESSAGE`` IDs; returns how many."""
    row_ids = event_delivery.due(runtime.db, runtime.settings, limit=limit)
    for start in range(0, len(row_ids), EVENT_MESSAGE):
        enqueue_event_deliveries(row_ids[start : start + EVENT_MESSAGE], settings=runtime.settings)
    return len(row_ids)


@dataclass
class WorkerHandle:
    worker: Consumer
    reaper: Reaper | None
    extra: list[Any] = field(default_factory=list)

    def stop(self, timeout_ms: int = 10_000) -> None:
        for item in self.extra:
            item.stop()
        if self.reaper is not None:
            self.reaper.stop()
        self.worker.stop(timeout=timeout_ms)


def start_worker(runtime: Runtime, *, threads: int = 8, reap: bool = True) -> WorkerHandle:
    """Start a Dramatiq worker (threads of this process) executing runs with ``runtime``."""
    worker = start_consumer(runtime, threads=threads)
    reaper = Reaper(runtime, runtime.settings.reap_interval_seconds) if reap else None
    handle = WorkerHandle(worker, reaper)
    if reaper is not None:
        reaper.start()
        events = EventSweep(runtime)
        events.start()
        handle.extra.append(events)
    return handle


def start_embedded(runtime: Runtime, *, threads: int = 4, schedule_interval: float = 5.0) -> WorkerHandle:
    """The embedded default (``TETHER_BROKER_URL`` empty): an in-process worker (queued runs and webhook deliveries,
    through the same actors as ``tether worker``), reaper (with its delivery sweep) and scheduler."""
    handle = start_worker(runtime, threads=threads)
    runtime.executor.resubmit_queued()  # their messages were in the memory of the process that stopped
    scheduler = SchedulerThread(runtime, interval=schedule_interval)
    scheduler.start()
    handle.extra.append(scheduler)
    return handle


def run_worker(*, threads: int = 64, processes: int = 1) -> None:
    """``tether worker``: run worker processes until SIGINT/SIGTERM."""
    if processes > 1:
        import multiprocessing

        context = multiprocessing.get_context("spawn")
        children = [context.Process(target=run_worker, kwargs={"threads": threads}) for _ in range(processes)]
        for child in children:
            child.start()

        def forward(signum: int, _frame: Any) -> None:
            for child in children:
                if child.pid is not None:
                    os.kill(child.pid, signum)

        signal.signal(signal.SIGTERM, forward)
        signal.signal(signal.SIGINT, forward)
        for child in children:
            child.join()
        return
    configure_worker_logging()  # again in a spawned child, which inherits no logging set-up
    runtime = Runtime.start()
    tracing.configure(runtime.settings, service="tether-worker")
    if not runtime.settings.broker_url:
        raise ConfigurationError("tether worker needs TETHER_BROKER_URL (the embedded default runs in `tether serve`)")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    handle = start_worker(runtime, threads=threads)
    tune_gc()
    log.info("tether worker started (%d threads, queue %s)", threads, queue_name(runtime.settings))
    print(f"tether worker ready pid={os.getpid()}", flush=True)
    stop.wait()
    handle.stop()
    tracing.shutdown()  # export the spans still batched
    runtime.close()


def run_scheduler(*, interval: float = 5.0, iterations: int | None = None) -> int:
    """``tether scheduler``: tick until SIGINT/SIGTERM (or ``iterations`` passes); returns runs enqueued."""
    runtime = Runtime.start()
    scheduler = Scheduler(runtime)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    total = 0
    passes = 0
    # One loop for the process's life (provider clients of the subscription pass are cached per loop).
    with asyncio.Runner() as runner:
        while not stop.is_set() and (iterations is None or passes < iterations):
            try:
                total += len(scheduler.tick())
                runner.run(scheduler.subscriptions())
                runtime.executor.reap_stale()
                scheduler.prune_if_due()
            except Exception as exc:
                log.warning("scheduler pass failed: %s", type(exc).__name__)
            passes += 1
            stop.wait(interval)
    runtime.close()
    return total
