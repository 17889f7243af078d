"""User input: the Okta org to connect to. Okta has no operator config: every org is its own provider.

The org URL is typed by a person, so it is checked twice: here (an ``https`` origin with a public-looking host,
nothing else), and on every request by the egress guard, which refuses hosts that resolve to loopback, private
or link-local addresses. The first check gives a clear form error; the second is the one that protects.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from pydantic import field_validator

from engine import UserInput


class OktaSettings(UserInput):
    """Which Okta org this integration reads."""

    #: The org's URL, e.g. ``https://acme.okta.com`` (or a custom domain); stored as a bare https origin.
    org_url: str

    @field_validator("org_url")
    @classmethod
    def _https_origin(cls, value: str) -> str:
        parts = urlsplit(value.strip())
        host = (parts.hostname or "").rstrip(".").lower()
        if parts.scheme != "https" or not host:
            raise ValueError("the org URL must start with https://")
        if parts.username or parts.password or parts.query or parts.fragment or parts.path not in ("", "/"):
            raise ValueError("the org URL must be just the origin, like https://acme.okta.com")
        if host == "localhost" or host.endswith(".localhost") or "." not in host or _ip_literal(host):
            raise ValueError("the org URL must use the org's public host name")
        return f"https://{host}" + (f":{parts.port}" if parts.port and parts.port != 443 else "")


def _ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True
