"""``/v1/definitions``: the catalog of definitions this server offers; ``/v1/schemas``: the format of the files that
declare one as data."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from engine.catalog.describe import DefinitionDetail, DefinitionSummary, detail, summarize
from engine.catalog.loading import definition_file_schema
from engine.errors import NotFoundError
from engine.runtime import Runtime

router = APIRouter(prefix="/v1/definitions", tags=["catalog"])
schemas_router = APIRouter(prefix="/v1/schemas", tags=["catalog"])


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


@schemas_router.get(
    "/definition.json",
    response_model=dict[str, Any],
    responses={200: {"content": {"application/schema+json": {}}}},
)
def definition_file_json_schema() -> JSONResponse:
    """The JSON Schema of a definition file (TOML or JSON): what an editor completes and checks a file with.

    Public like the catalog: it describes the format, not this deployment's definitions.
    """
    return JSONResponse(definition_file_schema(), media_type="application/schema+json")
