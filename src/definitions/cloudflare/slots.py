"""Credential slots: an API token and the account it is used with.

Class names are stable IDs stored in the database: renaming one is a migration.
"""

from __future__ import annotations

from pydantic import Field, SecretStr

from engine import CredentialSlot


class CloudflareApiToken(CredentialSlot):
    """An account-scoped API token (never the global API key) and the account ID it reads.

    The account ID goes into request paths and queries, so only Cloudflare's 32-hex-digit form is accepted.
    """

    title = "API token"

    api_token: SecretStr
    account_id: str = Field(pattern=r"^[0-9a-f]{32}$")
