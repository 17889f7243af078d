"""Loading definitions: the built-in catalog, the ``tether.definitions`` entry-point group, extra modules, and the
deployment's definition files (providers declared as data, and overrides of them).

An entry point names either a ``Definition`` object or a module exposing ``definition``, e.g.::

    [project.entry-points."tether.definitions"]
    acme = "acme_tether.definition:definition"
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from importlib.metadata import entry_points
from types import ModuleType
from typing import Any

from engine.authoring.definition import Definition
from engine.catalog.registry import Registry
from engine.errors import ConfigurationError, DefinitionError
from engine.settings import Settings

ENTRY_POINT_GROUP = "tether.definitions"
#: Definitions the engine itself provides: SCIM push, whose server is engine code (``engine.scim``).
ENGINE_DEFINITIONS: tuple[str, ...] = ("engine.scim",)


def builtin_definitions() -> list[Definition]:
    from definitions import CATALOG

    return module_definitions([*CATALOG, *ENGINE_DEFINITIONS])


def module_definitions(paths: Iterable[str]) -> list[Definition]:
    """``package.module`` (exposing ``definition``) or ``package.module:attribute`` (a data-declared one)."""
    found = []
    for path in paths:
        module_path, _, attribute = path.partition(":")
        module = importlib.import_module(module_path)
        found.append(_as_definition(getattr(module, attribute) if attribute else module, path))
    return found


def plugin_definitions() -> list[Definition]:
    return [_as_definition(ep.load(), f"entry point {ep.name}") for ep in entry_points(group=ENTRY_POINT_GROUP)]


def load_registry(settings: Settings) -> Registry:
    """Register every built-in, plug-in and extra-module definition; the first inconsistent one stops start-up.

    The host model packages are loaded first: a definition may map into a host's model."""
    from ingest.setup import configure

    configure(settings.extra_model_modules())
    registry = Registry(allow_loopback=settings.allow_loopback_providers)
    definitions = [
        *builtin_definitions(),
        *plugin_definitions(),
        *module_definitions(settings.extra_definition_modules()),
    ]
    definitions, files = file_definitions(settings, definitions)
    for definition in definitions:
        try:
            registry.register(definition)
        except DefinitionError as exc:
            if definition.id not in files:
                raise
            # A registry rule a file's definition breaks (``https_only``, say): say which file to fix.
            reason = f"{exc.reason} (declared in {files[definition.id]})"
            raise DefinitionError(exc.definition_id, exc.part, reason, rule=exc.rule) from None
    return registry


def file_definitions(settings: Settings, definitions: list[Definition]) -> tuple[list[Definition], dict[str, str]]:
    """``definitions`` with the deployment's definition files applied (``TETHER_DEFINITIONS_DIR``'s files, then the
    file entries of ``TETHER_DEFINITION_MODULES``: new providers added, overrides applied; see
    ``definitions.custom_oauth2.loader``), and the file each added or overridden definition comes from."""
    from definitions.custom_oauth2.loader import data_definitions, definition_files

    paths = [*definition_files(settings.definition_dirs()), *settings.definition_files()]
    if not paths:
        return definitions, {}
    loaded = data_definitions(paths, definitions)
    return loaded.definitions, {definition_id: str(path) for definition_id, path in loaded.files.items()}


def definition_file_schema() -> dict[str, Any]:
    """The JSON Schema of a definition file (served at ``/v1/schemas/definition.json``)."""
    from definitions.custom_oauth2.schema import json_schema

    return json_schema()


def _as_definition(obj: object, origin: str) -> Definition:
    """Accept a ``Definition`` or a module exposing one as ``definition``."""
    if isinstance(obj, ModuleType):
        obj = getattr(obj, "definition", None)
    if not isinstance(obj, Definition):
        raise ConfigurationError(f"{origin} does not provide a Definition")
    return obj
