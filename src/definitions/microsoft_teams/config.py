"""Operator config: the deployment's multi-tenant app registration, used for delegated (signed-in user) access.

From the environment: ``TETHER_MICROSOFT_TEAMS_CLIENT_ID``, ``TETHER_SECRET_MICROSOFT_TEAMS_CLIENT_SECRET``.
"""

from __future__ import annotations

from pydantic import SecretStr

from engine import OperatorConfig


class TeamsConfig(OperatorConfig):
    """The app registered at https://entra.microsoft.com → App registrations (accounts in any organisation)."""

    client_id: str
    client_secret: SecretStr
