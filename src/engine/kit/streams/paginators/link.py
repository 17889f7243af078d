"""Link header pagination (RFC 8288): follow ``rel="next"``, on the first request's origin only."""

from __future__ import annotations

import httpx

from engine.errors import ProviderError
from engine.kit.streams.paginators.base import PageAnswer, Paginator, Position, StreamRequest
from engine.kit.streams.spec import LinkPagination


class LinkPaginator(Paginator):
    kind = "link"

    @property
    def spec(self) -> LinkPagination:
        assert isinstance(self.stream.pagination, LinkPagination)
        return self.stream.pagination

    def first(self) -> Position:
        return {"url": None}

    def apply(self, position: Position, request: StreamRequest) -> StreamRequest:
        url = position.get("url")
        if url is None:
            spec = self.spec
            if spec.page_size_param and spec.page_size:
                request = request.put("query", spec.page_size_param, spec.page_size)
            return request
        # A next link carries its own query (position and page size): the first request's params are not added.
        return StreamRequest(request.method, url, {}, request.headers, request.body)

    def key(self, position: Position) -> str | None:
        url = position.get("url")
        return None if url is None else f"link {url}"

    def following(self, position: Position, answer: PageAnswer) -> Position | None:
        link = answer.response.links.get("next", {}).get("url")
        if not link:
            return None
        here = answer.response.url
        target = here.join(link)
        if (target.scheme, target.host, target.port) != (here.scheme, here.host, here.port):
            # A followed link carries the credential: one to another origin would hand it over.
            raise ProviderError(f"{self.stream.name}'s next link points to another origin")
        return {"url": str(httpx.URL(str(target)))}
