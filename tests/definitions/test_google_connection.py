"""The shared Google connection against a real OAuth server: connect Calendar, upgrade to Calendar+Gmail.

panva ``oidc-provider`` (``support.oracles``) stands in for accounts.google.com and knows Google's scope names; the
``google`` definition is built from its own ``oauth.toml`` with panva's endpoints. The Google APIs are the local
stand-in (``support.google_apis``), which answers a product only to an access token that panva's introspection
says is active and holds that product's scope, so "Calendar keeps working after the upgrade" is checked by the
token the engine then holds, not by our own bookkeeping.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlmodel import select

import tether_client
from definitions.custom_oauth2 import load_spec
from definitions.google import google_definition
from definitions.google.definition import SPEC
from definitions.google.products import CALENDAR_READ, CALENDAR_WRITE, DRIVE_METADATA, GMAIL_METADATA
from engine.api import create_app
from engine.api.principal import create_api_key
from engine.catalog.registry import Registry
from engine.custody.crypto import generate_master_key
from engine.queue import worker as worker_module
from engine.runtime import Runtime
from engine.settings import Settings
from engine.store.database import Database
from engine.store.tables import OperationState, Run
from ingest.models.message import Message
from support.google_apis import GoogleState
from support.google_apis import app as google_app
from support.oracles import PanvaServer, panva_client
from support.server import free_port, serve

pytestmark = pytest.mark.timeout(120)

RETURN_URL = "https://app.example/settings/integrations"
GOOGLE_SCOPES = (CALENDAR_READ, CALENDAR_WRITE, GMAIL_METADATA, DRIVE_METADATA)


@dataclass
class World:
    panva: PanvaServer
    google: GoogleState
    runtime: Runtime
    api: httpx.Client
    key: str


@pytest.fixture
def world(sqlite_database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    port = free_port()
    callback = f"http://127.0.0.1:{port}/v1/oauth/callback"
    client = panva_client(
        redirect_uris=[callback], scope=" ".join(("openid", "offline_access", "email", *GOOGLE_SCOPES))
    )
    with PanvaServer(clients=[client], access_token_ttl=900, extra_scopes=GOOGLE_SCOPES) as panva:
        google = GoogleState.from_fixtures()
        google.authorize = lambda token: _granted(panva, token)
        spec = load_spec(SPEC).model_copy(
            update={
                "authorize_url": panva.authorize_url,
                "token_url": panva.token_url,
                "revoke_url": panva.revoke_url,
                "account_url": panva.metadata["userinfo_endpoint"],
            }
        )
        with serve(google_app(google), free_port()) as google_base:
            env = {
                "TETHER_SECRET_MASTER_KEY": generate_master_key(),
                "TETHER_SECRET_GOOGLE_CLIENT_ID": client["client_id"],
                "TETHER_SECRET_GOOGLE_CLIENT_SECRET": client["client_secret"],
                "TETHER_GOOGLE_API_ROOT": google_base,
                "TETHER_ALLOW_LOOPBACK_PROVIDERS": "1",
                "TETHER_BROKER_URL": "",
            }
            for key, value in env.items():
                monkeypatch.setenv(key, value)
            registry = Registry(allow_loopback=True)
            registry.register(google_definition(spec))
            settings = Settings(
                database_url=sqlite_database.url,
                allow_loopback_providers=True,
                state_dir=str(tmp_path),
                public_url=f"http://127.0.0.1:{port}",
                allowed_return_origins_list="https://app.example",
            )
            worker_module.reset()
            runtime = Runtime.start(settings, registry=registry)
            key, _ = create_api_key(runtime.db, tenant="acme", role="server", name="host app")
            with (
                serve(create_app(runtime), port) as base,
                httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=30) as api,
            ):
                yield World(panva, google, runtime, api, key)
            runtime.close()
            worker_module.reset()


def _granted(panva: PanvaServer, token: str) -> set[str] | None:
    """What the Google stand-in believes about a bearer token: panva's introspection, as Google's token info."""
    answer = panva.introspect(token)
    return set(str(answer.get("scope", "")).split()) if answer.get("active") else None


def consent(world: World, redirect_url: str) -> tuple[httpx.Response, dict[str, list[str]]]:
    """Play the browser: Tether's start URL → panva's consent → Tether's callback; also the authorize query."""
    with httpx.Client(follow_redirects=False, timeout=30) as browser:
        start = browser.get(redirect_url)
        assert start.status_code == 302, start.text
        authorize = parse_qs(urlsplit(start.headers["location"]).query)
        return browser.get(world.panva.consent(start.headers["location"], login="alice")), authorize


def grant(world: World, iid: str) -> Any:
    definition = world.runtime.registry.get("google")
    return world.runtime.keystore.require(iid, definition.connections[0].credential).slot


def runs(world: World, iid: str) -> dict[str, str]:
    with world.runtime.db.session() as session:
        return {r.operation: r.trigger for r in session.exec(select(Run).where(Run.integration_id == iid)).all()}


def test_calendar_first_then_gmail_keeps_the_calendar_grant_working(world: World) -> None:
    api = world.api
    iid = api.post("/v1/integrations", json={"definition_id": "google", "owner_id": "alice"}).json()["id"]

    # 1. Connect: the Calendar product only (oauth.toml's scopes), with Google's incremental-consent parameter.
    connect = api.post(f"/v1/integrations/{iid}/connect", json={"return_url": RETURN_URL})
    assert connect.status_code == 200, connect.text
    back, authorize = consent(world, connect.json()["redirect_url"])
    assert parse_qs(urlsplit(back.headers["location"]).query)["tether_result"] == ["connected"]
    assert authorize["scope"][0].split() == ["openid", "email", CALENDAR_READ]
    assert authorize["include_granted_scopes"] == ["true"] and authorize["access_type"] == ["offline"]
    first = grant(world, iid)
    assert CALENDAR_READ in first.scopes and GMAIL_METADATA not in first.scopes
    access = api.get(f"/web/integrations/{iid}/access").json()
    assert access["products"] == {"calendar": True, "gmail": False, "drive": False}
    # Reconcile ran what the grant covers: the Calendar sync, not the Gmail or Drive syncs.
    assert runs(world, iid) == {"EventsSync": "reconcile"}

    status = api.post(f"/v1/integrations/{iid}/operations/GetStatus")
    assert status.status_code == 200, status.text
    assert status.json()["result"]["calendar_id"] == "ada@example.com"

    # 2. Gmail is refused before anything is queued, naming the product and the scope it lacks.
    refused = api.post(f"/v1/integrations/{iid}/operations/MessagesSync")
    assert refused.status_code == 403, refused.text
    error = refused.json()["error"]
    assert (error["code"], error["product"], error["missing_scopes"]) == ("upgrade_required", "gmail", [GMAIL_METADATA])
    assert error["upgrade_url"].endswith(f"/v1/integrations/{iid}/upgrade")

    unknown = api.post(f"/v1/integrations/{iid}/upgrade", json={"product": "photos", "return_url": RETURN_URL})
    assert (unknown.status_code, unknown.json()["error"]["code"]) == (422, "unknown_product")

    # 3. Upgrade to Gmail: asks for what is granted plus gmail.metadata; the new grant holds both products.
    with tether_client.Client(str(api.base_url), api_key=world.key) as client:  # the host app's client says the same
        redirect_url = client.upgrade(iid, product="gmail", return_url=RETURN_URL)
    back, authorize = consent(world, redirect_url)
    assert parse_qs(urlsplit(back.headers["location"]).query)["tether_result"] == ["connected"]
    assert authorize["scope"][0].split() == ["openid", "email", CALENDAR_READ, GMAIL_METADATA]
    second = grant(world, iid)
    assert {CALENDAR_READ, GMAIL_METADATA} <= set(second.scopes) and DRIVE_METADATA not in second.scopes
    assert world.panva.introspect(second.access_token.get_secret_value())["active"] is True
    access = api.get(f"/web/integrations/{iid}/access").json()
    assert access["products"] == {"calendar": True, "gmail": True, "drive": False}
    assert access["tier"] == "read"  # the calendar write tier is a separate upgrade

    # Calendar keeps working with the token the engine now holds (the stand-in asks panva what it covers).
    world.google.requests.clear()
    status = api.post(f"/v1/integrations/{iid}/operations/GetStatus")
    assert status.status_code == 200, status.text
    assert [p for p, _ in world.google.requests] == ["/calendar/v3/calendars/primary"]

    # 4. The upgrade's reconcile dispatched the Gmail sync (and only it: the Calendar sync had run already).
    dispatched = runs(world, iid)
    assert dispatched == {"EventsSync": "reconcile", "MessagesSync": "reconcile", "GetStatus": "api"}
    with world.runtime.db.session() as session:
        run_id = session.exec(select(Run.id).where(Run.integration_id == iid, Run.operation == "MessagesSync")).one()
    outcome = asyncio.run(world.runtime.executor.execute(run_id))
    assert outcome.retry_in is None
    with world.runtime.db.session() as session:
        rows = session.exec(select(Message).where(Message.integration_id == iid)).all()
        state = session.exec(
            select(OperationState).where(
                OperationState.integration_id == iid, OperationState.operation == "MessagesSync"
            )
        ).one()
    assert sorted(r.external_id for r in rows) == ["19ad2f4e8b6c0a11", "19ad2f4e8b6c0a12", "19ad2f4e8b6c0a13"]
    assert state.cursor == {"history_id": "4321004"}

    # Drive is still not granted: refused the same way.
    drive = api.post(f"/v1/integrations/{iid}/operations/FilesSync")
    assert (drive.status_code, drive.json()["error"]["product"]) == (403, "drive")


def test_gmail_from_the_start_and_a_rate_limited_partial_sync_keeps_its_checkpoint_until_it_succeeds(
    world: World,
) -> None:
    api = world.api
    iid = api.post("/v1/integrations", json={"definition_id": "google", "owner_id": "alice"}).json()["id"]
    connect = api.post(f"/v1/integrations/{iid}/connect", json={"product": "gmail", "return_url": RETURN_URL})
    _, authorize = consent(world, connect.json()["redirect_url"])
    assert authorize["scope"][0].split() == ["openid", "email", CALENDAR_READ, GMAIL_METADATA]
    assert runs(world, iid) == {"EventsSync": "reconcile", "MessagesSync": "reconcile"}
    with world.runtime.db.session() as session:
        first = session.exec(select(Run.id).where(Run.integration_id == iid, Run.operation == "MessagesSync")).one()
    assert asyncio.run(world.runtime.executor.execute(first)).status == "succeeded"

    def checkpoint() -> Any:
        with world.runtime.db.session() as session:
            return session.exec(
                select(OperationState.cursor).where(
                    OperationState.integration_id == iid, OperationState.operation == "MessagesSync"
                )
            ).one()

    assert checkpoint() == {"history_id": "4321004"}
    world.google.gmail_changes()
    world.google.page_cap = 1
    world.google.fail("/gmail/v1/users/me/history", after=1)  # the second history page: 429, Retry-After 7
    queued = api.post(f"/v1/integrations/{iid}/operations/MessagesSync")
    assert queued.status_code == 202, queued.text
    run_id = queued.json()["run_id"]
    deferred = asyncio.run(world.runtime.executor.execute(run_id))
    assert (deferred.status, deferred.deferred, deferred.retry_in) == ("queued", True, 7.0)
    assert checkpoint() == {"history_id": "4321004"}  # not advanced by a run that did not finish

    retried = asyncio.run(world.runtime.executor.execute(run_id))
    assert retried.status == "succeeded"
    assert checkpoint() == {"history_id": "4321010"}
    with world.runtime.db.session() as session:
        rows = {r.external_id: r for r in session.exec(select(Message).where(Message.integration_id == iid)).all()}
    assert set(rows) == {"19ad2f4e8b6c0a11", "19ad2f4e8b6c0a12", "19ad2f4e8b6c0a13", "19ad2f4e8b6c0a14"}
    assert rows["19ad2f4e8b6c0a13"].attributes == {"deleted": True}
    assert rows["19ad2f4e8b6c0a13"].subject is None
    assert "UNREAD" not in (rows["19ad2f4e8b6c0a11"].labels or [])
    assert rows["19ad2f4e8b6c0a14"].subject == "Invoice 2025-11"


def test_disconnect_revokes_the_one_grant_of_every_product(world: World) -> None:
    api = world.api
    iid = api.post("/v1/integrations", json={"definition_id": "google", "owner_id": "alice"}).json()["id"]
    connect = api.post(f"/v1/integrations/{iid}/connect", json={"product": "drive", "return_url": RETURN_URL})
    consent(world, connect.json()["redirect_url"])
    held = grant(world, iid)
    assert {CALENDAR_READ, DRIVE_METADATA} <= set(held.scopes)
    assert api.get(f"/web/integrations/{iid}/access").json()["products"] == {
        "calendar": True,
        "gmail": False,
        "drive": True,
    }
    disconnected = api.post(f"/v1/integrations/{iid}/disconnect")
    assert disconnected.status_code == 200, disconnected.text
    assert world.panva.introspect(held.refresh_token.get_secret_value())["active"] is False
    assert world.panva.introspect(held.access_token.get_secret_value())["active"] is False
