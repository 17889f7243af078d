"""The Slack definition, against Slack's documented Web API and Events API shapes replayed by respx (no network).

Events API signatures come from Slack's own signer (``slack_sdk.signature.SignatureVerifier``) and are checked
with the engine's verifier for the webhook's declared scheme.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
import respx
from generated.ingest_types import DirectoryAccountInput
from pydantic import SecretStr, ValidationError
from slack_sdk.signature import SignatureVerifier

from definitions.slack import definition
from definitions.slack.client import SlackClient
from definitions.slack.config import SlackAppConfig
from definitions.slack.connections import SlackBotTokenConnection, SlackOAuthConnection
from definitions.slack.operations import HealthCheck, PostMessage, SlackMessage, UserSync
from definitions.slack.slots import SlackBotToken, SlackOAuthToken
from definitions.slack.webhook import SlackEventsWebhook, TeamJoin, UserChange
from engine import (
    ClientContext,
    ConnectionContext,
    EventContext,
    NoConfig,
    OAuth2,
    OperationContext,
    OperatorSecret,
    Payload,
    ProviderError,
    SlackSignature,
    WebhookRequest,
)
from engine.catalog.registry import Registry
from engine.kit.providerkit import PaginationLoop, RateLimited
from engine.webhooks.verification import InvalidSignature, StaleDelivery, lower_headers, verify
from ingest.models.directory_account import DirectoryAccount
from support.cassette_fixtures import response_fixture

API = "https://slack.com/api"
FIXTURES = Path(__file__).parents[1] / "fixtures" / "slack"
TOKEN = "xoxb-17653672481-19874698323-pdFZKVeTuE8sk7oOcBrzbqgy"
SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
CONFIG = SlackAppConfig(client_id="1234.5678", client_secret=SecretStr("shh"),
                        signing_secret=SecretStr(SIGNING_SECRET))


# -- helpers -------------------------------------------------------------------------------------------------


def recorded(name: str) -> dict[str, Any]:
    return response_fixture(FIXTURES, name)  # responses are cassettes, webhook deliveries JSON


def reply(name: str) -> Callable[[httpx.Request], httpx.Response]:
    rec = recorded(name)

    def respond(request: httpx.Request) -> httpx.Response:
        return httpx.Response(rec["status"], headers=rec["headers"], json=rec["body"])

    return respond


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def collect(items: AsyncIterator[Any]) -> list[Any]:
    return [item async for item in items]


def client(credential: Any = None) -> httpx.AsyncClient:
    credential = credential or SlackOAuthToken(access_token=SecretStr(TOKEN), token_type="bot")
    return SlackClient().build(ClientContext("int_1", credential, CONFIG, None))


def op_context(http: httpx.AsyncClient, config: Any = None) -> OperationContext:
    return OperationContext(integration_id="int_1", tenant_id="tenant_1", config=config or NoConfig(),
                            client=http, operator_config=CONFIG, user_input=None)


def conn_context(http: httpx.AsyncClient, credential: Any) -> ConnectionContext:
    return ConnectionContext(integration_id="int_1", credential=credential, client=http,
                             operator_config=CONFIG, user_input=None)


def form(request: httpx.Request) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(request.content.decode()).items()}


async def sync_users() -> list[Payload]:
    async with client() as http:
        return await collect(UserSync().ingest(op_context(http)))


# -- registration --------------------------------------------------------------------------------------------


def test_definition_registers() -> None:
    registry = Registry()
    registry.register(definition)
    assert registry.get("slack") is definition
    assert registry.mapping("slack", "directory_account", "user") is not None
    assert definition.manual_slots() == (SlackBotToken,)
    auth = SlackOAuthConnection.auth
    assert isinstance(auth, OAuth2)
    assert auth.authorize_url == "https://slack.com/oauth/v2/authorize"
    assert auth.token_url == "https://slack.com/api/oauth.v2.access"
    assert "chat:write" not in auth.scopes and auth.upgrade_scopes == ("chat:write",)
    assert UserSync.policy.reconcile and UserSync.policy.mode == "queued"
    assert PostMessage.policy.mode == "queued" and PostMessage.policy.access == "write"


# -- health check and errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize("credential", [
    SlackOAuthToken(access_token=SecretStr(TOKEN), token_type="bot"),
    SlackBotToken(bot_token=SecretStr(TOKEN)),
])
def test_health_check_sends_the_bot_token(credential: Any) -> None:
    async def scenario() -> Any:
        async with client(credential) as http:
            return await HealthCheck().run(op_context(http))

    with respx.mock(base_url=API) as api:
        route = api.post("/auth.test").mock(side_effect=reply("auth_test"))
        assert run(scenario()) == {"ok": True, "team_id": "T0G9PQBBK", "team": "Acme Corp"}
    request = route.calls.last.request
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"  # never "bot <token>"
    assert request.headers["User-Agent"].startswith("Tether")


@pytest.mark.parametrize("fixture", ["error_invalid_auth", "error_401"])
def test_refused_token_is_unauthorized_without_the_body(fixture: str) -> None:
    async def scenario() -> None:
        async with client() as http:
            await HealthCheck().run(op_context(http))

    with respx.mock(base_url=API) as api:
        api.post("/auth.test").mock(side_effect=reply(fixture))
        with pytest.raises(ProviderError) as caught:
            run(scenario())
    assert caught.value.code == "unauthorized"
    assert caught.value.provider_status == recorded(fixture)["status"]


def test_429_is_rate_limited_with_retry_after() -> None:
    with respx.mock(base_url=API) as api:
        api.post("/users.list").mock(side_effect=reply("error_429"))
        with pytest.raises(RateLimited) as caught:
            run(sync_users())
    assert caught.value.code == "rate_limited"
    assert caught.value.provider_status == 429
    assert caught.value.retry_after == 30.0


def test_ratelimited_body_is_rate_limited() -> None:
    with respx.mock(base_url=API) as api:
        api.post("/users.list").respond(200, json={"ok": False, "error": "ratelimited"})
        with pytest.raises(RateLimited):
            run(sync_users())


def test_other_errors_name_only_slacks_error_code() -> None:
    with respx.mock(base_url=API) as api:
        api.post("/users.list").respond(200, json={"ok": False, "error": "Secret <b>body</b> text", "x": "leak"})
        with pytest.raises(ProviderError) as caught:
            run(sync_users())
    assert caught.value.code == "provider_error"
    assert "body" not in str(caught.value) and "leak" not in str(caught.value)
    assert "unknown_error" in str(caught.value)


# -- user sync -----------------------------------------------------------------------------------------------


def test_user_sync_follows_the_cursor_across_pages() -> None:
    def page(request: httpx.Request) -> httpx.Response:
        cursor = form(request).get("cursor")
        return reply("users_list_page2" if cursor == "dXNlcjpVMEc5V0ZYTlo=" else "users_list_page1")(request)

    with respx.mock(base_url=API) as api:
        route = api.post("/users.list").mock(side_effect=page)
        payloads = run(sync_users())
    assert [p.data["id"] for p in payloads] == ["W012A3CDE", "W07QCRPA4", "W0DEACT1V", "U0BOTB0T1"]
    assert {(p.schema, p.variant) for p in payloads} == {("directory_account", "user")}
    assert [form(c.request) for c in route.calls] == [
        {"limit": "200"},
        {"limit": "200", "cursor": "dXNlcjpVMEc5V0ZYTlo="},
    ]


def test_user_sync_stops_when_slack_repeats_a_cursor() -> None:
    def bounded(request: httpx.Request) -> httpx.Response:
        assert route.call_count <= 3, "the loop guard did not fire"
        return reply("users_list_page1")(request)  # always hands out the same next cursor

    with respx.mock(base_url=API) as api:
        route = api.post("/users.list").mock(side_effect=bounded)
        with pytest.raises(PaginationLoop):
            run(sync_users())


# -- post message --------------------------------------------------------------------------------------------


def test_post_message_sends_typed_json() -> None:
    message = SlackMessage(channel="C123ABC456", text="Deploy finished", thread_ts="1503435956.000100")

    async def scenario() -> Any:
        async with client() as http:
            return await PostMessage().run(op_context(http, message))

    with respx.mock(base_url=API) as api:
        route = api.post("/chat.postMessage").mock(side_effect=reply("chat_post_message"))
        assert run(scenario()) == {"ok": True, "channel": "C123ABC456", "ts": "1503435956.000247"}
    request = route.calls.last.request
    assert request.headers["Content-Type"] == "application/json"
    assert json.loads(request.content) == {"channel": "C123ABC456", "text": "Deploy finished",
                                           "thread_ts": "1503435956.000100", "unfurl_links": False}


def test_post_message_config_is_validated_and_errors_are_typed() -> None:
    with pytest.raises(ValidationError):
        SlackMessage(channel="", text="hi")
    with pytest.raises(ValidationError):
        SlackMessage.model_validate({"channel": "C1", "text": "hi", "as_user": True})

    async def scenario() -> Any:
        async with client() as http:
            return await PostMessage().run(op_context(http, SlackMessage(channel="C0NOPE", text="hi")))

    with respx.mock(base_url=API) as api:
        api.post("/chat.postMessage").mock(side_effect=reply("error_channel_not_found"))
        with pytest.raises(ProviderError, match="channel_not_found") as caught:
            run(scenario())
    assert caught.value.code == "provider_error"


# -- connections ---------------------------------------------------------------------------------------------


def test_oauth_connection_resolves_the_workspace_and_revokes() -> None:
    credential = SlackOAuthToken(access_token=SecretStr(TOKEN))

    async def scenario() -> Any:
        async with client(credential) as http:
            ctx = conn_context(http, credential)
            metadata = await SlackOAuthConnection().resolve(ctx)
            await SlackOAuthConnection().revoke(ctx)
            await SlackOAuthConnection().revoke(ctx)  # already revoked: Slack says token_revoked, which is done
            return metadata

    with respx.mock(base_url=API) as api:
        api.post("/auth.test").mock(side_effect=reply("auth_test"))
        revoke = api.post("/auth.revoke").mock(side_effect=[
            reply("auth_revoke")(httpx.Request("POST", API)),
            httpx.Response(200, json={"ok": False, "error": "token_revoked"}),
        ])
        metadata = run(scenario())
    assert (metadata.account_id, metadata.account_name, metadata.workspace) == ("T0G9PQBBK", "Acme Corp", "Acme Corp")
    assert metadata.url == "https://acme-corp.slack.com/"
    assert metadata.attributes["bot_user_id"] == "U0G9QF9C6"
    assert revoke.call_count == 2
    assert revoke.calls.last.request.headers["Authorization"] == f"Bearer {TOKEN}"


def test_revoke_raises_other_failures() -> None:
    credential = SlackOAuthToken(access_token=SecretStr(TOKEN))

    async def scenario() -> None:
        async with client(credential) as http:
            await SlackOAuthConnection().revoke(conn_context(http, credential))

    with respx.mock(base_url=API) as api:
        api.post("/auth.revoke").mock(side_effect=reply("error_429"))
        with pytest.raises(RateLimited):
            run(scenario())


def test_bot_token_connection_declares_no_revocation() -> None:
    credential = SlackBotToken(bot_token=SecretStr(TOKEN))

    async def scenario() -> Any:
        async with client(credential) as http:
            return await SlackBotTokenConnection().resolve(conn_context(http, credential))

    with respx.mock(base_url=API) as api:
        api.post("/auth.test").mock(side_effect=reply("auth_test"))
        assert run(scenario()).account_id == "T0G9PQBBK"
    assert "api.slack.com/apps" in SlackBotTokenConnection.disconnect.reason


# -- mapping -------------------------------------------------------------------------------------------------


def evaluate(user: dict[str, Any]) -> dict[str, Any]:
    registry = Registry()
    registry.register(definition)
    compiled = registry.mapping("slack", "directory_account", "user")
    assert compiled is not None and compiled.map is not None and compiled.filter is None
    return compiled.map.evaluate({"envelope": {}, "variant": "user", "resource": "user", "action": "",
                                  "payload": user})


def to_model(fields: dict[str, Any]) -> DirectoryAccount:
    typed = DirectoryAccountInput.model_validate(fields)
    return DirectoryAccount.model_validate({**typed.model_dump(), "tenant_id": "tenant_1", "integration_id": "int_1",
                                            "definition_id": "slack"})


def test_mapping_turns_a_member_into_a_directory_account() -> None:
    fields = evaluate(recorded("users_list_page1")["body"]["members"][0])
    assert fields == {
        "external_id": "W012A3CDE",
        "email": "spengler@ghostbusters.example.com",
        "display_name": "Egon Spengler",
        "given_name": "Egon",
        "family_name": "Spengler",
        "username": "spengler",
        "account_type": "user",
        "status": "active",
        "is_admin": True,
        "mfa_enabled": True,
        "attributes": {"team_id": "T0G9PQBBK", "is_owner": True, "tz": "America/Los_Angeles"},
    }
    assert to_model(fields).external_id == "W012A3CDE"


def test_mapping_of_deactivated_members_and_bots() -> None:
    deactivated, bot = recorded("users_list_page2")["body"]["members"]
    fields = evaluate(deactivated)
    assert (fields["status"], fields["account_type"]) == ("deactivated", "user")
    fields = evaluate(bot)
    assert fields["account_type"] == "bot"
    assert fields["email"] is None and fields["is_admin"] is None and fields["mfa_enabled"] is None
    # Slack's "" for an unset profile field is no name (tests/definitions/test_slack_published.py).
    assert fields["family_name"] is None
    to_model(fields)


def test_mapping_of_an_event_user_marks_guests() -> None:
    fields = evaluate(recorded("event_user_change")["body"]["event"]["user"])
    assert (fields["display_name"], fields["account_type"]) == ("Glinda of the South", "guest")
    to_model(fields)


# -- Events API webhook --------------------------------------------------------------------------------------


def signed(name: str, *, timestamp: int | None = None, secret: str = SIGNING_SECRET) -> tuple[bytes, dict[str, str]]:
    """A delivery exactly as Slack sends it, signed by Slack's reference signer."""
    body = json.dumps(recorded(name)["body"]).encode()
    ts = str(int(time.time()) if timestamp is None else timestamp)
    signature = SignatureVerifier(secret).generate_signature(timestamp=ts, body=body)
    assert signature is not None
    return body, {"Content-Type": "application/json", "X-Slack-Request-Timestamp": ts,
                  "X-Slack-Signature": signature}


def declared_secret() -> str:
    """The secret the webhook's declaration points at, read from the operator config like the engine does."""
    verifier = SlackEventsWebhook.verifier
    assert isinstance(verifier, SlackSignature) and isinstance(verifier.secret, OperatorSecret)
    return getattr(CONFIG, verifier.secret.field).get_secret_value()


@pytest.mark.parametrize("name", ["event_url_verification", "event_user_change", "event_team_join"])
def test_reference_signatures_pass_the_declared_verifier(name: str) -> None:
    body, headers = signed(name)
    verify(SlackEventsWebhook.verifier, body, lower_headers(headers), declared_secret())
    assert SignatureVerifier(SIGNING_SECRET).is_valid_request(body, headers)


def test_wrong_secret_tampered_body_and_replays_are_refused() -> None:
    body, headers = signed("event_user_change", secret="not-the-signing-secret")
    with pytest.raises(InvalidSignature):
        verify(SlackEventsWebhook.verifier, body, lower_headers(headers), declared_secret())
    body, headers = signed("event_user_change")
    with pytest.raises(InvalidSignature):
        verify(SlackEventsWebhook.verifier, body + b" ", lower_headers(headers), declared_secret())
    body, headers = signed("event_user_change", timestamp=int(time.time()) - 301)
    with pytest.raises(StaleDelivery):
        verify(SlackEventsWebhook.verifier, body, lower_headers(headers), declared_secret())


def test_url_verification_handshake_echoes_the_challenge() -> None:
    webhook = SlackEventsWebhook()
    challenge = recorded("event_url_verification")["body"]
    def post(payload: Any) -> WebhookRequest:
        return WebhookRequest("POST", {}, {}, json.dumps(payload).encode(), payload)

    assert run(webhook.handshake(post(challenge))) == {"challenge": challenge["challenge"]}
    assert run(webhook.handshake(post(recorded("event_user_change")["body"]))) is None
    assert run(webhook.handshake(post(["not", "a", "dict"]))) is None


def test_event_type_and_delivery_id_locators() -> None:
    registry = Registry()
    registry.register(definition)
    event_type = registry.expression("slack", "events.event_type")
    for name, expected in [("event_user_change", "user_change"), ("event_team_join", "team_join"),
                           ("event_url_verification", "url_verification")]:
        assert event_type.evaluate({"payload": recorded(name)["body"], "headers": {}}) == expected
    assert SlackEventsWebhook.delivery_id.path == "event_id"  # type: ignore[union-attr]
    assert {e.match for e in SlackEventsWebhook.events} == {"user_change", "team_join"}


def event_context(name: str) -> EventContext:
    body = recorded(name)["body"]

    async def dispatch(operation: Any, config: dict[str, Any]) -> str:
        raise AssertionError("Slack events do not dispatch operations")

    return EventContext(integration_id="int_1", event_type=body["event"]["type"], delivery_id=body["event_id"],
                        payload=body, headers={}, dispatch=dispatch)


@pytest.mark.parametrize(("event", "name", "action"), [
    (UserChange, "event_user_change", "changed"),
    (TeamJoin, "event_team_join", "joined"),
])
def test_user_events_emit_the_user_and_route_by_team(event: Any, name: str, action: str) -> None:
    ctx = event_context(name)
    payloads = run(collect(event().handle(ctx)))
    assert payloads == [Payload(schema="directory_account", variant="user", data=ctx.payload["event"]["user"],
                                resource="user", action=action)]
    to_model(evaluate(payloads[0].data))
    assert run(SlackEventsWebhook().route(ctx.payload, {})) == {"team_id": "T0G9PQBBK"}
    assert run(SlackEventsWebhook().route({"type": "url_verification"}, {})) is None
