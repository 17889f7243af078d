"""Issue 19's proof, end to end as a host app sees Tether: a ``tether serve`` process and ``tether worker`` processes on
PostgreSQL and Redis, the sandbox provider that server serves itself (``/sandbox``), and a host receiver on
127.0.0.1 that verifies every event with ``tether_client.verify_event`` and the ``standardwebhooks`` library and
records each once by ``webhook-id``. Everything the host does goes through ``tether_client`` against the live server.

One scenario, in order: connect the sandbox with an API key and sync it; mirror the change feed into a dict and find
it equal to what the records API lists; take the receiver down (its port closed: connections refused) while the
sandbox changes and deletes records (signed webhooks the server receives and the worker processes, a provider delete
becoming a tombstone in the feed) and another sync runs; bring the receiver back and find every event delivered;
then SIGKILL the worker while it holds a delivery the receiver is stalling, start another, and find nothing lost.
Waits are bounded polls (limits against hangs, never timing claims).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from engine.api.principal import create_api_key
from engine.custody.crypto import generate_master_key
from engine.store.database import Database
from support.event_receiver import Receiver, running_receiver
from support.server import free_port
from support.workers import REDIS_URL, start_worker, stop_all
from tether_client import Client, QueuedResponse

TESTS = Path(__file__).resolve().parents[1]
SRC = TESTS.parent / "src"
EVENT_TYPES = ["integration.connected", "run.succeeded", "run.failed", "records.changed"]
#: The sandbox schemas a Sync lands (``definitions.sandbox.kinds``).
SCHEMAS = ("directory_account", "directory_group", "directory_membership", "asset", "finding", "calendar_event")
#: Small knobs so retries, leases and sweeps pass in a fraction of a second (the lease outlives the send deadline).
KNOBS = {
    "TETHER_EVENT_RETRY_SCHEDULE": "0.2,0.4",
    "TETHER_EVENT_RETRY_WINDOW_SECONDS": "3600",
    "TETHER_EVENT_DELIVERY_TIMEOUT_SECONDS": "4",
    "TETHER_EVENT_LEASE_SECONDS": "5",
    "TETHER_EVENT_SWEEP_SECONDS": "0.1",
    "TETHER_EVENT_REQUEUE_AFTER_SECONDS": "5",
    "TETHER_ALLOW_LOOPBACK_PROVIDERS": "1",
    "TETHER_RUN_HEARTBEAT_SECONDS": "0.5",
    "TETHER_REAP_INTERVAL_SECONDS": "0.5",
}


@dataclass
class Stack:
    base: str
    key: str
    env: dict[str, str]
    workers: list[subprocess.Popen[str]] = field(default_factory=list)

    def start_worker(self) -> subprocess.Popen[str]:
        proc = start_worker(self.env, threads=4)
        self.workers.append(proc)
        return proc


def wait_until(predicate: Callable[[], Any], what: str, bound: float = 60.0) -> Any:
    """Poll until ``predicate()`` is truthy and return it (a bound against hangs, not a timing assertion)."""
    deadline = time.monotonic() + bound
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}")
        time.sleep(0.1)


@pytest.fixture
def stack(postgres_database: Database, redis_client: redis.Redis, tmp_path: Path) -> Iterator[Stack]:
    """``tether serve`` (sandbox on, Redis broker) on a free port of 127.0.0.1 over a fresh PostgreSQL schema."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    namespace = f"tether_test_{uuid.uuid4().hex[:12]}"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("TETHER_")},
        **KNOBS,
        "TETHER_DATABASE_URL": postgres_database.url,
        "TETHER_SECRET_MASTER_KEY": generate_master_key(),
        "TETHER_STATE_DIR": str(tmp_path / "state"),
        "TETHER_BROKER_URL": REDIS_URL,
        "TETHER_BROKER_NAMESPACE": namespace,
        "TETHER_SANDBOX": "1",
        "TETHER_PUBLIC_URL": base,
        "PYTHONPATH": os.pathsep.join([str(SRC), str(TESTS), os.environ.get("PYTHONPATH", "")]),
    }
    log = (tmp_path / "server.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "engine.cli", "serve", "--port", str(port), "--no-access-log", "--no-migrate"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
    )
    stack = Stack(base, "", env)
    try:
        stack.start_worker()  # while the server starts
        wait_until(lambda: _healthy(base, server), "tether serve answering /healthz")
        stack.key, _ = create_api_key(postgres_database, tenant="acme", role="server", name="host app")
        yield stack
    finally:
        stop_all([*stack.workers, server], namespace, redis_client)
        log.close()


def _healthy(base: str, server: subprocess.Popen[str]) -> bool:
    if server.poll() is not None:
        raise AssertionError(f"tether serve exited with {server.returncode}")
    try:
        return httpx.get(f"{base}/healthz", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def mirror_from_feed(tether: Client, iid: str) -> tuple[dict[tuple[str, int], dict[str, Any]], list[int]]:
    """What a host that applies the feed in order holds, and the sequences it read."""
    mirror: dict[tuple[str, int], dict[str, Any]] = {}
    seqs: list[int] = []
    for change in tether.iter_changes(integration_id=iid, limit=25):
        seqs.append(change.seq)
        key = (change.schema_, change.record_id)
        if change.op == "remove":
            assert change.record is None
            mirror.pop(key, None)
        else:
            assert change.record is not None and change.record["id"] == change.record_id
            # The feed's state carries the tenant; the records API leaves its scope out (ingest.records).
            state = dict(change.record)
            assert state.pop("tenant_id") == "acme"
            mirror[key] = state
    return mirror, seqs


def listed(tether: Client, iid: str) -> dict[tuple[str, int], dict[str, Any]]:
    return {(s, r["id"]): r for s in SCHEMAS for r in tether.iter_records(s, integration_id=iid, limit=40)}


def assert_mirror_exact(tether: Client, iid: str) -> list[int]:
    mirror, seqs = mirror_from_feed(tether, iid)
    assert seqs == sorted(set(seqs)), "the feed is in strictly increasing order"
    api = listed(tether, iid)
    assert set(mirror) == set(api)
    differing = {
        key: {
            f: (mirror[key].get(f), api[key].get(f))
            for f in set(mirror[key]) | set(api[key])
            if mirror[key].get(f) != api[key].get(f)
        }
        for key in api
        if mirror[key] != api[key]
    }
    assert not differing
    return seqs


def settled_runs(tether: Client, iid: str, count: int) -> list[Any]:
    """The integration's runs once there are ``count`` of them and none is still queued or running."""

    def done() -> list[Any] | None:
        runs = list(tether.iter_runs(iid))
        finished = all(r.status in ("succeeded", "failed", "cancelled") for r in runs)
        return runs if len(runs) >= count and finished else None

    runs = wait_until(done, f"{count} finished runs")
    assert {r.status for r in runs} == {"succeeded"}, [(r.operation, r.status, r.error_code) for r in runs]
    return runs


def deliveries(tether: Client) -> list[Any]:
    return list(tether.iter_event_deliveries())


def test_a_host_app_mirrors_the_feed_and_gets_every_event_exactly_once(stack: Stack) -> None:
    receiver = Receiver()
    receiver.with_client = True
    port = free_port()
    control = httpx.Client(
        base_url=f"{stack.base}/sandbox/control/accounts/acme",
        headers={"Authorization": f"Bearer {stack.key}"},
        timeout=30,
    )
    (first_worker,) = stack.workers
    with Client(stack.base, api_key=stack.key, timeout=30) as tether, control:
        with running_receiver(receiver, port):
            endpoint = tether.create_event_endpoint(receiver.url, EVENT_TYPES, description="host app")
            receiver.secrets["current"] = endpoint.secret

            # -- connect and sync; the feed mirrors the records exactly -------------------------------------------
            iid = tether.create_integration("sandbox", owner_id="alice").id
            connected = tether.submit_credential(iid, "SandboxApiKey", {"api_key": "sbx_key_acme"})
            assert (connected.status, connected.connection) == ("connected", "SandboxKey")
            started = tether.run(iid, "Sync")
            assert isinstance(started, QueuedResponse)
            runs = settled_runs(tether, iid, 2)  # the connection's reconcile sync and this one
            seqs = assert_mirror_exact(tether, iid)
            held = listed(tether, iid)
            assert {s for s, _ in held} == set(SCHEMAS) and len(seqs) >= len(held)
            receiver.wait_for(lambda: len(receiver.events) == len(deliveries(tether)) >= 3, what="first events")

        # -- the receiver is down (connections refused) while the provider changes and deletes records --------------
        users = sorted(tether.iter_records("directory_account", integration_id=iid), key=lambda r: r["external_id"])
        findings = list(tether.iter_records("finding", integration_id=iid))
        renamed = control.patch(f"/records/users/{users[0]['external_id']}", json={"title": "Chief Mirror Officer"})
        assert renamed.status_code == 200, renamed.text
        deleted_user = control.delete(f"/records/users/{users[1]['external_id']}")  # its memberships go with it
        assert deleted_user.status_code == 200, deleted_user.text
        deleted = control.delete(f"/records/findings/{findings[0]['external_id']}")
        assert deleted.status_code == 200, deleted.text
        for answer in (renamed, deleted_user, deleted):
            assert [d["status"] for d in answer.json()["deliveries"]] == [202], answer.json()
        webhook_runs = [r for r in settled_runs(tether, iid, 5) if r.trigger == "webhook"]
        assert len(webhook_runs) == 3
        assert isinstance(tether.run(iid, "Sync"), QueuedResponse)  # reads the same changes again: no-ops
        runs = settled_runs(tether, iid, 6)

        def retried() -> list[Any] | None:
            # The three webhooks' records.changed and the sync's run.succeeded at least, each tried more than once
            # and waiting for its next retry (polled between two attempts, none of them in flight).
            unseen = [d for d in deliveries(tether) if d.event_id not in receiver.events]
            waiting = all(d.attempts >= 2 and d.status == "pending" for d in unseen)
            return unseen if len(unseen) >= 4 and waiting else None

        down = wait_until(retried, "retries of every event sent while the receiver was down")
        assert all(d.last_error.startswith("network_error") for d in down)

        # The provider delete: the finding is gone from the records API and the feed ends with its tombstone.
        finding_ids = {r["external_id"] for r in tether.iter_records("finding", integration_id=iid)}
        assert findings[0]["external_id"] not in finding_ids and len(finding_ids) == len(findings) - 1
        tombstones = [c for c in tether.iter_changes(integration_id=iid, schema="finding") if c.op == "remove"]
        assert [c.record_id for c in tombstones] == [findings[0]["id"]]
        removed = {c.schema_ for c in tether.iter_changes(integration_id=iid) if c.op == "remove"}
        assert {"directory_account", "finding"} <= removed <= {"directory_account", "directory_membership", "finding"}
        seqs = assert_mirror_exact(tether, iid)

        # -- the receiver is back: it gets everything ----------------------------------------------------------------
        with running_receiver(receiver, port):
            receiver.wait_for(
                lambda: (
                    {d.status for d in deliveries(tether)} == {"delivered"}
                    and set(receiver.events) == {d.event_id for d in deliveries(tether)}
                ),
                what="every event after the receiver came back",
            )
            assert receiver.unverified == 0
            check_events(receiver, runs, seqs, tether, iid, tombstones[0].seq)

            # -- a worker SIGKILLed mid-delivery: a new worker sends it again, nothing is lost --------------------
            receiver.stall.set()
            hits = receiver.hits
            changed = control.patch(f"/records/assets/{held_asset(held)}", json={"hostname": "moved.acme.example"})
            assert changed.status_code == 200, changed.text
            sending = wait_until(
                lambda: [d for d in deliveries(tether) if d.status == "sending"] if receiver.hits > hits else None,
                "a delivery held by the worker, stalled at the receiver",
            )
            (held_delivery,) = sending
            assert held_delivery.event_type == "records.changed"
            os.kill(first_worker.pid, signal.SIGKILL)
            first_worker.wait(timeout=10)
            receiver.stall.clear()
            stack.start_worker()
            wait_until(
                lambda: (
                    {d.status for d in deliveries(tether)} == {"delivered"}
                    and set(receiver.events) == {d.event_id for d in deliveries(tether)}
                ),
                "the held delivery sent by the new worker",
            )
            (again,) = [d for d in deliveries(tether) if d.id == held_delivery.id]
            assert again.attempts == held_delivery.attempts + 1 and again.event_id == held_delivery.event_id
            assert receiver.unverified == 0 and held_delivery.event_id in receiver.events
            assert len(receiver.events) == len(deliveries(tether))  # each event recorded once, by webhook-id
        assert_mirror_exact(tether, iid)


def held_asset(held: dict[tuple[str, int], dict[str, Any]]) -> str:
    return str(next(r["source_identifier"] for (schema, _), r in held.items() if schema == "asset"))


def check_events(
    receiver: Receiver, runs: list[Any], seqs: list[int], tether: Client, iid: str, tombstone: int
) -> None:
    """Every event the host should have, once: the connection, each queued run's success, a ``records.changed`` for
    each run that changed records, whose windows hold every change of the integration (the tombstone among them)."""
    (connected,) = receiver.of_type("integration.connected")
    assert connected["data"]["integration_id"] == iid
    succeeded = sorted(e["data"]["run_id"] for e in receiver.of_type("run.succeeded"))
    assert succeeded == sorted(r.id for r in runs if r.trigger != "webhook")
    changed = [e["data"] for e in receiver.of_type("records.changed") if e["data"]["integration_id"] == iid]
    webhook_runs = {r.id for r in runs if r.trigger == "webhook"}
    assert webhook_runs <= {d["run_id"] for d in changed}  # each webhook's change announced
    windows = [d["changes"] for d in changed if d["changes"] is not None]
    covered = {s for s in seqs if any(w["after"] < s <= w["until"] for w in windows)}
    assert covered == set(seqs)
    (removal,) = [d for d in changed if d["removed"].get("finding")]
    assert removal["removed"] == {"finding": 1} and removal["run_id"] in webhook_runs
    assert removal["changes"]["after"] < tombstone <= removal["changes"]["until"]
    assert set(receiver.seen) == set(receiver.events) and receiver.unverified == 0
