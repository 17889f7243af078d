"""Persistence for ``file``.

A starting point written once by scripts/codegen.py and never overwritten: modify as needed.
"""

from __future__ import annotations

from ingest.persistence.stock import PersistBatch, PersistRejection, stock_upsert


def persist(batch: PersistBatch) -> list[PersistRejection]:
    """Batched upsert on (tenant_id, integration_id, external_id)."""
    return stock_upsert(batch)
