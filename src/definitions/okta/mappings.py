"""Mappings: how Okta users, groups and group members become directory rows.

Okta profiles carry only the attributes that are set, so optional ones are guarded with ``has()``; an org can make
``firstName`` and ``lastName`` optional, and Okta then answers them as ``null``, so the display name built from them
checks their type (``null + " "`` would fail the whole record). Statuses are
lower-cased for the common ones (``ACTIVE`` → ``active``); rarer ones (``LOCKED_OUT``, ``RECOVERY``…) are kept
as Okta names them. A membership payload is ``{"groupId": …, "user": <user object>}``: the member list of a
group, one user at a time.
"""

from __future__ import annotations

from engine import Mapping

USER = Mapping(
    schema="directory_account",
    variant="user",
    map="""
    {
      "external_id": payload.id,
      "email": has(payload.profile.email) ? payload.profile.email : null,
      "display_name": has(payload.profile.displayName) && type(payload.profile.displayName) == string
        ? payload.profile.displayName
        : (has(payload.profile.firstName) && type(payload.profile.firstName) == string
           && has(payload.profile.lastName) && type(payload.profile.lastName) == string
           ? payload.profile.firstName + " " + payload.profile.lastName : null),
      "given_name": has(payload.profile.firstName) ? payload.profile.firstName : null,
      "family_name": has(payload.profile.lastName) ? payload.profile.lastName : null,
      "username": has(payload.profile.login) ? payload.profile.login : null,
      "account_type": "user",
      "status": payload.status == "ACTIVE" ? "active"
        : payload.status == "SUSPENDED" ? "suspended"
        : payload.status == "DEPROVISIONED" ? "deprovisioned"
        : payload.status == "STAGED" ? "staged"
        : payload.status == "PROVISIONED" ? "provisioned"
        : payload.status,
      "last_login_at": has(payload.lastLogin) ? payload.lastLogin : null,
      "source_created_at": has(payload.created) ? payload.created : null,
      "attributes": {
        "status_changed": has(payload.statusChanged) ? payload.statusChanged : null,
        "last_updated": has(payload.lastUpdated) ? payload.lastUpdated : null
      }
    }
    """,
)

GROUP = Mapping(
    schema="directory_group",
    variant="group",
    map="""
    {
      "external_id": payload.id,
      "name": payload.profile.name,
      "description": has(payload.profile.description) ? payload.profile.description : null,
      "group_type": has(payload.type) ? payload.type : null,
      "attributes": {"last_membership_updated": has(payload.lastMembershipUpdated)
        ? payload.lastMembershipUpdated : null}
    }
    """,
)

MEMBERSHIP = Mapping(
    schema="directory_membership",
    variant="member",
    map="""
    {
      "account_external_id": payload.user.id,
      "group_external_id": payload.groupId,
      "role": "member"
    }
    """,
)
