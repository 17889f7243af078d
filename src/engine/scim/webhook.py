"""The SCIM endpoint, declared as a webhook so the engine gives each integration an endpoint row.

The row's public token is the path segment of ``/v1/scim/{token}/v2`` and its generated secret (sealed by the key
ring) is the bearer token the identity provider sends; ``engine.api.scim`` compares it in constant time
(``engine.webhooks.verification.verify_bearer``). The SCIM routes call the store directly (synchronously, as SCIM
clients expect the result in the response); the events below exist so the (schema, variant) pairs the store ingests are
declared, and so a resource posted to the generic webhook URL with ``X-Tether-Scim-Resource: User|Group`` lands the
same way.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from engine import BearerToken, Emits, EndpointSecret, EventContext, Header, Payload, Webhook, WebhookEvent
from engine.scim.mappings import group_payloads, user_payloads

USER_EMITS = (Emits("directory_account", "user"),)
GROUP_EMITS = (Emits("directory_group", "group"), Emits("directory_membership", "member"))


class ScimUser(WebhookEvent):
    """A full SCIM User resource."""

    match = "User"
    emits = USER_EMITS

    async def handle(self, ctx: EventContext) -> AsyncIterator[Payload]:
        if isinstance(ctx.payload, dict) and ctx.payload.get("id"):
            for payload in user_payloads(ctx.payload):
                yield payload


class ScimGroup(WebhookEvent):
    """A full SCIM Group resource, members included."""

    match = "Group"
    emits = GROUP_EMITS

    async def handle(self, ctx: EventContext) -> AsyncIterator[Payload]:
        if isinstance(ctx.payload, dict) and ctx.payload.get("id"):
            for payload in group_payloads(ctx.payload):
                yield payload


class ScimEndpoint(Webhook):
    name = "scim"
    verifier = BearerToken(secret=EndpointSecret())
    event_type = Header("X-Tether-Scim-Resource")
    events = (ScimUser, ScimGroup)
