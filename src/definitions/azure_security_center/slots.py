"""Credential slots: a service principal (app registration with a client secret) and the subscription it reads.

Class names are stable IDs stored in the database: renaming one is a migration.
"""

from __future__ import annotations

from pydantic import Field, SecretStr

from engine import CredentialSlot

#: Tenant, client and subscription IDs are GUIDs; two of them go into URL paths, so nothing else is accepted.
GUID = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"


class AzureServicePrincipal(CredentialSlot):
    """The customer's app registration, granted *Security Reader* on the subscription. A person enters it; the
    engine (and the client) mint short-lived tokens from the client ID and secret."""

    title = "Service principal"

    tenant_id: str = Field(pattern=GUID)
    client_id: str = Field(pattern=GUID)
    client_secret: SecretStr
    subscription_id: str = Field(pattern=GUID)
