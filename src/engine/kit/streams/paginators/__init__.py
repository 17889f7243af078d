"""Paginators, one per pagination kind beside their base class; ``paginator_for`` picks a stream's."""

from __future__ import annotations

from engine.kit.streams.paginators.base import PageAnswer, Paginator, Position, StreamRequest
from engine.kit.streams.paginators.cursor import CursorPaginator
from engine.kit.streams.paginators.link import LinkPaginator
from engine.kit.streams.paginators.offset import OffsetPaginator
from engine.kit.streams.paginators.page_number import PageNumberPaginator
from engine.kit.streams.spec import StreamSpec

PAGINATORS: dict[str, type[Paginator]] = {
    p.kind: p for p in (CursorPaginator, LinkPaginator, OffsetPaginator, PageNumberPaginator)
}


def paginator_for(stream: StreamSpec) -> Paginator:
    if stream.pagination is None:
        return Paginator(stream)
    return PAGINATORS[stream.pagination.kind](stream)


__all__ = [
    "PAGINATORS",
    "CursorPaginator",
    "LinkPaginator",
    "OffsetPaginator",
    "PageAnswer",
    "PageNumberPaginator",
    "Paginator",
    "Position",
    "StreamRequest",
    "paginator_for",
]
