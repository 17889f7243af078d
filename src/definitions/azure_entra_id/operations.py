"""Operations: the health check and the directory sync, driven by Graph delta queries.

The first run reads every user and group (with their members) through ``/users/delta`` and ``/groups/delta``;
the last page of each answers a delta link, saved as the operation's cursor (``ctx.next_cursor``, kept only if
the run succeeds). The next run starts from those links and reads only what changed since, including removals
(``@removed``), which are passed on as removals (``REMOVE``): the user, the group (with its memberships) or the
membership is removed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

from definitions.azure_entra_id.client import EntraClient
from definitions.microsoft_graph import DeltaPages, get_json
from engine import REMOVE, Emits, Operation, OperationContext, Payload, Policy, ProviderError

USERS_DELTA = ("/v1.0/users/delta?$select=id,displayName,givenName,surname,mail,userPrincipalName,userType,"
               "accountEnabled,createdDateTime,jobTitle,department")
GROUPS_DELTA = ("/v1.0/groups/delta?$select=id,displayName,description,mail,groupTypes,securityEnabled,"
                "mailEnabled,createdDateTime,members")
USER_TYPE = "#microsoft.graph.user"


class HealthCheck(Operation):
    """Check the tenant's token and read permission with the cheapest call that needs both."""

    client = EntraClient
    policy = Policy.inline()

    async def run(self, ctx: OperationContext) -> dict[str, Any]:
        body = await get_json(ctx.client, "/v1.0/organization", **{"$select": "id,displayName"})
        organization = (body.get("value") or [{}])[0]
        return {"ok": True, "tenant_id": organization.get("id"), "name": organization.get("displayName")}


class DirectorySync(Operation):
    """Sync users, groups and memberships into the directory models, incrementally after the first run.

    Runs after connecting and every hour; a Graph change notification also dispatches it. A delta link Graph no
    longer knows (410 Gone, after about a week unused for users) starts a full round again.
    """

    client = EntraClient
    policy = Policy.queued(reconcile=True, schedule=timedelta(hours=1))
    emits = (
        Emits("directory_account", "user"),
        Emits("directory_group", "group"),
        Emits("directory_membership", "member"),
    )

    async def ingest(self, ctx: OperationContext) -> AsyncIterator[Payload]:
        cursor = ctx.cursor if isinstance(ctx.cursor, dict) else {}
        links: dict[str, str | None] = {}
        for name, start in (("users", USERS_DELTA), ("groups", GROUPS_DELTA)):
            pages = DeltaPages(ctx.client, cursor.get(name) or start)
            try:
                async for item in pages:
                    for payload in self.payloads(name, item):
                        yield payload
            except ProviderError as exc:
                if exc.provider_status != 410 or pages.url == start:
                    raise
                pages = DeltaPages(ctx.client, start)  # the delta link expired: read everything again
                async for item in pages:
                    for payload in self.payloads(name, item):
                        yield payload
            links[name] = pages.delta_link
        ctx.next_cursor = links

    @staticmethod
    def payloads(name: str, item: dict[str, Any]) -> list[Payload]:
        action = REMOVE if "@removed" in item else ""
        if name == "users":
            return [Payload(schema="directory_account", variant="user", data=item, action=action)]
        out = []
        # A group that only changed members arrives with its ID and "members@delta", and no other field.
        if "displayName" in item or action:
            out.append(Payload(schema="directory_group", variant="group", data=item, action=action))
        for member in item.get("members@delta") or []:
            if member.get("@odata.type") == USER_TYPE:
                out.append(Payload(schema="directory_membership", variant="member",
                                   data={"group_id": item["id"], "member": member},
                                   action=REMOVE if "@removed" in member else ""))
        return out
