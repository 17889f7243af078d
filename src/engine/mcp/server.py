"""The MCP server at ``/mcp``: the official SDK's low-level ``Server`` over its streamable HTTP transport.

Revision 2026-07-28 (the SDK's ``LATEST_MODERN_VERSION``): each POST is one self-contained JSON-RPC request with the
``MCP-Protocol-Version`` header, ``server/discover`` instead of ``initialize``, no ``Mcp-Session-Id``. Clients of
the handshake era (2025-11-25 and before) are served too, statelessly (the SDK's ``stateless`` mode: a fresh
transport per request, no session kept), so no MCP state lives in this process and any replica answers any request.

Every request is authenticated here, before the SDK sees it (``engine.mcp.auth``); the user rides the ASGI scope to
the handlers, which build each caller's tools and resources from the database on every request: a connection made
or lost is seen at the next ``tools/list``.

The SDK's session manager needs a running task group (its ``run()``); the engine's app is served with and without
an ASGI lifespan (tests run uvicorn with ``lifespan="off"``), so the manager is started on the first request, in a
task of the serving loop, and lives as long as that loop.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import anyio.to_thread
import mcp_types as types
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel import Server
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from starlette.requests import Request
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from engine.api.principal import Unauthenticated
from engine.mcp import calls, resources, tools
from engine.mcp.auth import MCP_PATH, METADATA_PATH, McpUser, authenticate, challenge, resource_metadata
from engine.observability import tracing
from engine.runtime import Runtime

log = logging.getLogger("tether.mcp")
#: Where the authenticated user rides the ASGI scope from ``McpEndpoint`` to the handlers.
USER_KEY = "tether.mcp.user"
INSTRUCTIONS = (
    "Tools run operations of the user's own integrations through Tether, which holds their credentials. A tool "
    "error with code reconnect_required, integration_not_connected or upgrade_required carries a url: send the "
    "user there, then call the tool again."
)


def build_server(runtime: Runtime) -> Server[Any]:
    async def list_tools(ctx: ServerRequestContext[Any], _params: types.PaginatedRequestParams | None) -> Any:
        user = _user(ctx)
        found = await anyio.to_thread.run_sync(tools.entries, runtime, user)
        return types.ListToolsResult(tools=[tools.describe(entry) for entry in found])

    async def call_tool(ctx: ServerRequestContext[Any], params: types.CallToolRequestParams) -> Any:
        user = _user(ctx)
        entry = await anyio.to_thread.run_sync(tools.find, runtime, user, params.name)
        if entry is None:
            raise MCPError(INVALID_PARAMS, f"unknown tool {params.name[:100]!r}; list the tools again")
        client = calls.Client(ctx.session.client_capabilities, ctx.protocol_version in MODERN_PROTOCOL_VERSIONS)
        arguments = dict(params.arguments or {})
        attributes = {
            "tether.integration.id": entry.integration.id,
            "tether.definition": entry.definition.id,
            "tether.operation": entry.operation.operation_id(),
        }
        # The run's own span (``tether.run.execute``) is a child of this one: one trace from the MCP request on.
        with tracing.span("tether.mcp.call_tool", attributes) as span:
            answered = await calls.call(runtime, user, entry, arguments, client, params.input_responses)
            if isinstance(answered, types.CallToolResult) and answered.is_error:
                tracing.fail(span, str(answered.structured_content["error"]["code"]))
            return answered

    async def list_resources(ctx: ServerRequestContext[Any], _params: types.PaginatedRequestParams | None) -> Any:
        found = await anyio.to_thread.run_sync(resources.listed, runtime, _user(ctx))
        return types.ListResourcesResult(resources=found)

    async def list_templates(ctx: ServerRequestContext[Any], _params: types.PaginatedRequestParams | None) -> Any:
        return types.ListResourceTemplatesResult(resource_templates=resources.templates())

    async def read_resource(ctx: ServerRequestContext[Any], params: types.ReadResourceRequestParams) -> Any:
        return await anyio.to_thread.run_sync(resources.read, runtime, _user(ctx), str(params.uri))

    return Server(
        "tether",
        version="0.1.0",
        title="Tether",
        instructions=INSTRUCTIONS,
        get_tool_input_schema=lambda name: tools.schema_by_name(runtime, name),
        on_list_tools=list_tools,
        on_call_tool=call_tool,
        on_list_resources=list_resources,
        on_list_resource_templates=list_templates,
        on_read_resource=read_resource,
    )


def _user(ctx: ServerRequestContext[Any]) -> McpUser:
    request = ctx.request
    user = request.scope.get(USER_KEY) if isinstance(request, Request) else None
    if not isinstance(user, McpUser):
        # Every request passed McpEndpoint's authentication; a handler without one is a wiring fault, not a caller's.
        raise MCPError(INVALID_PARAMS, "this request was not authenticated")
    return user


class McpEndpoint:
    """ASGI app of ``/mcp``: authenticate, then hand the request to the SDK's transport."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        # Bearer tokens, never cookies, authenticate here, so a DNS-rebinding page has nothing to ride on: the SDK's
        # Host/Origin allow-list (meant for unauthenticated local servers) would only refuse real deployments' hosts.
        self.manager = StreamableHTTPSessionManager(app=build_server(runtime), stateless=True, security_settings=None)
        self._started: asyncio.Event | None = None
        self._runner: asyncio.Task[None] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        if request.method != "POST":
            # Stateless: no GET stream to open and no session to DELETE (the spec's 405 for both); said in Tether's
            # envelope, as every route's 405 is.
            body = {"error": {"code": "method_not_allowed", "message": "the MCP endpoint takes POST only"}}
            await JSONResponse(body, status_code=405, headers={"Allow": "POST"})(scope, receive, send)
            return
        try:
            user = await anyio.to_thread.run_sync(authenticate, request, self.runtime)
        except Unauthenticated as exc:
            sent = request.headers.get("authorization", "")[7:].strip() != ""
            await challenge(self.runtime, exc, token_sent=sent)(scope, receive, send)
            return
        scope[USER_KEY] = user
        await self._ready()
        await self.manager.handle_request(scope, receive, send)

    async def _ready(self) -> None:
        if self._started is None:
            self._started = asyncio.Event()
            self._runner = asyncio.get_running_loop().create_task(self._run(self._started), name="mcp-manager")
        await self._started.wait()

    async def _run(self, started: asyncio.Event) -> None:
        async with self.manager.run():
            started.set()
            await asyncio.Event().wait()  # until the loop ends: the manager's task group serves every request


def mount(app: FastAPI, runtime: Runtime) -> None:
    """Serve ``/mcp`` and its protected resource metadata (at the RFC 9728 path and at the bare well-known path)."""
    app.router.routes.append(Route(MCP_PATH, endpoint=McpEndpoint(runtime), include_in_schema=False))

    # The runtime from the request's app, not a closure: FastAPI's process-wide caches of endpoint callables would
    # keep it alive after the app is gone (``engine.api.app``).
    def metadata(request: Request) -> JSONResponse:
        current: Runtime = request.app.state.runtime
        return JSONResponse(resource_metadata(current), headers={"Cache-Control": "public, max-age=3600"})

    for path in (METADATA_PATH + MCP_PATH, METADATA_PATH):
        app.add_api_route(path, metadata, methods=["GET"], tags=["mcp"], response_model=dict[str, Any])
