"""The one HTTP client factory every outbound request of Tether and of provider definitions goes through.

Why: provider URLs come from definitions, from configuration and from providers' own answers (redirects,
discovery documents). Unguarded, any of them can point Tether at a cloud metadata service (169.254.169.254),
a database on the private network or a local admin port. So every request is checked where it matters.

How the guard works:

* Scheme, per request. The transport checks each request it is handed, and httpx hands it every redirect hop
  (redirects are followed by the client, at most ``max_redirects`` of them), so every hop is checked: https
  always; plain http only when loopback is allowed, and then the connection must land on a loopback address.
* Address, per connection. httpcore asks its network backend to open a TCP connection to the origin's
  hostname. Our backend resolves that name once (the injectable ``resolver``), validates *every* resolved
  address, and then connects to a validated IP literal. httpcore then starts TLS with
  ``server_hostname`` = the origin hostname, so SNI and certificate verification use the name while the
  socket goes to the pinned IP; the Host header comes from the URL as usual. Since the check sits where the
  socket is opened, a second DNS answer cannot swap the address (DNS rebinding), and a redirect to a new
  origin opens a new connection and is checked again. ``httpx.AsyncHTTPTransport`` takes no network
  backend, so our transport subclass swaps its connection pool for one built with ours: one private
  attribute (``_pool``), acceptable because httpx is pinned below 1.0 and every test goes through it.
* Refused: loopback (unless allowed), private (RFC 1918, fc00::/7, the other special-purpose blocks),
  link-local (169.254.0.0/16, fe80::/10), multicast, unspecified, reserved and shared (100.64.0.0/10),
  also when written as IPv4-mapped IPv6 or embedded in 6to4 / NAT64 addresses. The names ``localhost`` and
  ``*.localhost`` are refused before any lookup.
* Proxies from the environment are ignored (``trust_env=False``): a proxy would connect on our behalf to an
  address we never checked. Unix sockets are refused.
* Size. The transport counts body bytes as they stream in and stops at ``max_response_bytes``
  (:class:`ResponseTooLarge`); a larger Content-Length is refused before reading. gzip and deflate are
  decoded here, with the bound applied to the decoded bytes, so a compression bomb is stopped too; such
  responses reach the caller without Content-Encoding / Content-Length headers. Other encodings are refused.
* Time. httpx's timeouts bound each phase (connect, each read, each write), so a provider sending a byte at a
  time never trips them. Every exchange also has a total deadline (:class:`DeadlineExceeded`): from the
  request being sent to its body being read, redirect hops and auth requests (a token minted by an
  ``httpx.Auth``) included. The bound is the request's timeout: the client's ``timeout`` or a per-call
  ``timeout=`` (its largest phase when phases differ); a call with ``timeout=None`` keeps the client's bound,
  there is no unbounded exchange. Async reads are cancelled when the deadline passes; the sync client caps
  each socket operation at the time left. Either way the connection is closed, not returned to the pool.
* URLs. A URL whose host httpx or IDNA cannot parse (``https://0177.0.0.1``, ``https://①②⑦.0.0.1``) is
  refused as :class:`EgressRefused`, not raised as ``httpx.InvalidURL``; so is a numeric host that is not a
  dotted-quad (``2130706433``, ``0x7f.0.0.1``, ``127.1``): URL parsers and resolvers disagree on what
  address such a host means, and a provider never needs one.
* Nothing here logs, and error messages name the scheme and host only, never paths, queries or bodies.

* Tether's own origin. While the sandbox provider is on (``Settings.sandbox_enabled()``, ``engine.sandbox``), a
  request whose scheme, host and port are exactly ``Settings.public_url``'s and whose path is under that URL's
  ``/sandbox/`` is admitted as it is: plain http, a loopback or private address. Every client gets that rule from
  the settings, so a definition's client and custody's token exchanges reach the sandbox with no flag of theirs;
  a client may name further paths of the same origin (``own_paths``: the sandbox's webhook sender, for
  ``/v1/webhooks/``). The rule is per request, like the scheme check, so a redirect hop is judged again; a request
  to that origin outside the admitted paths is refused while the sandbox is on (Tether's own API is never a
  provider), and a path that could mean another one (a ``..`` segment, an encoded slash) is outside them.
  With the sandbox off nothing is admitted this way.

Loopback is allowed only with ``allow_loopback=True`` or env ``TETHER_ALLOW_LOOPBACK_PROVIDERS=1`` (tests).
"""

from __future__ import annotations

import contextlib
import contextvars
import ipaddress
import json
import math
import socket
import ssl
import string
import time
import zlib
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from typing import Any, ClassVar, cast

import anyio
import anyio.to_thread
import certifi
import httpcore
import httpx
import idna
from opentelemetry.trace import Span, SpanKind

from engine.errors import EgressRefused, ProviderError, TetherError
from engine.governor import scope as governor_scope
from engine.kit.inputs import ascii_int
from engine.observability import metrics, tracing
from engine.runs import progress
from engine.settings import Settings

__all__ = [
    "DEFAULT_MAX_RESPONSE_BYTES",
    "DEFAULT_TIMEOUT",
    "LOOPBACK_ENV",
    "SANDBOX_PATH",
    "DeadlineExceeded",
    "OwnOrigin",
    "ResponseTooLarge",
    "TooManyRedirects",
    "check_address",
    "deadline",
    "egress_client",
    "egress_sync_client",
    "egress_transport",
    "loopback_allowed",
    "numeric_host",
    "own_origin",
    "parse_json_bounded",
    "read_json",
    "read_json_sync",
    "system_resolver",
]

Resolver = Callable[[str], Iterable[str]]
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

DEFAULT_TIMEOUT = 20.0
DEFAULT_MAX_RESPONSE_BYTES = 10 * 1024 * 1024
DEFAULT_MAX_REDIRECTS = 5
LOOPBACK_ENV = "TETHER_ALLOW_LOOPBACK_PROVIDERS"
#: Where, under ``Settings.public_url``, the sandbox provider is served (``engine.sandbox``).
SANDBOX_PATH = "/sandbox/"

_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_STRIPPED_WHEN_DECODED = {b"content-encoding", b"content-length"}
# True while a plain-http request is being sent: its connection must land on loopback. A context variable
# because httpcore opens the connection in the task (or thread) that sends the request.
_PLAINTEXT: contextvars.ContextVar[bool] = contextvars.ContextVar("tether_egress_plaintext", default=False)
# True while a request admitted as Tether's own origin is being sent: its connection skips the address check.
_OWN: contextvars.ContextVar[bool] = contextvars.ContextVar("tether_egress_own_origin", default=False)
_HEX_DIGITS = frozenset(string.hexdigits)
_DEFAULT_PORTS = {"http": 80, "https": 443}


class DeadlineExceeded(TetherError, httpx.TimeoutException):
    """An exchange went past its total deadline; it was cut off there and its connection closed.

    A Tether error (``provider_unavailable``, 502, retryable) so the API and stored runs say the bound, and an
    ``httpx.TimeoutException`` so code that handles httpx's transport errors and timeouts handles it too.
    """

    code = "provider_unavailable"
    status = 502
    retryable: ClassVar[bool] = True

    def __init__(self, seconds: float, request: httpx.Request | None = None) -> None:
        self.seconds = seconds
        super().__init__(f"the provider did not answer within {seconds:g} s")
        self._request = request


class TooManyRedirects(TetherError, httpx.TooManyRedirects):
    """The provider redirected more times than the client follows (a loop, or a chain we will not walk).

    A Tether error (``provider_error``, 502) so it is never an ``internal_error``: httpx's own is a
    ``RequestError`` but no ``TransportError``, which the handlers of provider trouble catch. And still an httpx
    ``TooManyRedirects``, for code that handles that.
    """

    code = "provider_error"
    status = 502

    def __init__(self, max_redirects: int, request: httpx.Request | None = None) -> None:
        super().__init__(f"the provider redirected more than {max_redirects} times")
        self._request = request


@dataclass(frozen=True)
class _Deadline:
    """When one exchange must be over (``time.monotonic`` seconds) and the bound it came from."""

    at: float
    seconds: float

    @classmethod
    def start(cls, seconds: float) -> _Deadline:
        return cls(time.monotonic() + seconds, seconds)

    def remaining(self) -> float:
        return self.at - time.monotonic()

    def exceeded(self, request: httpx.Request | None = None) -> DeadlineExceeded:
        return DeadlineExceeded(self.seconds, request)


# The deadline of the exchange being sent; set by the clients' ``send`` (so it spans redirects and auth
# requests) or, for a transport used by another client (authlib), by the transport for each request.
_DEADLINE: contextvars.ContextVar[_Deadline | None] = contextvars.ContextVar("tether_egress_deadline", default=None)


@contextlib.contextmanager
def deadline(seconds: float) -> Iterator[_Deadline]:
    """Every exchange sent inside the block (any egress client or transport) ends within ``seconds`` from now.

    For callers whose one answer takes several exchanges (a refresh retried after a 503): the block's bound
    is shared by all of them, while each exchange keeps its own bound too; the earlier of the two wins. The block
    gets the bound in force (``remaining()``: seconds left), so it need not track the time itself.
    """
    if not seconds > 0:
        raise ValueError("seconds must be positive")
    bound = _within_running(_Deadline.start(seconds))
    token = _DEADLINE.set(bound)
    try:
        yield bound
    finally:
        _DEADLINE.reset(token)


def _bound(request: httpx.Request, default: float) -> float:
    """The total bound of ``request``: the largest of its httpx timeouts, or ``default`` when none is set."""
    phases = request.extensions.get("timeout")
    values = [float(v) for v in phases.values() if v is not None] if isinstance(phases, dict) else []
    return max(values) if values else default


def _deadline_for(request: httpx.Request, default: float) -> _Deadline:
    """The deadline ``request`` is sent under: its own bound, within any deadline already running."""
    return _within_running(_Deadline.start(_bound(request, default)))


def _within_running(own: _Deadline) -> _Deadline:
    """The earlier of ``own`` and the running deadline: a nested exchange or block never outlives its caller."""
    outer = _DEADLINE.get()
    return outer if outer is not None and outer.at <= own.at else own


class ResponseTooLarge(TetherError):
    """A response body went past its size bound; reading stopped there."""

    code = "response_too_large"
    status = 502

    def __init__(self, limit: int) -> None:
        self.limit = limit
        super().__init__(f"the response body exceeds the {limit} byte limit")


def loopback_allowed(explicit: bool | None = None) -> bool:
    """An explicit choice wins; otherwise only ``TETHER_ALLOW_LOOPBACK_PROVIDERS=1`` allows loopback."""
    if explicit is not None:
        return explicit
    return Settings().allow_loopback_providers


@dataclass(frozen=True)
class OwnOrigin:
    """Tether's own origin (scheme, host, port), admitted for request paths under ``prefixes`` only."""

    scheme: str
    host: str
    port: int
    prefixes: tuple[str, ...]

    def judge(self, url: httpx.URL) -> bool | None:
        """True: admitted; False: this origin outside the prefixes (refused); None: another origin."""
        if (url.scheme, url.host, url.port or _DEFAULT_PORTS.get(url.scheme)) != (self.scheme, self.host, self.port):
            return None
        raw = url.raw_path.split(b"?", 1)[0].lower()
        if b"%2f" in raw or b"%5c" in raw or b"\\" in raw:
            return False  # an encoded slash: a server may read the path as another one than we checked
        path = url.path
        if any(segment in (".", "..") for segment in path.split("/")):
            return False
        return any(path.startswith(prefix) for prefix in self.prefixes)


def own_origin(settings: Settings, own_paths: Iterable[str] = ()) -> OwnOrigin | None:
    """The own-origin rule while the sandbox is on: ``public_url``'s origin, for its ``/sandbox/`` and ``own_paths``
    (paths relative to ``public_url``, each ending in ``/``); None while the sandbox is off."""
    if not settings.sandbox_enabled():
        return None
    url = httpx.URL(settings.public_url)
    base = url.path.rstrip("/")
    prefixes = tuple(base + p for p in (SANDBOX_PATH, *own_paths))
    if not all(p.startswith("/") and p.endswith("/") for p in prefixes):
        raise ValueError("own_paths must start and end with '/'")
    port = url.port or _DEFAULT_PORTS.get(url.scheme, 0)
    return OwnOrigin(url.scheme, url.host, port, prefixes)


def _policy(
    allow_loopback: bool | None, resolver: Resolver | None, max_response_bytes: int, own_paths: Iterable[str]
) -> _Policy:
    settings = Settings()
    loopback = settings.allow_loopback_providers if allow_loopback is None else allow_loopback
    return _Policy(loopback, resolver or system_resolver, max_response_bytes, own=own_origin(settings, own_paths))


def system_resolver(host: str) -> list[str]:
    """Every address the system resolver gives for ``host``, in its order, without duplicates."""
    addresses: list[str] = []
    for *_, sockaddr in socket.getaddrinfo(host, None, type=socket.SOCK_STREAM):
        ip = str(sockaddr[0])
        if ip not in addresses:
            addresses.append(ip)
    return addresses


def _refusal(ip: IPAddress, allow_loopback: bool) -> str | None:
    """Why ``ip`` must not be contacted, or None when it may be."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return _refusal(ip.ipv4_mapped, allow_loopback)
        embedded = ip.sixtofour or (ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF) if ip in _NAT64 else None)
        if embedded is not None:
            # Translated addresses reach the embedded IPv4 host through a gateway: never loopback.
            if embedded.is_global and not embedded.is_multicast:
                return None
            return "a non-public address behind an IPv6 translation prefix"
    if ip.is_loopback:
        return None if allow_loopback else "a loopback address"
    for reason, hit in (
        ("an unspecified address", ip.is_unspecified),
        ("a multicast address", ip.is_multicast),
        ("a link-local address", ip.is_link_local),
        ("a private address", ip.is_private),
        ("a reserved address", ip.is_reserved),
        ("a non-public address", not ip.is_global),
    ):
        if hit:
            return reason
    return None


def check_address(host: str, address: str, *, allow_loopback: bool) -> str:
    """Validate one resolved address of ``host``; returns the IP literal to connect to.

    Raises EgressRefused. IPv4-mapped IPv6 addresses come back as plain IPv4 so the socket matches the check.
    """
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        raise EgressRefused(f"refused {host}: the resolver gave a non-IP value") from None
    reason = _refusal(ip, allow_loopback)
    if reason is not None:
        raise EgressRefused(f"refused {host}: it resolves to {reason} ({ip.compressed})")
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return address


def _ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def numeric_host(name: str) -> bool:
    """Whether a host name ends in a number (WHATWG URL): a URL parser reads it as an IPv4 address.

    ``2130706433``, ``0x7f.0.0.1``, ``0177.0.0.1`` and ``127.1`` all mean 127.0.0.1 to a browser or to
    ``inet_aton``; only a plain dotted-quad is read the same way everywhere.
    """
    last = name.rstrip(".").rsplit(".", 1)[-1].lower()
    if last.isascii() and last.isdigit():
        return True
    return last.startswith("0x") and all(c in _HEX_DIGITS for c in last[2:])


def _parsed(url: str | httpx.URL) -> httpx.URL:
    """``url`` parsed as httpx will send it; a URL or host httpx or IDNA cannot read is refused, not raised."""
    try:
        parsed = httpx.URL(url)
        parsed.host  # noqa: B018 - decodes an IDNA A-label, which raises on a malformed one (xn--zz)
    except (httpx.InvalidURL, idna.IDNAError):
        raise _unparsable() from None
    return parsed


def _unparsable() -> EgressRefused:
    return EgressRefused("refused: the URL or its host name cannot be parsed")


@dataclass(frozen=True)
class _Policy:
    """What one client allows; shared by the async and sync code paths."""

    allow_loopback: bool
    resolver: Resolver
    max_response_bytes: int
    #: The total bound of an exchange whose request carries no timeout.
    deadline: float = DEFAULT_TIMEOUT
    #: Tether's own origin, admitted for some paths while the sandbox is on (module docstring).
    own: OwnOrigin | None = None

    def check_request(self, request: httpx.Request) -> tuple[bool, bool]:
        """Scheme and host check for one request (every redirect hop): (plain http, admitted as our own origin)."""
        url = _parsed(request.url)
        verdict = self.own.judge(url) if self.own is not None else None
        if verdict is True:
            return False, True
        if verdict is False:
            raise EgressRefused(f"refused {url.scheme}://{url.host}: this path of Tether's own origin is not admitted")
        if url.scheme == "https":
            return False, False
        if url.scheme == "http" and self.allow_loopback:
            return True, False
        raise EgressRefused(f"refused {url.scheme}://{url.host}: only https is allowed")

    def literal_or_name(self, host: str) -> tuple[str, bool]:
        """Normalise ``host``; says whether it is an IP literal. Refuses loopback names before any lookup."""
        host = host.strip("[]")
        if _ip_literal(host):
            return host, True
        name = host.rstrip(".").lower()
        if _ip_literal(name):
            return name, True
        if numeric_host(name):
            raise EgressRefused(f"refused {name}: a numeric host must be a dotted-quad IPv4 address")
        if (name == "localhost" or name.endswith(".localhost")) and not (self.allow_loopback or _OWN.get()):
            raise EgressRefused(f"refused {name}: it is a loopback name")
        return name, False

    def validate(self, host: str, addresses: Iterable[str]) -> list[str]:
        """Every address must pass; returns the IP literals to try, in order."""
        if _OWN.get():
            return _own_addresses(host, addresses)
        targets = [check_address(host, a, allow_loopback=self.allow_loopback) for a in addresses]
        if not targets:
            raise httpcore.ConnectError(f"could not resolve {host}")
        if _PLAINTEXT.get() and not all(ipaddress.ip_address(t).is_loopback for t in targets):
            raise EgressRefused(f"refused http://{host}: plain http is only allowed to loopback")
        return targets

    def resolve(self, host: str) -> list[str]:
        try:
            return list(self.resolver(host))
        except OSError:
            raise httpcore.ConnectError(f"could not resolve {host}") from None


def _own_addresses(host: str, addresses: Iterable[str]) -> list[str]:
    """Tether's own origin may resolve to any address (loopback, a private network), but to IP addresses only."""
    targets = []
    for address in addresses:
        if not _ip_literal(address):
            raise EgressRefused(f"refused {host}: the resolver gave a non-IP value")
        targets.append(address)
    if not targets:
        raise httpcore.ConnectError(f"could not resolve {host}")
    return targets


@contextlib.contextmanager
def _checked(policy: _Policy, request: httpx.Request) -> Iterator[None]:
    """Check ``request`` and hold its verdict for the connection httpcore may open while sending it."""
    plaintext, own = policy.check_request(request)
    tokens = _PLAINTEXT.set(plaintext), _OWN.set(own)
    try:
        yield
    finally:
        _OWN.reset(tokens[1])
        _PLAINTEXT.reset(tokens[0])


class _AsyncGuardBackend(httpcore.AsyncNetworkBackend):
    """Resolve once, validate every address, connect to a validated IP (TLS keeps the hostname)."""

    def __init__(self, policy: _Policy) -> None:
        self._policy = policy
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        name, literal = self._policy.literal_or_name(host)
        if literal:
            addresses = [name]
        else:
            try:
                with anyio.fail_after(timeout):
                    addresses = await anyio.to_thread.run_sync(self._policy.resolve, name, abandon_on_cancel=True)
            except TimeoutError:
                raise httpcore.ConnectTimeout(f"resolving {name} timed out") from None
        error: Exception = httpcore.ConnectError(f"could not connect to {name}")
        for ip in self._policy.validate(name, addresses):
            try:
                return await self._inner.connect_tcp(
                    ip, port, timeout=timeout, local_address=local_address, socket_options=socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc
        raise error

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.AsyncNetworkStream:
        raise EgressRefused("refused: unix sockets are not allowed")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class _SyncGuardBackend(httpcore.NetworkBackend):
    """The sync twin of :class:`_AsyncGuardBackend` (the resolver call is not bounded by the timeout)."""

    def __init__(self, policy: _Policy) -> None:
        self._policy = policy
        self._inner = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        name, literal = self._policy.literal_or_name(host)
        addresses = [name] if literal else self._policy.resolve(name)
        error: Exception = httpcore.ConnectError(f"could not connect to {name}")
        for ip in self._policy.validate(name, addresses):
            try:
                with _DeadlineCap(timeout, httpcore.ConnectTimeout) as capped:
                    stream = self._inner.connect_tcp(
                        ip, port, timeout=capped, local_address=local_address, socket_options=socket_options
                    )
                return _DeadlineSyncStream(stream)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc
        raise error

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        raise EgressRefused("refused: unix sockets are not allowed")

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


class _DeadlineCap:
    """``with _DeadlineCap(timeout, Timeout) as capped``: ``timeout`` cut to the running deadline's time left.

    Raises :class:`DeadlineExceeded` when no time is left, or when the operation timed out (``Timeout``) on
    the cut bound, so a blocking socket call never outlives the exchange's deadline.
    """

    def __init__(self, timeout: float | None, timeout_error: type[Exception]) -> None:
        self._deadline = _DEADLINE.get()
        self._timeout_error = timeout_error
        self._cut = False
        self.timeout = timeout
        if self._deadline is not None:
            left = self._deadline.remaining()
            if left <= 0:
                raise self._deadline.exceeded()
            self._cut = left < (math.inf if timeout is None else timeout)
            self.timeout = min(left, math.inf if timeout is None else timeout)

    def __enter__(self) -> float | None:
        return self.timeout

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any) -> None:
        if self._deadline is not None and self._cut and isinstance(exc, self._timeout_error):
            raise self._deadline.exceeded() from None


class _DeadlineSyncStream(httpcore.NetworkStream):
    """A socket stream whose every read, write and TLS handshake ends by the running exchange's deadline."""

    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        with _DeadlineCap(timeout, httpcore.ReadTimeout) as capped:
            return self._inner.read(max_bytes, capped)

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        with _DeadlineCap(timeout, httpcore.WriteTimeout) as capped:
            self._inner.write(buffer, capped)

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        with _DeadlineCap(timeout, httpcore.ConnectTimeout) as capped:
            return _DeadlineSyncStream(self._inner.start_tls(ssl_context, server_hostname, capped))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _Meter:
    """Counts body bytes against the bound, decoding gzip/deflate first so the bound is on decoded bytes."""

    def __init__(self, limit: int, encoding: str, request: httpx.Request) -> None:
        self.limit = limit
        self.seen = 0
        self._request = request
        self._decoder = None if encoding in ("", "identity") else zlib.decompressobj(zlib.MAX_WBITS | 32)

    def feed(self, chunk: bytes) -> bytes:
        if self._decoder is None:
            return self._count(chunk)
        try:
            # At most one byte past the bound: enough to know it was crossed, never a bomb's worth.
            return self._count(self._decoder.decompress(chunk, self.limit - self.seen + 1))
        except zlib.error:
            raise httpx.DecodingError("could not decode the response body", request=self._request) from None

    def flush(self) -> bytes:
        return b"" if self._decoder is None else self._count(self._decoder.flush())

    def _count(self, data: bytes) -> bytes:
        self.seen += len(data)
        if self.seen > self.limit:
            raise ResponseTooLarge(self.limit)
        return data


class _BoundedAsyncStream(httpx.AsyncByteStream):
    def __init__(self, inner: httpx.AsyncByteStream, meter: _Meter, deadline: _Deadline) -> None:
        self._inner = inner
        self._meter = meter
        self._deadline = deadline

    async def __aiter__(self) -> AsyncIterator[bytes]:
        chunks = aiter(self._inner)
        while True:
            # One scope per read, never across a yield: the consumer's own awaits are not ours to cancel.
            with anyio.move_on_after(self._deadline.remaining()) as scope:
                try:
                    chunk = await anext(chunks)
                except StopAsyncIteration:
                    break
            if scope.cancelled_caught:
                await self._inner.aclose()
                raise self._deadline.exceeded()
            if data := self._meter.feed(chunk):
                yield data
        if tail := self._meter.flush():
            yield tail

    async def aclose(self) -> None:
        await self._inner.aclose()


class _BoundedSyncStream(httpx.SyncByteStream):
    def __init__(self, inner: httpx.SyncByteStream, meter: _Meter, deadline: _Deadline) -> None:
        self._inner = inner
        self._meter = meter
        self._deadline = deadline

    def __iter__(self) -> Iterator[bytes]:
        chunks = iter(self._inner)
        while True:
            # The socket reads under this next() are capped by the deadline (_DeadlineSyncStream); set only
            # around it, never across a yield, since a generator shares its consumer's context.
            token = _DEADLINE.set(self._deadline)
            try:
                chunk = next(chunks)
            except StopIteration:
                break
            finally:
                _DEADLINE.reset(token)
            if data := self._meter.feed(chunk):
                yield data
        if tail := self._meter.flush():
            yield tail

    def close(self) -> None:
        self._inner.close()


def _meter_for(request: httpx.Request, response: httpx.Response, limit: int) -> tuple[_Meter, list[Any]]:
    """Refuse what the headers already give away; returns the meter and the headers the caller will see."""
    encoding = response.headers.get("content-encoding", "").strip().lower()
    if encoding not in ("", "identity", "gzip", "x-gzip", "deflate"):
        raise httpx.DecodingError("unsupported content encoding", request=request)
    length = response.headers.get("content-length", "")
    declared = ascii_int(length.strip())  # ASCII only: int('²') raises; anything else is metered below anyway
    if request.method != "HEAD" and declared is not None and declared > limit:
        raise ResponseTooLarge(limit)
    headers = list(response.headers.raw)
    if encoding not in ("", "identity"):
        headers = [(k, v) for k, v in headers if k.lower() not in _STRIPPED_WHEN_DECODED]
    return _Meter(limit, encoding, request), headers


class _AsyncGuardTransport(httpx.AsyncHTTPTransport):
    def __init__(self, policy: _Policy, ssl_context: ssl.SSLContext, limits: httpx.Limits) -> None:
        super().__init__(verify=ssl_context, trust_env=False, limits=limits)
        self._policy = policy
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=_AsyncGuardBackend(policy),
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        deadline = _deadline_for(request, self._policy.deadline)
        try:
            with _checked(self._policy, request), anyio.move_on_after(deadline.remaining()) as scope:
                response = await super().handle_async_request(request)
        except EgressRefused:
            metrics.egress_refused()
            raise
        if scope.cancelled_caught:
            raise deadline.exceeded(request)
        stream = cast(httpx.AsyncByteStream, response.stream)
        try:
            meter, headers = _meter_for(request, response, self._policy.max_response_bytes)
        except Exception:
            await stream.aclose()
            raise
        return httpx.Response(
            response.status_code,
            headers=headers,
            stream=_BoundedAsyncStream(stream, meter, deadline),
            extensions=response.extensions,
        )


class _SyncGuardTransport(httpx.HTTPTransport):
    def __init__(self, policy: _Policy, ssl_context: ssl.SSLContext, limits: httpx.Limits) -> None:
        super().__init__(verify=ssl_context, trust_env=False, limits=limits)
        self._policy = policy
        self._pool = httpcore.ConnectionPool(
            ssl_context=ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=_SyncGuardBackend(policy),
        )

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        deadline = _deadline_for(request, self._policy.deadline)
        try:
            with _checked(self._policy, request):
                running = _DEADLINE.set(deadline)
                try:
                    response = super().handle_request(request)
                finally:
                    _DEADLINE.reset(running)
        except EgressRefused:
            metrics.egress_refused()
            raise
        stream = cast(httpx.SyncByteStream, response.stream)
        try:
            meter, headers = _meter_for(request, response, self._policy.max_response_bytes)
        except Exception:
            stream.close()
            raise
        return httpx.Response(
            response.status_code,
            headers=headers,
            stream=_BoundedSyncStream(stream, meter, deadline),
            extensions=response.extensions,
        )


def _call_span(request: httpx.Request) -> AbstractContextManager[Span]:
    """The client span of one provider call, named ``METHOD host``. The method and host only: a path or query
    value may be an account ID or a token (issue 23)."""
    attributes = {"http.request.method": request.method, "server.address": request.url.host}
    return tracing.span(f"{request.method} {request.url.host}", attributes, kind=SpanKind.CLIENT)


def _answered(span: Span, response: httpx.Response) -> None:
    """The answer's status on the call's span; an error status marks it failed, a ``Retry-After`` says the
    provider asked for a later attempt (the retry the executor or the kit will make)."""
    span.set_attribute("http.response.status_code", response.status_code)
    if response.status_code >= 400:
        tracing.fail(span, str(response.status_code))
    if response.status_code in (429, 503) and "retry-after" in response.headers:
        span.set_attribute("tether.retry_after", True)


class _EgressAsyncClient(httpx.AsyncClient):
    """What only the client sees: one deadline across a whole ``send`` (every redirect hop, every request of
    an auth flow) and request URLs httpx cannot parse (refused rather than ``httpx.InvalidURL``)."""

    def __init__(self, *, deadline: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._deadline = deadline

    def build_request(self, method: str, url: Any, **kwargs: Any) -> httpx.Request:
        return super().build_request(method, _parsed(url) if isinstance(url, str) else url, **kwargs)

    async def send(self, request: httpx.Request, **kwargs: Any) -> httpx.Response:
        if not tracing.enabled():
            return await self._send(request, **kwargs)
        with _call_span(request) as span:
            response = await self._send(request, **kwargs)
            _answered(span, response)
            return response

    async def _send(self, request: httpx.Request, **kwargs: Any) -> httpx.Response:
        await governor_scope.admit()  # inside a run: the provider app's shared budget (engine.governor)
        token = _DEADLINE.set(_deadline_for(request, self._deadline))
        try:
            response = await super().send(request, **kwargs)
            await governor_scope.observe(response)
            progress.note()  # inside a run: a provider answer is progress (its stall watchdog, issue 23)
            return response
        except httpx.TooManyRedirects as exc:
            if isinstance(exc, TooManyRedirects):
                raise
            raise TooManyRedirects(self.max_redirects) from None
        except idna.IDNAError:
            raise _unparsable() from None  # a redirect to a malformed A-label (httpx decodes it to follow it)
        finally:
            _DEADLINE.reset(token)


class _EgressSyncClient(httpx.Client):
    """The sync twin of :class:`_EgressAsyncClient`."""

    def __init__(self, *, deadline: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._deadline = deadline

    def build_request(self, method: str, url: Any, **kwargs: Any) -> httpx.Request:
        return super().build_request(method, _parsed(url) if isinstance(url, str) else url, **kwargs)

    def send(self, request: httpx.Request, **kwargs: Any) -> httpx.Response:
        if not tracing.enabled():
            return self._send(request, **kwargs)
        # The same client span as the async client's: sync callers (boto3 through ``aws``, CLI set-up checks) are
        # provider calls too, and a trace that skipped them would hide where a run spent its time.
        with _call_span(request) as span:
            response = self._send(request, **kwargs)
            _answered(span, response)
            return response

    def _send(self, request: httpx.Request, **kwargs: Any) -> httpx.Response:
        governor_scope.admit_sync()
        token = _DEADLINE.set(_deadline_for(request, self._deadline))
        try:
            response = super().send(request, **kwargs)
            governor_scope.observe_sync(response)
            progress.note()
            return response
        except httpx.TooManyRedirects as exc:
            if isinstance(exc, TooManyRedirects):
                raise
            raise TooManyRedirects(self.max_redirects) from None
        except idna.IDNAError:
            raise _unparsable() from None
        finally:
            _DEADLINE.reset(token)


def _client_kwargs(
    *,
    base_url: str,
    headers: Mapping[str, str] | None,
    timeout: float,
    max_response_bytes: int,
    allow_loopback: bool | None,
    resolver: Resolver | None,
    ssl_context: ssl.SSLContext | None,
    own_paths: tuple[str, ...],
) -> tuple[_Policy, ssl.SSLContext, dict[str, Any]]:
    if max_response_bytes < 1:
        raise ValueError("max_response_bytes must be positive")
    if not timeout > 0:
        raise ValueError("timeout must be positive: every exchange has a total deadline")
    policy = replace(_policy(allow_loopback, resolver, max_response_bytes, own_paths), deadline=timeout)
    if base_url:
        # Fail at construction on a misconfigured base URL rather than on its first request.
        policy.check_request(httpx.Request("GET", _parsed(base_url)))
    merged = httpx.Headers({"Accept-Encoding": "gzip, deflate"})
    merged.update(headers or {})
    context = ssl_context or ssl.create_default_context(cafile=certifi.where())
    kwargs = {"base_url": base_url, "headers": merged, "timeout": httpx.Timeout(timeout), "trust_env": False}
    return policy, context, kwargs


def egress_client(
    *,
    base_url: str = "",
    headers: Mapping[str, str] | None = None,
    auth: httpx.Auth | tuple[str, str] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    allow_loopback: bool | None = None,
    resolver: Resolver | None = None,
    follow_redirects: bool = True,
    max_redirects: int = DEFAULT_MAX_REDIRECTS,
    ssl_context: ssl.SSLContext | None = None,
    limits: httpx.Limits | None = None,
    own_paths: tuple[str, ...] = (),
) -> httpx.AsyncClient:
    """An AsyncClient whose every request and redirect hop passes the egress guard (see module docstring).

    ``timeout`` (seconds) bounds each exchange as a whole and each phase of it; a call's own ``timeout=``
    replaces it for that call. ``resolver`` maps a hostname to IP strings (default: the system resolver);
    ``ssl_context`` replaces the certifi trust store (a private CA, tests). Authorization headers are dropped
    on cross-origin redirects. ``own_paths``: paths of Tether's own origin admitted besides the sandbox's, while
    the sandbox is on (its webhook sender's ``/v1/webhooks/``; nothing else needs one).
    """
    policy, context, kwargs = _client_kwargs(
        base_url=base_url,
        headers=headers,
        timeout=timeout,
        max_response_bytes=max_response_bytes,
        allow_loopback=allow_loopback,
        resolver=resolver,
        ssl_context=ssl_context,
        own_paths=own_paths,
    )
    transport = _AsyncGuardTransport(policy, context, limits or httpx.Limits())
    return _EgressAsyncClient(
        deadline=timeout,
        auth=auth,
        follow_redirects=follow_redirects,
        max_redirects=max_redirects,
        transport=transport,
        **kwargs,
    )


def egress_sync_client(
    *,
    base_url: str = "",
    headers: Mapping[str, str] | None = None,
    auth: httpx.Auth | tuple[str, str] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    allow_loopback: bool | None = None,
    resolver: Resolver | None = None,
    follow_redirects: bool = True,
    max_redirects: int = DEFAULT_MAX_REDIRECTS,
    ssl_context: ssl.SSLContext | None = None,
    limits: httpx.Limits | None = None,
    own_paths: tuple[str, ...] = (),
) -> httpx.Client:
    """The sync twin of :func:`egress_client`, with the same guard."""
    policy, context, kwargs = _client_kwargs(
        base_url=base_url,
        headers=headers,
        timeout=timeout,
        max_response_bytes=max_response_bytes,
        allow_loopback=allow_loopback,
        resolver=resolver,
        ssl_context=ssl_context,
        own_paths=own_paths,
    )
    transport = _SyncGuardTransport(policy, context, limits or httpx.Limits())
    return _EgressSyncClient(
        deadline=timeout,
        auth=auth,
        follow_redirects=follow_redirects,
        max_redirects=max_redirects,
        transport=transport,
        **kwargs,
    )


def parse_json_bounded(data: bytes | bytearray | str, *, limit: int = DEFAULT_MAX_RESPONSE_BYTES) -> Any:
    """Parse JSON only when it fits ``limit`` bytes. Invalid JSON is a ProviderError without the body."""
    size = len(data.encode()) if isinstance(data, str) else len(data)
    if size > limit:
        raise ResponseTooLarge(limit)
    try:
        return json.loads(data)
    except (ValueError, RecursionError):
        raise ProviderError("the provider answered with a body that is not valid JSON") from None


async def read_json(response: httpx.Response, *, limit: int = DEFAULT_MAX_RESPONSE_BYTES) -> Any:
    """Read (if still streaming, stopping past ``limit``) and parse a response body as JSON.

    A streamed response is consumed and closed here; its ``content`` is not kept.
    """
    try:
        body = response.content
    except httpx.ResponseNotRead:
        chunks: list[bytes] = []
        size = 0
        try:
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > limit:
                    raise ResponseTooLarge(limit) from None
                chunks.append(chunk)
        finally:
            await response.aclose()
        body = b"".join(chunks)
    return parse_json_bounded(body, limit=limit)


def read_json_sync(response: httpx.Response, *, limit: int = DEFAULT_MAX_RESPONSE_BYTES) -> Any:
    """The sync twin of :func:`read_json`."""
    try:
        body = response.content
    except httpx.ResponseNotRead:
        chunks: list[bytes] = []
        size = 0
        try:
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > limit:
                    raise ResponseTooLarge(limit) from None
                chunks.append(chunk)
        finally:
            response.close()
        body = b"".join(chunks)
    return parse_json_bounded(body, limit=limit)


def egress_transport(
    *,
    allow_loopback: bool | None = None,
    resolver: Resolver | None = None,
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    ssl_context: ssl.SSLContext | None = None,
    limits: httpx.Limits | None = None,
) -> httpx.AsyncBaseTransport:
    """The guarded async transport alone, for clients that must be their own ``httpx.AsyncClient`` subclass.

    Why: authlib's ``AsyncOAuth2Client`` *is* an AsyncClient, so it cannot be built by :func:`egress_client`;
    it takes this transport instead and gets the same per-request and per-connection checks. The caller must
    also pass ``trust_env=False`` and ``Accept-Encoding: gzip, deflate`` (what :func:`egress_client` sets).
    The total deadline is then per request (each redirect hop its own): the request's timeout, else
    ``DEFAULT_TIMEOUT``.
    """
    if max_response_bytes < 1:
        raise ValueError("max_response_bytes must be positive")
    policy = _policy(allow_loopback, resolver, max_response_bytes, ())
    context = ssl_context or ssl.create_default_context(cafile=certifi.where())
    return _AsyncGuardTransport(policy, context, limits or httpx.Limits())
