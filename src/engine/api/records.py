"""``/v1/records/{schema}``: the host app reads what ingest landed, a keyset page at a time.

Scoped like every route: the principal's tenant, and for a ``user`` principal only their own integrations' records;
a record outside the scope is ``not_found``, as is an unknown schema. The query itself is ``ingest.records``
(shared with ``tether records``).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request

from engine.api.principal import Principal, current_principal
from engine.errors import NotFoundError
from engine.kit.inputs import ascii_int
from engine.runtime import Runtime
from ingest.records import MAX_LIMIT, RecordFilters, RecordPage, Scope, get_record, list_records, parse_rfc3339
from ingest.records.query import DEFAULT_LIMIT, model_spec

router = APIRouter(prefix="/v1/records", tags=["records"])

#: Largest record id: a signed 64-bit integer (a longer path segment is simply not a record of ours).
_MAX_ID = 2**63 - 1


def scope_of(principal: Principal) -> Scope:
    return Scope(tenant_id=principal.tenant_id, owner_id=None if principal.is_server else principal.owner_id)


def _runtime(request: Request) -> Runtime:
    return request.app.state.runtime


@router.get("/{schema}", response_model=RecordPage)
def list_schema_records(
    schema: str,
    request: Request,
    principal: Principal = Depends(current_principal),
    integration_id: str | None = Query(None),
    owner_id: str | None = Query(None, description="Server principals: one owner's integrations only."),
    definition_id: str | None = Query(None),
    updated_since: str | None = Query(None, description="RFC 3339 with an offset: records updated at or after it."),
    cursor: str | None = Query(None, description="``next_cursor`` of the previous page"),
    limit: int = Query(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT),
) -> RecordPage:
    """A page of the schema's records (keyset pagination in id order: no duplicates, none missed, while ingest
    goes on)."""
    filters = RecordFilters(
        integration_id=integration_id,
        owner_id=owner_id,
        definition_id=definition_id,
        updated_since=parse_rfc3339(updated_since) if updated_since is not None else None,
    )
    return list_records(_runtime(request).db, scope_of(principal), schema, filters, cursor=cursor, limit=limit)


@router.get("/{schema}/{record_id}", response_model=dict[str, Any])
def get_schema_record(
    schema: str, record_id: str, request: Request, principal: Principal = Depends(current_principal)
) -> dict[str, Any]:
    """One record by its id."""
    number = ascii_int(record_id, 19)
    if number is None or number > _MAX_ID:
        model_spec(schema)  # an unknown schema is reported as such, whatever the id
        raise NotFoundError(f"no {schema} record {record_id[:40]!r}")
    return get_record(_runtime(request).db, scope_of(principal), schema, number)
