"""Mappings: how Admin SDK users, groups and members become directory rows.

Google writes int64 values as strings (``directMembersCount``) and a never-used account's ``lastLoginTime`` as
the epoch, so both are converted or dropped here. Members can be users, nested groups or the whole customer;
only user members are memberships of an account, the rest are filtered out.
"""

from __future__ import annotations

from engine import Mapping
from engine.kit.celpaths import optional, present, text

_NAME = present("name")
ROLES = '{"OWNER": "owner", "MANAGER": "manager", "MEMBER": "member"}'

#: Google's "never logged in" value.
NEVER = "1970-01-01T00:00:00.000Z"

USER = Mapping(
    schema="directory_account",
    variant="user",
    map=f"""
    {{
      "external_id": payload.id,
      "email": payload.primaryEmail,
      "display_name": {_NAME} ? {optional("name.fullName")} : null,
      "given_name": {_NAME} ? {optional("name.givenName")} : null,
      "family_name": {_NAME} ? {optional("name.familyName")} : null,
      "username": payload.primaryEmail,
      "account_type": "user",
      "status": {present("suspended")} && payload.suspended == true ? "suspended"
        : ({present("archived")} && payload.archived == true ? "archived" : "active"),
      "is_admin": {optional("isAdmin")},
      "mfa_enabled": {optional("isEnrolledIn2Sv")},
      "last_login_at": {present("lastLoginTime")} && payload.lastLoginTime != "{NEVER}" ? payload.lastLoginTime : null,
      "source_created_at": {optional("creationTime")},
      "attributes": {{
        "org_unit_path": {optional("orgUnitPath")},
        "customer_id": {optional("customerId")},
        "is_delegated_admin": {optional("isDelegatedAdmin")}
      }}
    }}
    """,
)

GROUP = Mapping(
    schema="directory_group",
    variant="group",
    map=f"""
    {{
      "external_id": payload.id,
      "name": {text("name", "email")},
      "email": payload.email,
      "description": {text("description")},
      "group_type": "google_group",
      "member_count": {present("directMembersCount")} ? int(payload.directMembersCount) : null,
      "attributes": {{"admin_created": {optional("adminCreated")}}}
    }}
    """,
)

MEMBER = Mapping(
    schema="directory_membership",
    variant="member",
    filter=f'{present("member.type")} && payload.member.type == "USER"',
    map=f"""
    {{
      "account_external_id": payload.member.id,
      "group_external_id": payload.group.id,
      "role": {present("member.role")} && payload.member.role in {ROLES} ? {ROLES}[payload.member.role] : null,
      "attributes": {{"status": {optional("member.status")}}}
    }}
    """,
)

MAPPINGS = (USER, GROUP, MEMBER)
