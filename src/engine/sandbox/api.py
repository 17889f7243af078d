"""The sandbox's REST API (``/sandbox/api/v1``): who am I, cursor-paginated listings, webhook subscriptions, and one
write (``PATCH /findings/{id}`` with ``{"status": "open"|"resolved"}``, which needs the ``records:write`` scope: the
write tier a read-only grant lacks).

``GET /{kind}`` takes ``limit`` (1..100, default 50), ``cursor`` (opaque, from the previous page) and
``updated_since`` (RFC 3339: only records changed after it, deleted ones included as ``"deleted": true``, so an
incremental sync sees removals; a full listing leaves them out). Every call spends one armed failure of its
account first (``controls``: the next N calls answer 429 with ``Retry-After``, or 500).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Literal, TypeVar

import anyio.to_thread
from fastapi import APIRouter, Request
from pydantic import ValidationError

from engine.api.bodies import RequestBody
from engine.errors import NotFoundError, TetherError
from engine.kit.inputs import ascii_int
from engine.sandbox import records, subscriptions
from engine.sandbox.answers import Answer, ProviderRoute, bad_request
from engine.sandbox.auth import KIND_SCOPES, WRITE_SCOPE, authenticate, fail_if_armed, require_scope
from engine.sandbox.database import sandbox_db
from engine.sandbox.grants import Caller
from engine.sandbox.seed import BY_ID, KINDS
from engine.sandbox.store import BadCursor, list_page
from engine.store.database import Database

router = APIRouter(prefix="/api/v1", route_class=ProviderRoute, include_in_schema=False)
MAX_LIMIT = 100
_B = TypeVar("_B", bound=RequestBody)
DEFAULT_LIMIT = 50


class WebhookBody(RequestBody):
    url: str
    secret: str


class FindingStatus(RequestBody):
    status: Literal["open", "resolved"]


def _db(request: Request) -> Database:
    return sandbox_db(request.app.state.runtime.db)


async def _caller(request: Request) -> Caller:
    def check() -> Caller:
        caller = authenticate(request)
        fail_if_armed(_db(request), caller.account_id)
        return caller

    return await anyio.to_thread.run_sync(check)


@router.get("/me")
async def me(request: Request) -> dict[str, str]:
    caller = await _caller(request)
    account = BY_ID[caller.account_id]
    return {"account": account.id, "name": account.name, "domain": account.domain}


@router.get("/{kind}")
async def listing(request: Request, kind: str) -> dict[str, Any]:
    caller = await _caller(request)
    if kind not in KINDS:
        raise Answer(404, "not_found", f"no such collection; one of: {', '.join(KINDS)}")
    require_scope(caller, KIND_SCOPES[kind])
    query = request.query_params
    limit = _limit(query.get("limit"))
    since = _since(query.get("updated_since"))
    cursor = query.get("cursor") or None
    if cursor is not None and len(cursor) > 500:
        raise bad_request("the cursor is not one this API handed out")
    try:
        page = await anyio.to_thread.run_sync(
            lambda: list_page(_db(request), caller.account_id, kind, limit=limit, cursor=cursor, updated_since=since)
        )
    except BadCursor as exc:
        raise bad_request(str(exc)) from None
    return {"data": page.data, "next_cursor": page.next_cursor}


@router.patch("/findings/{record_id}")
async def change_finding(request: Request, record_id: str) -> dict[str, Any]:
    """Open or resolve a finding: the API's one write, so that a write operation has a provider call to make."""
    caller = await _caller(request)
    require_scope(caller, WRITE_SCOPE)
    body = _body(FindingStatus, await _json(request))
    try:
        return await anyio.to_thread.run_sync(
            lambda: records.update(_db(request), caller.account_id, "findings", record_id, {"status": body.status})
        )
    except NotFoundError as exc:
        raise Answer(404, "not_found", str(exc)) from None
    except TetherError as exc:
        raise bad_request(str(exc)) from None


@router.post("/webhooks", status_code=201)
async def subscribe(request: Request) -> dict[str, str]:
    caller = await _caller(request)
    body = _webhook_body(await _json(request))
    runtime = request.app.state.runtime
    found = await anyio.to_thread.run_sync(
        lambda: subscriptions.subscribe(runtime, caller.account_id, body.url, body.secret)
    )
    return {"id": found}


@router.delete("/webhooks/{subscription_id}", status_code=204)
async def unsubscribe(request: Request, subscription_id: str) -> None:
    caller = await _caller(request)
    removed = await anyio.to_thread.run_sync(
        lambda: subscriptions.unsubscribe(_db(request), caller.account_id, subscription_id)
    )
    if not removed:
        raise Answer(404, "not_found", "no such webhook subscription of this account")


def _limit(text: str | None) -> int:
    if text is None or text == "":
        return DEFAULT_LIMIT
    value = ascii_int(text, 3)
    if value is None or not 1 <= value <= MAX_LIMIT:
        raise bad_request(f"limit must be a whole number from 1 to {MAX_LIMIT}")
    return value


def _since(text: str | None) -> datetime | None:
    if text is None or text == "":
        return None
    try:
        moment = datetime.fromisoformat(text) if len(text) <= 40 else None
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise bad_request("updated_since must be an RFC 3339 date-time with a time zone (2026-01-01T00:00:00Z)")
    return moment


async def _json(request: Request) -> Any:
    try:
        return json.loads(await request.body())
    except (ValueError, RecursionError):
        raise bad_request("the body is not valid JSON") from None


def _webhook_body(data: Any) -> WebhookBody:
    return _body(WebhookBody, data)


def _body(model: type[_B], data: Any) -> _B:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        if first.get("type") == "extra_forbidden":
            raise bad_request(f"unknown field: {where}") from None
        raise bad_request(f"invalid value at {where or 'body'}") from None
