"""Operations: the health check and the directory sync (users, groups, and each group's members).

Both read the customer (or domain) from the user input. Without either, Google would either refuse the call or,
for ``my_customer``, silently answer for whichever account the credential belongs to; so the health check reports
``customer_id_missing`` and the sync refuses to start.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any, cast

from definitions.google_workspace.client import GoogleWorkspaceClient
from definitions.google_workspace.config import GoogleWorkspaceInput
from definitions.google_workspace.rest import get_json, paginate
from engine import Emits, Operation, OperationContext, Payload, Policy, ProviderError


def scope(ctx: OperationContext) -> dict[str, str]:
    """The Directory API's ``customer`` or ``domain`` parameter for this integration.

    Raises ``ProviderError`` with code ``customer_id_missing`` (the integration is unhealthy, with a reason the
    user can act on) when the user input names neither.
    """
    user_input = cast(GoogleWorkspaceInput | None, ctx.user_input)
    if user_input is not None and user_input.customer_id:
        return {"customer": user_input.customer_id}
    if user_input is not None and user_input.domain:
        return {"domain": user_input.domain}
    raise ProviderError("Google Workspace needs a customer ID (Admin console → Account settings) or a domain",
                        code="customer_id_missing")


class HealthCheck(Operation):
    """Check the credential and the customer with the cheapest call that needs both: one user."""

    client = GoogleWorkspaceClient
    policy = Policy.inline()

    async def run(self, ctx: OperationContext) -> dict[str, Any]:
        params = scope(ctx)
        page = await get_json(ctx.client, "/admin/directory/v1/users", maxResults=1, **params)
        return {"ok": True, **params, "users_visible": bool(page.get("users"))}


class DirectorySync(Operation):
    """Sync every user, group and group membership into the directory models.

    Runs after connecting and every six hours. Each run reads the complete directory (the Directory API has no
    change feed for these), so it is the place where removed accounts and memberships stop being confirmed.
    Users come first, then groups, then members, so memberships always find their account and group.
    """

    client = GoogleWorkspaceClient
    policy = Policy.queued(reconcile=True, schedule=timedelta(hours=6))
    emits = (
        Emits("directory_account", "user"),
        Emits("directory_group", "group"),
        Emits("directory_membership", "member"),
    )

    async def ingest(self, ctx: OperationContext) -> AsyncIterator[Payload]:
        params = scope(ctx)
        async for user in paginate(ctx.client, "/admin/directory/v1/users", items="users", **params):
            yield Payload(schema="directory_account", variant="user", data=user)
        groups: list[dict[str, Any]] = []
        async for group in paginate(ctx.client, "/admin/directory/v1/groups", items="groups", **params):
            groups.append({"id": group["id"], "email": group.get("email")})
            yield Payload(schema="directory_group", variant="group", data=group)
        for group in groups:
            path = f"/admin/directory/v1/groups/{group['id']}/members"
            async for member in paginate(ctx.client, path, items="members"):
                yield Payload(schema="directory_membership", variant="member", data={"group": group, "member": member})
