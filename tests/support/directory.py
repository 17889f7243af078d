"""A small directory definition (accounts, groups, memberships) for the ingest tests, and payload builders."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from engine import Definition, Emits, Mapping, Operation, OperationContext, Payload
from ingest.pipeline import IngestContext

DIRECTORY_EMITS = (
    Emits("directory_account", "user"),
    Emits("directory_group", "group"),
    Emits("directory_membership", "member"),
)


class DirectorySync(Operation):
    """Sync users, groups and memberships."""

    emits = DIRECTORY_EMITS

    async def ingest(self, ctx: OperationContext) -> AsyncIterator[Payload]:
        yield Payload("directory_account", {}, variant="user")


DIRECTORY = Definition(
    id="directory_test",
    name="Directory (test)",
    description="A directory shaped like Google Workspace's Admin SDK.",
    operations=(DirectorySync,),
    mappings=(
        Mapping(
            schema="directory_account",
            variant="user",
            filter="!has(payload.isBot) || !payload.isBot",
            map="""
            {
              "external_id": payload.id,
              "email": payload.primaryEmail,
              "display_name": payload.name.fullName,
              "given_name": payload.name.givenName,
              "family_name": payload.name.familyName,
              "status": payload.suspended ? "suspended" : "active",
              "is_admin": payload.isAdmin,
              "mfa_enabled": payload.isEnrolledIn2Sv,
              "last_login_at": has(payload.lastLoginTime) ? payload.lastLoginTime : null
            }
            """,
        ),
        Mapping(schema="directory_group", variant="group"),  # empty map: the payload is already in shape
        Mapping(
            schema="directory_membership",
            variant="member",
            map='{"account_external_id": payload.id, "group_external_id": payload.groupId, "role": payload.role}',
        ),
    ),
)


def user(n: int, **extra: Any) -> dict[str, Any]:
    """An Admin SDK user resource."""
    return {
        "id": f"10{n:06d}",
        "primaryEmail": f"user{n}@acme.test",
        "name": {"givenName": f"Given{n}", "familyName": f"Family{n}", "fullName": f"Given{n} Family{n}"},
        "isAdmin": n % 10 == 0,
        "isEnrolledIn2Sv": n % 3 != 0,
        "suspended": n % 7 == 0,
        "lastLoginTime": "2024-05-01T12:00:00.000Z",
        "orgUnitPath": "/",
        **extra,
    }


def directory_context(tenant: str = "tenant_1", integration: str = "int_1", **kwargs: Any) -> IngestContext:
    return IngestContext(tenant, integration, "directory_test", emits=DIRECTORY_EMITS, **kwargs)
