"""Offset/limit pagination: the next offset is this one plus the records received."""

from __future__ import annotations

from engine.kit.streams.paginators.base import PageAnswer, Paginator, Position, StreamRequest
from engine.kit.streams.spec import OffsetPagination


class OffsetPaginator(Paginator):
    kind = "offset"

    @property
    def spec(self) -> OffsetPagination:
        assert isinstance(self.stream.pagination, OffsetPagination)
        return self.stream.pagination

    def first(self) -> Position:
        return {"offset": self.spec.start}

    def apply(self, position: Position, request: StreamRequest) -> StreamRequest:
        spec = self.spec
        request = request.put(spec.location, spec.offset_param, position["offset"])
        return request.put(spec.location, spec.limit_param, spec.limit)

    def key(self, position: Position) -> str | None:
        return f"offset {position['offset']}"

    def following(self, position: Position, answer: PageAnswer) -> Position | None:
        received = len(answer.records)
        if not received or (received < self.spec.limit and not self.provider_decides):
            return None
        return {"offset": position["offset"] + received}
