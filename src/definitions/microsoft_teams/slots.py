"""Credential slots: what Tether persists for Microsoft Teams. Class names are stable IDs."""

from __future__ import annotations

from engine import OAuth2Token


class TeamsOAuthToken(OAuth2Token):
    """A user's delegated grant (``offline_access``, so it carries a refresh token). Messages are posted as them."""

    title = "Microsoft Teams user (OAuth)"
