"""Gmail v1 (message metadata only): the calls the message sync makes, with Google's conventions.

* ``users.getProfile``: the mailbox's current ``historyId`` (where the next partial sync starts).
* ``users.messages.list``: message IDs, newest first, ``pageToken``/``nextPageToken``.
* ``users.messages.get?format=metadata&metadataHeaders=…``: labels, snippet and the named headers; no body.
* ``users.history.list?startHistoryId=…``: what changed since; a 404 means the ID is too old (Google keeps about a
  week of history) and a full sync is due (``HistoryExpired``), as Google's sync guide says.

Errors follow ``definitions.google_api``: 429 and 403 rate/quota reasons are ``rate_limited`` with ``Retry-After``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import httpx

from definitions import google_api
from engine import ProviderError
from engine.kit.egress import read_json
from engine.kit.providerkit import CursorPages, Page, PageRequest, paginate, raise_for_status

#: The headers a message record is built from (``metadataHeaders``, repeated).
HEADERS = ("From", "To", "Cc", "Subject", "Date")
#: The history types the sync reads: new messages, deleted ones, and label changes (read, archived, moved).
HISTORY_TYPES = ("messageAdded", "messageDeleted", "labelAdded", "labelRemoved")
MESSAGE_PAGES = CursorPages(items_path="messages", cursor_path="nextPageToken", missing_ok=True)
HISTORY_PAGES = CursorPages(items_path="history", cursor_path="nextPageToken", missing_ok=True)


class HistoryExpired(ProviderError):
    """404 on ``history.list``: the start history ID is no longer available; a full sync is due."""


class MessageGone(ProviderError):
    """404 on ``messages.get``: the message was deleted after it was listed."""


def check(response: httpx.Response) -> None:
    raise_for_status(response, "Gmail", is_rate_limit=google_api.is_rate_limit)


class Gmail:
    """``Gmail(client, base)``: ``base`` is ``…/gmail/v1`` (``config.api_base``)."""

    def __init__(self, client: httpx.AsyncClient, base: str) -> None:
        self.client = client
        self.base = base

    async def _get(self, path: str, params: Any = None) -> Any:
        response = await self.client.get(f"{self.base}{path}", params=params)
        if response.status_code == 404 and path.endswith("/history"):
            raise HistoryExpired("Gmail no longer has that history ID (GET …/history, 404)", provider_status=404)
        if response.status_code == 404 and "/messages/" in path:
            raise MessageGone("Gmail has no such message any more (GET …/messages/{id}, 404)", provider_status=404)
        check(response)
        return await read_json(response)

    async def profile(self) -> dict[str, Any]:
        body = await self._get("/users/me/profile")
        return body if isinstance(body, dict) else {}

    def message_ids(self, *, include_spam_trash: bool, page_size: int = 500) -> AsyncIterator[Page]:
        """Pages of ``{"id", "threadId"}``, newest first."""
        params = {"maxResults": str(page_size), "includeSpamTrash": str(include_spam_trash).lower()}
        return self._pages("/users/me/messages", params, MESSAGE_PAGES)

    async def message(self, message_id: str) -> dict[str, Any]:
        """One message as ``format=metadata``: id, threadId, labelIds, snippet, historyId, internalDate, headers."""
        params = [("format", "metadata"), *(("metadataHeaders", h) for h in HEADERS)]
        body = await self._get(f"/users/me/messages/{quote(message_id, safe='')}", params)
        return body if isinstance(body, dict) else {}

    def history(self, start_history_id: str, page_size: int = 500) -> AsyncIterator[Page]:
        """Pages of history records since ``start_history_id``; each page's raw body has the mailbox ``historyId``."""
        params = [
            ("startHistoryId", start_history_id),
            ("maxResults", str(page_size)),
            *(("historyTypes", t) for t in HISTORY_TYPES),
        ]
        return self._pages("/users/me/history", params, HISTORY_PAGES)

    def _pages(self, path: str, params: Any, style: CursorPages) -> AsyncIterator[Page]:
        async def fetch(request: PageRequest) -> Page:
            token = [("pageToken", request.cursor)] if request.cursor else []
            pairs = list(params.items()) if isinstance(params, dict) else list(params)
            return style.read(await self._get(path, pairs + token))

        return paginate(fetch, style=style, max_seconds=None, what=f"Gmail pagination of {path}")
