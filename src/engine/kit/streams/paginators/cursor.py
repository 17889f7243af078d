"""Cursor (next-token) pagination: the answer's cursor goes back in the next request."""

from __future__ import annotations

from typing import Any

from engine.kit.streams import paths
from engine.kit.streams.paginators.base import PageAnswer, Paginator, Position, StreamRequest
from engine.kit.streams.spec import CursorPagination


class CursorPaginator(Paginator):
    kind = "cursor"

    @property
    def spec(self) -> CursorPagination:
        assert isinstance(self.stream.pagination, CursorPagination)
        return self.stream.pagination

    def first(self) -> Position:
        return {"cursor": None}

    def apply(self, position: Position, request: StreamRequest) -> StreamRequest:
        spec = self.spec
        if spec.page_size_param and spec.page_size:
            request = request.put(spec.location, spec.page_size_param, spec.page_size)
        if position.get("cursor") is not None:
            request = request.put(spec.location, spec.param, position["cursor"])
        return request

    def key(self, position: Position) -> str | None:
        cursor = position.get("cursor")
        return None if cursor is None else f"cursor {cursor}"

    def following(self, position: Position, answer: PageAnswer) -> Position | None:
        cursor: Any = paths.read(answer.body, self.spec.cursor_path)
        if cursor is None or cursor == "" or isinstance(cursor, dict | list | bool):
            return None
        return {"cursor": cursor}
