"""The Slack Web API client: one ``httpx.AsyncClient`` per bot token, through the egress guard.

Both connections end in a bot token (``xoxb-…``); it is sent as a bearer token whatever ``token_type`` the
OAuth answer named (Slack says ``bot``, which is not an HTTP scheme).
"""

from __future__ import annotations

import httpx

from definitions.slack.api import API_URL
from definitions.slack.slots import SlackBotToken, SlackOAuthToken
from engine import Client, ClientContext
from engine.kit.egress import egress_client
from engine.kit.providerkit import BearerAuth

HEADERS = {"User-Agent": "Tether (slack)"}


class SlackClient(Client):
    """Web API client for ``slack.com/api``, built from whichever bot token the active connection holds."""

    slots = (SlackOAuthToken, SlackBotToken)

    def build(self, ctx: ClientContext) -> httpx.AsyncClient:
        credential = ctx.credential
        if isinstance(credential, SlackOAuthToken):
            token = credential.access_token.get_secret_value()
        elif isinstance(credential, SlackBotToken):
            token = credential.bot_token.get_secret_value()
        else:
            raise TypeError(f"SlackClient cannot be built from {type(credential).__name__}")
        return egress_client(base_url=API_URL, headers=HEADERS, auth=BearerAuth(token))
