"""Scenario controls (``/sandbox/control/accounts/{account}/…``), for demos and for host apps' own CI.

Expire every access token, revoke every grant, arm the next N API calls to fail with 429 or 500, create, change or
delete records (each change is delivered to the account's webhook subscriptions, after its transaction commits,
before the control answers: a CI step that changes a record can expect the delivery to have been made), send the
last event again (``duplicate``: the same ``webhook-id``), and reset the account's records to the seed.

Unauthenticated on the embedded default (SQLite on loopback, like the development login); wherever else the
sandbox is on (``TETHER_SANDBOX=1``) a server principal is required (``Authorization: Bearer tk_…``). Bodies are
Tether's (unknown fields refused) and errors are Tether's envelope.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import anyio.to_thread
from fastapi import APIRouter, Body, Depends, Request
from pydantic import Field

from engine.api.bodies import RequestBody
from engine.api.principal import current_principal
from engine.errors import NotFoundError
from engine.runtime import Runtime
from engine.sandbox import grants, records, sender
from engine.sandbox.database import sandbox_db
from engine.sandbox.seed import BY_ID, KINDS
from engine.sandbox.store import reset_account
from engine.sandbox.tables import SandboxAccount


def require_controller(request: Request) -> None:
    """Open on the embedded default; otherwise the caller must be a server principal."""
    runtime: Runtime = request.app.state.runtime
    if not runtime.settings.embedded_default():
        current_principal(request).require_server()


router = APIRouter(
    prefix="/control/accounts/{account}", include_in_schema=False, dependencies=[Depends(require_controller)]
)


class FailBody(RequestBody):
    status: Literal[429, 500]
    count: Annotated[int, Field(ge=1, le=1000)] = 1
    retry_after: Annotated[int, Field(ge=0, le=3600)] = 1


def _runtime(request: Request) -> Runtime:
    return request.app.state.runtime


async def _account(request: Request, account: str) -> str:
    if account not in BY_ID:
        raise NotFoundError(f"no sandbox account {account!r}; one of: {', '.join(BY_ID)}")
    await anyio.to_thread.run_sync(sandbox_db, _runtime(request).db)  # first use: tables and seed, off the loop
    return account


def _kind(kind: str) -> str:
    if kind not in KINDS:
        raise NotFoundError(f"no record kind {kind!r}; one of: {', '.join(KINDS)}")
    return kind


@router.post("/expire-tokens")
async def expire_tokens(request: Request, account: str) -> dict[str, Any]:
    account = await _account(request, account)
    expired = await anyio.to_thread.run_sync(grants.expire_tokens, sandbox_db(_runtime(request).db), account)
    return {"account": account, "expired_tokens": expired}


@router.post("/revoke-grants")
async def revoke_grants(request: Request, account: str) -> dict[str, Any]:
    account = await _account(request, account)
    revoked = await anyio.to_thread.run_sync(grants.revoke_grants, sandbox_db(_runtime(request).db), account)
    return {"account": account, "revoked_grants": revoked}


@router.post("/fail")
async def fail(request: Request, account: str, body: FailBody) -> dict[str, Any]:
    account = await _account(request, account)
    await anyio.to_thread.run_sync(lambda: _arm(_runtime(request), account, body))
    return {"account": account, "status": body.status, "count": body.count, "retry_after": body.retry_after}


def _arm(runtime: Runtime, account: str, body: FailBody) -> None:
    with sandbox_db(runtime.db).session() as session:
        row = session.get_one(SandboxAccount, account)
        row.fail_status, row.fail_remaining, row.fail_retry_after = body.status, body.count, body.retry_after
        session.add(row)


@router.post("/reset")
async def reset(request: Request, account: str) -> dict[str, Any]:
    account = await _account(request, account)
    await anyio.to_thread.run_sync(reset_account, sandbox_db(_runtime(request).db), account)
    return {"account": account, "reset": True}


@router.post("/records/{kind}", status_code=201)
async def create_record(
    request: Request, account: str, kind: str, body: Annotated[dict[str, Any], Body()]
) -> dict[str, Any]:
    account, kind = await _account(request, account), _kind(kind)
    made = await anyio.to_thread.run_sync(records.create, sandbox_db(_runtime(request).db), account, kind, body)
    return await _changed(request, account, "record.created", kind, made)


@router.patch("/records/{kind}/{record_id}")
async def update_record(
    request: Request, account: str, kind: str, record_id: str, body: Annotated[dict[str, Any], Body()]
) -> dict[str, Any]:
    account, kind = await _account(request, account), _kind(kind)
    changed = await anyio.to_thread.run_sync(
        records.update, sandbox_db(_runtime(request).db), account, kind, record_id, body
    )
    return await _changed(request, account, "record.updated", kind, changed)


@router.delete("/records/{kind}/{record_id}")
async def delete_record(request: Request, account: str, kind: str, record_id: str) -> dict[str, Any]:
    account, kind = await _account(request, account), _kind(kind)
    removed = await anyio.to_thread.run_sync(records.remove, sandbox_db(_runtime(request).db), account, kind, record_id)
    return await _changed(request, account, "record.deleted", kind, removed)


@router.post("/duplicate")
async def duplicate(request: Request, account: str) -> dict[str, Any]:
    """Send the account's last event again, under the same ``webhook-id``."""
    account = await _account(request, account)
    runtime = _runtime(request)
    event = await anyio.to_thread.run_sync(sender.last_event, runtime, account)
    if event is None:
        raise NotFoundError("this account has no event to send again yet")
    sent = await sender.deliver(runtime, account, event.id)
    return {"account": account, "event_id": event.id, "deliveries": _deliveries(sent)}


async def _changed(
    request: Request, account: str, event_type: str, kind: str, record: dict[str, Any]
) -> dict[str, Any]:
    runtime = _runtime(request)
    event_id = await anyio.to_thread.run_sync(lambda: sender.record_event(runtime, account, event_type, kind, record))
    sent = await sender.deliver(runtime, account, event_id)
    return {"account": account, "record": record, "event_id": event_id, "deliveries": _deliveries(sent)}


def _deliveries(sent: list[sender.Sent]) -> list[dict[str, Any]]:
    return [{"subscription": s.subscription_id, "status": s.status, "error": s.error} for s in sent]
