"""States answer with their codes, write tiers are enforced before the provider is called, and request bodies
refuse unknown fields (issue 16, items 6 and 7, and who may set ``filter_expr`` of item 1).

Real runtime and app over a real database, the sample definition (``tests/support/sample_definition.py``): its
``ItemUpdate`` is a ``write`` operation that records every call that reached its "provider" in ``UPDATES``, so a
refused call is seen not to have got there. Queued runs are captured instead of sent to a broker.
"""

from __future__ import annotations

import typing
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute
from pydantic import BaseModel, SecretStr
from sqlmodel import func, select

from engine.api import create_app
from engine.api.principal import create_api_key, sign_principal
from engine.authoring.operations import Policy
from engine.integrations.lifecycle import IntegrationNotConnected
from engine.runs.execution import ensure_state
from engine.runs.scheduler import Scheduler
from engine.runtime import Runtime
from engine.store.database import Database
from engine.store.tables import Integration, IntegrationStatus, OperationState, Run, utcnow
from support import sample_definition as sample
from support.sample_runtime import start_sample_runtime

PRINCIPAL_SECRET = "principal-signing-secret-for-tier-tests"
PUBLIC_URL = "http://tether.test"


class World:
    def __init__(self, runtime: Runtime, client: httpx.AsyncClient) -> None:
        self.runtime = runtime
        self.client = client
        self.sent: list[str] = []
        runtime.executor.enqueue = lambda run_id, delay, limit: self.sent.append(run_id)
        self.server = {"Authorization": f"Bearer {create_api_key(runtime.db, tenant='t1', role='server')[0]}"}

    def user(self, owner: str = "alice") -> dict[str, str]:
        return {"X-Tether-Principal": sign_principal(PRINCIPAL_SECRET, tenant="t1", role="user", owner=owner)}

    def runs(self, integration_id: str) -> int:
        with self.runtime.db.session() as session:
            return session.exec(select(func.count()).select_from(Run).where(Run.integration_id == integration_id)).one()

    def row(self, integration_id: str) -> Integration:
        with self.runtime.db.session() as session:
            return session.get_one(Integration, integration_id)

    async def create(self, owner: str = "alice") -> str:
        created = await self.client.post(
            "/v1/integrations", json={"definition_id": "sample", "owner_id": owner}, headers=self.server
        )
        assert created.status_code == 201, created.text
        return created.json()["id"]

    async def connect_api_key(self, owner: str = "alice") -> str:
        """Connected the way a person does it: the typed-in token, validated and health-checked by the app."""
        iid = await self.create(owner)
        entered = await self.client.post(
            f"/v1/integrations/{iid}/credentials/ApiToken", json={"token": "sk-live-123456"}, headers=self.server
        )
        assert entered.status_code == 200, entered.text
        return iid

    async def connect_oauth(self, scopes: tuple[str, ...], owner: str = "alice") -> str:
        """An OAuth grant of ``scopes`` as the callback stores it (the keystore records the granted scopes)."""
        iid = await self.create(owner)
        grant = sample.OAuthGrant(
            access_token=SecretStr("at-" + "x" * 20), expires_at=utcnow() + timedelta(hours=1), scopes=scopes
        )
        self.runtime.keystore.save(iid, grant)
        with self.runtime.db.session() as session:
            row = session.get_one(Integration, iid)
            row.status = IntegrationStatus.connected
            row.provider_data = {"connection": "OAuth"}
            session.add(row)
        return iid

    async def run(self, iid: str, operation: str, body: Any = None, headers: dict[str, str] | None = None):
        return await self.client.post(
            f"/v1/integrations/{iid}/operations/{operation}", json=body, headers=headers or self.server
        )


@pytest.fixture
async def world(database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[World]:
    runtime = start_sample_runtime(
        monkeypatch, database.url, str(tmp_path), secret_principal_key=PRINCIPAL_SECRET, public_url=PUBLIC_URL
    )
    sample.UPDATES.clear()
    transport = httpx.ASGITransport(app=create_app(runtime))
    async with httpx.AsyncClient(transport=transport, base_url=PUBLIC_URL) as client:
        yield World(runtime, client)
    runtime.close()


def error(response: httpx.Response) -> tuple[int, str]:
    return response.status_code, response.json()["error"]["code"]


# -- item 6: states ------------------------------------------------------------------------------------------------


async def test_an_operation_on_a_pending_integration_is_409_and_nothing_is_recorded(world: World) -> None:
    iid = await world.create()
    for operation in ("HealthCheck", "ItemSync"):  # inline and queued
        refused = await world.run(iid, operation, {})
        assert error(refused) == (409, "integration_not_connected"), refused.text
    assert world.runs(iid) == 0 and world.sent == []
    token = await world.client.get(f"/v1/integrations/{iid}/access-token", headers=world.server)
    assert error(token) == (409, "integration_not_connected")
    nothing = await world.client.post(f"/v1/integrations/{iid}/disconnect", headers=world.server)
    assert error(nothing) == (409, "integration_not_connected")
    assert world.row(iid).status == "pending"


async def test_disconnect_then_every_state_answers_its_code(world: World) -> None:
    iid = await world.connect_api_key()
    assert world.row(iid).health == "valid"
    before = world.runs(iid)  # the first connection's reconcile run
    done = await world.client.post(f"/v1/integrations/{iid}/disconnect", headers=world.server)
    assert done.status_code == 200, done.text
    assert done.json()["integration"]["status"] == "disconnected"
    assert done.json()["integration"]["health"] == "unknown"
    assert (await world.client.get(f"/v1/integrations/{iid}", headers=world.server)).json()["health"] == "unknown"

    again = await world.client.post(f"/v1/integrations/{iid}/disconnect", headers=world.server)
    assert error(again) == (409, "invalid_transition")
    token = await world.client.get(f"/v1/integrations/{iid}/access-token", headers=world.server)
    assert error(token) == (409, "integration_not_connected")
    sent = list(world.sent)
    for operation in ("HealthCheck", "ItemSync"):
        refused = await world.run(iid, operation, {})
        assert error(refused) == (409, "integration_not_connected"), refused.text
    assert world.runs(iid) == before and world.sent == sent


async def test_every_trigger_gets_the_check_and_a_run_queued_before_disconnect_fails_with_it(world: World) -> None:
    iid = await world.connect_api_key()
    queued = await world.run(iid, "ItemSync", {})
    assert queued.status_code == 202
    run_id = queued.json()["run_id"]
    assert (await world.client.post(f"/v1/integrations/{iid}/disconnect", headers=world.server)).status_code == 200
    before = world.runs(iid)
    for trigger in ("webhook", "workflow", "manual"):
        with pytest.raises(IntegrationNotConnected):
            await world.runtime.executor.dispatch(iid, "ItemSync", trigger=trigger)
    assert world.runs(iid) == before
    outcome = await world.runtime.executor.execute(run_id)  # its message arrives after the disconnect
    assert outcome.status == "failed" and outcome.error_code == "integration_not_connected"


async def test_reconnect_required_answers_its_own_code_before_anything_is_queued(world: World) -> None:
    iid = await world.connect_api_key()
    with world.runtime.db.session() as session:
        row = session.get_one(Integration, iid)
        row.status = IntegrationStatus.reconnect_required
        session.add(row)
    before = world.runs(iid)
    assert error(await world.run(iid, "ItemSync", {})) == (409, "reconnect_required")
    assert world.runs(iid) == before


async def test_a_due_schedule_of_a_disconnected_integration_is_skipped_quietly(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Schedules do not go through ``dispatch``: the scheduler skips a non-connected integration and clears its
    slot (no run, no error), while the connected one beside it gets its run."""
    monkeypatch.setattr(sample.ItemSync, "policy", Policy.queued(schedule=timedelta(hours=1)))
    kept, dropped = await world.connect_api_key("alice"), await world.connect_api_key("bob")
    assert (await world.client.post(f"/v1/integrations/{dropped}/disconnect", headers=world.server)).status_code == 200
    with world.runtime.db.session() as session:
        for iid in (kept, dropped):
            state = ensure_state(session, iid, "ItemSync")
            state.next_due_at, state.last_run_id = utcnow() - timedelta(minutes=1), None
            session.add(state)
    before = world.runs(dropped)
    enqueued = Scheduler(world.runtime).tick()
    assert len(enqueued) == 1 and world.runs(dropped) == before
    with world.runtime.db.session() as session:
        assert session.get_one(Run, enqueued[0]).integration_id == kept
        slot = session.exec(select(OperationState).where(OperationState.integration_id == dropped)).one()
    assert slot.next_due_at is None


async def test_connecting_again_after_a_disconnect_plans_the_schedule_again(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The skipped slot is not lost for good: the first connection after a disconnect runs step 10 again."""
    monkeypatch.setattr(sample.ItemSync, "policy", Policy.queued(reconcile=True, schedule=timedelta(hours=1)))
    iid = await world.connect_api_key()
    assert (await world.client.post(f"/v1/integrations/{iid}/disconnect", headers=world.server)).status_code == 200
    with world.runtime.db.session() as session:
        state = ensure_state(session, iid, "ItemSync")
        state.next_due_at = utcnow() - timedelta(minutes=1)
        session.add(state)
    assert Scheduler(world.runtime).tick() == []  # skipped while disconnected; the slot is cleared
    again = await world.client.post(
        f"/v1/integrations/{iid}/credentials/ApiToken", json={"token": "sk-live-654321"}, headers=world.server
    )
    assert again.status_code == 200 and again.json()["status"] == "connected", again.text
    with world.runtime.db.session() as session:
        slot = session.exec(select(OperationState).where(OperationState.integration_id == iid)).one()
    assert slot.next_due_at is not None


# -- item 6: bodies refuse unknown fields --------------------------------------------------------------------------


async def test_unknown_fields_are_refused_naming_the_field(world: World) -> None:
    typo = await world.client.post(
        "/v1/integrations", json={"definition_id": "sample", "ownerid": "alice"}, headers=world.server
    )
    assert error(typo) == (422, "invalid_input") and "ownerid" in typo.json()["error"]["message"]
    iid = await world.connect_api_key()
    before = world.runs(iid)
    top_level = await world.run(iid, "ItemSync", {"lookback_hours": 3})
    assert error(top_level) == (422, "invalid_input") and "lookback_hours" in top_level.json()["error"]["message"]
    inside = await world.run(iid, "ItemUpdate", {"config": {"name": "n", "nmae": "typo"}})
    assert error(inside) == (422, "invalid_input") and "nmae" in inside.json()["error"]["message"]
    assert world.runs(iid) == before and sample.UPDATES == []
    cases = [
        ("PATCH", f"/v1/integrations/{iid}", {"nmae": "x"}, "nmae"),
        ("POST", f"/v1/integrations/{iid}/connect", {"connection": "OAuth", "returnurl": "x"}, "returnurl"),
        ("POST", f"/v1/integrations/{iid}/credentials/ApiToken", {"token": "sk-1234567", "tokn": "x"}, "tokn"),
        ("POST", "/v1/scim-connections", {"ownerid": "bob"}, "ownerid"),
    ]
    for method, path, body, field in cases:
        answer = await world.client.request(method, path, json=body, headers=world.server)
        assert answer.status_code == 422, (path, answer.text)
        assert field in answer.json()["error"]["message"], (path, answer.text)
    ok = await world.run(iid, "HealthCheck")  # no body at all is still "no config"
    assert ok.status_code == 200, ok.text


def _routes(routes: list[Any]) -> Iterator[APIRoute]:
    for route in routes:
        included = getattr(route, "original_router", None)  # FastAPI >= 0.16x wraps included routers
        if included is not None:
            yield from _routes(included.routes)
        elif isinstance(route, APIRoute):
            yield route


#: Bodies that are not a model of this API: the credential route validates its body against the slot's model
#: (``CredentialSlot`` forbids extra fields: checked below for every slot of every definition).
FREE_FORM = {("/v1/integrations/{integration_id}/credentials/{slot}", "body")}


def test_every_body_model_of_every_route_forbids_unknown_fields(world: World) -> None:
    app = create_app(world.runtime)
    seen = 0
    for route in _routes(list(app.routes)):
        for param in route.dependant.body_params:
            annotation = param.field_info.annotation
            models = [a for a in (typing.get_args(annotation) or (annotation,)) if a is not type(None)]
            if (route.path, param.name) in FREE_FORM:
                continue
            for model in models:
                assert isinstance(model, type) and issubclass(model, BaseModel), (route.path, param.name, model)
                assert model.model_config.get("extra") == "forbid", (route.path, model.__name__)
                seen += 1
    assert seen >= 6  # create, update, connect, upgrade, reconnect, run, scim-connections
    for definition in world.runtime.registry.definitions():
        for slot in definition.slots:
            assert slot.model_config.get("extra") == "forbid", (definition.id, slot.__name__)


# -- item 7: write tiers and who may run -----------------------------------------------------------------------------


async def test_a_write_on_a_read_grant_is_upgrade_required_before_the_provider_is_called(world: World) -> None:
    iid = await world.connect_oauth(("read",))
    refused = await world.run(iid, "ItemUpdate", {"config": {"name": "new"}})
    assert error(refused) == (403, "upgrade_required"), refused.text
    body = refused.json()["error"]
    assert body["upgrade_url"] == f"{PUBLIC_URL}/v1/integrations/{iid}/upgrade"
    assert body["missing_scopes"] == ["write"]
    assert sample.UPDATES == [] and world.runs(iid) == 0
    with pytest.raises(Exception) as raised:  # every trigger, not only the API
        await world.runtime.executor.dispatch(iid, "ItemUpdate", trigger="webhook", config={"name": "n"})
    assert getattr(raised.value, "code", "") == "upgrade_required"
    assert sample.UPDATES == [] and world.runs(iid) == 0

    # The URL is the one that starts the upgrade: posted as a connect body, it answers the browser redirect.
    upgrade = await world.client.post(body["upgrade_url"].removeprefix(PUBLIC_URL), json={}, headers=world.server)
    assert upgrade.status_code == 200 and "/v1/oauth/start?" in upgrade.json()["redirect_url"], upgrade.text
    reads = await world.run(iid, "HealthCheck")  # the read tier still works on the read grant
    assert reads.status_code == 200, reads.text


async def test_a_write_on_a_write_grant_or_a_connection_without_tiers_runs(world: World) -> None:
    granted = await world.connect_oauth(("read", "write"))
    done = await world.run(granted, "ItemUpdate", {"config": {"name": "new"}})
    assert done.status_code == 200 and done.json()["result"] == {"renamed": "new"}, done.text
    keyed = await world.connect_api_key(owner="bob")  # an API key has one tier: nothing to upgrade
    done = await world.run(keyed, "ItemUpdate", {"config": {"name": "other"}})
    assert done.status_code == 200, done.text
    assert sample.UPDATES == ["new", "other"]


async def test_a_user_may_run_reads_but_not_writes(world: World) -> None:
    iid = await world.connect_oauth(("read", "write"))
    before = world.runs(iid)
    refused = await world.run(iid, "ItemUpdate", {"config": {"name": "n"}}, headers=world.user())
    assert error(refused) == (403, "operation_not_allowed"), refused.text
    assert sample.UPDATES == [] and world.runs(iid) == before
    read = await world.run(iid, "HealthCheck", headers=world.user())
    assert read.status_code == 200, read.text
    detail = (await world.client.get("/v1/definitions/sample")).json()
    allowed = {o["id"]: o["user_may_run"] for o in detail["operation_details"]}
    assert allowed == {"HealthCheck": True, "ItemSync": True, "ItemUpdate": False}


def test_user_may_run_defaults_to_the_tier_and_can_be_set() -> None:
    assert Policy().users_may_run and Policy.queued().users_may_run
    assert not Policy.inline(access="write").users_may_run
    assert Policy.inline(access="write", user_may_run=True).users_may_run
    assert not Policy.queued(user_may_run=False).users_may_run


# -- item 1: who may set filter_expr ---------------------------------------------------------------------------------


async def test_only_a_server_principal_sets_the_tenant_filter(world: World) -> None:
    iid = await world.connect_api_key()
    refused = await world.client.patch(f"/v1/integrations/{iid}", json={"filter_expr": "true"}, headers=world.user())
    assert error(refused) == (403, "forbidden"), refused.text
    assert world.row(iid).filter_expr == ""
    renamed = await world.client.patch(f"/v1/integrations/{iid}", json={"name": "mine"}, headers=world.user())
    assert renamed.status_code == 200 and renamed.json()["name"] == "mine"
    by_server = await world.client.patch(
        f"/v1/integrations/{iid}", json={"filter_expr": 'payload.kind == "item"'}, headers=world.server
    )
    assert by_server.status_code == 200 and by_server.json()["filter_expr"] == 'payload.kind == "item"'
