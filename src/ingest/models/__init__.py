"""Internal models: the typed tables provider data lands in.

Each module holds one model. Add a model here and to ``MODELS`` so the ingest catalog sees it.
"""

from ingest.models.asset import Asset

MODELS = (Asset,)

__all__ = ["MODELS", "Asset"]
