"""GitHub security alerts and organisation members: the syncs against recorded REST shapes (respx), and golden
tests for every (schema, variant) mapping they emit."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import SecretStr

from definitions.github_app import definition
from definitions.github_app.alerts import CodeScanningAlertSync, DependabotAlertSync, SecretScanningAlertSync
from definitions.github_app.client import GitHubClient, InstallationAuth
from definitions.github_app.config import GitHubAppConfig
from definitions.github_app.directory import DirectorySync
from definitions.github_app.slots import GitHubAppInstallation, GitHubPersonalAccessToken
from engine import ClientContext, NoConfig, OperationContext, Payload, ProviderError
from engine.catalog.registry import Registry
from ingest.pipeline import IngestContext, IngestPipeline

API = "https://api.github.com"
FIXTURES = Path(__file__).parents[1] / "fixtures" / "github_app"
NOW = datetime(2024, 5, 2, 10, 0, tzinfo=UTC).timestamp()  # the recorded installation token is valid then


# -- helpers (as in test_github_app.py) ----------------------------------------------------------------------


def recorded(name: str) -> Any:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def reply(name: str, **headers: str) -> Callable[[httpx.Request], httpx.Response]:
    rec = recorded(name)
    return lambda request: httpx.Response(rec["status"], headers={**rec["headers"], **headers}, json=rec["body"])


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def collect(items: AsyncIterator[Any]) -> list[Any]:
    return [item async for item in items]


@pytest.fixture(scope="module")
def operator_config() -> GitHubAppConfig:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    return GitHubAppConfig(app_id="12345", app_slug="tether-test", private_key=SecretStr(pem),
                           webhook_secret=SecretStr("whsec-test"))


def app_client(config: GitHubAppConfig) -> httpx.AsyncClient:
    client = GitHubClient().build(ClientContext("int_app", GitHubAppInstallation(installation_id=42), config, None))
    assert isinstance(client.auth, InstallationAuth)
    client.auth.clock = lambda: NOW
    return client


def pat_client(config: GitHubAppConfig) -> httpx.AsyncClient:
    credential = GitHubPersonalAccessToken(token=SecretStr("ghp_testtoken000000000000000000000000000"))
    return GitHubClient().build(ClientContext("int_pat", credential, config, None))


def op_context(client: httpx.AsyncClient, config: GitHubAppConfig) -> OperationContext:
    return OperationContext(integration_id="int_1", tenant_id="tenant_1", config=NoConfig(), client=client,
                            operator_config=config, user_input=None)


def mock_mint(api: respx.Router) -> respx.Route:
    return api.post("/app/installations/42/access_tokens").mock(side_effect=reply("access_token"))


TETHER, BILLING = "/repos/acme/tether", "/repos/acme/billing"


def sync(operation: Any, config: GitHubAppConfig, *, app: bool = False) -> list[Payload]:
    async def scenario() -> list[Payload]:
        async with (app_client(config) if app else pat_client(config)) as client:
            return await collect(operation.ingest(op_context(client, config)))

    return run(scenario())


def mapped(payload: Payload) -> dict[str, Any]:
    """The validated model fields the registry's mapping makes of ``payload`` (fails on a rejection)."""
    registry = Registry()
    registry.register(definition)
    ctx = IngestContext(tenant_id="t", integration_id="i", definition_id="github_app",
                        emits=[(payload.schema, payload.variant)])
    outcome = IngestPipeline(registry).evaluate(ctx, payload)
    assert outcome.status == "mapped", (outcome.reason_code, outcome.reason)
    assert outcome.object is not None
    return outcome.object.model_dump(exclude_none=True)


# -- alert syncs ---------------------------------------------------------------------------------------------


def test_dependabot_alerts_follow_link_pagination_and_skip_disabled_repositories(
    operator_config: GitHubAppConfig,
) -> None:
    def page(request: httpx.Request) -> httpx.Response:
        name = "dependabot_alerts_page2" if "after" in request.url.params else "dependabot_alerts_page1"
        return reply(name)(request)

    with respx.mock(base_url=API) as api:
        api.get("/user/repos").mock(side_effect=reply("user_repos"))
        tether = api.get(f"{TETHER}/dependabot/alerts").mock(side_effect=page)
        api.get(f"{BILLING}/dependabot/alerts").mock(side_effect=reply("dependabot_disabled"))
        payloads = sync(DependabotAlertSync(), operator_config)
    assert [(p.schema, p.variant) for p in payloads] == [("vulnerability", "dependabot_alert")] * 2
    assert [p.data["alert"]["number"] for p in payloads] == [2, 1]
    assert {p.data["repository"]["full_name"] for p in payloads} == {"acme/tether"}
    assert [c.request.url.params.get("after") for c in tether.calls] == [None, "Y3Vyc29yOnYyOpK0"]


def test_code_scanning_alerts_skip_repositories_without_analysis(operator_config: GitHubAppConfig) -> None:
    with respx.mock(base_url=API) as api:
        mock_mint(api)
        api.get("/installation/repositories").mock(side_effect=lambda r: httpx.Response(
            200, json={"total_count": 2, "repositories": recorded("user_repos")["body"]}))
        api.get(f"{TETHER}/code-scanning/alerts").mock(side_effect=reply("code_scanning_alerts"))
        api.get(f"{BILLING}/code-scanning/alerts").mock(side_effect=reply("code_scanning_no_analysis"))
        payloads = sync(CodeScanningAlertSync(), operator_config, app=True)
    assert [p.data["alert"]["rule"]["id"] for p in payloads] == ["js/zipslip"]


def test_secret_scanning_sync_hides_the_secret(operator_config: GitHubAppConfig) -> None:
    with respx.mock(base_url=API) as api:
        api.get("/user/repos").mock(side_effect=reply("user_repos"))
        tether = api.get(f"{TETHER}/secret-scanning/alerts").mock(side_effect=reply("secret_scanning_alerts"))
        api.get(f"{BILLING}/secret-scanning/alerts").respond(200, json=[])
        [payload] = sync(SecretScanningAlertSync(), operator_config)
    assert tether.calls.last.request.url.params["hide_secret"] == "true"
    assert "secret" not in payload.data["alert"]  # recorded with one anyway: dropped before ingest
    assert "XXXX" not in str(mapped(payload))


@pytest.mark.parametrize(("status", "code"), [(401, "unauthorized"), (429, "rate_limited")])
def test_alert_sync_fails_on_401_and_429(operator_config: GitHubAppConfig, status: int, code: str) -> None:
    answer = reply("error_401") if status == 401 else (
        lambda r: httpx.Response(429, headers={"Retry-After": "30"}, json={"message": "secondary rate limit"}))
    with respx.mock(base_url=API) as api:
        api.get("/user/repos").mock(side_effect=reply("user_repos"))
        api.get(f"{TETHER}/dependabot/alerts").mock(side_effect=answer)
        with pytest.raises(ProviderError) as caught:
            sync(DependabotAlertSync(), operator_config)
    assert caught.value.code == code


def test_403_rate_limit_on_an_alert_list_is_not_mistaken_for_a_disabled_feature(
    operator_config: GitHubAppConfig,
) -> None:
    reset = str(int(time.time()) + 60)
    with respx.mock(base_url=API) as api:
        api.get("/user/repos").mock(side_effect=reply("user_repos"))
        api.get(f"{TETHER}/dependabot/alerts").mock(side_effect=reply("error_403_rate_limit", **{
            "X-RateLimit-Reset": reset}))
        with pytest.raises(ProviderError) as caught:
            sync(DependabotAlertSync(), operator_config)
    assert caught.value.code == "rate_limited" and caught.value.retry_after is not None


# -- directory sync ------------------------------------------------------------------------------------------


def mock_org(api: respx.Router) -> None:
    def members(name_all: str, name_role: str) -> Any:
        return lambda r: reply(name_role if r.url.params.get("role") else name_all)(r)

    api.get("/orgs/acme/members").mock(side_effect=members("org_members", "org_admins"))
    api.get("/orgs/acme/teams").mock(side_effect=reply("org_teams"))
    api.get("/orgs/acme/teams/platform/members").mock(side_effect=members("team_members", "team_maintainers"))


def test_directory_sync_with_a_token_reads_every_organisation(operator_config: GitHubAppConfig) -> None:
    with respx.mock(base_url=API) as api:
        api.get("/user/orgs").mock(side_effect=reply("user_orgs"))
        mock_org(api)
        payloads = sync(DirectorySync(), operator_config)
    kinds = [(p.schema, p.variant) for p in payloads]
    assert kinds == [("directory_account", "member")] * 3 + [("directory_group", "team")] + [
        ("directory_membership", "team_member")] * 2
    assert [p.data["role"] for p in payloads if p.variant == "member"] == ["admin", "member", "member"]
    assert [p.data["role"] for p in payloads if p.variant == "team_member"] == ["member", "maintainer"]


def test_directory_sync_as_an_installation_reads_its_organisation_only(operator_config: GitHubAppConfig) -> None:
    with respx.mock(base_url=API) as api:
        mint = mock_mint(api)
        api.get("/app/installations/42").mock(side_effect=reply("app_installation"))
        mock_org(api)
        payloads = sync(DirectorySync(), operator_config, app=True)
    assert len(payloads) == 6 and mint.call_count == 1
    assert {p.data["organization"] for p in payloads} == {"acme"}


def test_directory_sync_on_a_personal_installation_syncs_nothing(operator_config: GitHubAppConfig) -> None:
    installation = recorded("app_installation")["body"]
    installation["account"] = {**installation["account"], "type": "User"}
    with respx.mock(base_url=API) as api:
        api.get("/app/installations/42").respond(200, json=installation)
        assert sync(DirectorySync(), operator_config, app=True) == []


# -- golden mappings -----------------------------------------------------------------------------------------


def alert(name: str, variant: str, index: int = 0) -> Payload:
    repository = recorded("user_repos")["body"][0]
    return Payload(schema="vulnerability", variant=variant,
                   data={"alert": recorded(name)["body"][index], "repository": repository})


def test_dependabot_alert_mapping() -> None:
    assert mapped(alert("dependabot_alerts_page1", "dependabot_alert")) == {
        "external_id": "dependabot/1296269/2",
        "cve_id": "CVE-2018-6188",
        "title": recorded("dependabot_alerts_page1")["body"][0]["security_advisory"]["summary"],
        "description": recorded("dependabot_alerts_page1")["body"][0]["security_advisory"]["description"],
        "severity": "high",
        "cvss_score": 7.5,
        "status": "dismissed",
        "source": "dependabot",
        "package_name": "django",
        "fixed_version": "2.0.2",
        "resource_identifier": "acme/tether",
        "url": "https://github.com/acme/tether/security/dependabot/2",
        "published_at": datetime(2018, 10, 3, 21, 13, 54, tzinfo=UTC),
        "attributes": {"ghsa_id": "GHSA-rf4j-j272-fj86", "ecosystem": "pip",
                       "manifest_path": "path/to/requirements.txt",
                       "vulnerable_version_range": ">= 2.0.0, < 2.0.2", "repository_node_id": "R_kgDOABPHjQ"},
    }
    fields = mapped(alert("dependabot_alerts_page2", "dependabot_alert"))  # no CVE, no patch yet
    assert "cve_id" not in fields and "fixed_version" not in fields
    assert (fields["severity"], fields["cvss_score"], fields["status"]) == ("critical", 0.0, "open")
    assert fields["published_at"].isoformat() == "2018-10-03T21:13:54+00:00"


def test_code_scanning_alert_mapping() -> None:
    fields = mapped(alert("code_scanning_alerts", "code_scanning_alert"))
    assert fields.pop("published_at").isoformat() == "2020-02-13T12:29:18+00:00"
    assert fields == {
        "external_id": "code_scanning/1296269/4",
        "title": "Arbitrary file write during zip extraction",
        "severity": "high",  # the security severity, not the rule's "error"
        "status": "open",
        "source": "code_scanning",
        "resource_identifier": "acme/tether",
        "url": "https://github.com/acme/tether/security/code-scanning/4",
        "attributes": {"rule_id": "js/zipslip", "tool": "CodeQL", "path": "spec-main/api-session-spec.ts",
                       "repository_node_id": "R_kgDOABPHjQ"},
    }


def test_secret_scanning_alert_mapping() -> None:
    fields = mapped(alert("secret_scanning_alerts", "secret_scanning_alert"))
    assert fields.pop("published_at").isoformat() == "2020-11-06T18:18:30+00:00"
    assert fields == {
        "external_id": "secret_scanning/1296269/2",
        "title": "Exposed secret: Mailchimp API Key",
        "status": "resolved",
        "source": "secret_scanning",
        "resource_identifier": "acme/tether",
        "url": "https://github.com/acme/tether/security/secret-scanning/2",
        "attributes": {"secret_type": "mailchimp_api_key", "resolution": "false_positive", "validity": "unknown",
                       "repository_node_id": "R_kgDOABPHjQ"},
    }


def test_directory_mappings() -> None:
    member = recorded("org_members")["body"]
    team = recorded("org_teams")["body"][0]
    account = mapped(Payload("directory_account", {"organization": "acme", "role": "admin", "member": member[0]},
                             variant="member"))
    assert account == {
        "external_id": "U_kgDO583231", "username": "octocat", "display_name": "octocat", "account_type": "user",
        "status": "active", "is_admin": True,
        "attributes": {"organization": "acme", "role": "admin", "url": "https://github.com/octocat"},
    }
    bot = mapped(Payload("directory_account", {"organization": "acme", "role": "member", "member": member[2]},
                         variant="member"))
    assert (bot["account_type"], bot["is_admin"]) == ("bot", False)
    assert mapped(Payload("directory_group", {"organization": "acme", "team": team}, variant="team")) == {
        "external_id": "T_kwDOAAmJLc4AAX0x", "name": "Platform", "description": "The platform team",
        "group_type": "team",
        "attributes": {"organization": "acme", "slug": "platform", "privacy": "closed", "parent": None},
    }
    membership = {"organization": "acme", "role": "maintainer", "team": team, "member": member[1]}
    assert mapped(Payload("directory_membership", membership, variant="team_member")) == {
        "account_external_id": "U_kgDO6000001", "group_external_id": "T_kwDOAAmJLc4AAX0x", "role": "maintainer",
    }


def test_every_emitted_variant_has_a_mapping() -> None:
    registry = Registry()
    registry.register(definition)
    emitted = {(e.schema, e.variant) for op in definition.operations for e in op.emits}
    emitted |= {(e.schema, e.variant) for hook in definition.webhooks for ev in hook.events for e in ev.emits}
    assert len(emitted) == 7
    assert all(registry.mapping("github_app", schema, variant) is not None for schema, variant in emitted)
