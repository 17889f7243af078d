"""Host model packages: ingest models a host app contributes without editing Tether's tree.

A host package is a module holding SQLModel classes with the ingest annotations (``ingest.annotations``). Tether finds
them through the entry-point group ``tether.models`` (each entry point names such a module) and the setting
``TETHER_MODEL_MODULES`` (comma-separated module paths). Start-up (``engine.catalog.loading.load_registry``) calls
``ingest.setup.configure``; the ingest catalog, the pipeline's types and routes, and the migrations read
``host_packages()``.

A module may also define:
  ``MODELS``       the models to use (else every class of the module with ``__ingest__`` and a table);
  ``BRANCH``       its Alembic branch label (else ``host_<last part of the module name>``);
  ``MIGRATIONS``   the directory of its Alembic revisions (else ``migrations/`` beside the module, when present);
  ``PERSISTENCE``  schema → persist function, for models with ``stock_persistence=False``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType
from typing import Any

from sqlmodel import SQLModel

from engine.errors import ConfigurationError

ENTRY_POINT_GROUP = "tether.models"

#: Columns the engine reads on every ingest table (upsert, records API, change feed).
REQUIRED_COLUMNS = ("id", "tenant_id", "integration_id", "definition_id", "updated_at")


@dataclass(frozen=True)
class HostPackage:
    """One host module's models and where its migrations live."""

    module: str
    models: tuple[type[SQLModel], ...]
    branch: str
    migrations: Path | None
    persistence: Mapping[str, Callable[..., Any]] = field(default_factory=dict)


_configured: tuple[HostPackage, ...] | None = None


def entry_point_modules() -> list[str]:
    """The module each ``tether.models`` entry point names (``module`` or ``module:attr``: the module part)."""
    return [ep.value.partition(":")[0].strip() for ep in entry_points(group=ENTRY_POINT_GROUP)]


def use(packages: tuple[HostPackage, ...] | None) -> tuple[HostPackage, ...] | None:
    """Make ``packages`` the configured ones; return the previous ones. ``ingest.setup.configure`` calls it (and
    resets what was built from the previous ones)."""
    global _configured
    previous, _configured = _configured, packages
    return previous


def load_all(setting_modules: Sequence[str]) -> tuple[HostPackage, ...]:
    """The entry points' packages, then ``setting_modules``' (each once)."""
    names = list(dict.fromkeys([*entry_point_modules(), *setting_modules]))
    return tuple(load_package(name) for name in names)


def host_packages() -> tuple[HostPackage, ...]:
    """The configured host packages (from ``Settings()`` on first use, when start-up configured none)."""
    global _configured
    if _configured is None:
        from engine.settings import Settings

        _configured = load_all(Settings().extra_model_modules())
    return _configured


def load_package(name: str) -> HostPackage:
    try:
        module = importlib.import_module(name)
    except ImportError as exc:
        raise ConfigurationError(f"host model module {name!r} cannot be imported: {exc}") from exc
    models = tuple(getattr(module, "MODELS", None) or _module_models(module))
    if not models:
        raise ConfigurationError(f"host model module {name!r} holds no ingest model (a table with __ingest__)")
    for model in models:
        _check_model(name, model)
    return HostPackage(
        module=name,
        models=models,
        branch=str(getattr(module, "BRANCH", None) or f"host_{name.rsplit('.', 1)[-1]}"),
        migrations=_migrations_dir(module),
        persistence=dict(getattr(module, "PERSISTENCE", None) or {}),
    )


def _module_models(module: ModuleType) -> list[type[SQLModel]]:
    return [
        obj
        for obj in vars(module).values()
        if isinstance(obj, type) and hasattr(obj, "__ingest__") and hasattr(obj, "__table__")
    ]


def _check_model(module: str, model: type[SQLModel]) -> None:
    table = getattr(model, "__table__", None)
    if table is None or not hasattr(model, "__ingest__"):
        raise ConfigurationError(f"{module}: {model.__qualname__} is not a table model with __ingest__")
    missing = [c for c in REQUIRED_COLUMNS if c not in table.columns]
    if missing:
        raise ConfigurationError(f"{module}: {model.__qualname__} lacks the column(s) {', '.join(missing)}")


def _migrations_dir(module: ModuleType) -> Path | None:
    explicit = getattr(module, "MIGRATIONS", None)
    if explicit is not None:
        return Path(explicit)
    origin = getattr(module, "__file__", None)
    if origin is None:
        return None
    candidate = Path(origin).parent / "migrations"
    return candidate if candidate.is_dir() else None
