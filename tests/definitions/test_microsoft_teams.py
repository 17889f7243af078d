"""Microsoft Teams against Microsoft Graph's documented shapes: posting replayed by respx, the channel message sync
against a local HTTP server answering Microsoft's published v1.0 examples."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from pydantic import SecretStr, ValidationError

from definitions.microsoft_teams import client as teams_client
from definitions.microsoft_teams import definition
from definitions.microsoft_teams.client import TeamsClient
from definitions.microsoft_teams.config import TeamsConfig
from definitions.microsoft_teams.connections import TeamsOAuthConnection
from definitions.microsoft_teams.operations import (
    ChannelMessagesSync,
    HealthCheck,
    PostChannelMessage,
    PostChannelMessageConfig,
)
from definitions.microsoft_teams.slots import TeamsOAuthToken
from engine import (
    ClientContext,
    ConnectionContext,
    NoConfig,
    NoRevocation,
    OAuth2,
    OperationContext,
    Payload,
    ProviderError,
)
from engine.catalog.registry import Registry
from engine.kit.egress import LOOPBACK_ENV
from ingest.pipeline import IngestContext, IngestPipeline
from support.cassette_fixtures import response_fixture
from support.replay import Answer, Received, ReplayServer, replay_server

GRAPH = "https://graph.microsoft.com"
TOKEN = "eyJ0eXAiOiJKV1QiLCJub25jZSI6ImRlbGVnYXRlZCJ9.user.sig"
TEAM = "fbe2bf47-16c8-47cf-b4a5-4b9b187c508b"
CHANNEL = "19:4a95f7d8db4c4e7fae857bcebe0623e6@thread.tacv2"
FIXTURES = Path(__file__).parents[1] / "fixtures" / "microsoft_teams"
CONFIG = TeamsConfig(client_id="11112222-3333-4444-5555-666677778888", client_secret=SecretStr("s"))
CREDENTIAL = TeamsOAuthToken(access_token=SecretStr(TOKEN), refresh_token=SecretStr("refresh"))


def recorded(name: str) -> dict[str, Any]:
    return response_fixture(FIXTURES, name)  # responses are cassettes, webhook deliveries JSON


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


# -- the channel message sync, against a local Graph answering Microsoft's published v1.0 examples --------------

PUBLISHED = FIXTURES / "published"
JOINED_TEAM = "172b0cce-e65d-44ce-9a49-91d9f2e8493a"  # the published joinedTeams example's team
FIRST_TOKEN = "aQdvS1VwGCSRxVmZJqykmDik_JIC44iCZpv-GLiA2VnFuE5yG-kCEBROb2iaPT_y_eMWVQtBO_ejzzyIxl00ji-tQ3HzAbW4liZAVG8"


@dataclass
class LocalGraph:
    server: ReplayServer
    #: Answers queued for a delta link request (``$deltatoken``), before the published changes page.
    delta_link_answers: list[Answer] = field(default_factory=list)

    def published(self, name: str) -> Answer:
        text = (PUBLISHED / f"{name}.json").read_text().replace("https://graph.microsoft.com", self.server.url)
        return Answer(200, json.loads(text)["body"])

    def paths(self) -> list[str]:
        return [r.path + ("?" + "&".join(sorted(r.query)) if r.query else "") for r in self.server.received]


@pytest.fixture
def graph(monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalGraph]:
    holder: list[LocalGraph] = []

    def handle(request: Received) -> Answer:
        local = holder[0]
        assert request.headers["authorization"] == f"Bearer {TOKEN}"
        if request.path == "/v1.0/me/joinedTeams":
            return local.published("joined_teams")
        if request.path == f"/v1.0/teams/{JOINED_TEAM}/channels":
            assert request.query["$select"] == ["id,displayName"]
            return local.published("channels")
        assert request.path.endswith("/messages/delta"), request.path
        if "$deltatoken" in request.query:
            return local.delta_link_answers.pop(0) if local.delta_link_answers else local.published("delta_changes")
        if "$skiptoken" in request.query:
            return local.published("delta_final")
        assert request.query == {"$top": ["50"]}
        return local.published("delta_initial")

    monkeypatch.setenv(LOOPBACK_ENV, "1")
    with replay_server(handle) as server:
        monkeypatch.setattr(teams_client, "GRAPH_URL", server.url)
        holder.append(LocalGraph(server))
        yield holder[0]


def sync(cursor: Any = None) -> tuple[list[Payload], OperationContext]:
    async def scenario() -> tuple[list[Payload], OperationContext]:
        async with client() as http:
            ctx = OperationContext(integration_id="int_1", tenant_id="tenant_1", config=NoConfig(), client=http,
                                   operator_config=CONFIG, user_input=None, cursor=cursor)
            return [p async for p in ChannelMessagesSync().ingest(ctx)], ctx

    return asyncio.run(scenario())


def mapped(payloads: list[Payload]) -> list[Any]:
    registry = Registry()
    registry.register(definition)
    ctx = IngestContext(tenant_id="tenant_1", integration_id="int_1", definition_id="microsoft_teams",
                        emits=ChannelMessagesSync.emits, origin="ChannelMessagesSync")
    outcomes = IngestPipeline(registry).dry_run(ctx, payloads)
    assert [o.status for o in outcomes] == ["mapped"] * len(outcomes), [o.reason for o in outcomes]
    return [o.object for o in outcomes]


def test_first_sync_reads_every_channel_of_every_joined_team_and_keeps_each_delta_link(graph: LocalGraph) -> None:
    payloads, ctx = sync()
    assert graph.paths() == [
        "/v1.0/me/joinedTeams",
        f"/v1.0/teams/{JOINED_TEAM}/channels?$select",
        f"/v1.0/teams/{JOINED_TEAM}/channels/id-value/messages/delta?$top",
        f"/v1.0/teams/{TEAM}/channels/{CHANNEL}/messages/delta?$skiptoken",
    ]
    assert [(p.schema, p.variant, p.resource) for p in payloads] == [("message", "channel_message", "id-value")] * 4
    rows = mapped(payloads)
    assert [r.attributes["message_id"] for r in rows] == [
        "1606515483514", "1606691795113", "1611351582080", "1611351603178"]
    [(key, link)] = ctx.next_cursor["channels"].items()
    assert key == f"{JOINED_TEAM}/id-value"
    assert link.startswith(graph.server.url) and f"$deltatoken={FIRST_TOKEN}" in link


def test_next_sync_starts_from_the_delta_link(graph: LocalGraph) -> None:
    _, first = sync()
    payloads, ctx = sync(cursor=first.next_cursor)
    assert graph.server.received[-1].query["$deltatoken"][0].startswith(FIRST_TOKEN)
    [row] = mapped(payloads)
    assert (row.attributes["message_id"], row.sent_at) == (
        "1616989510408", datetime(2021, 3, 29, 3, 45, 10, 408000, tzinfo=UTC))
    assert ctx.next_cursor["channels"][f"{JOINED_TEAM}/id-value"] != first.next_cursor["channels"][
        f"{JOINED_TEAM}/id-value"]


def test_a_429_mid_sync_defers_the_run_and_keeps_the_cursor(graph: LocalGraph) -> None:
    _, first = sync()
    graph.delta_link_answers.append(Answer(429, recorded("error_429")["body"], {"Retry-After": "3"}))
    with pytest.raises(ProviderError) as caught:
        sync(cursor=first.next_cursor)
    assert (caught.value.code, caught.value.retry_after) == ("rate_limited", 3.0)


def test_an_expired_delta_link_reads_the_channel_again(graph: LocalGraph) -> None:
    _, first = sync()
    graph.delta_link_answers.append(Answer(410, {"error": {"code": "SyncStateNotFound", "message": "expired"}}))
    payloads, ctx = sync(cursor=first.next_cursor)
    assert len(payloads) == 4 and graph.server.received[-2].query == {"$top": ["50"]}
    assert f"$deltatoken={FIRST_TOKEN}" in ctx.next_cursor["channels"][f"{JOINED_TEAM}/id-value"]


def test_a_delta_link_to_another_origin_is_refused(graph: LocalGraph) -> None:
    graph.delta_link_answers.append(Answer(200, {"value": [], "@odata.deltaLink": "https://evil.example/steal"}))
    with pytest.raises(ProviderError, match="another origin"):
        sync(cursor={"channels": {f"{JOINED_TEAM}/id-value":
                                  f"{graph.server.url}/v1.0/teams/{JOINED_TEAM}/channels/id-value/messages/delta"
                                  "?$deltatoken=x"}})


def test_the_sync_asks_for_channel_message_read_access() -> None:
    assert "ChannelMessage.Read.All" in TeamsOAuthConnection.auth.scopes  # type: ignore[union-attr]
    assert ChannelMessagesSync.policy.access == "read" and ChannelMessagesSync.emits[0].schema == "message"
