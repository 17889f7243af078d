"""Resources of an MCP user: their integrations and their recent runs, as JSON (never a credential).

- ``tether://integrations``: every integration of the owner (the REST API's ``IntegrationView``);
- ``tether://integrations/{id}``: one of them;
- ``tether://runs``: the owner's most recent runs (newest first, at most ``RECENT``), every trigger;
- ``tether://runs/{id}``: one run (what a tool call that outlived its time limit points to).

A URI of another owner's integration or run reads as unknown, as over REST: existence does not leak.
"""

from __future__ import annotations

import json
from typing import Any

import mcp_types as types
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS
from sqlmodel import col, select

from engine.api.integrations import IntegrationView
from engine.mcp.auth import McpUser
from engine.mcp.tools import integrations
from engine.runs.execution import RunView
from engine.runtime import Runtime
from engine.store.tables import Integration, Run

SCHEME = "tether://"
INTEGRATIONS = f"{SCHEME}integrations"
RUNS = f"{SCHEME}runs"
RECENT = 50
JSON = "application/json"


def listed(runtime: Runtime, user: McpUser) -> list[types.Resource]:
    found = [
        types.Resource(uri=INTEGRATIONS, name="integrations", title="Your integrations", mime_type=JSON),
        types.Resource(uri=RUNS, name="runs", title=f"Your {RECENT} most recent runs", mime_type=JSON),
    ]
    for row in integrations(runtime, user):
        label = row.name or (row.account or {}).get("account_name") or row.definition_id
        found.append(
            types.Resource(
                uri=f"{INTEGRATIONS}/{row.id}",
                name=f"integration-{row.id}",
                title=f"{row.definition_id}: {label} ({row.status})",
                mime_type=JSON,
            )
        )
    return found


def templates() -> list[types.ResourceTemplate]:
    return [
        types.ResourceTemplate(uri_template=f"{INTEGRATIONS}/{{integration_id}}", name="integration", mime_type=JSON),
        types.ResourceTemplate(uri_template=f"{RUNS}/{{run_id}}", name="run", mime_type=JSON),
    ]


def read(runtime: Runtime, user: McpUser, uri: str) -> types.ReadResourceResult:
    return types.ReadResourceResult(
        contents=[types.TextResourceContents(uri=uri, mime_type=JSON, text=json.dumps(_value(runtime, user, uri)))]
    )


def _value(runtime: Runtime, user: McpUser, uri: str) -> Any:
    if uri == INTEGRATIONS:
        return [_dump(IntegrationView.of(row)) for row in integrations(runtime, user)]
    if uri == RUNS:
        return [_dump(RunView.of(run)) for run in _recent_runs(runtime, user)]
    kind, _, ident = uri.removeprefix(SCHEME).partition("/")
    if uri.startswith(SCHEME) and ident and "/" not in ident:
        with runtime.db.session() as session:
            if kind == "integrations":
                row = session.get(Integration, ident)
                if row is not None and _mine(row, user):
                    return _dump(IntegrationView.of(row))
            elif kind == "runs":
                run = session.get(Run, ident)
                owner = session.get(Integration, run.integration_id) if run is not None else None
                if run is not None and owner is not None and _mine(owner, user):
                    return _dump(RunView.of(run))
    raise MCPError(INVALID_PARAMS, f"no resource {uri[:200]}")


def _recent_runs(runtime: Runtime, user: McpUser) -> list[Run]:
    ids = [row.id for row in integrations(runtime, user)]
    if not ids:
        return []
    query = (
        select(Run)
        .where(col(Run.integration_id).in_(ids))
        .order_by(col(Run.queued_at).desc(), col(Run.id).desc())
        .limit(RECENT)
    )
    with runtime.db.session() as session:
        return list(session.exec(query).all())


def _mine(row: Integration, user: McpUser) -> bool:
    return row.tenant_id == user.tenant_id and row.owner_id == user.owner_id


def _dump(view: Any) -> Any:
    return view.model_dump(mode="json")
