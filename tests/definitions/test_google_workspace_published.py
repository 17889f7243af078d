"""Google Workspace's directory mappings against Google's own published Directory API v1 examples.

``DirectorySync`` calls ``/admin/directory/v1/users``, ``/groups`` and ``/groups/{id}/members``; the examples are
the JSON responses the Admin SDK guides print for those calls (sources named inside each file under
``tests/fixtures/google_workspace/published/``).

What they caught (docs/decisions.md): a member without ``role`` (optional in the v1 schema) failed the whole
record with "no such key"; the guides' users omit ``isEnrolledIn2Sv`` (only some views carry it), which lands
as unknown rather than false; ``has()`` alone let a ``null`` name, description or count through to a field
select or ``int()`` and failed the record, now guarded with ``engine.kit.celpaths``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from definitions.google_workspace import definition
from definitions.google_workspace.operations import DirectorySync
from engine import Payload
from support.published import land, outcomes, recorded


def example(name: str) -> dict[str, Any]:
    return recorded("google_workspace", name, sources=("Google Workspace Admin SDK documentation",))


def membership(group: dict[str, Any], member: dict[str, Any]) -> Payload:
    # What DirectorySync yields for each member of a group.
    return Payload(schema="directory_membership", variant="member", data={"group": group, "member": member})


def test_the_published_users_list_lands_both_users() -> None:
    users = [
        Payload(schema="directory_account", variant="user", data=u) for u in example("users_list")["body"]["users"]
    ]
    liz, admin2 = land(definition, DirectorySync, users)
    assert (liz.external_id, liz.email, liz.username, liz.display_name, liz.given_name, liz.family_name) == (
        "the unique user id",
        "liz@example.com",
        "liz@example.com",
        "Liz Smith",
        "Liz",
        "Smith",
    )
    assert (liz.status, liz.is_admin, liz.mfa_enabled) == ("active", True, None)
    assert liz.last_login_at == datetime(2013, 2, 5, 10, 30, 3, 325000, tzinfo=UTC)
    assert liz.source_created_at == datetime(2010, 4, 5, 17, 30, 4, 325000, tzinfo=UTC)
    assert liz.attributes == {
        "org_unit_path": "corp/engineering",
        "customer_id": "C03az79cb",
        "is_delegated_admin": False,
    }
    assert (admin2.status, admin2.attributes["is_delegated_admin"]) == ("suspended", True)


def test_the_published_group_lands_with_its_string_count() -> None:
    [group] = land(
        definition,
        DirectorySync,
        [Payload(schema="directory_group", variant="group", data=example("group_and_members")["group"])],
    )
    assert (group.external_id, group.name, group.email, group.member_count) == (
        "group's unique ID",
        "APAC Sales Group",
        "sales_group@example.com",
        5,
    )
    assert (group.description, group.attributes) == ("This is the APAC sales group.", {"admin_created": True})


def test_published_members_that_are_not_users_are_filtered_and_a_user_without_a_role_lands() -> None:
    recorded_ = example("group_and_members")
    group, members = recorded_["group"], recorded_["members"]["members"]
    # The guide's members are a nested group and a "MEMBER" type: neither is a user account's membership.
    assert [o.status for o in outcomes(definition, DirectorySync, [membership(group, m) for m in members])] == [
        "filtered",
        "filtered",
    ]
    # The same member as a user, without the optional role: one membership, role unknown.
    user = {key: value for key, value in members[1].items() if key != "role"} | {"type": "USER"}
    [row] = land(definition, DirectorySync, [membership(group, user)])
    assert (row.account_external_id, row.group_external_id, row.role) == (
        "group member's unique ID",
        "group's unique ID",
        None,
    )
    [owner] = land(definition, DirectorySync, [membership(group, {**user, "role": "OWNER", "status": "ACTIVE"})])
    assert (owner.role, owner.attributes) == ("owner", {"status": "ACTIVE"})


def test_nulls_where_the_schema_allows_absence_do_not_fail_the_record() -> None:
    [liz, _] = example("users_list")["body"]["users"]
    user = {**liz, "name": None, "isAdmin": None, "orgUnitPath": None}
    group = {**example("group_and_members")["group"], "description": None, "directMembersCount": None}
    row, grp = land(
        definition,
        DirectorySync,
        [
            Payload(schema="directory_account", variant="user", data=user),
            Payload(schema="directory_group", variant="group", data=group),
        ],
    )
    assert (row.display_name, row.is_admin, row.attributes["org_unit_path"]) == (None, None, None)
    assert (grp.description, grp.member_count) == (None, None)
