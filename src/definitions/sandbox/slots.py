"""Credential slots: what Tether persists for each way of connecting to the sandbox.

Class names are stable IDs stored in the database: renaming one is a migration.
"""

from __future__ import annotations

from pydantic import Field, SecretStr

from engine import CredentialSlot, OAuth2Token


class SandboxToken(OAuth2Token):
    """The token set the sandbox grants: a short-lived access token and a refresh token that rotates on every use.

    The OAuth flow produces this slot and the Keystore refreshes it; nobody types it in.
    """

    title = "Sandbox OAuth grant"


class SandboxApiKey(CredentialSlot):
    """One seeded account's API key, shown on the sandbox page (``sbx_key_acme``, ``sbx_key_globex``…)."""

    title = "Sandbox API key"

    api_key: SecretStr = Field(title="API key", description="The account's key from the sandbox page (sbx_key_acme)")
