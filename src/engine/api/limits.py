"""The edge of the app: what no route should ever see.

- A body over the limit gets 413 ``body_too_large``, declared (``Content-Length``) or not (chunked). The body is
  read here, bounded, before the app runs, and handed on whole: a bound enforced from inside the app's ``receive``
  raised in the middle of the framework's body parsing, which turned every error there into a 400 ``There was an
  error parsing the body``.
- Text the store cannot hold gets 422 ``invalid_input``: NUL or a lone UTF-16 surrogate in the path, the query
  string, a JSON body's strings (``"\\u0000"``, ``"\\ud800"``) or a form's fields. PostgreSQL refuses NUL in text
  and no UTF-8 encodes a lone surrogate, so such a value would otherwise reach the database and come back as a 500.
  SCIM routes answer a SCIM Error body instead (400 ``invalidValue``), as every SCIM failure does.

Webhook deliveries are exempt from the body check: their bytes are the provider's, verified as they are and
recorded as bytes (``engine.api.webhooks``).
"""

from __future__ import annotations

import json
from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from engine.kit.inputs import storable, unstorable_string

MAX_BODY_BYTES = 1024 * 1024
_WEBHOOKS = "/v1/webhooks/"
_SCIM = "/v1/scim/"
_SCIM_ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"


class BodyLimit:
    def __init__(self, app: ASGIApp, max_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        if declared_too_large(headers.get(b"content-length"), self.max_bytes):
            await _too_large(send, scope["path"])
            return
        path: str = scope["path"]
        if not storable(path) or not _query_storable(scope.get("query_string", b"")):
            await _unstorable(send, path, "the path or query string holds NUL or an invalid character")
            return
        try:
            body = await _read(receive, self.max_bytes)
        except BodyTooLarge:
            await _too_large(send, path)
            return
        if body is None:  # the client went away before the body was complete: nobody to answer
            return
        if not path.startswith(_WEBHOOKS) and not _body_storable(body, headers.get(b"content-type", b"")):
            await _unstorable(send, path, "the request body holds NUL or a lone surrogate in a string")
            return
        await self.app(scope, _replay(body, receive), send)


def declared_too_large(value: bytes | str | None, max_bytes: int = MAX_BODY_BYTES) -> bool:
    """Whether a ``Content-Length`` announces more than the bound. Only ASCII digits are a length (``'²'.isdigit()``
    is true, and ``int()`` refuses it or, past 4300 digits, any number); anything else is left to the server, which
    refuses it, and the bytes actually sent are counted either way."""
    if value is None:
        return False
    text = (value.decode("latin-1") if isinstance(value, bytes) else value).strip()
    if not (text.isascii() and text.isdigit()):
        return False
    digits = text.lstrip("0") or "0"
    return len(digits) > len(str(max_bytes)) or int(digits) > max_bytes


class BodyTooLarge(Exception):
    """The body passed the bound while it was read."""


async def _read(receive: Receive, max_bytes: int) -> bytes | None:
    """The whole body (``BodyTooLarge`` once it passes the bound), ``None`` if the client disconnected."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > max_bytes:
                raise BodyTooLarge
            chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """The app's ``receive``: the body in one message, then the real channel (disconnect detection)."""
    pending = True

    async def replayed() -> Message:
        nonlocal pending
        if pending:
            pending = False
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


def _query_storable(query: bytes) -> bool:
    # Starlette decodes ``%xx`` as UTF-8 with replacement, so NUL is the one thing a query can smuggle in.
    return b"%00" not in query and b"\x00" not in query


def _body_storable(body: bytes, content_type: bytes) -> bool:
    if not body:
        return True
    if b"application/x-www-form-urlencoded" in content_type.lower():
        text = body.decode("utf-8", "replace")
        return all(storable(k) and storable(v) for k, v in parse_qsl(text, keep_blank_values=True))
    # JSON can only carry NUL or a surrogate as a ``\u`` escape (raw control characters are invalid JSON) or, as
    # ``json.loads`` decodes bytes with ``surrogatepass`` (and guesses UTF-16/32), as bytes that are not strict
    # UTF-8 (``\xed\xa0\x80`` is a lone surrogate). A strict UTF-8 body without an escape is decoded once, by its
    # route. Any body that is JSON is checked, whatever its content type says: SCIM parses
    # ``application/scim+json`` and some routes parse whatever they get.
    if b"\\u" not in body and _strict_utf8(body):
        return True
    try:
        value = json.loads(body)
    except (ValueError, RecursionError):
        return True  # not JSON: the route answers ``invalid_json`` (or its own format's error)
    return not unstorable_string(value)


def _strict_utf8(body: bytes) -> bool:
    if body.isascii():
        return True
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


async def _unstorable(send: Send, path: str, message: str) -> None:
    if path.startswith(_SCIM):
        document = {"schemas": [_SCIM_ERROR], "status": "400", "scimType": "invalidValue", "detail": message}
        await _answer(send, 400, document, b"application/scim+json")
        return
    await _answer(send, 422, {"error": {"code": "invalid_input", "message": message}})


async def _too_large(send: Send, path: str) -> None:
    if path.startswith(_SCIM):
        document = {"schemas": [_SCIM_ERROR], "status": "413", "detail": "request body over 1 MB"}
        await _answer(send, 413, document, b"application/scim+json")
        return
    await _answer(send, 413, {"error": {"code": "body_too_large", "message": "request body over 1 MB"}})


async def _answer(send: Send, status: int, document: object, media_type: bytes = b"application/json") -> None:
    body = json.dumps(document).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", media_type), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
