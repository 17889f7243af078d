"""Cloudflare against its documented v4 REST and GraphQL Analytics shapes, replayed by respx (no network)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from pydantic import SecretStr, ValidationError

from definitions.cloudflare import definition
from definitions.cloudflare.client import CloudflareApi, CloudflareClient
from definitions.cloudflare.connections import CloudflareTokenConnection
from definitions.cloudflare.operations import EventsConfig, HealthCheck, SecurityEventSync, ZoneSync
from definitions.cloudflare.slots import CloudflareApiToken
from engine import ClientContext, ConnectionContext, NoConfig, OperationContext, Payload, ProviderError
from engine.catalog.registry import Registry
from ingest.models.asset import Asset
from ingest.models.finding import Finding
from ingest.pipeline import IngestContext, IngestPipeline
from support.cassette_fixtures import response_fixture

API = "https://api.cloudflare.com/client/v4"
FIXTURES = Path(__file__).parents[1] / "fixtures" / "cloudflare"
ACCOUNT = "023e105f4ecef8ad9ca31a8372d0c353"
ZONE1 = "9a7b105f4ecef8ad9ca31a8372d0c353"
ZONE2 = "5b1a3f7c9d2e4b6a8c0d1e2f3a4b5c6d"
TOKEN = "cf-test-token-0000000000000000000000000"
CREDENTIAL = CloudflareApiToken(api_token=SecretStr(TOKEN), account_id=ACCOUNT)


def recorded(name: str) -> dict[str, Any]:
    return response_fixture(FIXTURES, name)


def reply(name: str) -> Callable[[httpx.Request], httpx.Response]:
    rec = recorded(name)
    return lambda request: httpx.Response(rec["status"], headers=rec["headers"], json=rec["body"])


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def collect(items: AsyncIterator[Any]) -> list[Any]:
    return [item async for item in items]


def api() -> CloudflareApi:
    return CloudflareClient().build(ClientContext("int_cf", CREDENTIAL, None, None))


def op_context(client: CloudflareApi, config: Any = None, cursor: Any = None) -> OperationContext:
    return OperationContext(integration_id="int_cf", tenant_id="tenant_1", config=config or NoConfig(),
                            client=client, operator_config=None, user_input=None, cursor=cursor)


def sync(operation: Any, **kwargs: Any) -> tuple[list[Payload], OperationContext]:
    async def scenario() -> tuple[list[Payload], OperationContext]:
        async with api() as client:
            ctx = op_context(client, **kwargs)
            return await collect(operation.ingest(ctx)), ctx

    return run(scenario())


def mock_zones(router: respx.Router) -> respx.Route:
    pages = {"1": reply("zones_page1"), "2": reply("zones_page2")}
    return router.get("/zones").mock(side_effect=lambda r: pages[r.url.params["page"]](r))


def ingest(payloads: list[Payload], operation: Any) -> list[Any]:
    registry = Registry()
    registry.register(definition)
    ctx = IngestContext(tenant_id="tenant_1", integration_id="int_cf", definition_id="cloudflare",
                        emits=operation.emits, origin=operation.operation_id())
    outcomes = IngestPipeline(registry).dry_run(ctx, payloads)
    assert [o.status for o in outcomes] == ["mapped"] * len(payloads), [o.reason for o in outcomes]
    return [o.object for o in outcomes]


def model(cls: type[Any], record: Any) -> Any:
    return cls.model_validate({**record.model_dump(), "tenant_id": "tenant_1", "integration_id": "int_cf",
                               "definition_id": "cloudflare"})


# -- registration, health check, resolve ----------------------------------------------------------------------


def test_definition_registers_and_the_slot_is_strict() -> None:
    for registry in (Registry(), Registry(allow_loopback=False)):
        registry.register(definition)
    with pytest.raises(ValidationError):
        CloudflareApiToken(api_token=SecretStr("x"), account_id="../zones")


def test_health_check_verifies_the_token() -> None:
    async def scenario() -> Any:
        async with api() as client:
            return await HealthCheck().run(op_context(client))

    with respx.mock(base_url=API) as router:
        verify = router.get("/user/tokens/verify").mock(side_effect=reply("token_verify"))
        assert run(scenario()) == {"ok": True, "token_status": "active"}
    assert verify.calls.last.request.headers["Authorization"] == f"Bearer {TOKEN}"


def test_resolve_reads_the_account() -> None:
    async def scenario() -> Any:
        async with api() as client:
            ctx = ConnectionContext("int_cf", CREDENTIAL, client, None, None)
            return await CloudflareTokenConnection().resolve(ctx)

    with respx.mock(base_url=API) as router:
        router.get(f"/accounts/{ACCOUNT}").mock(side_effect=reply("account"))
        metadata = run(scenario())
    assert (metadata.account_id, metadata.account_name) == (ACCOUNT, "Acme Corp")
    assert "api-tokens" in CloudflareTokenConnection.disconnect.reason


# -- zones and DNS records --------------------------------------------------------------------------------------


def test_zone_sync_pages_by_number_and_by_cursor() -> None:
    dns = {f"/client/v4/zones/{ZONE2}/dns_records": reply("dns_records_empty")}

    def records(request: httpx.Request) -> httpx.Response:
        if request.url.path in dns:
            return dns[request.url.path](request)
        name = "dns_records_page2" if request.url.params.get("cursor") == "Mx0xMjM0NTY3ODkw" else "dns_records_page1"
        return reply(name)(request)

    with respx.mock(base_url=API) as router:
        zones = mock_zones(router)
        dns_route = router.get(path__regex=r"/zones/[0-9a-f]+/dns_records").mock(side_effect=records)
        payloads, _ = sync(ZoneSync())
    assert [(p.variant, p.data["name"]) for p in payloads] == [
        ("zone", "acme.com"), ("zone", "acme.dev"), ("dns_record", "www.acme.com"), ("dns_record", "acme.com")]
    assert [c.request.url.params["page"] for c in zones.calls] == ["1", "2"]
    assert all(c.request.url.params["account.id"] == ACCOUNT for c in zones.calls)
    assert [c.request.url.params.get("cursor") for c in dns_route.calls] == [None, "Mx0xMjM0NTY3ODkw", None]


def test_zone_and_dns_record_mappings() -> None:
    zone, moved = recorded("zones_page1")["body"]["result"][0], recorded("zones_page2")["body"]["result"][0]
    record = recorded("dns_records_page1")["body"]["result"][0]
    payloads = [Payload("asset", zone, "zone"), Payload("asset", moved, "zone"), Payload("asset", record, "dns_record")]
    a_zone, a_moved, a_record = (model(Asset, r) for r in ingest(payloads, ZoneSync))
    assert (a_zone.source_identifier, a_zone.name, a_zone.asset_type, a_zone.owner) == (
        ZONE1, "acme.com", "dns_zone", "Acme Corp")
    assert a_zone.url == f"https://dash.cloudflare.com/{ACCOUNT}/acme.com"
    assert a_zone.archived is False and a_moved.archived is True
    assert a_zone.attributes["plan"] == "Free Website"
    assert a_zone.source_updated_at == datetime(2026, 10, 20, 12, tzinfo=UTC)
    assert (a_record.name, a_record.asset_type, a_record.visibility, a_record.description) == (
        "www.acme.com", "dns_record", "proxied", "Web front")
    assert a_record.attributes == {"type": "A", "content": "198.51.100.4", "ttl": 1, "zone_id": ZONE1,
                                   "zone_name": "acme.com"}


# -- security events --------------------------------------------------------------------------------------------


def test_security_event_sync_reads_from_the_cursor_and_maps_to_findings() -> None:
    def events(request: httpx.Request) -> httpx.Response:
        zone = json.loads(request.content)["variables"]["zoneTag"]
        return reply("firewall_events" if zone == ZONE1 else "firewall_events_empty")(request)

    cursor = "2026-11-23T10:00:00+00:00"
    with respx.mock(base_url=API) as router:
        mock_zones(router)
        graphql = router.post("/graphql").mock(side_effect=events)
        payloads, ctx = sync(SecurityEventSync(), config=EventsConfig(), cursor=cursor)
    sent = json.loads(graphql.calls[0].request.content)
    assert sent["variables"]["since"] == "2026-11-23T10:00:00Z" and sent["variables"]["limit"] == 1000
    assert "firewallEventsAdaptive" in sent["query"]
    assert datetime.fromisoformat(ctx.next_cursor) > datetime.now(UTC) - timedelta(minutes=1)
    blocked, challenged = (model(Finding, r) for r in ingest(payloads, SecurityEventSync))
    assert blocked.external_id == f"{ZONE1}:8e2f4b1c9a7d3e5f:waf:efb7b8c949ac4650a09736fc376e9aee"
    assert blocked.title == "Cloudflare waf block on www.acme.com"
    assert blocked.description == "POST /wp-login.php from 203.0.113.7 (NL)"
    assert (blocked.severity, blocked.status, blocked.category, blocked.source) == ("low", "block", "waf", "cloudflare")
    assert blocked.first_seen_at == datetime(2026, 11, 23, 10, 15, 2, tzinfo=UTC)
    assert blocked.resource_identifier == ZONE1 and blocked.attributes["zone_name"] == "acme.com"
    assert (challenged.status, challenged.severity) == ("managed_challenge", "low")


def test_graphql_errors_are_a_provider_error_without_the_message() -> None:
    with respx.mock(base_url=API) as router:
        mock_zones(router)
        router.post("/graphql").mock(side_effect=reply("graphql_error"))
        with pytest.raises(ProviderError) as caught:
            sync(SecurityEventSync(), config=EventsConfig())
    assert "does not have access" not in str(caught.value)


# -- the envelope's errors --------------------------------------------------------------------------------------


def test_401_is_unauthorized_without_the_message() -> None:
    async def scenario() -> None:
        async with api() as client:
            await HealthCheck().run(op_context(client))

    with respx.mock(base_url=API) as router:
        router.get("/user/tokens/verify").mock(side_effect=reply("error_401"))
        with pytest.raises(ProviderError) as caught:
            run(scenario())
    assert (caught.value.code, caught.value.provider_status) == ("unauthorized", 401)
    assert "Authentication error" not in str(caught.value) and "10000" in str(caught.value)


def test_429_is_rate_limited_with_retry_after() -> None:
    with respx.mock(base_url=API) as router:
        router.get("/zones").mock(side_effect=reply("error_429"))
        with pytest.raises(ProviderError) as caught:
            sync(ZoneSync())
    assert (caught.value.code, caught.value.retry_after) == ("rate_limited", 30.0)
    assert "throttling" not in str(caught.value)


def test_unsuccessful_envelope_with_200_is_an_error() -> None:
    with respx.mock(base_url=API) as router:
        router.get("/zones").mock(side_effect=reply("error_200_unsuccessful"))
        with pytest.raises(ProviderError) as caught:
            sync(ZoneSync())
    assert caught.value.code == "provider_error" and "1003" in str(caught.value)
    assert "Invalid or missing" not in str(caught.value)
