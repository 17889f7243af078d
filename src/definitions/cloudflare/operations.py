"""Operations: the health check, the zone and DNS inventory, and security events.

The inventory reads every zone of the account and every DNS record of each zone, each run in full. Security
events come from the GraphQL Analytics API (``firewallEventsAdaptive``: WAF, rate limiting, bot management,
firewall rules…), read in time order from the previous run's start, so each run reads only what is new.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import httpx
from pydantic import BaseModel, ConfigDict, Field

from definitions.cloudflare.api import check, get, paginate
from definitions.cloudflare.client import CloudflareApi, CloudflareClient
from engine import Emits, Operation, OperationContext, Payload, Policy, ProviderError

#: The most events one GraphQL query returns; a full page means there may be more.
EVENT_PAGE = 1000
EVENTS_QUERY = """
query SecurityEvents($zoneTag: string, $since: Time, $until: Time, $limit: Int) {
  viewer {
    zones(filter: {zoneTag: $zoneTag}) {
      firewallEventsAdaptive(filter: {datetime_geq: $since, datetime_leq: $until}, limit: $limit,
                             orderBy: [datetime_ASC]) {
        action clientAsn clientCountryName clientIP clientRequestHTTPHost clientRequestHTTPMethodName
        clientRequestPath datetime rayName ruleId source userAgent
      }
    }
  }
}
"""


class HealthCheck(Operation):
    """The token is active (``/user/tokens/verify``) and can read the account."""

    client = CloudflareClient
    policy = Policy.inline()

    async def run(self, ctx: OperationContext) -> dict[str, Any]:
        token = await get(cast(CloudflareApi, ctx.client).http, "/user/tokens/verify")
        if not isinstance(token, dict) or token.get("status") != "active":
            raise ProviderError("the Cloudflare API token is not active", code="unauthorized")
        return {"ok": True, "token_status": token["status"]}


class ZoneSync(Operation):
    """Sync the account's zones and their DNS records into ``asset`` rows (variants ``zone`` and ``dns_record``)."""

    client = CloudflareClient
    policy = Policy.queued(reconcile=True, schedule=timedelta(hours=6))
    emits = (Emits("asset", "zone"), Emits("asset", "dns_record"))

    async def ingest(self, ctx: OperationContext) -> AsyncIterator[Payload]:
        api = cast(CloudflareApi, ctx.client)
        client = api.http
        zones = [zone async for zone in paginate(client, "/zones", **{"account.id": api.account_id})]
        for zone in zones:
            yield Payload(schema="asset", variant="zone", resource="zone", data=zone)
        for zone in zones:
            async for record in paginate(client, f"/zones/{zone['id']}/dns_records", per_page=100):
                yield record_payload(zone, record)


def record_payload(zone: dict[str, Any], record: dict[str, Any]) -> Payload:
    """One DNS record as its payload. The current API no longer names the zone on each record (``zone_id`` and
    ``zone_name`` were removed from DNS record answers); the zone it was listed from does."""
    data = {"zone_id": zone["id"], "zone_name": zone.get("name"), **record}
    return Payload(schema="asset", variant="dns_record", resource="dns_record", data=data)


class EventsConfig(BaseModel):
    """How far back the first run reads (the plan's retention limits what Cloudflare still has)."""

    model_config = ConfigDict(extra="forbid")

    lookback_hours: int = Field(default=24, ge=1, le=24 * 30)


class SecurityEventSync(Operation):
    """Sync security events (blocked, challenged or logged requests) into ``finding`` rows, zone by zone."""

    config = EventsConfig
    client = CloudflareClient
    policy = Policy.queued(reconcile=True, schedule=timedelta(minutes=15))
    emits = (Emits("finding", "security_event"),)

    async def ingest(self, ctx: OperationContext) -> AsyncIterator[Payload]:
        api = cast(CloudflareApi, ctx.client)
        client = api.http
        until = datetime.now(UTC).replace(microsecond=0)
        since = _since(ctx, until)
        async for zone in paginate(client, "/zones", **{"account.id": api.account_id}):
            async for event in zone_events(client, zone["id"], since, until):
                yield Payload(
                    schema="finding",
                    variant="security_event",
                    resource="firewall_event",
                    data={"zone": {"id": zone["id"], "name": zone.get("name")}, "event": event},
                )
        ctx.next_cursor = until.isoformat()


async def zone_events(
    client: httpx.AsyncClient,
    zone_id: str,
    since: datetime,
    until: datetime,
) -> AsyncIterator[dict[str, Any]]:
    """Events of one zone in ``[since, until]``, oldest first, a page of ``EVENT_PAGE`` at a time.

    The next page starts at the last event's time (``datetime_geq``), so events sharing that second are read
    twice and upserted twice (harmless); a full page that does not move time forward stops the zone.
    """
    start = _iso(since)
    while True:
        variables = {"zoneTag": zone_id, "since": start, "until": _iso(until), "limit": EVENT_PAGE}
        body = await check(await client.post("/graphql", json={"query": EVENTS_QUERY, "variables": variables}))
        if body.get("errors"):
            raise ProviderError("Cloudflare's GraphQL API answered errors to the security events query")
        zones = ((body.get("data") or {}).get("viewer") or {}).get("zones") or []
        events = zones[0].get("firewallEventsAdaptive") or [] if zones else []
        for event in events:
            yield event
        if len(events) < EVENT_PAGE or events[-1].get("datetime") in (None, start):
            return
        start = events[-1]["datetime"]


def _since(ctx: OperationContext, until: datetime) -> datetime:
    if isinstance(ctx.cursor, str):
        with contextlib.suppress(ValueError):  # an unreadable cursor falls back to the lookback window below
            return min(datetime.fromisoformat(ctx.cursor), until)
    hours = ctx.config.lookback_hours if isinstance(ctx.config, EventsConfig) else EventsConfig().lookback_hours
    return until - timedelta(hours=hours)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
