"""Connections: OAuth 2.0 with PKCE at the sandbox's authorization server (the browser path), or an account's API
key typed into a form (the quickest path).

Both resolve the account from ``GET /me``. Connection class names are stable IDs (``provider_data.connection``).
"""

from __future__ import annotations

from definitions.sandbox.api import get_json
from definitions.sandbox.client import SandboxClient
from definitions.sandbox.operations import HealthCheck
from definitions.sandbox.slots import SandboxApiKey, SandboxToken
from engine import PUBLIC_URL, Connection, ConnectionContext, IntegrationMetadata, NoRevocation, OAuth2, Revoke

#: Read scopes (the sandbox's default grant); ``records:write`` is the write tier (``ResolveFinding`` needs it).
SCOPES = ("directory:read", "assets:read", "events:read")
#: What an upgrade asks for: the read scopes again (an upgrade grant replaces the one before) and the write scope.
WRITE_SCOPES = (*SCOPES, "records:write")
#: The authorization server, on Tether's own origin (the engine fills in ``{public_url}``).
OAUTH = f"{PUBLIC_URL}/sandbox/oauth"


class SandboxOAuth(Connection):
    """Pick a seeded account on the sandbox's consent page; the grant's refresh token rotates on every refresh."""

    title = "Connect a sandbox account"
    credential = SandboxToken
    clients = (SandboxClient,)
    auth = OAuth2(
        slot=SandboxToken,
        authorize_url=f"{OAUTH}/authorize",
        token_url=f"{OAUTH}/token",
        revoke_url=f"{OAUTH}/revoke",
        scopes=SCOPES,
        upgrade_scopes=WRITE_SCOPES,
    )
    validate = HealthCheck
    # RFC 7009 at revoke_url: the engine revokes the refresh token, then the access token.
    disconnect = Revoke(SandboxToken)

    async def resolve(self, ctx: ConnectionContext) -> IntegrationMetadata:
        return await account(ctx)


class SandboxKey(Connection):
    """Type in an account's API key from the sandbox page (``sbx_key_acme``)."""

    title = "Use a sandbox API key"
    credential = SandboxApiKey
    clients = (SandboxClient,)
    validate = HealthCheck
    disconnect = NoRevocation(
        reason="Tether forgets the key. Sandbox keys are fixed per seeded account and cannot be revoked.",
    )

    async def resolve(self, ctx: ConnectionContext) -> IntegrationMetadata:
        return await account(ctx)


async def account(ctx: ConnectionContext) -> IntegrationMetadata:
    """The seeded account the credential belongs to, from ``GET /me``."""
    me = await get_json(ctx.client, "/me")
    return IntegrationMetadata(
        account_id=me.get("account"),
        account_name=me.get("name"),
        workspace=me.get("domain"),
    )
