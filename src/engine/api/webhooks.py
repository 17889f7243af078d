"""Inbound webhooks over HTTP, and the delivery log of an integration.

``POST /v1/webhooks/{token}`` reads the raw body (at most 1 MB), verifies it before parsing anything, answers
provider handshakes, records the delivery (an outbox row, de-duplicated on the delivery ID) and acknowledges once it is
committed. Concurrent deliveries are recorded together (group commit, ``engine.deliveries.DeliveryRecorder``: one
multi-row INSERT and one commit per batch). Processing is handed off after the commit: with ``TETHER_BROKER_URL``
set, one Dramatiq message per committed batch carrying only row IDs, sent from a background thread so the
acknowledgement never waits on the broker (``engine.worker.DeliverySender``; ``tether worker`` processes them);
without a broker, an in-process background task per delivery. ``app.state.webhook_handoff`` overrides both (called
per delivery). A hand-off that fails never loses a delivery: it stays ``received``, and the sweep queues it again
(``engine.worker.sweep_deliveries`` in every worker's reaper; ``engine.deliveries.redeliver_pending`` in-process).

Static webhooks (one URL per app, such as a GitHub App's) post to ``/v1/webhooks/static/{definition_id}/{webhook}``
and are routed by the webhook's ``route()``.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import re
from collections.abc import Callable
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, Any

import anyio.to_thread
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from sqlalchemy import func
from sqlmodel import col, select
from starlette.requests import ClientDisconnect
from starlette.types import Receive, Scope, Send

from engine.api.limits import MAX_BODY_BYTES
from engine.api.principal import Principal, current_principal
from engine.deliveries import (
    DeliveryRecorder,
    NewDelivery,
    Target,
    cached_target,
    delivery_key,
    find_static_target,
    load_target,
    parse_body,
    process_delivery,
    remember_target,
    static_secrets,
    verify_delivery,
)
from engine.endpoints import webhook_class
from engine.errors import NotFoundError, TetherError
from engine.runtime import Runtime
from engine.tables import DeliveryStatus, Integration, WebhookDelivery
from engine.verification import lower_headers
from engine.webhooks import CelValue, JsonField, SlackSignature, Webhook

if TYPE_CHECKING:
    from engine.worker import DeliverySender

router = APIRouter(tags=["webhooks"])
log = logging.getLogger("tether.webhooks")

_TOKEN = re.compile(r"[A-Za-z0-9_-]{16,64}")
_NAME = re.compile(r"[A-Za-z0-9_.:-]{1,200}")
_background: set[asyncio.Task[Any]] = set()

HandOff = Callable[[Runtime, str], Any]


class BodyTooLarge(TetherError):
    code = "body_too_large"
    status = 413


class Acknowledgement(BaseModel):
    status: str
    delivery_id: str = ""


class DeliveryView(BaseModel):
    id: str
    delivery_id: str
    event_type: str
    status: DeliveryStatus
    error_code: str
    error_message: str
    attempts: int
    received_at: datetime
    processed_at: datetime | None


class DeliveryList(BaseModel):
    deliveries: list[DeliveryView]
    #: Every delivery of the integration by status (unrouted ones included: they are kept and counted).
    counts: dict[str, int]


def _runtime(request: Request) -> Runtime:
    return request.app.state.runtime


# -- hand-off ----------------------------------------------------------------------------------------------------


def background_tasks() -> list[asyncio.Task[Any]]:
    """In-process processing tasks still running (tests await them)."""
    return list(_background)


async def _process_in_background(runtime: Runtime, row_id: str) -> None:
    try:
        await process_delivery(runtime, row_id)
    except Exception as exc:  # the row stays ``received``: the sweep picks it up again
        log.warning("processing delivery %s raised %s; left for the sweep", row_id, type(exc).__name__)


def _in_background(runtime: Runtime, row_id: str) -> None:
    task = asyncio.get_running_loop().create_task(_process_in_background(runtime, row_id))
    _background.add(task)
    task.add_done_callback(_background.discard)


def default_hand_off(runtime: Runtime, row_id: str) -> None:
    """One delivery on its own: a queue message when ``TETHER_BROKER_URL`` is set, else an in-process task.

    The endpoint itself sends one message per committed batch instead (``_queue_batch``, ``DeliverySender``).
    """
    if runtime.settings.broker_url:
        from engine import worker

        worker.enqueue_deliveries([row_id], settings=runtime.settings)
    else:
        _in_background(runtime, row_id)


def _queue_batch(app: Any, sender: DeliverySender, row_ids: list[str]) -> None:
    """After a batch committed (in its worker thread): its row IDs go to the sender, one message per batch. Skipped
    when the app overrides the hand-off (``app.state.webhook_handoff``), which then gets each delivery on its own."""
    if getattr(app.state, "webhook_handoff", None) is None:
        sender.put(row_ids)


def _recorder(app: Any, runtime: Runtime) -> DeliveryRecorder:
    """The app's group-commit recorder (built on first use), handing each batch to the queue when there is one."""
    state = app.state
    recorder: DeliveryRecorder | None = getattr(state, "webhook_recorder", None)
    if recorder is None or recorder.db is not runtime.db:
        after = None
        if runtime.settings.broker_url:
            from engine.worker import DeliverySender

            state.webhook_sender = DeliverySender(runtime.settings)
            after = partial(_queue_batch, app, state.webhook_sender)
        recorder = state.webhook_recorder = DeliveryRecorder(runtime.db, after_commit=after)
    return recorder


async def hand_off(app: Any, runtime: Runtime, row_id: str) -> None:
    """Per-delivery hand-off after the commit: the app's override when set, else the in-process task without a
    broker (with a broker the batch was already queued by ``_queue_batch``)."""
    handler: HandOff | None = getattr(app.state, "webhook_handoff", None)
    if handler is not None:
        result = handler(runtime, row_id)
        if asyncio.iscoroutine(result):
            await result
    elif not runtime.settings.broker_url:
        _in_background(runtime, row_id)


# -- receiving ---------------------------------------------------------------------------------------------------


def _check_declared_length(headers: dict[str, str]) -> None:
    declared = headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise BodyTooLarge("request body over 1 MB")


async def _read_body(request: Request) -> bytes:
    _check_declared_length(request.headers)  # type: ignore[arg-type]
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise BodyTooLarge("request body over 1 MB")
        chunks.append(chunk)
    return b"".join(chunks)


async def _receive_body(receive: Receive) -> bytes:
    """The raw body straight from the ASGI channel (no ``Request``, no async generator per request)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunk = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                raise BodyTooLarge("request body over 1 MB")
            chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _scope_headers(scope: Scope) -> dict[str, str]:
    """Request headers decoded once, lower-case names, the first of a repeated header winning (``lower_headers``)."""
    out: dict[str, str] = {}
    for name, value in scope["headers"]:
        key = name.decode("latin-1").lower()
        if key not in out:
            out[key] = value.decode("latin-1")
    return out


async def _handshake(webhook: type[Webhook], payload: Any, headers: dict[str, str]) -> Any:
    """The definition's own handshake answer, else Slack's ``url_verification`` challenge; ``None``: not one."""
    answer = await webhook().handshake(payload, headers)
    if answer is not None:
        return answer.model_dump(mode="json") if isinstance(answer, BaseModel) else answer
    if (
        isinstance(webhook.verifier, SlackSignature)
        and isinstance(payload, dict)
        and payload.get("type") == "url_verification"
        and isinstance(payload.get("challenge"), str)
    ):
        return {"challenge": payload["challenge"]}
    return None


@functools.cache
def _reads_payload(webhook: type[Webhook]) -> bool:
    """Whether acknowledging this webhook's deliveries needs the parsed body: a handshake of its own or Slack's,
    or a delivery ID read from the JSON (else the body is parsed only when the delivery is processed)."""
    return (
        webhook.handshake is not Webhook.handshake
        or isinstance(webhook.verifier, SlackSignature)
        or isinstance(webhook.delivery_id, JsonField | CelValue)
    )


def _is_github_ping(webhook: type[Webhook], headers: dict[str, str]) -> bool:
    """A GitHub ping the webhook declares no event for: answered, not recorded."""
    return headers.get("x-github-event") == "ping" and not any(e.match == "ping" for e in webhook.events)


def _ack(status_code: int, status: str, delivery_id: str = "") -> Response:
    """An ``Acknowledgement`` written directly (no model validation or generic encoder on the hot path)."""
    content = b'{"status":"' + status.encode() + b'","delivery_id":' + json.dumps(delivery_id).encode() + b"}"
    return Response(content, status_code=status_code, media_type="application/json")


async def _accept(
    app: Any, runtime: Runtime, target: Target, body: bytes, payload: Any, headers: dict[str, str]
) -> Response:
    """Record (group commit: the answer comes only after the batch holding this delivery committed), then hand off."""
    key = delivery_key(runtime, target, payload, headers, body)
    recorded = await _recorder(app, runtime).record(NewDelivery.of(target, key, body, headers))
    if recorded.duplicate:
        return _ack(200, "duplicate", key)
    await hand_off(app, runtime, recorded.row_id)
    return _ack(202, "received", key)


async def _receive(app: Any, token: str, body: bytes, headers: dict[str, str]) -> Response:
    """Verify, answer a handshake or record: everything ``POST /v1/webhooks/{token}`` does after reading."""
    runtime: Runtime = app.state.runtime
    if not _TOKEN.fullmatch(token):
        raise NotFoundError("no webhook endpoint at this address")
    target = cached_target(runtime, token)
    if target is None:
        target = await anyio.to_thread.run_sync(load_target, runtime, token)
        remember_target(runtime, token, target)
    verify_delivery(target.webhook, body, headers, target.secrets)
    payload = None
    if _reads_payload(target.webhook):
        payload = parse_body(body, headers)
        answer = await _handshake(target.webhook, payload, headers)
        if answer is not None:
            return JSONResponse(answer, status_code=200)
    if _is_github_ping(target.webhook, headers):
        return JSONResponse({"status": "pong"}, status_code=200)
    return await _accept(app, runtime, target, body, payload, headers)


async def _receive_asgi(scope: Scope, receive: Receive, send: Send) -> None:
    """``POST /v1/webhooks/{token}`` as a plain ASGI endpoint: the hot path of a busy endpoint skips FastAPI's
    per-request dependency solving and parameter validation. Errors are raised as usual (the app's exception
    handlers answer them with the error envelope)."""
    headers = _scope_headers(scope)
    _check_declared_length(headers)
    body = await _receive_body(receive)
    response = await _receive(scope["app"], scope["path_params"]["token"], body, headers)
    await response(scope, receive, send)


class _AsgiEndpoint:
    """Wraps an ASGI callable so Starlette's ``Route`` uses it as is (a plain function would get ``Request``)."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Any]) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"model": Acknowledgement, "description": "a duplicate or a handshake"},
    202: {"model": Acknowledgement, "description": "recorded; processing is queued"},
}

# Matched first, so it serves every request; the FastAPI route below has the same behaviour and is what the OpenAPI
# document describes.
router.add_route("/v1/webhooks/{token}", _AsgiEndpoint(_receive_asgi), methods=["POST"], include_in_schema=False)


@router.post("/v1/webhooks/{token}", status_code=202, responses=_RESPONSES)
async def receive(token: str, request: Request) -> Response:
    """Receive a delivery: verified on the raw body, recorded (de-duplicated on its delivery ID), acknowledged
    once committed; processing is queued."""
    body = await _read_body(request)
    return await _receive(request.app, token, body, lower_headers(request.headers.items()))


@router.post("/v1/webhooks/static/{definition_id}/{webhook_name}", status_code=202, responses=_RESPONSES)
async def receive_static(definition_id: str, webhook_name: str, request: Request) -> Response:
    runtime = _runtime(request)
    body = await _read_body(request)
    webhook = webhook_class(runtime, definition_id, webhook_name) if _NAME.fullmatch(definition_id) else None
    if webhook is None or not webhook.static or not runtime.enabled(definition_id):
        raise NotFoundError("no webhook endpoint at this address")
    headers = lower_headers(request.headers.items())
    verify_delivery(webhook, body, headers, static_secrets(runtime, webhook))
    payload = parse_body(body, headers)
    answer = await _handshake(webhook, payload, headers)
    if answer is not None:
        return JSONResponse(answer, status_code=200)
    if headers.get("x-github-event") == "ping":
        return JSONResponse({"status": "pong"}, status_code=200)
    try:
        match = await webhook().route(payload, headers)
    except Exception as exc:  # a route() that cannot read this payload: nothing to route it to
        log.info("static webhook %s.%s route() raised %s", definition_id, webhook_name, type(exc).__name__)
        match = None
    target = (
        await anyio.to_thread.run_sync(find_static_target, runtime, definition_id, webhook, match) if match else None
    )
    if target is None:
        # Verified, but no integration of ours: acknowledge so the provider does not retry forever.
        return JSONResponse({"status": "unrouted"}, status_code=202)
    return await _accept(request.app, runtime, target, body, payload, headers)


# -- delivery log ------------------------------------------------------------------------------------------------


def _deliveries(
    runtime: Runtime, principal: Principal, integration_id: str, status: DeliveryStatus | None, limit: int
) -> DeliveryList:
    with runtime.db.session() as session:
        integration = session.get(Integration, integration_id)
        if integration is None or not principal.can_see(integration):
            raise NotFoundError(f"no integration {integration_id!r}")
        query = select(WebhookDelivery).where(WebhookDelivery.integration_id == integration_id)
        if status is not None:
            query = query.where(WebhookDelivery.status == status)
        rows = session.exec(query.order_by(col(WebhookDelivery.received_at).desc()).limit(limit)).all()
        counts = session.exec(
            select(WebhookDelivery.status, func.count())
            .where(WebhookDelivery.integration_id == integration_id)
            .group_by(WebhookDelivery.status)
        ).all()
    return DeliveryList(
        deliveries=[DeliveryView.model_validate(r, from_attributes=True) for r in rows],
        counts={str(DeliveryStatus(s).value): int(n) for s, n in counts},
    )


@router.get("/v1/integrations/{integration_id}/deliveries", response_model=DeliveryList, tags=["webhooks"])
async def list_deliveries(
    integration_id: str,
    request: Request,
    status: DeliveryStatus | None = None,
    limit: int = Query(50, ge=1, le=500),
    principal: Principal = Depends(current_principal),
) -> DeliveryList:
    runtime = _runtime(request)
    return await anyio.to_thread.run_sync(_deliveries, runtime, principal, integration_id, status, limit)
