"""Group commit: ``Coalescer`` batches concurrent calls; ``runstore`` answers each item of a batch on its own."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from sqlmodel import select

from engine.errors import NotFoundError
from engine.runs.runstore import NewRun, Success, beat_runs, claim_runs, create_runs, new_run, succeed_runs
from engine.store.batching import Coalescer
from engine.store.database import Database
from engine.store.tables import Integration, IntegrationStatus, OperationState, Run, RunStatus

# -- Coalescer ---------------------------------------------------------------------------------------------------

#: A handler runs in the coalescer's thread when it is a plain function, on the caller's loop when it is async.
KINDS = ("thread", "loop")


def handler(kind: str, fn: Callable[[list[Any]], Any]) -> Callable[[list[Any]], Any]:
    if kind == "thread":
        return fn

    async def on_loop(items: list[Any]) -> Any:
        await asyncio.sleep(0)  # a real suspension, as a database round trip would be
        return fn(items)

    return on_loop


@pytest.mark.parametrize("kind", KINDS)
async def test_concurrent_calls_share_one_batch_and_each_gets_its_answer(kind: str) -> None:
    batches: list[list[int]] = []

    def handle(items: list[int]) -> list[int]:
        batches.append(items)
        return [item * 10 for item in items]

    coalescer: Coalescer[int, int] = Coalescer("test", handler(kind, handle))
    answers = await asyncio.gather(*(coalescer.submit(n) for n in range(50)))
    assert answers == [n * 10 for n in range(50)]
    assert batches == [list(range(50))]  # all arrived before the first batch ran


@pytest.mark.parametrize("kind", KINDS)
async def test_batches_respect_max_batch_and_a_lone_call_goes_through(kind: str) -> None:
    batches: list[list[int]] = []

    def handle(items: list[int]) -> list[int]:
        batches.append(items)
        return items

    coalescer: Coalescer[int, int] = Coalescer("test", handler(kind, handle), max_batch=8)
    assert await asyncio.gather(*(coalescer.submit(n) for n in range(20))) == list(range(20))
    assert [len(b) for b in batches] == [8, 8, 4]
    batches.clear()
    assert await coalescer.submit(99) == 99
    assert batches == [[99]]


@pytest.mark.parametrize("kind", KINDS)
async def test_an_item_exception_fails_only_that_caller(kind: str) -> None:
    def handle(items: list[int]) -> list[int | BaseException]:
        return [ValueError(f"bad {item}") if item == 3 else item for item in items]

    coalescer: Coalescer[int, int] = Coalescer("test", handler(kind, handle))
    results = await asyncio.gather(*(coalescer.submit(n) for n in range(6)), return_exceptions=True)
    assert [r for r in results if not isinstance(r, BaseException)] == [0, 1, 2, 4, 5]
    assert isinstance(results[3], ValueError) and str(results[3]) == "bad 3"


@pytest.mark.parametrize("kind", KINDS)
async def test_a_failing_batch_is_retried_item_by_item(kind: str) -> None:
    calls: list[list[int]] = []

    def handle(items: list[int]) -> list[int]:
        calls.append(items)
        if 4 in items:
            raise RuntimeError("the whole statement failed")
        return items

    coalescer: Coalescer[int, int] = Coalescer("test", handler(kind, handle))
    results = await asyncio.gather(*(coalescer.submit(n) for n in range(6)), return_exceptions=True)
    assert results[:4] == [0, 1, 2, 3] and results[5] == 5
    assert isinstance(results[4], RuntimeError)
    assert calls[0] == list(range(6)) and sorted(map(tuple, calls[1:])) == [(n,) for n in range(6)]


@pytest.mark.parametrize("kind", KINDS)
async def test_a_cancelled_caller_leaves_the_others_their_answers(kind: str) -> None:
    started = asyncio.Event()
    release = asyncio.Event()
    batches: list[list[int]] = []

    async def slow(items: list[int]) -> list[int]:
        batches.append(items)
        started.set()
        await release.wait()
        return items

    coalescer: Coalescer[int, int] = Coalescer("test", slow)
    first = asyncio.ensure_future(coalescer.submit(0))
    await started.wait()  # batch [0] is in flight; the next three wait for it and form the next batch
    waiting = [asyncio.ensure_future(coalescer.submit(n)) for n in (1, 2, 3)]
    await asyncio.sleep(0)
    waiting[1].cancel()
    release.set()
    assert await first == 0
    assert [await waiting[0], await waiting[2]] == [1, 3]
    assert waiting[1].cancelled() and batches == [[0], [1, 2, 3]]


def test_one_coalescer_serves_several_event_loops() -> None:
    for kind in KINDS:
        coalescer: Coalescer[int, int] = Coalescer("test", handler(kind, lambda items: [i + 1 for i in items]))
        for _ in range(3):  # each asyncio.run is a new loop (tests and CLI commands do this)
            assert asyncio.run(coalescer.submit(1)) == 2


# -- runstore on both databases ------------------------------------------------------------------------------------


@pytest.fixture
def integration(database: Database) -> Integration:
    row = Integration(tenant_id="t", owner_id="o", definition_id="ops", status=IntegrationStatus.connected)
    with database.session() as session:
        session.add(row)
    return row


def _new(integration: Integration, operation: str = "Echo") -> NewRun:
    return NewRun(
        integration.id,
        lambda i: new_run(integration_id=i.id, tenant_id=i.tenant_id, operation=operation, trigger="api", config={}),
    )


def test_create_runs_answers_each_item(database: Database, integration: Integration) -> None:
    def broken(_: Integration) -> Run:
        raise ValueError("invalid config")

    answers = create_runs(
        database, [_new(integration), NewRun("no-such-integration", broken), NewRun(integration.id, broken)]
    )
    assert isinstance(answers[0], Run) and answers[0].status == RunStatus.queued
    assert isinstance(answers[1], NotFoundError)
    assert isinstance(answers[2], ValueError)
    with database.session() as session:
        stored = session.get(Run, answers[0].id)
    assert stored is not None and stored.tenant_id == "t" and stored.attempts == 0


def test_claim_runs_claims_each_run_once(database: Database, integration: Integration) -> None:
    first, second = create_runs(database, [_new(integration), _new(integration)])
    assert isinstance(first, Run) and isinstance(second, Run)
    claimed = claim_runs(database, [first.id, first.id, second.id, "missing"])
    assert claimed[0] is not None and claimed[0].run.attempts == 1 and claimed[0].integration is not None
    assert claimed[0].integration.id == integration.id and claimed[0].state is None
    assert claimed[1] is None  # the same ID twice in one batch: claimed once
    assert claimed[2] is not None and claimed[2].run.id == second.id
    assert claimed[3] is None
    assert claim_runs(database, [first.id]) == [None]  # already running


def test_succeed_runs_stores_each_result_and_a_cancel_wins(database: Database, integration: Integration) -> None:
    runs = create_runs(database, [_new(integration) for _ in range(3)])
    ids = [r.id for r in runs if isinstance(r, Run)]
    claim_runs(database, ids)
    with database.session() as session:  # the second run is cancelled while it executes
        cancelled = session.get_one(Run, ids[1])
        cancelled.status = RunStatus.cancelled
        session.add(cancelled)
    assert beat_runs(database, ids) == {ids[0], ids[2]}
    outcome = succeed_runs(
        database,
        [
            Success(ids[0], integration.id, "Echo", {"echo": "a"}, keeps_state=True, cursor={"page": 2}),
            Success(ids[1], integration.id, "Echo", {"echo": "b"}, keeps_state=True, cursor={"page": 9}),
            Success(ids[2], integration.id, "Echo", [1, 2], keeps_state=False),
        ],
    )
    assert outcome == [True, False, True]
    with database.session() as session:
        stored = [session.get_one(Run, run_id) for run_id in ids]
        state = session.exec(select(OperationState)).one()
    assert [r.status for r in stored] == [RunStatus.succeeded, RunStatus.cancelled, RunStatus.succeeded]
    assert stored[0].result == {"echo": "a"} and stored[1].result is None and stored[2].result == [1, 2]
    assert state.cursor == {"page": 2} and state.last_run_id == ids[0]  # the cancelled run did not advance it
