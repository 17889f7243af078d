"""The MCP server at ``/mcp`` driven by the official ``mcp`` client over HTTP, against a live Tether (uvicorn on
127.0.0.1) whose sandbox provider is the real one it serves under ``/sandbox`` (issue 24's proof).

Owners and how they reach the server:

- ``alice``: a ``user`` API key; her sandbox integration is connected with the acme API key (every scope);
- ``bob``: an access token the host app minted for him (the signed principal format, audience ``/mcp``); his
  integration is connected through the sandbox's OAuth consent (globex, read scopes only);
- ``carol``: the host's ``server`` key with ``X-Tether-Owner: carol``; she has no integration.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import httpx2
import mcp_types as types
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS
from sqlmodel import select

from definitions.sandbox.operations import HealthCheck
from engine.api.principal import create_api_key, sign_principal
from engine.mcp.auth import issue_access_token
from engine.mcp.calls import answer
from engine.mcp.tools import input_schema, schema_by_name
from engine.runs.execution import RunView
from engine.store.tables import Integration, Run
from sandbox.conftest import LiveSandbox, start

PRINCIPAL_KEY = "principal-key-for-the-mcp-tests"
RETURN_URL = "https://app.example/settings"


@dataclass
class World:
    live: LiveSandbox
    api: httpx.Client
    server_key: str
    alice_key: str
    integrations: dict[str, str]

    @property
    def url(self) -> str:
        return f"{self.live.base}/mcp"

    def token(self, owner: str) -> str:
        return issue_access_token(PRINCIPAL_KEY, resource=self.url, tenant="acme", owner=owner)

    def headers(self, owner: str) -> dict[str, str]:
        if owner == "alice":
            return {"Authorization": f"Bearer {self.alice_key}"}
        if owner == "carol":
            return {"Authorization": f"Bearer {self.server_key}", "X-Tether-Owner": "carol"}
        return {"Authorization": f"Bearer {self.token(owner)}"}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    path = tmp_path_factory.mktemp("mcp")
    with pytest.MonkeyPatch.context() as monkeypatch:
        for live in start(
            f"sqlite:///{path / 'tether.db'}",
            str(path),
            monkeypatch,
            allowed_return_origins_list="https://app.example",
            secret_principal_key=PRINCIPAL_KEY,
            mcp_authorization_servers_list="https://login.app.example",
        ):
            server_key, _ = create_api_key(live.runtime.db, tenant="acme", role="server", name="host app")
            alice_key, _ = create_api_key(live.runtime.db, tenant="acme", role="user", owner="alice", name="agent")
            with httpx.Client(base_url=live.base, headers={"Authorization": f"Bearer {server_key}"}, timeout=30) as api:
                world = World(live, api, server_key, alice_key, {})
                world.integrations["alice"] = connect_key(world, "alice", "sbx_key_acme")
                world.integrations["bob"] = connect_oauth(world, "bob", "globex")
                world.integrations["dave"] = connect_oauth(world, "dave", "initech")
                yield world


def create(world: World, owner: str) -> str:
    created = world.api.post("/v1/integrations", json={"definition_id": "sandbox", "owner_id": owner})
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


def connect_key(world: World, owner: str, key: str) -> str:
    iid = create(world, owner)
    answered = world.api.post(f"/v1/integrations/{iid}/credentials/SandboxApiKey", json={"api_key": key})
    assert answered.status_code == 200 and answered.json()["status"] == "connected", answered.text
    return iid


def connect_oauth(world: World, owner: str, account: str) -> str:
    """The browser's path: Tether's start URL, the sandbox's consent form, Tether's callback (read scopes)."""
    iid = create(world, owner)
    started = world.api.post(
        f"/v1/integrations/{iid}/connect", json={"connection": "SandboxOAuth", "return_url": RETURN_URL}
    )
    assert started.status_code == 200, started.text
    with httpx.Client(follow_redirects=False, timeout=30) as browser:
        authorize = browser.get(started.json()["redirect_url"]).headers["location"]
        query = {k: v[0] for k, v in parse_qs(urlsplit(authorize).query).items()}
        approved = browser.post(authorize.split("?")[0], data={**query, "account": account, "decision": "approve"})
        assert approved.status_code == 302, approved.text
        back = browser.get(approved.headers["location"])
    assert parse_qs(urlsplit(back.headers["location"]).query)["tether_result"] == ["connected"]
    return iid


@asynccontextmanager
async def mcp_client(world: World, owner: str, **options: Any) -> AsyncIterator[Client]:
    http = create_mcp_http_client(headers=world.headers(owner), timeout=httpx2.Timeout(30, read=120))
    async with http, Client(streamable_http_client(world.url, http_client=http), **options) as client:
        yield client


def error_of(result: types.CallToolResult) -> dict[str, Any]:
    assert result.is_error, result
    return result.structured_content["error"]


def finding(world: World, account: str, finding_id: str | None = None) -> dict[str, Any]:
    """A finding of an account (the first listed, or ``finding_id``), read at the sandbox with the account's API
    key (every scope)."""
    listed = world.live.http.get(f"{world.live.sandbox}/api/v1/findings", headers={"X-Api-Key": f"sbx_key_{account}"})
    assert listed.status_code == 200, listed.text
    found = listed.json()["data"]
    return next(f for f in found if f["id"] == finding_id) if finding_id else found[0]


# -- discovery and authentication -----------------------------------------------------------------------------------


async def test_the_client_speaks_2026_07_28_and_finds_the_server(world: World) -> None:
    async with mcp_client(world, "alice") as client:
        assert client.protocol_version == "2026-07-28"
        assert client.server_capabilities.tools is not None and client.server_capabilities.resources is not None


def test_protected_resource_metadata_and_the_401_challenge(world: World) -> None:
    for path in ("/.well-known/oauth-protected-resource/mcp", "/.well-known/oauth-protected-resource"):
        metadata = world.live.http.get(f"{world.live.base}{path}").json()
        assert metadata["resource"] == world.url
        assert metadata["authorization_servers"] == ["https://login.app.example"]
        assert metadata["bearer_methods_supported"] == ["header"]
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    bare = world.live.http.post(world.url, json=body)
    assert bare.status_code == 401 and bare.json()["error"]["code"] == "unauthenticated"
    expected = f'Bearer resource_metadata="{world.live.base}/.well-known/oauth-protected-resource/mcp"'
    assert bare.headers["www-authenticate"] == expected
    for token in ("tk_not-a-key", "garbage", sign_principal(PRINCIPAL_KEY, tenant="acme", role="user", owner="bob")):
        refused = world.live.http.post(world.url, json=body, headers={"Authorization": f"Bearer {token}"})
        assert refused.status_code == 401, token
        assert refused.headers["www-authenticate"] == expected + ', error="invalid_token"'
    other = issue_access_token(PRINCIPAL_KEY, resource="https://other.example/mcp", tenant="acme", owner="bob")
    assert world.live.http.post(world.url, json=body, headers={"Authorization": f"Bearer {other}"}).status_code == 401
    stream = world.live.http.get(world.url, headers={"Authorization": f"Bearer {world.alice_key}"})
    assert (stream.status_code, stream.headers["allow"]) == (405, "POST")  # stateless: no GET stream to open
    assert stream.json()["error"]["code"] == "method_not_allowed"
    ownerless = world.live.http.post(world.url, json=body, headers={"Authorization": f"Bearer {world.server_key}"})
    assert ownerless.status_code == 400 and ownerless.json()["error"]["code"] == "mcp_owner_required"


# -- tools per user -------------------------------------------------------------------------------------------------


async def test_each_user_lists_the_tools_of_their_own_integrations(world: World) -> None:
    seen: dict[str, dict[str, types.Tool]] = {}
    for owner in ("alice", "bob", "carol"):
        async with mcp_client(world, owner) as client:
            seen[owner] = {tool.name: tool for tool in (await client.list_tools()).tools}
    assert set(seen["alice"]) == {"sandbox__HealthCheck", "sandbox__Sync", "sandbox__ResolveFinding"}
    assert set(seen["bob"]) == set(seen["alice"])
    assert seen["carol"] == {}
    for owner in ("alice", "bob"):
        for tool in seen[owner].values():
            assert tool.meta is not None and tool.meta["tether/integration_id"] == world.integrations[owner]
    health = seen["alice"]["sandbox__HealthCheck"]
    assert health.description is not None and health.description.startswith("Check that the credential is accepted")
    assert health.annotations is not None and health.annotations.read_only_hint is True
    resolve = seen["bob"]["sandbox__ResolveFinding"]
    assert resolve.input_schema["properties"]["finding_id"]["type"] == "string"
    assert resolve.input_schema["additionalProperties"] is False
    assert resolve.annotations is not None and resolve.annotations.destructive_hint is True


async def test_a_read_tool_runs_as_a_run_of_the_users_own_integration(world: World) -> None:
    async with mcp_client(world, "alice") as client:
        result = await client.call_tool("sandbox__HealthCheck", {})
    assert not result.is_error, result
    assert result.structured_content["result"] == {"ok": True, "account": "acme"}
    run_id = result.structured_content["run_id"]
    with world.live.runtime.db.session() as session:
        run = session.get_one(Run, run_id)
    assert (run.integration_id, run.operation, run.trigger, run.status) == (
        world.integrations["alice"],
        "HealthCheck",
        "mcp",
        "succeeded",
    )
    assert "sbx_key_acme" not in str(result.model_dump())


async def test_unknown_arguments_are_a_tool_error_and_no_provider_call(world: World) -> None:
    async with mcp_client(world, "alice") as client:
        result = await client.call_tool("sandbox__HealthCheck", {"surprise": 1})
        assert error_of(result)["code"] == "invalid_input"
        with pytest.raises(MCPError, match="unknown tool") as unknown:
            await client.call_tool("nowhere__Nothing", {})
        assert unknown.value.code == INVALID_PARAMS
    async with mcp_client(world, "carol") as client:  # a tool of another owner is no tool of hers
        with pytest.raises(MCPError, match="unknown tool"):
            await client.call_tool("sandbox__HealthCheck", {})


async def test_a_queued_tool_waits_for_its_run(world: World) -> None:
    """The call waits while a worker (played by the test: this live server has none) executes the queued run."""
    async with mcp_client(world, "alice") as client:
        call = asyncio.create_task(client.call_tool("sandbox__Sync", {}))
        run_id = await queued_run(world, "Sync")
        assert not call.done()
        assert (await world.live.runtime.executor.execute(run_id)).status == "succeeded"
        result = await call
    assert not result.is_error, result
    assert (result.structured_content["run_id"], result.structured_content["status"]) == (run_id, "succeeded")
    assert result.structured_content["result"]["received"] > 0


async def queued_run(world: World, operation: str) -> str:
    query = select(Run).where(
        Run.integration_id == world.integrations["alice"],
        Run.operation == operation,
        Run.status == "queued",
        Run.trigger == "mcp",  # not the first connection's reconcile run, which no worker took either
    )
    for _ in range(300):
        with world.live.runtime.db.session() as session:
            found = session.exec(query).first()
        if found is not None:
            return found.id
        await asyncio.sleep(0.1)
    raise AssertionError(f"no queued {operation} run")


# -- reconnect after a revoke ---------------------------------------------------------------------------------------


async def test_after_a_revoke_the_tool_answers_reconnect_with_its_url(world: World) -> None:
    revoked = world.api.post("/sandbox/control/accounts/globex/revoke-grants")
    assert revoked.status_code == 200, revoked.text
    iid = world.integrations["bob"]
    async with mcp_client(world, "bob") as client:
        first = error_of(await client.call_tool("sandbox__HealthCheck", {}))
        again = error_of(await client.call_tool("sandbox__HealthCheck", {}))
    for error in (first, again):
        assert error["code"] == "reconnect_required", error
        assert error["url"] == f"{world.live.base}/integrations"
        assert error["api_url"] == f"{world.live.base}/v1/integrations/{iid}/reconnect"
        assert error["integration_id"] == iid
    assert "run_id" in first  # the first call was a run that found the grant dead; the second was refused before one
    with world.live.runtime.db.session() as session:
        assert session.get_one(Integration, iid).status == "reconnect_required"

    asked: list[types.ElicitRequestParams] = []

    async def open_url(_context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        asked.append(params)
        return types.ElicitResult(action="accept")

    async with mcp_client(world, "bob", elicitation_callback=open_url) as client:
        still = error_of(await client.call_tool("sandbox__HealthCheck", {}))
    assert [(p.mode, getattr(p, "url", None)) for p in asked] == [("url", f"{world.live.base}/integrations")]
    assert still["code"] == "reconnect_required"  # opened, but not reconnected: the error, not a loop


async def test_a_tool_of_an_integration_never_connected_links_to_connecting_it(world: World) -> None:
    iid = create(world, "erin")
    async with mcp_client(world, "erin") as client:
        names = {tool.name for tool in (await client.list_tools()).tools}
        error = error_of(await client.call_tool("sandbox__HealthCheck", {}))
    assert "sandbox__HealthCheck" in names
    assert (error["code"], error["action"]) == ("integration_not_connected", "connect")
    assert error["api_url"] == f"{world.live.base}/v1/integrations/{iid}/connect"
    with world.live.runtime.db.session() as session:
        assert session.exec(select(Run).where(Run.integration_id == iid)).first() is None


# -- write tier -----------------------------------------------------------------------------------------------------


async def test_the_write_tool_is_refused_without_the_write_tier(world: World) -> None:
    before = finding(world, "initech")
    async with mcp_client(world, "dave") as client:  # a client without elicitation: the error at once
        plain = error_of(await client.call_tool("sandbox__ResolveFinding", {"finding_id": before["id"]}))
    assert plain["code"] == "upgrade_required" and plain["action"] == "upgrade"
    asked: list[Any] = []

    async def confirm(_context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        asked.append(params)
        return types.ElicitResult(action="accept", content={"confirm": True} if params.mode == "form" else None)

    async with mcp_client(world, "dave", elicitation_callback=confirm) as client:
        result = await client.call_tool("sandbox__ResolveFinding", {"finding_id": before["id"]})
    error = error_of(result)
    assert error["code"] == "upgrade_required" and error["missing_scopes"] == ["records:write"]
    assert error["api_url"] == f"{world.live.base}/v1/integrations/{world.integrations['dave']}/upgrade"
    # The user was sent to the page to upgrade, not asked to confirm a change that could not run; still read-only
    # when the client called again, so the error.
    assert [(p.mode, getattr(p, "url", None)) for p in asked] == [("url", f"{world.live.base}/integrations")]
    assert finding(world, "initech", before["id"]) == before


async def test_a_write_with_the_tier_asks_for_confirmation(world: World) -> None:
    target = finding(world, "acme")
    assert target["status"] == "open"  # the seed's first finding
    answers = iter(
        [types.ElicitResult(action="decline"), types.ElicitResult(action="accept", content={"confirm": True})]
    )
    asked: list[types.ElicitRequestParams] = []

    async def confirm(_context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        asked.append(params)
        return next(answers)

    async with mcp_client(world, "alice", elicitation_callback=confirm) as client:
        declined = await client.call_tool("sandbox__ResolveFinding", {"finding_id": target["id"], "status": "resolved"})
        assert error_of(declined)["code"] == "confirmation_declined"
        assert finding(world, "acme", target["id"])["status"] == target["status"]
        done = await client.call_tool("sandbox__ResolveFinding", {"finding_id": target["id"], "status": "resolved"})
    assert not done.is_error, done
    assert done.structured_content["result"] == {"id": target["id"], "status": "resolved"}
    assert [p.mode for p in asked] == ["form", "form"]
    assert finding(world, "acme", target["id"])["status"] == "resolved"
    world.api.post("/sandbox/control/accounts/acme/reset")


# -- resources ------------------------------------------------------------------------------------------------------


async def test_resources_are_the_users_integrations_and_runs(world: World) -> None:
    async with mcp_client(world, "alice") as client:
        uris = {str(r.uri) for r in (await client.list_resources()).resources}
        mine = f"tether://integrations/{world.integrations['alice']}"
        assert {"tether://integrations", "tether://runs", mine} <= uris
        listed = await client.read_resource("tether://integrations")
        runs = await client.read_resource("tether://runs")
        with pytest.raises(MCPError, match="no resource"):
            await client.read_resource(f"tether://integrations/{world.integrations['bob']}")
        recent = json.loads((await client.read_resource("tether://runs")).contents[0].text)  # type: ignore[union-attr]
        one = await client.read_resource(f"tether://runs/{recent[0]['id']}")
        assert json.loads(one.contents[0].text)["id"] == recent[0]["id"]  # type: ignore[union-attr]
    async with mcp_client(world, "bob") as client:
        with pytest.raises(MCPError, match="no resource"):
            await client.read_resource(f"tether://runs/{recent[0]['id']}")
    integrations = json.loads(listed.contents[0].text)  # type: ignore[union-attr]
    assert [i["id"] for i in integrations] == [world.integrations["alice"]]
    assert all(r["integration_id"] == world.integrations["alice"] for r in json.loads(runs.contents[0].text))  # type: ignore[union-attr]
    with world.live.runtime.db.session() as session:
        alice_runs = session.exec(select(Run).where(Run.integration_id == world.integrations["alice"])).all()
    assert alice_runs


# -- bounds ---------------------------------------------------------------------------------------------------------


def test_a_result_past_the_bound_is_cut_and_names_its_run(world: World) -> None:
    runtime = world.live.runtime
    with runtime.db.session() as session:
        run = session.exec(select(Run).where(Run.integration_id == world.integrations["alice"])).first()
    assert run is not None
    view = RunView.of(run).model_copy(update={"status": "succeeded"})
    big = {"rows": ["x" * 100] * 2000}
    result = answer(runtime, view, big)
    assert not result.is_error
    assert result.structured_content == {
        "run_id": run.id,
        "status": "succeeded",
        "truncated": True,
        "result_bytes": result.structured_content["result_bytes"],
    }
    assert result.structured_content["result_bytes"] > runtime.settings.mcp_max_result_bytes
    assert len(result.content[0].text.encode()) <= runtime.settings.mcp_max_result_bytes  # type: ignore[union-attr]


async def test_a_handshake_era_client_is_served_statelessly(world: World) -> None:
    async with mcp_client(world, "alice", mode="legacy") as client:
        assert client.protocol_version == "2025-11-25"
        names = {tool.name for tool in (await client.list_tools()).tools}
        result = await client.call_tool("sandbox__HealthCheck", {})
    assert "sandbox__HealthCheck" in names
    assert result.structured_content["result"] == {"ok": True, "account": "acme"}


async def test_the_tool_time_limit_cuts_the_wait(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """Past the limit an inline run is cancelled (its row says so); a queued one is answered with its ID and goes
    on. The health check is made to take a second first (in the server's own process), well past the limit; the
    queued run waits for a worker, which this test plays after the answer."""
    health = HealthCheck.run

    async def slow_health(self: HealthCheck, ctx: Any) -> Any:
        await asyncio.sleep(1)
        return await health(self, ctx)

    monkeypatch.setattr(HealthCheck, "run", slow_health)
    monkeypatch.setattr(world.live.runtime.settings, "mcp_time_limit_seconds", 0.2)
    async with mcp_client(world, "alice") as client:
        inline = await client.call_tool("sandbox__HealthCheck", {})
        queued = await client.call_tool("sandbox__Sync", {})
    error = error_of(inline)
    assert error["code"] == "time_limit_exceeded"
    with world.live.runtime.db.session() as session:
        assert session.get_one(Run, error["run_id"]).status == "cancelled"
    assert not queued.is_error, queued
    assert queued.structured_content["status"] in ("queued", "running")
    assert f"tether://runs/{queued.structured_content['run_id']}" in queued.structured_content["note"]
    outcome = await world.live.runtime.executor.execute(queued.structured_content["run_id"])
    assert outcome.status == "succeeded"


def test_a_tools_input_schema_is_found_by_its_name_alone(world: World) -> None:
    """What the SDK checks a call's ``Mcp-Param-*`` headers against, without listing the caller's tools again."""
    runtime = world.live.runtime
    for operation in ("HealthCheck", "Sync", "ResolveFinding"):
        expected = input_schema(runtime.registry.get("sandbox").operation(operation))  # type: ignore[arg-type]
        assert schema_by_name(runtime, f"sandbox__{operation}") == expected
    for name in ("sandbox__Nothing", "nothing", "nowhere__Sync", "sandbox__"):
        assert schema_by_name(runtime, name) is None
