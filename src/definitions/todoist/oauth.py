"""Todoist's OAuth part, generated from the data file ``custom_oauth2/providers/todoist.toml``.

Why a package at all: Todoist needs operations, which are Python; everything about connecting (client secrets,
scopes, account lookup at ``/api/v1/user``, RFC 7009 revocation) stays data, on the customOauth2 substrate.
"""

from __future__ import annotations

from definitions.custom_oauth2 import PROVIDERS, generate, load_spec

OAUTH = generate(load_spec(PROVIDERS / "todoist.toml"))
TodoistClient = OAUTH.client
