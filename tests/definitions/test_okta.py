"""The Okta definition, against Okta's documented management API shapes replayed by respx (no network)."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
import respx
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from generated.ingest_types import DirectoryAccountInput, DirectoryGroupInput, DirectoryMembershipInput
from pydantic import SecretStr, ValidationError

from definitions.okta import definition
from definitions.okta.client import OktaClient, ServiceAppAuth
from definitions.okta.config import OktaSettings
from definitions.okta.connections import OktaApiTokenConnection, OktaServiceAppConnection
from definitions.okta.operations import DirectorySync, HealthCheck
from definitions.okta.slots import OktaApiToken, OktaServiceApp
from definitions.okta.snapshot import MembershipSnapshot, memberships_to_remove
from definitions.okta.webhook import EventHookDelivery, OktaEventHook
from engine import (
    ClientContext,
    ConnectionContext,
    EventContext,
    NoConfig,
    OperationContext,
    ProviderError,
    SharedSecretHeader,
    WebhookRequest,
)
from engine.catalog.registry import Registry
from engine.errors import EgressRefused
from engine.kit.providerkit import RateLimited
from engine.webhooks.verification import InvalidSignature, lower_headers, verify
from ingest.models.directory_account import DirectoryAccount
from ingest.models.directory_group import DirectoryGroup
from ingest.models.directory_membership import DirectoryMembership

ORG = "https://acme.okta.com"
FIXTURES = Path(__file__).parents[1] / "fixtures" / "okta"
API_TOKEN = "00QCjAl4MlV-WPXM-ABCDEFGHIJKLMNOPQRSTUVWXYZ"
SETTINGS = OktaSettings(org_url=ORG)
ENGINEERING, EVERYONE = "00g1emaKYZTWRYYRRTSK", "00g1emaKYZTWRYYRRTSL"
ISAAC, DANA, FOX = "00ub0oNGTSWTBKOLGLNR", "00ub0oNGTSWTBKOCNDJI", "00ub0oNGTSWTBKOMSUFE"


# -- helpers -------------------------------------------------------------------------------------------------


def recorded(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def reply(name: str, **headers: str) -> Callable[[httpx.Request], httpx.Response]:
    rec = recorded(name)

    def respond(request: httpx.Request) -> httpx.Response:
        return httpx.Response(rec["status"], headers={**rec["headers"], **headers}, json=rec["body"])

    return respond


def by_after(first: str, second: str) -> Callable[[httpx.Request], httpx.Response]:
    """Page 1 without an ``after`` cursor, page 2 with the one page 1's next link carries."""
    return lambda request: reply(second if "after" in request.url.params else first)(request)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def collect(items: AsyncIterator[Any]) -> list[Any]:
    return [item async for item in items]


def client(credential: Any = None, settings: OktaSettings = SETTINGS) -> httpx.AsyncClient:
    credential = credential or OktaApiToken(api_token=SecretStr(API_TOKEN))
    return OktaClient().build(ClientContext("int_1", credential, None, settings))


def op_context(http: httpx.AsyncClient, run_id: str | None = "run_2") -> OperationContext:
    return OperationContext(integration_id="int_1", tenant_id="tenant_1", config=NoConfig(), client=http,
                            operator_config=None, user_input=SETTINGS, run_id=run_id)


def conn_context(http: httpx.AsyncClient, credential: Any) -> ConnectionContext:
    return ConnectionContext(integration_id="int_1", credential=credential, client=http, operator_config=None,
                             user_input=SETTINGS)


async def health(credential: Any = None) -> Any:
    async with client(credential) as http:
        return await HealthCheck().run(op_context(http))


def mock_directory(api: respx.Router) -> dict[str, respx.Route]:
    return {
        "users": api.get("/api/v1/users").mock(side_effect=by_after("users_page1", "users_page2")),
        "groups": api.get("/api/v1/groups").mock(side_effect=by_after("groups_page1", "groups_page2")),
        "engineering": api.get(f"/api/v1/groups/{ENGINEERING}/users").mock(
            side_effect=reply("group_engineering_users")),
        "everyone": api.get(f"/api/v1/groups/{EVERYONE}/users").mock(
            side_effect=by_after("group_everyone_users_page1", "group_everyone_users_page2")),
    }


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def service_app(key: rsa.RSAPrivateKey) -> OktaServiceApp:
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    return OktaServiceApp(client_id="0oa1svcapp0000000001", private_key=SecretStr(pem), key_id="kid-1")


def b64decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


# -- registration and the org URL ----------------------------------------------------------------------------


def test_definition_registers() -> None:
    registry = Registry()
    registry.register(definition)
    assert registry.get("okta") is definition
    for key in [("directory_account", "user"), ("directory_group", "group"), ("directory_membership", "member")]:
        assert registry.mapping("okta", *key) is not None
    assert set(definition.manual_slots()) == {OktaApiToken, OktaServiceApp}
    assert DirectorySync.policy.reconcile and DirectorySync.policy.mode == "queued"


@pytest.mark.parametrize(("given", "stored"), [
    ("https://acme.okta.com", ORG), ("https://ACME.okta.com/", ORG), (" https://login.acme.example:8443 ",
                                                                      "https://login.acme.example:8443"),
])
def test_org_url_is_stored_as_an_https_origin(given: str, stored: str) -> None:
    assert OktaSettings(org_url=given).org_url == stored


@pytest.mark.parametrize("bad", [
    "http://acme.okta.com", "acme.okta.com", "https://acme.okta.com/api/v1", "https://user:pw@acme.okta.com",
    "https://localhost", "https://10.0.0.5", "https://[::1]", "https://169.254.169.254", "https://intranet",
    "https://acme.okta.com?x=1",
])
def test_org_url_refuses_anything_but_a_public_https_origin(bad: str) -> None:
    with pytest.raises(ValidationError):
        OktaSettings(org_url=bad)


@pytest.mark.parametrize("bad", [
    # Every spelling of 127.0.0.1 a URL parser or inet_aton accepts (httpx raised InvalidURL on some: a 500).
    "https://0177.0.0.1", "https://0x7f.0.0.1", "https://2130706433", "https://127.1", "https://017700000001",
    "https://127.0.0.1.", "https://1.2.3.4.5", "https://8.8.8.8",
    # Non-ASCII digits and letters that look like an address or a name.
    "https://\u2460\u2461\u2466.0.0.1", "https://\u0661\u0662\u0667.0.0.1", "https://\uff41\uff43\uff4d\uff45.okta.com",
    "https://\u00b9\u00b2\u2077.0.0.1", "https://acme\u200b.okta.com",
    # Hosts that are not DNS names, and ports that are not ports.
    "https://xn--zz.okta.com", "https://a..okta.com", "https://-acme.okta.com", "https://acme_1.okta.com",
    "https://exa mple.com", "https://acme.okta.com\x00", "https://a.localhost", "https://acme.okta.com:99999",
    "https://acme.okta.com:0",
])
def test_org_url_refuses_numeric_and_unparsable_hosts(bad: str) -> None:
    with pytest.raises(ValidationError) as caught:
        OktaSettings(org_url=bad)
    [error] = caught.value.errors()
    assert error["type"] == "value_error"  # a form error (422 invalid_input), never httpx.InvalidURL


@pytest.mark.parametrize(("given", "stored"), [
    ("https://acme.okta.com.", ORG),
    ("https://ACME\u3002okta\u3002com", ORG),  # ideographic full stops, as httpx reads them
    ("https://b\u00fccher.example", "https://xn--bcher-kva.example"),  # stored as it is sent: the A-label
    ("https://acme.okta.com:443/", ORG),
])
def test_org_url_is_stored_as_the_host_httpx_sends(given: str, stored: str) -> None:
    assert OktaSettings(org_url=given).org_url == stored


@pytest.mark.parametrize("host", ["0177.0.0.1", "\u2460\u2461\u2467.0.0.1", "0x7f.0.0.1", "2130706433", "xn--zz.com"])
def test_a_stored_org_url_httpx_cannot_parse_is_refused_not_a_crash(host: str) -> None:
    """A URL stored before the form check was strict reaches the guard: refused (502), not InvalidURL (500)."""
    stored = OktaSettings.model_construct(org_url=f"https://{host}")
    with pytest.raises(EgressRefused):
        run(HealthCheck().run(op_context(client(settings=stored))))


def test_egress_guard_refuses_a_private_org_host_at_request_time() -> None:
    """The form check is a courtesy; the guard is what protects (a name may resolve to a private address)."""
    # No respx here: it would replace the transport's network backend, which is where the guard checks addresses.
    for host in ("10.1.2.3", "169.254.169.254", "127.0.0.1"):
        private = OktaSettings.model_construct(org_url=f"https://{host}")
        with pytest.raises(EgressRefused):
            run(HealthCheck().run(op_context(client(settings=private))))


# -- health check, errors ------------------------------------------------------------------------------------


def test_health_check_sends_the_ssws_token() -> None:
    with respx.mock(base_url=ORG) as api:
        route = api.get("/api/v1/users").mock(side_effect=reply("users_page2"))
        assert run(health()) == {"ok": True, "users_visible": True}
    request = route.calls.last.request
    assert request.headers["Authorization"] == f"SSWS {API_TOKEN}"
    assert request.url.params["limit"] == "1"
    assert request.headers["Accept"] == "application/json"


def test_401_is_unauthorized_without_the_body() -> None:
    with respx.mock(base_url=ORG) as api:
        api.get("/api/v1/users").mock(side_effect=reply("error_401"))
        with pytest.raises(ProviderError) as caught:
            run(health())
    assert caught.value.code == "unauthorized" and caught.value.provider_status == 401
    assert "Invalid token" not in str(caught.value) and "E0000011" not in str(caught.value)


def test_429_is_rate_limited_until_x_rate_limit_reset() -> None:
    reset = str(int(time.time()) + 45)  # the recorded reset is in the past; move it ahead of the real clock

    async def scenario() -> None:
        async with client() as http:
            await collect(DirectorySync().ingest(op_context(http)))

    with respx.mock(base_url=ORG) as api:
        api.get("/api/v1/users").mock(side_effect=reply("error_429", **{"X-Rate-Limit-Reset": reset}))
        with pytest.raises(RateLimited) as caught:
            run(scenario())
    error = caught.value
    assert error.code == "rate_limited" and error.provider_status == 429
    assert error.retry_after is not None and 40 <= error.retry_after <= 46
    assert "exceeded" not in str(error)


def test_other_errors_are_plain_provider_errors() -> None:
    with respx.mock(base_url=ORG) as api:
        api.get("/api/v1/users").mock(side_effect=reply("error_403"))
        with pytest.raises(ProviderError) as caught:
            run(health())
    assert caught.value.code == "provider_error" and "permission" not in str(caught.value)


# -- directory sync ------------------------------------------------------------------------------------------


def test_directory_sync_reads_every_page_in_order_and_leaves_a_complete_snapshot() -> None:
    async def scenario() -> tuple[list[Any], DirectorySync]:
        async with client() as http:
            sync = DirectorySync()
            return await collect(sync.ingest(op_context(http))), sync

    with respx.mock(base_url=ORG) as api:
        routes = mock_directory(api)
        payloads, sync = run(scenario())
    kinds = [(p.schema, p.variant) for p in payloads]
    assert kinds == [("directory_account", "user")] * 3 + [("directory_group", "group")] * 2 + \
        [("directory_membership", "member")] * 5
    assert [p.data["id"] for p in payloads[:5]] == [ISAAC, DANA, FOX, ENGINEERING, EVERYONE]
    assert [str(c.request.url) for c in routes["users"].calls] == [
        f"{ORG}/api/v1/users?limit=200", f"{ORG}/api/v1/users?after={DANA}&limit=200"]
    assert routes["everyone"].call_count == 2
    confirmed = {(ISAAC, ENGINEERING), (FOX, ENGINEERING), (ISAAC, EVERYONE), (DANA, EVERYONE), (FOX, EVERYONE)}
    assert {(p.data["user"]["id"], p.data["groupId"]) for p in payloads[5:]} == confirmed
    assert sync.snapshot == MembershipSnapshot("run_2", frozenset(confirmed), complete=True)


def test_a_failed_member_list_leaves_no_snapshot() -> None:
    sync = DirectorySync()

    async def scenario() -> None:
        async with client() as http:
            await collect(sync.ingest(op_context(http)))

    with respx.mock(base_url=ORG) as api:
        mock_directory(api)["everyone"].mock(side_effect=reply("error_429"))
        with pytest.raises(RateLimited):
            run(scenario())
    assert sync.snapshot is None


def test_pagination_refuses_a_next_link_to_another_origin() -> None:
    elsewhere = '<https://evil.example/api/v1/users?after=x>; rel="next"'
    with respx.mock(base_url=ORG) as api:
        api.get("/api/v1/users").mock(side_effect=reply("users_page1", Link=elsewhere))
        with pytest.raises(ProviderError, match="another origin"):
            run(collect(DirectorySync().ingest(op_context(client()))))


# -- complete-snapshot removal -------------------------------------------------------------------------------


ACTIVE = [(ISAAC, ENGINEERING), (DANA, ENGINEERING), (DANA, EVERYONE)]
SNAPSHOT = MembershipSnapshot("run_2", frozenset({(ISAAC, ENGINEERING), (DANA, EVERYONE)}), complete=True)


def test_complete_successful_latest_snapshot_removes_unconfirmed_memberships() -> None:
    assert memberships_to_remove(ACTIVE, SNAPSHOT, run_succeeded=True, latest_run_id="run_2") == {
        (DANA, ENGINEERING)}


@pytest.mark.parametrize(("snapshot", "succeeded", "latest", "rejected"), [
    (MembershipSnapshot("run_2", SNAPSHOT.confirmed, complete=False), True, "run_2", 0),  # partial read
    (SNAPSHOT, False, "run_2", 0),  # the run failed after the snapshot
    (SNAPSHOT, True, "run_3", 0),  # a newer run exists
    (SNAPSHOT, True, "run_2", 1),  # a membership record was rejected
    (None, True, "run_2", 0),  # the sync never finished
    (MembershipSnapshot(None, SNAPSHOT.confirmed, complete=True), True, None, 0),  # no run to tie it to
])
def test_nothing_is_removed_unless_the_snapshot_can_be_trusted(
    snapshot: MembershipSnapshot | None, succeeded: bool, latest: str | None, rejected: int
) -> None:
    assert memberships_to_remove(ACTIVE, snapshot, run_succeeded=succeeded, latest_run_id=latest,
                                 rejected_memberships=rejected) == frozenset()


# -- connections ---------------------------------------------------------------------------------------------


def test_connections_resolve_the_org() -> None:
    credential = OktaApiToken(api_token=SecretStr(API_TOKEN))

    async def scenario() -> Any:
        async with client(credential) as http:
            return await OktaApiTokenConnection().resolve(conn_context(http, credential))

    with respx.mock(base_url=ORG) as api:
        api.get("/api/v1/org").mock(side_effect=reply("org"))
        metadata = run(scenario())
        assert (metadata.account_id, metadata.account_name, metadata.workspace, metadata.url) == (
            "00o1n8sbwArJ7OQRw406", "Acme Corp", "acme", ORG)
        api.get("/api/v1/org").mock(side_effect=reply("error_403"))  # no okta.orgs.read: fall back to the URL
        metadata = run(scenario())
        assert (metadata.account_id, metadata.account_name, metadata.url) == (None, "acme.okta.com", ORG)
        api.get("/api/v1/org").mock(side_effect=reply("error_401"))
        with pytest.raises(ProviderError, match="refused"):
            run(scenario())
    for connection in (OktaApiTokenConnection, OktaServiceAppConnection):
        assert "Okta Admin Console" in connection.disconnect.reason


def test_service_app_mints_a_token_with_a_signed_client_assertion(rsa_key: rsa.RSAPrivateKey) -> None:
    credential = service_app(rsa_key)

    async def scenario() -> None:
        async with client(credential) as http:
            assert isinstance(http.auth, ServiceAppAuth)
            await HealthCheck().run(op_context(http))
            await HealthCheck().run(op_context(http))

    with respx.mock(base_url=ORG) as api:
        mint = api.post("/oauth2/v1/token").mock(side_effect=reply("token"))
        users = api.get("/api/v1/users").mock(side_effect=reply("users_page2"))
        run(scenario())
    assert mint.call_count == 1  # reused for the second call
    assert users.calls.last.request.headers["Authorization"] == "Bearer eyJraWQiOiJFTnNNZmVwb19BZ2J0"
    sent = {k: v[0] for k, v in parse_qs(mint.calls.last.request.content.decode()).items()}
    assert sent["grant_type"] == "client_credentials"
    assert sent["scope"] == "okta.users.read okta.groups.read"
    assert sent["client_assertion_type"] == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    header, claims, signature = sent["client_assertion"].split(".")
    assert json.loads(b64decode(header)) == {"alg": "RS256", "typ": "JWT", "kid": "kid-1"}
    body = json.loads(b64decode(claims))
    assert (body["iss"], body["sub"], body["aud"]) == (credential.client_id, credential.client_id,
                                                       f"{ORG}/oauth2/v1/token")
    assert body["exp"] - body["iat"] == 300 and body["jti"]
    rsa_key.public_key().verify(b64decode(signature), f"{header}.{claims}".encode(), padding.PKCS1v15(),
                                hashes.SHA256())


def test_service_app_refused_assertion_is_unauthorized(rsa_key: rsa.RSAPrivateKey) -> None:
    with respx.mock(base_url=ORG, assert_all_called=False) as api:
        api.post("/oauth2/v1/token").mock(side_effect=reply("token_invalid_client"))
        users = api.get("/api/v1/users")
        with pytest.raises(ProviderError) as caught:
            run(health(service_app(rsa_key)))
    assert caught.value.code == "unauthorized" and "signature" not in str(caught.value)
    assert users.call_count == 0


# -- mappings ------------------------------------------------------------------------------------------------


def evaluate(schema: str, variant: str, payload: dict[str, Any]) -> dict[str, Any]:
    registry = Registry()
    registry.register(definition)
    compiled = registry.mapping("okta", schema, variant)
    assert compiled is not None and compiled.map is not None and compiled.filter is None
    return compiled.map.evaluate({"envelope": {}, "variant": variant, "resource": "", "action": "", "payload": payload})


CONTEXT = {"tenant_id": "tenant_1", "integration_id": "int_1", "definition_id": "okta"}


def test_user_mapping() -> None:
    fields = evaluate("directory_account", "user", recorded("users_page1")["body"][0])
    assert fields == {
        "external_id": ISAAC, "email": "isaac.brock@example.com", "display_name": "Isaac B.", "given_name": "Isaac",
        "family_name": "Brock", "username": "isaac.brock@example.com", "account_type": "user", "status": "active",
        "last_login_at": "2024-05-01T16:02:11.000Z", "source_created_at": "2023-01-10T19:32:51.000Z",
        "attributes": {"status_changed": "2023-01-10T19:32:52.000Z", "last_updated": "2024-04-02T08:11:00.000Z"},
    }
    typed = DirectoryAccountInput.model_validate(fields)
    assert typed.last_login_at is not None and typed.last_login_at.tzinfo is not None
    DirectoryAccount.model_validate({**typed.model_dump(), **CONTEXT})


@pytest.mark.parametrize("names", [{"firstName": None}, {"lastName": None}, {"firstName": None, "lastName": None,
                                                                           "displayName": None}])
def test_user_mapping_with_null_names_still_maps(names: dict[str, Any]) -> None:
    """An org can make firstName and lastName optional; Okta then answers null for them, not an absent key."""
    user = recorded("users_page1")["body"][1]
    user = {**user, "profile": {**user["profile"], **names}}
    fields = evaluate("directory_account", "user", user)
    assert fields["display_name"] is None and fields["external_id"] == user["id"]
    DirectoryAccountInput.model_validate(fields)


def test_user_mapping_without_display_name_or_login() -> None:
    suspended = evaluate("directory_account", "user", recorded("users_page1")["body"][1])
    assert (suspended["display_name"], suspended["status"]) == ("Dana Scully", "suspended")
    staged = evaluate("directory_account", "user", recorded("users_page2")["body"][0])
    assert (staged["status"], staged["last_login_at"]) == ("staged", None)
    odd = {**recorded("users_page2")["body"][0], "status": "LOCKED_OUT"}
    assert evaluate("directory_account", "user", odd)["status"] == "LOCKED_OUT"
    DirectoryAccountInput.model_validate(staged)


def test_group_mapping() -> None:
    engineering = evaluate("directory_group", "group", recorded("groups_page1")["body"][0])
    assert engineering == {"external_id": ENGINEERING, "name": "Engineering", "description": "All engineers",
                           "group_type": "OKTA_GROUP",
                           "attributes": {"last_membership_updated": "2024-04-30T12:00:00.000Z"}}
    everyone = evaluate("directory_group", "group", recorded("groups_page2")["body"][0])
    assert (everyone["description"], everyone["group_type"]) == (None, "BUILT_IN")
    for fields in (engineering, everyone):
        DirectoryGroup.model_validate({**DirectoryGroupInput.model_validate(fields).model_dump(), **CONTEXT})


def test_membership_mapping_links_account_and_group_by_lookup_keys() -> None:
    payload = {"groupId": ENGINEERING, "user": recorded("group_engineering_users")["body"][1]}
    fields = evaluate("directory_membership", "member", payload)
    assert fields == {"account_external_id": FOX, "group_external_id": ENGINEERING, "role": "member"}
    typed = DirectoryMembershipInput.model_validate(fields)
    DirectoryMembership.model_validate({**typed.model_dump(), **CONTEXT, "account_id": 1, "group_id": 2})


# -- event hooks ---------------------------------------------------------------------------------------------


def okta_request(method: str, headers: dict[str, str], body: bytes = b"", payload: Any = None) -> WebhookRequest:
    return WebhookRequest(method, lower_headers(headers), {}, body, payload)


def test_one_time_verification_echoes_the_challenge() -> None:
    hook = OktaEventHook()
    documented = json.loads((FIXTURES / "verification_request.json").read_text())
    answer = run(hook.handshake(okta_request("GET", documented["headers"])))
    assert answer == documented["response"]["body"]
    assert "GET" in OktaEventHook.methods and "POST" in OktaEventHook.methods
    delivery = recorded("event_hook_delivery")["body"]
    assert run(hook.handshake(okta_request("POST", documented["headers"], payload=delivery))) is None
    assert run(hook.handshake(okta_request("GET", {"Authorization": "s"}))) is None
    assert run(hook.handshake(okta_request("GET", {"X-Okta-Verification-Challenge": "a\x00b"}))) is None


def test_deliveries_are_verified_by_the_shared_authorization_header() -> None:
    assert isinstance(OktaEventHook.verifier, SharedSecretHeader)
    body = json.dumps(recorded("event_hook_delivery")["body"]).encode()
    # Okta sends the configured value verbatim (its documented request: ``Authorization: my-shared-secret``).
    for value in ("endpoint-secret", "Bearer endpoint-secret"):
        verify(OktaEventHook.verifier, body, lower_headers({"Authorization": value}), "endpoint-secret")
    for headers in ({"Authorization": "Bearer wrong"}, {}, {"Authorization": "endpoint-secret2"},
                    {"Authorization": "Basic endpoint-secret"}):
        with pytest.raises(InvalidSignature):
            verify(OktaEventHook.verifier, body, lower_headers(headers), "endpoint-secret")


def event_context(payload: dict[str, Any], dispatched: list[Any]) -> EventContext:
    async def dispatch(operation: Any, config: dict[str, Any]) -> str:
        dispatched.append((operation, config))
        return "run_9"

    return EventContext(integration_id="int_1", event_type=payload["eventType"], delivery_id=payload["eventId"],
                        payload=payload, headers={}, dispatch=dispatch)


def test_directory_events_dispatch_one_sync() -> None:
    payload = recorded("event_hook_delivery")["body"]
    payload["data"]["events"].append({**payload["data"]["events"][0], "eventType": "user.lifecycle.deactivate"})
    dispatched: list[Any] = []
    assert run(collect(EventHookDelivery().handle(event_context(payload, dispatched)))) == []
    assert dispatched == [(DirectorySync, {})]
    assert OktaEventHook.event_type.path == "eventType"  # type: ignore[union-attr]
    assert OktaEventHook.delivery_id.path == "eventId"  # type: ignore[union-attr]


def test_other_events_dispatch_nothing() -> None:
    payload = recorded("event_hook_delivery")["body"]
    payload["data"]["events"][0]["eventType"] = "user.session.start"
    dispatched: list[Any] = []
    run(collect(EventHookDelivery().handle(event_context(payload, dispatched))))
    run(collect(EventHookDelivery().handle(event_context({**payload, "data": None}, dispatched))))
    assert dispatched == []
