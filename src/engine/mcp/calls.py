"""A tool call is a run: the one execution path (``Executor.run_inline`` / ``dispatch``) with trigger ``mcp``, so it
has a run record, the governor's budget, traces, retries of queued runs and the operation's own time limit, and
the provider is called with the integration's credential inside Tether (the MCP client never sees a token).

Before the run, the integration's state: not connected, or needing reconnection, answers a tool error
(``isError`` with ``structuredContent.error``) carrying the URL that fixes it; a client that can open a URL for the
user (URL-mode elicitation, 2026-07-28's ``InputRequiredResult``) is asked to first, and the call goes on if the
integration is connected when it retries. A write asks the user to confirm where the client can show a form; a
write on a read-only grant is ``upgrade_required`` with the upgrade URL (the execution path's check).

The wait is bounded (``TETHER_MCP_TIME_LIMIT_SECONDS``): a queued run still going is answered with its ID (it keeps
running; ``tether://runs/{id}`` reads it later), an inline one is cancelled. The result is bounded too
(``TETHER_MCP_MAX_RESULT_BYTES``): past it, the answer carries the run's ID and a truncated text.
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import timedelta
from typing import Any

import anyio
import anyio.to_thread
import mcp_types as types
from sqlalchemy import desc
from sqlmodel import col, select

from engine.authoring.connections import missing_product_scopes, missing_write_scopes
from engine.authoring.operations import UpgradeRequired
from engine.errors import TetherError
from engine.mcp.auth import McpUser
from engine.mcp.tools import Entry
from engine.runs.execution import TERMINAL, RunView, granted_scopes
from engine.runtime import Runtime
from engine.store.tables import Integration, IntegrationStatus, Run, RunStatus, utcnow

TRIGGER = "mcp"
#: Keys of the input requests this server makes (echoed back by the client with its answers).
CONNECT_KEY = "tether_connect"
CONFIRM_KEY = "tether_confirm"
_POLL_SECONDS = 0.2
#: Looks for the run row of an inline call cut short (every _POLL_SECONDS), before giving up on cancelling it.
_FIND_TRIES = 25
#: Inline runs cut short by the time limit, kept referenced until their cancellation lands (asyncio keeps only weak
#: references to tasks).
_abandoned: set[asyncio.Task[Any]] = set()


class Client:
    """What the calling MCP client can do, from the request's envelope."""

    def __init__(self, capabilities: types.ClientCapabilities | None, modern: bool) -> None:
        elicitation = capabilities.elicitation if capabilities is not None else None
        # Input requests ride InputRequiredResult, which only the per-request era has; a handshake-era stateless
        # connection has no back channel for a server-to-client request.
        self.url_elicitation = modern and elicitation is not None and elicitation.url is not None
        self.form_elicitation = modern and elicitation is not None and elicitation.form is not None


async def call(
    runtime: Runtime,
    user: McpUser,
    entry: Entry,
    arguments: dict[str, Any],
    client: Client,
    responses: types.InputResponses | None,
) -> types.CallToolResult | types.InputRequiredResult:
    integration = await anyio.to_thread.run_sync(_fresh, runtime, entry.integration.id)
    if integration is None:
        return tool_error("not_found", "this integration no longer exists; list the tools again")
    if not user.principal.is_server and not entry.operation.policy.users_may_run:
        return tool_error("operation_not_allowed", f"{entry.operation.operation_id()} may not be started by a user")
    # The grant is checked before the user is asked to confirm a change, so nobody confirms one that cannot run.
    blocked = _blocked(runtime, integration) or await anyio.to_thread.run_sync(_upgrade, runtime, integration, entry)
    if blocked is not None:
        answered = (responses or {}).get(CONNECT_KEY)
        if client.url_elicitation and answered is None:
            return _ask_to_open(blocked)
        return tool_error(**blocked)
    if entry.operation.policy.access == "write" and client.form_elicitation:
        answer = (responses or {}).get(CONFIRM_KEY)
        if answer is None:
            return _ask_to_confirm(entry, arguments)
        if not _confirmed(answer):
            return tool_error(code="confirmation_declined", message="the user did not confirm this change; nothing ran")
    try:
        return await _run(runtime, entry, arguments)
    except TetherError as exc:
        return refused(runtime, integration, exc)


_NO_WRITE_TIER = "this operation changes provider data and the grant has read access only; upgrade the access first"


def _upgrade(runtime: Runtime, integration: Integration, entry: Entry) -> dict[str, Any] | None:
    """The tool error's fields when the stored grant lacks the write tier or the product the operation needs (the
    execution path checks the same again at dispatch), else ``None``."""
    policy = entry.operation.policy
    if policy.access != "write" and policy.product is None:
        return None
    found = granted_scopes(runtime.db, integration, entry.definition)
    if found is None:
        return None
    connection, granted = found
    if policy.access == "write" and (missing := missing_write_scopes(connection.auth, granted)):
        fields = _fix(runtime, integration, "upgrade_required", _NO_WRITE_TIER, "upgrade")
        return {**fields, "missing_scopes": list(missing)}
    if policy.product is not None and (missing := missing_product_scopes(connection.auth, policy.product, granted)):
        message = f"this operation needs the {policy.product} product and the grant does not cover it; upgrade first"
        fields = _fix(runtime, integration, "upgrade_required", message, "upgrade")
        return {**fields, "missing_scopes": list(missing), "product": policy.product}
    return None


def _fresh(runtime: Runtime, integration_id: str) -> Integration | None:
    with runtime.db.session() as session:
        return session.get(Integration, integration_id)


def _blocked(runtime: Runtime, integration: Integration) -> dict[str, Any] | None:
    """What stops a run of this integration, as the tool error's fields, or ``None`` when it is connected."""
    status = IntegrationStatus(integration.status)
    if status == IntegrationStatus.connected:
        return None
    if status == IntegrationStatus.reconnect_required:
        return _fix(runtime, integration, "reconnect_required", "this integration needs to be reconnected", "reconnect")
    message = f"this integration is {status}, not connected; connect it first"
    return _fix(runtime, integration, "integration_not_connected", message, "connect")


def _fix(runtime: Runtime, integration: Integration, code: str, message: str, action: str) -> dict[str, Any]:
    """A tool error's fields with where to fix it: the integrations page for the person (the seed's "link to
    /integrations"), and the API endpoint the host app POSTs to start the flow (answers the provider's URL)."""
    base = runtime.settings.public_url.rstrip("/")
    return {
        "code": code,
        "message": message,
        "integration_id": integration.id,
        "definition_id": integration.definition_id,
        "action": action,
        "url": f"{base}/integrations",
        "api_url": f"{base}/v1/integrations/{integration.id}/{action}",
    }


def refused(runtime: Runtime, integration: Integration, exc: TetherError) -> types.CallToolResult:
    """A refusal of the execution path (before any run) as a tool error."""
    if isinstance(exc, UpgradeRequired):
        fields = _fix(runtime, integration, exc.code, exc.message, "upgrade")
        fields["api_url"] = exc.upgrade_url
        return tool_error(**fields, missing_scopes=list(exc.missing_scopes), product=exc.product)
    if exc.code in ("reconnect_required", "integration_not_connected"):
        action = "reconnect" if exc.code == "reconnect_required" else "connect"
        return tool_error(**_fix(runtime, integration, exc.code, exc.message, action))
    return tool_error(exc.code, exc.message)


def _ask_to_open(blocked: dict[str, Any]) -> types.InputRequiredResult:
    verb = {"connect": "Connect", "reconnect": "Reconnect", "upgrade": "Upgrade"}[blocked["action"]]
    request = types.ElicitRequest(
        params=types.ElicitRequestURLParams(
            message=f"{verb} the integration to continue: {blocked['message']}.", url=blocked["url"]
        )
    )
    return types.InputRequiredResult(input_requests={CONNECT_KEY: request})


def _ask_to_confirm(entry: Entry, arguments: dict[str, Any]) -> types.InputRequiredResult:
    shown = json.dumps(arguments, sort_keys=True)[:500]
    request = types.ElicitRequest(
        params=types.ElicitRequestFormParams(
            message=f"{entry.definition.name}: run {entry.operation.operation_id()} with {shown}? It changes data "
            "at the provider.",
            requested_schema={
                "type": "object",
                "properties": {"confirm": {"type": "boolean", "title": "Run this change"}},
                "required": ["confirm"],
            },
        )
    )
    return types.InputRequiredResult(input_requests={CONFIRM_KEY: request})


def _confirmed(answer: Any) -> bool:
    return (
        isinstance(answer, types.ElicitResult)
        and answer.action == "accept"
        and (answer.content or {}).get("confirm") is True
    )


async def _run(runtime: Runtime, entry: Entry, arguments: dict[str, Any]) -> types.CallToolResult:
    executor, settings = runtime.executor, runtime.settings
    limit = settings.mcp_time_limit_seconds
    integration_id, operation_id = entry.integration.id, entry.operation.operation_id()
    if entry.operation.policy.mode == "inline":
        started = utcnow()
        task = asyncio.ensure_future(
            executor.run_inline(integration_id, operation_id, trigger=TRIGGER, config=arguments)
        )
        done, _ = await asyncio.wait({task}, timeout=limit)
        run_id = None
        for _ in range(_FIND_TRIES if not done else 0):
            # The run's row is written by a batched INSERT: a limit shorter than that has no row to cancel yet.
            run_id = await anyio.to_thread.run_sync(_running, runtime, integration_id, operation_id, started)
            if run_id is not None or task.done():
                break
            await anyio.sleep(_POLL_SECONDS)
        if task.done():
            done = {task}  # it finished while being looked for: its outcome is the answer
        if not done:
            if run_id is not None:
                view = await anyio.to_thread.run_sync(executor.cancel, run_id)
                if RunStatus(view.status) == RunStatus.succeeded:  # it finished just before the cancel: answer it
                    return await anyio.to_thread.run_sync(answer, runtime, view, view.result)
            _abandoned.add(task)
            task.add_done_callback(_forget)
            return tool_error(
                "time_limit_exceeded", f"the operation took longer than the tool time limit ({limit:g}s)", run_id=run_id
            )
        inline = task.result()
        return await anyio.to_thread.run_sync(answer, runtime, inline.run, inline.result)
    run_id = await executor.dispatch(integration_id, operation_id, trigger=TRIGGER, config=arguments)
    deadline = time.monotonic() + limit
    view = await anyio.to_thread.run_sync(executor.view, run_id)
    while RunStatus(view.status) not in TERMINAL and time.monotonic() < deadline:
        await anyio.sleep(_POLL_SECONDS)
        view = await anyio.to_thread.run_sync(executor.view, run_id)
    return await anyio.to_thread.run_sync(answer, runtime, view, view.result)


def _forget(task: asyncio.Task[Any]) -> None:
    _abandoned.discard(task)
    if not task.cancelled():
        task.exception()  # retrieved, so asyncio does not log it as never retrieved: the run row has the outcome


def _running(runtime: Runtime, integration_id: str, operation_id: str, since: Any) -> str | None:
    """The inline run this call started (the newest ``mcp`` run of the operation not finished since the call began)."""
    query = (
        select(Run)
        .where(
            Run.integration_id == integration_id,
            Run.operation == operation_id,
            Run.trigger == TRIGGER,
            col(Run.status).in_([RunStatus.queued, RunStatus.running]),
            col(Run.queued_at) >= since - timedelta(seconds=1),
        )
        .order_by(desc(col(Run.queued_at)))
    )
    with runtime.db.session() as session:
        run = session.exec(query).first()
    return run.id if run is not None else None


def answer(runtime: Runtime, view: RunView, result: Any) -> types.CallToolResult:
    """A finished (or still running) run as the tool's result, bounded in size."""
    status = RunStatus(view.status)
    if status == RunStatus.failed or status == RunStatus.cancelled:
        code = view.error_code or str(status)
        message = view.error_message or f"the run was {status}"
        if code in ("reconnect_required", "integration_not_connected"):
            integration = _fresh(runtime, view.integration_id)
            if integration is not None:
                action = "reconnect" if code == "reconnect_required" else "connect"
                return tool_error(**_fix(runtime, integration, code, message, action), run_id=view.id)
        return tool_error(code, message, run_id=view.id)
    if status not in TERMINAL:
        body: dict[str, Any] = {
            "run_id": view.id,
            "status": str(status),
            "note": "still running after the tool time limit; read tether://runs/{id} for its outcome".replace(
                "{id}", view.id
            ),
        }
        return types.CallToolResult(content=[_text(body)], structured_content=body)
    body = {"run_id": view.id, "status": str(status), "result": result}
    text = json.dumps(body, default=str, separators=(",", ":"))
    limit = runtime.settings.mcp_max_result_bytes
    if len(text.encode()) <= limit:
        return types.CallToolResult(content=[types.TextContent(text=text)], structured_content=json.loads(text))
    cut = text.encode()[: limit - 200].decode(errors="ignore")
    summary = {"run_id": view.id, "status": str(status), "truncated": True, "result_bytes": len(text.encode())}
    note = (
        f"{cut}\n… truncated: the result has {summary['result_bytes']} bytes, more than this server returns ({limit})"
    )
    return types.CallToolResult(content=[types.TextContent(text=note)], structured_content=summary)


def tool_error(code: str, message: str, **fields: Any) -> types.CallToolResult:
    """``isError`` with the error in ``structuredContent`` (and as text, for clients that show only text)."""
    body = {"error": {"code": code, "message": message, **{k: v for k, v in fields.items() if v is not None}}}
    return types.CallToolResult(content=[_text(body)], structured_content=body, is_error=True)


def _text(body: dict[str, Any]) -> types.TextContent:
    return types.TextContent(text=json.dumps(body, default=str, separators=(",", ":")))
