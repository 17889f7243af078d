"""The FastAPI application factory."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel

from engine import oidc, web
from engine.api import catalog, integrations, oauth, runs, scim, webhooks
from engine.api.errors import ErrorEnvelope, install_error_handlers
from engine.api.limits import BodyLimit
from engine.runtime import Runtime


class Health(BaseModel):
    status: str
    database: str
    definitions: int


def create_app(runtime: Runtime) -> FastAPI:
    app = FastAPI(
        title="Tether",
        version="0.1.0",
        description="Integration engine: delegated access to external systems, landed in typed models.",
        responses={"4XX": {"model": ErrorEnvelope}, "5XX": {"model": ErrorEnvelope}},
    )
    app.state.runtime = runtime
    install_error_handlers(app)
    app.add_middleware(BodyLimit)
    app.include_router(catalog.router)
    app.include_router(integrations.router)
    app.include_router(oauth.router)
    app.include_router(webhooks.router)
    app.include_router(runs.router)
    app.include_router(scim.router)
    app.include_router(scim.connections_router)
    app.include_router(web.router)
    app.include_router(oidc.router)
    app.mount("/static", StaticFiles(directory=web.STATIC_DIR), name="static")

    @app.get("/healthz", response_model=Health, tags=["health"])
    def healthz() -> Health:
        from sqlalchemy import text

        with runtime.db.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        return Health(status="ok", database=runtime.db.dialect, definitions=len(runtime.registry))

    return app
