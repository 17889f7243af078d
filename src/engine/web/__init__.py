"""The integrations page: server-rendered templates, a little JavaScript, and ``/static/tether.js`` for host apps.

Mount it next to the JSON API (``create_app`` does not include it by itself)::

    app.include_router(web.router)
    app.mount("/static", StaticFiles(directory=web.STATIC_DIR), name="static")

Browser code only ever calls the JSON API (``/v1/…``) with the caller's principal; it never sees a provider token.
"""

from __future__ import annotations

from engine.web.routes import STATIC_DIR, TEMPLATES_DIR, router
from engine.web.session import CSRF_HEADER, SESSION_COOKIE, dev_login_enabled, session_key

__all__ = ["CSRF_HEADER", "SESSION_COOKIE", "STATIC_DIR", "TEMPLATES_DIR", "dev_login_enabled", "router", "session_key"]
