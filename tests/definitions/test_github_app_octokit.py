"""Every real example payload of ``@octokit/webhooks-examples`` for the events the GitHub definition handles,
signed with GitHub's reference signer (``githubkit.webhooks.sign``), posted to the app's static endpoint of an
in-process Tether, processed, and mapped through the registry into valid models.

Fetch the examples first: ``python scripts/fetch_octokit_examples.py``. Without them the tests skip locally and
fail under ``CI=true``.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import githubkit.webhooks
import httpx
import pytest
from sqlmodel import select

from definitions.github_app import definition
from definitions.github_app.webhook import GitHubAppWebhook
from engine import EventContext, Payload
from engine.catalog.registry import Registry
from engine.custody.crypto import KeyRing, generate_master_key
from engine.custody.masterkey import KeySource
from engine.runtime import Runtime
from engine.settings import Settings
from engine.store.database import Database
from engine.store.tables import DeliveryStatus, Integration, IntegrationStatus, Run, WebhookDelivery
from engine.webhooks.endpoints import ensure_endpoints
from ingest.models.asset import Asset
from ingest.models.vulnerability import Vulnerability
from ingest.pipeline import IngestContext, IngestPipeline
from support.embedded import EmbeddedWorker
from support.scratchdb import upgrade_sqlite
from support.webhook_kit import make_app

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / ".cache" / "octokit-webhooks-examples" / "index.json"
FIXTURES = ROOT / "tests" / "fixtures" / "github_app"
SECRET = "It's a Secret to Everybody"
HANDLED = tuple(event.match for event in GitHubAppWebhook.events)
URL = "/v1/webhooks/static/github_app/app"


def examples(event_type: str) -> list[dict[str, Any]]:
    if not EXAMPLES.exists():
        message = "octokit webhook examples missing: run `python scripts/fetch_octokit_examples.py`"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    events = {e["name"]: e["examples"] for e in json.loads(EXAMPLES.read_text())["events"]}
    found = events.get(event_type, [])
    if event_type == "secret_scanning_alert":  # the package has none: GitHub's documented shape, recorded
        assert found == [], "the package now has secret_scanning_alert examples: drop the fixture fallback"
        found = [json.loads((FIXTURES / "webhook_secret_scanning_alert.json").read_text())["body"]]
    assert found, f"no {event_type} example in the package"
    return found


def installation_id(example: dict[str, Any]) -> str | None:
    installation = example.get("installation")
    return str(installation["id"]) if isinstance(installation, dict) and "id" in installation else None


async def emitted(event_type: str, example: dict[str, Any]) -> list[Payload]:
    """What the event's handler yields for ``example`` (the installation cleanup is a no-op here)."""
    event = next(e for e in GitHubAppWebhook.events if e.match == event_type)

    async def dispatch(operation: Any, config: dict[str, Any]) -> str:
        raise AssertionError("no GitHub event dispatches an operation")

    ctx = EventContext(integration_id="i", event_type=event_type, delivery_id="d", payload=example,
                       headers={}, dispatch=dispatch, cleanup=lambda: None)
    return [p async for p in event().handle(ctx)]


@pytest.mark.parametrize("event_type", HANDLED)
def test_every_example_maps_to_a_valid_model(event_type: str) -> None:
    registry = Registry()
    registry.register(definition)
    pipeline = IngestPipeline(registry)
    event = next(e for e in GitHubAppWebhook.events if e.match == event_type)
    ctx = IngestContext(tenant_id="t", integration_id="i", definition_id="github_app", emits=event.emits,
                        source="webhook", origin=event.event_id())
    for index, example in enumerate(examples(event_type)):
        payloads = asyncio.run(emitted(event_type, example))
        assert len(payloads) == len(event.emits), (event_type, index)
        for payload in payloads:
            outcome = pipeline.evaluate(ctx, payload, index)
            assert outcome.status in ("mapped", "filtered"), (event_type, index, outcome.reason_code, outcome.reason)
            if outcome.status == "filtered":
                assert example.get("action") == "deleted"


@pytest.fixture
def runtime(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    for name, value in {"APP_ID": "12345", "APP_SLUG": "tether-test"}.items():
        monkeypatch.setenv(f"TETHER_GITHUB_APP_{name}", value)
    monkeypatch.setenv("TETHER_SECRET_GITHUB_APP_PRIVATE_KEY", "unused by webhooks")
    monkeypatch.setenv("TETHER_SECRET_GITHUB_APP_WEBHOOK_SECRET", SECRET)
    db = Database(f"sqlite:///{tmp_path / 'github.db'}")
    upgrade_sqlite(db)  # a copy of a file migrated once (support.scratchdb)
    registry = Registry()
    registry.register(definition)
    runtime = Runtime(Settings(database_url=db.url, public_url="https://tether.example"), db, registry,
                      KeySource(KeyRing.from_master_key(generate_master_key()), "env"))
    runtime._load_operator_configs()
    assert runtime.enabled("github_app")
    yield runtime
    db.dispose()


async def connect(runtime: Runtime, installation: str) -> Integration:
    row = Integration(tenant_id=f"t-{installation}", owner_id="o1", definition_id="github_app",
                      status=IntegrationStatus.connected, provider_data={"installation_id": installation})
    with runtime.db.session() as session:
        session.add(row)
    await ensure_endpoints(runtime, row)
    return row


async def status_of(runtime: Runtime, installation: str | None) -> str:
    with runtime.db.session() as session:
        row = session.exec(select(Integration).where(Integration.tenant_id == f"t-{installation}")).one()
    return row.status


async def reinstate(runtime: Runtime, installation: str | None) -> None:
    with runtime.db.session() as session:
        row = session.exec(select(Integration).where(Integration.tenant_id == f"t-{installation}")).one()
        row.status, row.provider_data = IntegrationStatus.connected, {"installation_id": installation}
        session.add(row)
    await ensure_endpoints(runtime, row)


def signed(body: bytes, event_type: str, delivery: str, secret: str = SECRET) -> dict[str, str]:
    return {"Content-Type": "application/json", "X-Hub-Signature-256": githubkit.webhooks.sign(secret, body),
            "X-GitHub-Event": event_type, "X-GitHub-Delivery": delivery}


@pytest.mark.parametrize("event_type", HANDLED)
async def test_every_signed_example_is_accepted_and_processed(
    runtime: Runtime, event_type: str, embedded: EmbeddedWorker
) -> None:
    found = examples(event_type)
    installations = {i for i in map(installation_id, found) if i is not None}
    for installation in sorted(installations):
        await connect(runtime, installation)
    app = make_app(runtime)
    embedded.start(app)
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://tether.test")
    expected: dict[str, str] = {}
    async with client:
        for index, example in enumerate(found):
            body = json.dumps(example).encode()  # the raw body is what is signed and verified
            delivery = f"{event_type}-{index}"
            response = await client.post(URL, content=body, headers=signed(body, event_type, delivery))
            if event_type == "ping":
                assert (response.status_code, response.json()) == (200, {"status": "pong"}), index
                continue
            status = "received" if installation_id(example) else "unrouted"
            assert (response.status_code, response.json()["status"]) == (202, status), (index, response.text)
            if status == "received":
                expected[delivery] = installation_id(example) or ""
            if event_type == "installation" and example.get("action") == "deleted" and status == "received":
                # An uninstall ends the connection: the integration is released (nothing to revoke) ...
                await embedded.drain()
                assert await status_of(runtime, installation_id(example)) == IntegrationStatus.disconnected
                await reinstate(runtime, installation_id(example))  # ... and the next example installs it again
        forged = json.dumps(found[0]).encode()
        response = await client.post(URL, content=forged, headers=signed(forged, event_type, "forged", "wrong"))
        assert response.status_code == 401 and response.json()["error"]["code"] == "invalid_signature"
    await embedded.drain()

    with runtime.db.session() as session:
        rows = session.exec(select(WebhookDelivery)).all()
        runs = session.exec(select(Run)).all()
        vulnerabilities = session.exec(select(Vulnerability)).all()
        assets = session.exec(select(Asset)).all()
    assert {r.delivery_id: r.status for r in rows} == dict.fromkeys(expected, DeliveryStatus.processed)
    assert all(r.event_type == event_type and r.error_code == "" for r in rows)
    assert all(run.status == "succeeded" and run.records_rejected == 0 for run in runs)
    emits = sum([len(await emitted(event_type, e)) for e in found if installation_id(e)])
    assert sum(run.payloads_out for run in runs) == emits
    if event_type.endswith("_alert"):
        assert vulnerabilities and {v.source for v in vulnerabilities} == {event_type.removesuffix("_alert")}
        assert all(v.title and v.url for v in vulnerabilities)
    if event_type == "repository":
        assert assets and all(a.asset_type == "repository" for a in assets)
