"""Mappings: how Graph users, groups and group members become directory rows.

Delta rounds mark removed objects with ``@removed``; the operation passes them on as removals (``REMOVE``), for
which ingest takes only the upsert keys from the map and removes the row, so every map must evaluate on an object
that carries little more than its ``id``.

Graph documents every user and group property as nullable and leaves out a property never set, so every optional
one is guarded for absence and null alike (``has(x) && x == true``, never ``has(x) && x``, which fails the record
on ``null``); ``tests/definitions/test_microsoft_published_examples.py`` runs Graph's published v1.0 examples
through these.
"""

from __future__ import annotations

from engine import Mapping

USER = Mapping(
    schema="directory_account",
    variant="user",
    map="""
    {
      "external_id": payload.id,
      "email": has(payload.mail) && type(payload.mail) == string ? payload.mail
        : (has(payload.userPrincipalName) ? payload.userPrincipalName : null),
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
    map="""
    {
      "external_id": payload.id,
      "name": has(payload.displayName) && type(payload.displayName) == string ? payload.displayName : "",
      "email": has(payload.mail) ? payload.mail : null,
      "description": has(payload.description) ? payload.description : null,
      "group_type": has(payload.groupTypes) && type(payload.groupTypes) == list && "Unified" in payload.groupTypes
        ? "microsoft_365"
        : (has(payload.securityEnabled) && payload.securityEnabled == true ? "security" : "distribution"),
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
    map="""
    {
      "account_external_id": payload.member.id,
      "group_external_id": payload.group_id,
      "role": "member"
    }
    """,
)

MAPPINGS = (USER, GROUP, MEMBER)
