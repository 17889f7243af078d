"""Operations: the health check and the directory sync.

Both work with either connection: an API token and a service app read the same management API.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

from definitions.okta.api import get_json, paginate
from definitions.okta.client import OktaClient
from definitions.okta.snapshot import MembershipKey, MembershipSnapshot
from engine import Emits, Operation, OperationContext, Payload, Policy


class HealthCheck(Operation):
    """Check that the credential can read users: one user is enough (``okta.users.read``)."""

    client = OktaClient
    policy = Policy.inline()

    async def run(self, ctx: OperationContext) -> dict[str, Any]:
        users = await get_json(ctx.client, "/api/v1/users", limit=1)
        return {"ok": True, "users_visible": bool(users)}


class DirectorySync(Operation):
    """Sync users, groups and group memberships into the directory models: a complete snapshot every time.

    Users come first and groups second, so that every membership's account and group rows exist when the
    membership is persisted (memberships link them by their lookup keys). Okta's user list leaves out
    deprovisioned users, whose accounts then keep their last state until the user is deleted.

    When every member list has been read to its last page, the sync keeps a complete ``MembershipSnapshot`` in
    ``self.snapshot`` for ``snapshot.memberships_to_remove``; if anything fails before that, there is none and
    nothing can be removed. The engine applies the same rule itself (``complete_snapshots``): after a run that
    read every member list, the memberships it did not see are removed, with their change-feed tombstones. Users
    are not declared complete: Okta's user list leaves out deprovisioned users, whose accounts stay.
    """

    client = OktaClient
    policy = Policy.queued(reconcile=True, schedule=timedelta(hours=6))
    emits = (
        Emits("directory_account", "user"),
        Emits("directory_group", "group"),
        Emits("directory_membership", "member"),
    )
    complete_snapshots = ("directory_membership",)

    #: The complete snapshot of the last fully read sync of this instance (``None`` until then).
    snapshot: MembershipSnapshot | None = None

    async def ingest(self, ctx: OperationContext) -> AsyncIterator[Payload]:
        async for user in paginate(ctx.client, "/api/v1/users"):
            yield Payload(schema="directory_account", variant="user", data=user, resource="user")
        groups: list[str] = []
        async for group in paginate(ctx.client, "/api/v1/groups"):
            groups.append(str(group["id"]))
            yield Payload(schema="directory_group", variant="group", data=group, resource="group")
        confirmed: set[MembershipKey] = set()
        for group_id in groups:
            async for member in paginate(ctx.client, f"/api/v1/groups/{group_id}/users"):
                confirmed.add((str(member["id"]), group_id))
                yield Payload(schema="directory_membership", variant="member", resource="membership",
                              data={"groupId": group_id, "user": member})
        self.snapshot = MembershipSnapshot(run_id=ctx.run_id, confirmed=frozenset(confirmed), complete=True)
