"""The run actor lets its worker thread go once only recording the success is left (``engine.queue.worker``'s
``_execute_run``), and a stopping worker waits for those finishes (``FinishesDrain``) before its loop stops."""

from __future__ import annotations

import asyncio
import logging
import threading
from types import SimpleNamespace
from typing import Any

import dramatiq
import pytest
from dramatiq.asyncio import EventLoopThread, set_event_loop_thread

from engine.queue import worker as worker_module
from engine.runs.execution import RunOutcome
from engine.store.tables import RunStatus


class _Executor:
    """Stands in for ``Executor.execute``: resolves ``released`` (when told to) and finishes when ``finish`` is set."""

    def __init__(self, *, release: bool, outcome: RunOutcome) -> None:
        self.release = release
        self.outcome = outcome
        self.finish = threading.Event()

    async def execute(self, run_id: str, *, released: asyncio.Future[None] | None = None) -> RunOutcome:
        if self.release and released is not None:
            released.set_result(None)
        while not self.finish.is_set():
            await asyncio.sleep(0.01)
        return self.outcome


@pytest.fixture
def bound(monkeypatch: pytest.MonkeyPatch) -> Any:
    def bind(executor: _Executor) -> None:
        monkeypatch.setattr(worker_module._state, "runtime", SimpleNamespace(executor=executor))

    return bind


async def test_the_actor_returns_while_the_success_is_still_being_recorded(bound: Any) -> None:
    executor = _Executor(release=True, outcome=RunOutcome("r1", RunStatus.succeeded))
    bound(executor)
    await asyncio.wait_for(worker_module._execute_run("r1"), 5)  # returned with the finish still pending
    pending = worker_module._finishing.get(asyncio.get_running_loop())
    assert pending is not None and len(pending) == 1
    executor.finish.set()
    await asyncio.wait_for(asyncio.gather(*pending), 5)
    assert not pending


async def test_a_retry_is_still_raised_to_the_broker(bound: Any) -> None:
    """An outcome other than a success is known before anything is released: the message is retried as before."""
    executor = _Executor(release=False, outcome=RunOutcome("r2", RunStatus.queued, retry_in=2.0))
    executor.finish.set()
    bound(executor)
    with pytest.raises(dramatiq.Retry):
        await worker_module._execute_run("r2")


def test_a_stopping_worker_waits_for_the_finishes_in_flight(bound: Any) -> None:
    thread = EventLoopThread(logging.getLogger("test"), interrupt_check_ival=0.05)
    thread.start(timeout=5)
    set_event_loop_thread(thread)
    executor = _Executor(release=True, outcome=RunOutcome("r3", RunStatus.succeeded))
    bound(executor)
    try:
        asyncio.run_coroutine_threadsafe(worker_module._execute_run("r3"), thread.loop).result(5)
        [task] = list(worker_module._finishing.get(thread.loop) or ())
        threading.Timer(0.3, executor.finish.set).start()
        worker_module.FinishesDrain().after_worker_shutdown(None, None)  # type: ignore[arg-type]
        assert task.done() and task.result().status == RunStatus.succeeded
    finally:
        set_event_loop_thread(None)
        thread.stop()
        thread.join()
