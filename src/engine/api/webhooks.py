"""Inbound webhooks over HTTP, and the delivery log of an integration.

``POST /v1/webhooks/{token}`` reads the raw body (at most 1 MB), verifies it before parsing anything, answers
provider handshakes, records the delivery (an outbox row, de-duplicated on the delivery ID) and acknowledges once it is
committed. ``TetherApp`` (``create_app``) serves it on a fast lane, ``serve_delivery``, past the framework; the FastAPI
route below answers alike and is what the OpenAPI document describes. Concurrent deliveries are recorded together
(group commit, ``engine.webhooks.deliveries.DeliveryRecorder``: one multi-row INSERT per batch, on PostgreSQL on the
event loop's own connection). Processing is handed off after the commit, one Dramatiq message per committed batch
carrying only row IDs, sent from a background thread so the acknowledgement never waits on the broker
(``engine.queue.worker.DeliverySender``). The delivery actor processes them as it processes queued runs: in
``tether worker`` with ``TETHER_BROKER_URL`` set, else in the embedded worker of ``tether serve`` (the in-memory
``StubBroker``, ``engine.processes.start_embedded``). A hand-off that fails never loses a delivery: it stays
``received``, and the sweep queues it again (``engine.processes.sweep_deliveries`` in every worker's reaper, the
embedded one's included).

Static webhooks (one URL per app, such as a GitHub App's) post to ``/v1/webhooks/static/{definition_id}/{webhook}``
and are routed by the webhook's ``route()``.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import anyio.to_thread
import re2
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from sqlalchemy import func
from sqlmodel import col, select
from starlette.requests import ClientDisconnect
from starlette.types import Receive, Scope, Send

from engine.api.limits import MAX_BODY_BYTES, declared_too_large
from engine.api.principal import Principal, current_principal
from engine.authoring.webhooks import CelValue, JsonField, Webhook
from engine.errors import NotFoundError, TetherError
from engine.observability import metrics, tracing
from engine.queue.worker import DeliverySender
from engine.runtime import Runtime
from engine.store.tables import DeliveryStatus, Integration, WebhookDelivery
from engine.webhooks.deliveries import DeliveryRecorder, NewDelivery, delivery_key, parse_body
from engine.webhooks.requests import Reply, WebhookRequest, parse_query, reply_of
from engine.webhooks.targets import (
    Target,
    find_static_targets,
    resolve_target,
    static_secrets,
    verify_delivery,
    webhook_class,
)
from engine.webhooks.unrouted import keep_unrouted, list_unrouted
from engine.webhooks.verification import lower_headers

router = APIRouter(tags=["webhooks"])
log = logging.getLogger("tether.webhooks")

# RE2: both match URL path segments anyone can send (ASCII-only patterns: callers check isascii() first, since
# RE2 raises on a str it cannot encode as UTF-8)
_TOKEN = re2.compile(r"[A-Za-z0-9_-]{16,64}")
_NAME = re2.compile(r"[A-Za-z0-9_.:-]{1,200}")


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


def _recorder(app: Any, runtime: Runtime) -> DeliveryRecorder:
    """The app's group-commit recorder (built on first use), handing each committed batch's row IDs to the app's
    sender: one message for the delivery actor per batch (or per few batches), with or without a broker."""
    state = app.state
    recorder: DeliveryRecorder | None = getattr(state, "webhook_recorder", None)
    if recorder is None or recorder.db is not runtime.db:
        state.webhook_sender = DeliverySender(runtime.settings)
        recorder = state.webhook_recorder = DeliveryRecorder(runtime.db, after_commit=state.webhook_sender.put)
    return recorder


# -- receiving ---------------------------------------------------------------------------------------------------


def _check_declared_length(headers: Mapping[str, str]) -> None:
    if declared_too_large(headers.get("content-length")):
        raise BodyTooLarge("request body over 1 MB")


async def _read_body(request: Request) -> bytes:
    _check_declared_length(request.headers)
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


class MethodNotAllowed(TetherError):
    code = "method_not_allowed"
    status = 405


_NOSNIFF = {"x-content-type-options": "nosniff"}


@dataclass(frozen=True, slots=True)
class _Answer:
    """What the endpoint answers: a status, a media type and bytes, written straight to ASGI by the fast lane
    (``serve_delivery``) or wrapped in a ``Response`` by the FastAPI routes."""

    status: int
    content: bytes
    media_type: str = "application/json"

    def response(self) -> Response:
        return Response(self.content, status_code=self.status, media_type=self.media_type, headers=_NOSNIFF)


def _answer(reply: Reply) -> _Answer:
    return _Answer(reply.status, reply.content, reply.media_type)


async def _handshake(webhook: type[Webhook], request: WebhookRequest) -> _Answer | None:
    """The definition's own handshake answer, else its verification scheme's (Slack's ``url_verification``
    challenge); ``None``: not one."""
    answer = reply_of(await webhook().handshake(request))
    if answer is None:
        answer = reply_of(webhook.verifier.handshake(request))
    return _answer(answer) if answer is not None else None


@functools.cache
def _reads_payload(webhook: type[Webhook]) -> bool:
    """Whether acknowledging this webhook's deliveries needs the parsed body: a handshake of its own or its
    scheme's, or a delivery ID read from the JSON (else the body is parsed only when the delivery is processed)."""
    return (
        webhook.handshake is not Webhook.handshake
        or webhook.verifier.reads_payload
        or isinstance(webhook.delivery_id, JsonField | CelValue)
    )


def _is_github_ping(webhook: type[Webhook], headers: Mapping[str, str]) -> bool:
    """A GitHub ping the webhook declares no event for: answered, not recorded."""
    return headers.get("x-github-event") == "ping" and not any(e.match == "ping" for e in webhook.events)


async def _before_recording(
    definition_id: str, webhook: type[Webhook], request: WebhookRequest, secrets: tuple[str, ...]
) -> tuple[_Answer | None, WebhookRequest]:
    """Everything before a delivery is recorded: the method, the scheme's unauthenticated challenge, verification on
    the raw body, handshakes. An answer means the request is answered without being recorded."""
    method = request.method
    if method not in webhook.methods:
        raise MethodNotAllowed(f"this webhook does not take {method} requests")
    if method == "HEAD":
        return _Answer(200, b""), request  # a reachability probe: nothing to verify, nothing recorded
    challenge = webhook.verifier.challenge(request)
    if challenge is not None:
        return _answer(challenge), request
    _verify(definition_id, webhook, request.body, request.headers, secrets)
    if method == "POST" and (webhook.static or _reads_payload(webhook)):
        request = replace(request, payload=parse_body(request.body, request.headers))
    if method != "POST" or _reads_payload(webhook):
        answer = await _handshake(webhook, request)
        if answer is not None:
            return answer, request
    if method != "POST":
        raise MethodNotAllowed(f"a {method} request is answered only as the provider's handshake")
    # A static (app-wide) webhook's ping names no installation, so it is answered whatever events the webhook has.
    headers = request.headers
    ping = headers.get("x-github-event") == "ping" if webhook.static else _is_github_ping(webhook, headers)
    if ping:
        return _Answer(200, b'{"status":"pong"}'), request
    return None, request


def _json(value: Any) -> bytes:
    """JSON as Starlette's ``JSONResponse`` renders it (compact, UTF-8)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def _ack(status_code: int, status: str, delivery_id: str = "") -> _Answer:
    """An ``Acknowledgement`` written directly (no model validation or generic encoder on the hot path)."""
    content = b'{"status":"' + status.encode() + b'","delivery_id":' + json.dumps(delivery_id).encode() + b"}"
    return _Answer(status_code, content)


async def _accept(
    app: Any, runtime: Runtime, target: Target, body: bytes, payload: Any, headers: Mapping[str, str]
) -> _Answer:
    """Record (group commit: the answer comes only after the batch holding this delivery committed and was handed to
    the sender)."""
    key = delivery_key(runtime, target, payload, headers, body)
    recorded = await _recorder(app, runtime).record(NewDelivery.of(target, key, body, headers))
    # The record step is an event of the request span, not a span (issue 23's overhead target, docs/decisions.md);
    # the delivery's row ID is also an attribute of the request span, to find its trace by.
    tracing.annotate(tether__delivery__id=recorded.row_id, tether__webhook__duplicate=recorded.duplicate)
    tracing.event("tether.webhook.record")
    metrics.webhook_delivery(target.definition_id, "duplicate" if recorded.duplicate else "accepted")
    if recorded.duplicate:
        return _ack(200, "duplicate", key)
    return _ack(202, "received", key)


def _verify(definition_id: str, webhook: type[Webhook], body: bytes, headers: Any, secrets: tuple[str, ...]) -> None:
    """``verify_delivery``, counting a refused delivery (the metric's ``refused``) before the refusal is answered."""
    try:
        verify_delivery(webhook, body, headers, secrets)
    except TetherError as exc:
        metrics.webhook_delivery(definition_id, "refused")
        tracing.event("tether.webhook.verify", tether__error__code=exc.code)
        raise
    # An event of the request span, as the record step is (its time is when the signature was found good).
    tracing.event("tether.webhook.verify")


async def _receive(app: Any, token: str, request: WebhookRequest) -> _Answer:
    """Everything ``/v1/webhooks/{token}`` does after reading: the method, challenge, verification, handshakes,
    recording."""
    runtime: Runtime = app.state.runtime
    if not (token.isascii() and _TOKEN.fullmatch(token)):
        raise NotFoundError("no webhook endpoint at this address")
    target = await resolve_target(runtime, token)
    tracing.annotate(
        tether__integration__id=target.integration_id,
        tether__definition=target.definition_id,
        tether__webhook=target.webhook.__name__,
    )
    answer, request = await _before_recording(target.definition_id, target.webhook, request, target.secrets)
    if answer is not None:
        return answer
    return await _accept(app, runtime, target, request.body, request.payload, request.headers)


# -- the fast lane -------------------------------------------------------------------------------------------------

_PREFIX = "/v1/webhooks/"


#: The methods the fast lane serves (each webhook says which of them it takes).
_LANE_METHODS = frozenset({"POST", "GET", "HEAD"})
#: Its request span's name by method (the route template: the token stays out of the trace).
_LANE_SPAN_NAMES = {method: f"{method} /v1/webhooks/{{token}}" for method in _LANE_METHODS}


def delivery_token(scope: Scope) -> str | None:
    """The token of a request to a delivery URL (``/v1/webhooks/{token}``, one path segment), else ``None``."""
    if scope["type"] != "http" or scope["method"] not in _LANE_METHODS:
        return None
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :]
    if not path.startswith(_PREFIX):
        return None
    token = path[len(_PREFIX) :]
    return token if token and "/" not in token else None


async def serve_delivery(app: Any, token: str, scope: Scope, receive: Receive, send: Send) -> None:
    """``POST /v1/webhooks/{token}`` straight on ASGI: what ``engine.api.app.TetherApp`` serves deliveries with.

    The busiest route of a server skips the framework's middleware stack, routing, dependency solving and response
    wrappers; it answers exactly as the FastAPI route does (which the OpenAPI document describes), errors included
    (the envelope of ``engine.api.errors``; anything unexpected is ``internal_error``, logged by type only).
    """
    headers = _scope_headers(scope)  # once: the span's parent and the delivery read the same dict
    if tracing.enabled():
        # This lane skips the middleware stack, the request instrumentation with it: its own server span, named by
        # the route (the token in the path is a credential of sorts and stays out of the trace).
        with tracing.server_span(_LANE_SPAN_NAMES.get(scope["method"], "POST /v1/webhooks/{token}"), headers) as span:
            answer = await _lane_answer(app, token, scope, receive, headers)
            if answer is None:
                return
            span.set_attribute("http.response.status_code", answer.status)
            if answer.status >= 500:
                tracing.fail(span, str(answer.status))
    else:
        answer = await _lane_answer(app, token, scope, receive, headers)
        if answer is None:
            return
    content = b"" if scope["method"] == "HEAD" else answer.content
    await send(
        {
            "type": "http.response.start",
            "status": answer.status,
            "headers": [
                (b"content-type", answer.media_type.encode("latin-1")),
                (b"content-length", b"%d" % len(content)),
                (b"x-content-type-options", b"nosniff"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": content})


async def _lane_answer(app: Any, token: str, scope: Scope, receive: Receive, headers: dict[str, str]) -> _Answer | None:
    """The fast lane's answer to one delivery (``None``: the client went away); ``headers``: ``_scope_headers``."""
    try:
        _check_declared_length(headers)
        body = await _receive_body(receive)
        request = WebhookRequest(scope["method"], headers, parse_query(scope.get("query_string", b"")), body)
        return await _receive(app, token, request)
    except ClientDisconnect:
        return None
    except TetherError as exc:
        return _Answer(exc.status, _json(exc.to_dict()))
    except Exception as exc:
        log.error("unhandled %s", type(exc).__name__)
        return _Answer(500, b'{"error":{"code":"internal_error","message":"internal error"}}')


_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"model": Acknowledgement, "description": "a duplicate or a handshake"},
    202: {"model": Acknowledgement, "description": "recorded; processing is queued"},
}


def _request(request: Request, body: bytes) -> WebhookRequest:
    return WebhookRequest(
        request.method,
        lower_headers(request.headers.items()),
        parse_query(request.scope.get("query_string", b"")),
        body,
    )


# Providers' GET handshakes and HEAD probes: served alike, but not part of the API the host app's client is built
# from (``include_in_schema=False``): no host app sends them.
@router.api_route("/v1/webhooks/{token}", methods=["GET", "HEAD"], include_in_schema=False)
@router.post("/v1/webhooks/{token}", status_code=202, responses=_RESPONSES)
async def receive(token: str, request: Request) -> Response:
    """Receive a delivery (``POST``: verified on the raw body, recorded, de-duplicated on its delivery ID,
    acknowledged once committed; processing is queued), or answer a provider's handshake (``GET``, a ``POST``
    with a challenge) or probe (``HEAD``), as far as the webhook takes that method."""
    body = await _read_body(request)
    return (await _receive(request.app, token, _request(request, body))).response()


_STATIC = "/v1/webhooks/static/{definition_id}/{webhook_name}"


@router.api_route(_STATIC, methods=["GET", "HEAD"], include_in_schema=False)
@router.post(_STATIC, status_code=202, responses=_RESPONSES)
async def receive_static(definition_id: str, webhook_name: str, request: Request) -> Response:
    """An app-wide webhook: verified with the app's secret, then recorded for every integration its ``route()``
    matches (fan-out), or kept as unrouted when it matches none."""
    runtime = _runtime(request)
    body = await _read_body(request)
    webhook = (
        webhook_class(runtime, definition_id, webhook_name)
        if definition_id.isascii() and _NAME.fullmatch(definition_id)
        else None
    )
    if webhook is None or not webhook.static or not runtime.enabled(definition_id):
        raise NotFoundError("no webhook endpoint at this address")
    answer, hook_request = await _before_recording(
        definition_id, webhook, _request(request, body), static_secrets(runtime, webhook)
    )
    if answer is not None:
        return answer.response()
    headers = hook_request.headers
    try:
        match = await webhook().route(hook_request.payload, dict(headers))
    except Exception as exc:  # a route() that cannot read this payload: nothing to route it to
        log.info("static webhook %s.%s route() raised %s", definition_id, webhook_name, type(exc).__name__)
        match = None
    targets = (
        await anyio.to_thread.run_sync(find_static_targets, runtime, definition_id, webhook, match) if match else []
    )
    if not targets:
        # Verified, but no integration of ours: kept and counted, and acknowledged so the provider does not retry.
        await anyio.to_thread.run_sync(
            keep_unrouted,
            runtime.db,
            definition_id,
            webhook.name,
            body,
            headers,
            "no_route" if not match else "no_integration",
        )
        return JSONResponse({"status": "unrouted", "delivery_id": ""}, status_code=202)
    answers = [await _accept(request.app, runtime, target, body, hook_request.payload, headers) for target in targets]
    # One acknowledgement for the provider: received when any integration's copy is new, else a duplicate.
    fresh = next((a for a in answers if a.status == 202), answers[0])
    return fresh.response()


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


class UnroutedView(BaseModel):
    id: str
    definition_id: str
    webhook: str
    reason: str
    received_at: datetime


class UnroutedList(BaseModel):
    deliveries: list[UnroutedView]
    #: Every unrouted delivery kept, by definition, and in all.
    counts: dict[str, int]
    total: int


@router.get("/v1/unrouted-deliveries", response_model=UnroutedList, tags=["webhooks"])
async def list_unrouted_deliveries(
    request: Request,
    definition_id: str | None = Query(None, max_length=200),
    limit: int = Query(50, ge=1, le=500),
    principal: Principal = Depends(current_principal),
) -> UnroutedList:
    """Verified deliveries to app-wide webhooks that matched no integration (newest first), with their count.
    They belong to no tenant, so only a server principal sees them."""
    principal.require_server()
    runtime = _runtime(request)
    page = await anyio.to_thread.run_sync(lambda: list_unrouted(runtime.db, definition_id=definition_id, limit=limit))
    return UnroutedList(
        deliveries=[UnroutedView.model_validate(r, from_attributes=True) for r in page.rows],
        counts=page.counts,
        total=page.total,
    )
