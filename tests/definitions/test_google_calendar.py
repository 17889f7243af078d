"""Google Calendar: the typed helpers, the event sync and its mapping, against Google's documented Calendar v3
shapes replayed by respx (no network)."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from pydantic import ValidationError

from definitions.google_calendar import definition
from definitions.google_calendar.models import (
    CancelEventRequest,
    CreateEventRequest,
    EventDateTime,
    FreeBusyRequest,
    ListEventsRequest,
    UpdateEventRequest,
)
from definitions.google_calendar.oauth import OAUTH
from definitions.google_calendar.operations import (
    CancelEvent,
    CreateEvent,
    EventsSync,
    EventsSyncConfig,
    GetFreeBusy,
    GetStatus,
    ListCalendars,
    ListEvents,
    UpdateEvent,
)
from engine import ClientContext, NoConfig, OperationContext, ProviderError, Revoke
from engine.catalog.registry import Registry
from ingest.models.calendar_event import CalendarEvent
from support.cassette_fixtures import response_fixture

API = "https://www.googleapis.com/calendar/v3"
FIXTURES = Path(__file__).parents[1] / "fixtures" / "google_calendar"
READ = "https://www.googleapis.com/auth/calendar.readonly"
WRITE = "https://www.googleapis.com/auth/calendar.events"


def recorded(name: str) -> dict[str, Any]:
    return response_fixture(FIXTURES, name)


def answer(name: str) -> httpx.Response:
    rec = recorded(name)
    return httpx.Response(rec["status"], headers=rec["headers"], json=rec["body"])


def context(client: Any, config: Any, cursor: Any = None) -> OperationContext:
    return OperationContext("int_1", "t", config, client, None, None, cursor=cursor)


def run(op: Any, config: Any = None, cursor: Any = None) -> tuple[Any, OperationContext]:
    slot = OAUTH.slot.model_validate({"access_token": "ya29.token", "scopes": [READ]})

    async def go() -> tuple[Any, OperationContext]:
        async with OAUTH.client().build(ClientContext("int_1", slot, None, None)) as client:
            ctx = context(client, config or op.config())
            ctx.cursor = cursor
            if op.execution_paths() == ["ingest"]:
                return [p async for p in op().ingest(ctx)], ctx
            return await op().run(ctx), ctx

    return asyncio.run(go())


# -- the definition --------------------------------------------------------------------------------------------


def test_read_and_write_access_tiers() -> None:
    Registry().register(definition)
    auth = definition.connections[0].auth
    assert auth is not None
    assert READ in auth.scopes and WRITE not in auth.scopes  # type: ignore[attr-defined]
    assert {READ, WRITE} <= set(auth.upgrade_scopes)  # type: ignore[attr-defined]
    assert dict(auth.extra_authorize_params)["access_type"] == "offline"  # type: ignore[attr-defined]
    assert definition.connections[0].disconnect == Revoke(OAUTH.slot)
    writes = {o.__name__ for o in definition.operations if o.policy.access == "write"}
    assert writes == {"CreateEvent", "UpdateEvent", "CancelEvent"}


# -- helpers ---------------------------------------------------------------------------------------------------


def test_status_and_calendars() -> None:
    with respx.mock as mock:
        route = mock.get(f"{API}/calendars/primary").mock(return_value=answer("calendar_primary"))
        mock.get(f"{API}/users/me/calendarList").mock(return_value=answer("calendar_list"))
        status, _ = run(GetStatus, NoConfig())
        calendars, _ = run(ListCalendars)
    assert route.calls.last.request.headers["authorization"] == "Bearer ya29.token"
    assert status == {"connected": True, "calendar_id": "ada@example.com", "time_zone": "Europe/Berlin"}
    assert [(c["id"], c["primary"], c["access_role"]) for c in calendars["items"]] == [
        ("ada@example.com", True, "owner"), ("en.german#holiday@group.v.calendar.google.com", False, "reader")]


def test_free_busy_sends_googles_body_and_types_the_answer() -> None:
    request = FreeBusyRequest(time_min=datetime(2026, 6, 1, tzinfo=UTC), time_max=datetime(2026, 6, 8, tzinfo=UTC),
                              calendar_ids=["primary", "nobody@example.com"])
    with respx.mock as mock:
        route = mock.post(f"{API}/freeBusy").mock(return_value=answer("freebusy"))
        result, _ = run(GetFreeBusy, request)
    assert json.loads(route.calls.last.request.content) == {
        "timeMin": "2026-06-01T00:00:00+00:00", "timeMax": "2026-06-08T00:00:00+00:00",
        "items": [{"id": "primary"}, {"id": "nobody@example.com"}]}
    assert result["calendars"]["primary"]["busy"][0] == {
        "start": "2026-06-02T08:00:00Z", "end": "2026-06-02T09:00:00Z"}
    assert result["calendars"]["nobody@example.com"]["errors"] == [{"domain": "global", "reason": "notFound"}]


def test_request_models_refuse_bad_input() -> None:
    with pytest.raises(ValidationError):
        FreeBusyRequest(time_min=datetime(2026, 6, 8, tzinfo=UTC), time_max=datetime(2026, 6, 1, tzinfo=UTC))
    with pytest.raises(ValidationError):
        EventDateTime(date="2026-06-01", date_time=datetime(2026, 6, 1, tzinfo=UTC))
    with pytest.raises(ValidationError):
        CreateEventRequest.model_validate({"summary": "x", "start": {"date": "2026-06-01"},
                                           "end": {"date": "2026-06-02"}, "colour": "red"})


def test_list_events_encodes_the_calendar_id() -> None:
    request = ListEventsRequest(calendar_id="en.german#holiday@group.v.calendar.google.com",
                                time_min=datetime(2024, 5, 1, tzinfo=UTC))
    with respx.mock as mock:
        route = mock.get(url__startswith=API).mock(return_value=answer("events_page1"))
        result, _ = run(ListEvents, request)
    sent = route.calls.last.request.url
    assert sent.raw_path.startswith(b"/calendar/v3/calendars/en.german%23holiday%40group.v.calendar.google.com/events?")
    assert sent.params["singleEvents"] == "true" and sent.params["orderBy"] == "startTime"
    assert result["next_page_token"] == "EjsKKzRlYWhz" and result["items"][0]["summary"] == "Design review"


def test_create_update_cancel_events() -> None:
    create = CreateEventRequest(summary="Lunch", start=EventDateTime(date_time=datetime(2024, 5, 6, 12, tzinfo=UTC)),
                                end=EventDateTime(date_time=datetime(2024, 5, 6, 13, tzinfo=UTC)),
                                attendees=[{"email": "grace@example.com"}], send_updates="all")
    with respx.mock as mock:
        created = mock.post(f"{API}/calendars/primary/events").mock(return_value=answer("event_created"))
        patched = mock.patch(f"{API}/calendars/primary/events/newevent0001").mock(return_value=answer("event_created"))
        deleted = mock.delete(f"{API}/calendars/primary/events/newevent0001").mock(return_value=httpx.Response(204))
        event, _ = run(CreateEvent, create)
        run(UpdateEvent, UpdateEventRequest(event_id="newevent0001", location="Canteen"))
        cancelled, _ = run(CancelEvent, CancelEventRequest(event_id="newevent0001"))
    assert json.loads(created.calls.last.request.content) == {
        "summary": "Lunch", "start": {"dateTime": "2024-05-06T12:00:00Z"}, "end": {"dateTime": "2024-05-06T13:00:00Z"},
        "attendees": [{"email": "grace@example.com"}]}
    assert created.calls.last.request.url.params["sendUpdates"] == "all"
    assert json.loads(patched.calls.last.request.content) == {"location": "Canteen"}
    assert deleted.called and cancelled == {"event_id": "newevent0001", "cancelled": True}
    assert event["id"] == "newevent0001"


@pytest.mark.parametrize(("fixture", "code", "retry_after"), [
    ("error_401", "unauthorized", None),
    ("error_429", "rate_limited", 30.0),
    ("error_403_rate", "rate_limited", None),
    ("error_403_forbidden", "provider_error", None),
])
def test_error_codes(fixture: str, code: str, retry_after: float | None) -> None:
    with respx.mock as mock:
        mock.get(f"{API}/calendars/primary").mock(return_value=answer(fixture))
        with pytest.raises(ProviderError) as failed:
            run(GetStatus, NoConfig())
    assert (failed.value.code, failed.value.retry_after) == (code, retry_after)
    assert "ya29" not in str(failed.value) and "Rate Limit" not in str(failed.value)


# -- the event sync ----------------------------------------------------------------------------------------------


def test_full_sync_pages_and_stores_the_sync_token() -> None:
    with respx.mock as mock:
        route = mock.get(f"{API}/calendars/primary/events").mock(
            side_effect=[answer("events_page1"), answer("events_page2")])
        payloads, ctx = run(EventsSync, EventsSyncConfig())
    assert [p.data["id"] for p in payloads] == ["4eahs9ghkhrvkld72hogu9ph3e", "7u1k3o0v5v0b8q2m0d3lq2q9ag"]
    assert {(p.schema, p.variant, p.resource) for p in payloads} == {("calendar_event", "event", "primary")}
    assert "syncToken" not in route.calls[0].request.url.params
    assert route.calls[1].request.url.params["pageToken"] == "EjsKKzRlYWhz"
    assert ctx.next_cursor == {"calendar_id": "primary", "sync_token": "CPDAlvWDx70CEPDAlvWDx70CGAU="}


def test_incremental_sync_uses_the_cursor() -> None:
    cursor = {"calendar_id": "primary", "sync_token": "CPDAlvWDx70CEPDAlvWDx70CGAU="}
    with respx.mock as mock:
        route = mock.get(f"{API}/calendars/primary/events").mock(return_value=answer("events_incremental"))
        payloads, ctx = run(EventsSync, EventsSyncConfig(), cursor=cursor)
    assert route.calls.last.request.url.params["syncToken"] == "CPDAlvWDx70CEPDAlvWDx70CGAU="
    assert [p.data["status"] for p in payloads] == ["cancelled"]
    assert ctx.next_cursor["sync_token"] == "CJiwnbWGx70CEJiwnbWGx70CGAU="


def test_expired_sync_token_falls_back_to_a_full_sync() -> None:
    cursor = {"calendar_id": "primary", "sync_token": "stale"}
    with respx.mock as mock:
        route = mock.get(f"{API}/calendars/primary/events").mock(
            side_effect=[answer("error_410"), answer("events_page1"), answer("events_page2")])
        payloads, ctx = run(EventsSync, EventsSyncConfig(), cursor=cursor)
    assert len(payloads) == 2 and "syncToken" not in route.calls[1].request.url.params
    assert ctx.next_cursor["sync_token"] == "CPDAlvWDx70CEPDAlvWDx70CGAU="


def test_sync_rate_limit_keeps_the_cursor() -> None:
    with respx.mock as mock:
        mock.get(f"{API}/calendars/primary/events").mock(return_value=answer("error_429"))
        with pytest.raises(ProviderError) as failed:
            run(EventsSync, EventsSyncConfig(), cursor={"calendar_id": "primary", "sync_token": "t"})
    assert failed.value.code == "rate_limited"


# -- golden mapping ----------------------------------------------------------------------------------------------


def evaluate(event: dict[str, Any]) -> dict[str, Any]:
    registry = Registry()
    registry.register(definition)
    compiled = registry.mapping("google_calendar", "calendar_event", "event")
    assert compiled is not None and compiled.map is not None
    activation = {"envelope": {}, "variant": "event", "resource": "primary", "action": "", "payload": event}
    return compiled.map.evaluate(activation)


def as_row(fields: dict[str, Any]) -> CalendarEvent:
    return CalendarEvent.model_validate(
        {**fields, "tenant_id": "t", "integration_id": "i", "definition_id": "google_calendar"})


def test_mapping_timed_event() -> None:
    fields = evaluate(recorded("events_page1")["body"]["items"][0])
    assert fields == {
        "external_id": "4eahs9ghkhrvkld72hogu9ph3e",
        "title": "Design review",
        "description": "Tether catalog part 2",
        "start_at": "2024-05-06T10:00:00+02:00",
        "end_at": "2024-05-06T11:00:00+02:00",
        "all_day": False,
        "location": "Room 4",
        "organizer_email": "ada@example.com",
        "status": "confirmed",
        "url": "https://www.google.com/calendar/event?eid=NGVhaHM5",
        "attendees": [{"email": "ada@example.com", "organizer": True, "self": True, "responseStatus": "accepted"},
                      {"email": "grace@example.com", "responseStatus": "needsAction"}],
        "attributes": {"calendar_id": "primary", "recurring_event_id": None},
    }
    assert as_row(fields).start_at == datetime(2024, 5, 6, 8, tzinfo=UTC)


def test_mapping_all_day_event() -> None:
    fields = evaluate(recorded("events_page2")["body"]["items"][0])
    assert (fields["all_day"], fields["start_at"], fields["end_at"]) == (
        True, "2024-05-09T00:00:00Z", "2024-05-10T00:00:00Z")
    assert fields["description"] is None and fields["attendees"] is None
    as_row(fields)


def test_mapping_cancelled_event_from_an_incremental_sync() -> None:
    fields = evaluate(recorded("events_incremental")["body"]["items"][0])
    assert fields["external_id"] == "7u1k3o0v5v0b8q2m0d3lq2q9ag" and fields["status"] == "cancelled"
    assert (fields["title"], fields["start_at"], fields["all_day"], fields["url"]) == ("", None, None, None)
    as_row(fields)
