"""customOauth2: OAuth 2.0 providers declared as data files, no Python per provider.

A provider file (``providers/notion.toml``) holds seed 000's ``customOauth2`` fields; ``load_definition`` reads it
(``spec``), generates the engine parts from it (``generate``: config, slot, client, connection with account
``resolve`` and RFC 7009 revocation, health check) and returns a ``Definition``. A provider that also needs
operations (Todoist) is a normal definition package that calls ``generate(load_spec(...))`` for its OAuth part.

The shipped examples are exposed as attributes (``notion``), so an entry point can name
``definitions.custom_oauth2:notion``; ``load_directory`` loads every file of an operator's own directory.
"""

from __future__ import annotations

from pathlib import Path

from definitions.custom_oauth2.generate import DataOAuth2, Generated, generate
from definitions.custom_oauth2.spec import ProviderSpec, load_spec, parse_spec, read_path
from engine import Definition

PROVIDERS = Path(__file__).parent / "providers"


def load_definition(path: str | Path) -> Definition:
    """A data-only definition from one ``.toml`` / ``.json`` file."""
    return generate(load_spec(path)).definition()


def load_directory(directory: str | Path) -> list[Definition]:
    """Every provider file of a directory, in name order (files whose definition adds operations excluded by
    the caller: they are loaded by their own package)."""
    files = sorted(p for p in Path(directory).iterdir() if p.suffix in (".toml", ".json"))
    return [load_definition(p) for p in files]


#: Shipped example: Notion, account resolved from ``/v1/users/me``.
notion = load_definition(PROVIDERS / "notion.toml")

__all__ = [
    "PROVIDERS",
    "DataOAuth2",
    "Generated",
    "ProviderSpec",
    "generate",
    "load_definition",
    "load_directory",
    "load_spec",
    "notion",
    "parse_spec",
    "read_path",
]
