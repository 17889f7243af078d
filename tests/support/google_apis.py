"""A local stand-in for Google's Gmail v1, Drive v3 and Calendar v3 endpoints the ``google`` definition calls.

Google cannot run on 127.0.0.1, so this serves its documented behaviour from state built out of the fixtures in
``tests/fixtures/google`` (shapes from Google's discovery documents): paging with ``pageToken``/``nextPageToken`` (at
most ``page_cap`` items a page, as Google may return fewer than asked), Gmail's ``format=metadata`` with
``metadataHeaders`` (and its refusal of ``format=full`` to the ``gmail.metadata`` scope), history from a start ID (404
once that ID is older than the kept history), Drive's numbered change log with ``newStartPageToken`` on its last
page, and Google's error bodies. Bearer tokens are checked by ``authorize`` (token → granted scopes, or ``None``):
the OAuth tests plug the real OAuth server's introspection in, so a product answers only to a grant that has it.
``fail(prefix, status)`` answers the next matching request with an error (a 429 in the middle of a sync).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from support.cassette_fixtures import response_fixture

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
AUTH = "https://www.googleapis.com/auth/"
#: The scopes that let a token call each API (any one of them), per the discovery documents' method scopes.
PRODUCT_SCOPES = {
    "/gmail/": {f"{AUTH}gmail.metadata", f"{AUTH}gmail.readonly", f"{AUTH}gmail.modify", "https://mail.google.com/"},
    "/drive/": {f"{AUTH}drive.metadata.readonly", f"{AUTH}drive.readonly", f"{AUTH}drive", f"{AUTH}drive.metadata"},
    "/calendar/": {f"{AUTH}calendar.readonly", f"{AUTH}calendar.events", f"{AUTH}calendar"},
}
ALL_SCOPES = frozenset(s for scopes in PRODUCT_SCOPES.values() for s in scopes)


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / "google" / f"{name}.json").read_text())


ERRORS = fixture("errors")


@dataclass
class Fault:
    prefix: str
    status: int
    body: dict[str, Any]
    headers: dict[str, str]
    times: int
    #: Matching requests answered normally before the fault starts.
    after: int = 0


@dataclass
class GoogleState:
    authorize: Callable[[str], set[str] | None] = field(default=lambda token: set(ALL_SCOPES))
    page_cap: int = 1000
    profile: dict[str, Any] = field(default_factory=dict)
    messages: dict[str, dict[str, Any]] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    history_id: str = ""
    #: History IDs below this are gone (Gmail keeps about a week): a start before it is a 404.
    oldest_history_id: int = 0
    files: list[dict[str, Any]] = field(default_factory=list)
    #: Drive's change log: change ``i`` has page token ``change_base + i``.
    changes: list[dict[str, Any]] = field(default_factory=list)
    change_base: int = 0
    calendar: dict[str, Any] = field(default_factory=dict)
    events: dict[str, Any] = field(default_factory=dict)
    faults: list[Fault] = field(default_factory=list)
    #: ``(path, query pairs)`` of every request, in order.
    requests: list[tuple[str, list[tuple[str, str]]]] = field(default_factory=list)

    @classmethod
    def from_fixtures(cls) -> GoogleState:
        gmail, drive = fixture("gmail"), fixture("drive")
        calendar = response_fixture(FIXTURES / "google_calendar", "calendar_primary")["body"]
        events = response_fixture(FIXTURES / "google_calendar", "events_page1")["body"]
        events.pop("nextPageToken", None)
        return cls(
            profile=dict(gmail["profile"]),
            messages={m["id"]: m for m in gmail["messages"]},
            history_id=gmail["profile"]["historyId"],
            oldest_history_id=4_000_000,
            files=list(drive["files"]),
            change_base=int(drive["start_page_token"]),
            calendar=calendar,
            events=events,
        )

    # -- what the tests change

    def gmail_changes(self) -> None:
        """The mailbox moves on as the history fixture says: one message added, one marked read, one deleted."""
        gmail = fixture("gmail")
        added = gmail["added"]
        self.messages[added["id"]] = added
        read = self.messages["19ad2f4e8b6c0a11"]
        read["labelIds"] = [label for label in read["labelIds"] if label != "UNREAD"]
        self.messages.pop("19ad2f4e8b6c0a13", None)
        self.history.extend(gmail["history"])
        self.history_id = gmail["history_id_after"]
        self.profile["historyId"] = self.history_id

    def drive_changes(self) -> None:
        """Drive's change log gets the fixture's changes (and the files they describe change)."""
        for change in fixture("drive")["changes"]:
            self.changes.append(change)
            if change.get("removed"):
                self.files = [f for f in self.files if f["id"] != change["fileId"]]
            elif "file" in change:
                self.files = [f for f in self.files if f["id"] != change["fileId"]] + [change["file"]]

    def fail(self, prefix: str, status: int = 429, *, times: int = 1, after: int = 0, retry_after: str = "7") -> None:
        body = (
            ERRORS["rate_limited"]
            if status == 429
            else ERRORS["not_found"]
            if status == 404
            else ERRORS["insufficient_scopes"]
        )
        headers = {"Retry-After": retry_after} if status == 429 else {}
        self.faults.append(Fault(prefix, status, body, headers, times, after))

    def queries(self, prefix: str) -> list[list[tuple[str, str]]]:
        return [q for p, q in self.requests if p.startswith(prefix)]


def _error(name: str, status: int, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(ERRORS[name], status_code=status, headers=headers)


def _page(items: list[Any], token: str | None, size: int) -> tuple[list[Any], str | None]:
    start = int(token[1:]) if token and token.startswith("o") and token[1:].isdigit() else 0
    chunk = items[start : start + size]
    return chunk, (f"o{start + size}" if start + size < len(items) else None)


def app(state: GoogleState) -> FastAPI:
    api = FastAPI()

    @api.get("/{path:path}")
    async def serve(path: str, request: Request) -> JSONResponse:
        path = "/" + path
        query = list(request.query_params.multi_items())
        state.requests.append((path, query))
        auth = request.headers.get("authorization", "")
        scopes = state.authorize(auth[7:]) if auth.startswith("Bearer ") else None
        if scopes is None:
            return _error("unauthenticated", 401)
        needed = next((s for prefix, s in PRODUCT_SCOPES.items() if path.startswith(prefix)), None)
        if needed is None:
            return _error("not_found", 404)
        if not scopes & needed:
            return _error("insufficient_scopes", 403)
        for fault in state.faults:
            if fault.times > 0 and path.startswith(fault.prefix):
                if fault.after > 0:
                    fault.after -= 1
                    continue
                fault.times -= 1
                return JSONResponse(fault.body, status_code=fault.status, headers=fault.headers)
        params = dict(query)
        size = min(int(params.get("maxResults") or params.get("pageSize") or 100), state.page_cap)
        if path.startswith("/gmail/"):
            return _gmail(state, path, params, query, size, scopes)
        if path.startswith("/drive/"):
            return _drive(state, path, params, size)
        return _calendar(state, path)

    return api


def _gmail(
    state: GoogleState, path: str, params: dict[str, str], query: list[tuple[str, str]], size: int, scopes: set[str]
) -> JSONResponse:
    base = "/gmail/v1/users/me"
    if path == f"{base}/profile":
        return JSONResponse(state.profile)
    if path == f"{base}/messages":
        if "q" in params and scopes <= {f"{AUTH}gmail.metadata"}:
            return _error("insufficient_scopes", 403)  # Gmail: "Metadata scope does not support 'q' parameter"
        newest = sorted(state.messages.values(), key=lambda m: int(m["internalDate"]), reverse=True)
        listed = [{"id": m["id"], "threadId": m["threadId"]} for m in newest]
        chunk, token = _page(listed, params.get("pageToken"), size)
        body: dict[str, Any] = (
            {"messages": chunk, "resultSizeEstimate": len(listed)} if chunk else {"resultSizeEstimate": 0}
        )
        if token:
            body["nextPageToken"] = token
        return JSONResponse(body)
    if path.startswith(f"{base}/messages/"):
        message = state.messages.get(path.rsplit("/", 1)[1])
        if message is None:
            return _error("not_found", 404)
        fmt = params.get("format", "full")
        if fmt in ("full", "raw") and scopes <= {f"{AUTH}gmail.metadata"}:
            return _error("insufficient_scopes", 403)  # Gmail: "Metadata scope doesn't allow format FULL"
        if fmt != "metadata":
            raise AssertionError(f"the sync asked for format={fmt}")
        wanted = {v.lower() for k, v in query if k == "metadataHeaders"}
        answer = copy.deepcopy(message)
        headers = answer.get("payload", {}).get("headers", [])
        answer.setdefault("payload", {})["headers"] = [h for h in headers if h["name"].lower() in wanted]
        return JSONResponse(answer)
    if path == f"{base}/history":
        start = int(params["startHistoryId"])
        if start < state.oldest_history_id:
            return _error("not_found", 404)
        records = [r for r in state.history if int(r["id"]) > start]
        chunk, token = _page(records, params.get("pageToken"), size)
        body = {"historyId": state.history_id, **({"history": chunk} if chunk else {})}
        if token:
            body["nextPageToken"] = token
        return JSONResponse(body)
    return _error("not_found", 404)


def _drive(state: GoogleState, path: str, params: dict[str, str], size: int) -> JSONResponse:
    if path == "/drive/v3/changes/startPageToken":
        return JSONResponse(
            {"kind": "drive#startPageToken", "startPageToken": str(state.change_base + len(state.changes))}
        )
    if path == "/drive/v3/files":
        chunk, token = _page(state.files, params.get("pageToken"), size)
        return JSONResponse({"files": chunk, **({"nextPageToken": token} if token else {})})
    if path == "/drive/v3/changes":
        token = params.get("pageToken", "")
        end = state.change_base + len(state.changes)
        if not token.isdigit() or not state.change_base <= int(token) <= end:
            return _error("not_found", 404)
        at = int(token) - state.change_base
        chunk = state.changes[at : at + size]
        following = int(token) + len(chunk)
        body: dict[str, Any] = {"changes": chunk}
        if following < end:
            body["nextPageToken"] = str(following)
        else:
            body["newStartPageToken"] = str(end)
        return JSONResponse(body)
    return _error("not_found", 404)


def _calendar(state: GoogleState, path: str) -> JSONResponse:
    if path == "/calendar/v3/calendars/primary":
        return JSONResponse(state.calendar)
    if path.startswith("/calendar/v3/calendars/") and path.endswith("/events"):
        return JSONResponse(state.events)
    return _error("not_found", 404)
