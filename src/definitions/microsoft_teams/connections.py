"""Connection: a user signs in with their work account and grants delegated access (any organisation).

Connection class names are stable IDs (``provider_data.connection``).
"""

from __future__ import annotations

from definitions.microsoft_graph import get_json
from definitions.microsoft_teams.client import TeamsClient
from definitions.microsoft_teams.operations import HealthCheck
from definitions.microsoft_teams.slots import TeamsOAuthToken
from engine import Connection, ConnectionContext, IntegrationMetadata, NoRevocation, OAuth2

SCOPES = (
    "openid",
    "offline_access",
    "User.Read",
    "Team.ReadBasic.All",
    "Channel.ReadBasic.All",
    "ChannelMessage.Send",
    # The channel message sync; Microsoft marks it admin-consent only (docs/decisions.md).
    "ChannelMessage.Read.All",
)


class TeamsOAuthConnection(Connection):
    """Delegated OAuth 2.0 with PKCE against the ``organizations`` endpoints (work or school accounts only)."""

    title = "Sign in with Microsoft"
    credential = TeamsOAuthToken
    clients = (TeamsClient,)
    auth = OAuth2(
        slot=TeamsOAuthToken,
        authorize_url="https://login.microsoftonline.com/organizations/oauth2/v2.0/authorize",
        token_url="https://login.microsoftonline.com/organizations/oauth2/v2.0/token",
        scopes=SCOPES,
    )
    validate = HealthCheck
    disconnect = NoRevocation(
        reason="The Microsoft identity platform has no token revocation endpoint. Tether forgets the tokens; to "
        "end the grant, the user removes Tether at https://myapps.microsoft.com (or an admin deletes the "
        "enterprise application, or revokes the user's sessions, in the Entra admin center).",
    )

    async def resolve(self, ctx: ConnectionContext) -> IntegrationMetadata:
        me = await get_json(ctx.client, "/v1.0/me", **{"$select": "id,displayName,mail,userPrincipalName"})
        body = await get_json(ctx.client, "/v1.0/organization", **{"$select": "id,displayName"})
        organization = (body.get("value") or [{}])[0]
        return IntegrationMetadata(
            account_id=me.get("id"),
            account_name=me.get("displayName"),
            account_email=me.get("mail") or me.get("userPrincipalName"),
            workspace=organization.get("displayName"),
            attributes={"tenant_id": organization.get("id")},
        )
