"""Credential slots: what Tether persists for each way of connecting to Google Workspace.

Class names are stable IDs stored in the database: renaming one is a migration.
"""

from __future__ import annotations

from pydantic import SecretStr

from engine import CredentialSlot, OAuth2Token


class GoogleWorkspaceOAuthToken(OAuth2Token):
    """The token set of an admin's OAuth grant (offline access, so it carries a refresh token)."""

    title = "Google Workspace admin (OAuth)"


class GoogleServiceAccountKey(CredentialSlot):
    """A service account's JSON key, pasted whole, for domain-wide delegation.

    The key never leaves Tether: it signs a short JWT that Google trades for an hour-long access token.
    """

    title = "Service account key (JSON)"

    key_json: SecretStr
