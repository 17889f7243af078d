"""``/v1/definitions``: the catalog of definitions this server offers."""

from __future__ import annotations

from fastapi import APIRouter, Request

from engine.catalog.describe import DefinitionDetail, DefinitionSummary, detail, summarize
from engine.errors import NotFoundError
from engine.runtime import Runtime

router = APIRouter(prefix="/v1/definitions", tags=["catalog"])


def _runtime(request: Request) -> Runtime:
    return request.app.state.runtime


@router.get("", response_model=list[DefinitionSummary])
def list_definitions(request: Request) -> list[DefinitionSummary]:
    runtime = _runtime(request)
    return [
        summarize(d, enabled=runtime.enabled(d.id), missing_config=runtime.disabled.get(d.id, []))
        for d in runtime.registry.definitions()
    ]


@router.get("/{definition_id}", response_model=DefinitionDetail)
def get_definition(definition_id: str, request: Request) -> DefinitionDetail:
    runtime = _runtime(request)
    if definition_id not in runtime.registry:
        raise NotFoundError(f"no definition {definition_id!r}")
    return detail(
        runtime.registry.get(definition_id),
        enabled=runtime.enabled(definition_id),
        missing_config=runtime.disabled.get(definition_id, []),
        unoffered=runtime.unoffered.get(definition_id, {}),
    )
