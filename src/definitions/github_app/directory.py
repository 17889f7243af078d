"""Directory: organisation members → ``directory_account``, teams → ``directory_group``, team members →
``directory_membership``.

An app installation syncs the organisation it is installed on (nothing when installed on a personal account);
a personal access token syncs every organisation its owner belongs to. GitHub shows no member's e-mail or name
here, only the login; the admins (``role=admin``) and team maintainers are read first to set the roles.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any, cast

import httpx

from definitions.github_app.client import GitHubClient, InstallationAuth, installation_scoped
from definitions.github_app.rest import get_json, paginate
from engine import Emits, Operation, OperationContext, Payload, Policy


class DirectorySync(Operation):
    """Sync organisation members, teams and team members into the directory models: a complete read each time.

    Members come first and teams second, so that every membership's account and group rows exist when the
    membership is persisted. A team's member list includes the members of its child teams, as GitHub lists it.
    """

    client = GitHubClient
    policy = Policy.queued(reconcile=True, schedule=timedelta(hours=6))
    emits = (
        Emits("directory_account", "member"),
        Emits("directory_group", "team"),
        Emits("directory_membership", "team_member"),
    )

    async def ingest(self, ctx: OperationContext) -> AsyncIterator[Payload]:
        async for org in organizations(ctx.client):
            admins = await node_ids(ctx.client, f"/orgs/{org}/members", role="admin")
            async for member in paginate(ctx.client, f"/orgs/{org}/members"):
                role = "admin" if member["node_id"] in admins else "member"
                yield Payload(schema="directory_account", variant="member",
                              data={"organization": org, "role": role, "member": member})
            teams: list[dict[str, Any]] = []
            async for team in paginate(ctx.client, f"/orgs/{org}/teams"):
                teams.append(team)
                yield Payload(schema="directory_group", variant="team", data={"organization": org, "team": team})
            for team in teams:
                path = f"/orgs/{org}/teams/{team['slug']}/members"
                maintainers = await node_ids(ctx.client, path, role="maintainer")
                async for member in paginate(ctx.client, path):
                    role = "maintainer" if member["node_id"] in maintainers else "member"
                    yield Payload(schema="directory_membership", variant="team_member",
                                  data={"organization": org, "role": role, "team": team, "member": member})


async def organizations(client: httpx.AsyncClient) -> AsyncIterator[str]:
    """The logins of the organisations to sync."""
    if installation_scoped(client):
        installation_id = cast(InstallationAuth, client.auth).installation_id
        account = (await get_json(client, f"/app/installations/{installation_id}")).get("account") or {}
        if account.get("type") == "Organization":
            yield account["login"]
        return
    async for org in paginate(client, "/user/orgs"):
        yield org["login"]


async def node_ids(client: httpx.AsyncClient, path: str, **params: Any) -> set[str]:
    return {user["node_id"] async for user in paginate(client, path, **params)}
