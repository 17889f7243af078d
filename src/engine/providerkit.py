"""Provider kit for operations: pagination with loop guards, and rate-limit handling shared by every definition.

Pagination::

    async for page in paginate(fetch, style=CursorPages(), max_pages=500):
        for item in page.items:
            yield Payload("asset", item)

``fetch(request)`` receives a ``PageRequest`` (``cursor``, ``url``, ``offset``, ``limit``, ``number``) and returns an
``httpx.Response`` or a ``Page``. Three styles: ``CursorPages`` (a next cursor read from the body), ``LinkPages``
(RFC 8288 ``Link: <…>; rel="next"``), ``OffsetPages``. Guards stop a broken provider from looping forever: a
repeated cursor or URL (``PaginationLoop``), a page identical to the previous one (``PaginationLoop``), and caps on
pages and elapsed time (``PaginationLimit``).

Rate limits: ``check_response`` turns a 429 into ``RateLimited`` carrying ``retry_after`` (seconds, from
``Retry-After`` as delta-seconds or an HTTP date, else ``X-RateLimit-Reset``), and 5xx into a retryable
``ProviderError``. The worker defers a rate-limited run by ``retry_after`` through the queue; nothing sleeps.

Definitions with their own error conventions describe them to ``raise_for_status`` (401 is ``unauthorized``, a
provider-specific rate-limit test is ``rate_limited`` with the provider's ``retry_after``, anything else a plain
``ProviderError``) and get a ``get_json``/``post_json`` from ``json_getter``/``json_poster``.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, ClassVar

import anyio
import httpx

from engine.egress import read_json
from engine.errors import ProviderError, TetherError
from engine.inputs import ascii_int


class RateLimited(ProviderError):
    """The provider answered 429 (or its own rate-limit signal): defer by ``retry_after`` seconds."""

    code = "rate_limited"
    status = 429

    def __init__(self, message: str = "the provider is rate limiting requests", *, retry_after: float | None) -> None:
        super().__init__(message, provider_status=429, retry_after=retry_after)


class TransientProviderError(ProviderError):
    """A 5xx or similar answer worth retrying with backoff."""

    code = "provider_unavailable"
    retryable: ClassVar[bool] = True


class PaginationLoop(TetherError):
    """The provider sent a cursor or URL already seen, or the same page twice: stop instead of looping."""

    code = "pagination_loop"
    status = 502


class PaginationLimit(TetherError):
    """Pagination hit its page or time cap."""

    code = "pagination_limit"
    status = 502


# -- rate limits ------------------------------------------------------------------------------------------------


def retry_after_seconds(headers: httpx.Headers | dict[str, str], *, now: datetime | None = None) -> float | None:
    """Seconds to wait from ``Retry-After`` (delta or HTTP date) or ``X-RateLimit-Reset`` (epoch or delta).

    Numbers are ASCII digits only (RFC 9110 ``delta-seconds``): ``float()`` also takes ``inf``, ``nan``, ``1e400``,
    ``1_0`` and Arabic-Indic digits, and ``'²'.isdigit()`` is true while ``float('²')`` raises, so a hostile or broken
    provider header could otherwise defer a run forever or crash the worker that reads it.
    """
    headers = httpx.Headers(headers)
    value = headers.get("retry-after", "").strip()
    if value:
        seconds = ascii_int(value)
        if seconds is not None:
            return float(seconds)
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError, OverflowError):
            when = None
        if when is not None:
            when = when if when.tzinfo else when.replace(tzinfo=UTC)
            return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())
    reset = ascii_int(headers.get("x-ratelimit-reset", "").strip())
    if reset is None:
        return None
    epoch_now = (now or datetime.now(UTC)).timestamp()
    return max(0.0, reset - epoch_now) if reset > 1_000_000_000 else float(reset)


def check_response(response: httpx.Response, *, what: str = "the provider") -> httpx.Response:
    """Raise the shared typed errors for a provider answer; the provider's body never enters a message."""
    status = response.status_code
    if status == 429 or (status == 403 and response.headers.get("x-ratelimit-remaining") == "0"):
        raise RateLimited(
            f"{what} is rate limiting requests (HTTP {status})", retry_after=retry_after_seconds(response.headers)
        )
    if status >= 500 or status in (408, 425):
        raise TransientProviderError(f"{what} answered HTTP {status}", provider_status=status)
    if status >= 400:
        raise ProviderError(f"{what} answered HTTP {status}", provider_status=status)
    return response


def raise_for_status(
    response: httpx.Response,
    provider: str,
    *,
    is_rate_limit: Callable[[httpx.Response], bool] | None = None,
    retry_after: Callable[[httpx.Response], float | None] | None = None,
) -> None:
    """Turn an error answer into a ``ProviderError`` with a stable code; only method, path and status are named.

    401 is ``unauthorized``. A response ``is_rate_limit`` accepts (by default a 429) is ``rate_limited`` carrying
    ``retry_after(response)`` seconds (by default none). Anything else is a plain ``provider_error``.
    """
    if response.is_success:
        return
    status = response.status_code
    where = f"{response.request.method} {response.request.url.path}"
    if status == 401:
        raise ProviderError(f"{provider} refused the credential ({where})", provider_status=status, code="unauthorized")
    if is_rate_limit(response) if is_rate_limit is not None else status == 429:
        raise ProviderError(
            f"{provider} rate limit reached ({where})",
            provider_status=status,
            retry_after=retry_after(response) if retry_after is not None else None,
            code="rate_limited",
        )
    raise ProviderError(f"{provider} answered {status} to {where}", provider_status=status)


def json_getter(check: Callable[[httpx.Response], None]) -> Callable[..., Awaitable[Any]]:
    """``get_json(client, path, **params)``: ``GET`` one resource, ``check`` the answer, return its JSON body."""

    async def get_json(client: httpx.AsyncClient, path: str, **params: Any) -> Any:
        response = await client.get(path, params=params or None)
        check(response)
        return await read_json(response)

    return get_json


def json_poster(check: Callable[[httpx.Response], None]) -> Callable[..., Awaitable[Any]]:
    """``post_json(client, path, body)``: ``POST`` a JSON body, ``check`` the answer, return its JSON body."""

    async def post_json(client: httpx.AsyncClient, path: str, body: dict[str, Any]) -> Any:
        response = await client.post(path, json=body)
        check(response)
        return await read_json(response)

    return post_json


# -- pagination -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PageRequest:
    number: int
    cursor: Any = None
    url: str | None = None
    offset: int = 0
    limit: int = 100


@dataclass
class Page:
    items: list[Any]
    #: The next cursor (cursor style) or URL (link style); ``None`` ends pagination.
    next: Any = None
    raw: Any = field(default=None, repr=False)


class PageStyle:
    def first(self, limit: int, start: Any) -> PageRequest:
        raise NotImplementedError

    def parse(self, response: httpx.Response) -> Page:
        raise NotImplementedError

    def following(self, request: PageRequest, page: Page) -> PageRequest | None:
        raise NotImplementedError


@dataclass
class CursorPages(PageStyle):
    """The body holds the items and the next cursor (``items_path`` and ``cursor_path`` are dotted keys)."""

    items_path: str = "items"
    cursor_path: str = "next_cursor"

    def first(self, limit: int, start: Any) -> PageRequest:
        return PageRequest(number=1, cursor=start, limit=limit)

    def parse(self, response: httpx.Response) -> Page:
        body = response.json()
        return Page(list(_dig(body, self.items_path) or []), _dig(body, self.cursor_path) or None, body)

    def following(self, request: PageRequest, page: Page) -> PageRequest | None:
        if page.next is None:
            return None
        return PageRequest(number=request.number + 1, cursor=page.next, limit=request.limit)


@dataclass
class LinkPages(PageStyle):
    """Items are the body (or ``items_path`` of it); the next page's URL is in ``Link: <…>; rel="next"``."""

    url: str = ""
    items_path: str = ""

    def first(self, limit: int, start: Any) -> PageRequest:
        return PageRequest(number=1, url=start or self.url, limit=limit)

    def parse(self, response: httpx.Response) -> Page:
        body = response.json()
        items = _dig(body, self.items_path) if self.items_path else body
        return Page(list(items or []), response.links.get("next", {}).get("url"), body)

    def following(self, request: PageRequest, page: Page) -> PageRequest | None:
        if not page.next:
            return None
        return PageRequest(number=request.number + 1, url=page.next, limit=request.limit)


@dataclass
class OffsetPages(PageStyle):
    """``offset``/``limit`` pages; a short page ends pagination (or ``total_path`` when the body has a total)."""

    items_path: str = "items"
    total_path: str = ""

    def first(self, limit: int, start: Any) -> PageRequest:
        return PageRequest(number=1, offset=int(start or 0), limit=limit)

    def parse(self, response: httpx.Response) -> Page:
        body = response.json()
        items = list(_dig(body, self.items_path) or []) if self.items_path else list(body)
        total = _dig(body, self.total_path) if self.total_path and isinstance(body, dict) else None
        return Page(items, total, body)

    def following(self, request: PageRequest, page: Page) -> PageRequest | None:
        offset = request.offset + len(page.items)
        if not page.items or (page.next is None and len(page.items) < request.limit):
            return None
        if page.next is not None and offset >= int(page.next):
            return None
        return PageRequest(number=request.number + 1, offset=offset, limit=request.limit)


async def paginate(
    fetch: Callable[[PageRequest], Awaitable[httpx.Response | Page]],
    *,
    style: PageStyle,
    limit: int = 100,
    start: Any = None,
    max_pages: int = 1000,
    max_seconds: float = 600.0,
    clock: Callable[[], float] = time.monotonic,
) -> AsyncIterator[Page]:
    """Yield pages until the style says stop; raise ``PaginationLoop``/``PaginationLimit`` on a broken provider.

    A ``httpx.Response`` from ``fetch`` goes through ``check_response`` first (so a 429 becomes ``RateLimited``).
    """
    began = clock()
    request: PageRequest | None = style.first(limit, start)
    seen: set[str] = set()
    previous_digest: str | None = None
    while request is not None:
        if request.number > max_pages:
            raise PaginationLimit(f"pagination stopped after {max_pages} pages")
        if clock() - began > max_seconds:
            raise PaginationLimit(f"pagination stopped after {max_seconds:g}s")
        key = _request_key(request)
        if key is not None:
            if key in seen:
                raise PaginationLoop(f"the provider repeated a page position on page {request.number}")
            seen.add(key)
        answer = await fetch(request)
        page = style.parse(check_response(answer)) if isinstance(answer, httpx.Response) else answer
        digest = _digest(page.items)
        if page.items and digest == previous_digest:
            raise PaginationLoop(f"the provider returned the same page twice (page {request.number})")
        previous_digest = digest
        yield page
        request = style.following(request, page)


def _request_key(request: PageRequest) -> str | None:
    if request.url is not None:
        return f"url:{request.url}"
    if request.cursor is not None:
        return f"cursor:{json.dumps(request.cursor, sort_keys=True, default=str)}"
    return None


def _digest(items: list[Any]) -> str:
    return hashlib.sha256(json.dumps(items, sort_keys=True, default=str).encode()).hexdigest()


def _dig(body: Any, path: str) -> Any:
    value = body
    for part in path.split("."):
        if not part:
            continue
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


# -- minted bearer tokens -------------------------------------------------------------------------------------------


class MintedTokenAuth(httpx.Auth):
    """``Authorization: Bearer`` with a token minted by one request to a token endpoint (client credentials, a
    signed assertion), reused until shortly before it expires.

    Subclasses say how to mint (``mint_request``) and how to read the answer (``read_token``, which maps the
    provider's refusals to typed errors). A lock makes concurrent requests on one client share one mint. Async
    only: the mint is one more request inside httpx's auth flow.
    """

    #: Mint again this long before the current token expires, so no request carries a stale one.
    remint_margin: ClassVar[float] = 5 * 60

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        #: Seconds since the epoch; replaceable so tests can move time forward.
        self.clock = clock
        self._token: str | None = None
        self._expires_at = 0.0
        self._lock = anyio.Lock()

    def mint_request(self) -> httpx.Request:
        raise NotImplementedError

    async def read_token(self, response: httpx.Response) -> tuple[str, float]:
        """The token and its lifetime in seconds, from the mint's answer."""
        raise NotImplementedError

    def check_ready(self) -> None:
        """Refuse before minting when the configuration cannot work (the default accepts)."""

    async def async_auth_flow(self, request: httpx.Request) -> AsyncIterator[httpx.Request]:
        self.check_ready()
        async with self._lock:
            if self._token is None or self.clock() >= self._expires_at - self.remint_margin:
                minted = yield self.mint_request()
                await minted.aread()
                token, lifetime = await self.read_token(minted)
                self._token, self._expires_at = token, self.clock() + lifetime
            token = self._token
        request.headers["Authorization"] = f"Bearer {token}"
        yield request

    def sync_auth_flow(self, request: httpx.Request) -> Any:
        raise TypeError(f"{type(self).__name__} mints tokens asynchronously; use it with httpx.AsyncClient")


async def token_answer(
    response: httpx.Response, *, provider: str, default_lifetime: float | None = None
) -> tuple[str, float]:
    """``access_token`` and ``expires_in`` from a token endpoint's JSON answer (already checked for errors)."""
    body: Any = await read_json(response)
    try:
        lifetime = body.get("expires_in", default_lifetime) if default_lifetime is not None else body["expires_in"]
        return str(body["access_token"]), float(lifetime)
    except (TypeError, KeyError, ValueError, AttributeError):
        raise ProviderError(f"{provider} answered an unexpected token shape") from None
