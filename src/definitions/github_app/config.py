"""Operator config: the GitHub App's own identity, set once per Tether deployment.

These come from the environment (``TETHER_GITHUB_APP_APP_ID``, ``TETHER_SECRET_GITHUB_APP_PRIVATE_KEY``, …),
never from a tenant: every installation of the app shares them.
"""

from __future__ import annotations

from pydantic import SecretStr

from engine import OperatorConfig


class GitHubAppConfig(OperatorConfig):
    """The app registered at https://github.com/settings/apps."""

    #: The numeric App ID from the app's settings page; the ``iss`` of every app JWT.
    app_id: str
    #: The URL name of the app (``https://github.com/apps/<slug>``); builds the install link.
    app_slug: str
    #: The app's RSA private key (PEM) that signs app JWTs.
    private_key: SecretStr
    #: The secret GitHub signs webhook deliveries with (``X-Hub-Signature-256``).
    webhook_secret: SecretStr
