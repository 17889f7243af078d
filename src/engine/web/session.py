"""The development login of the embedded default: a signed, HttpOnly, SameSite=Strict session cookie.

The cookie holds a principal in exactly the format of the signed ``X-Tether-Principal`` header (a ``user``
principal: tenant + owner + browser session), signed under a key of its own:

- derived from ``TETHER_SECRET_PRINCIPAL_KEY`` when that is set (HMAC of a fixed label, so a header value can never
  be replayed as a cookie, nor the other way round);
- otherwise generated at random per process (sessions end when the server restarts; fine for development).

The development login lets anyone who reaches it sign in as any owner, so it is only on when

- ``TETHER_DEV_LOGIN=1`` (explicit), or
- ``TETHER_DEV_LOGIN`` is unset and the server runs the embedded default: a SQLite database, listening on and
  published at a loopback address.

``TETHER_DEV_LOGIN=0`` turns it off in every case, and it is never on by default with PostgreSQL. When it is off,
session cookies are refused too (there is nothing that could have minted them).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from engine.settings import Settings

SESSION_COOKIE = "tether_session"
#: Cookie-authenticated POST/PATCH/DELETE must carry ``X-Tether-CSRF: 1``: a cross-site form cannot set it.
CSRF_HEADER = "X-Tether-CSRF"
SESSION_TTL_SECONDS = 8 * 3600
_LABEL = b"tether-web-session-v1"
_PROCESS_KEY = secrets.token_urlsafe(32)


def dev_login_enabled(settings: Settings) -> bool:
    # Read per call (a fresh ``Settings()``), not from the runtime's: switching it off takes effect at once.
    flag = Settings().dev_login
    if flag is not None:
        return flag
    return settings.embedded_default()


def session_key(runtime: object) -> str:
    """The key session cookies are signed with; empty when browser sessions are off."""
    settings: Settings = runtime.settings  # type: ignore[attr-defined]
    if not dev_login_enabled(settings):
        return ""
    configured = settings.secret_principal_key.get_secret_value()
    if configured:
        return hmac.new(configured.encode(), _LABEL, hashlib.sha256).hexdigest()
    return _PROCESS_KEY
