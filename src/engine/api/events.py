"""Outbound events over HTTP: the host app's event endpoints and the delivery log (``engine.events``).

Server principals only (``forbidden`` for a user principal), scoped by tenant; another tenant's endpoint or delivery
is ``not_found``. A secret is in the answer of the call that made it (create, ``rotate-secret``) and nowhere else.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, Field
from sqlmodel import col, select

from engine.api.bodies import RequestBody
from engine.api.cursors import decode_cursor, encode_cursor
from engine.api.principal import Principal, current_principal
from engine.errors import NotFoundError, TetherError
from engine.events import delivery, endpoints
from engine.events.endpoints import URL_MAX
from engine.kit.inputs import storable
from engine.runtime import Runtime
from engine.store.tables import EventDelivery, EventDeliveryStatus, EventEndpoint

router = APIRouter(prefix="/v1", tags=["events"])

EventType = Literal[
    "integration.connected",
    "integration.reconnect_required",
    "integration.disconnected",
    "run.failed",
    "run.succeeded",
    "run.stalled",
    "records.changed",
]
EventTypes = Annotated[list[EventType], Field(min_length=1, max_length=7)]
Url = Annotated[str, Field(min_length=1, max_length=URL_MAX)]
Description = Annotated[str, Field(max_length=500)]


class DeliveryInFlight(TetherError):
    code = "delivery_in_flight"
    status = 409


class CreateEndpoint(RequestBody):
    url: Url
    event_types: EventTypes
    description: Description = ""


class UpdateEndpoint(RequestBody):
    url: Url | None = None
    event_types: EventTypes | None = None
    description: Description | None = None
    enabled: bool | None = None


class EndpointView(BaseModel):
    id: str
    url: str
    event_types: list[str]
    description: str
    enabled: bool
    #: Until then the previous secret signs beside the current one (``null``: no rotation overlapping).
    previous_secret_expires_at: datetime | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: EventEndpoint) -> EndpointView:
        overlap = row.previous_expires_at if row.previous_secret_ciphertext else None
        return cls(
            id=row.id,
            url=row.url,
            event_types=list(row.event_types),
            description=row.description,
            enabled=row.enabled,
            previous_secret_expires_at=overlap,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )


class EndpointWithSecret(EndpointView):
    #: ``whsec_…``: shown this once; verify deliveries with it (any Standard Webhooks library).
    secret: str


class EndpointList(BaseModel):
    endpoints: list[EndpointView]


class DeliveryView(BaseModel):
    id: str
    #: The ``webhook-id`` of every attempt.
    event_id: str
    endpoint_id: str
    event_type: str
    status: EventDeliveryStatus
    attempts: int
    next_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str
    created_at: datetime
    delivered_at: datetime | None

    @classmethod
    def of(cls, row: EventDelivery) -> DeliveryView:
        waiting = row.status == EventDeliveryStatus.pending
        return cls(
            id=row.id,
            event_id=row.event_id,
            endpoint_id=row.endpoint_id,
            event_type=row.event_type,
            status=row.status,
            attempts=row.attempts,
            next_attempt_at=row.next_attempt_at if waiting else None,
            last_status_code=row.last_status_code,
            last_error=row.last_error,
            created_at=row.created_at,
            delivered_at=row.delivered_at,
        )


class DeliveryList(BaseModel):
    deliveries: list[DeliveryView]
    #: Pass as ``cursor`` for the next (older) page; ``None`` on the last page.
    next_cursor: str | None = None


def _runtime(request: Request) -> Runtime:
    return request.app.state.runtime


def _server(principal: Principal = Depends(current_principal)) -> Principal:
    principal.require_server()
    return principal


@router.post("/event-endpoints", response_model=EndpointWithSecret, status_code=201)
def create_endpoint(
    body: CreateEndpoint, request: Request, principal: Principal = Depends(_server)
) -> EndpointWithSecret:
    runtime = _runtime(request)
    row, secret = endpoints.create(
        runtime.db,
        runtime.keys.keyring,
        principal.tenant_id,
        url=body.url,
        event_types=body.event_types,
        description=body.description,
    )
    return EndpointWithSecret(**EndpointView.of(row).model_dump(), secret=secret)


@router.get("/event-endpoints", response_model=EndpointList)
def list_endpoints(request: Request, principal: Principal = Depends(_server)) -> EndpointList:
    rows = endpoints.list_endpoints(_runtime(request).db, principal.tenant_id)
    return EndpointList(endpoints=[EndpointView.of(row) for row in rows])


@router.get("/event-endpoints/{endpoint_id}", response_model=EndpointView)
def get_endpoint(endpoint_id: str, request: Request, principal: Principal = Depends(_server)) -> EndpointView:
    return EndpointView.of(endpoints.get(_runtime(request).db, principal.tenant_id, endpoint_id))


@router.patch("/event-endpoints/{endpoint_id}", response_model=EndpointView)
def update_endpoint(
    endpoint_id: str, body: UpdateEndpoint, request: Request, principal: Principal = Depends(_server)
) -> EndpointView:
    changes = {name: value for name, value in body.model_dump(exclude_unset=True).items() if value is not None}
    return EndpointView.of(endpoints.update(_runtime(request).db, principal.tenant_id, endpoint_id, changes))


@router.delete("/event-endpoints/{endpoint_id}", status_code=204)
def delete_endpoint(endpoint_id: str, request: Request, principal: Principal = Depends(_server)) -> Response:
    endpoints.delete(_runtime(request).db, principal.tenant_id, endpoint_id)
    return Response(status_code=204)


@router.post("/event-endpoints/{endpoint_id}/rotate-secret", response_model=EndpointWithSecret)
def rotate_secret(endpoint_id: str, request: Request, principal: Principal = Depends(_server)) -> EndpointWithSecret:
    """A new secret, shown once; the previous one signs beside it for ``TETHER_EVENT_SECRET_OVERLAP_SECONDS``."""
    runtime = _runtime(request)
    overlap = timedelta(seconds=runtime.settings.event_secret_overlap_seconds)
    row, secret = endpoints.rotate(runtime.db, runtime.keys.keyring, principal.tenant_id, endpoint_id, overlap=overlap)
    return EndpointWithSecret(**EndpointView.of(row).model_dump(), secret=secret)


@router.get("/event-deliveries", response_model=DeliveryList)
def list_deliveries(
    request: Request,
    principal: Principal = Depends(_server),
    endpoint_id: str | None = Query(None, max_length=32),
    status: EventDeliveryStatus | None = Query(None),
    event_type: EventType | None = Query(None),
    limit: int = Query(50, ge=1, le=500),
    cursor: str | None = Query(None, description="``next_cursor`` of the previous page"),
) -> DeliveryList:
    """The tenant's deliveries, newest first, a page at a time (keyset pagination: stable while events arrive)."""
    query = select(EventDelivery).where(EventDelivery.tenant_id == principal.tenant_id)
    if endpoint_id is not None:
        query = query.where(EventDelivery.endpoint_id == endpoint_id)
    if status is not None:
        query = query.where(EventDelivery.status == status)
    if event_type is not None:
        query = query.where(EventDelivery.event_type == event_type)
    if cursor:
        created_at, delivery_id = decode_cursor(cursor)
        query = query.where(
            (col(EventDelivery.created_at) < created_at)
            | ((col(EventDelivery.created_at) == created_at) & (col(EventDelivery.id) < delivery_id))
        )
    order = (col(EventDelivery.created_at).desc(), col(EventDelivery.id).desc())
    with _runtime(request).db.session() as session:
        rows = session.exec(query.order_by(*order).limit(limit + 1)).all()
    page, more = rows[:limit], len(rows) > limit
    return DeliveryList(
        deliveries=[DeliveryView.of(r) for r in page],
        next_cursor=encode_cursor(page[-1].created_at, page[-1].id) if more else None,
    )


@router.get("/event-deliveries/{delivery_id}", response_model=DeliveryView)
def get_delivery(delivery_id: str, request: Request, principal: Principal = Depends(_server)) -> DeliveryView:
    return DeliveryView.of(_delivery(_runtime(request), principal, delivery_id))


@router.post("/event-deliveries/{delivery_id}/redeliver", response_model=DeliveryView, status_code=202)
def redeliver(delivery_id: str, request: Request, principal: Principal = Depends(_server)) -> DeliveryView:
    """Send the delivery again (same ``webhook-id``, new signature), with a fresh retry window; the next event
    sweep queues it. ``delivery_in_flight`` (409) while a worker is sending it."""
    runtime = _runtime(request)
    _delivery(runtime, principal, delivery_id)
    if not delivery.redeliver(runtime.db, principal.tenant_id, delivery_id):
        raise DeliveryInFlight("a worker is sending this delivery right now; try again when it has finished")
    return DeliveryView.of(_delivery(runtime, principal, delivery_id))


def _delivery(runtime: Runtime, principal: Principal, delivery_id: str) -> EventDelivery:
    with runtime.db.session() as session:
        row = session.get(EventDelivery, delivery_id) if storable(delivery_id) else None
    if row is None or row.tenant_id != principal.tenant_id:
        raise NotFoundError(f"no event delivery {delivery_id}")
    return row
