"""Microsoft Teams against Microsoft Graph's documented shapes, replayed by respx (no network)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from pydantic import SecretStr, ValidationError

from definitions.microsoft_teams import definition
from definitions.microsoft_teams.client import TeamsClient
from definitions.microsoft_teams.config import TeamsConfig
from definitions.microsoft_teams.connections import TeamsOAuthConnection
from definitions.microsoft_teams.operations import HealthCheck, PostChannelMessage, PostChannelMessageConfig
from definitions.microsoft_teams.slots import TeamsOAuthToken
from engine import ClientContext, ConnectionContext, NoConfig, NoRevocation, OAuth2, OperationContext, ProviderError
from engine.catalog.registry import Registry

GRAPH = "https://graph.microsoft.com"
TOKEN = "eyJ0eXAiOiJKV1QiLCJub25jZSI6ImRlbGVnYXRlZCJ9.user.sig"
TEAM = "fbe2bf47-16c8-47cf-b4a5-4b9b187c508b"
CHANNEL = "19:4a95f7d8db4c4e7fae857bcebe0623e6@thread.tacv2"
FIXTURES = Path(__file__).parents[1] / "fixtures" / "microsoft_teams"
CONFIG = TeamsConfig(client_id="11112222-3333-4444-5555-666677778888", client_secret=SecretStr("s"))
CREDENTIAL = TeamsOAuthToken(access_token=SecretStr(TOKEN), refresh_token=SecretStr("refresh"))


def recorded(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def reply(name: str) -> Callable[[httpx.Request], httpx.Response]:
    rec = recorded(name)
    return lambda request: httpx.Response(rec["status"], headers=rec["headers"], json=rec["body"])


def client() -> httpx.AsyncClient:
    return TeamsClient().build(ClientContext("int_1", CREDENTIAL, CONFIG, None))


def execute(operation: Any, config: Any = None) -> Any:
    async def scenario() -> Any:
        async with client() as http:
            ctx = OperationContext(integration_id="int_1", tenant_id="tenant_1", config=config or NoConfig(),
                                   client=http, operator_config=CONFIG, user_input=None)
            return await operation.run(ctx)

    return asyncio.run(scenario())


def message(text: str = "Deploy finished") -> PostChannelMessageConfig:
    return PostChannelMessageConfig(team_id=TEAM, channel_id=CHANNEL, text=text)


def test_definition_registers() -> None:
    registry = Registry()
    registry.register(definition)
    assert registry.get("microsoft_teams") is definition
    auth = TeamsOAuthConnection.auth
    assert isinstance(auth, OAuth2) and "ChannelMessage.Send" in auth.scopes and "offline_access" in auth.scopes
    assert isinstance(TeamsOAuthConnection.disconnect, NoRevocation)
    assert PostChannelMessage.policy.mode == "queued" and PostChannelMessage.policy.access == "write"


def test_health_check_uses_the_credential_access_token() -> None:
    with respx.mock(base_url=GRAPH) as api:
        me = api.get("/v1.0/me").mock(side_effect=reply("me"))
        assert execute(HealthCheck()) == {"ok": True, "user": "AdeleV@contoso.com"}
    assert me.calls.last.request.headers["Authorization"] == f"Bearer {TOKEN}"


def test_post_channel_message() -> None:
    with respx.mock(base_url=GRAPH) as api:
        post = api.post(f"/v1.0/teams/{TEAM}/channels/{CHANNEL}/messages").mock(side_effect=reply("message_created"))
        result = execute(PostChannelMessage(), message())
    assert result["id"] == "1616990032035"
    assert result["web_url"].startswith("https://teams.microsoft.com/l/message/")
    assert json.loads(post.calls.last.request.content) == {"body": {"contentType": "text",
                                                                    "content": "Deploy finished"}}


@pytest.mark.parametrize("fields", [
    {"team_id": "../../me"},
    {"channel_id": "19:abc@thread.tacv2/../../x"},
    {"channel_id": "19:abc@thread.tacv2?$select=x"},
    {"text": ""},
    {"extra": "field"},
])
def test_post_channel_message_config_is_typed(fields: dict[str, str]) -> None:
    with pytest.raises(ValidationError):
        PostChannelMessageConfig.model_validate({"team_id": TEAM, "channel_id": CHANNEL, "text": "hi", **fields})


def test_401_is_unauthorized_without_the_body() -> None:
    with respx.mock(base_url=GRAPH) as api:
        api.get("/v1.0/me").mock(side_effect=reply("error_401"))
        with pytest.raises(ProviderError) as caught:
            execute(HealthCheck())
    assert (caught.value.code, caught.value.provider_status) == ("unauthorized", 401)
    assert "expired" not in str(caught.value)


def test_429_is_rate_limited_with_retry_after() -> None:
    with respx.mock(base_url=GRAPH) as api:
        api.post(f"/v1.0/teams/{TEAM}/channels/{CHANNEL}/messages").mock(side_effect=reply("error_429"))
        with pytest.raises(ProviderError) as caught:
            execute(PostChannelMessage(), message())
    assert (caught.value.code, caught.value.retry_after) == ("rate_limited", 3.0)


def test_connection_resolves_the_user_and_tenant() -> None:
    async def scenario() -> Any:
        async with client() as http:
            ctx = ConnectionContext("int_1", CREDENTIAL, http, CONFIG, None)
            return await TeamsOAuthConnection().resolve(ctx)

    with respx.mock(base_url=GRAPH) as api:
        api.get("/v1.0/me").mock(side_effect=reply("me"))
        api.get("/v1.0/organization").mock(side_effect=reply("organization"))
        metadata = asyncio.run(scenario())
    assert (metadata.account_name, metadata.account_email, metadata.workspace) == (
        "Adele Vance", "AdeleV@contoso.com", "Contoso")
    assert metadata.attributes == {"tenant_id": "72f988bf-86f1-41af-91ab-2d7cd011db47"}
