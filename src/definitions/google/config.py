"""Operator config: the Google OAuth client (``TETHER_SECRET_GOOGLE_CLIENT_ID`` / ``_CLIENT_SECRET``) and where the
APIs are.

``api_root`` (``TETHER_GOOGLE_API_ROOT``) replaces Google's API roots for all three products at once, for tests
against a local server (``http://127.0.0.1:PORT/``); it must be https, or http on loopback. Tenants never set it.
"""

from __future__ import annotations

from ipaddress import ip_address
from urllib.parse import urlsplit

from pydantic import field_validator

from engine import OperatorConfig

#: Each API's ``rootUrl`` + ``servicePath`` from its discovery document (Gmail v1, Drive v3, Calendar v3).
GMAIL_API = "https://gmail.googleapis.com/gmail/v1"
DRIVE_API = "https://www.googleapis.com/drive/v3"
CALENDAR_API = "https://www.googleapis.com/calendar/v3"


def config_type(base: type[OperatorConfig]) -> type[OperatorConfig]:
    """The generated OAuth config (``oauth.toml``'s client ID and secret) plus ``api_root``."""

    class GoogleConfig(base):  # type: ignore[valid-type, misc]
        api_root: str | None = None

        @field_validator("api_root")
        @classmethod
        def _https_or_loopback(cls, value: str | None) -> str | None:
            if value is None:
                return None
            parts = urlsplit(value)
            host = parts.hostname or ""
            loopback = host == "localhost" or (_is_ip(host) and ip_address(host).is_loopback)
            if parts.scheme != "https" and not (parts.scheme == "http" and loopback):
                raise ValueError("api_root must be https, or http on loopback for tests")
            return value.rstrip("/")

    GoogleConfig.__doc__ = base.__doc__
    return GoogleConfig


def _is_ip(host: str) -> bool:
    try:
        ip_address(host)
    except ValueError:
        return False
    return True


def api_base(config: OperatorConfig | None, default: str) -> str:
    """``default`` (an API's base URL), or the same service path under the operator's ``api_root``."""
    root = getattr(config, "api_root", None)
    if not root:
        return default
    return root + urlsplit(default).path
