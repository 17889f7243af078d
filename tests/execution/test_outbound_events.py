"""Outbound events to the host app (issue 19): written to the outbox with their cause, delivered by real workers on
Redis to a real receiver that verifies them with the ``standardwebhooks`` library.

Every event type comes from the code path that changes the state (setup connecting an integration, the Keystore's
refusal marking it ``reconnect_required``, custody disconnecting it, the executor finishing runs), and the receiver
records each event exactly once by ``webhook-id``. Retries, the dead letter, manual redelivery, secret rotation and a
worker killed mid-delivery are each driven through the same workers. Waits are bounded polls, never timing claims.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlmodel import select

from engine.api.principal import Principal
from engine.events import delivery, endpoints
from engine.integrations.lifecycle import mark_reconnect_required
from engine.integrations.setup import Setup
from engine.processes import WorkerHandle, start_worker
from engine.store.tables import (
    EventDelivery,
    EventDeliveryStatus,
    EventEndpoint,
    EventOutbox,
    Integration,
    RecordChange,
)
from support.event_receiver import Receiver, running_receiver

SERVER = Principal(tenant_id="t1", role="server")
ALL_TYPES = [
    "integration.connected",
    "integration.reconnect_required",
    "integration.disconnected",
    "run.failed",
    "run.succeeded",
    "records.changed",
]
#: Small knobs so retries, leases and windows pass in a fraction of a second.
KNOBS = {
    "TETHER_EVENT_RETRY_SCHEDULE": "0.1,0.2",
    "TETHER_EVENT_RETRY_WINDOW_SECONDS": "3600",
    "TETHER_EVENT_DELIVERY_TIMEOUT_SECONDS": "5",
    "TETHER_EVENT_LEASE_SECONDS": "6",
    "TETHER_EVENT_SWEEP_SECONDS": "0.1",
    "TETHER_EVENT_REQUEUE_AFTER_SECONDS": "5",
    "TETHER_ALLOW_LOOPBACK_PROVIDERS": "1",
}


def tune(env: Any, monkeypatch: pytest.MonkeyPatch, **overrides: str) -> None:
    """Apply ``KNOBS`` (and ``overrides``) to the test's runtime and to worker subprocesses started later."""
    knobs = {**KNOBS, **overrides}
    for name, value in knobs.items():
        monkeypatch.setenv(name, value)
        env.env[name] = value
        field = name.removeprefix("TETHER_").lower()
        current = getattr(env.runtime.settings, field)
        setattr(env.runtime.settings, field, type(current)(float(value)) if not isinstance(current, str) else value)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with running_receiver() as r:
        yield r


def subscribe(env: Any, receiver: Receiver, types: list[str] | None = None, name: str = "current") -> EventEndpoint:
    row, secret = endpoints.create(
        env.runtime.db, env.runtime.keys.keyring, "t1", url=receiver.url, event_types=types or ALL_TYPES
    )
    receiver.secrets[name] = secret
    return row


def in_process_worker(env: Any) -> WorkerHandle:
    return start_worker(env.runtime, threads=2)


def deliveries(env: Any) -> list[EventDelivery]:
    with env.runtime.db.session() as session:
        return list(session.exec(select(EventDelivery)).all())


def wait_deliveries(env: Any, status: EventDeliveryStatus, count: int, bound: float = 60.0) -> list[EventDelivery]:
    deadline = time.monotonic() + bound
    while True:
        rows = [d for d in deliveries(env) if d.status == status]
        if len(rows) >= count:
            return rows
        if time.monotonic() > deadline:
            raise AssertionError(f"{[(d.event_type, d.status, d.attempts, d.last_error) for d in deliveries(env)]}")
        time.sleep(0.05)


async def connect(env: Any) -> str:
    """Connected the way the host's user does it: configure, then the typed-in token (validated by ``Ping``)."""
    setup = Setup(env.runtime)
    integration = setup.configure(SERVER, "ops", owner_id="u1")
    connected = await setup.submit_credential(SERVER, integration.id, "OpsToken", {"token": "s3cret-token"})
    assert connected.status == "connected"
    return integration.id


# -- every event type, exactly once ---------------------------------------------------------------------------------


async def test_every_event_type_reaches_the_receiver_once_verified(
    ops_any_db: Any, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = ops_any_db
    tune(env, monkeypatch)
    subscribe(env, receiver)
    handle = in_process_worker(env)
    try:
        iid = await connect(env)
        executor = env.runtime.executor
        ok = await executor.dispatch(iid, "Echo", trigger="api", config={"value": "hi"})
        broken = await executor.dispatch(iid, "Broken", trigger="api")
        synced = await executor.dispatch(iid, "AssetSync", trigger="api", config={"count": 3})
        for run_id in (ok, broken, synced):
            await env.wait(run_id)
        with env.runtime.db.engine.begin() as connection:  # the Keystore's path when the provider refuses a refresh
            assert mark_reconnect_required(connection, iid, actor="keystore", action="refresh", reason="invalid_grant")
        await env.runtime.custody.disconnect(iid, actor="test")
        receiver.wait_for(lambda: set(receiver.types()) >= set(ALL_TYPES) and not pending(env), what="event types")
    finally:
        handle.stop()
    assert receiver.unverified == 0
    by_run = {e["data"]["run_id"]: e for e in receiver.of_type("run.succeeded")}
    assert ok in by_run and synced in by_run
    (failed,) = [e for e in receiver.of_type("run.failed") if e["data"]["run_id"] == broken]
    assert failed["data"]["error"]["code"] == "provider_error"
    assert "s3cret-token" not in str(receiver.events)  # the run's message is scrubbed of the credential
    changed = [e for e in receiver.of_type("records.changed") if e["data"]["run_id"] == synced]
    assert len(changed) == 1 and changed[0]["data"]["counts"] == {"asset": 3}
    # The connect's reconcile run (AssetSync reconciles) ingests assets too, concurrently with the test's run; a run
    # whose upserts were all no-ops has a null window. Together the windows hold every change of the integration.
    windows = [
        e["data"]["changes"]
        for e in receiver.of_type("records.changed")
        if e["data"]["integration_id"] == iid and e["data"]["changes"] is not None
    ]
    assert windows
    with env.runtime.db.engine.connect() as connection:  # windows of concurrent runs overlap: count each seq once
        in_range = {
            row.seq: (row.op, row.integration_id)
            for window in windows
            for row in connection.execute(
                select(RecordChange.seq, RecordChange.op, RecordChange.integration_id).where(
                    RecordChange.seq > window["after"], RecordChange.seq <= window["until"]
                )
            ).all()
        }
        every = connection.execute(select(RecordChange.seq).where(RecordChange.integration_id == iid)).scalars().all()
    assert set(in_range.values()) == {("upsert", iid)} and set(every) <= set(in_range) and len(every) >= 3
    (connected,) = receiver.of_type("integration.connected")
    assert connected["data"] == {
        "integration_id": iid,
        "owner_id": "u1",
        "definition_id": "ops",
        "status": "connected",
        "reason": "",
    }
    assert [e["data"]["integration_id"] for e in receiver.of_type("integration.disconnected")] == [iid]
    assert receiver.of_type("integration.reconnect_required")[0]["data"]["reason"] == "invalid_grant"
    rows = deliveries(env)
    assert {d.status for d in rows} == {EventDeliveryStatus.delivered}
    # One delivery per event and endpoint; each recorded once by webhook-id, with that ID the event's own.
    assert sorted(d.event_id for d in rows) == sorted(receiver.events)
    with env.runtime.db.session() as session:
        assert len(session.exec(select(EventOutbox)).all()) == len(rows)


def pending(env: Any) -> bool:
    return any(d.status != EventDeliveryStatus.delivered for d in deliveries(env))


async def test_events_go_only_to_endpoints_subscribed_to_them_and_not_to_disabled_ones(
    ops_any_db: Any, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = ops_any_db
    tune(env, monkeypatch)
    runs_only = subscribe(env, receiver, ["run.failed"])
    disabled = subscribe(env, receiver, ALL_TYPES, name="disabled")
    endpoints.update(env.runtime.db, "t1", disabled.id, {"enabled": False})
    iid = await connect(env)  # no endpoint listening for integration.connected: nothing written
    assert deliveries(env) == []
    run_id = await env.runtime.executor.dispatch(iid, "Broken", trigger="api")
    handle = in_process_worker(env)
    try:
        await env.wait(run_id)
        (row,) = wait_deliveries(env, EventDeliveryStatus.delivered, 1)
    finally:
        handle.stop()
    assert row.endpoint_id == runs_only.id and row.event_type == "run.failed"


async def test_a_status_change_rolled_back_leaves_no_event(
    ops_any_db: Any, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = ops_any_db
    tune(env, monkeypatch)
    subscribe(env, receiver)
    iid = await connect(env)
    before = len(deliveries(env))
    with pytest.raises(RuntimeError), env.runtime.db.engine.begin() as connection:
        assert mark_reconnect_required(connection, iid, actor="keystore", action="refresh", reason="invalid_grant")
        raise RuntimeError("the caller's transaction fails after the change")
    assert len(deliveries(env)) == before
    with env.runtime.db.session() as session:
        assert session.get_one(Integration, iid).status == "connected"


# -- a receiver that is down, the dead letter, redelivery -------------------------------------------------------------


async def test_a_receiver_down_for_a_while_gets_everything_when_it_is_back(
    ops_any_db: Any, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = ops_any_db
    tune(env, monkeypatch)
    subscribe(env, receiver, ["run.succeeded"])
    iid = await connect(env)
    receiver.status = 503
    handle = in_process_worker(env)
    try:
        run_ids = [await env.runtime.executor.dispatch(iid, "Echo", trigger="api") for _ in range(5)]
        for run_id in run_ids:
            await env.wait(run_id)
        receiver.wait_for(lambda: receiver.hits >= 10, what="retries while down")
        assert receiver.events == {}
        receiver.status = 200
        # Five runs and the reconcile run the first connection started.
        rows = wait_deliveries(env, EventDeliveryStatus.delivered, 6)
    finally:
        handle.stop()
    received = sorted(e["data"]["run_id"] for e in receiver.of_type("run.succeeded"))
    assert set(run_ids) <= set(received) and len(received) == len(rows) == 6
    assert all(d.attempts >= 2 and d.last_status_code == 204 and d.last_error == "" for d in rows)
    assert set(receiver.seen.values()) == {1}


async def test_dead_after_the_retry_window_then_redelivered_by_hand(
    ops_any_db: Any, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = ops_any_db
    tune(env, monkeypatch, TETHER_EVENT_RETRY_WINDOW_SECONDS="0.5")
    subscribe(env, receiver, ["run.failed"])
    iid = await connect(env)
    receiver.status = 503
    handle = in_process_worker(env)
    try:
        await env.wait(await env.runtime.executor.dispatch(iid, "Broken", trigger="api"))
        (dead,) = wait_deliveries(env, EventDeliveryStatus.dead, 1)
        assert dead.last_status_code == 503 and dead.last_error.startswith("http_status:")
        hits = receiver.hits
        await asyncio.sleep(0.5)  # several sweeps: a dead delivery is not tried again
        assert receiver.hits == hits
        receiver.status = 200
        assert delivery.redeliver(env.runtime.db, "t1", dead.id)
        (done,) = wait_deliveries(env, EventDeliveryStatus.delivered, 1)
    finally:
        handle.stop()
    assert done.id == dead.id and done.attempts == dead.attempts + 1
    assert list(receiver.events) == [dead.event_id]  # the same webhook-id as every earlier attempt
    assert not delivery.redeliver(env.runtime.db, "another-tenant", dead.id)


# -- secret rotation -------------------------------------------------------------------------------------------------


async def test_both_secrets_verify_during_the_rotation_overlap(
    ops_any_db: Any, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = ops_any_db
    tune(env, monkeypatch)
    row = subscribe(env, receiver, ["run.failed"], name="old")
    iid = await connect(env)
    _, new_secret = endpoints.rotate(env.runtime.db, env.runtime.keys.keyring, "t1", row.id, overlap=timedelta(hours=1))
    receiver.secrets["new"] = new_secret
    handle = in_process_worker(env)
    try:
        first = await env.runtime.executor.dispatch(iid, "Broken", trigger="api")
        await env.wait(first)
        wait_deliveries(env, EventDeliveryStatus.delivered, 1)
        # A rotation with no overlap: the secret two generations old stops signing at once.
        _, newest = endpoints.rotate(env.runtime.db, env.runtime.keys.keyring, "t1", row.id, overlap=timedelta(0))
        receiver.secrets["newest"] = newest
        second = await env.runtime.executor.dispatch(iid, "Broken", trigger="api")
        await env.wait(second)
        wait_deliveries(env, EventDeliveryStatus.delivered, 2)
    finally:
        handle.stop()
    by_run = {e["data"]["run_id"]: event_id for event_id, e in receiver.events.items()}
    assert receiver.verified_by[by_run[first]] == {"old", "new"}
    assert receiver.verified_by[by_run[second]] == {"newest"}


# -- a worker killed mid-delivery --------------------------------------------------------------------------------------


async def test_a_worker_killed_mid_delivery_loses_nothing(
    ops: Any, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = ops
    tune(env, monkeypatch, TETHER_EVENT_DELIVERY_TIMEOUT_SECONDS="5", TETHER_EVENT_LEASE_SECONDS="6")
    subscribe(env, receiver, ["run.failed"])  # the reconcile run of the first connection succeeds: no event
    iid = await connect(env)
    receiver.stall.set()
    first = env.start_worker()
    run_id = await env.runtime.executor.dispatch(iid, "Broken", trigger="api")
    await env.wait(run_id)
    receiver.wait_for(lambda: receiver.hits >= 1, what="stalled request")
    (sending,) = deliveries(env)
    assert sending.status == EventDeliveryStatus.sending and sending.attempts == 1
    os.kill(first.pid, signal.SIGKILL)
    first.wait(timeout=10)
    receiver.stall.clear()
    env.start_worker()
    (done,) = wait_deliveries(env, EventDeliveryStatus.delivered, 1)
    assert done.id == sending.id and done.attempts == 2
    assert [e["data"]["run_id"] for e in receiver.events.values()] == [run_id]
    assert list(receiver.events) == [done.event_id]  # recorded once, by webhook-id, whichever copy landed first
