"""Queued runs on Dramatiq (DESIGN.md §6).

A queued run is one message for one actor, ``tether.execute_run``, whose only argument is the run ID: never a
credential, a config or a payload (those stay in the database). Recorded webhook deliveries go the same way on a
second actor, ``tether.process_deliveries``: one message per batch the endpoint committed, carrying only delivery
row IDs (``enqueue_deliveries``); a worker processes them through ``engine.webhooks.deliveries.process_deliveries``,
in chunks claimed and finished one statement each (``engine.webhooks.deliverystore``).
Outbound events to the host app go on a third, ``tether.deliver_events``, whose messages carry ``event_delivery`` row
IDs only (``enqueue_event_deliveries``, sent by the event sweep; ``engine.events.delivery``). The
broker comes from ``TETHER_BROKER_URL``:

- ``redis://…`` → ``RedisBroker`` (production; ``tether worker`` processes on as many machines as needed);
- ``amqp://…`` → ``RabbitmqBroker`` (pika);
- empty → the embedded default: Dramatiq's ``StubBroker`` with a ``dramatiq.Worker`` running in threads of the
  server process (``engine.processes.start_embedded``), for runs and deliveries alike (one embedded execution
  mode). Same actors, same middleware, same retry and deferral behaviour, same batched delivery messages, no extra
  service; messages live in memory, so queued runs are sent again when the server starts
  (``Executor.resubmit_queued``), the reaper recovers the running ones and its sweep queues deliveries left
  ``received``.

Middleware: ``AsyncIO`` runs the async actor on one event loop per process; ``Retries`` re-enqueues on
``dramatiq.Retry``, which the actor raises when the executor asked for another attempt. The delay is the executor's
decision: exponential backoff for transient errors, ``Retry-After`` for a provider 429 (the message is deferred
through the broker's delay queue, the worker thread never sleeps). Every other outcome is final in the run row and
the message is acknowledged; only an exception escaping the executor (the database unreachable before the run was
claimed) retries the message, ``INFRASTRUCTURE_RETRIES`` times with backoff. ``TimeLimit`` gets
``Policy.time_limit`` plus a grace period per message, as a backstop: the executor enforces the limit itself and
records ``time_limit_exceeded``. The run actor lets its worker thread go once only recording a success is left
(``_execute_run``), and ``FinishesDrain`` (last) has a stopping worker wait for those finishes.

Worker processes (``engine.processes``, which binds the actors to the process's runtime) also run the reaper
(``Executor.reap_stale``) every few seconds: a run left ``running`` by a
worker that died (its heartbeat stopped) is retried or failed with ``worker_lost``. Every minute it also sweeps
webhook deliveries left ``received`` (a hand-off that failed, a process that died) back onto the queue
(``engine.processes.sweep_deliveries``).

Environment knobs: ``TETHER_BROKER_NAMESPACE`` (Redis key prefix, default ``tether``), ``TETHER_QUEUE`` (default
``tether``), ``TETHER_REAP_INTERVAL_SECONDS`` (default 15), ``TETHER_DELIVERY_SWEEP_SECONDS`` (default 60) and
``TETHER_DELIVERY_SWEEP_AFTER_SECONDS`` (default 60), plus the executor's (``engine.runs.execution``).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import dramatiq
from dramatiq import Retry
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import AgeLimit, AsyncIO, Callbacks, Pipelines, Retries, ShutdownNotifications, TimeLimit

from engine.errors import ConfigurationError
from engine.events.delivery import deliver as deliver_events
from engine.observability import tracing
from engine.perloop import PerLoop
from engine.queue.tracing import TraceContext, on_event_loop
from engine.services import Services
from engine.settings import Settings
from engine.webhooks.deliveries import process_deliveries

log = logging.getLogger("tether.worker")

ACTOR_NAME = "tether.execute_run"
#: Processes recorded webhook deliveries; its one argument is a list of delivery row IDs.
DELIVERIES_ACTOR_NAME = "tether.process_deliveries"
#: Deliveries processed at the same time in one worker process, whatever the number of threads (messages in
#: flight). Processing is mostly CPU in one process, so more does not go faster; it only takes more database
#: connections at once than the pool keeps (measured with 64 threads: unbounded, 677 connections opened for 8,600
#: deliveries and 150-170 deliveries/s; bounded at 8, 2 connections and ~640/s).
DELIVERY_CONCURRENCY = 8
#: Sends outbound events to the host app; its one argument is a list of ``event_delivery`` row IDs.
EVENTS_ACTOR_NAME = "tether.deliver_events"
#: A semaphore references its loop once waited on: per loop, dropped when it closes (``engine.perloop``).
_delivery_gates: PerLoop[asyncio.Semaphore] = PerLoop()
#: Added to ``Policy.time_limit`` for Dramatiq's hard time limit (the executor's own limit fires first).
TIME_LIMIT_GRACE_SECONDS = 30.0
DEFAULT_TIME_LIMIT_SECONDS = 15 * 60.0


@dataclass
class _State:
    broker: dramatiq.Broker | None = None
    actor: dramatiq.Actor | None = None
    deliveries_actor: dramatiq.Actor | None = None
    events_actor: dramatiq.Actor | None = None
    runtime: Services | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


_state = _State()


def queue_name(settings: Settings | None = None) -> str:
    return (settings or Settings()).queue.strip() or "tether"


#: Retries of a message whose actor raised something other than ``Retry``: the executor records every operation
#: failure on the run itself, so such an exception is the infrastructure's (the database unreachable mid-claim).
#: The message is tried again with Dramatiq's exponential backoff (1 s doubling, at most 5 min between tries).
INFRASTRUCTURE_RETRIES = 12


def _retry_when(retries: int, exception: BaseException) -> bool:
    return isinstance(exception, Retry) or retries < INFRASTRUCTURE_RETRIES


def build_broker(url: str, *, namespace: str | None = None) -> dramatiq.Broker:
    """A broker for ``url`` with Tether's middleware stack (see the module docstring)."""
    middleware = [
        TraceContext(),  # first: its after-hooks run last, around Retries' re-enqueue (engine.queue.tracing)
        AgeLimit(),
        TimeLimit(time_limit=int((DEFAULT_TIME_LIMIT_SECONDS + TIME_LIMIT_GRACE_SECONDS) * 1000)),
        ShutdownNotifications(),
        Callbacks(),
        Pipelines(),
        Retries(  # type: ignore[arg-type]
            max_retries=None, retry_when=_retry_when, min_backoff=1_000, max_backoff=300_000
        ),
        AsyncIO(),
        FinishesDrain(),  # after AsyncIO: its after_worker_shutdown runs before the loop is stopped
    ]
    settings = Settings()
    namespace = namespace or settings.broker_namespace.strip() or "tether"
    if url.startswith(("redis://", "rediss://", "unix://")):
        from dramatiq.brokers.redis import RedisBroker

        # The messages a worker fetched and had not acknowledged when it died (or its host was cut off) are given
        # back to the queue by Dramatiq's maintenance once the worker's heartbeat is this old.
        return RedisBroker(
            url=url,
            namespace=namespace,
            middleware=middleware,
            heartbeat_timeout=int(settings.broker_heartbeat_timeout_seconds * 1000),
            maintenance_chance=settings.broker_maintenance_chance,
        )
    if url.startswith(("amqp://", "amqps://")):
        try:
            from dramatiq.brokers.rabbitmq import RabbitmqBroker
        except ImportError:
            raise ConfigurationError("TETHER_BROKER_URL is amqp:// but pika is not installed") from None
        return RabbitmqBroker(url=url, middleware=middleware)
    if url == "":
        return StubBroker(middleware=middleware)
    raise ConfigurationError("TETHER_BROKER_URL must be redis://, amqp:// or empty (embedded worker)")


def get_broker(settings: Settings | None = None) -> dramatiq.Broker:
    """This process's broker, built once from ``TETHER_BROKER_URL``, with the run and delivery actors declared."""
    with _state.lock:
        if _state.broker is None:
            settings = settings or Settings()
            broker = build_broker(settings.broker_url.strip(), namespace=settings.broker_namespace.strip() or None)
            dramatiq.set_broker(broker)
            _state.actor = dramatiq.Actor(
                on_event_loop(_execute_run),
                broker=broker,
                actor_name=ACTOR_NAME,
                queue_name=queue_name(settings),
                priority=0,
                options={},
            )
            _state.deliveries_actor = dramatiq.Actor(
                on_event_loop(_process_deliveries),
                broker=broker,
                actor_name=DELIVERIES_ACTOR_NAME,
                queue_name=queue_name(settings),
                priority=0,
                options={},
            )
            _state.events_actor = dramatiq.Actor(
                on_event_loop(_deliver_events),
                broker=broker,
                actor_name=EVENTS_ACTOR_NAME,
                queue_name=queue_name(settings),
                priority=0,
                options={},
            )
            _state.broker = broker
        return _state.broker


def reset() -> None:
    """Forget this process's broker (tests)."""
    with _state.lock:
        if _state.broker is not None:
            _state.broker.close()
        _state.broker = _state.actor = _state.deliveries_actor = _state.events_actor = None
        _state.runtime = None


#: A running Dramatiq worker: its threads consume this process's queue (``stop(timeout=ms)`` ends them).
Consumer = dramatiq.Worker


def start_consumer(runtime: Services, *, threads: int) -> Consumer:
    """Bind the actors to ``runtime`` and start ``threads`` worker threads consuming the broker's queue."""
    set_runtime(runtime)
    consumer = dramatiq.Worker(get_broker(runtime.settings), worker_threads=threads, worker_timeout=200)
    consumer.start()
    return consumer


def set_runtime(runtime: Services) -> None:
    """The runtime the actor executes runs with (the server's, for the embedded worker)."""
    _state.runtime = runtime


def _runtime() -> Services:
    if _state.runtime is None:
        # Bound by whoever starts this process's worker (``engine.processes.start_worker``).
        raise ConfigurationError("no runtime is bound to this process's queue actors; start them with start_worker")
    return _state.runtime


def enqueue(
    run_id: str, *, delay: float | None = None, time_limit: float | None = None, settings: Settings | None = None
) -> None:
    """Send the message of one queued run (only its ID)."""
    get_broker(settings)
    assert _state.actor is not None
    limit = (time_limit or DEFAULT_TIME_LIMIT_SECONDS) + TIME_LIMIT_GRACE_SECONDS
    options: dict[str, Any] = {"time_limit": int(limit * 1000)}
    if delay is not None and delay > 0:
        options["delay"] = int(delay * 1000)
    _state.actor.send_with_options(args=(run_id,), **options)


def enqueue_runs(
    runs: Sequence[tuple[str, float | None, Any]], *, settings: Settings | None = None
) -> list[BaseException | None]:
    """Send the messages of several queued runs, ``(run ID, time limit, captured trace context)`` each; answers
    ``None`` for each message sent, else the exception that kept it from the broker.

    On Redis, the messages go in one pipelined round trip (``_pipelined``): a dispatcher that created a batch of runs
    in one INSERT sends their messages together instead of one Lua call and one round trip each (measured: half the
    dispatching process's CPU per run was the sends). Other brokers send one by one.
    """
    broker = get_broker(settings)
    assert _state.actor is not None
    messages: list[tuple[dramatiq.Message[Any] | None, BaseException | None]] = []
    for run_id, time_limit, context in runs:
        limit = (time_limit or DEFAULT_TIME_LIMIT_SECONDS) + TIME_LIMIT_GRACE_SECONDS
        try:
            message = _state.actor.message_with_options(args=(run_id,), time_limit=int(limit * 1000))
            if not _is_redis(broker):
                with tracing.attached(context):
                    broker.enqueue(message)
                messages.append((None, None))
                continue
            # What RedisBroker.enqueue does before its Lua call: a Redis ID of the message's own, then the
            # middleware (TraceContext injects the caller's trace here, under the caller's context).
            message = message.copy(options={"redis_message_id": str(uuid.uuid4())})
            with tracing.attached(context):
                broker.emit_before("enqueue", message, None)
            messages.append((message, None))
        except Exception as exc:
            messages.append((None, exc))
    pending = [(index, message) for index, (message, _) in enumerate(messages) if message is not None]
    answers: list[BaseException | None] = [error for _, error in messages]
    if pending:
        for (index, message), error in zip(pending, _pipelined(broker, [m for _, m in pending]), strict=True):
            if error is None:
                broker.emit_after("enqueue", message, None)
            answers[index] = error
    return answers


def _is_redis(broker: dramatiq.Broker) -> bool:
    from dramatiq.brokers.redis import RedisBroker

    return isinstance(broker, RedisBroker)


def _pipelined(broker: Any, messages: Sequence[dramatiq.Message[Any]]) -> list[BaseException | None]:
    """``RedisBroker``'s ``enqueue`` Lua call for each message, all in one pipeline (Dramatiq 2.x's argument layout
    of its ``dispatch`` script, as ``RedisBroker._dispatch`` builds it); a script the server does not know yet is
    loaded and the pipeline sent again."""
    import redis

    script = broker.scripts["dispatch"]
    for attempt in (1, 2):
        pipe = broker.client.pipeline(transaction=False)
        for message in messages:
            args = [
                "enqueue",
                int(time.time() * 1000),
                message.queue_name,
                broker.broker_id,
                broker.heartbeat_timeout,
                broker.dead_message_ttl,
                broker._should_do_maintenance("enqueue"),
                broker._max_unpack_size(),
                message.options["redis_message_id"],
                message.encode(),
            ]
            pipe.evalsha(script.sha, 1, broker.namespace, *args)
        try:
            results = pipe.execute(raise_on_error=False)
        except redis.RedisError as exc:
            return [exc] * len(messages)
        if attempt == 1 and any(isinstance(r, redis.exceptions.NoScriptError) for r in results):
            script.sha = broker.client.script_load(script.script)  # a restarted server forgot it
            continue
        return [r if isinstance(r, BaseException) else None for r in results]
    raise AssertionError("unreachable")


#: Runs whose message's worker thread was let go while their success is still being recorded, per event loop
#: (``_execute_run``); a stopping worker waits for them (``FinishesDrain``).
#: Tasks reference their loop: per loop, dropped when it closes (``engine.perloop``).
_finishing: PerLoop[set[asyncio.Task[Any]]] = PerLoop()
#: Longest a stopping worker waits for the successes still being recorded.
FINISH_DRAIN_SECONDS = 10.0


async def _execute_run(run_id: str) -> None:
    """The run actor. A worker thread holds its message until the run's outcome is known, but no longer: once only
    recording a success is left (``Executor.execute``'s ``released``), the thread is let go and the finish batch
    commits on the loop meanwhile. The threads are what bounds a worker's runs in flight, and a finish batch's
    commit was a third of each message's time in its thread (issue 22).

    Nothing is lost by acknowledging the message before that commit: a worker that dies then leaves the run
    ``running`` with its heartbeat stopping, which the reaper recovers exactly as it recovers a run whose worker
    died before its finish with the message unacknowledged (that message, delivered again, finds the run claimed
    and is skipped). A worker that stops waits for the finishes in flight (``FinishesDrain``)."""
    loop = asyncio.get_running_loop()
    released: asyncio.Future[None] = loop.create_future()
    task = loop.create_task(_runtime().executor.execute(run_id, released=released))
    try:
        await asyncio.wait((task, released), return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:  # the message's time limit, a shutdown: the run's own cleanup is awaited
        task.cancel()
        await asyncio.wait((task,), timeout=1.0)
        raise
    if not task.done():
        pending = _finishing.setdefault(set, loop)
        pending.add(task)
        task.add_done_callback(functools.partial(_recorded, pending))
        return
    outcome = task.result()
    if outcome.retry_in is not None:
        why = "deferred (rate limited)" if outcome.deferred else "retried"
        raise Retry(f"run {run_id} {why}", delay=max(0, int(outcome.retry_in * 1000)))


def _recorded(pending: set[asyncio.Task[Any]], task: asyncio.Task[Any]) -> None:
    pending.discard(task)
    if not task.cancelled() and task.exception() is not None:
        # As when the finish failed with the message held: the run stays ``running`` and the reaper recovers it.
        log.error("recording a run's success failed (%s); the reaper recovers it", type(task.exception()).__name__)


async def finishes_recorded(timeout: float = FINISH_DRAIN_SECONDS) -> int:
    """Wait (``timeout`` at most) for the successes this loop's released runs are still recording; how many are
    left unrecorded."""
    pending = _finishing.get(asyncio.get_running_loop())
    if not pending:
        return 0
    _, left = await asyncio.wait(list(pending), timeout=timeout)
    return len(left)


class FinishesDrain(dramatiq.Middleware):
    """A stopping worker waits (``FINISH_DRAIN_SECONDS`` at most) for the successes its loop is still recording
    (``_execute_run``) before the ``AsyncIO`` middleware stops that loop. Listed after ``AsyncIO``: Dramatiq runs the
    ``after_*`` hooks in reverse order."""

    def after_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        from dramatiq.asyncio import get_event_loop_thread

        thread = get_event_loop_thread()
        if thread is None or not thread.loop.is_running():
            return

        try:
            left = asyncio.run_coroutine_threadsafe(finishes_recorded(), thread.loop).result(FINISH_DRAIN_SECONDS + 5)
        except Exception as exc:  # the loop is gone already: the reaper recovers what was not recorded
            log.warning("waiting for the runs' finishes failed (%s)", type(exc).__name__)
            return
        if left:
            log.warning("%d runs' successes not recorded before the worker stopped; the reaper recovers them", left)


def enqueue_deliveries(row_ids: list[str], *, settings: Settings | None = None) -> None:
    """Send one message carrying recorded deliveries' row IDs (never a body, a header or a secret): the webhook
    endpoint sends one per committed batch (through ``DeliverySender``), so the broker round trip is shared by the
    whole batch; the sweep sends one per pass.

    A failure here loses nothing: the deliveries are already committed as ``received``, and the sweep
    (``engine.webhooks.deliveries.redeliver_pending``) processes them.
    """
    if not row_ids:
        return
    get_broker(settings)
    assert _state.deliveries_actor is not None
    _state.deliveries_actor.send(list(row_ids))


class DeliverySender:
    """Sends committed batches of delivery row IDs to the broker from one background thread: one message per batch,
    or per few batches when they arrive together (``LINGER``, ``MAX_MESSAGE``).

    The endpoint's batch only puts its row IDs here, so an acknowledgement never waits on the broker, and a slow or
    unreachable broker never holds up recording. A batch that cannot be sent (the broker refuses it, the process
    stops first, or more than ``MAX_PENDING`` IDs are already waiting) is logged and dropped: its deliveries are
    committed as ``received``, and the sweep (``Reaper``, ``engine.webhooks.deliveries.redeliver_pending``) queues them
    again.
    """

    MAX_PENDING = 100_000
    #: Row IDs per message at most: batches waiting together are merged up to this.
    MAX_MESSAGE = 500
    #: Seconds the thread waits after a batch arrives so the next few join its message: fewer, larger messages and
    #: fewer thread wake-ups competing with the server for the GIL (measured: +5-8% deliveries/s, half the context
    #: switches). Processing starts this much later; acknowledgements do not wait for it.
    LINGER = 0.02
    #: Seconds the thread waits for a batch before it ends (the next ``put`` starts another): an app that stops
    #: receiving, or is gone, leaves no thread behind holding its sender, and a restart costs a thread start.
    IDLE_EXIT = 10.0

    def __init__(
        self,
        settings: Settings | None = None,
        send: Callable[[list[str]], None] | None = None,
        *,
        linger: float = LINGER,
        idle_exit: float = IDLE_EXIT,
    ) -> None:
        self._send = send or (lambda row_ids: enqueue_deliveries(row_ids, settings=settings))
        self.linger = linger
        self.idle_exit = idle_exit
        self._cond = threading.Condition()
        self._pending: deque[list[str]] = deque()
        self._contexts: deque[Any] = deque()  # one per pending batch (``tracing.capture``)
        self._waiting = 0
        self._busy = False
        self._thread: threading.Thread | None = None
        #: Messages sent, batches that failed, batches dropped for want of room.
        self.sent = self.failed = self.dropped = 0

    def put(self, row_ids: list[str]) -> None:
        with self._cond:
            if self._waiting + len(row_ids) > self.MAX_PENDING:
                self.dropped += 1
                log.warning("%d deliveries not queued (the broker is behind); left for the sweep", len(row_ids))
                return
            self._pending.append(list(row_ids))
            self._contexts.append(tracing.capture())  # the recording request's trace, for the message's span
            self._waiting += len(row_ids)
            # An idle thread clears ``_thread`` under the lock as it ends, so a batch put then starts a new one.
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="tether-delivery-sender", daemon=True)
                self._thread.start()
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._pending:
                    self._busy = False
                    self._cond.notify_all()
                    if not self._cond.wait(self.idle_exit) and not self._pending:
                        if self._thread is threading.current_thread():
                            self._thread = None
                        return
                self._busy = True
            if self.linger > 0:
                time.sleep(self.linger)  # let the batches committed meanwhile join this message
            with self._cond:
                row_ids = self._pending.popleft()
                contexts = [self._contexts.popleft()]
                while self._pending and len(row_ids) + len(self._pending[0]) <= self.MAX_MESSAGE:
                    row_ids += self._pending.popleft()
                    contexts.append(self._contexts.popleft())
                self._waiting -= len(row_ids)
            try:
                # The message continues the first batch's trace and links the others' (one message, many requests).
                with (
                    tracing.attached(contexts[0]),
                    tracing.span(
                        "tether.webhook.handoff", {"tether.deliveries": len(row_ids)}, links=tracing.links(contexts[1:])
                    ),
                ):
                    self._send(row_ids)
                self.sent += 1
            except Exception as exc:
                self.failed += 1
                log.warning(
                    "handing off %d recorded deliveries failed (%s); left for the sweep",
                    len(row_ids),
                    type(exc).__name__,
                )

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """Wait until every batch put so far was sent or given up (tests, shutdown); ``False`` on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._pending and not self._busy, timeout)


async def _process_deliveries(row_ids: list[str]) -> None:
    loop = asyncio.get_running_loop()  # the AsyncIO middleware runs every actor of the process on one loop
    gate = _delivery_gates.setdefault(lambda: asyncio.Semaphore(DELIVERY_CONCURRENCY), loop)
    # Claimed and finished per chunk; the handlers one at a time within a message (no task per ID), at most
    # DELIVERY_CONCURRENCY across the messages in flight.
    await process_deliveries(_runtime(), row_ids, concurrency=1, gate=gate)


def enqueue_event_deliveries(row_ids: list[str], *, settings: Settings | None = None) -> None:
    """Send one message carrying outbound event deliveries' row IDs (never a body or a secret). Losing it loses
    nothing: the event sweep queues a delivery again once ``TETHER_EVENT_REQUEUE_AFTER_SECONDS`` passed unclaimed."""
    if not row_ids:
        return
    get_broker(settings)
    assert _state.events_actor is not None
    _state.events_actor.send(list(row_ids))


async def _deliver_events(row_ids: list[str]) -> None:
    # Every attempt's outcome is recorded on its delivery row and retries are the sweep's; only an exception escaping
    # (the database unreachable) retries the message, like any infrastructure failure (INFRASTRUCTURE_RETRIES).
    await deliver_events(_runtime(), row_ids)
