"""What the authoring and testing commands share: failing with a message, and finding one definition in the
deployment's registry (loaded as ``tether serve`` would load it)."""

from __future__ import annotations

from typing import NoReturn

import typer

from engine.authoring.definition import Definition
from engine.errors import ConfigurationError, DefinitionError
from engine.settings import Settings


def fail(message: str) -> NoReturn:
    """Print ``message`` on stderr and exit 1."""
    typer.echo(message, err=True)
    raise typer.Exit(1)


def registered_definition(definition_id: str) -> Definition:
    """The definition ``definition_id`` of this deployment's registry; exits 1 when the registry refuses to load
    or has no such definition."""
    from engine.catalog.loading import load_registry

    try:
        registry = load_registry(Settings())
    except (DefinitionError, ConfigurationError) as exc:
        fail(f"error: {exc.message}")
    if definition_id not in registry:
        fail(f"error: no definition {definition_id!r}")
    return registry.get(definition_id)
