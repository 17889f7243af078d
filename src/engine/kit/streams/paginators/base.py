"""What every paginator is: a position per page, how it shapes the request, and the next position from an answer.

A position is a small JSON object (``{"cursor": "…"}``, ``{"offset": 200}``, ``{"url": "…"}``) because it is
saved in the run's checkpoint after each page: a resumed attempt sends the request of the saved position. The
runner owns the loop and its guards (``engine.kit.streams.guards``); a paginator only reads and writes positions.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import httpx

if TYPE_CHECKING:
    from engine.kit.streams.spec import StreamSpec

Position = dict[str, Any]


@dataclass(frozen=True)
class StreamRequest:
    """One page's request before it is sent (URL without the query; ``params`` hold it)."""

    method: str
    url: str
    params: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    body: dict[str, Any] | None = None

    def put(self, location: Literal["query", "body"], name: str, value: Any) -> StreamRequest:
        """This request with ``name`` set to ``value`` in the query string or the JSON body."""
        if location == "body":
            return replace(self, body={**(self.body or {}), name: value})
        return replace(self, params={**self.params, name: str(value)})


@dataclass(frozen=True)
class PageAnswer:
    """One page as received: the checked response, its JSON body and the records selected from it."""

    response: httpx.Response
    body: Any
    records: list[Any]


class Paginator:
    """The single-request "paginator" (a stream without ``pagination``); subclasses page."""

    kind: ClassVar[str] = "single"

    def __init__(self, stream: StreamSpec) -> None:
        self.stream = stream

    @property
    def provider_decides(self) -> bool:
        """Whether the answer says itself when the listing ends (a has-more flag or a total): then a short page
        is not the end by itself (providers may return fewer records than asked while more remain)."""
        stop = self.stream.stop
        return stop.has_more_path is not None or stop.total_path is not None

    def first(self) -> Position:
        return {}

    def apply(self, position: Position, request: StreamRequest) -> StreamRequest:
        return request

    def key(self, position: Position) -> str | None:
        """How errors name the page asked for (``cursor abc``); ``None`` for a first page that has no position."""
        return None

    def following(self, position: Position, answer: PageAnswer) -> Position | None:
        """The next page's position, or ``None`` when this paginator sees no next page."""
        return None
