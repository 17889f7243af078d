"""The sandbox's router, mounted by the API app under ``/sandbox`` while the sandbox is on.

Left out of ``/openapi.json``: the sandbox plays a third-party provider whose API is not Tether's (its contract is
``docs/sandbox.md``), and it exists only where the sandbox is turned on.
"""

from __future__ import annotations

from fastapi import APIRouter

from engine.sandbox import api, controls, oauth, page

PREFIX = "/sandbox"


def sandbox_router() -> APIRouter:
    router = APIRouter(prefix=PREFIX, include_in_schema=False)
    router.include_router(page.router)
    router.include_router(oauth.router)
    router.include_router(api.router)
    router.include_router(controls.router)
    return router
