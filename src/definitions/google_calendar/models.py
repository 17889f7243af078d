"""Typed request and response models of the Calendar helpers (seed 000: getStatus, listCalendars, getFreeBusy,
listEvents, createEvent, updateEvent, cancelEvent).

Python names are snake_case; Google's JSON is camelCase (aliases). Response models ignore fields they do not
declare, so a new field from Google never breaks a helper; request models forbid unknown fields, so a typo fails
before any call is made.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel


class _Response(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")


class _Request(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


SendUpdates = Literal["all", "externalOnly", "none"]


class EventDateTime(_Request):
    """A timed (``date_time``) or all-day (``date``, ``YYYY-MM-DD``) boundary; exactly one is set."""

    date: str | None = Field(default=None, pattern=r"^\d{4}-\d{2}-\d{2}$")
    date_time: datetime | None = None
    time_zone: str | None = None

    @model_validator(mode="after")
    def _one_of(self) -> EventDateTime:
        if (self.date is None) == (self.date_time is None):
            raise ValueError("set exactly one of date and date_time")
        return self


class Attendee(_Request):
    email: str
    display_name: str | None = None
    optional: bool | None = None
    response_status: str | None = None


class Person(_Response):
    email: str | None = None
    display_name: str | None = None


class EventTime(_Response):
    date: str | None = None
    date_time: datetime | None = None
    time_zone: str | None = None


class EventAttendee(_Response):
    email: str | None = None
    display_name: str | None = None
    response_status: str | None = None
    optional: bool | None = None


class Event(_Response):
    id: str
    status: str | None = None
    summary: str | None = None
    description: str | None = None
    location: str | None = None
    html_link: str | None = None
    start: EventTime | None = None
    end: EventTime | None = None
    organizer: Person | None = None
    attendees: list[EventAttendee] = []
    recurring_event_id: str | None = None
    updated: datetime | None = None


class Events(_Response):
    items: list[Event] = []
    next_page_token: str | None = None
    next_sync_token: str | None = None


class CalendarEntry(_Response):
    id: str
    summary: str | None = None
    description: str | None = None
    time_zone: str | None = None
    primary: bool = False
    access_role: str | None = None


class Calendars(_Response):
    items: list[CalendarEntry] = []
    next_page_token: str | None = None


class Status(BaseModel):
    connected: bool
    calendar_id: str
    time_zone: str | None = None


class ListCalendarsRequest(_Request):
    show_hidden: bool = False


class FreeBusyRequest(_Request):
    time_min: datetime
    time_max: datetime
    calendar_ids: list[str] = Field(default=["primary"], min_length=1, max_length=50)
    time_zone: str | None = None

    @model_validator(mode="after")
    def _ordered(self) -> FreeBusyRequest:
        if self.time_max <= self.time_min:
            raise ValueError("time_max must be after time_min")
        return self

    def body(self) -> dict[str, object]:
        body: dict[str, object] = {
            "timeMin": self.time_min.isoformat(),
            "timeMax": self.time_max.isoformat(),
            "items": [{"id": c} for c in self.calendar_ids],
        }
        if self.time_zone:
            body["timeZone"] = self.time_zone
        return body


class TimePeriod(_Response):
    start: datetime
    end: datetime


class CalendarBusy(_Response):
    busy: list[TimePeriod] = []
    errors: list[dict[str, str]] = []


class FreeBusy(_Response):
    time_min: datetime
    time_max: datetime
    calendars: dict[str, CalendarBusy] = {}


class ListEventsRequest(_Request):
    calendar_id: str = "primary"
    time_min: datetime | None = None
    time_max: datetime | None = None
    query: str | None = None
    max_results: int = Field(default=250, ge=1, le=2500)
    page_token: str | None = None
    single_events: bool = True

    def params(self) -> dict[str, str]:
        params = {"maxResults": str(self.max_results), "singleEvents": str(self.single_events).lower()}
        if self.single_events:
            params["orderBy"] = "startTime"
        for name, value in (("timeMin", self.time_min), ("timeMax", self.time_max)):
            if value is not None:
                params[name] = value.isoformat()
        if self.query:
            params["q"] = self.query
        if self.page_token:
            params["pageToken"] = self.page_token
        return params


class CreateEventRequest(_Request):
    calendar_id: str = "primary"
    summary: str
    description: str | None = None
    location: str | None = None
    start: EventDateTime
    end: EventDateTime
    attendees: list[Attendee] = []
    send_updates: SendUpdates = "none"

    def body(self) -> dict[str, object]:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True,
                               exclude={"calendar_id", "send_updates"})


class UpdateEventRequest(_Request):
    """A partial update (``PATCH``): only the fields that are set are changed."""

    calendar_id: str = "primary"
    event_id: str
    summary: str | None = None
    description: str | None = None
    location: str | None = None
    start: EventDateTime | None = None
    end: EventDateTime | None = None
    attendees: list[Attendee] | None = None
    send_updates: SendUpdates = "none"

    def body(self) -> dict[str, object]:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True,
                               exclude={"calendar_id", "event_id", "send_updates"})


class CancelEventRequest(_Request):
    calendar_id: str = "primary"
    event_id: str
    send_updates: SendUpdates = "none"


class Cancelled(BaseModel):
    event_id: str
    cancelled: bool = True
