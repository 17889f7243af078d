"""The GitHub reference definition, against GitHub's documented REST shapes replayed by respx (no network)."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from pydantic import SecretStr

from definitions.github_app import definition
from definitions.github_app.client import GitHubClient, InstallationAuth
from definitions.github_app.config import GitHubAppConfig
from definitions.github_app.connections import GitHubAppConnection, GitHubTokenConnection
from definitions.github_app.operations import HealthCheck, RepositorySync
from definitions.github_app.slots import GitHubAppInstallation, GitHubPersonalAccessToken
from definitions.github_app.webhook import GitHubAppWebhook, Installation, Ping, RepositoryEvent
from engine import (
    ClientContext,
    ConnectionContext,
    EventContext,
    NoConfig,
    OperationContext,
    Payload,
    ProviderError,
)
from engine.catalog.registry import Registry
from engine.errors import ConfigurationError
from ingest.models.asset import Asset

API = "https://api.github.com"
FIXTURES = Path(__file__).parents[1] / "fixtures" / "github_app"
#: 10:00 UTC on the day of the recorded installation token, which expires at 11:00 UTC.
NOW = datetime(2024, 5, 2, 10, 0, tzinfo=UTC).timestamp()
MINTED = "ghs_16C7e42F292c6912E7710c838347Ae178B4a"
PAT = "ghp_testtoken000000000000000000000000000"


# -- helpers -------------------------------------------------------------------------------------------------


def recorded(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def reply(name: str, **headers: str) -> Callable[[httpx.Request], httpx.Response]:
    """A respx side effect answering with a recorded response (a fresh one per call)."""
    rec = recorded(name)

    def respond(request: httpx.Request) -> httpx.Response:
        return httpx.Response(rec["status"], headers={**rec["headers"], **headers}, json=rec["body"])

    return respond


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def collect(items: AsyncIterator[Any]) -> list[Any]:
    return [item async for item in items]


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    """A throwaway key generated per test run; no real key is ever committed."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def operator_config(rsa_key: rsa.RSAPrivateKey) -> GitHubAppConfig:
    pem = rsa_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return GitHubAppConfig(app_id="12345", app_slug="tether-test", private_key=SecretStr(pem),
                           webhook_secret=SecretStr("whsec-test"))


class Clock:
    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def app_client(config: GitHubAppConfig, clock: Clock | None = None) -> httpx.AsyncClient:
    credential = GitHubAppInstallation(installation_id=42)
    client = GitHubClient().build(ClientContext("int_app", credential, config, None))
    assert isinstance(client.auth, InstallationAuth)
    client.auth.clock = clock or Clock()
    return client


def pat_client(config: GitHubAppConfig) -> httpx.AsyncClient:
    credential = GitHubPersonalAccessToken(token=SecretStr(PAT))
    return GitHubClient().build(ClientContext("int_pat", credential, config, None))


def op_context(client: httpx.AsyncClient, config: GitHubAppConfig) -> OperationContext:
    return OperationContext(integration_id="int_1", tenant_id="tenant_1", config=NoConfig(), client=client,
                            operator_config=config, user_input=None)


def conn_context(client: httpx.AsyncClient, credential: Any, config: GitHubAppConfig) -> ConnectionContext:
    return ConnectionContext(integration_id="int_1", credential=credential, client=client,
                             operator_config=config, user_input=None)


def mock_mint(api: respx.Router) -> respx.Route:
    return api.post("/app/installations/42/access_tokens").mock(side_effect=reply("access_token"))


def b64decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


# -- registration --------------------------------------------------------------------------------------------


def test_definition_registers() -> None:
    for registry in (Registry(), Registry(allow_loopback=False)):
        registry.register(definition)
        assert registry.get("github_app") is definition
        assert registry.mapping("github_app", "asset", "repository") is not None
    assert definition.manual_slots() == (GitHubPersonalAccessToken,)
    assert GitHubAppConnection.auth is not None and GitHubAppConnection.auth.slot is GitHubAppInstallation


# -- health check --------------------------------------------------------------------------------------------


def test_health_check_app_installation(operator_config: GitHubAppConfig) -> None:
    async def scenario() -> Any:
        async with app_client(operator_config) as client:
            return await HealthCheck().run(op_context(client, operator_config))

    with respx.mock(base_url=API) as api:
        mint = mock_mint(api)
        page = reply("installation_repositories_page1")
        repos = api.get("/installation/repositories").mock(side_effect=page)
        assert run(scenario()) == {"ok": True, "repositories": 3}
    assert mint.call_count == 1
    request = repos.calls.last.request
    assert request.url.params["per_page"] == "1"
    assert request.headers["Authorization"] == f"Bearer {MINTED}"
    assert request.headers["Accept"] == "application/vnd.github+json"
    assert request.headers["X-GitHub-Api-Version"] == "2022-11-28"
    assert request.headers["User-Agent"].startswith("Tether")


def test_health_check_personal_access_token(operator_config: GitHubAppConfig) -> None:
    async def scenario() -> Any:
        async with pat_client(operator_config) as client:
            return await HealthCheck().run(op_context(client, operator_config))

    with respx.mock(base_url=API) as api:
        user = api.get("/user").mock(side_effect=reply("user"))
        assert run(scenario()) == {"ok": True, "login": "octocat"}
    assert user.calls.last.request.headers["Authorization"] == f"Bearer {PAT}"


# -- repository sync and pagination --------------------------------------------------------------------------


def test_repository_sync_follows_link_pagination(operator_config: GitHubAppConfig) -> None:
    async def scenario() -> list[Payload]:
        async with app_client(operator_config) as client:
            return await collect(RepositorySync().ingest(op_context(client, operator_config)))

    def page(request: httpx.Request) -> httpx.Response:
        name = "installation_repositories_page2" if request.url.params.get("page") == "2" else \
            "installation_repositories_page1"
        return reply(name)(request)

    with respx.mock(base_url=API) as api:
        mint = mock_mint(api)
        repos = api.get("/installation/repositories").mock(side_effect=page)
        payloads = run(scenario())
    assert [p.data["full_name"] for p in payloads] == ["acme/tether", "acme/billing", "acme/legacy-site"]
    assert {(p.schema, p.variant) for p in payloads} == {("asset", "repository")}
    assert [str(c.request.url) for c in repos.calls] == [
        f"{API}/installation/repositories?per_page=100",
        f"{API}/installation/repositories?per_page=100&page=2",
    ]
    assert mint.call_count == 1


def test_repository_sync_personal_access_token(operator_config: GitHubAppConfig) -> None:
    async def scenario() -> list[Payload]:
        async with pat_client(operator_config) as client:
            return await collect(RepositorySync().ingest(op_context(client, operator_config)))

    with respx.mock(base_url=API) as api:
        repos = api.get("/user/repos").mock(side_effect=reply("user_repos"))
        payloads = run(scenario())
    assert [p.data["node_id"] for p in payloads] == ["R_kgDOABPHjQ", "R_kgDOABPHjg"]
    assert repos.calls.last.request.url.params["per_page"] == "100"


def test_pagination_loop_guard(operator_config: GitHubAppConfig) -> None:
    looping = f'<{API}/user/repos?per_page=100&page=2>; rel="next"'

    async def scenario() -> list[Payload]:
        async with pat_client(operator_config) as client:
            return await collect(RepositorySync().ingest(op_context(client, operator_config)))

    page = reply("user_repos", Link=looping)

    def bounded(request: httpx.Request) -> httpx.Response:
        assert repos.call_count <= 3, "the loop guard did not fire"  # fail fast instead of looping forever
        return page(request)

    with respx.mock(base_url=API) as api:
        repos = api.get("/user/repos").mock(side_effect=bounded)
        with pytest.raises(ProviderError, match="loops back"):
            run(scenario())
    assert repos.call_count == 2  # page 1, then page 2 whose next link is itself


def test_pagination_refuses_a_next_link_to_another_origin(operator_config: GitHubAppConfig) -> None:
    async def scenario() -> list[Payload]:
        async with pat_client(operator_config) as client:
            return await collect(RepositorySync().ingest(op_context(client, operator_config)))

    with respx.mock(base_url=API) as api:
        elsewhere = '<https://evil.example/x>; rel="next"'
        api.get("/user/repos").mock(side_effect=reply("user_repos", Link=elsewhere))
        with pytest.raises(ProviderError, match="another origin"):
            run(scenario())


# -- app JWT and installation tokens -------------------------------------------------------------------------


def test_app_jwt_is_rs256_and_verifies(operator_config: GitHubAppConfig, rsa_key: rsa.RSAPrivateKey) -> None:
    async def scenario() -> None:
        async with app_client(operator_config) as client:
            await HealthCheck().run(op_context(client, operator_config))

    with respx.mock(base_url=API) as api:
        mint = mock_mint(api)
        api.get("/installation/repositories").mock(side_effect=reply("installation_repositories_page1"))
        run(scenario())
    scheme, jwt = mint.calls.last.request.headers["Authorization"].split(" ")
    assert scheme == "Bearer"
    header, claims, signature = jwt.split(".")
    assert json.loads(b64decode(header)) == {"alg": "RS256", "typ": "JWT"}
    assert json.loads(b64decode(claims)) == {"iat": int(NOW) - 60, "exp": int(NOW) + 540, "iss": "12345"}
    public = rsa_key.public_key()
    signed = f"{header}.{claims}".encode()
    public.verify(b64decode(signature), signed, padding.PKCS1v15(), hashes.SHA256())
    with pytest.raises(InvalidSignature):
        public.verify(b64decode(signature), signed + b"x", padding.PKCS1v15(), hashes.SHA256())


def test_installation_token_is_cached_then_reminted_before_expiry(operator_config: GitHubAppConfig) -> None:
    clock = Clock()
    tokens = iter(["ghs_first", "ghs_second"])

    def mint_token(request: httpx.Request) -> httpx.Response:
        body = {**recorded("access_token")["body"], "token": next(tokens)}
        if body["token"] == "ghs_second":
            body["expires_at"] = "2024-05-02T12:00:00Z"
        return httpx.Response(201, json=body)

    async def scenario() -> list[str]:
        async with app_client(operator_config, clock) as client:
            for minutes in (0, 30, 54):  # within the token's life, before the 5-minute margin
                clock.now = NOW + minutes * 60
                await client.get("/installation/repositories")
            clock.now = NOW + 56 * 60  # 4 minutes before expires_at: mint again
            await client.get("/installation/repositories")
            await client.get("/installation/repositories")
        return [c.request.headers["Authorization"] for c in repos.calls]

    with respx.mock(base_url=API) as api:
        mint = api.post("/app/installations/42/access_tokens").mock(side_effect=mint_token)
        page = reply("installation_repositories_page2")
        repos = api.get("/installation/repositories").mock(side_effect=page)
        used = run(scenario())
    assert mint.call_count == 2
    assert used == ["Bearer ghs_first"] * 3 + ["Bearer ghs_second"] * 2


def test_concurrent_requests_share_one_mint(operator_config: GitHubAppConfig) -> None:
    async def scenario() -> None:
        async with app_client(operator_config) as client:
            await asyncio.gather(*(client.get("/installation/repositories") for _ in range(5)))

    async def slow_mint(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(0.01)  # let the other requests reach the auth flow while this mint is in flight
        return reply("access_token")(request)

    with respx.mock(base_url=API) as api:
        mint = api.post("/app/installations/42/access_tokens").mock(side_effect=slow_mint)
        api.get("/installation/repositories").mock(side_effect=reply("installation_repositories_page2"))
        run(scenario())
    assert mint.call_count == 1


def test_failed_mint_is_unauthorized(operator_config: GitHubAppConfig) -> None:
    async def scenario() -> None:
        async with app_client(operator_config) as client:
            await HealthCheck().run(op_context(client, operator_config))

    with respx.mock(base_url=API, assert_all_called=False) as api:
        api.post("/app/installations/42/access_tokens").mock(side_effect=reply("error_401"))
        repos = api.get("/installation/repositories")
        with pytest.raises(ProviderError) as caught:
            run(scenario())
    assert caught.value.code == "unauthorized"
    assert repos.call_count == 0


def test_invalid_private_key_is_a_configuration_error(operator_config: GitHubAppConfig) -> None:
    config = operator_config.model_copy(update={"private_key": SecretStr("not a key")})
    with pytest.raises(ConfigurationError) as caught:
        GitHubClient().build(ClientContext("int", GitHubAppInstallation(installation_id=42), config, None))
    assert "not a key" not in caught.value.message


# -- provider errors -----------------------------------------------------------------------------------------


def test_401_is_unauthorized_without_the_body(operator_config: GitHubAppConfig) -> None:
    async def scenario() -> None:
        async with pat_client(operator_config) as client:
            await HealthCheck().run(op_context(client, operator_config))

    with respx.mock(base_url=API) as api:
        api.get("/user").mock(side_effect=reply("error_401"))
        with pytest.raises(ProviderError) as caught:
            run(scenario())
    assert caught.value.code == "unauthorized"
    assert caught.value.provider_status == 401
    assert "Bad credentials" not in str(caught.value)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"X-RateLimit-Reset": "{reset}"}, (100.0, 121.0)),  # primary limit: wait until the reset
        ({"Retry-After": "60"}, (60.0, 60.0)),  # secondary limit: GitHub says how long
    ],
)
def test_403_rate_limit_is_rate_limited_with_retry_after(
    operator_config: GitHubAppConfig, headers: dict[str, str], expected: tuple[float, float]
) -> None:
    # The recorded reset time is in the past; move it two minutes ahead of the real clock.
    overrides = {k: v.format(reset=int(time.time()) + 120) for k, v in headers.items()}

    async def scenario() -> None:
        async with pat_client(operator_config) as client:
            await collect(RepositorySync().ingest(op_context(client, operator_config)))

    with respx.mock(base_url=API) as api:
        api.get("/user/repos").mock(side_effect=reply("error_403_rate_limit", **overrides))
        with pytest.raises(ProviderError) as caught:
            run(scenario())
    error = caught.value
    assert error.code == "rate_limited"
    assert error.provider_status == 403
    assert error.retry_after is not None and expected[0] <= error.retry_after <= expected[1]
    assert "API rate limit exceeded" not in str(error)


def test_403_without_rate_limit_headers_is_a_plain_provider_error(operator_config: GitHubAppConfig) -> None:
    async def scenario() -> None:
        async with pat_client(operator_config) as client:
            await HealthCheck().run(op_context(client, operator_config))

    with respx.mock(base_url=API) as api:
        api.get("/user").respond(403, json={"message": "Resource not accessible by integration"})
        with pytest.raises(ProviderError) as caught:
            run(scenario())
    assert caught.value.code == "provider_error"
    assert "not accessible" not in str(caught.value)


# -- connections: resolve and disconnect ---------------------------------------------------------------------


def test_app_connection_resolves_and_revokes_with_the_app_jwt(operator_config: GitHubAppConfig) -> None:
    credential = GitHubAppInstallation(installation_id=42)

    async def scenario() -> Any:
        async with app_client(operator_config) as client:
            ctx = conn_context(client, credential, operator_config)
            connection = GitHubAppConnection()
            await connection.verify_install(ctx)
            metadata = await connection.resolve(ctx)
            await connection.revoke(ctx)
            await connection.revoke(ctx)  # already uninstalled: 404 counts as done
            return metadata

    with respx.mock(base_url=API, assert_all_called=False) as api:
        mint = mock_mint(api)  # declared so that a stray mint is counted, not refused
        installation = api.get("/app/installations/42").mock(side_effect=reply("app_installation"))
        gone = [httpx.Response(204), httpx.Response(404)]
        delete = api.delete("/app/installations/42").mock(side_effect=gone)
        metadata = run(scenario())
    assert metadata.account_id == "9919"
    assert metadata.account_name == "acme"
    assert metadata.url == "https://github.com/organizations/acme/settings/installations/42"
    assert metadata.attributes == {"account_type": "Organization", "installation_id": 42}
    assert mint.call_count == 0  # /app/… endpoints take the app JWT, never an installation token
    for call in [*installation.calls, *delete.calls]:
        assert call.request.headers["Authorization"].startswith("Bearer ey")


def test_token_connection_resolves_from_user(operator_config: GitHubAppConfig) -> None:
    credential = GitHubPersonalAccessToken(token=SecretStr(PAT))

    async def scenario() -> Any:
        async with pat_client(operator_config) as client:
            return await GitHubTokenConnection().resolve(conn_context(client, credential, operator_config))

    with respx.mock(base_url=API) as api:
        api.get("/user").mock(side_effect=reply("user"))
        metadata = run(scenario())
    assert (metadata.account_id, metadata.account_name, metadata.account_email) == (
        "583231", "octocat", "octocat@example.com")
    assert metadata.url == "https://github.com/octocat"
    assert "github.com/settings/tokens" in GitHubTokenConnection.disconnect.reason


# -- mapping -------------------------------------------------------------------------------------------------


def evaluate(repo: dict[str, Any], action: str = "") -> tuple[bool, dict[str, Any]]:
    registry = Registry()
    registry.register(definition)
    compiled = registry.mapping("github_app", "asset", "repository")
    assert compiled is not None and compiled.filter is not None and compiled.map is not None
    activation = {"envelope": {}, "variant": "repository", "resource": "", "action": action, "payload": repo}
    return compiled.filter.evaluate(activation), compiled.map.evaluate(activation)


def test_mapping_turns_a_repository_into_an_asset() -> None:
    repo = recorded("installation_repositories_page1")["body"]["repositories"][0]
    keep, fields = evaluate(repo)
    assert keep is True
    assert fields == {
        "source_identifier": "R_kgDOABPHjQ",
        "name": "acme/tether",
        "asset_type": "repository",
        "description": "An integration engine",
        "url": "https://github.com/acme/tether",
        "owner": "acme",
        "visibility": "public",
        "archived": False,
        "source_updated_at": "2024-05-02T09:15:27Z",
    }
    asset = Asset.model_validate(
        {**fields, "tenant_id": "tenant_1", "integration_id": "int_1", "definition_id": "github_app"})
    assert asset.source_identifier == "R_kgDOABPHjQ"
    assert asset.source_updated_at == datetime(2024, 5, 2, 9, 15, 27, tzinfo=UTC)


def test_mapping_handles_null_and_missing_fields() -> None:
    repo = recorded("installation_repositories_page1")["body"]["repositories"][1]  # description is null
    for key in ("visibility", "archived", "updated_at"):
        del repo[key]
    _, fields = evaluate(repo)
    assert fields["description"] is None
    assert fields["visibility"] == "private"  # derived from "private": true
    assert fields["archived"] is None and fields["source_updated_at"] is None
    Asset.model_validate({**fields, "tenant_id": "t", "integration_id": "i", "definition_id": "github_app"})


def test_mapping_filter_drops_deleted_repositories() -> None:
    repo = recorded("webhook_repository")["body"]["repository"]
    assert evaluate(repo, action="archived")[0] is True
    assert evaluate(repo, action="deleted")[0] is False


# -- webhook -------------------------------------------------------------------------------------------------


def event_context(name: str, cleanup: Any = None) -> EventContext:
    delivery = recorded(name)

    async def dispatch(operation: Any, config: dict[str, Any]) -> str:
        raise AssertionError("no GitHub event dispatches an operation")

    return EventContext(
        integration_id="int_1", event_type=delivery["headers"]["X-GitHub-Event"],
        delivery_id=delivery["headers"]["X-GitHub-Delivery"], payload=delivery["body"],
        headers=delivery["headers"], dispatch=dispatch, cleanup=cleanup,
    )


def test_repository_event_emits_the_repository_and_routes_by_installation() -> None:
    ctx = event_context("webhook_repository")
    payloads = run(collect(RepositoryEvent().handle(ctx)))
    assert payloads == [Payload(schema="asset", variant="repository", data=ctx.payload["repository"],
                                action="archived")]
    assert run(GitHubAppWebhook().route(ctx.payload, ctx.headers)) == {"installation_id": "42"}
    assert GitHubAppWebhook.events[:3] == (Ping, Installation, RepositoryEvent)
    assert {e.match for e in GitHubAppWebhook.events[3:]} == {
        "dependabot_alert", "code_scanning_alert", "secret_scanning_alert"}


def test_ping_does_nothing_and_has_no_route() -> None:
    ctx = event_context("webhook_ping")
    assert run(collect(Ping().handle(ctx))) == []
    assert run(GitHubAppWebhook().route(ctx.payload, ctx.headers)) is None
    assert run(GitHubAppWebhook().route(["not", "an", "object"], {})) is None


def test_installation_deleted_runs_the_cleanup() -> None:
    calls: list[str] = []

    async def async_cleanup() -> None:
        calls.append("async")

    for cleanup in (lambda: calls.append("sync"), async_cleanup):
        assert run(collect(Installation().handle(event_context("webhook_installation_deleted", cleanup)))) == []
    assert calls == ["sync", "async"]
    created = event_context("webhook_installation_deleted", lambda: calls.append("created"))
    created.payload = {**created.payload, "action": "created"}
    run(collect(Installation().handle(created)))
    run(collect(Installation().handle(event_context("webhook_installation_deleted"))))  # no cleanup yet: fine
    assert calls == ["sync", "async"]
