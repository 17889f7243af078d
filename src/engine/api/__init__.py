"""The HTTP surface (FastAPI), versioned under ``/v1``."""

from engine.api.app import create_app

__all__ = ["create_app"]
