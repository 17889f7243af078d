"""Cloudflare's zone and DNS record mappings against Cloudflare's own SDK fixtures and the current v4 API's shape.

``ZoneSync`` calls ``GET /zones`` and ``GET /zones/{zone_id}/dns_records``. The DNS answer is the official Go
SDK's recorded fixture (``cloudflare/cloudflare-go``); the current API's field presence is the one
``cloudflare/cloudflare-python``'s types (generated from Cloudflare's v4 OpenAPI) declare. Sources and commits
are named in ``tests/fixtures/cloudflare/published/dns_records_list.json``.

What they caught (docs/decisions.md): the current API no longer returns ``zone_id``/``zone_name`` on a DNS
record (the SDK fixture still has them), so the record's zone was lost; ``content`` is optional (a CAA or SRV
record carries ``data``), and ``payload.content`` failed such a record outright; a zone's ``status`` is optional
and failed the zone.
"""

from __future__ import annotations

from typing import Any

from definitions.cloudflare import definition
from definitions.cloudflare.operations import ZoneSync, record_payload
from engine import Payload
from support.published import land, recorded

ZONE = {"id": "d56084adb405e0b7e32c52321bf07be6", "name": "example.com"}


def records() -> list[dict[str, Any]]:
    return list(recorded("cloudflare", "dns_records_list", sources=("cloudflare/",))["body"]["result"])


def test_the_sdk_recorded_dns_records_land() -> None:
    apex, sub1, sub2 = land(definition, ZoneSync, [record_payload(ZONE, r) for r in records()])
    assert (apex.source_identifier, apex.name, apex.asset_type, apex.visibility) == (
        "372e67954025e0ba6aaa6d586b9e0b59",
        "example.com",
        "dns_record",
        "proxied",
    )
    assert apex.attributes == {
        "type": "A",
        "content": "198.51.100.4",
        "ttl": 120,
        "zone_id": "d56084adb405e0b7e32c52321bf07be6",
        "zone_name": "example.com",
    }
    assert (sub1.visibility, sub2.visibility) == ("dns_only", "proxied")


def test_a_current_api_record_without_zone_fields_or_content_keeps_its_zone() -> None:
    # The current API's answer for the same record: no zone_id, zone_name or locked; and a CAA record, which
    # carries data rather than content, with no comment, ttl or proxied.
    current = [{k: v for k, v in r.items() if k not in {"zone_id", "zone_name", "locked"}} for r in records()]
    caa = {k: v for k, v in current[0].items() if k not in {"content", "proxied", "ttl"}}
    caa |= {
        "id": "a0c1e9b2f7d84c5e9f1b2a3c4d5e6f70",
        "type": "CAA",
        "data": {"flags": 0, "tag": "issue", "value": "pki.goog"},
    }
    apex, caa_row = land(definition, ZoneSync, [record_payload(ZONE, current[0]), record_payload(ZONE, caa)])
    assert (apex.attributes["zone_id"], apex.attributes["zone_name"]) == (ZONE["id"], "example.com")
    assert (caa_row.attributes["type"], caa_row.attributes["content"], caa_row.attributes["ttl"]) == ("CAA", None, None)
    assert (caa_row.visibility, caa_row.description, caa_row.attributes["zone_id"]) == ("dns_only", None, ZONE["id"])


def test_a_zone_with_only_the_required_fields_lands() -> None:
    # Required on a current v4 Zone: id, account, created_on, development_mode, meta, modified_on, name,
    # name_servers, owner, plan; status and paused are optional.
    zone = {
        "id": ZONE["id"],
        "account": {"id": "01a7362d577a6c3019a474fd6f485823"},
        "created_on": "2014-01-01T05:20:00.12345Z",
        "development_mode": 0,
        "meta": {},
        "modified_on": "2014-01-01T05:20:00.12345Z",
        "name": "example.com",
        "name_servers": ["bob.ns.cloudflare.com", "lola.ns.cloudflare.com"],
        "owner": {},
        "plan": {},
    }
    [row] = land(definition, ZoneSync, [Payload(schema="asset", variant="zone", resource="zone", data=zone)])
    assert (row.name, row.owner, row.archived) == ("example.com", None, False)
    assert row.url == "https://dash.cloudflare.com/01a7362d577a6c3019a474fd6f485823/example.com"
    assert row.attributes == {
        "status": None,
        "paused": None,
        "plan": None,
        "name_servers": ["bob.ns.cloudflare.com", "lola.ns.cloudflare.com"],
    }
