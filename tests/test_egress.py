"""The egress guard: every refusal happens before a packet leaves, and loopback works only when allowed.

This machine may only talk to 127.0.0.0/8 and ::1, so an autouse fixture wraps ``socket.connect``: a connect
to any other address is recorded and fails, and the test fails at teardown. Private addresses reach the guard
through an injected resolver or an IP literal; the real servers below listen on 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import datetime
import gzip
import ipaddress
import json
import socket
import ssl
import threading
from collections.abc import Callable, Coroutine, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from engine.custody import oauth
from engine.errors import EgressRefused, ProviderError
from engine.kit.egress import (
    DEFAULT_MAX_REDIRECTS,
    LOOPBACK_ENV,
    DeadlineExceeded,
    ResponseTooLarge,
    TooManyRedirects,
    check_address,
    deadline,
    egress_client,
    egress_sync_client,
    egress_transport,
    parse_json_bounded,
    read_json,
    read_json_sync,
)
from support.trickle import TRICKLE_BYTES, SlowAnswer, TrickleServer, http_head, trickle_server

# ----------------------------------------------------------------------------------------------------
# Network guard and helpers


def _is_loopback(address: Any) -> bool:
    if not isinstance(address, tuple):
        return False
    try:
        return ipaddress.ip_address(str(address[0]).split("%")[0]).is_loopback
    except ValueError:
        return False


@pytest.fixture(autouse=True)
def loopback_only_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Any]]:
    """Fail (and record) any connect to a non-loopback address; nothing may leave this machine."""
    attempts: list[Any] = []
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex

    def connect(self: socket.socket, address: Any) -> None:
        if not _is_loopback(address):
            attempts.append(address)
            raise ConnectionRefusedError("blocked by the test network guard")
        real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        if not _is_loopback(address):
            attempts.append(address)
            return 111
        return real_connect_ex(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    monkeypatch.delenv(LOOPBACK_ENV, raising=False)
    yield attempts
    assert attempts == [], f"a connection left loopback: {attempts}"


class RecordingResolver:
    """Maps names to canned addresses and records each lookup; unknown names fail like DNS would."""

    def __init__(self, table: dict[str, list[str]] | None = None) -> None:
        self.table = table or {}
        self.calls: list[str] = []

    def __call__(self, host: str) -> list[str]:
        self.calls.append(host)
        if host not in self.table:
            raise socket.gaierror(f"unknown test host {host}")
        return self.table[host]


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(coro)


async def async_get(url: str, **kwargs: Any) -> httpx.Response:
    async with egress_client(**kwargs) as client:
        return await client.get(url)


Route = Callable[[BaseHTTPRequestHandler], None]


def reply(
    status: int, body: bytes = b"", headers: dict[str, str] | None = None, length: bool = True
) -> Route:
    def handle(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(status)
        for key, value in (headers or {}).items():
            handler.send_header(key, value)
        if length:
            handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    return handle


class Server:
    """A tiny threaded HTTP(S) server on 127.0.0.1 with fixed routes; records (path, Host) of each request."""

    def __init__(self, routes: dict[str, Route], context: ssl.SSLContext | None = None) -> None:
        seen = self.seen = []

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                seen.append((self.path, self.headers.get("Host")))
                routes.get(self.path, reply(404))(self)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if context is not None:
            self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.01,), daemon=True)
        self.thread.start()

    def url(self, path: str, host: str = "127.0.0.1", scheme: str = "http") -> str:
        return f"{scheme}://{host}:{self.port}{path}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


JSON_OK = json.dumps({"ok": True}).encode()
BIG = b"x" * 4096
BOMB = gzip.compress(b"\0" * (1024 * 1024))


@pytest.fixture
def server() -> Iterator[Server]:
    srv = Server({
        "/ok": reply(200, JSON_OK, {"Content-Type": "application/json"}),
        "/hop": reply(302, headers={"Location": "/ok"}),
        "/to-private": reply(302, headers={"Location": "http://10.1.2.3/latest"}),
        "/to-internal": reply(302, headers={"Location": "https://internal.example/x"}),
        "/to-metadata": reply(302, headers={"Location": "https://169.254.169.254/latest/meta-data"}),
        "/to-numeric": reply(302, headers={"Location": "https://0x7f.0.0.1/admin"}),
        "/to-unparsable": reply(302, headers={"Location": "https://xn--zz.example/admin"}),
        "/big": reply(200, BIG),
        "/big-unsized": reply(200, BIG, length=False),
        "/bomb": reply(200, BOMB, {"Content-Encoding": "gzip"}),
        "/gzip-json": reply(200, gzip.compress(JSON_OK), {"Content-Encoding": "gzip"}),
        "/brotli": reply(200, b"??", {"Content-Encoding": "br"}),
    })
    yield srv
    srv.close()


# ----------------------------------------------------------------------------------------------------
# Refusals before any connection


def test_http_scheme_refused_without_lookup_and_without_the_query() -> None:
    resolver = RecordingResolver({"api.example.com": ["93.184.216.34"]})
    with pytest.raises(EgressRefused) as info:
        run(async_get("http://api.example.com/v1?token=s3cret", allow_loopback=False, resolver=resolver))
    assert resolver.calls == []
    assert "s3cret" not in info.value.message
    assert info.value.code == "egress_refused"


def test_http_base_url_refused_at_construction() -> None:
    with pytest.raises(EgressRefused):
        egress_client(base_url="http://api.example.com", allow_loopback=False)


def test_plain_http_to_a_public_address_refused_even_when_loopback_is_allowed() -> None:
    resolver = RecordingResolver({"api.example.com": ["93.184.216.34"]})
    with pytest.raises(EgressRefused, match="only allowed to loopback"):
        run(async_get("http://api.example.com/", allow_loopback=True, resolver=resolver))


@pytest.mark.parametrize("name", ["localhost", "LOCALHOST.", "admin.localhost"])
def test_loopback_names_refused_before_lookup(name: str) -> None:
    resolver = RecordingResolver({name.lower().rstrip("."): ["127.0.0.1"]})
    with pytest.raises(EgressRefused, match="loopback name"):
        run(async_get(f"https://{name}/", allow_loopback=False, resolver=resolver))
    assert resolver.calls == []


UNPARSABLE_HOSTS = ["0177.0.0.1", "0300.0250.0.1", "\u2460\u2461\u2466.0.0.1", "\u0661\u0662\u0667.0.0.1",
                    "\uff41\uff43\uff4d\uff45.example", "xn--zz.example"]
# What inet_aton (the system resolver) and browsers read as 127.0.0.1 or 10.0.0.1, but httpx passes on as a name.
NUMERIC_HOSTS = ["2130706433", "0x7f.0.0.1", "127.1", "017700000001", "0x0a.1", "10.1", "1.2.3.4.5"]


@pytest.mark.parametrize("host", UNPARSABLE_HOSTS)
def test_a_host_httpx_cannot_parse_is_refused_not_raised(host: str) -> None:
    """httpx raises InvalidURL (or idna's IDNAError) on these; callers saw a 500. They are refusals."""
    resolver = RecordingResolver()
    with pytest.raises(EgressRefused, match="cannot be parsed"):
        egress_client(base_url=f"https://{host}", resolver=resolver)
    with pytest.raises(EgressRefused, match="cannot be parsed"):
        run(async_get(f"https://{host}/v1", resolver=resolver))
    with egress_sync_client(resolver=resolver) as client, pytest.raises(EgressRefused, match="cannot be parsed"):
        client.get(f"https://{host}/v1")
    assert resolver.calls == []


@pytest.mark.parametrize("host", NUMERIC_HOSTS)
@pytest.mark.parametrize("allow_loopback", [False, True])
def test_numeric_hosts_that_are_not_dotted_quads_are_refused_before_lookup(host: str, allow_loopback: bool) -> None:
    # The resolver would give a public address: the refusal must not depend on what the lookup says.
    resolver = RecordingResolver({host: ["93.184.216.34"]})
    with pytest.raises(EgressRefused, match="dotted-quad"):
        run(async_get(f"https://{host}/", allow_loopback=allow_loopback, resolver=resolver))
    with (
        egress_sync_client(allow_loopback=allow_loopback, resolver=resolver) as client,
        pytest.raises(EgressRefused, match="dotted-quad"),
    ):
        client.get(f"https://{host}/")
    assert resolver.calls == []


def test_a_trailing_dot_ip_literal_is_checked_as_the_literal() -> None:
    resolver = RecordingResolver({"10.1.2.3": ["93.184.216.34"]})
    with pytest.raises(EgressRefused, match="private"):
        run(async_get("https://10.1.2.3./", resolver=resolver))
    assert resolver.calls == []


def test_name_resolving_to_loopback_refused() -> None:
    resolver = RecordingResolver({"sneaky.example": ["127.0.0.1"]})
    with pytest.raises(EgressRefused, match="loopback"):
        run(async_get("https://sneaky.example/", allow_loopback=False, resolver=resolver))
    assert resolver.calls == ["sneaky.example"]


def test_loopback_refused_when_env_is_not_set() -> None:
    resolver = RecordingResolver({"sneaky.example": ["127.0.0.1"]})
    with pytest.raises(EgressRefused):
        run(async_get("https://sneaky.example/", resolver=resolver))


LOOPBACK_FORMS = ["127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1"]
NEVER_ALLOWED = [
    "10.0.0.5",
    "172.16.3.4",
    "192.168.1.10",
    "169.254.169.254",
    "fe80::1",
    "fc00::1",
    "fd12:3456::1",
    "224.0.0.1",
    "ff02::1",
    "0.0.0.0",
    "::",
    "100.64.0.1",
    "240.0.0.1",
    "255.255.255.255",
    "::ffff:10.0.0.5",
    "::ffff:169.254.169.254",
    "2002:a00:5::1",
    "64:ff9b::a00:5",
]


def _literal_url(ip: str) -> str:
    return f"https://[{ip}]/x" if ":" in ip else f"https://{ip}/x"


@pytest.mark.parametrize("ip", LOOPBACK_FORMS + NEVER_ALLOWED)
def test_refused_addresses_as_literals(ip: str) -> None:
    with pytest.raises(EgressRefused, match="resolves to"):
        run(async_get(_literal_url(ip), allow_loopback=False, resolver=RecordingResolver()))


@pytest.mark.parametrize("ip", LOOPBACK_FORMS + NEVER_ALLOWED)
def test_refused_addresses_behind_a_name(ip: str) -> None:
    resolver = RecordingResolver({"provider.example": [ip]})
    with pytest.raises(EgressRefused, match="resolves to"):
        run(async_get("https://provider.example/x", allow_loopback=False, resolver=resolver))


@pytest.mark.parametrize("ip", NEVER_ALLOWED)
def test_allowing_loopback_does_not_open_other_ranges(ip: str) -> None:
    resolver = RecordingResolver({"provider.example": [ip]})
    with pytest.raises(EgressRefused):
        run(async_get("https://provider.example/x", allow_loopback=True, resolver=resolver))


def test_every_resolved_address_is_checked() -> None:
    resolver = RecordingResolver({"mixed.example": ["93.184.216.34", "10.0.0.5"]})
    with pytest.raises(EgressRefused, match=r"10\.0\.0\.5"):
        run(async_get("https://mixed.example/", allow_loopback=False, resolver=resolver))


def test_unresolvable_name_is_a_connect_error() -> None:
    with pytest.raises(httpx.ConnectError):
        run(async_get("https://nowhere.example/", allow_loopback=False, resolver=RecordingResolver()))


def test_check_address_unwraps_mapped_ipv4_and_accepts_public() -> None:
    assert check_address("h", "::ffff:8.8.8.8", allow_loopback=False) == "8.8.8.8"
    assert check_address("h", "2606:4700::1111", allow_loopback=False) == "2606:4700::1111"
    with pytest.raises(EgressRefused):
        check_address("h", "not-an-ip", allow_loopback=False)


def test_sync_client_refuses_private_literal_and_name() -> None:
    resolver = RecordingResolver({"internal.example": ["192.168.0.7"]})
    with egress_sync_client(allow_loopback=False, resolver=resolver) as client:
        with pytest.raises(EgressRefused):
            client.get("https://169.254.169.254/latest/meta-data")
        with pytest.raises(EgressRefused):
            client.get("https://internal.example/")
        with pytest.raises(EgressRefused):
            client.get("http://internal.example/")


# ----------------------------------------------------------------------------------------------------
# Redirects: every hop is checked


@pytest.mark.parametrize("path", ["/to-private", "/to-internal", "/to-metadata", "/to-numeric", "/to-unparsable"])
def test_redirect_to_private_address_refused(server: Server, path: str) -> None:
    resolver = RecordingResolver({"internal.example": ["10.1.2.3"]})
    with pytest.raises(EgressRefused):
        run(async_get(server.url(path), allow_loopback=True, resolver=resolver))
    assert [p for p, _ in server.seen] == [path]


@pytest.mark.parametrize("path", ["/to-private", "/to-internal", "/to-numeric", "/to-unparsable"])
def test_sync_redirect_to_private_address_refused(server: Server, path: str) -> None:
    resolver = RecordingResolver({"internal.example": ["10.1.2.3"]})
    with egress_sync_client(allow_loopback=True, resolver=resolver) as client, pytest.raises(EgressRefused):
        client.get(server.url(path))


def test_redirect_within_loopback_is_followed(server: Server) -> None:
    response = run(async_get(server.url("/hop"), allow_loopback=True))
    assert response.status_code == 200
    assert [p for p, _ in server.seen] == ["/hop", "/ok"]


# ----------------------------------------------------------------------------------------------------
# Success against loopback when allowed


def test_loopback_allowed_explicitly(server: Server) -> None:
    resolver = RecordingResolver({"loop.test": ["127.0.0.1"]})

    async def go() -> Any:
        async with egress_client(allow_loopback=True, resolver=resolver) as client:
            response = await client.get(server.url("/ok", host="loop.test"))
            return response.status_code, await read_json(response)

    assert run(go()) == (200, {"ok": True})
    assert resolver.calls == ["loop.test"]
    assert server.seen == [("/ok", f"loop.test:{server.port}")]


def test_loopback_allowed_by_env(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(LOOPBACK_ENV, "1")
    assert run(async_get(server.url("/ok"))).json() == {"ok": True}


def test_sync_client_success(server: Server) -> None:
    with egress_sync_client(base_url=server.url(""), allow_loopback=True) as client:
        response = client.get("/ok")
        assert read_json_sync(response) == {"ok": True}


def test_gzip_is_decoded_within_the_bound(server: Server) -> None:
    response = run(async_get(server.url("/gzip-json"), allow_loopback=True))
    assert response.json() == {"ok": True}
    assert "content-encoding" not in response.headers


def test_unrequested_encoding_refused(server: Server) -> None:
    with pytest.raises(httpx.DecodingError):
        run(async_get(server.url("/brotli"), allow_loopback=True))


# ----------------------------------------------------------------------------------------------------
# TLS: the socket goes to the pinned IP, SNI and certificate checks use the hostname


def _self_signed(tmp_path: Path, name: str) -> tuple[Path, Path, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    pem = cert.public_bytes(serialization.Encoding.PEM)
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(pem)
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                          serialization.NoEncryption())
    )
    return cert_path, key_path, pem


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[Server, ssl.SSLContext, list[str | None]]]:
    cert_path, key_path, pem = _self_signed(tmp_path, "provider.test")
    sni: list[str | None] = []
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)
    context.sni_callback = lambda _sock, name, _ctx: sni.append(name)  # type: ignore[assignment]
    srv = Server({"/ok": reply(200, JSON_OK)}, context)
    yield srv, ssl.create_default_context(cadata=pem.decode()), sni
    srv.close()


def test_tls_pins_ip_and_keeps_sni_and_host(
    tls_server: tuple[Server, ssl.SSLContext, list[str | None]],
) -> None:
    srv, client_context, sni = tls_server
    resolver = RecordingResolver({"provider.test": ["127.0.0.1"]})
    url = srv.url("/ok", host="provider.test", scheme="https")
    response = run(async_get(url, allow_loopback=True, resolver=resolver, ssl_context=client_context))
    assert response.json() == {"ok": True}
    assert sni == ["provider.test"]
    assert srv.seen == [("/ok", f"provider.test:{srv.port}")]


def test_tls_certificate_is_checked_against_the_hostname(
    tls_server: tuple[Server, ssl.SSLContext, list[str | None]],
) -> None:
    srv, client_context, _ = tls_server
    resolver = RecordingResolver({"other.test": ["127.0.0.1"]})
    url = srv.url("/ok", host="other.test", scheme="https")
    with pytest.raises(httpx.ConnectError):
        run(async_get(url, allow_loopback=True, resolver=resolver, ssl_context=client_context))
    assert srv.seen == []


# ----------------------------------------------------------------------------------------------------
# Response size bounds


@pytest.mark.parametrize("path", ["/big", "/big-unsized", "/bomb"])
def test_oversized_response_refused(server: Server, path: str) -> None:
    with pytest.raises(ResponseTooLarge) as info:
        run(async_get(server.url(path), allow_loopback=True, max_response_bytes=1024))
    assert info.value.code == "response_too_large"


def test_oversized_stream_stops_reading(server: Server) -> None:
    received: list[bytes] = []

    async def go() -> None:
        async with (
            egress_client(allow_loopback=True, max_response_bytes=1024) as client,
            client.stream("GET", server.url("/big-unsized")) as response,
        ):
            async for chunk in response.aiter_bytes():
                received.append(chunk)

    with pytest.raises(ResponseTooLarge):
        run(go())
    assert sum(map(len, received)) <= 1024


def test_sync_oversized_response_refused(server: Server) -> None:
    with egress_sync_client(allow_loopback=True, max_response_bytes=1024) as client:
        with pytest.raises(ResponseTooLarge):
            client.get(server.url("/big"))
        with pytest.raises(ResponseTooLarge):
            client.get(server.url("/bomb"))


def test_read_json_bounds_a_streamed_body(server: Server) -> None:
    async def go() -> Any:
        async with (
            egress_client(allow_loopback=True) as client,
            client.stream("GET", server.url("/ok")) as response,
        ):
            return await read_json(response, limit=4)

    with pytest.raises(ResponseTooLarge):
        run(go())


def test_parse_json_bounded() -> None:
    assert parse_json_bounded(b'{"a": 1}', limit=100) == {"a": 1}
    assert parse_json_bounded('["\u00e9"]', limit=100) == ["\u00e9"]
    with pytest.raises(ResponseTooLarge):
        parse_json_bounded(b'{"a": 1}', limit=7)
    with pytest.raises(ProviderError) as info:
        parse_json_bounded(b"<html>secret-body</html>", limit=100)
    assert "secret-body" not in info.value.message
    with pytest.raises(ProviderError):
        parse_json_bounded(b"[" * 100_000 + b"]" * 100_000, limit=10**6)


# ----------------------------------------------------------------------------------------------------
# Total deadline: httpx's timeouts bound each read, so a provider that sends a little at a time never trips
# them. The bound here is 0.5 s and the slow answers below take seconds; each test asserts the deadline
# error and that the server saw the client hang up before its answer was complete, never elapsed time.

BOUND = 0.5
SLOW_BODY = b'{"token": "' + b"x" * (TRICKLE_BYTES - 14) + b'"}'
SLOW_ANSWERS = {
    # The status line and headers themselves arrive a byte at a time.
    "/slow-head": SlowAnswer(b"", http_head("200 OK", 2) + b"{}" + b" " * TRICKLE_BYTES),
    # Headers at once, then the body a byte at a time.
    "/slow-body": SlowAnswer(http_head("200 OK", len(SLOW_BODY)), SLOW_BODY),
    # Two hops, each within the bound on its own (0.4 s, then 9 bytes trickled over 0.45 s): the bound is
    # for the whole exchange, so the second hop is cut off in the middle of its body.
    "/late-hop": SlowAnswer(http_head("302 Found", 0, "Location: /late", "Connection: close"), delay=0.4),
    "/late": SlowAnswer(http_head("200 OK", 9, "Connection: close"), b'"1234567"'),
}


@pytest.fixture
def trickle() -> Iterator[TrickleServer]:
    srv = TrickleServer(SLOW_ANSWERS)
    yield srv
    srv.close()


def _assert_deadline_error(error: BaseException, bound: float = BOUND) -> None:
    assert isinstance(error, DeadlineExceeded)
    assert error.message == f"the provider did not answer within {bound:g} s"
    assert error.code == "provider_unavailable" and error.status == 502 and error.retryable
    # Still a transport error: code that retries or reports httpx timeouts keeps working.
    assert isinstance(error, httpx.TimeoutException)


@pytest.mark.parametrize("path", ["/slow-head", "/slow-body"])
def test_a_trickling_answer_is_cut_off_at_the_total_deadline(trickle: TrickleServer, path: str) -> None:
    with pytest.raises(DeadlineExceeded) as caught:
        run(async_get(trickle.url(path), allow_loopback=True, timeout=BOUND))
    _assert_deadline_error(caught.value)
    assert trickle.hung_up[path].wait(10) and path not in trickle.finished


def test_the_deadline_covers_every_redirect_hop(trickle: TrickleServer) -> None:
    with pytest.raises(DeadlineExceeded) as caught:
        run(async_get(trickle.url("/late-hop"), allow_loopback=True, timeout=BOUND))
    _assert_deadline_error(caught.value)
    assert trickle.requested == ["/late-hop", "/late"]
    assert trickle.hung_up["/late"].wait(10) and "/late" not in trickle.finished


def test_a_streamed_body_read_is_under_the_deadline(trickle: TrickleServer) -> None:
    async def go() -> None:
        async with (
            egress_client(allow_loopback=True, timeout=BOUND) as client,
            client.stream("GET", trickle.url("/slow-body")) as response,
        ):
            async for _ in response.aiter_bytes():
                pass

    with pytest.raises(DeadlineExceeded) as caught:
        run(go())
    _assert_deadline_error(caught.value)
    assert trickle.hung_up["/slow-body"].wait(10) and "/slow-body" not in trickle.finished


def test_a_per_request_timeout_sets_that_requests_total(trickle: TrickleServer) -> None:
    async def go() -> None:
        async with egress_client(allow_loopback=True, timeout=60) as client:
            await client.get(trickle.url("/slow-body"), timeout=BOUND)

    with pytest.raises(DeadlineExceeded) as caught:
        run(go())
    _assert_deadline_error(caught.value)


def test_the_transport_alone_enforces_the_deadline(trickle: TrickleServer) -> None:
    """authlib's OAuth client is its own AsyncClient and only takes the transport: the bound is its timeout."""

    async def go() -> None:
        transport = egress_transport(allow_loopback=True)
        async with httpx.AsyncClient(transport=transport, timeout=BOUND, trust_env=False) as client:
            await client.get(trickle.url("/slow-head"))

    with pytest.raises(DeadlineExceeded) as caught:
        run(go())
    _assert_deadline_error(caught.value)
    assert trickle.hung_up["/slow-head"].wait(10)


@pytest.mark.parametrize("path", ["/slow-head", "/slow-body", "/late-hop"])
def test_sync_client_has_the_same_total_deadline(trickle: TrickleServer, path: str) -> None:
    with (
        egress_sync_client(allow_loopback=True, timeout=BOUND) as client,
        pytest.raises(DeadlineExceeded) as caught,
    ):
        client.get(trickle.url(path))
    _assert_deadline_error(caught.value)
    last = "/late" if path == "/late-hop" else path
    assert trickle.hung_up[last].wait(10) and last not in trickle.finished


def test_a_token_exchange_past_its_deadline_is_provider_unavailable(
    trickle: TrickleServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(oauth, "TOKEN_TIMEOUT", BOUND)
    client = oauth.OAuthClient("tether-client", "s3cret-client-value-123")
    with pytest.raises(oauth.ProviderUnavailable) as caught:
        run(oauth.client_credentials(trickle.url("/slow-body"), client, ["read"], loopback=True))
    error = caught.value
    assert error.message == f"the token endpoint did not answer within {BOUND:g} s"
    assert error.code == "provider_unavailable" and error.retryable
    assert trickle.hung_up["/slow-body"].wait(10)


def test_a_deadline_block_bounds_every_exchange_inside_it(trickle: TrickleServer) -> None:
    """A caller whose answer takes several exchanges (retries) bounds them together, below each client's own."""

    async def go() -> None:
        async with egress_client(allow_loopback=True, timeout=60) as client:
            with deadline(BOUND):
                await client.get(trickle.url("/slow-body"))

    with pytest.raises(DeadlineExceeded) as caught:
        run(go())
    _assert_deadline_error(caught.value)
    assert trickle.hung_up["/slow-body"].wait(10)


@pytest.mark.parametrize("sync", [False, True])
def test_a_redirect_loop_is_a_provider_error_not_a_crash(sync: bool) -> None:
    """httpx's TooManyRedirects is no transport error, so the handlers of provider trouble let it through as a 500."""
    loop = SlowAnswer(http_head("302 Found", 0, "Location: /loop", "Connection: close"))
    with trickle_server({"/loop": loop}) as server:
        with pytest.raises(TooManyRedirects) as caught:
            if sync:
                with egress_sync_client(allow_loopback=True, timeout=5) as client:
                    client.get(server.url("/loop"))
            else:
                run(async_get(server.url("/loop"), allow_loopback=True, timeout=5))
        assert len(server.requested) == DEFAULT_MAX_REDIRECTS + 1
    error = caught.value
    assert (error.code, error.status) == ("provider_error", 502)
    assert error.message == f"the provider redirected more than {DEFAULT_MAX_REDIRECTS} times"
    assert isinstance(error, httpx.TooManyRedirects)
