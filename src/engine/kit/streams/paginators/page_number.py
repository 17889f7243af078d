"""Page-number pagination: ``page=1, 2, …`` until a short or empty page (or the provider's own end signal)."""

from __future__ import annotations

from engine.kit.streams.paginators.base import PageAnswer, Paginator, Position, StreamRequest
from engine.kit.streams.spec import PageNumberPagination


class PageNumberPaginator(Paginator):
    kind = "page"

    @property
    def spec(self) -> PageNumberPagination:
        assert isinstance(self.stream.pagination, PageNumberPagination)
        return self.stream.pagination

    def first(self) -> Position:
        return {"page": self.spec.start_page}

    def apply(self, position: Position, request: StreamRequest) -> StreamRequest:
        spec = self.spec
        if spec.size_param and spec.size:
            request = request.put(spec.location, spec.size_param, spec.size)
        return request.put(spec.location, spec.page_param, position["page"])

    def key(self, position: Position) -> str | None:
        return f"page {position['page']}"

    def following(self, position: Position, answer: PageAnswer) -> Position | None:
        received = len(answer.records)
        if not received:
            return None
        # Without a declared size the provider's page size is unknown: only the provider's signal or an empty page
        # can end the stream, so a short page does not.
        size = self.spec.size
        if size is not None and received < size and not self.provider_decides:
            return None
        return {"page": position["page"] + 1}
