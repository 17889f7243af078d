"""Persistence of validated ingest records.

``stock`` holds the batched upsert every model starts from. ``scripts/codegen.py`` writes one starting point per
schema (``ingest/persistence/<schema>.py``, a ``persist(batch)`` function) once, and never overwrites it: edit it
when a model needs more than the stock upsert. ``generated/routing.py`` maps each schema to its ``persist``.
"""

from ingest.persistence.stock import PersistBatch, PersistRejection, Record, stock_upsert

__all__ = ["PersistBatch", "PersistRejection", "Record", "stock_upsert"]
