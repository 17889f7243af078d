"""Operations: the health check and the repository sync (alerts are in ``alerts``, members in ``directory``).

Both work with either connection. An app installation and a person see repositories through different
endpoints, so each operation asks the client which one it is (``installation_scoped``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx

from definitions.github_app.client import GitHubClient, installation_scoped
from definitions.github_app.rest import get_json, paginate
from engine import Emits, Operation, OperationContext, Payload, Policy


class HealthCheck(Operation):
    """Check that the credential still works with the cheapest call that needs it."""

    client = GitHubClient
    policy = Policy.inline()

    async def run(self, ctx: OperationContext) -> dict[str, Any]:
        if installation_scoped(ctx.client):
            page = await get_json(ctx.client, "/installation/repositories", per_page=1)
            return {"ok": True, "repositories": page.get("total_count")}
        user = await get_json(ctx.client, "/user")
        return {"ok": True, "login": user.get("login")}


class RepositorySync(Operation):
    """Sync every repository the credential can see into ``asset`` rows.

    Runs after connecting and every six hours; each run reads the complete list, so it is also the place where
    repositories that were deleted or made inaccessible stop being confirmed.
    """

    client = GitHubClient
    policy = Policy.queued(reconcile=True, schedule=timedelta(hours=6))
    emits = (Emits("asset", "repository"),)

    async def ingest(self, ctx: OperationContext) -> AsyncIterator[Payload]:
        async for repository in repositories(ctx.client):
            yield Payload(schema="asset", variant="repository", data=repository)


def repositories(client: httpx.AsyncClient) -> AsyncIterator[dict[str, Any]]:
    """Every repository the credential can see (the installation's, or every one the person can access)."""
    if installation_scoped(client):
        return paginate(client, "/installation/repositories", items="repositories")
    return paginate(client, "/user/repos")
