"""customOauth2: OAuth2 providers declared as data files.

End to end: a data-only file in a ``TETHER_DEFINITIONS_DIR`` folder, pointing at the real panva OAuth server,
loaded by a running Tether's start-up; the browser flow connects, the account is resolved from the JSON paths of
panva's userinfo endpoint, the upgrade records the granted scopes and disconnect revokes (introspection says
inactive). Then the registration rules and golden tests of the generated parts against Notion's documented
shapes (respx)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import respx
from pydantic import SecretStr

from definitions.custom_oauth2 import PROVIDERS, generate, load_definition, load_spec, notion, parse_spec, read_path
from definitions.custom_oauth2.generate import DataOAuth2
from engine import ConnectionContext, NoConfig, NoRevocation, OperationContext, ProviderError, Revoke
from engine.api import create_app
from engine.api.principal import create_api_key
from engine.authoring.config import load_operator_config, missing_operator_variables
from engine.catalog.registry import Registry
from engine.custody.crypto import generate_master_key
from engine.errors import ConfigurationError, DefinitionError
from engine.runtime import Runtime
from engine.settings import Settings
from engine.store.database import Database
from support.cassette_fixtures import response_fixture
from support.oracles import PanvaServer, panva_client
from support.server import free_port, serve

RETURN_URL = "https://app.example/settings/integrations"
FIXTURES = Path(__file__).parents[1] / "fixtures" / "notion"


def provider_file(tmp_path: Path, name: str = "acme_sso.toml", **fields: Any) -> Path:
    """A provider data file; ``fields`` override the defaults (``None`` drops a key)."""
    data: dict[str, Any] = {
        "id": "acme_sso",
        "name": "Acme SSO",
        "mode": "optional",
        "onboarding": "afterAuth",
        "access": "read",
        "clientId": {"secret": "ACME_SSO_CLIENT_ID"},
        "clientSecret": {"secret": "ACME_SSO_CLIENT_SECRET"},
        "authorizeUrl": "https://sso.acme.example/authorize",
        "tokenUrl": "https://sso.acme.example/token",
        "accountUrl": "https://sso.acme.example/me",
        "accountIdPath": "sub",
        "accountEmailPath": "email",
        "accountNamePath": "name",
        "scopes": ["openid", "offline_access", "api:read"],
        "upgradeScopes": ["openid", "offline_access", "api:read", "api:write"],
        "revokeUrl": "https://sso.acme.example/revoke",
        "authorizeParams": {"prompt": "consent"},
    }
    for key, value in fields.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    path = tmp_path / name
    path.write_text(json.dumps(data) if name.endswith(".json") else _toml(data))
    return path


def _toml(data: dict[str, Any]) -> str:
    lines, tables = [], []
    for key, value in data.items():
        if isinstance(value, dict) and key not in ("clientId", "clientSecret"):
            tables.append(f"[{key}]\n" + "\n".join(f"{json.dumps(k)} = {json.dumps(v)}" for k, v in value.items()))
        elif isinstance(value, dict):
            lines.append(f'{key} = {{ secret = "{value["secret"]}" }}')
        else:
            lines.append(f"{key} = {json.dumps(value)}")
    return "\n".join(lines) + "\n\n" + "\n\n".join(tables) + "\n"


# -- end to end against panva ------------------------------------------------------------------------------


@dataclass
class World:
    base: str
    panva: PanvaServer
    runtime: Runtime
    api: httpx.Client


@pytest.fixture
def world(sqlite_database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    port = free_port()
    callback = f"http://127.0.0.1:{port}/v1/oauth/callback"
    with PanvaServer(clients=[panva_client(redirect_uris=[callback])], access_token_ttl=900) as panva:
        userinfo = panva.metadata["userinfo_endpoint"]
        assert urlsplit(userinfo).path == "/me"
        (tmp_path / "definitions").mkdir()
        provider_file(
            tmp_path / "definitions",
            authorizeUrl=panva.authorize_url,
            tokenUrl=panva.token_url,
            revokeUrl=panva.revoke_url,
            accountUrl=userinfo,
        )
        monkeypatch.setenv("TETHER_SECRET_MASTER_KEY", generate_master_key())
        monkeypatch.setenv("TETHER_SECRET_ACME_SSO_CLIENT_ID", panva.client["client_id"])
        monkeypatch.setenv("TETHER_SECRET_ACME_SSO_CLIENT_SECRET", panva.client["client_secret"])
        monkeypatch.setenv("TETHER_ALLOW_LOOPBACK_PROVIDERS", "1")  # the generated client reaches panva's /me
        settings = Settings(
            database_url=sqlite_database.url,
            definitions_dir=str(tmp_path / "definitions"),  # loaded the way `tether serve` loads it
            allow_loopback_providers=True,
            state_dir=str(tmp_path),
            public_url=f"http://127.0.0.1:{port}",
            allowed_return_origins_list="https://app.example",
        )
        runtime = Runtime.start(settings)
        key, _ = create_api_key(runtime.db, tenant="acme", role="server", name="host app")
        with (
            serve(create_app(runtime), port) as base,
            httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=30) as api,
        ):
            yield World(base, panva, runtime, api)
        runtime.close()


def browser_connect(world: World, redirect_url: str) -> httpx.Response:
    with httpx.Client(follow_redirects=False, timeout=30) as browser:
        start = browser.get(redirect_url)
        assert start.status_code == 302, start.text
        callback_url = world.panva.consent(start.headers["location"], login="alice")
        return browser.get(callback_url)


def test_data_only_definition_connects_resolves_upgrades_and_revokes(world: World) -> None:
    api = world.api
    listed = api.get("/v1/definitions")
    assert listed.status_code == 200 and "acme_sso" in listed.text

    iid = api.post("/v1/integrations", json={"definition_id": "acme_sso", "owner_id": "alice"}).json()["id"]
    connect = api.post(f"/v1/integrations/{iid}/connect", json={"connection": "AcmeSsoOAuth", "return_url": RETURN_URL})
    assert connect.status_code == 200, connect.text
    back = browser_connect(world, connect.json()["redirect_url"])
    assert back.status_code == 302
    assert parse_qs(urlsplit(back.headers["location"]).query)["tether_result"] == ["connected"]

    record = api.get(f"/v1/integrations/{iid}").json()
    assert (record["status"], record["connection"]) == ("connected", "AcmeSsoOAuth")
    # panva's userinfo answers {"sub": "alice"}: the ID path resolves, the absent email/name paths are omitted.
    assert record["account"] == {"account_id": "alice", "attributes": {}}

    validated = api.post(f"/v1/integrations/{iid}/validate")
    assert validated.status_code == 200 and validated.json()["is_valid"] is True

    definition = world.runtime.registry.get("acme_sso")
    slot = definition.connections[0].credential
    assert "api:write" not in world.runtime.keystore.require(iid, slot).slot.scopes
    upgrade = api.post(f"/v1/integrations/{iid}/upgrade", json={"return_url": RETURN_URL})
    assert upgrade.status_code == 200, upgrade.text
    assert browser_connect(world, upgrade.json()["redirect_url"]).status_code == 302
    grant = world.runtime.keystore.require(iid, slot).slot
    assert {"api:read", "api:write"} <= set(grant.scopes)
    access_token = grant.access_token.get_secret_value()
    assert world.panva.introspect(access_token)["active"] is True

    disconnected = api.post(f"/v1/integrations/{iid}/disconnect")
    assert disconnected.status_code == 200, disconnected.text
    assert disconnected.json()["integration"]["status"] == "disconnected"
    assert world.panva.introspect(grant.refresh_token.get_secret_value())["active"] is False
    assert world.panva.introspect(access_token)["active"] is False


# -- registration rules ------------------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["authorizeUrl", "tokenUrl", "accountUrl", "revokeUrl"])
def test_plain_http_provider_url_is_refused_at_registration(tmp_path: Path, field: str) -> None:
    definition = load_definition(provider_file(tmp_path, **{field: "http://127.0.0.1:8080/x"}))
    with pytest.raises(DefinitionError) as refused:
        Registry().register(definition)
    assert refused.value.rule == "https_only"
    Registry(allow_loopback=True).register(definition)  # loopback, allowed for tests


def test_plain_http_to_a_public_host_is_refused_even_with_loopback_allowed(tmp_path: Path) -> None:
    definition = load_definition(provider_file(tmp_path, accountUrl="http://api.acme.example/me"))
    with pytest.raises(DefinitionError) as refused:
        Registry(allow_loopback=True).register(definition)
    assert refused.value.rule == "https_only"


def test_shipped_providers_register() -> None:
    registry = Registry()
    registry.register(notion)
    assert registry.get("notion").operations[0].operation_id() == "NotionHealthCheck"
    assert {p.name for p in PROVIDERS.iterdir()} >= {"notion.toml", "todoist.toml"}


# -- the data format ---------------------------------------------------------------------------------------


def test_notion_file_becomes_stable_engine_parts() -> None:
    connection = notion.connections[0]
    auth = connection.auth
    assert isinstance(auth, DataOAuth2)
    assert [c.__name__ for c in (notion.operator_config, notion.slots[0], notion.clients[0], connection)] == [
        "NotionConfig", "NotionToken", "NotionClient", "NotionOAuth"]
    assert (notion.mode, notion.onboarding) == ("manual", "settings")
    assert auth.scopes == ("read:pages",) and auth.upgrade_scopes == ("read:pages", "update:pages")
    assert auth.revoke_url == "https://api.notion.com/v1/oauth/revoke"
    assert connection.disconnect == Revoke(notion.slots[0])
    assert dict(auth.extra_authorize_params) == {"owner": "user"}
    assert connection.validate is notion.operations[0]


def test_client_id_and_secret_come_from_tether_secret_names() -> None:
    model = notion.operator_config
    assert model is not None
    assert missing_operator_variables("notion", model, {}) == [
        "TETHER_SECRET_NOTION_CLIENT_ID", "TETHER_SECRET_NOTION_CLIENT_SECRET"]
    config = load_operator_config("notion", model, {
        "TETHER_SECRET_NOTION_CLIENT_ID": "cid-123", "TETHER_SECRET_NOTION_CLIENT_SECRET": "shh"})
    assert str(config.client_id) == "cid-123"  # type: ignore[attr-defined]  # the OAuth client sends it
    assert "shh" not in repr(config) and "cid-123" not in repr(config)


def test_json_file_and_write_access_and_no_revoke_url(tmp_path: Path) -> None:
    path = provider_file(tmp_path, "acme_sso.json", access="write", revokeUrl=None, onboarding="combined")
    definition = load_definition(path)
    connection = definition.connections[0]
    assert connection.auth is not None and "api:write" in connection.auth.scopes  # type: ignore[attr-defined]
    assert isinstance(connection.disconnect, NoRevocation) and "Acme SSO" in connection.disconnect.reason
    assert definition.onboarding == "combined"
    Registry().register(definition)


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        ({"accountIdPath": None}, "accountIdPath"),
        ({"clientId": {"secret": "OTHER_CLIENT_ID"}}, "ACME_SSO_"),
        ({"clientId": "the-literal-id"}, "clientId"),
        ({"surprise": 1}, "surprise"),
        ({"mode": "sometimes"}, "mode"),
        ({"id": "Acme"}, "id"),
    ],
)
def test_malformed_files_are_refused_naming_the_key(tmp_path: Path, change: dict[str, Any], complaint: str) -> None:
    path = provider_file(tmp_path, "acme_sso.json", **change)
    with pytest.raises(ConfigurationError) as refused:
        load_spec(path)
    assert complaint in str(refused.value)
    assert "the-literal-id" not in str(refused.value)


def test_json_paths() -> None:
    doc = {"bot": {"owner": {"user": {"id": "u1"}}}, "items": [{"id": 7}], "n": None}
    assert read_path(doc, "bot.owner.user.id") == "u1"
    assert read_path(doc, "$.bot.owner.user.id") == "u1"
    assert read_path(doc, "items.0.id") == 7
    assert read_path(doc, "items.3.id") is None and read_path(doc, "n.x") is None
    assert read_path(doc, "bot.missing") is None and read_path(doc, None) is None


# -- golden: Notion's documented shapes through the generated parts ---------------------------------------


def recorded(name: str) -> dict[str, Any]:
    return response_fixture(FIXTURES, name)  # responses are cassettes, webhook deliveries JSON


def answer(name: str) -> httpx.Response:
    rec = recorded(name)
    return httpx.Response(rec["status"], headers=rec["headers"], json=rec["body"])


def notion_client() -> httpx.AsyncClient:
    from engine import ClientContext

    slot = notion.slots[0].model_validate({"access_token": "secret_notion_token"})
    return notion.clients[0]().build(ClientContext("int_1", slot, None, None))


def test_resolve_reads_the_account_from_the_json_paths() -> None:
    async def go() -> Any:
        async with notion_client() as client:
            ctx = ConnectionContext("int_1", notion.slots[0].model_validate({"access_token": "x"}), client, None, None)
            return await notion.connections[0]().resolve(ctx)

    with respx.mock(assert_all_called=True) as mock:
        route = mock.get("https://api.notion.com/v1/users/me").mock(return_value=answer("users_me"))
        metadata = asyncio.run(go())
    sent = route.calls.last.request
    assert sent.headers["authorization"] == "Bearer secret_notion_token"
    assert sent.headers["notion-version"] == "2022-06-28"
    assert metadata.model_dump(exclude_none=True) == {
        "account_id": "e79a0b74-3aba-4149-9f74-0bb5791a6ee6",
        "account_email": "avo@example.org",
        "account_name": "Tether integration",
        "attributes": {},
    }


def run_health_check() -> Any:
    async def go() -> Any:
        async with notion_client() as client:
            ctx = OperationContext("int_1", "t", NoConfig(), client, None, None)
            return await notion.operations[0]().run(ctx)

    return asyncio.run(go())


def test_health_check_and_error_codes() -> None:
    with respx.mock as mock:
        route = mock.get("https://api.notion.com/v1/users/me")
        route.mock(return_value=answer("users_me"))
        assert run_health_check() == {"ok": True, "account_id": "e79a0b74-3aba-4149-9f74-0bb5791a6ee6"}
        route.mock(return_value=answer("error_401"))
        with pytest.raises(ProviderError) as unauthorized:
            run_health_check()
        assert (unauthorized.value.code, unauthorized.value.provider_status) == ("unauthorized", 401)
        assert "invalid" not in str(unauthorized.value)  # the provider's body never reaches the message
        route.mock(return_value=answer("error_429"))
        with pytest.raises(ProviderError) as limited:
            run_health_check()
        assert (limited.value.code, limited.value.retry_after) == ("rate_limited", 17.0)
        assert "rate limited" not in str(limited.value)


def test_resolve_without_an_account_id_fails() -> None:
    spec = parse_spec({**json.loads(json.dumps(load_spec(PROVIDERS / "notion.toml").model_dump(by_alias=True))),
                       "accountIdPath": "nope"})
    generated = generate(spec)

    async def go() -> Any:
        slot = generated.slot.model_validate({"access_token": SecretStr("x")})
        from engine import ClientContext

        async with generated.client().build(ClientContext("i", slot, None, None)) as client:
            return await generated.connection().resolve(ConnectionContext("i", slot, client, None, None))

    with respx.mock as mock:
        mock.get("https://api.notion.com/v1/users/me").mock(return_value=answer("users_me"))
        with pytest.raises(ProviderError):
            asyncio.run(go())
