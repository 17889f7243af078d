"""Operator config: the Slack app's own identity, set once per Tether deployment.

These come from the environment (``TETHER_SLACK_CLIENT_ID``, ``TETHER_SECRET_SLACK_CLIENT_SECRET``,
``TETHER_SECRET_SLACK_SIGNING_SECRET``), never from a tenant: every workspace that adds the app shares them.
"""

from __future__ import annotations

from pydantic import SecretStr

from engine import OperatorConfig


class SlackAppConfig(OperatorConfig):
    """The app registered at https://api.slack.com/apps (Basic Information → App Credentials)."""

    #: The app's Client ID; sent on the authorize redirect and the token exchange.
    client_id: str
    #: The app's Client Secret; authenticates the token exchange.
    client_secret: SecretStr
    #: The Signing Secret Slack signs every Events API request with (``X-Slack-Signature``).
    signing_secret: SecretStr
