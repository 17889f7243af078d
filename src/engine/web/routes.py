"""Page routes: ``/integrations``, its callback page, a development login, and one page-support JSON route.

The pages are shells: cards, runs and deliveries are loaded in the browser from the JSON API by ``tether.js``, so a
failed load shows an error with Retry and no template ever holds credential material.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel
from sqlmodel import select

from engine.api.fields import OWNER_ID_MAX, TENANT_ID_MAX
from engine.api.principal import Principal, Unauthenticated, current_principal, sign_principal
from engine.authoring.connections import OAuth2, granted_products
from engine.errors import TetherError, ValidationFailed
from engine.integrations.setup import Setup
from engine.kit.inputs import fits
from engine.store.tables import Credential
from engine.web.records import router as records_router
from engine.web.session import SESSION_COOKIE, SESSION_TTL_SECONDS, dev_login_enabled, session_key

HERE = Path(__file__).resolve().parent
TEMPLATES_DIR = HERE / "templates"
STATIC_DIR = HERE / "static"
templates = Jinja2Templates(directory=str(TEMPLATES_DIR))
router = APIRouter(tags=["web"], include_in_schema=False)
router.include_router(records_router)


class AccessView(BaseModel):
    """The access tier the stored grant covers: scope names only, never a token."""

    tier: str | None
    scopes: list[str]
    upgrade_available: bool
    #: For a connection with products (Google): whether the grant covers each (``{"calendar": true, ...}``).
    products: dict[str, bool] = {}


def _settings(request: Request) -> Any:
    return request.app.state.runtime.settings


def _principal_or_none(request: Request) -> Principal | None:
    try:
        return current_principal(request)
    except TetherError:
        return None


def _safe_next(value: str | None) -> str:
    """Only same-site paths (no ``//host`` or scheme): the login must not become an open redirect."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/integrations"
    return value


@router.get("/integrations", response_class=HTMLResponse)
def integrations_page(request: Request) -> Response:
    principal = _principal_or_none(request)
    dev_login = dev_login_enabled(_settings(request))
    if principal is None and dev_login:
        return RedirectResponse("/dev/login?next=/integrations", status_code=303)
    return templates.TemplateResponse(
        request,
        "integrations.html",
        {"principal": principal, "dev_login": dev_login, "public_url": _settings(request).public_url.rstrip("/")},
    )


@router.get("/integrations/{definition_id}/callback", response_class=HTMLResponse)
def callback_page(definition_id: str, request: Request) -> Response:
    """Where an auth flow sends the browser back (``tether_result``): connecting → connected | failed."""
    runtime = request.app.state.runtime
    name = runtime.registry.get(definition_id).name if definition_id in runtime.registry else definition_id
    return templates.TemplateResponse(
        request, "callback.html", {"definition_id": definition_id, "definition_name": name}
    )


@router.get("/web/integrations/{integration_id}/access", response_model=AccessView)
def access(integration_id: str, request: Request, principal: Principal = Depends(current_principal)) -> AccessView:
    """Which access tier the stored grant covers, from the granted scopes (the credential is not decrypted)."""
    runtime = request.app.state.runtime
    integration = Setup(runtime).get(principal, integration_id)
    definition = runtime.registry.get(integration.definition_id)
    connection = definition.connection((integration.provider_data or {}).get("connection", "") or "")
    if connection is None:
        return AccessView(tier=None, scopes=[], upgrade_available=False)
    with runtime.db.session() as session:
        scopes = session.exec(
            select(Credential.scopes).where(
                Credential.integration_id == integration.id, Credential.slot == connection.credential.slot_id()
            )
        ).first()
    granted = list(scopes or [])
    auth = connection.auth
    upgrade = list(auth.upgrade_scopes) if isinstance(auth, OAuth2) else []
    has_upgrade = bool(upgrade) and set(upgrade) - set(getattr(auth, "scopes", ()) or ()) != set()
    tier = "write" if has_upgrade and set(upgrade) <= set(granted) else "read"
    covered = set(granted_products(auth, granted))
    products = {p.id: p.id in covered for p in auth.products} if isinstance(auth, OAuth2) else {}
    return AccessView(tier=tier, scopes=granted, upgrade_available=has_upgrade and tier == "read", products=products)


# -- development login -------------------------------------------------------------------------------------------


def _require_dev_login(request: Request) -> None:
    if not dev_login_enabled(_settings(request)):
        raise Unauthenticated("the development login is off (TETHER_DEV_LOGIN, embedded SQLite default only)")


@router.get("/dev/login", response_class=HTMLResponse)
def dev_login_form(request: Request, next: str = "/integrations") -> Response:
    if not dev_login_enabled(_settings(request)):
        return templates.TemplateResponse(request, "login.html", {"enabled": False, "next": "/"}, status_code=404)
    return templates.TemplateResponse(request, "login.html", {"enabled": True, "next": _safe_next(next)})


@router.post("/dev/login")
async def dev_login(request: Request) -> Response:
    """Sign in as ``owner`` of ``tenant`` (form fields); sets the session cookie and goes to ``next``."""
    _require_dev_login(request)
    origin = request.headers.get("origin")
    own = f"{request.url.scheme}://{request.url.netloc}"
    if origin and origin != "null" and origin.lower() != own.lower():
        raise Unauthenticated("the development login only accepts forms from this server's own pages")
    form = {k: v[0] for k, v in parse_qs((await request.body()).decode("utf-8", "replace")).items()}
    tenant, owner = form.get("tenant", "").strip() or "dev", form.get("owner", "").strip() or "developer"
    if not (fits(tenant, TENANT_ID_MAX) and fits(owner, OWNER_ID_MAX)):  # else every request after is refused
        raise ValidationFailed(f"tenant and owner are at most {TENANT_ID_MAX} and {OWNER_ID_MAX} characters")
    value = sign_principal(
        session_key(request.app.state.runtime),
        tenant=tenant,
        role="user",
        owner=owner,
        session=secrets.token_urlsafe(16),
        ttl_seconds=SESSION_TTL_SECONDS,
    )
    response = RedirectResponse(_safe_next(form.get("next")), status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        value,
        max_age=SESSION_TTL_SECONDS,
        httponly=True,
        samesite="strict",
        path="/",
        secure=urlsplit(_settings(request).public_url).scheme == "https",
    )
    return response


@router.post("/dev/logout")
def dev_logout() -> Response:
    response = RedirectResponse("/dev/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response
