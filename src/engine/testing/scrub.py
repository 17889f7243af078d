"""Scrubbing a recording before it is written: what the slot schemas say is secret, and what looks like a credential.

Three passes, each on the request and the response of every interaction:

1. every known secret value (each ``SecretStr`` of the integration's credentials and of the operator config, from
   the slot and config schemas: ``engine.observability.logs.slot_secrets``) is replaced wherever it appears: URL,
   header values, body;
2. credential headers (``Authorization``, ``Cookie``, ``X-Api-Key``, … the log scrubber's list) keep their scheme
   word only (``Bearer <scrubbed>``);
3. credential-named fields (``access_token``, ``client_secret``, ``token``, … ) in JSON bodies, form bodies and query
   strings are replaced, and so are the texts of credential-named XML elements (AWS's query APIs answer XML: STS's
   ``<SecretAccessKey>`` and ``<SessionToken>``, CamelCase names read as ``secret_access_key``). Pagination fields
   whose names merely contain "token" (``nextPageToken``, ``sync_token``) are cursors, not credentials, and stay: a
   replay needs them.

The scrubbed value is :data:`SCRUBBED`; replay treats a scrubbed query value as matching anything.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import replace
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import re2

from engine.observability.logs import HEADER_NAMES, MIN_SECRET_LENGTH, TOKEN_NAMES
from engine.testing.cassettes import Interaction, Request, Response

__all__ = ["SCRUBBED", "credential_header", "credential_name", "scrub_interactions", "scrub_text"]

SCRUBBED = "<scrubbed>"

_NAMES = frozenset(TOKEN_NAMES.split("|")) | {
    "token",
    "secret",
    "bot_token",
    "user_token",
    "signature",
    "secret_access_key",
}
#: ``x-amz-security-token``: the session token of AWS temporary credentials (SigV4 signs it, never hides it).
_HEADERS = frozenset(HEADER_NAMES.split("|")) | {
    "x-auth-token",
    "x-access-token",
    "private-token",
    "x-amz-security-token",
}
#: Field names that hold a cursor although they contain "token" (Azure's ``$skipToken`` too).
_CURSOR_WORDS = ("page", "cursor", "sync", "delta", "continuation", "next", "skip")


def credential_name(name: str) -> bool:
    """Whether a JSON key, form field or query parameter named ``name`` holds a credential."""
    low = name.lower()
    if any(word in low for word in _CURSOR_WORDS):
        return False
    # camelCase spellings too (Google's generateAccessToken answers ``accessToken``): as snake_case.
    snake = _snake(name)
    return any(n in _NAMES or n.endswith(("_token", "_secret", "_password")) for n in (low, snake))


#: An XML element holding text only; RE2 has no back-references, so the closing name is compared in code.
_XML_TEXT = re2.compile(r"<([A-Za-z][A-Za-z0-9_]*)>([^<]*)</([A-Za-z][A-Za-z0-9_]*)>")
#: The marker as XML text (``<scrubbed>`` itself would be an element): a parser reads it back as :data:`SCRUBBED`.
_XML_SCRUBBED = "&lt;scrubbed&gt;"


def _snake(name: str) -> str:
    """``SecretAccessKey`` → ``secret_access_key`` (an acronym stays one word: ``AccessKeyID`` → ``access_key_id``)."""
    out: list[str] = []
    for index, char in enumerate(name):
        if char.isupper() and index and not name[index - 1].isupper():
            out.append("_")
        out.append(char.lower())
    return "".join(out)


def _xml(text: str) -> str:
    def replace(match: Any) -> str:
        name, value, closing = match.group(1), match.group(2), match.group(3)
        if name == closing and value and credential_name(_snake(name)):
            return f"<{name}>{_XML_SCRUBBED}</{name}>"
        return str(match.group(0))

    return str(_XML_TEXT.sub(replace, text))


def credential_header(name: str) -> bool:
    """Credential headers, and signature headers (made with a secret; the suite signs examples afresh)."""
    low = name.lower()
    return low in _HEADERS or "signature" in low


def scrub_text(text: str, secrets: Iterable[str]) -> str:
    for secret in sorted({s for s in secrets if s and len(s) >= MIN_SECRET_LENGTH}, key=len, reverse=True):
        text = text.replace(secret, SCRUBBED)
    return text


def _fields(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: (SCRUBBED if isinstance(v, str) and credential_name(str(k)) else _fields(v)) for k, v in value.items()
        }
    if isinstance(value, list):
        return [_fields(v) for v in value]
    return value


def _pairs(text: str) -> str:
    pairs = parse_qsl(text, keep_blank_values=True)
    return urlencode([(k, SCRUBBED if credential_name(k) else v) for k, v in pairs], safe="<>")


def _url(url: str, secrets: list[str]) -> str:
    parts = urlsplit(scrub_text(url, secrets))
    return urlunsplit(parts._replace(query=_pairs(parts.query))) if parts.query else urlunsplit(parts)


def _header(name: str, value: str, secrets: list[str]) -> str:
    if credential_header(name):
        scheme, sep, rest = value.partition(" ")
        return f"{scheme} {SCRUBBED}" if sep and rest and scheme.isalpha() else SCRUBBED
    return scrub_text(value, secrets)


def _body(content: bytes, content_type: str, secrets: list[str]) -> bytes:
    if not content:
        return content
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError:
        return content  # binary bodies are kept as they are; a secret is text
    text = scrub_text(text, secrets)
    if "json" in content_type or text.lstrip()[:1] in ("{", "["):
        try:
            # Keep the provider's bytes unless a field had to go: a diff of a re-recording stays small.
            parsed = json.loads(text)
            cleaned = _fields(parsed)
            return (json.dumps(cleaned) if cleaned != parsed else text).encode()
        except ValueError:
            return text.encode()
    if "x-www-form-urlencoded" in content_type:
        return _pairs(text).encode()
    if "xml" in content_type or text.lstrip().startswith("<?xml"):
        return _xml(text).encode()
    return text.encode()


def _headers(raw: dict[str, list[str]], secrets: list[str]) -> dict[str, list[str]]:
    return {name: [_header(name, v, secrets) for v in values] for name, values in raw.items()}


def _content_type(raw: dict[str, list[str]]) -> str:
    return next((", ".join(v) for k, v in raw.items() if k.lower() == "content-type"), "").lower()


def scrub_interactions(interactions: Iterable[Interaction], secrets: Iterable[str]) -> list[Interaction]:
    """The interactions with every secret and credential-shaped value replaced by :data:`SCRUBBED`."""
    known = list(secrets)
    out = []
    for item in interactions:
        req, res = item.request, item.response
        request: Request = replace(
            req,
            url=_url(req.url, known),
            raw_headers=_headers(req.raw_headers, known),
            content=_body(req.content, _content_type(req.raw_headers), known),
        )
        response: Response = replace(
            res,
            raw_headers=_headers(res.raw_headers, known),
            content=_body(res.content, _content_type(res.raw_headers), known),
        )
        out.append(Interaction(request, response))
    return out
