"""``GET /metrics`` after a scripted workload, parsed with prometheus-client's own text parser: every metric is
there, and each count moved by exactly what the workload did (the counters are process-wide, so the test compares
a scrape before with one after).

And multiprocess mode: two processes writing to one ``TETHER_METRICS_DIR`` are summed by the ``/metrics`` of a
third."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr
from sqlmodel import select

from engine.api.app import create_app
from engine.authoring.slots import OAuth2Token
from engine.custody.keystore import Keystore
from engine.custody.oauth import InvalidGrant, ProviderUnavailable
from engine.events import delivery, endpoints
from engine.governor import BucketKey, GovernorDeferred, LocalGovernor, RateLimit, governed
from engine.governor.scope import admit_sync
from engine.integrations.lifecycle import ReconnectRequired
from engine.runtime import Runtime
from engine.store.database import Database
from engine.store.tables import DeliveryStatus, Integration, IntegrationStatus, WebhookDelivery
from engine.webhooks.deliveries import process_delivery
from support import metered_definition as metered
from support.event_receiver import Receiver, running_receiver
from support.ops_definition import OpsToken
from support.scratchdb import upgrade_sqlite
from support.webhook_kit import Setup, build_setup, event_body, sign

TESTS = Path(__file__).resolve().parents[1]
SRC = TESTS.parent / "src"

#: Every metric family the engine exposes (queue depth has its own test: it is read from Redis).
FAMILIES = {
    "tether_runs": "counter",
    "tether_run_duration_seconds": "histogram",
    "tether_webhook_deliveries": "counter",
    "tether_webhook_processing_lag_seconds": "histogram",
    "tether_token_refreshes": "counter",
    "tether_egress_refusals": "counter",
    "tether_ingest_records": "counter",
    "tether_governor_deferrals": "counter",
    "tether_event_deliveries": "counter",
}

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> tuple[dict[str, str], Samples]:
    families: dict[str, str] = {}
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        families[family.name] = family.type
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return families, samples


def delta(before: Samples, after: Samples, name: str, **labels: str) -> float:
    key = (name, frozenset(labels.items()))
    return after.get(key, 0.0) - before.get(key, 0.0)


@dataclass
class World:
    runtime: Runtime
    client: httpx.AsyncClient
    integration_id: str
    hooks: Setup

    async def scrape(self) -> tuple[dict[str, str], Samples]:
        response = await self.client.get("/metrics")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")
        return parse(response.text)


class Grant(OAuth2Token):
    pass


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with running_receiver() as r:
        yield r


@pytest.fixture
async def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[World]:
    monkeypatch.setenv("TETHER_ALLOW_LOOPBACK_PROVIDERS", "1")  # the event receiver listens on loopback
    db = Database(f"sqlite:///{tmp_path / 'metrics.db'}")
    upgrade_sqlite(db)  # a copy of a file migrated once (support.scratchdb)
    # The webhook suite's set-up (its dispatch a stand-in: what a processed delivery starts is that suite's to
    # prove), serving the metered definition as well.
    hooks_setup = await build_setup(db, monkeypatch, metered.definition)
    runtime = hooks_setup.runtime
    with runtime.db.session() as session:
        integration = Integration(
            tenant_id="t1",
            owner_id="o2",
            definition_id="metered",
            status=IntegrationStatus.connected,
            provider_data={"connection": "MeteredKey"},
        )
        session.add(integration)
    runtime.keystore.save(integration.id, OpsToken(token="metered-token"))  # type: ignore[arg-type]
    app = create_app(runtime)
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://tether.test")
    yield World(runtime, client, integration.id, hooks_setup)
    await client.aclose()
    db.dispose()


async def refresh_three_ways(world: World) -> None:
    """One refresh of each outcome, through the Keystore's own refresh path."""
    store = Keystore(world.runtime.db, world.runtime.keys.keyring, refresh_attempts=2, refresh_backoff=0.01)
    with world.runtime.db.session() as session:
        row = Integration(tenant_id="t1", owner_id="o3", definition_id="metered", status=IntegrationStatus.connected)
        session.add(row)
    store.save(row.id, Grant(access_token=SecretStr("old-at"), refresh_token=SecretStr("rt")))

    async def fresh(current: object) -> Grant:
        return Grant(access_token=SecretStr("new-at"), refresh_token=SecretStr("rt"))

    async def down(current: object) -> Grant:
        raise ProviderUnavailable("token endpoint unreachable")

    async def refused(current: object) -> Grant:
        raise InvalidGrant("the refresh token was revoked")

    await store.refresh_if_due(row.id, Grant, due=lambda s: True, refresh=fresh)
    with pytest.raises(ProviderUnavailable):  # retried once, then transient: one refresh outcome, not two
        await store.refresh_if_due(row.id, Grant, due=lambda s: True, refresh=down)
    with pytest.raises(ReconnectRequired):
        await store.refresh_if_due(row.id, Grant, due=lambda s: True, refresh=refused)


def defer_once() -> None:
    """A provider call past its budget with no time to wait: the governor defers it."""
    key, limit = BucketKey("metered"), RateLimit(per_second=0.0001, burst=1)
    with governed(LocalGovernor(), key, limit, tenant="t1", max_wait=0):
        admit_sync()  # the burst's one token
        with pytest.raises(GovernorDeferred):
            admit_sync()


async def test_metrics_count_a_scripted_workload(world: World, receiver: Receiver) -> None:
    families, before = await world.scrape()
    assert {name: families.get(name) for name in FAMILIES} == FAMILIES
    _, receiver.secrets["current"] = endpoints.create(
        world.runtime.db, world.runtime.keys.keyring, "t1", url=receiver.url, event_types=["run.failed"]
    )

    executor = world.runtime.executor
    outcomes = {}
    for operation in ("Works", "Fails", "Reaches", "Mixed"):
        done = await executor.run_inline(world.integration_id, operation)
        outcomes[operation] = (done.run.status, done.run.error_code)
    assert outcomes == {
        "Works": ("succeeded", ""),
        "Fails": ("failed", "provider_error"),
        "Reaches": ("failed", "egress_refused"),
        "Mixed": ("succeeded", ""),
    }

    body = event_body("github", "item.changed", "metrics-1")
    url = f"/v1/webhooks/{world.hooks.token('github')}"
    signed = sign("github", body, world.hooks.secret("github"), delivery="metrics-1")
    answers = [(await world.client.post(url, content=body, headers=signed)).status_code for _ in range(2)]
    forged = sign("github", body, "not-the-secret", delivery="metrics-2")
    answers.append((await world.client.post(url, content=body, headers=forged)).status_code)
    assert answers == [202, 200, 401]
    with world.runtime.db.session() as session:
        recorded = [row.id for row in session.exec(select(WebhookDelivery))]
    assert len(recorded) == 1
    processed = await process_delivery(world.runtime, recorded[0])
    assert processed is not None and processed.status == DeliveryStatus.processed

    await refresh_three_ways(world)
    defer_once()
    due = delivery.due(world.runtime.db, world.runtime.settings)
    assert len(due) == 2  # run.failed of Fails and of Reaches
    assert set((await delivery.deliver(world.runtime, due)).values()) == {delivery.Status.delivered}

    families, after = await world.scrape()
    assert {name: families.get(name) for name in FAMILIES} == FAMILIES
    runs = {
        (operation, outcome): delta(
            before, after, "tether_runs_total", definition="metered", operation=operation, outcome=outcome
        )
        for operation, outcome in [
            ("Works", "succeeded"),
            ("Fails", "failed"),
            ("Reaches", "failed"),
            ("Mixed", "succeeded"),
            ("Works", "failed"),
        ]
    }
    assert runs == {
        ("Works", "succeeded"): 1,
        ("Fails", "failed"): 1,
        ("Reaches", "failed"): 1,
        ("Mixed", "succeeded"): 1,
        ("Works", "failed"): 0,
    }
    durations = delta(
        before, after, "tether_run_duration_seconds_count", definition="metered", operation="Fails", outcome="failed"
    )
    infinite_bucket = delta(
        before,
        after,
        "tether_run_duration_seconds_bucket",
        definition="metered",
        operation="Fails",
        outcome="failed",
        le="+Inf",
    )
    assert (durations, infinite_bucket) == (1, 1)
    assert delta(before, after, "tether_egress_refusals_total") == 1
    ingest = {
        outcome: delta(before, after, "tether_ingest_records_total", definition="metered", outcome=outcome)
        for outcome in ("persisted", "filtered", "rejected")
    }
    assert ingest == {"persisted": 2, "filtered": 0, "rejected": 1}
    deliveries = {
        outcome: delta(before, after, "tether_webhook_deliveries_total", definition="hooks", outcome=outcome)
        for outcome in ("accepted", "duplicate", "refused")
    }
    assert deliveries == {"accepted": 1, "duplicate": 1, "refused": 1}
    lag = delta(before, after, "tether_webhook_processing_lag_seconds_count", definition="hooks")
    assert lag == 1
    refreshes = {
        outcome: delta(before, after, "tether_token_refreshes_total", outcome=outcome)
        for outcome in ("refreshed", "invalid_grant", "transient")
    }
    assert refreshes == {"refreshed": 1, "invalid_grant": 1, "transient": 1}
    assert delta(before, after, "tether_governor_deferrals_total") == 1
    assert delta(before, after, "tether_event_deliveries_total", outcome="delivered") == 2
    # No label names an integration, a tenant or a run: label values are definitions, operations and outcomes.
    label_values = {value for (_, labels) in after for _, value in labels}
    assert world.integration_id not in label_values and "t1" not in label_values


#: A process that counts what ``argv`` says (the work of one worker process), then exits.
_WRITER = """
import sys
from engine.observability import metrics
for _ in range(int(sys.argv[1])):
    metrics.run_ended("metered", "Works", "succeeded", 0.2)
metrics.egress_refused()
metrics.webhook_delivery("hooks", "accepted")
"""
#: A process that prints what its ``/metrics`` would answer.
_READER = "from engine.observability import metrics; print(metrics.exposition().decode())"


def _python(code: str, *args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", code, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def test_two_processes_writing_in_multiprocess_mode_are_summed(tmp_path: Path) -> None:
    directory = tmp_path / "metrics"  # created by the engine, as a fresh deployment's directory would be
    env = {
        **os.environ,
        "TETHER_METRICS_DIR": str(directory),
        "PYTHONPATH": os.pathsep.join([str(SRC), str(TESTS)]),
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    writers = [_python(_WRITER, str(n), env=env) for n in (2, 3)]  # concurrently, as worker processes run
    for writer in writers:
        _, err = writer.communicate(timeout=120)
        assert writer.returncode == 0, err
    assert len(list(directory.glob("counter_*.db"))) == 2  # one file per process
    reader = _python(_READER, env=env)
    out, err = reader.communicate(timeout=120)
    assert reader.returncode == 0, err
    _, samples = parse(out)
    labels = {"definition": "metered", "operation": "Works", "outcome": "succeeded"}
    assert samples[("tether_runs_total", frozenset(labels.items()))] == 5
    assert samples[("tether_run_duration_seconds_count", frozenset(labels.items()))] == 5
    assert samples[("tether_run_duration_seconds_sum", frozenset(labels.items()))] == pytest.approx(1.0)
    assert samples[("tether_egress_refusals_total", frozenset())] == 2
    accepted = {"definition": "hooks", "outcome": "accepted"}
    assert samples[("tether_webhook_deliveries_total", frozenset(accepted.items()))] == 2


def test_without_a_directory_a_process_keeps_its_own_samples(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), str(TESTS)])}
    env.pop("TETHER_METRICS_DIR", None)
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    writer = _python(_WRITER + "\n" + _READER, "1", env=env)
    out, err = writer.communicate(timeout=120)
    assert writer.returncode == 0, err
    _, samples = parse(out)
    assert samples[("tether_egress_refusals_total", frozenset())] == 1


async def test_turned_off_the_route_is_not_mounted(world: World) -> None:
    world.runtime.settings.metrics = False
    app = create_app(world.runtime)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://tether.test") as client:
        response = await client.get("/metrics")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
