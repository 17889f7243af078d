"""Retention (``engine.store.retention``) on both databases: the change feed loses exactly its expired prefix per
tenant and records how far; the event log loses final deliveries past the window and the events nobody refers to,
never a delivery still to send; ``0`` keeps everything; the scheduler prunes once per interval; ``tether changes
prune`` prunes by hand.

Changes are written through the feed's own write path (``ingest.changes.record_changes``) and events through the
outbox's (``engine.events.outbox.emit``); their age is set by moving their timestamps back, never by waiting.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update
from typer.testing import CliRunner

from engine.cli import app
from engine.custody.crypto import KeyRing, generate_master_key
from engine.events import endpoints
from engine.events.outbox import NewEvent, emit
from engine.runs.scheduler import Scheduler
from engine.settings import Settings
from engine.store.database import Database
from engine.store.retention import Pruned, horizon, prune, prune_changes, prune_events
from engine.store.tables import ChangeCounter, EventDelivery, EventDeliveryStatus, EventOutbox, RecordChange, utcnow
from ingest.changes import Change, record_changes

DAY = timedelta(days=1)


def write_changes(db: Database, tenant: str, count: int) -> tuple[int, int]:
    changes = [Change("directory_account", i, "int1", "upsert", {"id": i}) for i in range(count)]
    with db.engine.begin() as connection:
        written = record_changes(connection, tenant, changes)
    assert written is not None
    return written


def age_changes(db: Database, tenant: str, seqs: list[int], days: float) -> None:
    with db.engine.begin() as connection:
        connection.execute(
            update(RecordChange)
            .where(RecordChange.tenant_id == tenant, RecordChange.seq.in_(seqs))  # type: ignore[attr-defined]
            .values(changed_at=utcnow() - timedelta(days=days))
        )


def seqs(db: Database, tenant: str) -> list[int]:
    with db.engine.connect() as connection:
        query = select(RecordChange.seq).where(RecordChange.tenant_id == tenant).order_by(RecordChange.seq)
        return list(connection.execute(query).scalars())


def test_changes_lose_exactly_their_expired_prefix_per_tenant(database: Database) -> None:
    write_changes(database, "t1", 6)
    write_changes(database, "t2", 2)
    age_changes(database, "t1", [1, 2, 4], 40)  # seq 3 is recent: 4 stays although old, the prefix ends at 3
    age_changes(database, "t2", [1, 2], 10)
    assert prune_changes(database, utcnow() - 30 * DAY, chunk=2) == 2
    assert seqs(database, "t1") == [3, 4, 5, 6] and seqs(database, "t2") == [1, 2]
    with database.engine.connect() as connection:
        assert horizon(connection, "t1") == (2, 6)
        assert horizon(connection, "t2") == (0, 2)
        assert horizon(connection, "nobody") == (0, 0)
    # Pruning again, or with a shorter window, only moves forward; new changes go on from the last sequence.
    assert prune_changes(database, utcnow() - 30 * DAY) == 0
    assert write_changes(database, "t1", 1) == (7, 7)
    age_changes(database, "t1", [3, 4, 5, 6, 7], 40)
    assert prune_changes(database, utcnow() - 30 * DAY, chunk=2) == 5
    assert seqs(database, "t1") == []
    with database.engine.connect() as connection:
        assert horizon(connection, "t1") == (7, 7)
        counter = connection.execute(select(ChangeCounter).where(ChangeCounter.tenant_id == "t1")).one()
    assert counter.last_seq == 7


def deliveries(db: Database) -> dict[str, EventDelivery]:
    with db.session() as session:
        return {row.id: row for row in session.exec(select(EventDelivery)).scalars()}  # type: ignore[call-overload]


def test_event_log_loses_final_deliveries_past_the_window_never_pending_ones(database: Database) -> None:
    ring = KeyRing.from_master_key(generate_master_key())
    endpoints.create(database, ring, "t1", url="https://receiver.example/hook", event_types=["run.succeeded"])
    with database.engine.begin() as connection:
        ids = emit(connection, [NewEvent("t1", "run.succeeded", {"run_id": f"r{i}"}) for i in range(5)])
    old_delivered, old_dead, old_pending, old_sending, recent_delivered = ids
    state = {
        old_delivered: (EventDeliveryStatus.delivered, 40),
        old_dead: (EventDeliveryStatus.dead, 40),
        old_pending: (EventDeliveryStatus.pending, 40),
        old_sending: (EventDeliveryStatus.sending, 40),
        recent_delivered: (EventDeliveryStatus.delivered, 1),
    }
    with database.engine.begin() as connection:
        for delivery_id, (status, days) in state.items():
            connection.execute(
                update(EventDelivery)
                .where(EventDelivery.id == delivery_id)  # type: ignore[arg-type]
                .values(status=status, window_start=utcnow() - timedelta(days=days))
            )
        connection.execute(update(EventOutbox).values(created_at=utcnow() - 40 * DAY))
    events_of = {d.id: d.event_id for d in deliveries(database).values()}
    assert prune_events(database, utcnow() - 30 * DAY, chunk=1) == (2, 2)
    assert set(deliveries(database)) == {old_pending, old_sending, recent_delivered}
    with database.session() as session:
        left = set(session.exec(select(EventOutbox.id)).scalars())  # type: ignore[call-overload]
    assert left == {events_of[old_pending], events_of[old_sending], events_of[recent_delivered]}


def test_a_window_of_zero_keeps_everything_and_the_scheduler_prunes_once_per_interval(
    database: Database, tmp_path: Path
) -> None:
    write_changes(database, "t1", 3)
    age_changes(database, "t1", [1, 2, 3], 400)
    keep = Settings(database_url=database.url, changes_retention_days=0, event_retention_days=0)
    assert prune(database, keep) == Pruned()
    assert seqs(database, "t1") == [1, 2, 3]

    class Runtime:  # the scheduler's retention pass reads only these two of its runtime
        db = database
        settings = Settings(database_url=database.url, changes_retention_days=30, retention_prune_seconds=3600)

    scheduler = Scheduler(Runtime())  # type: ignore[arg-type]
    assert scheduler.prune_if_due() == Pruned(changes=3)
    write_changes(database, "t1", 1)
    age_changes(database, "t1", [4], 400)
    assert scheduler.prune_if_due() is None  # not due again within the interval: the old change stays for now
    assert seqs(database, "t1") == [4]
    Runtime.settings.retention_prune_seconds = 0
    assert scheduler.prune_if_due() == Pruned(changes=1)


def test_tether_changes_prune(sqlite_database: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    write_changes(sqlite_database, "t1", 4)
    age_changes(sqlite_database, "t1", [1, 2], 10)
    monkeypatch.setenv("TETHER_DATABASE_URL", sqlite_database.url)
    kept = CliRunner().invoke(app, ["changes", "prune"])  # the default window (30 days) keeps them
    assert kept.exit_code == 0, kept.output
    assert "pruned 0 changes (kept 30 days)" in kept.output
    pruned = CliRunner().invoke(app, ["changes", "prune", "--changes-days", "5", "--event-days", "0"])
    assert pruned.exit_code == 0, pruned.output
    assert "pruned 2 changes (kept 5 days)" in pruned.output and "(kept forever)" in pruned.output
    assert seqs(sqlite_database, "t1") == [3, 4]
