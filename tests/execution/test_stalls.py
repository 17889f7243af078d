"""Honest outcomes (issue 23): a run that loses its worker, makes no progress for its stall window, or whose
provider's pagination ends early or loops ends ``stalled`` (or is retried), never ``succeeded``.

Real PostgreSQL and Redis; the no-progress cases run in a real ``tether worker`` subprocess as well as in this
process (to reach the run's own task). The pagination causes are in ``tests/streams`` (the stream runner) and below
(the kit's ``paginate``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import update
from sqlmodel import col, select

from engine.authoring.operations import Operation, Policy
from engine.events import endpoints
from engine.events.outbox import RUN_STALLED
from engine.kit.providerkit import CursorPages, OffsetPages, Page, PageRequest, PaginationShort, paginate
from engine.runs import progress
from engine.runs.execution import Executor, ExecutorOptions
from engine.store.tables import EventOutbox, Run, RunStatus, utcnow
from execution.conftest import Env

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

HOOK = "https://hooks.example.com/tether"


def subscribe(ops: Env, *types: str) -> None:
    endpoints.create(ops.runtime.db, ops.runtime.keys.keyring, "t1", url=HOOK, event_types=list(types))


def events_of(ops: Env, event_type: str) -> list[dict[str, Any]]:
    with ops.runtime.db.session() as session:
        rows = session.exec(select(EventOutbox).where(EventOutbox.event_type == event_type)).all()
    return [row.payload["data"] for row in rows]


# -- heartbeat lost ----------------------------------------------------------------------------------------------


def stopped_heart() -> dict[str, Any]:
    """The columns of a run whose worker was killed an hour ago, in its first attempt."""
    then = utcnow() - timedelta(hours=1)
    return {"status": RunStatus.running, "attempts": 1, "started_at": then, "heartbeat_at": then}


async def test_a_run_whose_heartbeat_stopped_without_retries_is_reaped_as_stalled_with_its_event(ops: Env) -> None:
    subscribe(ops, "run.stalled", "run.failed")
    integration = ops.connect()
    run_id = await ops.runtime.executor.dispatch(integration, "SlowOnce", trigger="api")
    with ops.runtime.db.session() as session:  # what a worker killed mid-run leaves behind
        session.execute(update(Run).where(col(Run.id) == run_id).values(**stopped_heart()))
    [outcome] = ops.runtime.executor.reap_stale(stale_after=0)
    run = ops.run(run_id)
    assert (outcome.status, run.status, run.error_code) == (RunStatus.stalled, RunStatus.stalled, "worker_lost")
    assert run.finished_at is not None and "no retries left" in run.error_message
    assert events_of(ops, "run.failed") == []
    [event] = events_of(ops, RUN_STALLED)
    assert event["run_id"] == run_id and event["error"]["code"] == "worker_lost"


async def test_a_run_whose_heartbeat_stopped_with_retries_left_goes_back_to_the_queue(ops: Env) -> None:
    integration = ops.connect()
    run_id = await ops.runtime.executor.dispatch(integration, "Slow", trigger="api")
    with ops.runtime.db.session() as session:
        session.execute(update(Run).where(col(Run.id) == run_id).values(**stopped_heart()))
    [outcome] = ops.runtime.executor.reap_stale(stale_after=0)
    assert (outcome.status, outcome.error_code) == (RunStatus.queued, "worker_lost")
    assert ops.run(run_id).status == RunStatus.queued


# -- no progress -------------------------------------------------------------------------------------------------


async def test_a_worker_run_without_progress_for_its_stall_window_ends_stalled(ops: Env) -> None:
    subscribe(ops, "run.stalled")
    integration = ops.connect()
    ops.start_worker()
    run_id = await ops.runtime.executor.dispatch(integration, "HangOnce", trigger="api", config={"seconds": 600})
    run = await ops.wait(run_id)
    assert (run.status, run.error_code) == (RunStatus.stalled, "no_progress")
    assert "no progress for 0.5s" in run.error_message and run.result is None
    [event] = events_of(ops, RUN_STALLED)
    assert event["error"]["code"] == "no_progress"


async def test_a_stalled_attempt_is_retried_per_its_policy(ops: Env) -> None:
    integration = ops.connect()
    ops.start_worker()
    run_id = await ops.runtime.executor.dispatch(integration, "Hang", trigger="api", config={"seconds": 600})
    run = await ops.wait(run_id)
    assert (run.status, run.attempts, run.result) == (RunStatus.succeeded, 2, {"attempt": 2})


async def test_an_operation_that_swallows_the_watchdogs_cancellation_still_stalls(ops: Env) -> None:
    integration = ops.connect()
    config = {"seconds": 600, "swallow": True}
    run_id = await ops.runtime.executor.dispatch(integration, "HangOnce", trigger="api", config=config)
    outcome = await ops.runtime.executor.execute(run_id)
    assert (outcome.status, outcome.error_code) == (RunStatus.stalled, "no_progress")
    assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]  # the cancel was taken back


async def test_a_run_that_says_it_progresses_outlives_its_stall_window(ops: Env) -> None:
    integration = ops.connect()
    run_id = await ops.runtime.executor.dispatch(integration, "Busy", trigger="api")
    outcome = await ops.runtime.executor.execute(run_id)
    assert (outcome.status, outcome.result) == (RunStatus.succeeded, {"steps": 60})


async def test_the_deployment_default_applies_and_zero_turns_the_watchdog_off(ops: Env) -> None:
    executor: Executor = ops.runtime.executor
    task = asyncio.current_task()
    assert task is not None

    class Plain(Operation):
        policy = Policy.queued()

    class Off(Operation):
        policy = Policy.queued(stall_window=timedelta(0))

    assert ExecutorOptions.from_settings(ops.runtime.settings).stall_after == 600.0
    watchdog = executor._watchdog(task, Plain)
    assert watchdog is not None and watchdog.window == executor.options.stall_after
    assert executor._watchdog(task, Off) is None


async def test_the_watchdog_re_arms_on_progress_and_fires_only_after_a_silent_window() -> None:
    """The timer logic on a clock the test moves (no sleeping): a mark inside the window pushes it out."""
    now = [0.0]
    sleeper = asyncio.ensure_future(asyncio.sleep(3600))
    watchdog = progress.Watchdog(sleeper, 10.0, clock=lambda: now[0])  # type: ignore[arg-type]
    with watchdog:
        now[0] = 6.0
        watchdog.last = now[0]  # what note() does, on the test's clock
        now[0] = 10.0
        watchdog._check()  # idle 4 s of 10: re-armed, not fired
        assert not watchdog.fired and not sleeper.cancelled()
        now[0] = 16.5
        watchdog._check()  # idle 10.5 s: fired
        assert watchdog.fired
    with pytest.raises(asyncio.CancelledError):
        await sleeper
    assert sleeper.cancelled()


async def test_note_marks_the_run_of_its_context_only() -> None:
    task = asyncio.ensure_future(asyncio.sleep(3600))
    watchdog = progress.Watchdog(task, 10.0)  # type: ignore[arg-type]
    watchdog.last = -1.0
    progress.note()  # outside: nothing to mark
    assert watchdog.last == -1.0
    with watchdog:
        watchdog.last = -1.0
        await asyncio.to_thread(progress.note)  # a worker thread copies the context: counts too
        assert watchdog.last > 0
    task.cancel()


# -- the kit's pagination ends early -----------------------------------------------------------------------------


def pages(*bodies: dict[str, Any], style: Any) -> Any:
    answers = iter(bodies)

    async def fetch(request: PageRequest) -> Page:
        return style.read(next(answers))

    return fetch


async def drain(iterator: AsyncIterator[Page]) -> list[Page]:
    return [page async for page in iterator]


async def test_a_cursor_page_without_its_cursor_while_the_provider_says_more_is_pagination_short() -> None:
    style = CursorPages(items_path="data", cursor_path="next_cursor", has_more_path="has_more")
    fetch = pages(
        {"data": [1, 2], "next_cursor": "c2", "has_more": True},
        {"data": [3, 4], "next_cursor": None, "has_more": True},
        style=style,
    )
    with pytest.raises(PaginationShort) as short:
        await drain(paginate(fetch, style=style, what="the listing"))
    assert short.value.code == "pagination_short" and short.value.stalls
    assert "page 2" in short.value.message


async def test_a_cursor_listing_that_ends_with_has_more_false_is_the_end() -> None:
    style = CursorPages(items_path="data", cursor_path="next_cursor", has_more_path="has_more")
    fetch = pages({"data": [1], "next_cursor": "c2", "has_more": True}, {"data": [2], "has_more": False}, style=style)
    assert [page.items for page in await drain(paginate(fetch, style=style))] == [[1], [2]]


async def test_an_offset_listing_that_ends_before_its_total_is_pagination_short() -> None:
    style = OffsetPages(items_path="items", total_path="total")
    fetch = pages({"items": [1, 2], "total": 5}, {"items": [], "total": 5}, style=style)
    with pytest.raises(PaginationShort):
        await drain(paginate(fetch, style=style, limit=2))
