"""Group commit of deliveries (``record_deliveries`` / ``DeliveryRecorder``) on both databases."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from engine.store.database import Database
from engine.store.tables import DeliveryStatus, WebhookDelivery
from engine.webhooks.deliveries import (
    DeliveryRecorder,
    NewDelivery,
    Recorded,
    process_deliveries,
    record_deliveries,
    record_delivery,
)
from engine.webhooks.targets import load_target
from support import webhook_definition as hooks
from support.webhook_kit import Setup, build_setup, event_body


def rows(setup: Setup) -> dict[str, WebhookDelivery]:
    with setup.runtime.db.session() as session:
        return {r.id: r for r in session.exec(select(WebhookDelivery))}


def item(setup: Setup, delivery_id: str, *, scheme: str = "github") -> NewDelivery:
    target = load_target(setup.runtime, setup.token(scheme))
    headers = {"content-type": "application/json", "x-github-event": "item.changed", "authorization": "Bearer no"}
    return NewDelivery.of(target, delivery_id, event_body(scheme, "item.changed", delivery_id), headers)


async def test_a_batch_of_distinct_deliveries_is_recorded_in_one_statement(setup: Setup) -> None:
    items = [item(setup, f"batch-{i}") for i in range(20)]
    recorded = record_deliveries(setup.runtime.db, items)
    assert recorded == [Recorded(i.row_id, i.delivery_id, duplicate=False) for i in items]
    stored = rows(setup)
    assert set(stored) == {i.row_id for i in items}
    for new in items:
        row = stored[new.row_id]
        assert (row.delivery_id, row.body, row.status) == (new.delivery_id, new.body, DeliveryStatus.received)
        assert row.endpoint_id == new.endpoint_id and row.integration_id == setup.integration.id
        assert row.headers == {"content-type": "application/json", "x-github-event": "item.changed"}
        assert row.received_at == new.received_at and row.processed_at is None
        assert (row.attempts, row.event_type, row.error_code, row.error_message) == (0, "", "", "")
    # The same deliveries again (new row IDs): all duplicates, nothing written.
    again = record_deliveries(setup.runtime.db, [item(setup, f"batch-{i}") for i in range(20)])
    assert all(r.duplicate for r in again) and len(rows(setup)) == 20


async def test_duplicates_within_one_batch_record_exactly_one_row(setup: Setup) -> None:
    earlier = record_delivery(setup.runtime.db, load_target(setup.runtime, setup.token("github")), "old", b"{}", {})
    assert not earlier.duplicate
    items = [item(setup, d) for d in ("a", "b", "a", "c", "a", "old", "b")]
    recorded = record_deliveries(setup.runtime.db, items)
    assert [r.duplicate for r in recorded] == [False, False, True, False, True, True, True]
    stored = rows(setup)
    assert sorted(r.delivery_id for r in stored.values()) == ["a", "b", "c", "old"]
    assert items[0].row_id in stored and items[2].row_id not in stored  # the first of the batch wins


async def test_the_same_delivery_id_on_two_endpoints_is_two_deliveries(setup: Setup) -> None:
    recorded = record_deliveries(setup.runtime.db, [item(setup, "same"), item(setup, "same", scheme="stripe")])
    assert [r.duplicate for r in recorded] == [False, False]


async def test_a_bad_item_does_not_fail_its_batch(setup: Setup) -> None:
    """An endpoint removed between lookup and recording: a foreign-key violation for that delivery alone."""
    good = [item(setup, f"good-{i}") for i in range(6)]
    template = item(setup, "orphan")
    bad = NewDelivery(
        "no-such-endpoint", template.integration_id, "orphan", template.body, template.headers, template.received_at
    )
    with pytest.raises(IntegrityError):  # the statement alone is all or nothing
        record_deliveries(setup.runtime.db, [*good[:3], bad, *good[3:]])
    assert rows(setup) == {}

    recorder = DeliveryRecorder(setup.runtime.db)
    # Submitted together, so they reach the recorder as one batch; it fails, and each is retried on its own.
    results = await asyncio.gather(*(recorder.record(i) for i in [*good[:3], bad, *good[3:]]), return_exceptions=True)
    assert isinstance(results[3], IntegrityError)
    assert [r.duplicate for r in results if isinstance(r, Recorded)] == [False] * 6
    assert set(rows(setup)) == {i.row_id for i in good}
    assert (recorder.batches, recorder.items) == (6, 6)  # after the batch failed, each good one committed alone


async def test_concurrent_records_share_batches_and_answer_after_the_commit(setup: Setup) -> None:
    committed: list[list[str]] = []

    def after_commit(row_ids: list[str]) -> None:
        with setup.runtime.db.session() as session:  # visible to another connection: committed
            found = session.exec(select(WebhookDelivery.id).where(WebhookDelivery.id.in_(row_ids))).all()  # type: ignore[attr-defined]
        assert sorted(found) == sorted(row_ids)
        committed.append(row_ids)

    recorder = DeliveryRecorder(setup.runtime.db, after_commit=after_commit)
    items = [item(setup, f"c-{i % 30}") for i in range(40)]  # ten of them repeat an earlier ID
    results = await asyncio.gather(*(recorder.record(i) for i in items))
    assert sum(not r.duplicate for r in results) == 30
    assert recorder.items == 40 and recorder.batches < 40
    assert sorted(r for batch in committed for r in batch) == sorted(r.row_id for r in results if not r.duplicate)


async def test_a_failing_after_commit_keeps_the_deliveries_for_the_sweep(setup: Setup) -> None:
    def broken(row_ids: list[str]) -> None:
        raise ConnectionError("the broker is down")

    recorder = DeliveryRecorder(setup.runtime.db, after_commit=broken)
    recorded = await asyncio.gather(*(recorder.record(item(setup, f"s-{i}")) for i in range(3)))
    assert not any(r.duplicate for r in recorded)
    assert {r.status for r in rows(setup).values()} == {DeliveryStatus.received}
    outcomes = await process_deliveries(setup.runtime, [r.row_id for r in recorded])
    assert [o.status for o in outcomes if o is not None] == [DeliveryStatus.processed] * 3
    assert sorted(d for _, d in hooks.SEEN) == ["s-0", "s-1", "s-2"]


async def test_process_deliveries_processes_each_row_once_and_skips_unknown_ones(setup: Setup) -> None:
    recorded = record_deliveries(setup.runtime.db, [item(setup, "p-1"), item(setup, "p-2")])
    ids = [recorded[0].row_id, "no-such-row", recorded[1].row_id]
    outcomes = await process_deliveries(setup.runtime, ids, concurrency=2, gate=asyncio.Semaphore(1))
    assert [o.status if o else None for o in outcomes] == [DeliveryStatus.processed, None, DeliveryStatus.processed]
    again = await process_deliveries(setup.runtime, ids, concurrency=1)
    assert again == [None, None, None]  # final rows are not processed again
    assert all(r.status == DeliveryStatus.processed and r.attempts == 1 for r in rows(setup).values())


def test_the_sender_never_blocks_the_batch_and_drops_beyond_its_bound(caplog: pytest.LogCaptureFixture) -> None:
    """``DeliverySender``: ``put`` returns at once while the broker is slow; batches that wait together go as one
    message; past ``MAX_PENDING`` waiting IDs a batch is dropped with a warning (its deliveries stay ``received``
    for the sweep); a failed send is counted and logged."""
    import threading

    from engine.queue.worker import DeliverySender

    release, started = threading.Event(), threading.Event()
    sent: list[list[str]] = []

    def slow_broker(row_ids: list[str]) -> None:
        started.set()
        release.wait(10)
        if row_ids == ["boom"]:
            raise ConnectionError("refused")
        sent.append(row_ids)

    sender = DeliverySender(send=slow_broker, linger=0)
    sender.MAX_PENDING = 5
    sender.put(["a", "b"])  # taken by the sender thread, which now waits on the broker
    assert started.wait(10) and not sender.wait_idle(timeout=0.01)
    sender.put(["c", "d", "e"])
    sender.put(["f", "g"])  # 5 waiting: at the bound
    with caplog.at_level("WARNING"):
        sender.put(["h"])  # over it
    assert sender.dropped == 1 and any("left for the sweep" in r.getMessage() for r in caplog.records)
    release.set()
    assert sender.wait_idle()
    assert sent == [["a", "b"], ["c", "d", "e", "f", "g"]]
    with caplog.at_level("WARNING"):
        sender.put(["boom"])
        assert sender.wait_idle()
    assert (sender.sent, sender.failed) == (2, 1)
    assert any("handing off 1 recorded deliveries failed" in r.getMessage() for r in caplog.records)


def test_an_idle_sender_thread_ends_and_the_next_batch_starts_another() -> None:
    """An app that stops receiving (or is gone) leaves no sender thread behind holding it."""
    import threading
    import time

    from engine.queue.worker import DeliverySender

    sent: list[list[str]] = []
    sender = DeliverySender(send=sent.append, linger=0, idle_exit=0.05)
    sender.put(["a"])
    first = sender._thread  # set by ``put`` itself
    assert first is not None and sender.wait_idle()
    first.join(10)  # a bound against a hang: the thread ends once idle for ``idle_exit``
    assert not first.is_alive() and sender._thread is None
    assert first not in threading.enumerate()
    sender.put(["b"])
    deadline = time.monotonic() + 10
    while len(sent) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert sent == [["a"], ["b"]] and sender._thread is not first


async def test_the_recorder_retries_a_batch_once_when_its_connection_was_lost(
    postgres_database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL restarted or the idle connection was cut: the batch goes through on a new connection."""
    from sqlalchemy import text

    setup = await build_setup(postgres_database, monkeypatch)
    recorder = DeliveryRecorder(setup.runtime.db)
    first = await recorder.record(item(setup, "before"))
    async with postgres_database.loop_connection.connection() as connection:
        pid = connection.info.backend_pid
    with postgres_database.engine.connect() as admin:
        admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    after = await recorder.record(item(setup, "after"))
    assert not first.duplicate and not after.duplicate
    assert {r.delivery_id for r in rows(setup).values()} == {"before", "after"}


async def test_concurrent_misses_of_the_endpoint_cache_share_one_load(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When a busy endpoint's cache entry expires, every delivery in flight misses it at once: one load serves all."""
    import time

    from engine.errors import NotFoundError
    from engine.webhooks import targets as targeting

    loads: list[str] = []
    real = targeting.load_target

    def counted(runtime: Any, token: str) -> Any:
        loads.append(token)
        time.sleep(0.05)  # long enough for every caller to arrive while it runs
        return real(runtime, token)

    monkeypatch.setattr(targeting, "load_target", counted)
    token = setup.token("github")
    targets = await asyncio.gather(*(targeting.resolve_target(setup.runtime, token) for _ in range(20)))
    assert loads == [token] and all(t is targets[0] for t in targets)
    assert await targeting.resolve_target(setup.runtime, token) is targets[0] and loads == [token]  # cached

    unknown = "u" * 43
    misses = await asyncio.gather(
        *(targeting.resolve_target(setup.runtime, unknown) for _ in range(10)), return_exceptions=True
    )
    assert all(isinstance(m, NotFoundError) for m in misses) and loads == [token, unknown]


async def test_a_claim_fences_the_finish_and_the_run_finishes_with_it(setup: Setup) -> None:
    """The claim returns the row with its context; a finish by a stale claim (an older attempt) writes nothing; the
    current one writes the delivery and its run together (both databases: PostgreSQL runs one statement each on
    the loop's connection, SQLite a transaction in a thread)."""
    from datetime import timedelta

    from engine.store.tables import Run, RunStatus
    from engine.webhooks.deliverystore import Finish, claim_deliveries, finish_deliveries

    db = setup.runtime.db
    [recorded] = record_deliveries(db, [item(setup, "fence-1")])
    [first] = await claim_deliveries(db, [recorded.row_id], timedelta(minutes=5))
    assert first is not None
    row, context = first
    assert (row.id, row.delivery_id, row.attempts) == (recorded.row_id, "fence-1", 1)
    assert row.headers == {"content-type": "application/json", "x-github-event": "item.changed"}
    assert context is not None and context[1].id == setup.integration.id and context[1].status == "connected"
    assert await claim_deliveries(db, [recorded.row_id], timedelta(minutes=5)) == [None]  # leased
    [second] = await claim_deliveries(db, [recorded.row_id], timedelta(0))  # the lease ran out
    assert second is not None and second[0].attempts == 2

    run = Run(integration_id=setup.integration.id, tenant_id="t1", operation="x", trigger="webhook")
    with db.session() as session:
        session.add(run)
    stale = await finish_deliveries(db, [Finish(row, DeliveryStatus.processed, event_type="item.changed")])
    assert stale == [False] and rows(setup)[recorded.row_id].status == DeliveryStatus.received
    done = await finish_deliveries(
        db, [Finish(second[0], DeliveryStatus.failed, code="handler_error", run_id=run.id, run_failed=True)]
    )
    assert done == [True]
    final = rows(setup)[recorded.row_id]
    assert (final.status, final.error_code, final.attempts) == (DeliveryStatus.failed, "handler_error", 2)
    with db.session() as session:
        stored = session.get(Run, run.id)
        assert stored is not None and stored.status == RunStatus.failed and stored.finished_at is not None
