"""``/web/integrations/{id}/records``: how many rows of each schema the integration's definition emits are stored.

Runs keep totals only (``records_ingested`` / ``filtered`` / ``rejected``), no split per schema; what a card can
show per schema is what is stored now, counted in the ingest tables for this tenant and integration.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel
from sqlalchemy import func, select

from engine.api.principal import Principal, current_principal
from engine.authoring.definition import Definition
from engine.integrations.setup import Setup
from ingest.catalog import catalog

router = APIRouter(tags=["web"], include_in_schema=False)


class SchemaCount(BaseModel):
    schema_name: str
    count: int


class StoredRecords(BaseModel):
    counts: list[SchemaCount]


def emitted_schemas(definition: Definition) -> list[str]:
    """The schemas its operations and webhook events emit, in declaration order."""
    found: dict[str, None] = {}
    for op in definition.operations:
        found.update(dict.fromkeys(e.schema for e in op.emits))
    for webhook in definition.webhooks:
        for event in webhook.events:
            found.update(dict.fromkeys(e.schema for e in event.emits))
    return list(found)


@router.get("/web/integrations/{integration_id}/records", response_model=StoredRecords)
def stored_records(
    integration_id: str, request: Request, principal: Principal = Depends(current_principal)
) -> StoredRecords:
    runtime = request.app.state.runtime
    integration = Setup(runtime).get(principal, integration_id)  # not_found for another principal's
    models = catalog()
    counts = []
    with runtime.db.engine.connect() as connection:
        for schema in emitted_schemas(runtime.registry.get(integration.definition_id)):
            spec = models.get(schema)
            if spec is None:
                continue
            table = spec.model.__table__  # type: ignore[attr-defined]
            if "integration_id" not in table.c or "tenant_id" not in table.c:
                continue  # a model not kept per integration: nothing to count for a card
            query = select(func.count()).select_from(table).where(
                table.c.tenant_id == integration.tenant_id, table.c.integration_id == integration.id
            )
            counts.append(SchemaCount(schema_name=schema, count=int(connection.execute(query).scalar_one())))
    return StoredRecords(counts=counts)
