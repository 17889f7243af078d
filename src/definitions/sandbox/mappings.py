"""Mappings: how the sandbox's six kinds become internal rows (variants are the kinds, singular).

A deleted record (an incremental list's ``"deleted": true``, a ``record.deleted`` event) reaches ingest as a
removal (``Payload(remove=True)``), for which only the upsert keys of these maps are read. A record the sandbox
hands over as an upsert with ``"deleted": true`` anyway is still mapped faithfully: ``attributes.deleted`` is true,
and where the model has a status it says so (an account ``deleted``, a finding ``deleted``, an event ``cancelled``;
an asset is ``archived``). Optional fields are guarded with ``has()`` so a record missing one still maps.
"""

from __future__ import annotations

from engine import Mapping

#: CEL: whether the record is a deletion.
DELETED = "(has(payload.deleted) && payload.deleted == true)"


def _opt(field: str) -> str:
    """CEL: ``payload.<field>`` when present, else null."""
    return f"(has(payload.{field}) ? payload.{field} : null)"


USER = Mapping(
    schema="directory_account",
    variant="user",
    map=f"""
    {{
      "external_id": payload.id,
      "email": {_opt("email")},
      "display_name": {_opt("name")},
      "username": {_opt("email")},
      "account_type": "user",
      "status": {DELETED} ? "deleted" : (has(payload.active) && payload.active == false ? "suspended" : "active"),
      "source_created_at": {_opt("created_at")},
      "attributes": {{
        "title": {_opt("title")},
        "department": {_opt("department")},
        "updated_at": {_opt("updated_at")},
        "deleted": {DELETED}
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
      "name": payload.name,
      "description": {_opt("description")},
      "attributes": {{"updated_at": {_opt("updated_at")}, "deleted": {DELETED}}}
    }}
    """,
)

MEMBERSHIP = Mapping(
    schema="directory_membership",
    variant="membership",
    map=f"""
    {{
      "account_external_id": payload.user_id,
      "group_external_id": payload.group_id,
      "role": {_opt("role")},
      "attributes": {{"membership_id": payload.id, "updated_at": {_opt("updated_at")}, "deleted": {DELETED}}}
    }}
    """,
)

ASSET = Mapping(
    schema="asset",
    variant="asset",
    map=f"""
    {{
      "source_identifier": payload.id,
      "name": payload.hostname,
      "asset_type": "host",
      "owner": {_opt("owner_email")},
      "archived": {DELETED},
      "source_updated_at": {_opt("updated_at")},
      "attributes": {{"ip": {_opt("ip")}, "os": {_opt("os")}, "deleted": {DELETED}}}
    }}
    """,
)

FINDING = Mapping(
    schema="finding",
    variant="finding",
    map=f"""
    {{
      "external_id": payload.id,
      "title": payload.title,
      "severity": {_opt("severity")},
      "status": {DELETED} ? "deleted" : {_opt("status")},
      "source": "sandbox",
      "resource_identifier": {_opt("asset_id")},
      "last_seen_at": {_opt("updated_at")},
      "attributes": {{"cve": {_opt("cve")}, "deleted": {DELETED}}}
    }}
    """,
)

EVENT = Mapping(
    schema="calendar_event",
    variant="event",
    map=f"""
    {{
      "external_id": payload.id,
      "title": payload.title,
      "start_at": {_opt("start")},
      "end_at": {_opt("end")},
      "organizer_email": {_opt("organizer_email")},
      "attendees": {_opt("attendees")},
      "status": {DELETED} ? "cancelled" : "confirmed",
      "attributes": {{"updated_at": {_opt("updated_at")}, "deleted": {DELETED}}}
    }}
    """,
)

MAPPINGS: tuple[Mapping, ...] = (USER, GROUP, MEMBERSHIP, ASSET, FINDING, EVENT)
