"""Drive v3 (file metadata only): the calls the file sync makes.

* ``changes.getStartPageToken``: where the change log stands now (taken *before* a full listing, so nothing that
  changes during the listing is missed: it is replayed by the next partial sync).
* ``files.list``: every file the user can see, ``pageToken``/``nextPageToken``, with the listed ``fields`` only.
* ``changes.list?pageToken=…``: changes since; the last page carries ``newStartPageToken`` (the next start), the
  others ``nextPageToken``. A ``removed`` change has no ``file`` (deleted for good, or no longer shared).

Drive answers a lost token with 404 (rare: tokens do not expire like Gmail's history IDs), so the sync restarts then.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx

from definitions import google_api
from engine import ProviderError
from engine.kit.egress import read_json
from engine.kit.providerkit import CursorPages, Page, PageRequest, paginate, raise_for_status

#: The File fields a ``file`` record is built from (Drive v3 names; ``size`` is an int64 string).
FILE_FIELDS = ",".join(
    [
        "id",
        "name",
        "mimeType",
        "owners(displayName,emailAddress)",
        "modifiedTime",
        "createdTime",
        "webViewLink",
        "trashed",
        "parents",
        "size",
        "driveId",
    ]
)
FILE_PAGES = CursorPages(items_path="files", cursor_path="nextPageToken", missing_ok=True)
CHANGE_PAGES = CursorPages(items_path="changes", cursor_path="nextPageToken", missing_ok=True)


class ChangeTokenInvalid(ProviderError):
    """404 on ``changes.list``: the page token is not valid any more; a full sync is due."""


def check(response: httpx.Response) -> None:
    raise_for_status(response, "Google Drive", is_rate_limit=google_api.is_rate_limit)


class Drive:
    """``Drive(client, base)``: ``base`` is ``…/drive/v3`` (``config.api_base``)."""

    def __init__(self, client: httpx.AsyncClient, base: str) -> None:
        self.client = client
        self.base = base

    async def _get(self, path: str, params: dict[str, str]) -> Any:
        response = await self.client.get(f"{self.base}{path}", params=params)
        if response.status_code == 404 and path == "/changes":
            raise ChangeTokenInvalid("Google Drive refused the page token (GET /changes, 404)", provider_status=404)
        check(response)
        return await read_json(response)

    async def start_page_token(self) -> str:
        body = await self._get("/changes/startPageToken", {"supportsAllDrives": "true"})
        token = body.get("startPageToken") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise ProviderError("Google Drive answered no startPageToken (GET /changes/startPageToken)")
        return token

    def files(self, page_size: int = 1000) -> AsyncIterator[Page]:
        params = {
            "pageSize": str(page_size),
            "fields": f"nextPageToken,files({FILE_FIELDS})",
            "supportsAllDrives": "true",
            "includeItemsFromAllDrives": "true",
        }

        async def fetch(request: PageRequest) -> Page:
            token = {"pageToken": request.cursor} if request.cursor else {}
            return FILE_PAGES.read(await self._get("/files", {**params, **token}))

        return paginate(fetch, style=FILE_PAGES, max_seconds=None, what="Google Drive pagination of /files")

    def changes(self, page_token: str, page_size: int = 1000) -> AsyncIterator[Page]:
        """Pages of changes from ``page_token``; the last page's raw body holds ``newStartPageToken``."""
        params = {
            "pageSize": str(page_size),
            "fields": f"nextPageToken,newStartPageToken,changes(changeType,fileId,removed,time,file({FILE_FIELDS}))",
            "supportsAllDrives": "true",
            "includeItemsFromAllDrives": "true",
            "includeRemoved": "true",
        }

        async def fetch(request: PageRequest) -> Page:
            return CHANGE_PAGES.read(await self._get("/changes", {**params, "pageToken": request.cursor}))

        return paginate(
            fetch, style=CHANGE_PAGES, start=page_token, max_seconds=None, what="Google Drive pagination of /changes"
        )
