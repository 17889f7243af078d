"""Okta's directory mappings against Okta's own recorded answers, not only fixtures written here.

``DirectorySync`` calls ``/api/v1/users``, ``/api/v1/groups`` and ``/api/v1/groups/{id}/users`` (Management API
v1). The answers are the official Python SDK's VCR cassettes (``okta/okta-sdk-python``, named with their commit
in ``tests/fixtures/okta/published/``): a staged user whose ``activated``, ``statusChanged``, ``lastLogin``,
``mobilePhone`` and ``secondEmail`` are ``null`` and whose ``type`` is an object, and groups of both the
``BUILT_IN`` and ``OKTA_GROUP`` types, one with a ``null`` description. They land without a change to the
mappings (docs/decisions.md).
"""

from __future__ import annotations

from datetime import UTC, datetime

from definitions.okta import definition
from definitions.okta.operations import DirectorySync
from engine import Payload
from support.published import land, recorded


def body(name: str) -> list[dict]:
    return list(recorded("okta", name, sources=("okta/okta-sdk-python",))["body"])


def test_the_recorded_group_member_lands_as_an_account_and_a_membership() -> None:
    [user] = body("group_users")
    account, membership = land(
        definition,
        DirectorySync,
        [
            Payload(schema="directory_account", variant="user", data=user, resource="user"),
            Payload(
                schema="directory_membership",
                variant="member",
                resource="membership",
                data={"groupId": "00gsf7bj3rH2d9PvL4x6", "user": user},
            ),
        ],
    )
    assert (account.external_id, account.email, account.username, account.display_name) == (
        "00usfbpcapvcITLwi4x6",
        "John.Doe-Activate@example.com",
        "John.Doe-Activate@example.com",
        "John Doe-Activate",
    )
    assert (account.status, account.last_login_at) == ("staged", None)
    assert account.source_created_at == datetime(2020, 8, 27, 18, 15, 57, tzinfo=UTC)
    assert account.attributes == {"status_changed": None, "last_updated": "2020-08-27T18:15:57.000Z"}
    assert (membership.account_external_id, membership.group_external_id, membership.role) == (
        "00usfbpcapvcITLwi4x6",
        "00gsf7bj3rH2d9PvL4x6",
        "member",
    )


def test_the_recorded_groups_list_lands_every_group() -> None:
    groups = body("groups_list")
    rows = land(
        definition,
        DirectorySync,
        [Payload(schema="directory_group", variant="group", data=g, resource="group") for g in groups],
    )
    assert len(rows) == len(groups) >= 3
    everyone, target = rows[0], rows[1]
    assert (everyone.name, everyone.group_type, everyone.description) == (
        "Everyone",
        "BUILT_IN",
        "All users in your organization",
    )
    assert (target.name, target.group_type, target.description) == ("Group-Target-Test", "OKTA_GROUP", None)
    assert target.attributes == {"last_membership_updated": "2020-08-27T18:15:50.000Z"}
