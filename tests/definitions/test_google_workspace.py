"""Google Workspace against the Admin SDK Directory API's documented shapes, replayed by respx (no network)."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from generated.ingest_types import INPUT_TYPES
from pydantic import SecretStr

from definitions.google_workspace import definition
from definitions.google_workspace.client import SCOPES, TOKEN_URL, GoogleWorkspaceClient, ServiceAccountAuth
from definitions.google_workspace.config import GoogleWorkspaceConfig, GoogleWorkspaceInput
from definitions.google_workspace.connections import GoogleServiceAccountConnection, GoogleWorkspaceOAuthConnection
from definitions.google_workspace.operations import DirectorySync, HealthCheck
from definitions.google_workspace.slots import GoogleServiceAccountKey, GoogleWorkspaceOAuthToken
from engine import ClientContext, ConnectionContext, NoConfig, OAuth2, OperationContext, Payload, ProviderError, Revoke
from engine.catalog.registry import Registry
from engine.errors import ConfigurationError
from support.cassette_fixtures import response_fixture

API = "https://admin.googleapis.com"
FIXTURES = Path(__file__).parents[1] / "fixtures" / "google_workspace"
TOKEN = "ya29.a0AfB_byC-oauth-access-token"
SA_TOKEN = "ya29.c.b0AXv0zTsa-service-account-token"
SA_EMAIL = "tether-sync@acme-project.iam.gserviceaccount.com"
CONFIG = GoogleWorkspaceConfig(client_id="123.apps.googleusercontent.com", client_secret=SecretStr("secret"))
INPUT = GoogleWorkspaceInput(customer_id="C03az79cb", admin_email="liz@example.com")


# -- helpers -------------------------------------------------------------------------------------------------


def recorded(name: str) -> dict[str, Any]:
    return response_fixture(FIXTURES, name)


def reply(name: str) -> Callable[[httpx.Request], httpx.Response]:
    rec = recorded(name)
    return lambda request: httpx.Response(rec["status"], headers=rec["headers"], json=rec["body"])


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def collect(items: AsyncIterator[Any]) -> list[Any]:
    return [item async for item in items]


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    """A throwaway key generated per test run; no real key is ever committed."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def key_json(key: rsa.RSAPrivateKey) -> str:
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    return json.dumps({"type": "service_account", "project_id": "acme-project", "private_key_id": "abc123",
                       "private_key": pem, "client_email": SA_EMAIL, "client_id": "1122334455",
                       "token_uri": "https://evil.example/token"})


def oauth_client(user_input: GoogleWorkspaceInput | None = INPUT) -> httpx.AsyncClient:
    credential = GoogleWorkspaceOAuthToken(access_token=SecretStr(TOKEN), refresh_token=SecretStr("1//refresh"))
    return GoogleWorkspaceClient().build(ClientContext("int_1", credential, CONFIG, user_input))


def sa_client(key: rsa.RSAPrivateKey, user_input: GoogleWorkspaceInput | None = INPUT) -> httpx.AsyncClient:
    credential = GoogleServiceAccountKey(key_json=SecretStr(key_json(key)))
    return GoogleWorkspaceClient().build(ClientContext("int_1", credential, CONFIG, user_input))


def op_context(client: httpx.AsyncClient, user_input: GoogleWorkspaceInput | None = INPUT) -> OperationContext:
    return OperationContext(integration_id="int_1", tenant_id="tenant_1", config=NoConfig(), client=client,
                            operator_config=CONFIG, user_input=user_input)


def mock_directory(api: respx.Router) -> dict[str, respx.Route]:
    def users(request: httpx.Request) -> httpx.Response:
        token = request.url.params.get("pageToken")
        return reply("users_page2" if token == "Q0FFU0lLZ0FCQUJBUVFC" else "users_page1")(request)

    def groups(request: httpx.Request) -> httpx.Response:
        token = request.url.params.get("pageToken")
        return reply("groups_page2" if token == "R1JPVVBTX1BBR0VfMg" else "groups_page1")(request)

    return {
        "users": api.get("/admin/directory/v1/users").mock(side_effect=users),
        "groups": api.get("/admin/directory/v1/groups").mock(side_effect=groups),
        "writers": api.get("/admin/directory/v1/groups/03x8tuzt3jkd0ab/members").mock(
            side_effect=reply("members_writers")),
        "pages": api.get("/admin/directory/v1/groups/01baon6m1l4eozs/members").mock(
            side_effect=reply("members_pages")),
    }


def b64decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


# -- registration --------------------------------------------------------------------------------------------


def test_definition_registers() -> None:
    registry = Registry()
    registry.register(definition)
    for variant in (("directory_account", "user"), ("directory_group", "group"), ("directory_membership", "member")):
        assert registry.mapping("google_workspace", *variant) is not None
    assert definition.manual_slots() == (GoogleServiceAccountKey,)
    auth = GoogleWorkspaceOAuthConnection.auth
    assert isinstance(auth, OAuth2)
    assert dict(auth.extra_authorize_params) == {"access_type": "offline", "prompt": "consent"}
    assert auth.revoke_url == "https://oauth2.googleapis.com/revoke"
    assert GoogleWorkspaceOAuthConnection.disconnect == Revoke(GoogleWorkspaceOAuthToken)
    assert "Domain-wide delegation" in GoogleServiceAccountConnection.disconnect.reason


# -- health check --------------------------------------------------------------------------------------------


def test_health_check_with_the_oauth_token() -> None:
    async def scenario() -> Any:
        async with oauth_client() as client:
            return await HealthCheck().run(op_context(client))

    with respx.mock(base_url=API) as api:
        users = api.get("/admin/directory/v1/users").mock(side_effect=reply("users_health"))
        assert run(scenario()) == {"ok": True, "customer": "C03az79cb", "users_visible": True}
    request = users.calls.last.request
    assert request.url.params["customer"] == "C03az79cb" and request.url.params["maxResults"] == "1"
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"


def test_health_check_uses_the_domain_when_there_is_no_customer_id() -> None:
    user_input = GoogleWorkspaceInput(domain="example.com")

    async def scenario() -> Any:
        async with oauth_client(user_input) as client:
            return await HealthCheck().run(op_context(client, user_input))

    with respx.mock(base_url=API) as api:
        users = api.get("/admin/directory/v1/users").mock(side_effect=reply("users_health"))
        assert run(scenario())["domain"] == "example.com"
    assert "customer" not in users.calls.last.request.url.params


@pytest.mark.parametrize("user_input", [None, GoogleWorkspaceInput()])
def test_missing_customer_id_is_unhealthy_with_a_reason(user_input: GoogleWorkspaceInput | None) -> None:
    async def scenario() -> Any:
        async with oauth_client(user_input) as client:
            return await HealthCheck().run(op_context(client, user_input))

    with respx.mock(base_url=API) as api:  # any request would be unmatched and fail the test
        with pytest.raises(ProviderError) as caught:
            run(scenario())
        assert not api.calls
    assert caught.value.code == "customer_id_missing"
    assert "customer ID" in caught.value.message


# -- directory sync and pagination ---------------------------------------------------------------------------


def test_directory_sync_follows_page_tokens() -> None:
    async def scenario() -> list[Payload]:
        async with oauth_client() as client:
            return await collect(DirectorySync().ingest(op_context(client)))

    with respx.mock(base_url=API) as api:
        routes = mock_directory(api)
        payloads = run(scenario())
    kinds = [(p.schema, p.variant) for p in payloads]
    assert kinds == [("directory_account", "user")] * 3 + [("directory_group", "group")] * 2 + [
        ("directory_membership", "member")] * 3
    assert [p.data["primaryEmail"] for p in payloads[:3]] == [
        "liz@example.com", "jack@example.com", "kenneth@example.com"]
    assert [c.request.url.params.get("pageToken") for c in routes["users"].calls] == [None, "Q0FFU0lLZ0FCQUJBUVFC"]
    assert [c.request.url.params.get("pageToken") for c in routes["groups"].calls] == [None, "R1JPVVBTX1BBR0VfMg"]
    assert all(c.request.url.params["customer"] == "C03az79cb" for c in routes["users"].calls)
    assert payloads[5].data["group"] == {"id": "03x8tuzt3jkd0ab", "email": "writers@example.com"}
    assert routes["pages"].call_count == 1  # a group without members is an empty page, not an error


def test_pagination_loop_guard() -> None:
    async def scenario() -> list[Payload]:
        async with oauth_client() as client:
            return await collect(DirectorySync().ingest(op_context(client)))

    with respx.mock(base_url=API) as api:
        users = api.get("/admin/directory/v1/users").mock(side_effect=reply("users_page1"))
        with pytest.raises(ProviderError, match="loops back"):
            run(scenario())
    assert users.call_count == 2  # page 1, then the page of its token, which names the same token again


# -- provider errors -----------------------------------------------------------------------------------------


def test_401_is_unauthorized_without_the_body() -> None:
    async def scenario() -> Any:
        async with oauth_client() as client:
            return await HealthCheck().run(op_context(client))

    with respx.mock(base_url=API) as api:
        api.get("/admin/directory/v1/users").mock(side_effect=reply("error_401"))
        with pytest.raises(ProviderError) as caught:
            run(scenario())
    assert (caught.value.code, caught.value.provider_status) == ("unauthorized", 401)
    assert "invalid authentication" not in str(caught.value)


@pytest.mark.parametrize(("fixture", "status", "retry_after"),
                         [("error_429", 429, 30.0), ("error_403_user_rate_limit", 403, 60.0)])
def test_rate_limits_are_rate_limited_with_retry_after(fixture: str, status: int, retry_after: float) -> None:
    async def scenario() -> Any:
        async with oauth_client() as client:
            return await collect(DirectorySync().ingest(op_context(client)))

    with respx.mock(base_url=API) as api:
        api.get("/admin/directory/v1/users").mock(side_effect=reply(fixture))
        with pytest.raises(ProviderError) as caught:
            run(scenario())
    assert (caught.value.code, caught.value.provider_status, caught.value.retry_after) == (
        "rate_limited", status, retry_after)
    assert "Quota" not in str(caught.value) and "User Rate" not in str(caught.value)


def test_403_forbidden_is_a_plain_provider_error() -> None:
    async def scenario() -> Any:
        async with oauth_client() as client:
            return await HealthCheck().run(op_context(client))

    with respx.mock(base_url=API) as api:
        api.get("/admin/directory/v1/users").mock(side_effect=reply("error_403_forbidden"))
        with pytest.raises(ProviderError) as caught:
            run(scenario())
    assert caught.value.code == "provider_error" and "Not Authorized" not in str(caught.value)


# -- service account: JWT bearer assertion -------------------------------------------------------------------


def test_service_account_assertion_is_rs256_with_delegation_claims(rsa_key: rsa.RSAPrivateKey) -> None:
    async def scenario() -> Any:
        async with sa_client(rsa_key) as client:
            assert isinstance(client.auth, ServiceAccountAuth)
            client.auth.clock = lambda: 1_714_600_000.0
            await HealthCheck().run(op_context(client))
            await HealthCheck().run(op_context(client))  # the minted token is reused

    with respx.mock(assert_all_called=True) as mock:
        token = mock.post(TOKEN_URL).mock(side_effect=reply("token_service_account"))
        users = mock.get(f"{API}/admin/directory/v1/users").mock(side_effect=reply("users_health"))
        run(scenario())
    assert token.call_count == 1
    assert users.calls.last.request.headers["Authorization"] == f"Bearer {SA_TOKEN}"
    form = dict(httpx.QueryParams(token.calls.last.request.content.decode()))
    assert form["grant_type"] == "urn:ietf:params:oauth:grant-type:jwt-bearer"
    header, claims, signature = form["assertion"].split(".")
    assert json.loads(b64decode(header)) == {"alg": "RS256", "typ": "JWT"}
    # Raises InvalidSignature unless the key from the pasted JSON signed exactly these bytes.
    rsa_key.public_key().verify(b64decode(signature), f"{header}.{claims}".encode(), padding.PKCS1v15(),
                                hashes.SHA256())
    assert json.loads(b64decode(claims)) == {
        "iss": SA_EMAIL, "sub": "liz@example.com", "scope": " ".join(SCOPES), "aud": TOKEN_URL,
        "iat": 1_714_600_000, "exp": 1_714_603_600}


def test_service_account_refused_assertion_is_unauthorized(rsa_key: rsa.RSAPrivateKey) -> None:
    async def scenario() -> Any:
        async with sa_client(rsa_key) as client:
            await HealthCheck().run(op_context(client))

    with respx.mock() as mock:
        mock.post(TOKEN_URL).mock(side_effect=reply("token_error_unauthorized_client"))
        with pytest.raises(ProviderError) as caught:
            run(scenario())
    assert caught.value.code == "unauthorized" and "not authorized" not in str(caught.value)


def test_service_account_without_admin_email_fails_before_any_request(rsa_key: rsa.RSAPrivateKey) -> None:
    user_input = GoogleWorkspaceInput(customer_id="C03az79cb")

    async def scenario() -> Any:
        async with sa_client(rsa_key, user_input) as client:
            await HealthCheck().run(op_context(client, user_input))

    with respx.mock() as mock:
        with pytest.raises(ProviderError) as caught:
            run(scenario())
        assert not mock.calls
    assert caught.value.code == "admin_email_missing"


@pytest.mark.parametrize("text", ["not json", '{"type": "authorized_user"}', '{"type": "service_account"}'])
def test_malformed_key_is_a_configuration_error(text: str) -> None:
    credential = GoogleServiceAccountKey(key_json=SecretStr(text))
    with pytest.raises(ConfigurationError):
        GoogleWorkspaceClient().build(ClientContext("int_1", credential, CONFIG, INPUT))


# -- connections ---------------------------------------------------------------------------------------------


def test_connections_resolve_the_customer() -> None:
    credential = GoogleWorkspaceOAuthToken(access_token=SecretStr(TOKEN))

    async def scenario() -> Any:
        async with oauth_client() as client:
            ctx = ConnectionContext("int_1", credential, client, CONFIG, INPUT)
            return await GoogleWorkspaceOAuthConnection().resolve(ctx)

    with respx.mock(base_url=API) as api:
        api.get("/admin/directory/v1/customers/C03az79cb").mock(side_effect=reply("customer"))
        metadata = run(scenario())
    assert (metadata.account_id, metadata.account_name, metadata.workspace) == (
        "C03az79cb", "TGS with Tracy Jordan", "example.com")


# -- mappings: payload in, typed object out ------------------------------------------------------------------


def evaluate(schema: str, variant: str, payload: dict[str, Any]) -> tuple[bool, Any]:
    registry = Registry()
    registry.register(definition)
    compiled = registry.mapping("google_workspace", schema, variant)
    assert compiled is not None and compiled.map is not None
    activation = {"envelope": {}, "variant": variant, "resource": "", "action": "", "payload": payload}
    keep = compiled.filter.evaluate(activation) if compiled.filter is not None else True
    if not keep:
        return False, None
    return True, INPUT_TYPES[schema].model_validate(compiled.map.evaluate(activation))


def test_mapping_user_to_directory_account() -> None:
    _, account = evaluate("directory_account", "user", recorded("users_page1")["body"]["users"][0])
    assert account.model_dump(exclude_none=True) == {
        "external_id": "103456789012345678901", "email": "liz@example.com", "display_name": "Liz Lemon",
        "given_name": "Liz", "family_name": "Lemon", "username": "liz@example.com", "account_type": "user",
        "status": "active", "is_admin": True, "mfa_enabled": True,
        "last_login_at": account.last_login_at, "source_created_at": account.source_created_at,
        "attributes": {"org_unit_path": "/", "customer_id": "C03az79cb", "is_delegated_admin": False}}
    assert account.last_login_at.isoformat() == "2024-05-01T08:12:44+00:00"


def test_mapping_suspended_user_who_never_logged_in() -> None:
    _, account = evaluate("directory_account", "user", recorded("users_page2")["body"]["users"][0])
    assert (account.status, account.last_login_at, account.mfa_enabled) == ("suspended", None, False)


def test_mapping_group_to_directory_group() -> None:
    _, group = evaluate("directory_group", "group", recorded("groups_page1")["body"]["groups"][0])
    assert (group.external_id, group.name, group.email, group.member_count, group.description) == (
        "03x8tuzt3jkd0ab", "Writers", "writers@example.com", 3, "The writers' room")
    _, empty = evaluate("directory_group", "group", recorded("groups_page2")["body"]["groups"][0])
    assert empty.description is None


def test_mapping_member_to_directory_membership_keeps_user_members_only() -> None:
    members = recorded("members_writers")["body"]["members"]
    group = {"id": "03x8tuzt3jkd0ab", "email": "writers@example.com"}
    keep, membership = evaluate("directory_membership", "member", {"group": group, "member": members[1]})
    assert keep is True
    assert (membership.account_external_id, membership.group_external_id, membership.role) == (
        "103456789012345678902", "03x8tuzt3jkd0ab", "manager")
    assert evaluate("directory_membership", "member", {"group": group, "member": members[2]})[0] is False
