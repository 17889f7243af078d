"""Mappings: SCIM resources (RFC 7643) → directory rows.

A user payload is the full SCIM User as Tether stores it (``id`` is the SCIM id Tether assigned, the upsert key);
the whole resource is kept under ``attributes.scim`` so reads return exactly what was provisioned. A group payload
is the Group (its ``members`` kept only for the names the provider gave them: the membership rows are the
source of truth); each member is a ``{"group": <group id>, "member": <user id>}`` payload.
"""

from __future__ import annotations

from typing import Any

from engine import Mapping, Payload

USER = Mapping(
    schema="directory_account",
    variant="user",
    map="""
    {
      "external_id": payload.id,
      "username": payload.userName,
      "email": has(payload.emails) && payload.emails.exists(e, has(e.value))
        ? (payload.emails.exists(e, has(e.value) && has(e.primary) && e.primary == true)
           ? payload.emails.filter(e, has(e.value) && has(e.primary) && e.primary == true)[0].value
           : payload.emails.filter(e, has(e.value))[0].value)
        : null,
      "display_name": has(payload.displayName) ? payload.displayName
        : (has(payload.name) && has(payload.name.formatted) ? payload.name.formatted : null),
      "given_name": has(payload.name) && has(payload.name.givenName) ? payload.name.givenName : null,
      "family_name": has(payload.name) && has(payload.name.familyName) ? payload.name.familyName : null,
      "account_type": "user",
      "status": has(payload.active) && payload.active == false ? "suspended" : "active",
      "attributes": {"scim": payload}
    }
    """,
)

GROUP = Mapping(
    schema="directory_group",
    variant="group",
    map="""
    {
      "external_id": payload.id,
      "name": payload.displayName,
      "group_type": "scim",
      "attributes": {"scim": payload}
    }
    """,
)

MEMBERSHIP = Mapping(
    schema="directory_membership",
    variant="member",
    map="""
    {
      "account_external_id": payload.member,
      "group_external_id": payload.group,
      "role": "member"
    }
    """,
)


def user_payloads(resource: dict[str, Any]) -> list[Payload]:
    return [Payload("directory_account", resource, variant="user", resource="User", action="upsert")]


def group_payloads(resource: dict[str, Any], members: list[str] | None = None) -> list[Payload]:
    """The group, then one payload per member (``members`` defaults to the resource's member values)."""
    if members is None:
        members = [str(m.get("value")) for m in resource.get("members") or [] if isinstance(m, dict) and m.get("value")]
    out = [Payload("directory_group", resource, variant="group", resource="Group", action="upsert")]
    out += [
        Payload("directory_membership", {"group": resource["id"], "member": m}, variant="member", resource="Group")
        for m in members
    ]
    return out
