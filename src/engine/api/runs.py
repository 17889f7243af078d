"""Runs over HTTP: read them, start operations, cancel.

Every route is scoped by the caller's tenant and owner; a run or integration the principal may not see is reported
as ``not_found`` (404), never as forbidden, so existence does not leak.

Starting an operation takes ``{"config": {...}}`` (the operation's inputs, all under ``config``; the body may be
omitted for none). A ``user`` principal may start only operations whose policy allows it (``Policy.user_may_run``:
reads by default, writes not), else 403 ``operation_not_allowed`` before anything is recorded. The state and tier
checks (``integration_not_connected``, ``upgrade_required``) are the execution path's, so schedules, webhooks and
Python callers get them too.
"""

from __future__ import annotations

from typing import Any

import anyio
import anyio.to_thread
from fastapi import APIRouter, Body, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlmodel import col, select

from engine.api.bodies import RequestBody
from engine.api.cursors import decode_cursor, encode_cursor
from engine.api.principal import Principal, current_principal
from engine.authoring.operations import OperationNotAllowed
from engine.errors import NotFoundError
from engine.runs.execution import TERMINAL, RunView
from engine.runtime import Runtime
from engine.store.tables import Integration, Run, RunStatus

router = APIRouter(prefix="/v1", tags=["runs"])


class RunList(BaseModel):
    runs: list[RunView]
    #: Pass as ``cursor`` for the next (older) page; ``None`` on the last page.
    next_cursor: str | None = None






class RunRequest(RequestBody):
    """The body of ``POST .../operations/{operation}``: the operation's inputs go under ``config``."""

    config: dict[str, Any] | None = None


class InlineResponse(BaseModel):
    result: Any | None
    run: RunView


class QueuedResponse(BaseModel):
    run_id: str
    status: str


def _runtime(request: Request) -> Runtime:
    return request.app.state.runtime


def _integration(runtime: Runtime, principal: Principal, integration_id: str) -> Integration:
    with runtime.db.session() as session:
        integration = session.get(Integration, integration_id)
    if integration is None or not principal.can_see(integration):
        raise NotFoundError(f"no integration {integration_id}")
    return integration


def _run(runtime: Runtime, principal: Principal, run_id: str) -> Run:
    with runtime.db.session() as session:
        run = session.get(Run, run_id)
        integration = session.get(Integration, run.integration_id) if run is not None else None
    if run is None or integration is None or not principal.can_see(integration):
        raise NotFoundError(f"no run {run_id}")
    return run


#: How often a waiting ``GET /v1/runs/{id}?wait=`` looks at the run again.
_WAIT_POLL_SECONDS = 0.2


@router.get("/runs/{run_id}", response_model=RunView)
async def get_run(
    run_id: str,
    request: Request,
    principal: Principal = Depends(current_principal),
    wait: float = Query(
        0, ge=0, le=60, description="Seconds to wait for the run to finish before answering (long poll); 0: now"
    ),
) -> RunView:
    """The run; with ``wait``, answered as soon as it is finished (or still running when ``wait`` runs out).

    Why a long poll: a host app's script or a quickstart can start a queued operation and read its outcome in
    one more call, without a sleep loop of its own. A deferred (rate-limited) run is still ``queued``, not done.
    """
    runtime = _runtime(request)
    run = await anyio.to_thread.run_sync(_run, runtime, principal, run_id)
    with anyio.move_on_after(wait):
        while run.status not in TERMINAL:
            await anyio.sleep(_WAIT_POLL_SECONDS)
            run = await anyio.to_thread.run_sync(_run, runtime, principal, run_id)
    return RunView.of(run)


@router.get("/integrations/{integration_id}/runs", response_model=RunList)
def list_runs(
    integration_id: str,
    request: Request,
    principal: Principal = Depends(current_principal),
    limit: int = Query(50, ge=1, le=500),
    operation: str | None = Query(None),
    status: RunStatus | None = Query(None),
    cursor: str | None = Query(None, description="``next_cursor`` of the previous page"),
) -> RunList:
    """The integration's runs, newest first, a page at a time (keyset pagination: stable while runs are added)."""
    runtime = _runtime(request)
    _integration(runtime, principal, integration_id)
    query = select(Run).where(Run.integration_id == integration_id)
    if operation:
        query = query.where(Run.operation == operation)
    if status is not None:
        query = query.where(Run.status == status)
    if cursor:
        queued_at, run_id = decode_cursor(cursor)
        query = query.where(
            (col(Run.queued_at) < queued_at) | ((col(Run.queued_at) == queued_at) & (col(Run.id) < run_id))
        )
    with runtime.db.session() as session:
        runs = session.exec(query.order_by(col(Run.queued_at).desc(), col(Run.id).desc()).limit(limit + 1)).all()
    page, more = runs[:limit], len(runs) > limit
    next_cursor = encode_cursor(page[-1].queued_at, page[-1].id) if more else None
    return RunList(runs=[RunView.of(r) for r in page], next_cursor=next_cursor)


@router.post(
    "/integrations/{integration_id}/operations/{operation}",
    responses={200: {"model": InlineResponse}, 202: {"model": QueuedResponse}},
)
async def start_operation(
    integration_id: str,
    operation: str,
    request: Request,
    principal: Principal = Depends(current_principal),
    body: RunRequest | None = Body(None),
) -> JSONResponse:
    """Inline operations run now (200 with the result and the run); queued ones return 202 with the run ID."""
    runtime = _runtime(request)
    integration = _integration(runtime, principal, integration_id)
    definition = runtime.definition(integration.definition_id)
    op = definition.operation(operation)
    if op is None:
        raise NotFoundError(f"{definition.id} has no operation {operation}")
    if not principal.is_server and not op.policy.users_may_run:
        raise OperationNotAllowed(f"{operation} may only be started by the host app's server, not by a user")
    config = body.config if body is not None else None
    executor = runtime.executor
    if op.policy.mode == "inline":
        done = await executor.run_inline(integration_id, operation, trigger="api", config=config)
        body = InlineResponse(result=done.result, run=done.run).model_dump(mode="json")
        if done.run.status != "succeeded":
            error = {"code": done.run.error_code, "message": done.run.error_message}
            status = 429 if done.run.error_code == "rate_limited" else 502
            return JSONResponse({"error": error, "run": body["run"]}, status_code=status)
        return JSONResponse(body, status_code=200)
    run_id = await executor.dispatch(integration_id, operation, trigger="api", config=config)
    return JSONResponse(QueuedResponse(run_id=run_id, status="queued").model_dump(), status_code=202)


@router.post("/runs/{run_id}/cancel", response_model=RunView)
def cancel_run(run_id: str, request: Request, principal: Principal = Depends(current_principal)) -> RunView:
    runtime = _runtime(request)
    _run(runtime, principal, run_id)
    return runtime.executor.cancel(run_id)
