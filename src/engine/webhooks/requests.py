"""What a webhook endpoint hands verifiers and handshakes (``WebhookRequest``) and what a handshake answers (``Reply``).

Providers do not all speak POST + JSON: Okta verifies a hook with a one-time ``GET`` carrying a header, Microsoft
Graph validates a subscription with a ``POST ?validationToken=…`` and no body, and expects the token echoed back as
``text/plain``. A handshake therefore sees the method, the query string, the headers and the raw body, and answers
with a status, a media type and bytes rather than only a JSON object.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from pydantic import BaseModel

from engine.errors import TetherError

__all__ = ["InvalidQuery", "Reply", "WebhookRequest", "parse_query", "reply_of"]

#: More query fields than any provider sends: a longer query string is refused before it is split further.
MAX_QUERY_FIELDS = 50


class InvalidQuery(TetherError):
    """A webhook request's query string cannot be read (too many fields)."""

    code = "invalid_query"
    status = 400


def parse_query(raw: bytes | str) -> dict[str, str]:
    """The query string as a mapping (the first value of a repeated name wins). Percent-escapes decode as UTF-8
    with replacement, so a value never holds a lone surrogate; raw non-ASCII bytes read as Latin-1 (as headers)."""
    text = raw.decode("latin-1") if isinstance(raw, bytes) else raw
    if not text:
        return {}
    try:
        pairs = parse_qsl(text, keep_blank_values=True, max_num_fields=MAX_QUERY_FIELDS)
    except ValueError:
        raise InvalidQuery(f"the query string has more than {MAX_QUERY_FIELDS} fields") from None
    out: dict[str, str] = {}
    for name, value in pairs:
        out.setdefault(name, value)
    return out


@dataclass(frozen=True)
class WebhookRequest:
    """One request to a webhook endpoint, as verifiers' ``challenge`` and webhooks' ``handshake`` see it."""

    method: str
    #: Lower-case names, the first of a repeated header winning.
    headers: Mapping[str, str]
    query: Mapping[str, str] = field(default_factory=dict)
    #: The raw body, exactly as received (signatures are over these bytes).
    body: bytes = b""
    #: The parsed body (JSON or form) when the endpoint parsed it, else ``None``.
    payload: Any = None

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


@dataclass(frozen=True)
class Reply:
    """A handshake's answer: written as is (status, media type, bytes)."""

    content: bytes
    media_type: str = "application/json"
    status: int = 200

    @classmethod
    def json(cls, value: Any, status: int = 200) -> Reply:
        return cls(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode(), "application/json", status)

    @classmethod
    def text(cls, value: str, status: int = 200) -> Reply:
        return cls(value.encode("utf-8", "replace"), "text/plain; charset=utf-8", status)


def reply_of(answer: Reply | BaseModel | Mapping[str, Any] | None) -> Reply | None:
    """A handshake's answer as a ``Reply`` (a model or a mapping is JSON)."""
    if answer is None or isinstance(answer, Reply):
        return answer
    if isinstance(answer, BaseModel):
        return Reply.json(answer.model_dump(mode="json"))
    return Reply.json(dict(answer))
