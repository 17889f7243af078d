"""Defender for Cloud against Azure's documented ARM and token shapes, replayed by respx (no network)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from pydantic import SecretStr

from definitions.azure_security_center import definition
from definitions.azure_security_center.client import ArmApi, ArmClient
from definitions.azure_security_center.connections import ServicePrincipalConnection
from definitions.azure_security_center.operations import AssessmentsCollect, HealthCheck, SubAssessmentsCollect
from definitions.azure_security_center.slots import AzureServicePrincipal
from engine import ClientContext, ConnectionContext, NoConfig, OperationContext, Payload, ProviderError
from engine.catalog.registry import Registry
from ingest.models.vulnerability import Vulnerability
from ingest.pipeline import IngestContext, IngestPipeline
from support.cassette_fixtures import response_fixture

ARM = "https://management.azure.com"
FIXTURES = Path(__file__).parents[1] / "fixtures" / "azure_security_center"
TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
SUB = "20ff7fc3-e762-44dd-bd96-b71116dcdc23"
TOKEN_URL = f"https://login.microsoftonline.com/{TENANT}/oauth2/v2.0/token"
CREDENTIAL = AzureServicePrincipal(tenant_id=TENANT, client_id="0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0",
                                   client_secret=SecretStr("sp-secret"), subscription_id=SUB)
VM = f"/subscriptions/{SUB}/resourceGroups/rg-web/providers/Microsoft.Compute/virtualMachines/vm-web-01"


def recorded(name: str) -> dict[str, Any]:
    return response_fixture(FIXTURES, name)  # responses are cassettes, webhook deliveries JSON


def reply(name: str) -> Callable[[httpx.Request], httpx.Response]:
    rec = recorded(name)
    return lambda request: httpx.Response(rec["status"], headers=rec["headers"], json=rec["body"])


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def collect(items: AsyncIterator[Any]) -> list[Any]:
    return [item async for item in items]


def api() -> ArmApi:
    return ArmClient().build(ClientContext("int_az", CREDENTIAL, None, None))


def op_context(client: ArmApi) -> OperationContext:
    return OperationContext(integration_id="int_az", tenant_id="tenant_1", config=NoConfig(), client=client,
                            operator_config=None, user_input=None)


def sync(operation: Any) -> list[Payload]:
    async def scenario() -> list[Payload]:
        async with api() as client:
            return await collect(operation.ingest(op_context(client)))

    return run(scenario())


def mock_token(router: respx.Router, name: str = "token") -> respx.Route:
    return router.post(TOKEN_URL).mock(side_effect=reply(name))


def ingest(payloads: list[Payload], operation: Any) -> list[Vulnerability]:
    registry = Registry()
    registry.register(definition)
    ctx = IngestContext(tenant_id="tenant_1", integration_id="int_az", definition_id="azure_security_center",
                        emits=operation.emits, origin=operation.operation_id())
    outcomes = IngestPipeline(registry).dry_run(ctx, payloads)
    assert [o.status for o in outcomes] == ["mapped"] * len(payloads), [o.reason for o in outcomes]
    return [Vulnerability.model_validate({**o.object.model_dump(), "tenant_id": "tenant_1", "integration_id": "int_az",
                                         "definition_id": "azure_security_center"}) for o in outcomes]


def test_definition_registers_with_client_credentials() -> None:
    for registry in (Registry(), Registry(allow_loopback=False)):
        registry.register(definition)
    assert definition.manual_slots() == (AzureServicePrincipal,)


def test_health_check_and_resolve_mint_one_token() -> None:
    async def scenario() -> Any:
        async with api() as client:
            health = await HealthCheck().run(op_context(client))
            ctx = ConnectionContext("int_az", CREDENTIAL, client, None, None)
            return health, await ServicePrincipalConnection().resolve(ctx)

    with respx.mock(assert_all_called=True) as router:
        token = mock_token(router)
        subscription = router.get(f"{ARM}/subscriptions/{SUB}").mock(side_effect=reply("subscription"))
        health, metadata = run(scenario())
    assert health == {"ok": True, "subscription": "Acme Production", "state": "Enabled"}
    assert (metadata.account_id, metadata.account_name, metadata.workspace) == (SUB, "Acme Production", TENANT)
    assert token.call_count == 1
    form = dict(x.split("=") for x in token.calls.last.request.content.decode().split("&"))
    assert form["grant_type"] == "client_credentials"
    assert form["scope"] == "https%3A%2F%2Fmanagement.azure.com%2F.default"
    request = subscription.calls.last.request
    assert request.headers["Authorization"].startswith("Bearer eyJ0eXAi")
    assert request.url.params["api-version"] == "2022-12-01"


def test_assessments_follow_next_link_and_map_to_vulnerabilities() -> None:
    def pages(request: httpx.Request) -> httpx.Response:
        return reply("assessments_page2" if "$skipToken" in str(request.url) else "assessments_page1")(request)

    with respx.mock() as router:
        mock_token(router)
        route = router.get(f"{ARM}/subscriptions/{SUB}/providers/Microsoft.Security/assessments").mock(
            side_effect=pages)
        payloads = sync(AssessmentsCollect())
    assert route.call_count == 2 and "skipToken" in str(route.calls[1].request.url)
    assert {(p.schema, p.variant) for p in payloads} == {("vulnerability", "assessment")}
    unhealthy, healthy = ingest(payloads, AssessmentsCollect)
    assert unhealthy.external_id.endswith("/assessments/1195afff-c881-495e-9bc5-1486211ae03f")
    assert (unhealthy.title, unhealthy.severity, unhealthy.status, unhealthy.source) == (
        "Machines should have vulnerability findings resolved", "high", "open", "defender_for_cloud")
    assert unhealthy.resource_identifier == VM
    assert unhealthy.url.startswith("https://portal.azure.com/#blade/Microsoft_Azure_Security/")
    assert unhealthy.description.startswith("Resolve the findings")
    assert (healthy.status, healthy.severity, healthy.url, healthy.description) == ("resolved", "medium", None, None)


def test_sub_assessments_map_to_vulnerabilities() -> None:
    with respx.mock() as router:
        mock_token(router)
        router.get(f"{ARM}/subscriptions/{SUB}/providers/Microsoft.Security/subAssessments").mock(
            side_effect=reply("sub_assessments"))
        payloads = sync(SubAssessmentsCollect())
    cve, sql = ingest(payloads, SubAssessmentsCollect)
    assert (cve.cve_id, cve.severity, cve.status, cve.resource_identifier) == ("CVE-2024-6387", "high", "open", VM)
    assert cve.title == "OpenSSH regreSSHion remote code execution"
    assert cve.published_at == datetime(2024, 7, 1, 13, 15, tzinfo=UTC)
    assert cve.attributes["remediation"].startswith("Update openssh-server")
    assert (sql.cve_id, sql.severity, sql.status, sql.published_at) == (None, "low", "resolved", None)
    assert sql.attributes["assessed_resource_type"] == "SqlServerVulnerability"


def test_next_link_to_another_origin_is_refused() -> None:
    with respx.mock() as router:
        mock_token(router)
        router.get(f"{ARM}/subscriptions/{SUB}/providers/Microsoft.Security/assessments").respond(
            200, json={"value": [], "nextLink": "https://evil.example/steal"})
        with pytest.raises(ProviderError, match="another origin"):
            sync(AssessmentsCollect())


@pytest.mark.parametrize("name", ["error_401", "error_403"])
def test_401_and_403_are_unauthorized_without_the_message(name: str) -> None:
    with respx.mock() as router:
        mock_token(router)
        router.get(f"{ARM}/subscriptions/{SUB}/providers/Microsoft.Security/subAssessments").mock(
            side_effect=reply(name))
        with pytest.raises(ProviderError) as caught:
            sync(SubAssessmentsCollect())
    assert caught.value.code == "unauthorized"
    assert "invalid" not in str(caught.value) and "does not have" not in str(caught.value)


def test_refused_token_request_is_unauthorized() -> None:
    async def scenario() -> None:
        async with api() as client:
            await HealthCheck().run(op_context(client))

    with respx.mock(assert_all_called=False) as router:
        mock_token(router, "token_error")
        subscription = router.get(f"{ARM}/subscriptions/{SUB}")
        with pytest.raises(ProviderError) as caught:
            run(scenario())
    assert caught.value.code == "unauthorized" and "AADSTS" not in str(caught.value)
    assert subscription.call_count == 0


def test_429_is_rate_limited_with_retry_after() -> None:
    with respx.mock() as router:
        mock_token(router)
        router.get(f"{ARM}/subscriptions/{SUB}/providers/Microsoft.Security/assessments").mock(
            side_effect=reply("error_429"))
        with pytest.raises(ProviderError) as caught:
            sync(AssessmentsCollect())
    assert (caught.value.code, caught.value.retry_after) == ("rate_limited", 17.0)
    assert "being throttled" not in str(caught.value)
