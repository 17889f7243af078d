"""Mappings: zones and DNS records into ``asset``, security events into ``finding``."""

from __future__ import annotations

from engine import Mapping

ZONE = Mapping(
    schema="asset",
    variant="zone",
    map="""
    {
      "source_identifier": payload.id,
      "name": payload.name,
      "asset_type": "dns_zone",
      "url": "https://dash.cloudflare.com/" + payload.account.id + "/" + payload.name,
      "owner": has(payload.account.name) ? payload.account.name : null,
      "archived": payload.status == "moved" || payload.status == "deleted",
      "source_updated_at": has(payload.modified_on) ? payload.modified_on : null,
      "attributes": {
        "status": payload.status,
        "paused": has(payload.paused) ? payload.paused : null,
        "plan": has(payload.plan) && has(payload.plan.name) ? payload.plan.name : null,
        "name_servers": has(payload.name_servers) ? payload.name_servers : []
      }
    }
    """,
)

DNS_RECORD = Mapping(
    schema="asset",
    variant="dns_record",
    map="""
    {
      "source_identifier": payload.id,
      "name": payload.name,
      "asset_type": "dns_record",
      "description": has(payload.comment) ? payload.comment : null,
      "visibility": has(payload.proxied) && payload.proxied ? "proxied" : "dns_only",
      "source_updated_at": has(payload.modified_on) ? payload.modified_on : null,
      "attributes": {
        "type": payload.type,
        "content": payload.content,
        "ttl": has(payload.ttl) ? payload.ttl : null,
        "zone_id": has(payload.zone_id) ? payload.zone_id : null,
        "zone_name": has(payload.zone_name) ? payload.zone_name : null
      }
    }
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
