"""Calendar operations: the seed-000 helpers as inline operations, plus the event sync into ``calendar_event``.

Each helper's config is its pydantic request model and its result the response model's JSON. Reading needs the
read tier (``calendar.readonly``); creating, updating and cancelling need the write tier, which the upgrade
grants (``calendar.events``), so those declare ``access="write"``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from pydantic import BaseModel, ConfigDict

from definitions.google_calendar.api import GoogleCalendar, SyncTokenExpired
from definitions.google_calendar.models import (
    CancelEventRequest,
    CreateEventRequest,
    FreeBusyRequest,
    ListCalendarsRequest,
    ListEventsRequest,
    UpdateEventRequest,
)
from definitions.google_calendar.oauth import GoogleCalendarClient
from engine import Emits, Operation, OperationContext, Payload, Policy


def _json(model: BaseModel) -> Any:
    return model.model_dump(mode="json", exclude_none=True)


class GetStatus(Operation):
    """getStatus(): the primary calendar answers, with its ID and time zone."""

    client = GoogleCalendarClient
    policy = Policy.inline()

    async def run(self, ctx: OperationContext) -> Any:
        return _json(await GoogleCalendar.of(ctx).get_status())


class ListCalendars(Operation):
    """listCalendars(): every calendar on the user's calendar list."""

    config = ListCalendarsRequest
    client = GoogleCalendarClient
    policy = Policy.inline()

    async def run(self, ctx: OperationContext) -> Any:
        assert isinstance(ctx.config, ListCalendarsRequest)
        return _json(await GoogleCalendar.of(ctx).list_calendars(ctx.config))


class GetFreeBusy(Operation):
    """getFreeBusy(...): busy windows of up to 50 calendars in a time range."""

    config = FreeBusyRequest
    client = GoogleCalendarClient
    policy = Policy.inline()

    async def run(self, ctx: OperationContext) -> Any:
        assert isinstance(ctx.config, FreeBusyRequest)
        return _json(await GoogleCalendar.of(ctx).get_free_busy(ctx.config))


class ListEvents(Operation):
    """listEvents(...): one page of events, recurring ones expanded, in start order."""

    config = ListEventsRequest
    client = GoogleCalendarClient
    policy = Policy.inline()

    async def run(self, ctx: OperationContext) -> Any:
        assert isinstance(ctx.config, ListEventsRequest)
        return _json(await GoogleCalendar.of(ctx).list_events(ctx.config))


class CreateEvent(Operation):
    """createEvent(...): a new event (write tier)."""

    config = CreateEventRequest
    client = GoogleCalendarClient
    policy = Policy.inline(access="write")

    async def run(self, ctx: OperationContext) -> Any:
        assert isinstance(ctx.config, CreateEventRequest)
        return _json(await GoogleCalendar.of(ctx).create_event(ctx.config))


class UpdateEvent(Operation):
    """updateEvent(...): change the fields given, leave the rest (write tier)."""

    config = UpdateEventRequest
    client = GoogleCalendarClient
    policy = Policy.inline(access="write")

    async def run(self, ctx: OperationContext) -> Any:
        assert isinstance(ctx.config, UpdateEventRequest)
        return _json(await GoogleCalendar.of(ctx).update_event(ctx.config))


class CancelEvent(Operation):
    """cancelEvent(...): cancel an event, optionally notifying attendees (write tier)."""

    config = CancelEventRequest
    client = GoogleCalendarClient
    policy = Policy.inline(access="write")

    async def run(self, ctx: OperationContext) -> Any:
        assert isinstance(ctx.config, CancelEventRequest)
        return _json(await GoogleCalendar.of(ctx).cancel_event(ctx.config))


class EventsSyncConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    calendar_id: str = "primary"


class EventsSync(Operation):
    """Sync a calendar's events into ``calendar_event``, incrementally.

    The cursor is ``{"calendar_id", "sync_token"}``: Google's ``nextSyncToken`` from the last page. With it,
    Google sends only changes, cancellations included (so a cancelled event's row is updated, not left stale).
    A 410 means the token expired: the run starts over with a full sync, as Google's sync guide says.
    """

    config = EventsSyncConfig
    client = GoogleCalendarClient
    policy = Policy.queued(reconcile=True)
    emits = (Emits("calendar_event", "event"),)

    async def ingest(self, ctx: OperationContext) -> AsyncIterator[Payload]:
        assert isinstance(ctx.config, EventsSyncConfig)
        calendar_id = ctx.config.calendar_id
        cursor = ctx.cursor if isinstance(ctx.cursor, dict) else {}
        token = cursor.get("sync_token") if cursor.get("calendar_id") == calendar_id else None
        calendar = GoogleCalendar.of(ctx)
        next_token: str | None = None
        yielded = False
        try:
            async for page in calendar.event_pages(calendar_id, token):
                for event in page.get("items") or []:
                    yielded = True
                    yield Payload("calendar_event", event, variant="event", resource=calendar_id)
                next_token = page.get("nextSyncToken") or next_token
        except SyncTokenExpired:
            if token is None or yielded:
                raise
            async for page in calendar.event_pages(calendar_id, None):
                for event in page.get("items") or []:
                    yield Payload("calendar_event", event, variant="event", resource=calendar_id)
                next_token = page.get("nextSyncToken") or next_token
        if next_token:
            ctx.next_cursor = {"calendar_id": calendar_id, "sync_token": next_token}
