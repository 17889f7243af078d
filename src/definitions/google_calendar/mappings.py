"""Mapping: a Google Calendar event (the Events resource) → ``calendar_event``.

An incremental sync sends a cancelled event as little more than ``{"id", "status": "cancelled"}``, so every field
but the ID is guarded with ``has()``; the title falls back to an empty string. An all-day event has
``start.date`` (a day, stored as midnight UTC) instead of ``start.dateTime``.
"""

from __future__ import annotations

from engine import Mapping

EVENT = Mapping(
    schema="calendar_event",
    variant="event",
    map="""
    {
      "external_id": payload.id,
      "title": has(payload.summary) ? payload.summary : "",
      "description": has(payload.description) ? payload.description : null,
      "start_at": !has(payload.start) ? null
        : has(payload.start.dateTime) ? payload.start.dateTime
        : has(payload.start.date) ? payload.start.date + "T00:00:00Z" : null,
      "end_at": !has(payload.end) ? null
        : has(payload.end.dateTime) ? payload.end.dateTime
        : has(payload.end.date) ? payload.end.date + "T00:00:00Z" : null,
      "all_day": has(payload.start) ? has(payload.start.date) : null,
      "location": has(payload.location) ? payload.location : null,
      "organizer_email": has(payload.organizer) && has(payload.organizer.email) ? payload.organizer.email : null,
      "status": has(payload.status) ? payload.status : null,
      "url": has(payload.htmlLink) ? payload.htmlLink : null,
      "attendees": has(payload.attendees) ? payload.attendees : null,
      "attributes": {
        "calendar_id": resource,
        "recurring_event_id": has(payload.recurringEventId) ? payload.recurringEventId : null
      }
    }
    """,
)
