"""A directory whose sync lists everything (a complete snapshot) from its config, for the change-feed tests.

``DirectoryListing`` yields the accounts, groups and memberships its config names, and declares all three schemas
complete, so the engine removes what a later listing leaves out. ``fail`` raises after the listing (a failed run
must remove nothing); ``partial`` lists the same but from ``PartialListing``, which declares no snapshot.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from pydantic import BaseModel

from engine import Definition, Emits, Mapping, Operation, OperationContext, Payload, Policy
from engine.errors import ProviderError

EMITS = (
    Emits("directory_account", "user"),
    Emits("directory_group", "group"),
    Emits("directory_membership", "member"),
)


class ListingConfig(BaseModel):
    #: account external ID → email
    accounts: dict[str, str] = {}
    groups: list[str] = []
    #: (account external ID, group external ID)
    members: list[tuple[str, str]] = []
    fail: bool = False


class DirectoryListing(Operation):
    """List every account, group and membership the config names: a complete snapshot of all three."""

    config = ListingConfig
    policy = Policy.inline()
    emits = EMITS
    complete_snapshots = ("directory_account", "directory_group", "directory_membership")

    async def ingest(self, ctx: OperationContext) -> AsyncIterator[Payload]:
        config: ListingConfig = ctx.config  # type: ignore[assignment]
        for external_id, email in config.accounts.items():
            yield Payload("directory_account", {"id": external_id, "email": email}, variant="user")
        for group in config.groups:
            yield Payload("directory_group", {"id": group, "name": f"group {group}"}, variant="group")
        for account, group in config.members:
            yield Payload("directory_membership", {"account": account, "group": group}, variant="member")
        if config.fail:
            raise ProviderError("the provider dropped the connection after the last page", provider_status=400)


class PartialListing(DirectoryListing):
    """The same listing, declared incomplete: it never removes anything."""

    complete_snapshots = ()


definition = Definition(
    id="listing_test",
    name="Listing (test)",
    description="A directory listed completely from the run's config.",
    operations=(DirectoryListing, PartialListing),
    mappings=(
        Mapping(schema="directory_account", variant="user", map='{"external_id": payload.id, "email": payload.email}'),
        Mapping(schema="directory_group", variant="group", map='{"external_id": payload.id, "name": payload.name}'),
        Mapping(
            schema="directory_membership",
            variant="member",
            map='{"account_external_id": payload.account, "group_external_id": payload.group}',
        ),
    ),
)
