"""The change feed over HTTP: ``GET /v1/changes?after=SEQ``.

Every upsert that changed a record and every removal is a change with the tenant's next sequence
(``ingest.changes``), committed in sequence order, so a host that applies the changes after ``SEQ`` in order and
keeps ``next_after`` mirrors the records exactly and resumes after a crash where it stopped. Scoped to the
principal's tenant, and for ``user`` principals to their own integrations; ``after`` and ``limit`` are ASCII digits
(422 ``invalid_after`` / ``invalid_limit``), an unknown ``schema`` or an integration the principal may not see is
``not_found``. Changes past ``TETHER_CHANGES_RETENTION_DAYS`` are pruned; a reader whose ``after`` lies before the
retained window gets ``changes_cursor_expired`` (410), whose message names the ``after`` to follow once it has
re-read ``/v1/records`` (the tenant's last sequence when refused, so nothing between is lost).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from engine.api.principal import Principal, current_principal
from engine.errors import NotFoundError, TetherError
from engine.kit.inputs import ascii_int
from engine.runtime import Runtime
from engine.store.database import Database
from engine.store.retention import horizon
from engine.store.tables import Integration, RecordChange

router = APIRouter(prefix="/v1", tags=["changes"])

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


class InvalidAfter(TetherError):
    code = "invalid_after"
    status = 422


class InvalidLimit(TetherError):
    code = "invalid_limit"
    status = 422


class ChangesCursorExpired(TetherError):
    """``after`` is older than the retained feed: the changes after it were pruned (``engine.store.retention``)."""

    code = "changes_cursor_expired"
    status = 410


class ChangeView(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    seq: int
    schema_name: str = Field(serialization_alias="schema")
    record_id: int
    integration_id: str
    op: Literal["upsert", "remove"]
    #: The record's state after the change; ``null`` for a removal (a tombstone).
    record: dict[str, Any] | None
    changed_at: datetime


class ChangePage(BaseModel):
    changes: list[ChangeView]
    #: Pass as ``after`` for the next page: the last ``seq`` returned (``after`` itself when nothing was).
    next_after: int


@router.get("/changes", response_model=ChangePage, response_model_by_alias=True)
def list_changes(
    request: Request,
    principal: Principal = Depends(current_principal),
    after: str = Query("0", description="return changes with a sequence above this one (ASCII digits)"),
    limit: str = Query(str(DEFAULT_LIMIT), description=f"at most this many changes, 1 to {MAX_LIMIT}"),
    schema: str | None = Query(None, description="only changes of this ingest model"),
    integration_id: str | None = Query(None, description="only changes of this integration"),
) -> ChangePage:
    """The tenant's changes after ``after``, in sequence order."""
    runtime: Runtime = request.app.state.runtime
    start = ascii_int(after)
    if start is None:
        raise InvalidAfter("after must be a sequence number (ASCII digits)")
    count = ascii_int(limit)
    if count is None or not 1 <= count <= MAX_LIMIT:
        raise InvalidLimit(f"limit must be a number from 1 to {MAX_LIMIT} (ASCII digits)")
    if schema is not None and schema not in runtime.registry.models:
        raise NotFoundError(f"no ingest model {schema}")
    owned = None
    if integration_id is not None:
        _visible(runtime, principal, integration_id)
    elif not principal.is_server:
        owned = select(Integration.id).where(  # type: ignore[call-overload]
            Integration.tenant_id == principal.tenant_id, Integration.owner_id == principal.owner_id
        )
    return read_changes(
        runtime.db, principal.tenant_id, start, count, schema=schema, integration_id=integration_id, owned=owned
    )


def read_changes(
    db: Database,
    tenant_id: str,
    after: int,
    limit: int,
    *,
    schema: str | None = None,
    integration_id: str | None = None,
    owned: Any = None,
) -> ChangePage:
    """The feed reader: up to ``limit`` of the tenant's changes after ``after``, in order (``owned``: a subquery of
    the integration IDs a ``user`` principal may see). ``ChangesCursorExpired`` when ``after`` lies before the
    retained window."""
    table = RecordChange.__table__  # type: ignore[attr-defined]
    query = select(table).where(table.c.tenant_id == tenant_id, table.c.seq > after)
    if schema is not None:
        query = query.where(table.c.schema_name == schema)
    if integration_id is not None:
        query = query.where(table.c.integration_id == integration_id)
    elif owned is not None:
        query = query.where(table.c.integration_id.in_(owned))
    with db.engine.connect() as connection:
        rows = connection.execute(query.order_by(table.c.seq).limit(limit)).mappings().all()
        # After the rows, never before: a prune committed between the two reads is seen here, so a page missing
        # pruned changes is never returned (a prune just after the rows makes this refuse a complete page, which
        # only costs the host a resync).
        pruned_through, head = horizon(connection, tenant_id)
    if after < pruned_through:
        raise ChangesCursorExpired(
            f"changes after {after} are past the feed's retention (it keeps changes after {pruned_through}): "
            f"resync from /v1/records, then follow the feed with after={head}"
        )
    changes = [ChangeView.model_validate({**row, "changed_at": _aware(row["changed_at"])}) for row in rows]
    return ChangePage(changes=changes, next_after=changes[-1].seq if changes else after)


def _visible(runtime: Runtime, principal: Principal, integration_id: str) -> None:
    with runtime.db.session() as session:
        integration = session.get(Integration, integration_id)
    if integration is None or not principal.can_see(integration):
        raise NotFoundError(f"no integration {integration_id}")


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
