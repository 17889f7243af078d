"""Google Calendar's OAuth part, generated from ``oauth.toml`` on the customOauth2 substrate.

Why data: Google's OAuth is standard (RFC 7009 revocation, OpenID userinfo for the account); only the Calendar
calls are Python. The read tier is ``calendar.readonly``; ``upgradeScopes`` adds ``calendar.events``.
"""

from __future__ import annotations

from pathlib import Path

from definitions.custom_oauth2 import generate, load_spec

OAUTH = generate(load_spec(Path(__file__).with_name("oauth.toml")))
GoogleCalendarClient = OAUTH.client
