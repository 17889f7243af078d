"""``tether definitions new`` and ``tether mapping coverage``: writing a definition and checking its mappings
against recorded payloads. Registered on the ``definitions`` and ``mapping`` groups by ``engine.cli``."""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Annotated

import typer

from engine.cli_support import fail, registered_definition

#: The exit code of a refused ``definitions new`` (a taken or invalid name, a folder that is not there).
USAGE = 2


def definitions_new(
    name: str = typer.Argument(..., help="The definition's ID, snake_case (asana)."),
    auth: str = typer.Option(None, "--auth", help="oauth2, api-key (the default) or app-install; --data: oauth2."),
    data: bool = typer.Option(False, "--data", help="A data file (TOML, OAuth 2.0 only) instead of a package."),
    webhook: str = typer.Option(
        None, "--webhook", help="Add webhooks.py: one webhook verified by hmac or standard-webhooks (default: none)."
    ),
    directory: Annotated[
        Path | None,
        typer.Option(
            "--dir",
            help="Where to write it (default: the built-in definitions package; with --data, the first "
            "TETHER_DEFINITIONS_DIR folder).",
        ),
    ] = None,
    schema: str = typer.Option("task", "--schema", help="The internal model the first stream lands in."),
) -> None:
    """Write a definition skeleton that passes `tether definitions check`, with TODOs where the provider's
    knowledge goes."""
    from engine.devtools.scaffold import ScaffoldError, scaffold
    from engine.settings import Settings

    auth = auth or ("oauth2" if data else "api-key")
    try:
        written = scaffold(
            name, auth=auth, data=data, webhook=webhook, directory=directory, schema=schema, settings=Settings()
        )
    except ScaffoldError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(USAGE) from None
    for path in written.files:
        typer.echo(f"wrote {path}")
    for line in written.next_steps:
        typer.echo(line)


def mapping_coverage(
    definition: str = typer.Argument(..., help="Definition ID."),
    payloads: Annotated[
        list[Path] | None,
        typer.Option("--payloads", help="Files or folders of payloads, answers or cassettes (repeatable)."),
    ] = None,
    schema: str = typer.Option(None, "--schema", help="Send every payload given to this schema's mapping."),
    variant: str = typer.Option("", "--variant", help="With --schema: the mapping's variant."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Which model fields each mapping fills, leaves null or never writes, over the recorded payloads (cassettes,
    else the definition's fixtures, else --payloads), and which payload fields no mapping reads."""
    from engine.devtools.coverage import coverage
    from engine.devtools.payloads import PayloadSourceError, discover, read_paths
    from engine.devtools.report import render

    declared = registered_definition(definition)
    if schema is None and variant:
        fail("error: --variant goes with --schema")
    if schema is not None and not payloads:
        fail("error: --schema names the mapping of the --payloads given")
    try:
        if payloads:
            found = read_paths(payloads)
        else:
            found = discover(definition, root=Path.cwd(), package_dir=_package_dir(declared))
        if not found.exchanges:
            where = "the files given" if payloads else f"tests/cassettes/{definition}/ or tests/fixtures/{definition}/"
            fail(f"error: no recorded payloads in {where}: give --payloads FILE|DIR")
        report = coverage(declared, found, schema=schema, variant=variant)
    except (PayloadSourceError, ValueError) as exc:
        fail(f"error: {exc}")
    typer.echo(json.dumps(report.as_dict(), indent=2) if as_json else render(report))


def _package_dir(definition: object) -> Path | None:
    """The folder of the module declaring the definition's first part (a package's own ``fixtures/`` is there)."""
    parts = [*getattr(definition, "connections", ()), *getattr(definition, "operations", ())]
    for part in parts:
        try:
            return Path(inspect.getfile(part)).parent
        except (TypeError, OSError):
            continue
    return None
