"""The typed Calendar helpers: one method per seed-000 helper over an egress-guarded, token-carrying client.

Google's conventions handled here, once: calendar and event IDs are path segments and are percent-encoded (a
calendar ID is often an e-mail address; an ID can never add a path segment); 401 is ``unauthorized``; 429 and the
403 answers whose reason is a rate limit (``rateLimitExceeded``, ``userRateLimitExceeded``) are ``rate_limited``
with ``Retry-After`` when sent. Provider bodies are read for that reason only, never put in a message.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import httpx

from definitions import google_api
from definitions.google_calendar.models import (
    CalendarEntry,
    Calendars,
    CancelEventRequest,
    Cancelled,
    CreateEventRequest,
    Event,
    Events,
    FreeBusy,
    FreeBusyRequest,
    ListCalendarsRequest,
    ListEventsRequest,
    Status,
    UpdateEventRequest,
)
from engine import ProviderError
from engine.kit.egress import read_json
from engine.kit.providerkit import CursorPages, Page, PageRequest, paginate, raise_for_status

API = "https://www.googleapis.com/calendar/v3"
#: Calendar lists and event lists: ``items`` and ``nextPageToken``.
PAGES = CursorPages(items_path="items", cursor_path="nextPageToken", missing_ok=True)


class SyncTokenExpired(ProviderError):
    """410 Gone on a ``syncToken``: Google wants a full sync."""


def seg(value: str) -> str:
    return quote(value, safe="")


async def check(response: httpx.Response) -> None:
    """Google's conventions (``definitions.google_api``), and 410 Gone on a ``syncToken``: a full sync is due."""
    if response.status_code == 410:
        where = f"{response.request.method} {response.request.url.path}"
        raise SyncTokenExpired(f"Google expired the sync token ({where})", provider_status=410)
    raise_for_status(response, "Google", is_rate_limit=google_api.is_rate_limit)


class GoogleCalendar:
    """``GoogleCalendar(client).get_free_busy(FreeBusyRequest(...))`` and friends; server-side only."""

    def __init__(self, client: httpx.AsyncClient, api: str = API) -> None:
        self.client = client
        self.api = api

    @classmethod
    def of(cls, ctx: Any) -> GoogleCalendar:
        """The helper an operation uses: Google's API root, or the operator's ``api_root`` (the ``google``
        definition's tests point all three Google products at one local server)."""
        root = getattr(ctx.operator_config, "api_root", None)
        return cls(ctx.client, f"{root.rstrip('/')}/calendar/v3" if root else API)

    async def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = await self.client.request(method, f"{self.api}{path}", **kwargs)
        await check(response)
        return await read_json(response)

    async def get_status(self) -> Status:
        calendar = CalendarEntry.model_validate(await self._json("GET", "/calendars/primary"))
        return Status(connected=True, calendar_id=calendar.id, time_zone=calendar.time_zone)

    async def list_calendars(self, request: ListCalendarsRequest | None = None) -> Calendars:
        request = request or ListCalendarsRequest()
        params = {"maxResults": "250", "showHidden": str(request.show_hidden).lower()}
        entries: list[CalendarEntry] = []
        async for page in self._pages("/users/me/calendarList", params):
            entries.extend(Calendars.model_validate(page.raw).items)
        return Calendars(items=entries)

    async def get_free_busy(self, request: FreeBusyRequest) -> FreeBusy:
        return FreeBusy.model_validate(await self._json("POST", "/freeBusy", json=request.body()))

    async def list_events(self, request: ListEventsRequest) -> Events:
        path = f"/calendars/{seg(request.calendar_id)}/events"
        return Events.model_validate(await self._json("GET", path, params=request.params()))

    async def create_event(self, request: CreateEventRequest) -> Event:
        path = f"/calendars/{seg(request.calendar_id)}/events"
        body = await self._json("POST", path, json=request.body(), params={"sendUpdates": request.send_updates})
        return Event.model_validate(body)

    async def update_event(self, request: UpdateEventRequest) -> Event:
        path = f"/calendars/{seg(request.calendar_id)}/events/{seg(request.event_id)}"
        body = await self._json("PATCH", path, json=request.body(), params={"sendUpdates": request.send_updates})
        return Event.model_validate(body)

    async def cancel_event(self, request: CancelEventRequest) -> Cancelled:
        """``DELETE``: Google marks the event cancelled and (per ``send_updates``) tells the attendees."""
        path = f"/calendars/{seg(request.calendar_id)}/events/{seg(request.event_id)}"
        response = await self.client.delete(f"{self.api}{path}", params={"sendUpdates": request.send_updates})
        await check(response)
        return Cancelled(event_id=request.event_id)

    async def event_pages(self, calendar_id: str, sync_token: str | None) -> Any:
        """Raw event pages for the sync: with a ``syncToken`` only changes (cancelled events included)."""
        params: dict[str, str] = {"maxResults": "250"}
        if sync_token:
            params["syncToken"] = sync_token
        else:
            params["showDeleted"] = "false"
        async for page in self._pages(f"/calendars/{seg(calendar_id)}/events", params):
            yield page.raw

    def _pages(self, path: str, params: dict[str, str]) -> AsyncIterator[Page]:
        """The pages of a list, ``pageToken`` after ``pageToken`` (with the kit's loop guards)."""

        async def fetch(request: PageRequest) -> Page:
            token = {"pageToken": request.cursor} if request.cursor else {}
            return PAGES.read(await self._json("GET", path, params={**params, **token}))

        return paginate(fetch, style=PAGES, max_seconds=None, what=f"Google pagination of {path}")
