"""Record and replay at the egress seam (``engine.kit.egress.tapped``).

:class:`ReplayTap` answers every request of every guarded client from a cassette: no socket is opened. A request
is matched on method, path and query (the host is not compared, so a cassette recorded against a stand-in on
127.0.0.1 replays for the provider's real origin), in order: the first interaction not yet played that matches.
A recorded query value that was scrubbed matches any value. A request nothing matches raises
:class:`CassetteMiss`, naming the method and path (never the query, which may hold a token).

:class:`RecordingTap` lets each request go out through the guard (``send``), reads the whole answer and keeps both;
``upstreams`` sends a provider's origin to a stand-in instead (``https://slack.com`` → ``http://127.0.0.1:8123``)
while the cassette keeps the provider's URL.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlsplit

import httpx

from engine.errors import TetherError
from engine.kit.egress import Tap
from engine.testing.cassettes import Interaction, Request, Response
from engine.testing.scrub import SCRUBBED

__all__ = ["CassetteMiss", "RecordingTap", "ReplayTap", "Sent"]


class CassetteMiss(TetherError):
    """A replayed definition sent a request its cassette does not hold (or more of them than it holds)."""

    code = "cassette_miss"
    status = 500


@dataclass(frozen=True)
class Sent:
    """One request a replayed definition sent, as it sent it (the suite checks these for secrets)."""

    method: str
    url: str
    headers: dict[str, str]
    content: bytes


def _query(url: str) -> list[tuple[str, str]]:
    return sorted(parse_qsl(urlsplit(url).query, keep_blank_values=True))


def _query_matches(recorded: list[tuple[str, str]], sent: list[tuple[str, str]]) -> bool:
    if len(recorded) != len(sent):
        return False
    left = sorted(recorded)
    right = sorted(sent)
    # A scrubbed value stands for whatever the replaying credential holds: compare names only.
    return all(a[0] == b[0] and (a[1] == b[1] or SCRUBBED in a[1]) for a, b in zip(left, right, strict=True))


def matches(recorded: Request, method: str, url: str) -> bool:
    """Method, path and query (order of query parameters aside)."""
    if recorded.method != method.upper():
        return False
    if (urlsplit(recorded.url).path or "/") != (urlsplit(url).path or "/"):
        return False
    return _query_matches(_query(recorded.url), _query(url))


def to_httpx(response: Response, request: httpx.Request) -> httpx.Response:
    # Content-Encoding and Content-Length describe the recorded bytes on the wire, not the decoded body we hold.
    headers = [
        (name, value)
        for name, values in response.raw_headers.items()
        if name.lower() not in ("content-encoding", "content-length", "transfer-encoding")
        for value in values
    ]
    return httpx.Response(response.status, headers=headers, content=response.content, request=request)


@dataclass
class ReplayTap(Tap):
    """Answers from ``interactions``. ``loop_paths``: the suite's repeated-cursor check, which answers every request
    to a path with that path's first recorded response (so a paginated list hands back the same cursor forever);
    ``limit`` bounds how many requests that mode answers before it refuses."""

    interactions: list[Interaction]
    loop: bool = False
    #: The answer to a request nothing matches (the 401 variant: a provider refusing the credential everywhere).
    fallback: Response | None = None
    #: Answers by path that take precedence over the cassette (the 401 variant's token endpoint).
    overrides: dict[str, Response] = field(default_factory=dict)
    limit: int = 200
    played: list[bool] = field(default_factory=list)
    sent: list[Sent] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.played = [False] * len(self.interactions)

    def unplayed(self) -> list[Interaction]:
        return [i for i, done in zip(self.interactions, self.played, strict=True) if not done]

    def answer(self, request: httpx.Request, content: bytes) -> httpx.Response:
        url = str(request.url)
        self.sent.append(Sent(request.method, url, dict(request.headers), content))
        override = self.overrides.get(request.url.path)
        if override is not None:
            return to_httpx(override, request)
        if self.loop:
            if len(self.sent) > self.limit:
                raise CassetteMiss(f"replay stopped after {self.limit} requests: the client kept paging")
            path = urlsplit(url).path or "/"
            for index, interaction in enumerate(self.interactions):
                if interaction.request.method == request.method and interaction.request.path == path:
                    self.played[index] = True
                    return to_httpx(interaction.response, request)
        else:
            for index, interaction in enumerate(self.interactions):
                if not self.played[index] and matches(interaction.request, request.method, url):
                    self.played[index] = True
                    return to_httpx(interaction.response, request)
        if self.fallback is not None:
            return to_httpx(self.fallback, request)
        played = sum(self.played)
        raise CassetteMiss(
            f"the cassette has no unplayed answer for {request.method} {request.url.path} "
            f"({played} of {len(self.interactions)} interactions played)"
        )

    async def exchange(
        self, request: httpx.Request, send: Callable[[httpx.Request], Awaitable[httpx.Response]]
    ) -> httpx.Response:
        return self.answer(request, await request.aread())

    def exchange_sync(self, request: httpx.Request, send: Callable[[httpx.Request], httpx.Response]) -> httpx.Response:
        return self.answer(request, request.read())


def _raw_headers(headers: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name, value in headers:
        out.setdefault(name, []).append(value)
    return out


@dataclass
class RecordingTap(Tap):
    """Sends each request through the guard and keeps the exchange. ``upstreams`` maps a provider origin
    (``https://api.github.com``) to the origin actually called (a stand-in on 127.0.0.1); the cassette keeps the
    provider's."""

    upstreams: Mapping[str, str] = field(default_factory=dict)
    interactions: list[Interaction] = field(default_factory=list)

    def _outgoing(self, request: httpx.Request) -> httpx.Request:
        url = str(request.url)
        for origin, target in self.upstreams.items():
            if url == origin or url.startswith(origin.rstrip("/") + "/"):
                moved = httpx.URL(target.rstrip("/") + url[len(origin.rstrip("/")) :])
                headers = httpx.Headers(request.headers)
                headers["Host"] = moved.netloc.decode("ascii")
                return httpx.Request(request.method, moved, headers=headers, content=request.content)
        return request

    def _keep(self, request: httpx.Request, content: bytes, response: httpx.Response, body: bytes) -> httpx.Response:
        self.interactions.append(
            Interaction(
                Request(request.method, str(request.url), _raw_headers(request.headers.multi_items()), content),
                Response(response.status_code, _raw_headers(response.headers.multi_items()), body),
            )
        )
        headers = [(k, v) for k, v in response.headers.multi_items() if k.lower() != "content-length"]
        return httpx.Response(response.status_code, headers=headers, content=body, request=request)

    async def exchange(
        self, request: httpx.Request, send: Callable[[httpx.Request], Awaitable[httpx.Response]]
    ) -> httpx.Response:
        content = await request.aread()
        response = await send(self._outgoing(request))
        try:
            body = await response.aread()
        finally:
            await response.aclose()
        return self._keep(request, content, response, body)

    def exchange_sync(self, request: httpx.Request, send: Callable[[httpx.Request], httpx.Response]) -> httpx.Response:
        content = request.read()
        response = send(self._outgoing(request))
        try:
            body = response.read()
        finally:
            response.close()
        return self._keep(request, content, response, body)
