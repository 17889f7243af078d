"""Queued runs through the real Redis broker and a real ``tether worker`` subprocess."""

from __future__ import annotations

import asyncio
import os
import signal

from sqlmodel import select

from engine.store.tables import Run, RunStatus


async def test_enqueue_run_succeeds(ops) -> None:
    integration = ops.connect()
    ops.start_worker()
    run_id = await ops.runtime.executor.dispatch(integration, "Echo", trigger="api", config={"value": "hi"})
    run = await ops.wait(run_id)
    assert run.status == RunStatus.succeeded
    assert run.result == {"echo": "hi", "n": 1}
    assert run.attempts == 1
    assert run.trigger == "api"
    assert run.started_at is not None and run.finished_at is not None and run.heartbeat_at is not None
    assert run.error_code == ""


async def test_transient_failure_is_retried_then_succeeds(ops) -> None:
    integration = ops.connect()
    ops.start_worker()
    run_id = await ops.runtime.executor.dispatch(integration, "Flaky", trigger="api", config={"fail_times": 2})
    run = await ops.wait(run_id)
    assert run.status == RunStatus.succeeded
    assert run.attempts == 3
    assert run.result == {"attempt": 3}


async def test_transient_failures_beyond_max_retries_fail(ops) -> None:
    integration = ops.connect()
    ops.start_worker()
    run_id = await ops.runtime.executor.dispatch(integration, "Flaky", trigger="api", config={"fail_times": 10})
    run = await ops.wait(run_id)
    assert run.status == RunStatus.failed
    assert run.attempts == 4  # max_retries=3
    assert run.error_code == "provider_unavailable"


async def test_permanent_error_is_not_retried_and_is_redacted(ops) -> None:
    integration = ops.connect(token="tok-very-secret-123")
    ops.start_worker()
    run_id = await ops.runtime.executor.dispatch(integration, "Broken", trigger="api")
    run = await ops.wait(run_id)
    assert run.status == RunStatus.failed
    assert run.attempts == 1
    assert run.error_code == "provider_error"
    assert "tok-very-secret-123" not in run.error_message
    assert "[redacted]" in run.error_message


async def test_429_defers_through_the_queue_without_blocking_the_worker(ops) -> None:
    integration = ops.connect()
    ops.start_worker(threads=1)  # one thread: if the 429 slept in the worker, nothing else could run
    executor = ops.runtime.executor
    limited = await executor.dispatch(
        integration, "Limited", trigger="api", config={"limited_times": 1, "retry_after": 6}
    )
    deferred = await ops.wait(limited, RunStatus.queued, RunStatus.succeeded, RunStatus.failed)
    while deferred.attempts < 1 or deferred.status == RunStatus.running:
        deferred = await ops.wait(limited, RunStatus.queued, RunStatus.succeeded, RunStatus.failed)
    assert deferred.status == RunStatus.queued
    assert deferred.error_code == "rate_limited"
    # The deferred message sits in the broker's delay queue with an eta ~Retry-After ahead.
    delayed = ops.redis.hlen(f"{ops.namespace}:tether.DQ.msgs")
    assert delayed == 1
    other = await executor.dispatch(integration, "Echo", trigger="api", config={"value": "meanwhile"})
    done = await ops.wait(other)
    assert done.status == RunStatus.succeeded
    assert ops.run(limited).status == RunStatus.queued  # still waiting out its Retry-After
    final = await ops.wait(limited)
    assert final.status == RunStatus.succeeded
    assert final.attempts == 2
    assert final.finished_at > done.finished_at


async def test_worker_killed_mid_run_is_recovered_by_retry(ops) -> None:
    integration = ops.connect()
    first = ops.start_worker()
    run_id = await ops.runtime.executor.dispatch(integration, "Slow", trigger="api", config={"seconds": 60})
    await ops.wait(run_id, RunStatus.running)
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    ops.start_worker()  # its reaper finds the stale heartbeat and re-enqueues the run
    run = await ops.wait(run_id)
    assert run.status == RunStatus.succeeded
    assert run.attempts == 2
    assert run.result == {"attempt": 2}


async def test_worker_killed_mid_run_without_retries_ends_stalled_with_reason(ops) -> None:
    integration = ops.connect()
    first = ops.start_worker()
    run_id = await ops.runtime.executor.dispatch(integration, "SlowOnce", trigger="api", config={"seconds": 60})
    await ops.wait(run_id, RunStatus.running)
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    ops.start_worker()
    run = await ops.wait(run_id)
    assert run.status == RunStatus.stalled  # it did not fail: it stopped where its worker died (issue 23)
    assert run.error_code == "worker_lost"
    assert "stopped responding" in run.error_message
    with ops.runtime.db.session() as session:
        assert not session.exec(select(Run).where(Run.status == RunStatus.running)).all()


async def test_cancel_a_running_run(ops) -> None:
    integration = ops.connect()
    ops.start_worker(threads=1)  # one thread: the Echo below runs only if the cancelled run really stopped
    executor = ops.runtime.executor
    run_id = await executor.dispatch(
        integration, "Slow", trigger="api", config={"seconds": 120, "first_attempt_only": False}
    )
    await ops.wait(run_id, RunStatus.running)
    view = executor.cancel(run_id)
    assert view.status == "cancelled"
    # The worker notices at its next heartbeat and stops; a later run is served, and the cancel stands.
    other = await executor.dispatch(integration, "Echo", trigger="api")
    assert (await ops.wait(other)).status == RunStatus.succeeded
    assert ops.run(run_id).status == RunStatus.cancelled
    assert ops.run(run_id).attempts == 1


async def test_one_heartbeat_stamps_every_run_in_flight_and_stops_only_the_cancelled_one(ops) -> None:
    """In one process: three runs share the heartbeat; cancelling one stops it alone, the others finish."""
    integration = ops.connect()
    executor = ops.runtime.executor
    executor.enqueue = lambda run_id, delay, limit: None  # executed below, in this process
    ids = [
        await executor.dispatch(
            integration, "Slow", trigger="api", config={"seconds": seconds, "first_attempt_only": False}
        )
        for seconds in (1.0, 600.0, 1.0)
    ]
    tasks = [asyncio.ensure_future(executor.execute(run_id)) for run_id in ids]
    await ops.wait(ids[1], RunStatus.running)
    executor.cancel(ids[1])
    # The 600 s run returns only if the heartbeat stopped it (the bound is against a hang, not a timing check).
    outcomes = await asyncio.wait_for(asyncio.gather(*tasks), timeout=60)
    assert [o.status for o in outcomes] == [RunStatus.succeeded, RunStatus.cancelled, RunStatus.succeeded]
    assert [ops.run(run_id).status for run_id in ids] == [o.status for o in outcomes]
    assert all(ops.run(run_id).heartbeat_at is not None for run_id in ids)


async def test_the_embedded_worker_resends_queued_runs_whose_messages_were_in_memory(ops) -> None:
    """A server with the in-memory broker stopped with runs queued: at start-up they are sent again, and a run whose
    operation is no longer declared is failed with a reason instead of waiting forever."""
    integration = ops.connect()
    executor = ops.runtime.executor
    executor.enqueue = lambda run_id, delay, limit: None  # the messages die with the process
    waiting = [await executor.dispatch(integration, "Echo", trigger="api") for _ in range(3)]
    orphan = await executor.dispatch(integration, "Echo", trigger="api")
    with ops.runtime.db.session() as session:
        run = session.get_one(Run, orphan)
        run.operation = "Removed"
        session.add(run)
    sent: list[tuple[str, float | None]] = []
    executor.enqueue = lambda run_id, delay, limit: sent.append((run_id, limit))
    assert executor.resubmit_queued() == waiting
    assert [run_id for run_id, _ in sent] == waiting and all(limit for _, limit in sent)
    assert ops.run(orphan).status == RunStatus.failed and ops.run(orphan).error_code == "operation_unknown"
    assert [(await executor.execute(run_id)).status for run_id in waiting] == [RunStatus.succeeded] * 3
    assert executor.resubmit_queued() == []


async def test_a_message_whose_claim_hit_a_database_error_is_retried(ops) -> None:
    """An exception escaping the executor (here: the claim's database call failing once) is the infrastructure's:
    the message is retried with backoff instead of being dropped with the run left queued."""
    from sqlalchemy.exc import OperationalError

    from engine import processes
    from engine.queue import worker as worker_module

    integration = ops.connect()
    executor = ops.runtime.executor
    real_claim = executor._claims.handle
    failures: list[int] = []

    def flaky_claim(ids: list[str]) -> list[object]:
        if not failures:
            failures.append(len(ids))
            raise OperationalError("UPDATE run …", {}, ConnectionError("server closed the connection"))
        return real_claim(ids)

    executor._claims.handle = flaky_claim
    handle = processes.start_worker(ops.runtime, threads=2, reap=False)  # in this process, so the patch holds
    try:
        run_id = await executor.dispatch(integration, "Echo", trigger="api", config={"value": "again"})
        run = await ops.wait(run_id)
    finally:
        handle.stop()
    assert failures == [1]
    assert run.status == RunStatus.succeeded and run.attempts == 1  # the failed claim changed nothing
    assert worker_module._retry_when(worker_module.INFRASTRUCTURE_RETRIES, RuntimeError()) is False
