"""The Cloudflare definition: every part of the provider, declared in one place."""

from __future__ import annotations

from definitions.cloudflare.client import CloudflareClient
from definitions.cloudflare.connections import CloudflareTokenConnection
from definitions.cloudflare.mappings import MAPPINGS
from definitions.cloudflare.operations import HealthCheck, SecurityEventSync, ZoneSync
from definitions.cloudflare.slots import CloudflareApiToken
from engine import Definition

definition = Definition(
    id="cloudflare",
    name="Cloudflare",
    description="Sync an account's zones and DNS records as assets, and its security events as findings.",
    category="cloud_security",
    docs_url="https://developers.cloudflare.com/fundamentals/api/get-started/create-token/",
    slots=(CloudflareApiToken,),
    clients=(CloudflareClient,),
    connections=(CloudflareTokenConnection,),
    operations=(HealthCheck, ZoneSync, SecurityEventSync),
    mappings=MAPPINGS,
    standard_suite_skips={
        "webhook.verifies": "Cloudflare has no webhook Tether receives: zones, DNS and events are read by polling",
        "webhook.refuses_tampered": "Cloudflare has no webhook Tether receives: nothing to tamper with",
    },
)
