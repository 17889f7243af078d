"""Credential slots: what Tether persists for each way of connecting to Slack.

Class names are stable IDs stored in the database: renaming one is a migration.
"""

from __future__ import annotations

from pydantic import SecretStr

from engine import CredentialSlot, OAuth2Token


class SlackOAuthToken(OAuth2Token):
    """The bot token (``xoxb-…``) Slack grants when a workspace adds the app through OAuth v2.

    Bot tokens do not expire unless token rotation is turned on for the app, so there is usually no refresh
    token. The OAuth flow produces this slot; nobody types it in.
    """

    title = "Slack bot token (Add to Slack)"


class SlackBotToken(CredentialSlot):
    """A bot token copied from a workspace's own Slack app (OAuth & Permissions → Bot User OAuth Token)."""

    title = "Bot token"

    bot_token: SecretStr
