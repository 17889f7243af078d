"""customOauth2: OAuth 2.0 providers declared as data files, no Python per provider.

A provider file (``providers/notion.toml``) holds seed 000's ``customOauth2`` fields; ``load_definition`` reads it
(``spec``), generates the engine parts from it (``generate``: config, slot, client, connection with account
``resolve`` and RFC 7009 revocation, health check) and returns a ``Definition``. A provider that also needs
operations (Todoist) is a normal definition package that calls ``generate(load_spec(...))`` for its OAuth part.

The shipped examples are exposed as attributes (``notion``), so an entry point can name
``definitions.custom_oauth2:notion``. A deployment's own files (``TETHER_DEFINITIONS_DIR``) go through
``loader.data_definitions``, which also applies override files; ``schema`` is the format's JSON Schema. The format
is documented key by key in ``docs/data-definitions.md``.
"""

from __future__ import annotations

from pathlib import Path

from definitions.custom_oauth2.files import DefinitionFileError, Problem, load_spec, parse_spec, read_file
from definitions.custom_oauth2.generate import DataOAuth2, Generated, generate
from definitions.custom_oauth2.loader import data_definitions, definition_files
from definitions.custom_oauth2.schema import json_schema
from definitions.custom_oauth2.spec import OverrideSpec, ProviderSpec, read_path
from engine import Definition

PROVIDERS = Path(__file__).parent / "providers"


def load_definition(path: str | Path) -> Definition:
    """A data-only definition from one ``.toml`` / ``.json`` file."""
    return generate(load_spec(path)).definition()


def load_directory(directory: str | Path) -> list[Definition]:
    """Every provider file of a directory, in name order (files whose definition adds operations excluded by
    the caller: they are loaded by their own package)."""
    return [load_definition(p) for p in definition_files([directory])]


#: Shipped example: Notion, account resolved from ``/v1/users/me``.
notion = load_definition(PROVIDERS / "notion.toml")

__all__ = [
    "PROVIDERS",
    "DataOAuth2",
    "DefinitionFileError",
    "Generated",
    "OverrideSpec",
    "Problem",
    "ProviderSpec",
    "data_definitions",
    "definition_files",
    "generate",
    "json_schema",
    "load_definition",
    "load_directory",
    "load_spec",
    "notion",
    "parse_spec",
    "read_file",
    "read_path",
]
