"""Google Calendar: OAuth from data (``oauth.toml``), the typed helpers as operations, and the event sync."""

from __future__ import annotations

from dataclasses import replace

from definitions.google_calendar.mappings import EVENT
from definitions.google_calendar.oauth import OAUTH
from definitions.google_calendar.operations import (
    CancelEvent,
    CreateEvent,
    EventsSync,
    GetFreeBusy,
    GetStatus,
    ListCalendars,
    ListEvents,
    UpdateEvent,
)

definition = replace(
    OAUTH.definition(
        operations=(
            GetStatus,
            ListCalendars,
            GetFreeBusy,
            ListEvents,
            CreateEvent,
            UpdateEvent,
            CancelEvent,
            EventsSync,
        ),
        mappings=(EVENT,),
        category="calendar",
        docs_url="https://developers.google.com/calendar/api/v3/reference",
    ),
    standard_suite_skips={
        "webhook.verifies": "no Calendar push channel (events.watch) is declared: the event sync polls with syncToken",
        "webhook.refuses_tampered": "no Calendar push channel is declared: nothing to tamper with",
    },
)
