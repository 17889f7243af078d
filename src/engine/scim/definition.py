"""The SCIM definition: no credential and no outbound client; one push endpoint per integration."""

from __future__ import annotations

from engine import Definition
from engine.scim.mappings import GROUP, MEMBERSHIP, USER
from engine.scim.webhook import ScimEndpoint

definition = Definition(
    id="scim",
    name="SCIM 2.0",
    description="Receive users and groups pushed by an identity provider (Okta, Entra ID…) over SCIM 2.0.",
    category="identity",
    docs_url="https://datatracker.ietf.org/doc/html/rfc7644",
    webhooks=(ScimEndpoint,),
    mappings=(USER, GROUP, MEMBERSHIP),
    standard_suite_skips={
        check: "SCIM is pushed by the identity provider: Tether holds no credential and never calls it"
        for check in (
            "health.passes",
            "health.unauthorized",
            "auth.refreshes",
            "rate_limit.retry_after",
            "ingest.pages_to_end",
            "ingest.maps_records",
            "ingest.resumes",
            "ingest.repeated_cursor",
            "disconnect.revokes",
        )
    },
)
