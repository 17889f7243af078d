"""A deployment's own definition files: providers to add, and overrides of data-declared ones.

``data_definitions(paths, existing)`` is what start-up calls (``engine.catalog.loading``) with the files of
``TETHER_DEFINITIONS_DIR`` and the ``.toml`` / ``.json`` entries of ``TETHER_DEFINITION_MODULES``, after the
built-in, plug-in and module definitions: it answers that list with the files' providers added and the overrides
applied, or raises a ``DefinitionFileError`` pointing at the file and line.

An override is a file of its own (``override = "notion"`` plus any of ``mode``, ``onboarding``, ``access``,
``scopes``, ``upgradeScopes``), not a second file with the same ``id``: a file with a taken ``id`` is a mistake
worth stopping for (two teams picked the same name), whereas changing a shipped provider is a deliberate act that
should say so, and say only what it changes, so the shipped file's URLs and paths keep coming with upgrades.
Any definition whose connection is generated from data can be overridden, Python operations or not (Todoist,
Google Calendar): the generated connection is re-declared with the merged spec's auth, under the same class name,
so its stable ID and the operations' clients stay as they were.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from pydantic import ValidationError

from definitions.custom_oauth2.files import SUFFIXES, DataFile, DefinitionFileError, Problem, read_file
from definitions.custom_oauth2.generate import DataOAuth2, generate, oauth_auth
from definitions.custom_oauth2.spec import ONBOARDING, OverrideSpec, ProviderSpec
from engine import Connection, Definition


def definition_files(directories: Iterable[str | Path]) -> list[Path]:
    """The ``*.toml`` and ``*.json`` files of each folder (not recursive), folder by folder, in name order."""
    found: list[Path] = []
    for directory in directories:
        folder = Path(directory)
        if not folder.is_dir():
            raise DefinitionFileError(folder, [Problem(None, "", "is not a folder", "definitions_dir")])
        found.extend(sorted(p for p in folder.iterdir() if p.suffix in SUFFIXES and p.is_file()))
    return found


@dataclass(frozen=True)
class Loaded:
    """What the files made of the definitions, and which file each added or changed one comes from."""

    definitions: list[Definition]
    files: dict[str, Path]


def data_definitions(paths: Sequence[str | Path], existing: Sequence[Definition]) -> Loaded:
    """``existing`` with each provider file's definition added and each override file applied, in that order.

    Every provider file is added before any override is applied, so an override may change a provider that
    another file of the deployment declares. Two overrides of one definition are refused: which would win is
    not for file order to decide.
    """
    files = [read_file(os.fspath(p)) for p in paths]
    definitions = list(existing)
    origin = {d.id: "a definition loaded before the files" for d in definitions}
    for file in files:
        spec = file.spec
        if not isinstance(spec, ProviderSpec):
            continue
        if spec.id in origin:
            raise file.error(
                "id",
                f"{spec.id!r} is already the ID of {origin[spec.id]}; to change a data-declared provider, "
                f'write an override file (override = "{spec.id}")',
                "duplicate_definition",
            )
        definitions.append(generate(spec).definition())
        origin[spec.id] = str(file.path)
    overridden: dict[str, Path] = {}
    for file in files:
        spec = file.spec
        if not isinstance(spec, OverrideSpec):
            continue
        if spec.override in overridden:
            raise file.error(
                "override", f"{overridden[spec.override]} already overrides {spec.override!r}", "duplicate_override"
            )
        overridden[spec.override] = file.path
        index = next((i for i, d in enumerate(definitions) if d.id == spec.override), None)
        if index is None:
            raise file.error("override", f"no definition has the ID {spec.override!r}", "override_target")
        definitions[index] = apply_override(definitions[index], file)
    files_by_id = {spec.id: file.path for file in files if isinstance(spec := file.spec, ProviderSpec)}
    return Loaded(definitions, {**files_by_id, **overridden})


def apply_override(definition: Definition, file: DataFile) -> Definition:
    """The definition with the override's mode, onboarding, access and scopes."""
    override = file.spec
    assert isinstance(override, OverrideSpec)
    data = [c for c in definition.connections if isinstance(c.auth, DataOAuth2) and c.auth.spec is not None]
    if not data:
        raise file.error(
            "override",
            f"{definition.id!r} is not declared as data; change a Python definition in its code",
            "override_target",
        )
    connections = list(definition.connections)
    merged: ProviderSpec | None = None
    for connection in data:
        auth = connection.auth
        assert isinstance(auth, DataOAuth2) and auth.spec is not None
        merged = _merge(auth.spec, override, file)
        connections[connections.index(connection)] = _redeclared(connection, oauth_auth(merged, auth.slot))
    assert merged is not None
    return replace(
        definition,
        mode=merged.mode,
        onboarding=ONBOARDING[merged.onboarding],  # type: ignore[arg-type]
        connections=tuple(connections),
    )


def _merge(spec: ProviderSpec, override: OverrideSpec, file: DataFile) -> ProviderSpec:
    """The spec with the override's keys, validated again as a whole (a rule may span keys)."""
    data = {
        **spec.model_dump(by_alias=True, exclude={"schema_"}),
        **override.model_dump(by_alias=True, include=set(override.changes())),
    }
    try:
        return ProviderSpec.model_validate(data)
    except ValidationError as exc:
        problems = [
            Problem(
                file.lines.get((str(e["loc"][0]),)) if e["loc"] else None,
                ".".join(str(p) for p in e["loc"]),
                e["msg"],
                e["type"],
            )
            for e in exc.errors()
        ]
        raise DefinitionFileError(file.path, problems) from None


def _redeclared(connection: type[Connection], auth: DataOAuth2) -> type[Connection]:
    """The same connection with another auth: a subclass under the same name, so its ID does not change."""
    return type(
        connection.__name__,
        (connection,),
        {
            "__doc__": connection.__doc__,
            "__module__": connection.__module__,
            "__qualname__": connection.__qualname__,
            "auth": auth,
        },
    )
