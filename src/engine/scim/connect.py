"""Connecting a SCIM integration: there is no credential to collect, so configuring it is connecting it.

``connect(runtime, principal, owner_id=…)`` finds or creates the principal's ``scim`` integration (``Setup.configure``),
marks it CONNECTED (audited, ``provider_data.connection = "push"``), creates its endpoint row (a public token and a
sealed bearer secret, ``engine.webhooks.endpoints.ensure_endpoints``) and returns what the identity provider needs: the
SCIM base URL and the bearer token. Calling it again returns the same URL and token.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from engine.integrations.lifecycle import transition
from engine.integrations.setup import Setup
from engine.store.tables import Health, Integration, IntegrationStatus, WebhookEndpoint
from engine.webhooks.endpoints import ensure_endpoints
from engine.webhooks.targets import endpoint_secret

if TYPE_CHECKING:
    from engine.api.principal import Principal
    from engine.runtime import Runtime

SCIM_PATH = "/v1/scim/{token}/v2"


@dataclass(frozen=True)
class ScimConnection:
    integration_id: str
    base_url: str
    token: str
    bearer_token: str


def base_url(runtime: Runtime, token: str) -> str:
    return runtime.settings.public_url.rstrip("/") + SCIM_PATH.format(token=token)


async def connect(runtime: Runtime, principal: Principal, *, owner_id: str = "", name: str = "") -> ScimConnection:
    integration = Setup(runtime).configure(principal, "scim", owner_id=owner_id, name=name)
    actor = f"server:{principal.tenant_id}" if principal.is_server else f"user:{principal.owner_id}"
    with runtime.db.session() as session:
        row = session.get(Integration, integration.id)
        assert row is not None
        if row.status != IntegrationStatus.connected:
            row.provider_data = {"connection": "push"}
            row.health = Health.valid
            transition(
                session,
                row,
                IntegrationStatus.connected,
                actor=actor,
                action="connect",
                detail={"connection": "push", "first": row.connected_at is None},
            )
    with runtime.db.session() as session:
        row = session.get_one(Integration, integration.id)
    endpoint = next(e for e in await ensure_endpoints(runtime, row) if e.webhook == "scim")
    with runtime.db.session() as session:
        stored = session.get_one(WebhookEndpoint, endpoint.id)
    secret = endpoint_secret(runtime, stored)
    assert secret is not None
    return ScimConnection(row.id, base_url(runtime, stored.token), stored.token, secret)
