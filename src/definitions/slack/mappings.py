"""Mappings: how a Slack user object (from ``users.list`` or a ``user_change``/``team_join`` event) becomes a
``directory_account`` row.

Both sources carry the same user object. Fields that only some members have (``is_admin`` is absent on bots,
``has_2fa`` is only shown to admins, guests have ``is_restricted``) are guarded with ``has()``.
"""

from __future__ import annotations

from engine import Mapping

USER = Mapping(
    schema="directory_account",
    variant="user",
    map="""
    {
      "external_id": payload.id,
      "email": has(payload.profile) && has(payload.profile.email) ? payload.profile.email : null,
      "display_name": has(payload.real_name) && payload.real_name != "" ? payload.real_name
        : (has(payload.profile) && has(payload.profile.real_name) ? payload.profile.real_name : payload.name),
      "given_name": has(payload.profile) && has(payload.profile.first_name) ? payload.profile.first_name : null,
      "family_name": has(payload.profile) && has(payload.profile.last_name) ? payload.profile.last_name : null,
      "username": has(payload.name) ? payload.name : null,
      "account_type": (has(payload.is_bot) && payload.is_bot) || payload.id == "USLACKBOT" ? "bot"
        : (has(payload.is_restricted) && payload.is_restricted ? "guest" : "user"),
      "status": has(payload.deleted) && payload.deleted ? "deactivated" : "active",
      "is_admin": has(payload.is_admin) ? payload.is_admin : null,
      "mfa_enabled": has(payload.has_2fa) ? payload.has_2fa : null,
      "attributes": {
        "team_id": has(payload.team_id) ? payload.team_id : null,
        "is_owner": has(payload.is_owner) ? payload.is_owner : null,
        "tz": has(payload.tz) ? payload.tz : null
      }
    }
    """,
)
