"""Credential slots: what Tether persists for each way of connecting to GitHub.

Class names are stable IDs stored in the database: renaming one is a migration.
"""

from __future__ import annotations

from pydantic import SecretStr

from engine import CredentialSlot


class GitHubAppInstallation(CredentialSlot):
    """An installation of the GitHub App on a user or organisation account.

    Only the ID is stored. It is not a secret: access tokens are minted on demand with the app's private key
    (operator config) and live for an hour. The app-install flow produces this slot; nobody types it in.
    """

    title = "GitHub App installation"

    installation_id: int


class GitHubPersonalAccessToken(CredentialSlot):
    """A personal access token (classic or fine-grained) that a person pastes into the form."""

    title = "Personal access token"

    token: SecretStr
