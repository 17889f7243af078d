"""Mappings: how a Slack user object (from ``users.list`` or a ``user_change``/``team_join`` event) becomes a
``directory_account`` row.

Both sources carry the same user object. Fields that only some members have (``is_admin`` is absent on bots,
``has_2fa`` is only shown to admins, guests have ``is_restricted``) are guarded with ``has()``.
"""

from __future__ import annotations

from engine import Mapping
from engine.kit.celpaths import optional, present, text

# Slack sends an unset profile field as "" (its own published users.list example has "phone": "", "skype": ""),
# so names and addresses go through ``text``. The full name is the profile's ``real_name``: in Slack's published
# example the top-level ``real_name`` (deprecated in favour of the profile) is the handle ("spengler") while the
# profile has "Egon Spengler".
_PROFILE = present("profile")

USER = Mapping(
    schema="directory_account",
    variant="user",
    map=f"""
    {{
      "external_id": payload.id,
      "email": {_PROFILE} ? {text("profile.email")} : null,
      "display_name": {_PROFILE} ? {text("profile.real_name", "profile.display_name", "real_name", "name")}
        : {text("real_name", "name")},
      "given_name": {_PROFILE} ? {text("profile.first_name")} : null,
      "family_name": {_PROFILE} ? {text("profile.last_name")} : null,
      "username": {text("name")},
      "account_type": ({present("is_bot")} && payload.is_bot == true) || payload.id == "USLACKBOT" ? "bot"
        : ({present("is_restricted")} && payload.is_restricted == true ? "guest" : "user"),
      "status": {present("deleted")} && payload.deleted == true ? "deactivated" : "active",
      "is_admin": {optional("is_admin")},
      "mfa_enabled": {optional("has_2fa")},
      "attributes": {{
        "team_id": {text("team_id")},
        "is_owner": {optional("is_owner")},
        "tz": {text("tz")}
      }}
    }}
    """,
)
