"""Connections: install the GitHub App (recommended), or paste a personal access token.

Each connection says how its credential arrives, how it is checked, what it is connected to and how it is
torn down. Connection class names are stable IDs (``provider_data.connection``).
"""

from __future__ import annotations

from typing import Any, cast

import httpx

from definitions.github_app.client import GitHubClient
from definitions.github_app.operations import HealthCheck
from definitions.github_app.rest import get_json, raise_for_status
from definitions.github_app.slots import GitHubAppInstallation, GitHubPersonalAccessToken
from engine import (
    AppInstall,
    Connection,
    ConnectionContext,
    IntegrationMetadata,
    NoRevocation,
    Revoke,
)


class GitHubAppConnection(Connection):
    """The app is installed on a user or organisation account and acts with short-lived installation tokens.

    Recommended: access is limited to the repositories chosen at install time, and no person's token is kept.
    """

    title = "Install the GitHub App"
    credential = GitHubAppInstallation
    clients = (GitHubClient,)
    auth = AppInstall(slot=GitHubAppInstallation,
                      install_url="https://github.com/apps/{app_slug}/installations/new")
    validate = HealthCheck
    disconnect = Revoke(GitHubAppInstallation)

    async def verify_install(self, ctx: ConnectionContext) -> None:
        """The callback's ``installation_id`` is only a claim: it must be an installation of *this* app.

        ``GET /app/installations/{id}`` with the app JWT answers 404 for any other ID.
        """
        await self._installation(ctx)

    async def resolve(self, ctx: ConnectionContext) -> IntegrationMetadata:
        installation = await self._installation(ctx)
        account = installation.get("account") or {}
        return IntegrationMetadata(
            account_id=str(account.get("id")),
            account_name=account.get("login"),
            url=installation.get("html_url"),
            attributes={"account_type": account.get("type"), "installation_id": installation.get("id")},
        )

    async def revoke(self, ctx: ConnectionContext) -> None:
        """Uninstall the app. Already uninstalled (404) counts as done, so a retried disconnect succeeds."""
        client = cast(httpx.AsyncClient, ctx.client)
        response = await client.delete(f"/app/installations/{_installation_id(ctx)}")
        if response.status_code != 404:
            raise_for_status(response)

    async def _installation(self, ctx: ConnectionContext) -> dict[str, Any]:
        return await get_json(ctx.client, f"/app/installations/{_installation_id(ctx)}")


class GitHubTokenConnection(Connection):
    """A person's token: quick to set up, but it acts as that person and never expires on its own."""

    title = "Use a personal access token"
    credential = GitHubPersonalAccessToken
    clients = (GitHubClient,)
    validate = HealthCheck
    # GitHub's one token revocation API (POST /credentials/revoke) is meant for leaked credentials and tells
    # the owner their token was exposed; a routine disconnect should not look like a leak report.
    disconnect = NoRevocation(
        reason="Tether forgets the token but cannot delete it on GitHub. Delete it yourself under Settings → "
        "Developer settings → Personal access tokens (https://github.com/settings/tokens).",
    )

    async def resolve(self, ctx: ConnectionContext) -> IntegrationMetadata:
        user = await get_json(ctx.client, "/user")
        return IntegrationMetadata(
            account_id=str(user.get("id")),
            account_name=user.get("login"),
            account_email=user.get("email"),
            url=user.get("html_url"),
            attributes={"account_type": user.get("type")},
        )


def _installation_id(ctx: ConnectionContext) -> int:
    return cast(GitHubAppInstallation, ctx.credential).installation_id
