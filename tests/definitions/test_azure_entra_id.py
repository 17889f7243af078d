"""Microsoft Entra ID against Microsoft Graph's documented shapes, replayed by respx (no network)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from generated.ingest_types import INPUT_TYPES
from pydantic import SecretStr, ValidationError

from definitions.azure_entra_id import definition
from definitions.azure_entra_id.client import EntraClient
from definitions.azure_entra_id.config import EntraConfig
from definitions.azure_entra_id.connections import EntraAdminConsentConnection
from definitions.azure_entra_id.operations import DirectorySync, HealthCheck
from definitions.azure_entra_id.slots import EntraTenant
from definitions.azure_entra_id.webhook import ChangeNotifications, GraphChangeNotifications
from engine import (
    REMOVE,
    AppInstall,
    ClientContext,
    ConnectionContext,
    EventContext,
    NoConfig,
    OperationContext,
    Payload,
    ProviderError,
    Reply,
    TetherError,
    WebhookRequest,
)
from engine.catalog.registry import Registry
from engine.webhooks.verification import InvalidSignature, verify
from ingest.pipeline import IngestContext, IngestPipeline
from support.cassette_fixtures import response_fixture

GRAPH = "https://graph.microsoft.com"
TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
TOKEN_URL = f"https://login.microsoftonline.com/{TENANT}/oauth2/v2.0/token"
APP_TOKEN = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.app-only.sig"
FIXTURES = Path(__file__).parents[1] / "fixtures" / "azure_entra_id"
CONFIG = EntraConfig(client_id="11112222-3333-4444-5555-666677778888", client_secret=SecretStr("app-secret"))
USERS_DELTA_LINK = "https://graph.microsoft.com/v1.0/users/delta?$deltatoken=mS5DuRZGjVL-abreviated"


def recorded(name: str) -> dict[str, Any]:
    return response_fixture(FIXTURES, name)  # responses are cassettes, webhook deliveries JSON


def reply(name: str) -> Callable[[httpx.Request], httpx.Response]:
    rec = recorded(name)
    return lambda request: httpx.Response(rec["status"], headers=rec["headers"], json=rec["body"])


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def collect(items: AsyncIterator[Any]) -> list[Any]:
    return [item async for item in items]


def client(tenant: str = TENANT) -> httpx.AsyncClient:
    return EntraClient().build(ClientContext("int_1", EntraTenant(tenant_id=tenant), CONFIG, None))


def op_context(http: httpx.AsyncClient, cursor: Any = None) -> OperationContext:
    return OperationContext(integration_id="int_1", tenant_id="tenant_1", config=NoConfig(), client=http,
                            operator_config=CONFIG, user_input=None, cursor=cursor)


def sync(mock: respx.MockRouter, cursor: Any = None) -> tuple[list[Any], OperationContext]:
    async def scenario() -> tuple[list[Any], OperationContext]:
        async with client() as http:
            ctx = op_context(http, cursor)
            return await collect(DirectorySync().ingest(ctx)), ctx

    return run(scenario())


# -- registration --------------------------------------------------------------------------------------------


def test_definition_registers() -> None:
    registry = Registry()
    registry.register(definition)
    for key in (("directory_account", "user"), ("directory_group", "group"), ("directory_membership", "member")):
        assert registry.mapping("azure_entra_id", *key) is not None
    auth = EntraAdminConsentConnection.auth
    assert isinstance(auth, AppInstall) and auth.callback_param == "tenant"
    assert auth.install_url.startswith("https://login.microsoftonline.com/organizations/v2.0/adminconsent?")
    assert "Enterprise applications" in EntraAdminConsentConnection.disconnect.reason
    assert definition.manual_slots() == ()


def test_tenant_id_must_be_a_guid() -> None:
    with pytest.raises(ValidationError):
        EntraTenant(tenant_id="evil.example/x?")


# -- app-only token and health check -------------------------------------------------------------------------


def test_health_check_mints_an_app_only_token_for_the_tenant() -> None:
    async def scenario() -> Any:
        async with client() as http:
            first = await HealthCheck().run(op_context(http))
            await HealthCheck().run(op_context(http))
            return first

    with respx.mock() as mock:
        token = mock.post(TOKEN_URL).mock(side_effect=reply("token"))
        org = mock.get(f"{GRAPH}/v1.0/organization").mock(side_effect=reply("organization"))
        assert run(scenario()) == {"ok": True, "tenant_id": TENANT, "name": "Contoso"}
    assert token.call_count == 1  # reused until shortly before it expires
    form = dict(httpx.QueryParams(token.calls.last.request.content.decode()))
    assert form == {"client_id": CONFIG.client_id, "client_secret": "app-secret",
                    "scope": "https://graph.microsoft.com/.default", "grant_type": "client_credentials"}
    assert org.calls.last.request.headers["Authorization"] == f"Bearer {APP_TOKEN}"


def test_refused_token_request_is_unauthorized() -> None:
    async def scenario() -> Any:
        async with client() as http:
            return await HealthCheck().run(op_context(http))

    with respx.mock() as mock:
        mock.post(TOKEN_URL).mock(side_effect=reply("token_error_invalid_client"))
        with pytest.raises(ProviderError) as caught:
            run(scenario())
    assert caught.value.code == "unauthorized" and "AADSTS" not in str(caught.value)


def test_401_is_unauthorized_without_the_body() -> None:
    async def scenario() -> Any:
        async with client() as http:
            return await HealthCheck().run(op_context(http))

    with respx.mock() as mock:
        mock.post(TOKEN_URL).mock(side_effect=reply("token"))
        mock.get(f"{GRAPH}/v1.0/organization").mock(side_effect=reply("error_401"))
        with pytest.raises(ProviderError) as caught:
            run(scenario())
    assert (caught.value.code, caught.value.provider_status) == ("unauthorized", 401)
    assert "expired" not in str(caught.value)


def test_429_is_rate_limited_with_retry_after() -> None:
    with respx.mock() as mock:
        mock.post(TOKEN_URL).mock(side_effect=reply("token"))
        mock.get(f"{GRAPH}/v1.0/users/delta").mock(side_effect=reply("error_429"))
        with pytest.raises(ProviderError) as caught:
            sync(mock)
    assert (caught.value.code, caught.value.retry_after) == ("rate_limited", 7.0)
    assert "Contoso" not in str(caught.value)


# -- delta sync ----------------------------------------------------------------------------------------------


def mock_full_round(mock: respx.MockRouter) -> respx.Route:
    def users(request: httpx.Request) -> httpx.Response:
        return reply("users_delta_page2" if "$skiptoken" in request.url.params else "users_delta_page1")(request)

    mock.post(TOKEN_URL).mock(side_effect=reply("token"))
    mock.get(f"{GRAPH}/v1.0/groups/delta").mock(side_effect=reply("groups_delta"))
    return mock.get(f"{GRAPH}/v1.0/users/delta").mock(side_effect=users)


def test_first_sync_follows_next_links_and_saves_the_delta_links_as_cursor() -> None:
    with respx.mock() as mock:
        users = mock_full_round(mock)
        payloads, ctx = sync(mock)
    assert users.call_count == 2
    assert "$skiptoken" in users.calls.last.request.url.params
    assert "$select" in users.calls[0].request.url.params
    assert [(p.schema, p.variant) for p in payloads] == [("directory_account", "user")] * 3 + [
        ("directory_group", "group"), ("directory_membership", "member"),
        ("directory_group", "group"), ("directory_membership", "member")]
    assert payloads[4].data == {"group_id": "02bd9fd6-8f93-4758-87c3-1fb73740a315",
                                "member": {"@odata.type": "#microsoft.graph.user",
                                           "id": "87d349ed-44d7-43e1-9a83-5f2406dee5bd"}}
    assert ctx.next_cursor == {"users": USERS_DELTA_LINK,
                               "groups": recorded("groups_delta")["body"]["@odata.deltaLink"]}


def test_next_sync_starts_from_the_cursor_and_passes_removals_on() -> None:
    cursor = {"users": USERS_DELTA_LINK, "groups": recorded("groups_delta")["body"]["@odata.deltaLink"]}
    with respx.mock() as mock:
        mock.post(TOKEN_URL).mock(side_effect=reply("token"))
        users = mock.get(f"{GRAPH}/v1.0/users/delta").mock(side_effect=reply("users_delta_changes"))
        mock.get(f"{GRAPH}/v1.0/groups/delta").mock(side_effect=reply("groups_delta_changes"))
        payloads, ctx = sync(mock, cursor)
    assert users.calls.last.request.url.params["$deltatoken"] == "mS5DuRZGjVL-abreviated"
    assert [(p.schema, p.action) for p in payloads] == [("directory_account", REMOVE),
                                                       ("directory_membership", REMOVE)]
    assert ctx.next_cursor["users"].endswith("next-round")


def test_an_expired_delta_link_starts_a_full_round() -> None:
    with respx.mock() as mock:
        mock.post(TOKEN_URL).mock(side_effect=reply("token"))

        def users(request: httpx.Request) -> httpx.Response:
            if "$deltatoken" in request.url.params:
                return reply("error_410_sync_state")(request)
            return reply("users_delta_page2" if "$skiptoken" in request.url.params else "users_delta_page1")(request)

        mock.get(f"{GRAPH}/v1.0/users/delta").mock(side_effect=users)
        mock.get(f"{GRAPH}/v1.0/groups/delta").mock(side_effect=reply("groups_delta"))
        payloads, ctx = sync(mock, {"users": USERS_DELTA_LINK})
    assert sum(p.schema == "directory_account" for p in payloads) == 3
    assert ctx.next_cursor["users"] == USERS_DELTA_LINK


def test_a_next_link_to_another_origin_is_refused() -> None:
    with respx.mock() as mock:
        mock.post(TOKEN_URL).mock(side_effect=reply("token"))
        page = recorded("users_delta_page1")
        page["body"]["@odata.nextLink"] = "https://evil.example/v1.0/users/delta"
        mock.get(f"{GRAPH}/v1.0/users/delta").respond(200, json=page["body"])
        with pytest.raises(ProviderError, match="another origin"):
            sync(mock)


# -- connection: the tenant claim ----------------------------------------------------------------------------


def test_consent_callback_tenant_is_verified_and_resolved() -> None:
    async def scenario(tenant: str) -> Any:
        async with client(tenant) as http:
            ctx = ConnectionContext("int_1", EntraTenant(tenant_id=tenant), http, CONFIG, None)
            await EntraAdminConsentConnection().verify_install(ctx)
            return await EntraAdminConsentConnection().resolve(ctx)

    other = "00000000-0000-4000-8000-000000000000"
    with respx.mock() as mock:
        mock.post(TOKEN_URL).mock(side_effect=reply("token"))
        mock.post(f"https://login.microsoftonline.com/{other}/oauth2/v2.0/token").mock(side_effect=reply("token"))
        mock.get(f"{GRAPH}/v1.0/organization").mock(side_effect=reply("organization"))
        metadata = run(scenario(TENANT))
        with pytest.raises(ProviderError) as caught:
            run(scenario(other))
    assert (metadata.account_id, metadata.account_name, metadata.workspace) == (TENANT, "Contoso", "contoso.com")
    assert caught.value.code == "tenant_mismatch"


# -- webhook: validation handshake and clientState -----------------------------------------------------------


def test_validation_challenge_echoes_the_token_as_plain_text() -> None:
    verifier = GraphChangeNotifications.verifier

    def validation(query: dict[str, str], body: bytes = b"") -> WebhookRequest:
        return WebhookRequest("POST", {"content-type": "text/plain"}, query, body)

    answer = verifier.challenge(validation({"validationToken": "Validation: Testing client application"}))
    assert isinstance(answer, Reply) and answer.media_type.startswith("text/plain")
    assert answer.content == b"Validation: Testing client application"
    body = json.dumps(recorded("notification_users")["body"]).encode()
    assert verifier.challenge(validation({}, body)) is None
    for bad in ("x" * 2000, "", "a\x00b", "<script>\n"):
        with pytest.raises(TetherError) as caught:
            verifier.challenge(validation({"validationToken": bad}))
        assert (caught.value.code, caught.value.status) == ("invalid_handshake", 400)


def notification_context(dispatched: list[Any]) -> EventContext:
    async def dispatch(operation: Any, config: dict[str, Any]) -> str:
        dispatched.append((operation, config))
        return "run_1"

    return EventContext(integration_id="int_1", event_type="change_notifications", delivery_id=None,
                        payload=recorded("notification_users")["body"], headers={}, dispatch=dispatch)


def notification_body(**changes: Any) -> bytes:
    body = recorded("notification_users")["body"]
    body["value"] = [{**item, **changes} for item in body["value"]]
    return json.dumps(body).encode()


def test_notification_with_the_client_state_is_verified_and_dispatches_the_delta_sync() -> None:
    verify(GraphChangeNotifications.verifier, notification_body(), {}, "secretClientValue", now=0.0)
    verify(GraphChangeNotifications.verifier, notification_body(), {}, ["rotated-away", "secretClientValue"], now=0.0)
    dispatched: list[Any] = []
    assert run(collect(ChangeNotifications().handle(notification_context(dispatched)))) == []
    assert dispatched == [(DirectorySync, {})]


@pytest.mark.parametrize("secrets", [(), ("",), ("anotherValue",)])
def test_notification_without_the_right_client_state_is_refused(secrets: tuple[str, ...]) -> None:
    with pytest.raises(InvalidSignature):
        verify(GraphChangeNotifications.verifier, notification_body(), {}, secrets, now=0.0)


@pytest.mark.parametrize(
    "body",
    [notification_body(clientState=None), notification_body(clientState=["secretClientValue"]), b'{"value": []}',
     b"[]", b"not json", b"[" * 50_000 + b"]" * 50_000],
)
def test_a_batch_that_does_not_carry_the_client_state_is_refused(body: bytes) -> None:
    with pytest.raises(InvalidSignature):
        verify(GraphChangeNotifications.verifier, body, {}, "secretClientValue", now=0.0)


# -- mappings: payload in, typed object out ------------------------------------------------------------------


def evaluate(schema: str, variant: str, payload: dict[str, Any], action: str = "") -> Any:
    """The typed object, or for a removal the upsert keys the pipeline removes the row by."""
    registry = Registry()
    registry.register(definition)
    ctx = IngestContext(tenant_id="t", integration_id="i", definition_id="azure_entra_id", emits=DirectorySync.emits)
    [outcome] = IngestPipeline(registry).dry_run(ctx, [Payload(schema, payload, variant=variant, action=action)])
    assert outcome.status == "mapped", outcome.reason
    if outcome.remove:
        return outcome.keys
    assert isinstance(outcome.object, INPUT_TYPES[schema])
    return outcome.object


def test_mapping_user_to_directory_account() -> None:
    account = evaluate("directory_account", "user", recorded("users_delta_page1")["body"]["value"][0])
    assert (account.external_id, account.email, account.display_name, account.given_name, account.family_name,
            account.username, account.account_type, account.status) == (
        "87d349ed-44d7-43e1-9a83-5f2406dee5bd", "AdeleV@contoso.com", "Adele Vance", "Adele", "Vance",
        "AdeleV@contoso.com", "user", "active")
    assert account.source_created_at.isoformat() == "2022-01-10T09:00:00+00:00"
    assert account.attributes == {"job_title": "Engineer", "department": "R&D"}
    guest = evaluate("directory_account", "user", recorded("users_delta_page2")["body"]["value"][0])
    assert (guest.account_type, guest.status, guest.email) == ("guest", "disabled", "guest@fabrikam.com")
    removed = recorded("users_delta_changes")["body"]["value"][0]
    assert evaluate("directory_account", "user", removed, action=REMOVE) == (removed["id"],)


def test_mapping_group_to_directory_group() -> None:
    groups = recorded("groups_delta")["body"]["value"]
    unified = evaluate("directory_group", "group", groups[0])
    assert (unified.external_id, unified.name, unified.email, unified.group_type) == (
        "02bd9fd6-8f93-4758-87c3-1fb73740a315", "HR Taskforce", "HRTaskforce@contoso.com", "microsoft_365")
    security = evaluate("directory_group", "group", groups[1])
    assert (security.group_type, security.email, security.description) == ("security", None, None)


def test_mapping_member_to_directory_membership() -> None:
    member = {"@odata.type": "#microsoft.graph.user", "id": "87d349ed-44d7-43e1-9a83-5f2406dee5bd"}
    payload = {"group_id": "02bd9fd6-8f93-4758-87c3-1fb73740a315", "member": member}
    membership = evaluate("directory_membership", "member", payload)
    assert (membership.account_external_id, membership.group_external_id, membership.role) == (
        "87d349ed-44d7-43e1-9a83-5f2406dee5bd", "02bd9fd6-8f93-4758-87c3-1fb73740a315", "member")
    assert evaluate("directory_membership", "member", payload, action=REMOVE) == (
        "87d349ed-44d7-43e1-9a83-5f2406dee5bd", "02bd9fd6-8f93-4758-87c3-1fb73740a315")
    # A removed group arrives as its ID and "@removed" only: it still gives its key.
    gone = {"id": "02bd9fd6-8f93-4758-87c3-1fb73740a315", "@removed": {"reason": "deleted"}}
    assert evaluate("directory_group", "group", gone, action=REMOVE) == ("02bd9fd6-8f93-4758-87c3-1fb73740a315",)
