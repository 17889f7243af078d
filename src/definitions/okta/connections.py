"""Connections: an API token (quickest), or an API service app (no admin's personal token involved).

Both are entered by hand on a form next to the org URL; each says how it is checked, what it is connected to
and how it is torn down. Connection class names are stable IDs (``provider_data.connection``).
"""

from __future__ import annotations

from typing import cast

from definitions.okta.api import get_json
from definitions.okta.client import OktaClient
from definitions.okta.config import OktaSettings
from definitions.okta.operations import HealthCheck
from definitions.okta.slots import OktaApiToken, OktaServiceApp
from engine import (
    Connection,
    ConnectionContext,
    IntegrationMetadata,
    NoRevocation,
    ProviderError,
)


class OktaApiTokenConnection(Connection):
    """An API token created by an Okta admin (a read-only administrator is enough)."""

    title = "Use an API token"
    credential = OktaApiToken
    clients = (OktaClient,)
    validate = HealthCheck
    disconnect = NoRevocation(
        reason="Tether forgets the token but does not revoke it. Revoke it in the Okta Admin Console under "
        "Security → API → Tokens.",
    )

    async def resolve(self, ctx: ConnectionContext) -> IntegrationMetadata:
        return await _org(ctx)


class OktaServiceAppConnection(Connection):
    """An API services app granted ``okta.users.read`` and ``okta.groups.read``, authenticating with a key."""

    title = "Use an API service app"
    credential = OktaServiceApp
    clients = (OktaClient,)
    validate = HealthCheck
    # Its access tokens expire within the hour; the app itself belongs to the org's admins.
    disconnect = NoRevocation(
        reason="Tether forgets the app's key. To cut access at Okta, deactivate the app or revoke its API scopes "
        "under Applications in the Okta Admin Console.",
    )

    async def resolve(self, ctx: ConnectionContext) -> IntegrationMetadata:
        return await _org(ctx)


async def _org(ctx: ConnectionContext) -> IntegrationMetadata:
    """The org's ID and company name from ``/api/v1/org``, else (without ``okta.orgs.read``) its URL alone."""
    org_url = cast(OktaSettings, ctx.user_input).org_url
    host = org_url.removeprefix("https://")
    try:
        org = await get_json(ctx.client, "/api/v1/org")
    except ProviderError as exc:
        if exc.provider_status != 403:
            raise
        return IntegrationMetadata(account_name=host, workspace=host, url=org_url)
    return IntegrationMetadata(
        account_id=org.get("id"),
        account_name=org.get("companyName") or host,
        workspace=org.get("subdomain") or host,
        url=org_url,
    )
