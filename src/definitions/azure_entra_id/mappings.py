"""Mappings: how Graph users, groups and group members become directory rows.

Delta rounds mark removed objects with ``@removed``; the operation passes them on with ``action="deleted"`` and
every mapping filters them out, so a removal never upserts a row. Their rows are left for the complete-snapshot
removal the engine applies after a full round.
"""

from __future__ import annotations

from engine import Mapping

USER = Mapping(
    schema="directory_account",
    variant="user",
    filter='action != "deleted"',
    map="""
    {
      "external_id": payload.id,
      "email": has(payload.mail) && payload.mail != null ? payload.mail : payload.userPrincipalName,
      "display_name": has(payload.displayName) ? payload.displayName : null,
      "given_name": has(payload.givenName) ? payload.givenName : null,
      "family_name": has(payload.surname) ? payload.surname : null,
      "username": has(payload.userPrincipalName) ? payload.userPrincipalName : null,
      "account_type": has(payload.userType) && payload.userType == "Guest" ? "guest" : "user",
      "status": has(payload.accountEnabled) && payload.accountEnabled == false ? "disabled" : "active",
      "source_created_at": has(payload.createdDateTime) ? payload.createdDateTime : null,
      "attributes": {
        "job_title": has(payload.jobTitle) ? payload.jobTitle : null,
        "department": has(payload.department) ? payload.department : null
      }
    }
    """,
)

GROUP = Mapping(
    schema="directory_group",
    variant="group",
    filter='action != "deleted"',
    map="""
    {
      "external_id": payload.id,
      "name": payload.displayName,
      "email": has(payload.mail) ? payload.mail : null,
      "description": has(payload.description) ? payload.description : null,
      "group_type": has(payload.groupTypes) && "Unified" in payload.groupTypes ? "microsoft_365"
        : (has(payload.securityEnabled) && payload.securityEnabled ? "security" : "distribution"),
      "attributes": {
        "mail_enabled": has(payload.mailEnabled) ? payload.mailEnabled : null,
        "security_enabled": has(payload.securityEnabled) ? payload.securityEnabled : null
      }
    }
    """,
)

MEMBER = Mapping(
    schema="directory_membership",
    variant="member",
    filter='action != "deleted"',
    map="""
    {
      "account_external_id": payload.member.id,
      "group_external_id": payload.group_id,
      "role": "member"
    }
    """,
)

MAPPINGS = (USER, GROUP, MEMBER)
