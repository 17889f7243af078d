"""Declarative streams: paged, incremental REST listings declared as data and run by the kit.

``spec`` declares (request, records, pagination, stop, incremental, schema and mapping), ``paginators`` hold one
module per pagination kind beside their base class, ``guards`` stop the faults (repeated cursor, identical page,
short listing, page cap), ``checkpoint`` is a stream's resumable place in a run, ``runner`` is the loop and
``operation`` turns a spec into an ingest ``Operation`` and its ``Mapping``.
"""

from engine.kit.streams.guards import PaginationShort
from engine.kit.streams.operation import stream_mapping, stream_operation
from engine.kit.streams.runner import StreamRunner
from engine.kit.streams.spec import (
    CursorPagination,
    IncrementalSpec,
    LinkPagination,
    OffsetPagination,
    PageNumberPagination,
    RequestSpec,
    StopSpec,
    StreamSpec,
)

__all__ = [
    "CursorPagination",
    "IncrementalSpec",
    "LinkPagination",
    "OffsetPagination",
    "PageNumberPagination",
    "PaginationShort",
    "RequestSpec",
    "StopSpec",
    "StreamRunner",
    "StreamSpec",
    "stream_mapping",
    "stream_operation",
]
