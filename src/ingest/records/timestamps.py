"""Strict RFC 3339 timestamps for query parameters (``updated_since``).

``datetime.fromisoformat`` accepts far more than RFC 3339 (a bare date, no offset, week dates, ``+0530``): a filter
whose meaning depends on the server's guess is refused instead. An offset is required; fractions past microseconds
are truncated (Python's resolution).
"""

from __future__ import annotations

from datetime import UTC, datetime

import re2

from engine.errors import ValidationFailed

_RFC3339 = re2.compile(
    r"^([0-9]{4}-[0-9]{2}-[0-9]{2})[Tt ]([0-9]{2}:[0-9]{2}:[0-9]{2})(?:\.([0-9]{1,32}))?([Zz]|[+-][0-9]{2}:[0-9]{2})$"
)


def parse_rfc3339(text: str, name: str = "updated_since") -> datetime:
    """The instant ``text`` names, in UTC; ``ValidationFailed`` (422 ``invalid_input``) for anything else."""
    match = _RFC3339.match(text) if len(text) <= 64 and text.isascii() else None
    if match is None:
        raise ValidationFailed(f"{name} is not an RFC 3339 timestamp with an offset (2026-01-31T12:00:00Z)")
    date, time, fraction, offset = match.groups()
    micro = f".{(fraction or '')[:6].ljust(6, '0')}"
    try:
        value = datetime.fromisoformat(f"{date}T{time}{micro}{'+00:00' if offset in 'Zz' else offset}")
        return value.astimezone(UTC)
    except (ValueError, OverflowError):  # 2026-02-30, 24:00:00, +25:00, or an offset past year 1 or 9999
        raise ValidationFailed(f"{name} is not a valid date and time") from None
