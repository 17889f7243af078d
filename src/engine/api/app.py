"""The FastAPI application factory."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel
from starlette.types import Receive, Scope, Send

from engine import web
from engine.api import catalog, changes, events, integrations, oauth, records, runs, scim, webhooks
from engine.api.errors import ErrorEnvelope, install_error_handlers
from engine.api.limits import BodyLimit
from engine.custody import oidc
from engine.observability import metrics, tracing
from engine.observability.queue_depth import queue_collectors
from engine.runtime import Runtime
from engine.sandbox.routes import sandbox_router

log = logging.getLogger("tether.api")


class Health(BaseModel):
    status: str
    database: str
    definitions: int


class TetherApp(FastAPI):
    """FastAPI with one fast lane: deliveries (``POST /v1/webhooks/{token}``) go straight to
    ``engine.api.webhooks.serve_delivery``, past the middleware stack and the router.

    A provider can send thousands of deliveries a second to one server, and the stack (error and body-limit
    middleware, exception handling, route matching over every API route, response wrappers) cost about as much
    CPU as verifying and recording a delivery. The lane answers exactly as the FastAPI route of the same path,
    which stays for the OpenAPI document and for apps that include the router on their own.
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        token = webhooks.delivery_token(scope)
        if token is None:
            try:
                await super().__call__(scope, receive, send)
            except Exception as exc:
                if scope["type"] != "http":
                    raise
                # Starlette's ServerErrorMiddleware has answered 500 ``internal_error`` through our handler, which
                # logged the type (engine.api.errors); it re-raises so that the server logs it again, with the
                # traceback, whose text may hold SQL parameters or a provider's answer. Not this server's.
                log.debug("%s was answered 500 and logged by type", type(exc).__name__)
            return
        scope["app"] = self
        await webhooks.serve_delivery(self, token, scope, receive, send)


def create_app(runtime: Runtime) -> FastAPI:
    app = TetherApp(
        title="Tether",
        version="0.1.0",
        description="Integration engine: delegated access to external systems, landed in typed models.",
        responses={"4XX": {"model": ErrorEnvelope}, "5XX": {"model": ErrorEnvelope}},
    )
    app.state.runtime = runtime
    install_error_handlers(app)
    app.add_middleware(BodyLimit)
    app.include_router(catalog.router)
    app.include_router(catalog.schemas_router)
    app.include_router(integrations.router)
    app.include_router(oauth.router)
    app.include_router(webhooks.router)
    app.include_router(runs.router)
    app.include_router(records.router)
    app.include_router(changes.router)
    app.include_router(events.router)
    app.include_router(scim.router)
    app.include_router(scim.connections_router)
    app.include_router(web.router)
    app.include_router(oidc.router)
    if runtime.settings.sandbox_enabled():
        app.include_router(sandbox_router())
    app.mount("/static", StaticFiles(directory=web.STATIC_DIR), name="static")
    if runtime.settings.mcp:
        from engine.mcp.server import mount as mount_mcp  # in here: engine.mcp imports engine.api's principal

        mount_mcp(app, runtime)

    # The handlers made here read the runtime from the request's app, never from a closure: FastAPI keeps every
    # endpoint callable it has classified in process-wide caches (thousands of entries), so a closure over the
    # runtime would keep each app's runtime (its engine, registry and clients) alive long after the app is gone.
    @app.get("/healthz", response_model=Health, tags=["health"])
    def healthz(request: Request) -> Health:
        from sqlalchemy import text

        current: Runtime = request.app.state.runtime
        with current.db.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        return Health(status="ok", database=current.db.dialect, definitions=len(current.registry))

    if runtime.settings.metrics:
        # Unauthenticated like /healthz: counts by definition and outcome, no tenant or integration in any label.
        # An operator who must not publish them turns them off (TETHER_METRICS=false) or keeps the path internal.
        app.state.queue_collectors = queue_collectors(runtime.settings)

        @app.get("/metrics", tags=["health"], response_class=Response)
        def prometheus_metrics(request: Request) -> Response:
            exposition = metrics.exposition(request.app.state.queue_collectors)
            return Response(exposition, media_type=metrics.CONTENT_TYPE)

    tracing.instrument_app(app)  # request spans when this process traces (engine.observability.tracing)
    return app
