"""Unrouted deliveries: verified deliveries to an app-wide webhook that matched no integration.

They belong to no integration (so to no tenant), yet they say something an operator needs to know: an installation
nobody connected, a tenant that disconnected while the provider still sends. They are kept on their own list with
the reason, never processed, and counted per definition; ``GET /v1/unrouted-deliveries`` (server principals only)
shows them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import func
from sqlmodel import col, select

from engine.kit.inputs import storable
from engine.store.database import Database
from engine.store.tables import UnroutedDelivery

#: Headers never stored (as for routed deliveries).
_UNSTORED = frozenset({"authorization", "cookie", "proxy-authorization"})


def keep_unrouted(
    db: Database, definition_id: str, webhook: str, body: bytes, headers: Mapping[str, str], reason: str
) -> str:
    """Record one unrouted delivery; its row ID. Header values the database cannot hold (NUL, a lone surrogate)
    are escaped rather than refused: the delivery was verified and is kept as it came, readably."""
    stored = {
        k: (v if storable(v) else v.encode("unicode_escape").decode("ascii"))
        for k, v in headers.items()
        if k not in _UNSTORED
    }
    row = UnroutedDelivery(definition_id=definition_id, webhook=webhook, reason=reason, body=body, headers=stored)
    with db.session() as session:
        session.add(row)
    return row.id


@dataclass(frozen=True)
class UnroutedPage:
    rows: list[UnroutedDelivery]
    #: Every unrouted delivery kept, by definition.
    counts: dict[str, int]
    total: int


def list_unrouted(db: Database, *, definition_id: str | None = None, limit: int = 50) -> UnroutedPage:
    with db.session() as session:
        query = select(UnroutedDelivery)
        if definition_id is not None:
            query = query.where(UnroutedDelivery.definition_id == definition_id)
        rows = list(session.exec(query.order_by(col(UnroutedDelivery.received_at).desc()).limit(limit)))
        counts = {
            str(d): int(n)
            for d, n in session.exec(
                select(UnroutedDelivery.definition_id, func.count()).group_by(UnroutedDelivery.definition_id)
            )
        }
    return UnroutedPage(rows, counts, sum(counts.values()))
