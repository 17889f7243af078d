"""The one execution path: inline and queued runs alike, ingest counts and cursor, reconcile, schedules."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func
from sqlmodel import select

from engine.runs.execution import RunView
from engine.runs.scheduler import Scheduler, reconcile
from engine.store.tables import OperationState, Run, RunStatus, utcnow
from ingest.models.asset import Asset


async def test_inline_and_queued_runs_have_the_same_result_and_shape(ops) -> None:
    integration = ops.connect()
    ops.start_worker()
    executor = ops.runtime.executor
    inline = await executor.run_inline(integration, "Echo", trigger="api", config={"value": "x"})
    queued_id = await executor.dispatch(integration, "Echo", trigger="api", config={"value": "x"})
    await ops.wait(queued_id)
    queued = executor.view(queued_id)
    assert inline.result == queued.result == {"echo": "x", "n": 1}
    a, b = inline.run.model_dump(), queued.model_dump()
    assert a.keys() == b.keys()
    volatile = {"id", "queued_at", "started_at", "finished_at", "duration_ms"}
    assert {k: v for k, v in a.items() if k not in volatile} == {k: v for k, v in b.items() if k not in volatile}
    assert all(a[k] is not None for k in ("started_at", "finished_at", "duration_ms"))


async def test_inline_operation_uses_the_stored_credential(ops) -> None:
    integration = ops.connect()
    done = await ops.runtime.executor.run_inline(integration, "Ping", trigger="api")
    assert done.result == {"ok": True}
    assert done.run.status == "succeeded" and done.run.attempts == 1


async def test_inline_transient_failure_fails_at_once(ops) -> None:
    integration = ops.connect()
    done = await ops.runtime.executor.run_inline(integration, "Flaky", config={"fail_times": 1})
    assert done.run.status == "failed" and done.run.error_code == "provider_unavailable"
    assert done.result is None


def _assets(ops, integration: str) -> int:
    with ops.runtime.db.session() as session:
        return session.exec(select(func.count()).select_from(Asset).where(Asset.integration_id == integration)).one()


def _state(ops, integration: str, operation: str) -> OperationState | None:
    with ops.runtime.db.session() as session:
        return session.exec(
            select(OperationState).where(
                OperationState.integration_id == integration, OperationState.operation == operation
            )
        ).first()


async def test_ingest_counts_and_cursor_advance_only_on_success(ops_any_db) -> None:
    ops = ops_any_db
    integration = ops.connect()
    executor = ops.runtime.executor
    executor.enqueue = lambda run_id, delay, limit: None  # run in-process below: same path as the worker
    first = await executor.dispatch(integration, "AssetSync", trigger="api", config={"count": 3})
    await executor.execute(first)
    run = ops.run(first)
    assert run.status == RunStatus.succeeded
    assert (run.payloads_out, run.records_ingested, run.records_rejected) == (3, 3, 0)
    assert run.result == {"received": 3, "persisted": 3, "filtered": 0, "rejected": 0}
    assert _state(ops, integration, "AssetSync").cursor == 3

    failing = await executor.dispatch(integration, "AssetSync", trigger="api", config={"count": 2, "fail": True})
    await executor.execute(failing)
    run = ops.run(failing)
    assert run.status == RunStatus.failed and run.error_code == "provider_error"
    state = _state(ops, integration, "AssetSync")
    assert state.cursor == 3 and state.last_run_id == first  # not advanced by the failed run

    again = await executor.dispatch(integration, "AssetSync", trigger="api", config={"count": 2})
    await executor.execute(again)
    assert ops.run(again).records_ingested == 2
    assert _state(ops, integration, "AssetSync").cursor == 5
    assert _assets(ops, integration) == 5


async def test_a_second_delivery_of_the_same_message_does_not_run_twice(ops_any_db) -> None:
    ops = ops_any_db
    integration = ops.connect()
    executor = ops.runtime.executor
    executor.enqueue = lambda run_id, delay, limit: None
    run_id = await executor.dispatch(integration, "Echo", trigger="api")
    first = await executor.execute(run_id)
    second = await executor.execute(run_id)
    assert first.status == RunStatus.succeeded and not first.skipped
    assert second.skipped and ops.run(run_id).attempts == 1


async def test_reconcile_dispatches_eligible_operations_and_plans_schedules(ops) -> None:
    integration = ops.connect()
    sent: list[str] = []
    ops.runtime.executor.enqueue = lambda run_id, delay, limit: sent.append(run_id)
    run_ids = await reconcile(ops.runtime, integration)
    assert sent == run_ids and len(run_ids) == 1
    assert ops.run(run_ids[0]).operation == "AssetSync" and ops.run(run_ids[0]).trigger == "reconcile"
    assert _state(ops, integration, "Tick").next_due_at is not None
    assert await reconcile(ops.runtime, integration) == []  # idempotent


def test_two_scheduler_processes_enqueue_each_due_run_once(ops_any_db) -> None:
    ops = ops_any_db
    integrations = [ops.connect(owner=f"o{i}") for i in range(12)]
    past = utcnow() - timedelta(minutes=1)
    with ops.runtime.db.session() as session:
        for integration in integrations:
            session.add(OperationState(integration_id=integration, operation="Tick", next_due_at=past))
    procs = [ops.start_scheduler(iterations=15, interval=0.02) for _ in range(2)]
    outputs = [p.communicate(timeout=90) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-500:] for o in outputs]
    with ops.runtime.db.session() as session:
        runs = session.exec(select(Run).where(Run.trigger == "schedule")).all()
    assert sorted(r.integration_id for r in runs) == sorted(integrations)
    totals = [int(o[0].strip().rsplit(" ", 2)[-2]) for o in outputs]
    assert sum(totals) == len(integrations)
    assert ops.redis.hlen(f"{ops.namespace}:tether.msgs") == len(integrations)  # one message per run
    with ops.runtime.db.session() as session:
        states = session.exec(select(OperationState).where(OperationState.operation == "Tick")).all()
    assert all(s.next_due_at is not None and s.next_due_at > utcnow() for s in states)
    assert all(s.fence == 1 for s in states)


def test_a_due_schedule_is_not_piled_up_while_its_previous_run_is_pending(ops) -> None:
    integration = ops.connect()
    sent: list[str] = []
    ops.runtime.executor.enqueue = lambda run_id, delay, limit: sent.append(run_id)
    scheduler = Scheduler(ops.runtime)
    with ops.runtime.db.session() as session:
        session.add(OperationState(integration_id=integration, operation="Tick", next_due_at=utcnow()))
    assert len(scheduler.tick()) == 1
    with ops.runtime.db.session() as session:
        state = session.exec(select(OperationState).where(OperationState.operation == "Tick")).one()
        state.next_due_at = utcnow() - timedelta(seconds=1)
        session.add(state)
    assert scheduler.tick() == []  # the first run is still queued
    assert len(sent) == 1


def test_run_view_shape_is_stable(ops) -> None:
    assert set(RunView.model_fields) >= {
        "id",
        "integration_id",
        "operation",
        "trigger",
        "status",
        "result",
        "attempts",
        "payloads_out",
        "records_ingested",
        "records_rejected",
        "error_code",
        "error_message",
        "queued_at",
        "started_at",
        "finished_at",
        "duration_ms",
    }
