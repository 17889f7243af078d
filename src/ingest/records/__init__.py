"""Reading ingest records back out: the one query behind ``GET /v1/records/…`` and ``tether records``.

``list_records`` pages a schema's rows in ``id`` order (keyset pagination with an opaque cursor), scoped to a tenant
and, for a ``user`` principal, to the integrations of one owner; ``get_record`` reads one row in the same scope.
A record is every column its model declares except ``tenant_id`` (the scope), so ``integration_id``,
``definition_id``, the record ``id`` and the timestamps come with the mapped fields.
"""

from ingest.records.cursor import InvalidCursor, decode_cursor, encode_cursor
from ingest.records.query import (
    MAX_LIMIT,
    RecordFilters,
    RecordPage,
    Scope,
    get_record,
    list_records,
    model_spec,
)
from ingest.records.timestamps import parse_rfc3339

__all__ = [
    "MAX_LIMIT",
    "InvalidCursor",
    "RecordFilters",
    "RecordPage",
    "Scope",
    "decode_cursor",
    "encode_cursor",
    "get_record",
    "list_records",
    "model_spec",
    "parse_rfc3339",
]
