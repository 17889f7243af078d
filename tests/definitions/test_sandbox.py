"""The sandbox definition against the REAL sandbox server (``engine.sandbox``) on a live Tether on 127.0.0.1.

Everything goes the way a host app and a browser would: the API key typed in, OAuth through Keymaker (the test
plays the browser: Tether's start URL, the sandbox's consent form, the redirect back to Tether's callback), runs
through the one executor, webhook deliveries through the real endpoint, verifier and processor. And the issue's
scenarios: expiry (one refresh, the rotated refresh token persisted), revoke (``reconnect_required``, then a
reconnect restores it), a 429 storm (deferred, never failed) and a change event (ingested in one processing cycle,
its duplicate processed once).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlmodel import select

from definitions.sandbox.slots import SandboxToken
from engine.api.principal import create_api_key
from engine.events import endpoints as event_endpoints
from engine.governor import LocalGovernor
from engine.runs.execution import RunOutcome
from engine.store.tables import EventOutbox, Run, WebhookDelivery, WebhookEndpoint
from engine.webhooks.deliveries import process_deliveries
from ingest.models.asset import Asset
from ingest.models.calendar_event import CalendarEvent
from ingest.models.directory_account import DirectoryAccount
from ingest.models.directory_group import DirectoryGroup
from ingest.models.directory_membership import DirectoryMembership
from ingest.models.finding import Finding
from sandbox.conftest import LiveSandbox, start

RETURN_URL = "https://app.example/settings/integrations"
#: The acme seed (the sandbox's published counts).
ACME = {DirectoryAccount: 12, DirectoryGroup: 4, DirectoryMembership: 12, Asset: 6, Finding: 8, CalendarEvent: 10}


@dataclass
class World:
    live: LiveSandbox
    api: httpx.Client

    @property
    def runtime(self) -> Any:
        return self.live.runtime

    def control(self, path: str, method: str = "POST", **kwargs: Any) -> dict[str, Any]:
        # With the server's API key: the controls take one wherever the sandbox is on outside the embedded default.
        answer = self.api.request(method, f"/sandbox/control/accounts/{path}", **kwargs)
        assert answer.status_code in (200, 201), answer.text
        return answer.json()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """One live Tether per module; each test uses its own owner (so its own integration) and resets its account."""
    path = tmp_path_factory.mktemp("sandbox-definition")
    with pytest.MonkeyPatch.context() as monkeypatch:
        yield from _world(f"sqlite:///{path / 'tether.db'}", str(path), monkeypatch)


@pytest.fixture
def pg_world(postgres_database: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    """The same on the machine's PostgreSQL (a fresh schema), as a deployment with separate workers runs it."""
    yield from _world(postgres_database.url, str(tmp_path), monkeypatch)


def _world(database_url: str, state_dir: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    for live in start(database_url, state_dir, monkeypatch, allowed_return_origins_list="https://app.example"):
        key, _ = create_api_key(live.runtime.db, tenant="acme", role="server", name="host app")
        with httpx.Client(base_url=live.base, headers={"Authorization": f"Bearer {key}"}, timeout=30) as api:
            yield World(live, api)


def create(world: World, owner: str) -> str:
    created = world.api.post("/v1/integrations", json={"definition_id": "sandbox", "owner_id": owner})
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


def connect_key(world: World, owner: str, key: str) -> str:
    iid = create(world, owner)
    answer = world.api.post(f"/v1/integrations/{iid}/credentials/SandboxApiKey", json={"api_key": key})
    assert answer.status_code == 200, answer.text
    assert (answer.json()["status"], answer.json()["connection"]) == ("connected", "SandboxKey")
    return iid


def browser_flow(world: World, redirect_url: str, account: str) -> httpx.Response:
    """Play the browser: Tether's start URL → the sandbox's consent page → pick ``account`` and approve → Tether's
    callback, which answers with the redirect to the host app."""
    with httpx.Client(follow_redirects=False, timeout=30) as browser:
        start_answer = browser.get(redirect_url)
        assert start_answer.status_code == 302, start_answer.text
        authorize = start_answer.headers["location"]
        assert authorize.startswith(f"{world.live.sandbox}/oauth/authorize?")
        query = {k: v[0] for k, v in parse_qs(urlsplit(authorize).query).items()}
        assert query["code_challenge_method"] == "S256" and query["code_challenge"]
        page = browser.get(authorize)
        assert page.status_code == 200 and ">Approve access<" in page.text, page.text
        approved = browser.post(authorize.split("?")[0], data={**query, "account": account, "decision": "approve"})
        assert approved.status_code == 302, approved.text
        callback = approved.headers["location"]
        assert callback.startswith(f"{world.live.base}/v1/oauth/callback?")
        return browser.get(callback)


def connect_oauth(world: World, iid: str, account: str, *, path: str = "connect") -> None:
    body = {"connection": "SandboxOAuth", "return_url": RETURN_URL}
    started = world.api.post(f"/v1/integrations/{iid}/{path}", json=body)
    assert started.status_code == 200, started.text
    back = browser_flow(world, started.json()["redirect_url"], account)
    assert back.status_code == 302, back.text
    assert parse_qs(urlsplit(back.headers["location"]).query)["tether_result"] == ["connected"]


def queued_runs(world: World, iid: str) -> list[str]:
    with world.runtime.db.session() as session:
        runs = session.exec(select(Run).where(Run.integration_id == iid, Run.status == "queued")).all()
        return [r.id for r in runs]


async def drain(world: World, iid: str) -> list[RunOutcome]:
    """Execute the integration's queued runs (what the worker would do with their messages), once each."""
    return [await world.runtime.executor.execute(run_id) for run_id in queued_runs(world, iid)]


async def sync(world: World, iid: str) -> RunOutcome:
    """Start ``Sync`` through the API and execute it (with any reconcile run still queued)."""
    started = world.api.post(f"/v1/integrations/{iid}/operations/Sync")
    assert started.status_code == 202, started.text
    outcomes = await drain(world, iid)
    mine = [o for o in outcomes if o.run_id == started.json()["run_id"]]
    assert mine, outcomes
    return mine[0]


def rows(world: World, model: type, iid: str) -> list[Any]:
    with world.runtime.db.session() as session:
        return list(session.exec(select(model).where(model.integration_id == iid)).all())  # type: ignore[attr-defined]


def counts(world: World, iid: str) -> dict[type, int]:
    return {model: len(rows(world, model, iid)) for model in ACME}


def integration(world: World, iid: str) -> dict[str, Any]:
    return dict(world.api.get(f"/v1/integrations/{iid}").json())


# -- connect and sync ------------------------------------------------------------------------------------------


async def test_typed_in_key_connects_and_sync_fills_every_table(world: World) -> None:
    world.control("acme/reset")
    iid = connect_key(world, "key-user", "sbx_key_acme")
    account = integration(world, iid)["account"]
    assert (account["account_id"], account["account_name"]) == ("acme", "Acme Corp")
    reconciled = await drain(world, iid)  # connecting queued the reconcile Sync
    assert [o.status for o in reconciled] == ["succeeded"], reconciled
    assert counts(world, iid) == ACME
    users = rows(world, DirectoryAccount, iid)
    assert all(u.email.endswith("@acme.example") and u.status in ("active", "suspended") for u in users)
    members = rows(world, DirectoryMembership, iid)
    assert {m.account_id for m in members} <= {u.id for u in users}  # references resolved to real rows
    with world.runtime.db.session() as session:
        run = session.exec(select(Run).where(Run.id == reconciled[0].run_id)).one()
    assert (run.records_rejected, run.records_ingested) == (0, sum(ACME.values()))
    again = await sync(world, iid)  # incremental now: nothing changed, nothing read
    assert again.status == "succeeded" and again.result["received"] == 0


async def test_a_wrong_key_is_refused_with_a_form_error(world: World) -> None:
    iid = create(world, "wrong-key")
    refused = world.api.post(f"/v1/integrations/{iid}/credentials/SandboxApiKey", json={"api_key": "sbx_key_nobody"})
    assert refused.status_code == 422 and refused.json()["error"]["code"] == "credential_rejected"
    assert "sbx_key_nobody" not in refused.text
    missing = world.api.post(f"/v1/integrations/{iid}/credentials/SandboxApiKey", json={})
    assert missing.status_code == 422 and "api_key" in missing.text


async def test_incremental_sync_reads_only_changes_and_removes_deleted_records(world: World) -> None:
    world.control("initech/reset")
    iid = connect_key(world, "incremental", "sbx_key_initech")
    assert (await sync(world, iid)).status == "succeeded"
    users = sorted(rows(world, DirectoryAccount, iid), key=lambda u: u.external_id)
    changed, gone = users[0].external_id, users[1].external_id
    world.control(f"initech/records/users/{changed}", "PATCH", json={"title": "Chief Sandbox Officer"})
    world.control(f"initech/records/users/{gone}", "DELETE")
    before = {u.external_id: u.updated_at for u in users}
    outcome = await sync(world, iid)
    assert outcome.status == "succeeded"
    assert outcome.result["received"] == 2  # the update and the deletion: nothing else was read again
    after = {u.external_id: u for u in rows(world, DirectoryAccount, iid)}
    assert after[changed].attributes["title"] == "Chief Sandbox Officer"
    assert gone not in after  # removed, with its memberships, each a tombstone in the change feed
    assert all(m.account_external_id != gone for m in rows(world, DirectoryMembership, iid))
    assert outcome.result["removed"] == 1
    tombstones = world.api.get("/v1/changes", params={"integration_id": iid, "limit": 1000}).json()["changes"]
    removed = [c for c in tombstones if c["op"] == "remove"]
    assert removed and all(c["record"] is None for c in removed)
    assert {c["schema"] for c in removed} <= {"directory_account", "directory_membership"}
    assert [c["schema"] for c in removed].count("directory_account") == 1
    untouched = [e for e in before if e not in (changed, gone)]
    assert all(after[e].updated_at == before[e] for e in untouched)
    assert (await sync(world, iid)).result["received"] == 0


async def test_oauth_connects_through_keymaker_and_syncs(world: World) -> None:
    world.control("globex/reset")
    iid = create(world, "oauth-user")
    connect_oauth(world, iid, "globex")
    record = integration(world, iid)
    assert (record["status"], record["connection"], record["account"]["account_id"]) == (
        "connected", "SandboxOAuth", "globex")
    grant = world.runtime.keystore.require(iid, SandboxToken).slot
    assert grant.refresh_token is not None and set(grant.scopes) >= {"directory:read", "assets:read", "events:read"}
    outcome = await sync(world, iid)
    assert outcome.status == "succeeded", outcome
    assert sum(counts(world, iid).values()) > 0
    assert {u.email.split("@")[1] for u in rows(world, DirectoryAccount, iid)} == {"globex.example"}


# -- the scenarios -------------------------------------------------------------------------------------


async def oauth_synced(world: World, owner: str, account: str) -> str:
    """An OAuth-connected integration of ``account`` whose reconcile sync ran."""
    world.control(f"{account}/reset")
    iid = create(world, owner)
    connect_oauth(world, iid, account)
    reconciled = await drain(world, iid)
    assert [o.status for o in reconciled] == ["succeeded"], reconciled  # the first connection's reconcile
    return iid


async def test_expiry_refreshes_once_and_persists_the_rotated_refresh_token(world: World) -> None:
    await expiry(world)


async def test_expiry_on_postgresql_too(pg_world: World) -> None:
    """Where the Keystore's single flight is a row lock and the sandbox shares Tether's database."""
    await expiry(pg_world)


async def expiry(world: World) -> None:
    iid = await oauth_synced(world, "expiry", "acme")
    before = world.runtime.keystore.require(iid, SandboxToken)
    assert world.control("acme/expire-tokens")["expired_tokens"] >= 1
    outcome = await sync(world, iid)
    assert outcome.status == "succeeded", outcome
    after = world.runtime.keystore.require(iid, SandboxToken)
    assert after.version == before.version + 1  # exactly one refresh was written
    assert after.slot.refresh_token.get_secret_value() != before.slot.refresh_token.get_secret_value()
    assert after.slot.access_token.get_secret_value() != before.slot.access_token.get_secret_value()
    # The persisted (rotated) refresh token is the live one: the next refresh uses it, and the old one is dead.
    again = await sync(world, iid)
    assert again.status == "succeeded" and world.runtime.keystore.require(iid, SandboxToken).version == after.version
    assert integration(world, iid)["status"] == "connected"
    await world.runtime.custody.renew(iid, after.slot.access_token.get_secret_value())
    assert world.runtime.keystore.require(iid, SandboxToken).version == after.version + 1
    assert integration(world, iid)["status"] == "connected"


async def test_revoked_grant_needs_a_reconnect_which_restores_it(world: World) -> None:
    iid = await oauth_synced(world, "revoke", "globex")
    assert world.control("globex/revoke-grants")["revoked_grants"] >= 1
    outcome = await sync(world, iid)
    assert (outcome.status, outcome.error_code) == ("failed", "reconnect_required")
    assert integration(world, iid)["status"] == "reconnect_required"
    refused = world.api.post(f"/v1/integrations/{iid}/operations/Sync")
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "reconnect_required"
    connect_oauth(world, iid, "globex", path="reconnect")
    assert integration(world, iid)["status"] == "connected"
    assert (await sync(world, iid)).status == "succeeded"


async def test_429_storm_defers_the_run_and_never_fails_it(world: World) -> None:
    world.control("initech/reset")
    iid = connect_key(world, "storm", "sbx_key_initech")
    await drain(world, iid)  # the reconcile sync
    world.control("initech/fail", json={"status": 429, "count": 3, "retry_after": 7})
    # The provider's Retry-After pauses every caller of the app (engine.governor): a governor of this test's own,
    # on a clock the loop moves on by each deferral's delay, as the broker's delayed redelivery would.
    clock = [0.0]
    world.runtime.__dict__["governor"] = LocalGovernor(clock=lambda: clock[0])
    started = world.api.post(f"/v1/integrations/{iid}/operations/Sync")
    run_id = started.json()["run_id"]
    outcomes = []
    try:
        for _ in range(10):  # what the broker does with each deferred message once its delay is over
            outcome = await world.runtime.executor.execute(run_id)
            outcomes.append(outcome)
            if outcome.status != "queued":
                break
            clock[0] += outcome.retry_in or 0.0
    finally:
        del world.runtime.__dict__["governor"]
    assert [(o.status, o.deferred, o.retry_in) for o in outcomes[:3]] == [("queued", True, 7.0)] * 3
    assert outcomes[3].status == "succeeded" and len(outcomes) == 4
    with world.runtime.db.session() as session:
        runs = session.exec(select(Run).where(Run.integration_id == iid)).all()
    assert all(r.status != "failed" for r in runs)


async def test_a_change_event_is_ingested_in_one_cycle_and_its_duplicate_once(world: World) -> None:
    world.control("acme/reset")
    iid = connect_key(world, "webhooks", "sbx_key_acme")
    await drain(world, iid)
    # A host listening for records.changed (nothing sends it here: the outbox rows are what is checked).
    event_endpoints.create(world.runtime.db, world.runtime.keys.keyring, "acme", url="https://host.example/events",
                           event_types=["records.changed"])
    endpoints = world.api.get(f"/v1/integrations/{iid}")  # the subscription was made when it connected
    assert endpoints.status_code == 200
    asset = rows(world, Asset, iid)[0]
    changed = world.control(f"acme/records/assets/{asset.source_identifier}", "PATCH",
                            json={"hostname": "renamed.acme.example"})
    # Delivered to every acme subscription (other tests' integrations too), each accepted by its endpoint.
    assert changed["deliveries"] and {d["status"] for d in changed["deliveries"]} == {202}, changed["deliveries"]
    assert [d.status for d in await settled(world, iid)] == ["processed"]  # one processing cycle
    assert next(a for a in rows(world, Asset, iid) if a.source_identifier == asset.source_identifier).name == (
        "renamed.acme.example")
    again = world.control("acme/duplicate")
    assert again["event_id"] == changed["event_id"]
    assert {d["status"] for d in again["deliveries"]} == {200}  # acknowledged as the duplicate it is
    deliveries = await settled(world, iid)
    assert [(d.delivery_id, d.status) for d in deliveries] == [(changed["event_id"], "processed")]
    deleted = world.control(f"acme/records/findings/{rows(world, Finding, iid)[0].external_id}", "DELETE")
    assert [d.status for d in await settled(world, iid)] == ["processed", "processed"]
    assert deleted["record"]["id"] not in {f.external_id for f in rows(world, Finding, iid)}  # removed
    # Each delivery that changed records announced it once (the duplicate changed nothing), with its feed range.
    renamed, removed = announced(world, iid)
    assert (renamed["counts"], renamed["removed"]) == ({"asset": 1}, {})
    assert (removed["counts"], removed["removed"]) == ({}, {"finding": 1})
    window = removed["changes"]
    tail = world.api.get("/v1/changes", params={"after": window["after"], "integration_id": iid}).json()["changes"]
    assert [(c["schema"], c["op"]) for c in tail if c["seq"] <= window["until"]] == [("finding", "remove")]


def announced(world: World, iid: str) -> list[dict[str, Any]]:
    """The integration's ``records.changed`` events in the outbox, oldest first."""
    with world.runtime.db.session() as session:
        rows = session.exec(select(EventOutbox).where(EventOutbox.event_type == "records.changed")).all()
    found = [r.payload["data"] for r in sorted(rows, key=lambda r: r.created_at)]
    return [data for data in found if data["integration_id"] == iid]


async def settled(world: World, iid: str) -> list[WebhookDelivery]:
    """Run one processing cycle over the integration's recorded deliveries, as the delivery actor does with the
    message the endpoint queued (no worker runs in these tests), and return them all, oldest first."""
    with world.runtime.db.session() as session:
        waiting = [d.id for d in session.exec(select(WebhookDelivery).where(
            WebhookDelivery.integration_id == iid, WebhookDelivery.status == "received")).all()]
    outcomes = await process_deliveries(world.runtime, waiting)
    assert all(o is not None for o in outcomes), outcomes
    with world.runtime.db.session() as session:
        return list(session.exec(select(WebhookDelivery).where(WebhookDelivery.integration_id == iid)
                                 .order_by(WebhookDelivery.received_at)).all())



async def test_disconnect_revokes_the_grant_and_unsubscribes_the_webhook(world: World) -> None:
    iid = await oauth_synced(world, "disconnect", "initech")
    token = world.runtime.keystore.require(iid, SandboxToken).slot.access_token.get_secret_value()
    with world.runtime.db.session() as session:
        endpoint = session.exec(select(WebhookEndpoint).where(WebhookEndpoint.integration_id == iid)).one()
    subscription = endpoint.provider_ref
    assert subscription and endpoint.registered_at is not None  # subscribed at the sandbox when it connected
    me = f"{world.live.sandbox}/api/v1/me"
    assert world.live.http.get(me, headers={"Authorization": f"Bearer {token}"}).status_code == 200
    done = world.api.post(f"/v1/integrations/{iid}/disconnect")
    assert done.status_code == 200 and done.json()["integration"]["status"] == "disconnected", done.text
    assert world.live.http.get(me, headers={"Authorization": f"Bearer {token}"}).status_code == 401  # RFC 7009
    user = rows(world, DirectoryAccount, iid)[0].external_id
    changed = world.control(f"initech/records/users/{user}", "PATCH", json={"title": "After the disconnect"})
    assert subscription not in {d["subscription"] for d in changed["deliveries"]}
