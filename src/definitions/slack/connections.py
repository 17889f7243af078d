"""Connections: add the Slack app to a workspace with OAuth v2 (recommended), or paste a bot token.

Each connection says how its credential arrives, how it is checked, what it is connected to and how it is
torn down. Connection class names are stable IDs (``provider_data.connection``).
"""

from __future__ import annotations

from definitions.slack.api import call
from definitions.slack.client import SlackClient
from definitions.slack.operations import HealthCheck
from definitions.slack.slots import SlackBotToken, SlackOAuthToken
from engine import (
    Connection,
    ConnectionContext,
    IntegrationMetadata,
    NoRevocation,
    OAuth2,
    ProviderError,
    Revoke,
)

#: Read scopes every workspace grants: the user sync (emails need their own scope).
SCOPES = ("users:read", "users:read.email")
#: Asked for only when the host app upgrades to the write tier (posting messages).
WRITE_SCOPES = ("chat:write",)


class SlackOAuthConnection(Connection):
    """"Add to Slack": a workspace admin approves the app's bot scopes and Slack grants a bot token.

    Slack's OAuth v2 token endpoint is ``oauth.v2.access``; its revocation (``auth.revoke``) is not RFC 7009,
    so ``revoke`` calls it directly.
    """

    title = "Add to Slack"
    credential = SlackOAuthToken
    clients = (SlackClient,)
    auth = OAuth2(
        slot=SlackOAuthToken,
        authorize_url="https://slack.com/oauth/v2/authorize",
        token_url="https://slack.com/api/oauth.v2.access",
        scopes=SCOPES,
        upgrade_scopes=WRITE_SCOPES,
    )
    validate = HealthCheck
    disconnect = Revoke(SlackOAuthToken)

    async def resolve(self, ctx: ConnectionContext) -> IntegrationMetadata:
        return await _workspace(ctx)

    async def revoke(self, ctx: ConnectionContext) -> None:
        """``auth.revoke`` with the bot token itself. A token Slack already refuses counts as revoked, so a
        retried disconnect succeeds."""
        try:
            await call(ctx.client, "auth.revoke")
        except ProviderError as exc:
            if exc.code != "unauthorized":
                raise


class SlackBotTokenConnection(Connection):
    """A bot token from the workspace's own Slack app, for teams that build their app themselves."""

    title = "Use a bot token"
    credential = SlackBotToken
    clients = (SlackClient,)
    validate = HealthCheck
    # Revoking a pasted token would break the workspace's own app for everyone else who uses it.
    disconnect = NoRevocation(
        reason="Tether forgets the token but does not revoke it, since your own Slack app still uses it. To "
        "revoke it, open the app at https://api.slack.com/apps → OAuth & Permissions → Revoke All OAuth Tokens.",
    )

    async def resolve(self, ctx: ConnectionContext) -> IntegrationMetadata:
        return await _workspace(ctx)


async def _workspace(ctx: ConnectionContext) -> IntegrationMetadata:
    """The workspace (team) and bot user the token belongs to, from ``auth.test``."""
    identity = await call(ctx.client, "auth.test")
    return IntegrationMetadata(
        account_id=identity.get("team_id"),
        account_name=identity.get("team"),
        workspace=identity.get("team"),
        url=identity.get("url"),
        attributes={
            "bot_user_id": identity.get("user_id"),
            "bot_id": identity.get("bot_id"),
            "enterprise_id": identity.get("enterprise_id"),
        },
    )

