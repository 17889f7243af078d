"""Operator config: the deployment's multi-tenant app registration in Microsoft Entra.

From the environment: ``TETHER_AZURE_ENTRA_ID_CLIENT_ID`` and ``TETHER_SECRET_AZURE_ENTRA_ID_CLIENT_SECRET``.
Every tenant that grants admin consent shares them; a tenant is never asked for a secret.
"""

from __future__ import annotations

from pydantic import SecretStr

from engine import OperatorConfig


class EntraConfig(OperatorConfig):
    """The app registered at https://entra.microsoft.com → App registrations (accounts in any organisation)."""

    #: The Application (client) ID.
    client_id: str
    #: A client secret of that app, used to mint app-only tokens for each consenting tenant.
    client_secret: SecretStr
