"""Deliveries processed in chunks (``engine.webhooks.deliverystore``, issue 22), on PostgreSQL and SQLite: one claim
and one finish per chunk keep every guarantee of one-by-one processing. A claim taken over by another worker fences
the stale chunk's write (and its handler, when the takeover comes first); a worker that dies mid-chunk leaves its
claims to the sweep; a row in two messages, twice in one, or claimed by two workers at once is processed once."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest
from sqlmodel import select

from engine.store.database import Database
from engine.store.tables import DeliveryStatus, WebhookDelivery
from engine.webhooks import deliveries as deliveries_module
from engine.webhooks.deliveries import NewDelivery, process_deliveries, record_deliveries, redeliver_pending
from engine.webhooks.deliverystore import claim_deliveries
from engine.webhooks.endpoints import ensure_endpoints
from engine.webhooks.targets import load_target
from support import webhook_definition as hooks
from support.webhook_kit import Setup, add_integration, event_body

LONG = timedelta(minutes=5)


def rows(setup: Setup) -> dict[str, WebhookDelivery]:
    with setup.runtime.db.session() as session:
        return {r.id: r for r in session.exec(select(WebhookDelivery))}


def record(setup: Setup, *names: str, event: str = "item.changed", token: str | None = None) -> list[str]:
    """Record deliveries on the github-style endpoint (``event`` for all); their row IDs, in order."""
    target = load_target(setup.runtime, token or setup.token("github"))
    items = [
        NewDelivery.of(
            target,
            name,
            event_body("github", event, name, item={"id": name, "name": name}),
            {"content-type": "application/json", "x-github-event": event},
        )
        for name in names
    ]
    recorded = record_deliveries(setup.runtime.db, items)
    assert not any(r.duplicate for r in recorded)
    return [r.row_id for r in recorded]


def handled(name: str) -> int:
    """How many times a handler ran for the delivery ``name``."""
    return sum(1 for _, delivery in hooks.SEEN if delivery == name)


async def test_a_message_is_claimed_and_finished_in_chunks(setup: Setup, monkeypatch: pytest.MonkeyPatch) -> None:
    """250 deliveries in chunks of 100: three claims and three finishes, each row processed once, every outcome
    in the message's order, and the ingest of each written with its run and ``records.changed`` event."""
    names = [f"chunk-{i}" for i in range(250)]
    ids = record(setup, *names)
    calls: Counter[str] = Counter()
    for name in ("claim_deliveries", "finish_deliveries"):
        real = getattr(deliveries_module, name)

        async def counted(*args: Any, _real: Any = real, _name: str = name, **kwargs: Any) -> Any:
            calls[_name] += 1
            return await _real(*args, **kwargs)

        monkeypatch.setattr(deliveries_module, name, counted)
    outcomes = await process_deliveries(setup.runtime, ids, concurrency=1)
    assert calls == {"claim_deliveries": 3, "finish_deliveries": 3}
    assert [o.status if o else None for o in outcomes] == [DeliveryStatus.processed] * 250
    assert all(o is not None and o.persisted == 1 for o in outcomes)
    assert all(handled(name) == 1 for name in names)
    assert {(r.status, r.attempts) for r in rows(setup).values()} == {(DeliveryStatus.processed, 1)}


async def test_a_row_taken_over_before_the_chunk_finishes_is_fenced_out(setup: Setup) -> None:
    """Another worker takes over one row of a chunk after its handler ran (its lease ran out): the chunk's write
    of that row changes nothing, the others of the chunk are finished, and the newer claim's finish stands."""
    ids = record(setup, "stale-a", "stale-b", "stale-c")
    record(setup, "stale-trigger", event="item.deleted")  # its handler dispatches: the moment of the takeover
    [trigger] = [row.id for row in rows(setup).values() if row.delivery_id == "stale-trigger"]
    taken: list[Any] = []

    async def take_over_b(*_: Any) -> str:
        # Another worker, after the lease ran out (lease 0), claims "stale-b", already handled by this chunk.
        [claimed] = await claim_deliveries(setup.runtime.db, [ids[1]], timedelta(0))
        taken.append(claimed)
        return "run-x"

    outcomes = await process_deliveries(setup.runtime, [*ids, trigger], dispatcher=take_over_b, concurrency=1)
    assert [o.status if o else None for o in outcomes] == [
        DeliveryStatus.processed,
        None,  # fenced out: this chunk no longer held it when it finished
        DeliveryStatus.processed,
        DeliveryStatus.processed,
    ]
    [(row, _)] = taken
    assert row.attempts == 2
    stored = rows(setup)
    assert (stored[ids[1]].status, stored[ids[1]].attempts) == (DeliveryStatus.received, 2)
    assert {stored[i].status for i in (ids[0], ids[2], trigger)} == {DeliveryStatus.processed}
    # The newer claim finishes it (here, the sweep once that claim's lease has run out too).
    [again] = await redeliver_pending(setup.runtime, older_than=timedelta(0), lease=timedelta(0))
    assert again.status == DeliveryStatus.processed
    assert (rows(setup)[ids[1]].status, rows(setup)[ids[1]].attempts) == (DeliveryStatus.processed, 3)


async def test_a_row_taken_over_while_it_waits_in_its_chunk_is_not_handled(setup: Setup) -> None:
    """Past half its lease a chunk stamps the leases of its waiting rows again, fenced by the attempt it claimed: a
    row another worker took over meanwhile is skipped before its handler runs, so it is handled once, by the
    other worker. (A lease of 0 makes every row of the chunk renew before its handler.)"""
    record(setup, "wait-trigger", event="item.deleted")
    [trigger] = list(rows(setup))
    ids = record(setup, "wait-a", "wait-b")

    async def take_over_b(*_: Any) -> str:
        [claimed] = await claim_deliveries(setup.runtime.db, [ids[1]], timedelta(0))
        assert claimed is not None  # the other worker holds "wait-b" now (attempt 2)
        return "run-x"

    outcomes = await process_deliveries(
        setup.runtime, [trigger, *ids], dispatcher=take_over_b, concurrency=1, lease=timedelta(0)
    )
    assert [o.status if o else None for o in outcomes] == [DeliveryStatus.processed, DeliveryStatus.processed, None]
    assert (handled("wait-a"), handled("wait-b")) == (1, 0)
    stored = rows(setup)[ids[1]]
    assert (stored.status, stored.attempts) == (DeliveryStatus.received, 2)  # the other worker's to finish


async def test_a_worker_dying_mid_chunk_leaves_its_claims_to_the_sweep(setup: Setup) -> None:
    """The worker stops in the middle of a chunk (its task cancelled while a handler waits, as a process killed
    there writes nothing more): every row of the chunk stays ``received`` and claimed. The sweep leaves them alone
    while the lease holds, then processes each exactly once."""
    ids = record(setup, "crash-a", "crash-b")
    record(setup, "crash-hang", event="item.deleted")
    [hang] = [row.id for row in rows(setup).values() if row.delivery_id == "crash-hang"]
    ids += [hang, *record(setup, "crash-c")]
    stuck = asyncio.Event()

    async def hang_forever(*_: Any) -> str:
        stuck.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    task = asyncio.create_task(process_deliveries(setup.runtime, ids, dispatcher=hang_forever, concurrency=1))
    await asyncio.wait_for(stuck.wait(), 30)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert {(r.status, r.attempts) for r in rows(setup).values()} == {(DeliveryStatus.received, 1)}
    assert (handled("crash-a"), handled("crash-c")) == (1, 0)

    assert await redeliver_pending(setup.runtime, older_than=timedelta(0), lease=LONG) == []  # leases hold
    swept = await redeliver_pending(setup.runtime, older_than=timedelta(0), lease=timedelta(0))
    assert sorted(o.status for o in swept) == [DeliveryStatus.processed] * 4
    assert {(r.status, r.attempts) for r in rows(setup).values()} == {(DeliveryStatus.processed, 2)}
    assert handled("crash-c") == 1  # never reached before the crash: handled once, by the sweep
    assert await redeliver_pending(setup.runtime, older_than=timedelta(0), lease=timedelta(0)) == []  # nothing twice


async def test_a_row_twice_in_a_message_or_in_two_messages_is_processed_once(setup: Setup) -> None:
    ids = record(setup, "dup-a", "dup-b")
    first = await process_deliveries(setup.runtime, [ids[0], ids[1], ids[0]], concurrency=1)
    assert [o.status if o else None for o in first] == [DeliveryStatus.processed, DeliveryStatus.processed, None]
    again = await process_deliveries(setup.runtime, ids, concurrency=1)  # a second message with the same rows
    assert again == [None, None]
    assert (handled("dup-a"), handled("dup-b")) == (1, 1)
    assert all(r.attempts == 1 for r in rows(setup).values())


async def test_two_workers_claiming_the_same_rows_at_once_process_each_once(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two workers (each its own database engine and, on PostgreSQL, its own connection) get overlapping messages
    at the same moment, with their rows in opposite orders: each row is claimed by one of them, handled once, and
    neither deadlocks."""
    names = [f"race-{i}" for i in range(60)]
    ids = record(setup, *names)
    other_db = Database(setup.runtime.db.url)
    other = type(setup.runtime)(setup.runtime.settings, other_db, setup.runtime.registry, setup.runtime.keys)
    try:
        one, two = await asyncio.gather(
            process_deliveries(setup.runtime, ids, concurrency=4),
            process_deliveries(other, list(reversed(ids)), concurrency=4),
        )
    finally:
        other_db.dispose()
    mine = {row_id for row_id, o in zip(ids, one, strict=True) if o is not None}
    theirs = {row_id for row_id, o in zip(reversed(ids), two, strict=True) if o is not None}
    assert mine | theirs == set(ids) and not mine & theirs
    assert all(handled(name) == 1 for name in names)
    assert {(r.status, r.attempts) for r in rows(setup).values()} == {(DeliveryStatus.processed, 1)}


async def test_a_chunk_holding_several_integrations_processes_each_in_its_own(setup: Setup) -> None:
    """Fan-out: one chunk with deliveries of two integrations (and a disconnected third) loads each row's own
    integration: processed for the connected ones, refused for the disconnected one."""
    from engine.store.tables import Integration, IntegrationStatus

    other = add_integration(setup.runtime, tenant="t2", owner="o2")
    gone = add_integration(setup.runtime, tenant="t3", owner="o3")
    tokens = {}
    for integration in (other, gone):
        endpoints = {e.webhook: e for e in await ensure_endpoints(setup.runtime, integration)}
        tokens[integration.id] = endpoints["github"].url.rsplit("/", 1)[1]
    ids = [
        *record(setup, "fan-mine"),
        *record(setup, "fan-other", token=tokens[other.id]),
        *record(setup, "fan-gone", token=tokens[gone.id]),
    ]
    with setup.runtime.db.session() as session:
        session.get_one(Integration, gone.id).status = IntegrationStatus.disconnected
    outcomes = await process_deliveries(setup.runtime, ids, concurrency=1)
    assert [(o.status, o.error_code) if o else None for o in outcomes] == [
        (DeliveryStatus.processed, ""),
        (DeliveryStatus.processed, ""),
        (DeliveryStatus.failed, "integration_disconnected"),
    ]
    stored = rows(setup)
    assert [stored[i].integration_id for i in ids] == [setup.integration.id, other.id, gone.id]
    assert (handled("fan-mine"), handled("fan-other"), handled("fan-gone")) == (1, 1, 0)
