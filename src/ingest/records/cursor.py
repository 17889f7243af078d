"""The records API's opaque cursor: base64url of ``r1:<schema>:<last id>``.

Not signed: a forged cursor can only move the start of a page within what the caller may already read (the scope is
applied to every page), so a signature would protect nothing. It is still checked strictly, so that garbage is a
422 ``invalid_cursor`` and never reaches the query, and it names its schema, so that one schema's cursor is refused
on another.
"""

from __future__ import annotations

import base64
import binascii

from engine.errors import TetherError
from engine.kit.inputs import ascii_int

_VERSION = "r1"
#: Largest id a cursor may carry: a signed 64-bit integer, what both databases' integer keys hold.
_MAX_ID = 2**63 - 1
_MAX_CURSOR = 200


class InvalidCursor(TetherError):
    code = "invalid_cursor"
    status = 422


def encode_cursor(schema: str, last_id: int) -> str:
    return base64.urlsafe_b64encode(f"{_VERSION}:{schema}:{last_id}".encode()).decode().rstrip("=")


def decode_cursor(schema: str, cursor: str) -> int:
    """The last id of the page the cursor follows; ``InvalidCursor`` for anything this module did not write."""
    refused = InvalidCursor("cursor is not one this API returned for this schema")
    if len(cursor) > _MAX_CURSOR or not cursor.isascii():
        raise refused
    try:
        raw = base64.b64decode(cursor + "=" * (-len(cursor) % 4), altchars=b"-_", validate=True).decode("ascii")
    except (binascii.Error, ValueError):  # UnicodeDecodeError is a ValueError
        raise refused from None
    version, _, rest = raw.partition(":")
    named, _, last = rest.rpartition(":")
    last_id = ascii_int(last, 19)
    if version != _VERSION or named != schema or last_id is None or last_id > _MAX_ID:
        raise refused
    return last_id
