"""Provider kit for operations: pagination with loop guards, error and rate-limit handling, bearer credentials.

Pagination::

    async for item in items(paginate(fetch, style=CursorPages(), max_pages=500)):
        yield Payload("asset", item)

``fetch(request)`` receives a ``PageRequest`` (``cursor``, ``url``, ``offset``, ``limit``, ``number``) and returns an
``httpx.Response`` or a ``Page``. Styles: ``CursorPages`` (a next cursor read from the body), ``LinkPages``
(RFC 8288 ``Link: <…>; rel="next"``), ``NextLinkPages`` (the next URL in the body: Graph's ``@odata.nextLink``,
ARM's ``nextLink``), ``OffsetPages``. ``follow_links`` is ``paginate`` for the URL styles over a client: it keeps
every next URL on the client's origin (a link elsewhere would receive our credential). Guards stop a broken
provider from looping forever: a repeated cursor or URL (``PaginationLoop``), a page identical to the previous one
(``PaginationLoop``), and caps on pages and elapsed time (``PaginationLimit``); both are ``ProviderError``s.

Rate limits: ``check_response`` turns a 429 into ``RateLimited`` carrying ``retry_after`` (seconds, from
``Retry-After`` as delta-seconds or an HTTP date, else ``X-RateLimit-Reset``), and 5xx into a retryable
``ProviderError``. The worker defers a rate-limited run by ``retry_after`` through the queue; nothing sleeps.

Definitions with their own error conventions describe them to ``raise_for_status`` (what failed, what is a rate
limit and how long to wait, what means the credential is refused, which documented error code to name, whether to
raise the typed errors) and get a ``get_json``/``post_json`` from ``json_getter``/``json_poster``.

Credentials: ``BearerAuth`` sends a static (or renewed) token, ``MintedTokenAuth`` one minted at a token endpoint.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Generator
from dataclasses import dataclass, field
from typing import Any, ClassVar

import anyio
import httpx

from engine.errors import ProviderError
from engine.governor.headers import retry_after_seconds
from engine.kit.egress import parse_json_bounded, read_json


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


class PaginationLoop(ProviderError):
    """The provider sent a cursor or URL already seen, or the same page twice: stop instead of looping.

    A ``ProviderError`` (the provider's answers are what is broken), so a definition catching provider errors
    catches this too; its own code keeps it apart.
    """

    code = "pagination_loop"
    status = 502
    #: The listing stopped part way: the run ends ``stalled`` (what it persisted stays), not ``failed``.
    stalls = True


class PaginationShort(ProviderError):
    """The provider said it has more records than it let the listing read (a has-more flag, a total count, then no
    next cursor or an empty page): taking it for the end would let a reconciling sync act on half a listing.
    Like ``PaginationLoop``, the run ends ``stalled``, never ``succeeded`` (``TetherError.stalls``)."""

    code = "pagination_short"
    status = 502
    stalls = True


class PaginationLimit(ProviderError):
    """Pagination hit its page or time cap."""

    code = "pagination_limit"
    status = 502


# -- rate limits ------------------------------------------------------------------------------------------------


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


def retry_after_or(default: float) -> Callable[[httpx.Response], float]:
    """A ``retry_after`` for ``raise_for_status``: the answer's own wait, else ``default`` (many providers send
    none with their quota errors, and a zero wait would just hit the limit again)."""

    def retry_after(response: httpx.Response) -> float:
        return retry_after_seconds(response.headers) or default

    return retry_after


def raise_for_status(
    response: httpx.Response,
    provider: str,
    *,
    is_error: Callable[[httpx.Response], bool] | None = None,
    is_rate_limit: Callable[[httpx.Response], bool] | None = None,
    retry_after: Callable[[httpx.Response], float | None] | None = None,
    is_unauthorized: Callable[[httpx.Response], bool] | None = None,
    detail: Callable[[httpx.Response], str | None] | None = None,
    typed: bool = False,
    transient: bool = False,
) -> None:
    """Turn an error answer into a ``ProviderError`` with a stable code; only method, path and status are named.

    A definition describes its provider's conventions through the parameters; each defaults to plain HTTP:

    * ``is_error``: whether the answer failed at all (by default a non-2xx status; an envelope API that fails
      with HTTP 200 says so from its body).
    * ``is_rate_limit`` (by default a 429): ``rate_limited`` carrying ``retry_after(response)`` seconds (by
      default ``retry_after_seconds`` of the headers, see ``retry_after_or`` for a provider default).
    * ``is_unauthorized`` (by default a 401): ``unauthorized``, the credential no longer works.
    * ``detail``: a short, provider-documented token to name in the message (an error code, never a body
      message, which can echo request data); the definition vouches that it is such a token.
    * ``typed``: a rate limit is the kit's ``RateLimited`` (provider status 429, HTTP 429 at the API) instead of a
      ``ProviderError`` keeping the answer's status.
    * ``transient``: a 5xx is ``TransientProviderError`` (``provider_unavailable``) instead of a ``ProviderError``
      with that status (which is retried as well, under the code ``provider_error``).

    Anything else is a plain ``provider_error``.
    """
    if not (is_error(response) if is_error is not None else not response.is_success):
        return
    status = response.status_code
    where = f"{response.request.method} {response.request.url.path}"
    named = detail(response) if detail is not None else None
    if named:
        where = f"{where}, {named}"
    if is_rate_limit(response) if is_rate_limit is not None else status == 429:
        wait = retry_after(response) if retry_after is not None else retry_after_seconds(response.headers)
        message = f"{provider} rate limit reached ({where})"
        if typed:
            raise RateLimited(message, retry_after=wait)
        raise ProviderError(message, provider_status=status, retry_after=wait, code="rate_limited")
    if is_unauthorized(response) if is_unauthorized is not None else status == 401:
        raise ProviderError(f"{provider} refused the credential ({where})", provider_status=status, code="unauthorized")
    if transient and status >= 500:
        raise TransientProviderError(f"{provider} answered {status} to {where}", provider_status=status)
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
    #: The provider's own word on whether more pages follow (a has-more flag), ``None`` when it gives none.
    more: bool | None = None


class PageStyle:
    #: Whether a page without its items is an empty page (Google answers an empty list so). Off by default: a
    #: body that lost its list must not read as "nothing there", which a reconciling sync would act on.
    missing_ok: bool = False

    def first(self, limit: int, start: Any) -> PageRequest:
        raise NotImplementedError

    def parse(self, response: httpx.Response) -> Page:
        """The page of an answer already checked for errors (its body is bounded by the egress transport)."""
        return self.read(parse_json_bounded(response.content))

    def read(self, body: Any) -> Page:
        """The page held by a JSON body (for definitions that unwrap an envelope before paging)."""
        raise NotImplementedError

    def following(self, request: PageRequest, page: Page) -> PageRequest | None:
        raise NotImplementedError

    def promised_more(self, request: PageRequest, page: Page) -> bool:
        """Whether the provider said more follows this page (checked when ``following`` ends the listing)."""
        return page.more is True


@dataclass
class CursorPages(PageStyle):
    """The body holds the items and the next cursor (``items_path`` and ``cursor_path`` are dotted keys); an empty
    cursor ends. ``has_more_path`` names the provider's has-more flag, if it sends one: a page whose flag says
    more but which carries no cursor is ``pagination_short``, not the end."""

    items_path: str = "items"
    cursor_path: str = "next_cursor"
    missing_ok: bool = False
    has_more_path: str = ""

    def first(self, limit: int, start: Any) -> PageRequest:
        return PageRequest(number=1, cursor=start, limit=limit)

    def read(self, body: Any) -> Page:
        items = _items(body, self.items_path, missing_ok=self.missing_ok)
        more = _dig(body, self.has_more_path) if self.has_more_path else None
        return Page(items, _dig(body, self.cursor_path) or None, body, more if isinstance(more, bool) else None)

    def following(self, request: PageRequest, page: Page) -> PageRequest | None:
        if page.next is None:
            return None
        return PageRequest(number=request.number + 1, cursor=page.next, limit=request.limit)


@dataclass
class LinkPages(PageStyle):
    """Items are the body (or ``items_path`` of it); the next page's URL is in ``Link: <…>; rel="next"``
    (RFC 8288; a relative link is resolved against the answer's URL)."""

    url: str = ""
    items_path: str = ""
    missing_ok: bool = False

    def first(self, limit: int, start: Any) -> PageRequest:
        return PageRequest(number=1, url=start or self.url, limit=limit)

    def parse(self, response: httpx.Response) -> Page:
        page = self.read(parse_json_bounded(response.content))
        link = response.links.get("next", {}).get("url")
        page.next = str(response.url.join(link)) if link else None
        return page

    def read(self, body: Any) -> Page:
        return Page(_items(body, self.items_path, missing_ok=self.missing_ok), None, body)

    def following(self, request: PageRequest, page: Page) -> PageRequest | None:
        if not page.next:
            return None
        return PageRequest(number=request.number + 1, url=page.next, limit=request.limit)


@dataclass
class NextLinkPages(LinkPages):
    """The body holds the items and the next page's absolute URL: ``@odata.nextLink`` (Microsoft Graph),
    ``nextLink`` (Azure Resource Manager). The whole last body stays in ``Page.raw`` (Graph's delta link)."""

    items_path: str = "value"
    next_path: str = "@odata.nextLink"

    def parse(self, response: httpx.Response) -> Page:
        return self.read(parse_json_bounded(response.content))

    def read(self, body: Any) -> Page:
        link = _dig(body, self.next_path)
        return Page(_items(body, self.items_path, missing_ok=self.missing_ok), str(link) if link else None, body)


@dataclass
class OffsetPages(PageStyle):
    """``offset``/``limit`` pages; a short page ends pagination (or ``total_path`` when the body has a total)."""

    items_path: str = "items"
    total_path: str = ""
    missing_ok: bool = False

    def first(self, limit: int, start: Any) -> PageRequest:
        return PageRequest(number=1, offset=int(start or 0), limit=limit)

    def read(self, body: Any) -> Page:
        items = _items(body, self.items_path, missing_ok=self.missing_ok)
        total = _dig(body, self.total_path) if self.total_path and isinstance(body, dict) else None
        return Page(items, total, body)

    def following(self, request: PageRequest, page: Page) -> PageRequest | None:
        offset = request.offset + len(page.items)
        if not page.items or (page.next is None and len(page.items) < request.limit):
            return None
        if page.next is not None and offset >= int(page.next):
            return None
        return PageRequest(number=request.number + 1, offset=offset, limit=request.limit)

    def promised_more(self, request: PageRequest, page: Page) -> bool:
        """A total the listing ended short of (an empty or short page before ``total`` items)."""
        return page.next is not None and request.offset + len(page.items) < int(page.next)


async def paginate(
    fetch: Callable[[PageRequest], Awaitable[httpx.Response | Page]],
    *,
    style: PageStyle,
    limit: int = 100,
    start: Any = None,
    max_pages: int = 1000,
    max_seconds: float | None = 600.0,
    clock: Callable[[], float] = time.monotonic,
    what: str = "the provider",
) -> AsyncIterator[Page]:
    """Yield pages until the style says stop; raise ``PaginationLoop``/``PaginationLimit`` on a broken provider,
    ``PaginationShort`` when the listing ends while the provider said more follow (``PageStyle.promised_more``).

    A ``httpx.Response`` from ``fetch`` goes through ``check_response`` first (so a 429 becomes ``RateLimited``).
    ``what`` names the listing in errors (``"GitHub pagination of /user/repos"``); ``max_seconds=None`` leaves
    the time to the run's own limit.
    """
    began = clock()
    request: PageRequest | None = style.first(limit, start)
    seen: set[str] = set()
    previous_digest: str | None = None
    while request is not None:
        if request.number > max_pages:
            raise PaginationLimit(f"{what} stopped after {max_pages} pages")
        if max_seconds is not None and clock() - began > max_seconds:
            raise PaginationLimit(f"{what} stopped after {max_seconds:g}s")
        key = _request_key(request)
        if key is not None:
            if key in seen:
                raise PaginationLoop(f"{what} loops back to a page already read (page {request.number})")
            seen.add(key)
        answer = await fetch(request)
        page = style.parse(check_response(answer)) if isinstance(answer, httpx.Response) else answer
        digest = _digest(page.items)
        if page.items and digest == previous_digest:
            raise PaginationLoop(f"{what} loops back: the same page twice (page {request.number})")
        previous_digest = digest
        yield page
        following = style.following(request, page)
        if following is None and style.promised_more(request, page):
            raise PaginationShort(f"{what} ended at page {request.number} although the provider said more follow")
        request = following


async def items(pages: AsyncIterator[Page]) -> AsyncIterator[Any]:
    """Every item of every page, for a definition that lists items rather than pages."""
    async for page in pages:
        for item in page.items:
            yield item


async def follow_links(
    client: httpx.AsyncClient,
    path: str,
    *,
    style: LinkPages,
    check: Callable[[httpx.Response], Any],
    what: str,
    params: dict[str, Any] | None = None,
    **limits: Any,
) -> AsyncIterator[Page]:
    """``paginate`` for the URL styles (``LinkPages``, ``NextLinkPages``): ``GET path`` with ``params``, then each
    next URL, every one ``check``-ed.

    A next URL carries our credential when followed, so one to another origin than the client's raises
    ``ProviderError``. The first URL is resolved in full (base URL and query), so a link back to it is a loop.
    ``limits`` go to ``paginate`` (``max_pages``, ``max_seconds``).
    """
    origin = client.base_url.copy_with(raw_path=b"/")
    first = client.build_request("GET", path, params=params).url

    async def fetch(request: PageRequest) -> httpx.Response:
        url = httpx.URL(str(request.url))
        if url.copy_with(raw_path=b"/") != origin:
            raise ProviderError(f"{what} points to another origin")
        response = await client.get(url)  # a next link carries its own query (page size and position included)
        check(response)
        return response

    async for page in paginate(fetch, style=style, start=str(first), what=what, **limits):
        yield page


def _request_key(request: PageRequest) -> str | None:
    if request.url is not None:
        return f"url:{request.url}"
    if request.cursor is not None:
        return f"cursor:{json.dumps(request.cursor, sort_keys=True, default=str)}"
    return None


def _digest(items: list[Any]) -> str:
    return hashlib.sha256(json.dumps(items, sort_keys=True, default=str).encode()).hexdigest()


def _items(body: Any, path: str, *, missing_ok: bool) -> list[Any]:
    """The list at ``path`` (the body itself for ``""``); anything but a list is a provider error, and so is no
    list at all unless ``missing_ok``."""
    if path and not isinstance(body, dict):
        raise ProviderError("the provider answered an unexpected page shape (not an object)")
    items = _dig(body, path) if path else body
    if items is None and missing_ok:
        return []
    if not isinstance(items, list):
        raise ProviderError("the provider answered an unexpected page shape (no list of items)")
    return items


def _dig(body: Any, path: str) -> Any:
    """``path`` of ``body``: a key as it stands (``@odata.nextLink`` holds a dot), else dotted keys."""
    if isinstance(body, dict) and path in body:
        return body[path]
    value = body
    for part in path.split("."):
        if not part:
            continue
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


# -- credentials on requests -------------------------------------------------------------------------------------


class BearerAuth(httpx.Auth):
    """``Authorization: <scheme> <token>`` on every request; ``scheme`` is ``Bearer`` unless the provider has its
    own (Okta's API tokens are ``SSWS``).

    ``token`` is the token, or a function returning the current one, read on each request (for a token that
    another part of the client renews). The token never appears in ``repr``.
    """

    def __init__(self, token: str | Callable[[], str], *, scheme: str = "Bearer") -> None:
        self._token = token
        self.scheme = scheme

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        token = self._token() if callable(self._token) else self._token
        request.headers["Authorization"] = f"{self.scheme} {token}"
        yield request

    def __repr__(self) -> str:
        return f"{type(self).__name__}(scheme={self.scheme!r})"


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


class ClientSecretAuth(MintedTokenAuth):
    """Client-credentials tokens (RFC 6749 §4.4, the secret posted in the form) from one token endpoint.

    A 400 or 401 from the endpoint is ``unauthorized`` with the ``refused`` message (a wrong or expired secret, no
    consent, an unknown tenant: the provider's reason is never repeated); ``check`` maps any other error answer.
    """

    def __init__(self, *, token_url: str, client_id: str, client_secret: str, scope: str, provider: str,
                 refused: str, check: Callable[[httpx.Response], Any], clock: Callable[[], float] = time.time) -> None:
        super().__init__(clock=clock)
        self.token_url = token_url
        self.client_id = client_id
        self.scope = scope
        self.provider = provider
        self.refused = refused
        self._secret = client_secret
        self._check = check

    def mint_request(self) -> httpx.Request:
        return httpx.Request("POST", self.token_url, data={
            "client_id": self.client_id,
            "client_secret": self._secret,
            "scope": self.scope,
            "grant_type": "client_credentials",
        })

    async def read_token(self, response: httpx.Response) -> tuple[str, float]:
        if response.status_code in (400, 401):
            raise ProviderError(self.refused, provider_status=response.status_code, code="unauthorized")
        self._check(response)
        return await token_answer(response, provider=self.provider)


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
