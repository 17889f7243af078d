"""Mappings: how Admin SDK users, groups and members become directory rows.

Google writes int64 values as strings (``directMembersCount``) and a never-used account's ``lastLoginTime`` as
the epoch, so both are converted or dropped here. Members can be users, nested groups or the whole customer;
only user members are memberships of an account, the rest are filtered out.
"""

from __future__ import annotations

from engine import Mapping

#: Google's "never logged in" value.
NEVER = "1970-01-01T00:00:00.000Z"

USER = Mapping(
    schema="directory_account",
    variant="user",
    map=f"""
    {{
      "external_id": payload.id,
      "email": payload.primaryEmail,
      "display_name": has(payload.name) && has(payload.name.fullName) ? payload.name.fullName : null,
      "given_name": has(payload.name) && has(payload.name.givenName) ? payload.name.givenName : null,
      "family_name": has(payload.name) && has(payload.name.familyName) ? payload.name.familyName : null,
      "username": payload.primaryEmail,
      "account_type": "user",
      "status": has(payload.suspended) && payload.suspended ? "suspended"
        : (has(payload.archived) && payload.archived ? "archived" : "active"),
      "is_admin": has(payload.isAdmin) ? payload.isAdmin : null,
      "mfa_enabled": has(payload.isEnrolledIn2Sv) ? payload.isEnrolledIn2Sv : null,
      "last_login_at": has(payload.lastLoginTime) && payload.lastLoginTime != "{NEVER}" ? payload.lastLoginTime : null,
      "source_created_at": has(payload.creationTime) ? payload.creationTime : null,
      "attributes": {{
        "org_unit_path": has(payload.orgUnitPath) ? payload.orgUnitPath : null,
        "customer_id": has(payload.customerId) ? payload.customerId : null,
        "is_delegated_admin": has(payload.isDelegatedAdmin) ? payload.isDelegatedAdmin : null
      }}
    }}
    """,
)

GROUP = Mapping(
    schema="directory_group",
    variant="group",
    map="""
    {
      "external_id": payload.id,
      "name": has(payload.name) ? payload.name : payload.email,
      "email": payload.email,
      "description": has(payload.description) && payload.description != "" ? payload.description : null,
      "group_type": "google_group",
      "member_count": has(payload.directMembersCount) ? int(payload.directMembersCount) : null,
      "attributes": {"admin_created": has(payload.adminCreated) ? payload.adminCreated : null}
    }
    """,
)

MEMBER = Mapping(
    schema="directory_membership",
    variant="member",
    filter='has(payload.member.type) && payload.member.type == "USER"',
    map="""
    {
      "account_external_id": payload.member.id,
      "group_external_id": payload.group.id,
      "role": {"OWNER": "owner", "MANAGER": "manager", "MEMBER": "member"}[payload.member.role],
      "attributes": {"status": has(payload.member.status) ? payload.member.status : null}
    }
    """,
)

MAPPINGS = (USER, GROUP, MEMBER)
