"""``tether definitions record`` and ``tether definitions test``: cassettes and the standard suite
(``engine.testing``, ``docs/testing-definitions.md``)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import typer

from engine.cli_support import fail, registered_definition
from engine.errors import ConfigurationError, DefinitionError, TetherError
from engine.settings import Settings

#: Where cassettes live unless ``--cassettes`` / ``--out`` say otherwise: one folder per definition.
DEFAULT_ROOT = Path("tests") / "cassettes"


def _upstreams(values: list[str]) -> dict[str, str]:
    upstreams = {}
    for value in values:
        origin, sep, target = value.partition("=")
        if not sep or not origin.startswith("https://") or not target:
            fail(f"error: --upstream takes ORIGIN=URL (https://api.example.com=http://127.0.0.1:8123), not {value!r}")
        upstreams[origin.rstrip("/")] = target.rstrip("/")
    return upstreams


def record(
    definition_id: str = typer.Argument(..., help="The definition the integration is of."),
    operation: str = typer.Argument(
        ..., help="An operation ID, the health check's, 'disconnect' (revokes!) or webhook:NAME (received deliveries)."
    ),
    integration: str = typer.Option(
        None, "--integration", help="The connected integration to record with (not with --example)."
    ),
    out: str = typer.Option(None, "--out", help="The cassette file (default tests/cassettes/<ID>/<OPERATION>.yaml)."),
    config: str = typer.Option(None, "--config", help="The operation's config, as JSON."),
    upstream: list[str] = typer.Option(  # noqa: B008 - typer reads a repeatable option from a list default
        [], "--upstream", help="ORIGIN=URL: send the provider's origin to a stand-in (repeatable; needs loopback)."
    ),
    example: list[Path] = typer.Option(  # noqa: B008 - typer reads a repeatable option from a list default
        [], "--example", help="With webhook:NAME: a documented example delivery's body, as a file (repeatable)."
    ),
    header: list[str] = typer.Option(  # noqa: B008 - typer reads a repeatable option from a list default
        [], "--header", help="With --example: 'Name: value', a header every example carries (repeatable)."
    ),
) -> None:
    """Run one operation against the real provider, through the egress guard, and write its scrubbed cassette;
    with --example, write a webhook's example cassette from the provider's documented example deliveries."""
    if example or header:
        if not example:
            fail("error: --header goes with --example FILE")
        if integration is not None or config is not None or upstream:
            fail("error: --example writes documented deliveries: no --integration, --config or --upstream")
        _record_examples(definition_id, operation, example, header, out)
        return
    if integration is None:
        fail("error: --integration ID is required (or, for webhook:NAME, --example FILE)")
    from engine.runtime import Runtime
    from engine.store.tables import Integration
    from engine.testing.recording import DISCONNECT, WEBHOOK_PREFIX, record_to, record_webhook_examples

    parsed = None
    if config is not None:
        try:
            parsed = json.loads(config)
        except ValueError:
            fail("error: --config is not valid JSON")
        if not isinstance(parsed, dict):
            fail("error: --config must be a JSON object")
    upstreams = _upstreams(upstream)
    try:
        runtime = Runtime.start(Settings())
    except (DefinitionError, ConfigurationError) as exc:
        fail(f"error: {exc.message}")
    try:
        with runtime.db.session() as session:
            row = session.get(Integration, integration)
        if row is None or row.definition_id != definition_id:
            fail(f"error: no integration {integration} of {definition_id}")
        assert row is not None
        webhook = operation[len(WEBHOOK_PREFIX) :] if operation.startswith(WEBHOOK_PREFIX) else None
        if out is None:
            connection = (row.provider_data or {}).get("connection", "")
            name = f"{DISCONNECT}.{connection}" if operation == DISCONNECT else operation
            name = f"webhook.{webhook}" if webhook is not None else name
            target = DEFAULT_ROOT / definition_id / f"{name}.yaml"
        else:
            target = Path(out)
        if webhook is not None:
            path = record_webhook_examples(runtime, integration, webhook, target)
        else:
            path = asyncio.run(record_to(runtime, integration, operation, target, config=parsed, upstreams=upstreams))
    except TetherError as exc:
        fail(f"error: {exc.code}: {exc.message}")
    finally:
        runtime.close()
    from engine.testing.cassettes import load

    typer.echo(f"wrote {path} ({len(load(path))} interaction(s), scrubbed)")


def _headers(values: list[str]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for value in values:
        name, sep, text = value.partition(":")
        if not sep or not name.strip() or any(c.isspace() for c in name.strip()):
            fail(f"error: --header takes 'Name: value' (X-Event: task.updated), not {value!r}")
        headers[name.strip()] = text.strip()
    return headers


def _record_examples(definition_id: str, operation: str, files: list[Path], header: list[str], out: str | None) -> None:
    """``record ID webhook:NAME --example FILE``: the definition's own registry, no database, no integration."""
    from engine.authoring.config import load_operator_config
    from engine.authoring.webhooks import CelValue
    from engine.observability.logs import slot_secrets
    from engine.testing.cassettes import load
    from engine.testing.recording import (
        WEBHOOK_PREFIX,
        declared_webhook,
        example_event_type,
        webhook_examples_to,
    )

    if not operation.startswith(WEBHOOK_PREFIX):
        fail(f"error: --example writes a webhook's examples: the operation is {WEBHOOK_PREFIX}NAME, not {operation!r}")
    headers = _headers(header)
    bodies = []
    for file in files:
        try:
            body = file.read_bytes()
        except OSError as exc:
            fail(f"error: cannot read --example {file}: {exc.strerror}")
        if not body.strip():
            fail(f"error: --example {file} is empty")
        bodies.append(body)
    definition = registered_definition(definition_id)
    secrets: list[str] = []
    if definition.operator_config is not None:
        try:  # the operator config's secrets, when this environment has them, are scrubbed from the examples
            secrets = slot_secrets(load_operator_config(definition.id, definition.operator_config))
        except ConfigurationError:
            secrets = []
    try:
        webhook = declared_webhook(definition, operation[len(WEBHOOK_PREFIX) :])
        target = Path(out) if out is not None else DEFAULT_ROOT / definition_id / f"webhook.{webhook.name}.yaml"
        path = webhook_examples_to(definition, webhook.name, bodies, target, headers=headers, secrets=secrets)
    except TetherError as exc:
        fail(f"error: {exc.code}: {exc.message}")
    matches = {getattr(event, "match", None): event.event_id() for event in webhook.events}
    for file, body in zip(files, bodies, strict=True):
        event_type = example_event_type(webhook, body, headers)
        if isinstance(webhook.event_type, CelValue):
            continue  # a CEL locator is compiled by the registry at start-up: not evaluated here
        if event_type is None:
            typer.echo(f"note: {file}: no event type where {webhook.name}'s event_type locator looks", err=True)
        elif event_type not in matches:
            typer.echo(
                f"note: {file}: event type {event_type!r} matches no event of {webhook.name} (kept unrouted)", err=True
            )
        else:
            typer.echo(f"{file}: {event_type} -> {matches[event_type]}")
    typer.echo(f"wrote {path} ({len(load(path))} example deliver{'y' if len(bodies) == 1 else 'ies'}, scrubbed)")


def test(
    definition_id: str = typer.Argument(..., help="The definition to check."),
    cassettes: str = typer.Option(None, "--cassettes", help="Its cassette folder (default tests/cassettes/<ID>)."),
) -> None:
    """Run the standard suite against the definition's cassettes, offline; exit 1 naming each failed check."""
    from engine.testing.suite import run_suite

    definition = registered_definition(definition_id)
    folder = Path(cassettes) if cassettes is not None else DEFAULT_ROOT / definition_id
    report = run_suite(definition, folder)
    typer.echo(report.text())
    failed = report.failures()
    if failed:
        fail(f"{len(failed)} check(s) failed: {', '.join(dict.fromkeys(r.check for r in failed))}")
    typer.echo(f"ok: {definition_id} passes the standard suite")
