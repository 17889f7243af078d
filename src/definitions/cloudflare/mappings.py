"""Mappings: zones and DNS records into ``asset``, security events into ``finding``."""

from __future__ import annotations

from engine import Mapping
from engine.kit.celpaths import optional, present, text

# Field presence follows the current v4 API (cloudflare/cloudflare-python's generated types): a zone's
# ``status``, ``paused`` and plan name are optional; a DNS record's ``content``, ``proxied``, ``ttl`` and
# ``comment`` are optional (CAA, SRV, ... records carry ``data`` instead of ``content``), and records no longer
# carry ``zone_id``/``zone_name`` (``DnsSync`` adds the zone it listed them from).

ZONE = Mapping(
    schema="asset",
    variant="zone",
    map=f"""
    {{
      "source_identifier": payload.id,
      "name": payload.name,
      "asset_type": "dns_zone",
      "url": "https://dash.cloudflare.com/" + payload.account.id + "/" + payload.name,
      "owner": {text("account.name")},
      "archived": {present("status")} && (payload.status == "moved" || payload.status == "deleted"),
      "source_updated_at": {optional("modified_on")},
      "attributes": {{
        "status": {optional("status")},
        "paused": {optional("paused")},
        "plan": {present("plan")} ? {text("plan.name")} : null,
        "name_servers": {present("name_servers")} ? payload.name_servers : []
      }}
    }}
    """,
)

DNS_RECORD = Mapping(
    schema="asset",
    variant="dns_record",
    map=f"""
    {{
      "source_identifier": payload.id,
      "name": payload.name,
      "asset_type": "dns_record",
      "description": {text("comment")},
      "visibility": {present("proxied")} && payload.proxied == true ? "proxied" : "dns_only",
      "source_updated_at": {optional("modified_on")},
      "attributes": {{
        "type": payload.type,
        "content": {optional("content")},
        "ttl": {optional("ttl")},
        "zone_id": {optional("zone_id")},
        "zone_name": {optional("zone_name")}
      }}
    }}
    """,
)

#: One event per (request, rule): the ray ID names the request, the rule what acted on it.
SECURITY_EVENT = Mapping(
    schema="finding",
    variant="security_event",
    map="""
    {
      "external_id": payload.zone.id + ":" + payload.event.rayName + ":" + payload.event.source + ":" +
          payload.event.ruleId,
      "title": "Cloudflare " + payload.event.source + " " + payload.event.action + " on " +
          payload.event.clientRequestHTTPHost,
      "description": payload.event.clientRequestHTTPMethodName + " " + payload.event.clientRequestPath +
          " from " + payload.event.clientIP + " (" + payload.event.clientCountryName + ")",
      "severity": payload.event.action in ["block", "managed_challenge", "challenge", "jschallenge"]
          ? "low" : "informational",
      "status": payload.event.action,
      "category": payload.event.source,
      "source": "cloudflare",
      "resource_identifier": payload.zone.id,
      "url": "https://dash.cloudflare.com/?to=/:account/" + payload.zone.name + "/security/events",
      "first_seen_at": payload.event.datetime,
      "last_seen_at": payload.event.datetime,
      "attributes": {
        "ray_id": payload.event.rayName,
        "rule_id": payload.event.ruleId,
        "client_ip": payload.event.clientIP,
        "client_asn": has(payload.event.clientAsn) ? payload.event.clientAsn : null,
        "user_agent": has(payload.event.userAgent) ? payload.event.userAgent : null,
        "zone_name": payload.zone.name
      }
    }
    """,
)

MAPPINGS = (ZONE, DNS_RECORD, SECURITY_EVENT)
