"""The opaque cursor of lists paged newest first by (timestamp, id): runs and event deliveries.

base64url of ``<ISO timestamp>|<id>``. Not signed: a forged cursor only moves the start of a page within what the
caller may already see (every page is scoped). It is parsed strictly, so anything this module did not write is a
422 ``invalid_cursor`` and never reaches a query (base64 carries any bytes: NUL would reach the database).
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime

from engine.errors import TetherError
from engine.kit.inputs import storable


class InvalidCursor(TetherError):
    code = "invalid_cursor"
    status = 422


def encode_cursor(at: datetime, row_id: str) -> str:
    stamp = at if at.tzinfo else at.replace(tzinfo=UTC)  # SQLite hands back naive UTC datetimes
    return base64.urlsafe_b64encode(f"{stamp.isoformat()}|{row_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """The (timestamp, id) of the last row of the page the cursor follows."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        stamp, row_id = raw.split("|", 1)
        at = datetime.fromisoformat(stamp)
    except (ValueError, UnicodeDecodeError):
        raise InvalidCursor("cursor is not one this API returned") from None
    if at.tzinfo is None or not storable(row_id):
        raise InvalidCursor("cursor is not one this API returned")
    return at, row_id
