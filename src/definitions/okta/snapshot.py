"""Complete-snapshot removal: which memberships a directory sync may mark as removed.

A membership has no "deleted" event in a full fetch: it simply stops appearing. So after a sync has read every
group's complete member list, the memberships stored for this integration that the sync did not see are gone at
Okta. Concluding that from a partial read would wrongly remove people, so the rule only fires when all of these
hold: the snapshot is complete (every page of every group was read), the run succeeded, no membership record was
rejected on the way in (a rejected record was seen but not stored), and the run is still the integration's latest
(an older run finishing late must not undo a newer one).

The engine applies this rule itself for operations declaring ``complete_snapshots`` (``engine.runs.snapshots``);
``DirectorySync`` declares its memberships complete, so the engine removes the unconfirmed ones. This module stays
as Okta's rule written out and tested on its own; ``DirectorySync`` still leaves its ``MembershipSnapshot`` in
``DirectorySync.snapshot``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

#: A membership's key: (``account_external_id``, ``group_external_id``), the lookup keys of both ends.
MembershipKey = tuple[str, str]


@dataclass(frozen=True)
class MembershipSnapshot:
    """What one directory sync confirmed, and whether it read everything."""

    run_id: str | None
    confirmed: frozenset[MembershipKey]
    complete: bool


def memberships_to_remove(
    active: Iterable[MembershipKey],
    snapshot: MembershipSnapshot | None,
    *,
    run_succeeded: bool,
    latest_run_id: str | None,
    rejected_memberships: int = 0,
) -> frozenset[MembershipKey]:
    """The active memberships ``snapshot`` no longer confirms; empty unless the snapshot may be trusted."""
    if snapshot is None or not snapshot.complete or not run_succeeded or rejected_memberships:
        return frozenset()
    if snapshot.run_id is None or snapshot.run_id != latest_run_id:
        return frozenset()
    return frozenset(active) - snapshot.confirmed
