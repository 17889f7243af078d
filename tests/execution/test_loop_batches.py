"""The queue-overhead paths of issue 22: claims and finishes on the loop's own PostgreSQL connection
(``engine.runs.loopstore``), the unnest INSERT of created runs, pipelined run messages (``enqueue_runs``) and the
lighter hop onto Dramatiq's event loop (``engine.queue.loophop``)."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import psycopg
import pytest
import redis
from dramatiq.asyncio import EventLoopThread
from dramatiq.threading import Interrupt, raise_thread_exception
from sqlalchemy.exc import DBAPIError
from sqlmodel import select

from engine.errors import TetherError
from engine.queue import loophop
from engine.runs import loopstore
from engine.runs.execution import Executor
from engine.runs.runstore import NewRun, Success, claim_runs, create_runs, new_run
from engine.store.batching import Coalescer
from engine.store.database import Database
from engine.store.tables import (
    EventEndpoint,
    EventOutbox,
    Integration,
    IntegrationStatus,
    OperationState,
    Run,
    RunStatus,
)
from support.workers import REDIS_URL


@pytest.fixture
def integration(postgres_database: Database) -> Integration:
    row = Integration(tenant_id="t", owner_id="o", definition_id="ops", status=IntegrationStatus.connected)
    with postgres_database.session() as session:
        session.add(row)
    return row


def _new(integration: Integration, **fields: Any) -> NewRun:
    values = {"integration_id": integration.id, "tenant_id": integration.tenant_id, "operation": "Echo"}
    values.update(fields)
    return NewRun(integration.id, lambda _i: new_run(trigger="api", config={"value": "x"}, **values))


def _runs(db: Database, integration: Integration, count: int) -> list[str]:
    created = create_runs(db, [_new(integration) for _ in range(count)])
    return [run.id for run in created if isinstance(run, Run)]


def _endpoint(tenant: str) -> EventEndpoint:
    # Nothing is delivered in these tests: the sealed secret's bytes are never opened.
    return EventEndpoint(
        tenant_id=tenant,
        url="https://example.test/hook",
        event_types=["run.succeeded"],
        key_id="k",
        secret_ciphertext=b"sealed",
    )


def _stored(db: Database, run_id: str) -> Run:
    with db.session() as session:
        return session.get_one(Run, run_id)


# -- several batches in flight -------------------------------------------------------------------------------------


async def test_items_arriving_while_a_batch_waits_start_the_next_one() -> None:
    """``max_in_flight=2``: while the first batch waits (on its commit), the items arriving meanwhile form a second
    batch at once instead of waiting for it; a third batch waits for one of the two."""
    release = asyncio.Event()
    batches: list[list[int]] = []

    async def slow(items: list[int]) -> list[int]:
        batches.append(items)
        if items[0] == 0:
            await release.wait()
        return items

    coalescer: Coalescer[int, int] = Coalescer("test", slow, max_in_flight=2)
    first = asyncio.ensure_future(coalescer.submit(0))
    await asyncio.sleep(0.01)  # batch [0] in flight
    second = [asyncio.ensure_future(coalescer.submit(n)) for n in (1, 2)]
    assert await asyncio.gather(*second) == [1, 2]  # answered while [0] still waits
    assert not first.done() and batches == [[0], [1, 2]]
    release.set()
    assert await first == 0
    assert await coalescer.submit(3) == 3 and batches[-1] == [3]  # a lone caller still goes through at once


# -- create: the unnest INSERT ------------------------------------------------------------------------------------


def test_created_runs_are_stored_whole(postgres_database: Database, integration: Integration) -> None:
    [run_id] = _runs(postgres_database, integration, 1)
    stored = _stored(postgres_database, run_id)
    assert stored.status == RunStatus.queued and stored.config == {"value": "x"} and stored.attempts == 0
    assert stored.result is None and stored.checkpoint is None and stored.queued_at.tzinfo is not None


def test_a_value_too_long_is_refused_not_truncated(postgres_database: Database, integration: Integration) -> None:
    """The INSERT casts to unsized arrays, so the column's own length check still applies."""
    with pytest.raises((DBAPIError, psycopg.errors.StringDataRightTruncation)):
        create_runs(postgres_database, [_new(integration, operation="x" * 300)])
    with postgres_database.session() as session:
        assert session.exec(select(Run)).all() == []


def test_a_build_gets_the_integration_as_the_orm_loads_it(
    postgres_database: Database, integration: Integration
) -> None:
    """The creation reads the integrations on the thread's own connection (``engine.store.threaddb``): each build
    gets the row as the ORM would give it (timestamps in UTC), an unknown integration answers ``not_found``."""
    seen: list[Integration] = []

    def build(record: Integration) -> Run:
        seen.append(record)
        return _new(record).build(record)

    answers = create_runs(postgres_database, [NewRun(integration.id, build), NewRun("missing", build)])
    assert isinstance(answers[0], Run) and isinstance(answers[1], TetherError) and answers[1].code == "not_found"
    with postgres_database.session() as session:
        loaded = session.get_one(Integration, integration.id)
    for name in Integration.model_fields:
        assert getattr(seen[0], name) == getattr(loaded, name), name
    assert seen[0].created_at.utcoffset().total_seconds() == 0


def test_a_broken_creation_connection_is_replaced(postgres_database: Database, integration: Integration) -> None:
    """The database ended the thread's connection (a restart, a failover): that batch fails, the next one opens a
    new connection and goes through."""
    [first] = _runs(postgres_database, integration, 1)
    with postgres_database.thread_connection_for("create-runs").connection() as raw:
        backend = raw.info.backend_pid
    with postgres_database.engine.connect() as other:
        other.exec_driver_sql(f"SELECT pg_terminate_backend({backend})")
    with pytest.raises(psycopg.OperationalError):
        _runs(postgres_database, integration, 1)
    [second] = _runs(postgres_database, integration, 1)
    assert _stored(postgres_database, second).status == RunStatus.queued and first != second


# -- claim on the loop --------------------------------------------------------------------------------------------


async def test_the_loop_claim_claims_each_run_once(postgres_database: Database, integration: Integration) -> None:
    first, second = _runs(postgres_database, integration, 2)
    connections = postgres_database.loop_connection_for("test")
    claimed = await loopstore.claim(connections, [first, first, second, "missing"])
    assert claimed[0] is not None and claimed[0].run.attempts == 1 and claimed[0].run.status == RunStatus.running
    assert claimed[0].integration is not None and claimed[0].integration.id == integration.id
    assert claimed[0].state is None and claimed[1] is None and claimed[3] is None
    assert claimed[2] is not None and claimed[2].run.id == second
    assert await loopstore.claim(connections, [first]) == [None]  # already running
    assert claim_runs(postgres_database, [second]) == [None]  # both paths see the same rows


async def test_the_loop_claim_gives_the_values_of_the_thread_claim(
    postgres_database: Database, integration: Integration
) -> None:
    """Timestamps in UTC, JSON decoded, the operation state joined: the same ``Claimed`` whichever path ran."""
    with postgres_database.session() as session:
        session.add(OperationState(integration_id=integration.id, operation="Echo", cursor={"page": 3}))
    on_loop, in_thread = _runs(postgres_database, integration, 2)
    [loop_claim] = await loopstore.claim(postgres_database.loop_connection_for("test"), [on_loop])
    [thread_claim] = claim_runs(postgres_database, [in_thread])
    assert loop_claim is not None and thread_claim is not None
    assert loop_claim.state is not None and loop_claim.state.cursor == {"page": 3}
    assert loop_claim.run.config == thread_claim.run.config == {"value": "x"}
    for name in ("queued_at", "started_at", "heartbeat_at"):
        value = getattr(loop_claim.run, name)
        assert value.utcoffset().total_seconds() == 0 and type(value) is type(getattr(thread_claim.run, name))
    assert loop_claim.integration is not None and thread_claim.integration is not None
    for name in Integration.model_fields:
        assert getattr(loop_claim.integration, name) == getattr(thread_claim.integration, name), name


# -- finish on the loop -------------------------------------------------------------------------------------------


async def test_a_loop_finish_stores_each_result_and_a_cancel_wins(
    postgres_database: Database, integration: Integration
) -> None:
    ids = _runs(postgres_database, integration, 3)
    connections = postgres_database.loop_connection_for("test")
    await loopstore.claim(connections, ids)
    with postgres_database.session() as session:  # the second is cancelled while it executes
        cancelled = session.get_one(Run, ids[1])
        cancelled.status = RunStatus.cancelled
        session.add(cancelled)
    outcome = await loopstore.succeed(
        connections,
        [
            Success(ids[0], integration.id, "Echo", {"echo": "a"}, keeps_state=False),
            Success(ids[1], integration.id, "Echo", {"echo": "b"}, keeps_state=False),
            Success(ids[2], integration.id, "Echo", None, keeps_state=False),
        ],
    )
    assert outcome == [True, False, True]
    stored = [_stored(postgres_database, run_id) for run_id in ids]
    assert [r.status for r in stored] == [RunStatus.succeeded, RunStatus.cancelled, RunStatus.succeeded]
    assert stored[0].result == {"echo": "a"} and stored[1].result is None and stored[2].result is None
    assert stored[0].finished_at is not None and stored[1].finished_at is None


async def test_a_tenant_with_event_endpoints_is_left_to_the_transaction(
    postgres_database: Database, integration: Integration
) -> None:
    """When an endpoint could want the ``run.succeeded`` event, the one statement changes nothing (the event must be
    written in the transaction of the finish)."""
    with postgres_database.session() as session:
        session.add(_endpoint("t"))
    ids = _runs(postgres_database, integration, 2)
    connections = postgres_database.loop_connection_for("test")
    await loopstore.claim(connections, ids)
    items = [Success(run_id, integration.id, "Echo", None, keeps_state=False) for run_id in ids]
    assert await loopstore.succeed(connections, items) is None
    assert {_stored(postgres_database, run_id).status for run_id in ids} == {RunStatus.running}


def _executor(db: Database) -> Executor:
    class Context:  # what the executor's finish path reads of the engine context
        def __init__(self, database: Database) -> None:
            self.db = database
            self.settings = type("S", (), {})()

    executor = Executor.__new__(Executor)
    executor.context = Context(db)  # type: ignore[assignment]
    return executor


async def test_a_mixed_finish_batch_writes_states_and_events_where_needed(
    postgres_database: Database, integration: Integration
) -> None:
    """One batch: a results-only run (one statement on the loop), a run keeping its operation state and, for a
    tenant with an endpoint, runs whose events go with them (the transaction in a thread); each gets its answer."""
    other = Integration(tenant_id="listening", owner_id="o", definition_id="ops", status=IntegrationStatus.connected)
    with postgres_database.session() as session:
        session.add(other)
        session.add(_endpoint("listening"))
    plain, stateful = _runs(postgres_database, integration, 2)
    [heard] = _runs(postgres_database, other, 1)
    cancelled = _runs(postgres_database, integration, 1)[0]
    claim_runs(postgres_database, [plain, stateful, heard])  # ``cancelled`` is never claimed: not running
    answers = await _executor(postgres_database)._succeed_on_loop(
        [
            Success(plain, integration.id, "Echo", {"n": 1}, keeps_state=False),
            Success(stateful, integration.id, "Echo", {"n": 2}, keeps_state=True, cursor={"page": 2}),
            Success(heard, other.id, "Echo", {"n": 3}, keeps_state=False),
            Success(cancelled, integration.id, "Echo", {"n": 4}, keeps_state=False),
        ]
    )
    assert answers == [True, True, True, False]
    assert [_stored(postgres_database, r).result for r in (plain, stateful, heard)] == [{"n": 1}, {"n": 2}, {"n": 3}]
    with postgres_database.session() as session:
        state = session.exec(select(OperationState)).one()
        events = session.exec(select(EventOutbox)).all()
    assert state.cursor == {"page": 2} and state.last_run_id == stateful
    assert [(e.tenant_id, e.event_type, e.payload["data"]["run_id"]) for e in events] == [
        ("listening", "run.succeeded", heard)
    ]


# -- pipelined run messages ---------------------------------------------------------------------------------------


def test_pipelined_messages_reach_the_queue_with_their_time_limits(redis_client: redis.Redis) -> None:
    from engine.queue import worker as worker_module
    from engine.settings import Settings

    namespace = f"test_pipe_{time.monotonic_ns()}"
    settings = Settings(broker_url=REDIS_URL, broker_namespace=namespace)
    worker_module.reset()
    try:
        answers = worker_module.enqueue_runs([("run-a", 5.0, None), ("run-b", None, None)], settings=settings)
        assert answers == [None, None]
        broker = worker_module.get_broker(settings)
        queued = redis_client.hgetall(f"{namespace}:{worker_module.queue_name(settings)}.msgs")
        import json

        bodies = sorted((json.loads(body) for body in queued.values()), key=lambda body: body["args"][0])
        assert [body["args"] for body in bodies] == [["run-a"], ["run-b"]]
        limits = [body["options"]["time_limit"] for body in bodies]
        grace = worker_module.TIME_LIMIT_GRACE_SECONDS
        assert limits == [int((5.0 + grace) * 1000), int((worker_module.DEFAULT_TIME_LIMIT_SECONDS + grace) * 1000)]
        assert broker is worker_module.get_broker(settings)
    finally:
        worker_module.reset()
        keys = list(redis_client.scan_iter(f"{namespace}:*"))
        if keys:
            redis_client.delete(*keys)


def test_an_unreachable_broker_fails_every_run_of_the_batch(postgres_database: Database) -> None:
    """A batch whose messages cannot be sent: each of its runs is failed with ``enqueue_failed`` (never left queued
    without a message) and each caller gets the 503."""
    from engine.queue import worker as worker_module
    from engine.settings import Settings

    settings = Settings(broker_url="redis://127.0.0.1:1/0", broker_namespace="unreachable")
    integration = Integration(tenant_id="t", owner_id="o", definition_id="ops", status=IntegrationStatus.connected)
    with postgres_database.session() as session:
        session.add(integration)
    executor = _executor(postgres_database)
    executor.enqueue = executor._batched_enqueue = lambda *_: None  # type: ignore[method-assign]
    executor.enqueue_many = lambda runs: worker_module.enqueue_runs(runs, settings=settings)
    executor._sending = threading.local()
    sent: list[str] = []

    def after(run: Run) -> None:
        sent.append(run.id)
        executor.submit(run.id, time_limit=5.0)

    worker_module.reset()
    try:
        items = [NewRun(integration.id, _new(integration).build, after) for _ in range(3)]
        answers = executor._create_batch(items)
    finally:
        worker_module.reset()
    assert len(sent) == 3 and all(isinstance(a, TetherError) and a.code == "enqueue_failed" for a in answers)
    for run_id in sent:
        stored = _stored(postgres_database, run_id)
        assert stored.status == RunStatus.failed and stored.error_code == "enqueue_failed"


# -- the hop onto the event loop ----------------------------------------------------------------------------------


@pytest.fixture
def loop_thread() -> Any:
    import logging

    thread = EventLoopThread(logging.getLogger("test"), interrupt_check_ival=0.05)
    thread.start(timeout=5)
    yield thread
    thread.stop()


def test_the_hop_returns_results_and_raises_errors(loop_thread: EventLoopThread) -> None:
    async def double(value: int) -> int:
        await asyncio.sleep(0)
        return value * 2

    async def broken() -> None:
        raise ValueError("from the loop")

    results: list[int] = []
    threads = [
        threading.Thread(target=lambda n=n: results.append(loophop.run_coroutine(loop_thread, double(n))))
        for n in range(50)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert sorted(results) == [n * 2 for n in range(50)]  # many threads at once: each gets its own answer
    with pytest.raises(ValueError, match="from the loop"):
        loophop.run_coroutine(loop_thread, broken())


def test_an_interrupt_cancels_the_coroutine_and_waits_for_its_cleanup(loop_thread: EventLoopThread) -> None:
    """Dramatiq's time limit raises ``Interrupt`` in the worker thread: the task is cancelled on the loop and the
    thread waits for the coroutine's ``finally`` before raising."""
    cleaned = threading.Event()
    started = threading.Event()
    outcome: list[BaseException] = []

    async def long_running() -> None:
        started.set()
        try:
            await asyncio.sleep(60)
        finally:
            cleaned.set()

    def work() -> None:
        try:
            loophop.run_coroutine(loop_thread, long_running())
        except BaseException as exc:
            outcome.append(exc)

    worker = threading.Thread(target=work)
    worker.start()
    assert started.wait(10)
    assert worker.ident is not None
    raise_thread_exception(worker.ident, Interrupt)
    worker.join(timeout=10)
    assert [type(exc) for exc in outcome] == [Interrupt] and cleaned.is_set()
