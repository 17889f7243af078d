"""Credential slots: what Tether persists for a tenant that granted admin consent.

Class names are stable IDs stored in the database: renaming one is a migration.
"""

from __future__ import annotations

from pydantic import Field

from engine import CredentialSlot

#: A directory (tenant) ID is a GUID; it goes into the token URL's path, so nothing else is accepted.
TENANT_ID = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"


class EntraTenant(CredentialSlot):
    """The tenant whose admin consented to the app. Not a secret: tokens are minted on demand with the app's
    own client secret (operator config). The admin-consent callback produces it; nobody types it in."""

    title = "Microsoft Entra tenant"

    tenant_id: str = Field(pattern=TENANT_ID)
