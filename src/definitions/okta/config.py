"""User input: the Okta org to connect to. Okta has no operator config: every org is its own provider.

The org URL is typed by a person, so it is checked twice: here (an ``https`` origin with a public-looking host,
nothing else), and on every request by the egress guard, which refuses hosts that resolve to loopback, private
or link-local addresses. The first check gives a clear form error; the second is the one that protects.

The URL is parsed by httpx, the parser the egress client uses, so what is checked is what would be sent. The
host must be a DNS name: ASCII letters, digits and hyphens in labels (an internationalised name is stored in
its ``xn--`` form), and a last label that is not a number. The last rule refuses every spelling of an IPv4
address (``0177.0.0.1``, ``0x7f.1``, ``2130706433``), which URL parsers and resolvers read differently; a
host httpx or IDNA cannot parse (``①②⑦.0.0.1``, full-width letters) is refused like any other bad input.
"""

from __future__ import annotations

import string

import httpx
import idna
from pydantic import field_validator

from engine import UserInput
from engine.kit.egress import numeric_host

_LABEL_CHARACTERS = frozenset(string.ascii_lowercase + string.digits + "-")
_PUBLIC_HOST = "the org URL must use the org's public host name"


class OktaSettings(UserInput):
    """Which Okta org this integration reads."""

    #: The org's URL, e.g. ``https://acme.okta.com`` (or a custom domain); stored as a bare https origin.
    org_url: str

    @field_validator("org_url")
    @classmethod
    def _https_origin(cls, value: str) -> str:
        try:
            url = httpx.URL(value.strip())
            url.host  # noqa: B018 - decodes an xn-- label, which raises on a malformed one
            port = url.port
        except (httpx.InvalidURL, idna.IDNAError):
            raise ValueError(_PUBLIC_HOST) from None
        if url.scheme != "https" or not url.raw_host:
            raise ValueError("the org URL must start with https://")
        if url.userinfo or url.query or url.fragment or url.path not in ("", "/"):
            raise ValueError("the org URL must be just the origin, like https://acme.okta.com")
        if port is not None and not 0 < port < 65536:
            raise ValueError("the org URL's port must be between 1 and 65535")
        host = url.raw_host.decode("ascii").rstrip(".")
        if not _public_host_name(host):
            raise ValueError(_PUBLIC_HOST)
        return f"https://{host}" + (f":{port}" if port else "")


def _public_host_name(host: str) -> bool:
    """A DNS name of two labels or more, not ``localhost``, not ending in a number (which would be an IPv4)."""
    labels = host.split(".")
    if len(host) > 253 or len(labels) < 2 or labels[-1] == "localhost" or numeric_host(host):
        return False
    return all(
        0 < len(label) <= 63 and set(label) <= _LABEL_CHARACTERS and not label.startswith("-")
        and not label.endswith("-")
        for label in labels
    )
