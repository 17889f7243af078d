"""Connections: an admin's OAuth grant (recommended for a quick start), or a service account with domain-wide
delegation (recommended for production: it does not depend on one person staying an admin).

Connection class names are stable IDs (``provider_data.connection``).
"""

from __future__ import annotations

from typing import cast

from definitions.google_workspace.client import SCOPES, GoogleWorkspaceClient
from definitions.google_workspace.config import GoogleWorkspaceInput
from definitions.google_workspace.operations import HealthCheck
from definitions.google_workspace.rest import get_json
from definitions.google_workspace.slots import GoogleServiceAccountKey, GoogleWorkspaceOAuthToken
from engine import (
    Connection,
    ConnectionContext,
    IntegrationMetadata,
    NoRevocation,
    OAuth2,
    Revoke,
)


async def customer_metadata(ctx: ConnectionContext) -> IntegrationMetadata:
    """The Workspace customer the credential reads: its ID, primary domain and organisation name."""
    user_input = cast(GoogleWorkspaceInput | None, ctx.user_input)
    key = user_input.customer_id if user_input and user_input.customer_id else "my_customer"
    customer = await get_json(ctx.client, f"/admin/directory/v1/customers/{key}")
    address = customer.get("postalAddress") or {}
    return IntegrationMetadata(
        account_id=customer.get("id"),
        account_name=address.get("organizationName") or customer.get("customerDomain"),
        workspace=customer.get("customerDomain"),
        attributes={"customer_id": customer.get("id"), "domain": customer.get("customerDomain")},
    )


class GoogleWorkspaceOAuthConnection(Connection):
    """A super admin (or an admin with read access to users and groups) grants offline access.

    ``access_type=offline`` asks for a refresh token and ``prompt=consent`` makes Google issue one again on a
    reconnect (it sends a refresh token only on the first consent otherwise).
    """

    title = "Sign in with a Google Workspace admin"
    credential = GoogleWorkspaceOAuthToken
    clients = (GoogleWorkspaceClient,)
    auth = OAuth2(
        slot=GoogleWorkspaceOAuthToken,
        authorize_url="https://accounts.google.com/o/oauth2/v2/auth",
        token_url="https://oauth2.googleapis.com/token",
        revoke_url="https://oauth2.googleapis.com/revoke",
        scopes=SCOPES,
        extra_authorize_params=(("access_type", "offline"), ("prompt", "consent")),
    )
    validate = HealthCheck
    # RFC 7009 at Google's revoke endpoint: revoking the refresh token removes the whole grant.
    disconnect = Revoke(GoogleWorkspaceOAuthToken)

    async def resolve(self, ctx: ConnectionContext) -> IntegrationMetadata:
        return await customer_metadata(ctx)


class GoogleServiceAccountConnection(Connection):
    """A service account whose client ID an admin authorised for the read-only scopes (domain-wide delegation).

    The JSON key is pasted into the form; the admin it acts for is the user input's ``admin_email``.
    """

    title = "Use a service account (domain-wide delegation)"
    credential = GoogleServiceAccountKey
    clients = (GoogleWorkspaceClient,)
    validate = HealthCheck
    disconnect = NoRevocation(
        reason="Tether forgets the key but cannot delete it. In the Google Cloud console, delete the key under "
        "IAM & Admin → Service accounts → Keys, and in the Admin console remove the client ID under Security → "
        "Access and data control → API controls → Domain-wide delegation.",
    )

    async def resolve(self, ctx: ConnectionContext) -> IntegrationMetadata:
        return await customer_metadata(ctx)
