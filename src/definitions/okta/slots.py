"""Credential slots: what Tether persists for each way of connecting to Okta.

Class names are stable IDs stored in the database: renaming one is a migration.
"""

from __future__ import annotations

from pydantic import SecretStr

from engine import CredentialSlot


class OktaApiToken(CredentialSlot):
    """An API token (Security → API → Tokens), sent as ``Authorization: SSWS <token>``.

    It acts with the permissions of the admin who created it; a read-only administrator is enough.
    """

    title = "API token"

    api_token: SecretStr


class OktaServiceApp(CredentialSlot):
    """An API services app in the org: its client ID and the private key it signs client assertions with.

    Okta's org authorization server grants management API scopes to service apps only with
    ``private_key_jwt`` client authentication, so a client secret would not work here.
    """

    title = "API service app"

    client_id: str
    #: The app's RSA private key (PEM), whose public key is registered on the app.
    private_key: SecretStr
    #: The key's ``kid`` as shown on the app, when it has several keys.
    key_id: str | None = None
