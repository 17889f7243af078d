"""Start-up of the ingest surface: which host model packages (``ingest.hosts``) join the built-in models.

Kept apart from ``ingest.hosts`` so that module stays a leaf the catalog can import: this one resets and rebuilds what
is derived from the packages (the catalog, the upsert statements, the runtime-built types and routes).
"""

from __future__ import annotations

from collections.abc import Sequence

from engine.errors import ConfigurationError
from ingest import hosts
from ingest.catalog import catalog
from ingest.model_types import ingest_routes, ingest_types
from ingest.persistence.stock import upsert_statement


def configure(setting_modules: Sequence[str] | None = None) -> tuple[hosts.HostPackage, ...]:
    """Load the entry points' and ``setting_modules``' host packages (``None``: ``TETHER_MODEL_MODULES``) and make
    them the ones the catalog sees; a clash or a missing persistence raises ``ConfigurationError`` here, at start-up.
    Idempotent; a test may call it again with other modules."""
    if setting_modules is None:
        from engine.settings import Settings

        setting_modules = Settings().extra_model_modules()
    packages = hosts.load_all(setting_modules)
    previous = hosts.use(packages)
    if packages == previous:
        return packages
    _reset()
    try:
        catalog()
        ingest_routes()
    except ConfigurationError:
        # Start-up fails; a process that carries on (a test, a REPL) keeps the packages it had.
        hosts.use(previous)
        _reset()
        raise
    return packages


def _reset() -> None:
    catalog.cache_clear()
    upsert_statement.cache_clear()
    ingest_types.cache_clear()
    ingest_routes.cache_clear()
