"""``tether mapping``: try a definition's mappings on a payload file, without a database."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

mapping_app = typer.Typer(help="Try mappings on payloads.", no_args_is_help=True)


@mapping_app.command("dry-run")
def dry_run(
    definition: str = typer.Argument(..., help="Definition ID (github_app)."),
    schema: str = typer.Argument(..., help="Internal model schema (asset)."),
    variant: str = typer.Option("", "--variant", help="Payload variant (repository)."),
    payload: str = typer.Option(..., "--payload", help="A JSON file: one payload object or a list of them."),
    action: str = typer.Option("", "--action", help="The envelope's action (a webhook's, say)."),
    resource: str = typer.Option("", "--resource", help="The envelope's resource."),
    integration_filter: str = typer.Option("", "--integration-filter", help="An integration-level CEL filter."),
) -> None:
    """Print, per record: filtered out, the mapped typed object, or the reject reason. Writes nothing."""
    from engine.authoring.operations import Payload
    from engine.catalog.loading import load_registry
    from engine.cli_progress import steps
    from engine.errors import ConfigurationError, DefinitionError
    from engine.settings import Settings
    from ingest.pipeline import IngestContext, IngestPipeline, compile_integration_filter, declared_emits

    try:
        registry = load_registry(Settings())
        expression = compile_integration_filter(integration_filter)
    except (DefinitionError, ConfigurationError) as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(1) from None
    except Exception as exc:  # IntegrationFilterError and friends carry a message for people
        typer.echo(f"error: {getattr(exc, 'message', exc)}", err=True)
        raise typer.Exit(1) from None
    if definition not in registry:
        typer.echo(f"error: no definition {definition!r}", err=True)
        raise typer.Exit(1)
    try:
        data = json.loads(Path(payload).read_text())
    except (OSError, ValueError) as exc:
        typer.echo(f"error: {payload} is not JSON: {exc}", err=True)
        raise typer.Exit(1) from None
    records = data if isinstance(data, list) else [data]
    ctx = IngestContext(
        tenant_id="dry-run",
        integration_id="dry-run",
        definition_id=definition,
        emits=declared_emits(registry.get(definition)),
        integration_filter=expression,
        source="direct",
    )
    pipeline = IngestPipeline(registry)
    payloads = [Payload(schema, r, variant, resource, action) for r in records]
    counts = {"mapped": 0, "filtered": 0, "rejected": 0, "removal": 0}
    with steps(f"mapping {len(payloads)} payload(s)", len(payloads)) as advance:
        for position, one in enumerate(payloads):  # one at a time, so the progress bar moves with the work
            [outcome] = pipeline.dry_run(ctx, [one], position)
            _print_outcome(outcome, schema, counts)
            advance()
    typer.echo(
        f"{len(payloads)} record(s): {counts['mapped']} mapped, {counts['filtered']} filtered out, "
        f"{counts['rejected']} rejected" + (f", {counts['removal']} removal(s)" if counts["removal"] else "")
    )


def _print_outcome(outcome: Any, schema: str, counts: dict[str, int]) -> None:
    """One payload's line of ``mapping dry-run``, counted into ``counts``."""
    counts[outcome.status] += 1
    if outcome.status == "filtered":
        typer.echo(f"#{outcome.position} filtered out")
    elif outcome.status == "rejected":
        typer.echo(f"#{outcome.position} rejected [{outcome.reason_code}]: {outcome.reason}")
    elif outcome.status == "removal":
        typer.echo(f"#{outcome.position} removes the {schema} row with keys {json.dumps(list(outcome.keys))}")
    else:
        assert outcome.object is not None
        typer.echo(f"#{outcome.position} {type(outcome.object).__name__} {outcome.object.model_dump_json()}")
