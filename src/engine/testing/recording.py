"""Recording a cassette: one operation of a stored integration run against the real provider, through the egress
guard, its exchanges kept by a :class:`~engine.testing.replay.RecordingTap` and scrubbed before anything is written.

What runs is the engine's own path for that name: the connection's health check runs as ``Setup.validate`` does,
``disconnect`` as ``Custody.disconnect`` does (it really disconnects: the grant is revoked), any other operation as
``Executor.run_inline`` does (records land in the database as a manual run's would). Webhook examples are not
recorded from the provider but from what the engine already received: ``record_webhook_examples`` writes the
integration's latest stored deliveries (raw body and headers) as an example cassette, and ``webhook_examples_to``
the example deliveries a provider documents (bodies saved as files), with no integration at all. The secrets
scrubbed are those the slot and operator config schemas declare (every ``SecretStr`` of every credential the
integration holds), plus credential headers and credential-named fields (``engine.testing.scrub``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, SecretStr
from pydantic_core import to_jsonable_python
from sqlmodel import col, select

from engine.api.principal import Principal
from engine.authoring.definition import Definition
from engine.authoring.webhooks import Header, JsonField, Webhook
from engine.errors import NotFoundError, TetherError
from engine.integrations.setup import Setup
from engine.kit.egress import tapped
from engine.observability.logs import slot_secrets
from engine.services import Services
from engine.store.tables import Integration, WebhookDelivery, WebhookEndpoint
from engine.testing.cassettes import Cassette, Interaction, Request, Response, dump_cassette
from engine.testing.replay import RecordingTap
from engine.testing.scrub import SCRUBBED, scrub_interactions
from engine.webhooks.deliveries import json_path, parse_body

__all__ = [
    "RecordingFailed",
    "connect",
    "record",
    "record_to",
    "record_webhook_examples",
    "scratch_engine",
    "webhook_cassette",
    "webhook_examples_to",
]

DISCONNECT = "disconnect"


class RecordingFailed(TetherError):
    """The recorded operation did not succeed: nothing is written (the message says how it ended)."""

    code = "recording_failed"
    status = 422


def _public(model: BaseModel | None) -> dict[str, Any]:
    """A model's fields as JSON, every secret one replaced by the scrubbed marker."""
    if model is None:
        return {}
    out: dict[str, Any] = {}
    for name in type(model).model_fields:
        value = getattr(model, name)
        out[name] = SCRUBBED if isinstance(value, SecretStr) else value
    return _json(out)


def _json(values: dict[str, Any]) -> dict[str, Any]:
    """Plain JSON types only (datetimes as ISO text, tuples as lists): what a YAML safe loader reads back."""
    return json.loads(json.dumps(to_jsonable_python(values)))


async def record(
    runtime: Services,
    integration_id: str,
    operation: str,
    *,
    config: dict[str, Any] | None = None,
    upstreams: Mapping[str, str] | None = None,
) -> Cassette:
    """Run ``operation`` (an operation ID, the health check's, or ``disconnect``) of the integration and return its
    scrubbed cassette."""
    with runtime.db.session() as session:
        integration = session.get(Integration, integration_id)
    if integration is None:
        raise NotFoundError(f"no integration {integration_id}")
    definition: Definition = runtime.definition(integration.definition_id)
    connection_id = (integration.provider_data or {}).get("connection", "")
    connection = definition.connection(connection_id)
    if connection is None:
        raise RecordingFailed(f"integration {integration_id} is not connected")
    held = [s for s in (runtime.keystore.load(integration_id, slot) for slot in definition.slots) if s is not None]
    secrets = [value for stored in held for value in slot_secrets(stored.slot)]
    operator = runtime.operator_config(definition.id)
    if operator is not None:
        secrets += slot_secrets(operator)
    selecting = next((s for s in held if type(s.slot) is connection.credential), held[0] if held else None)
    tap = RecordingTap(upstreams=dict(upstreams or {}))
    # A cassette replays on its own, on a fresh engine: a client cached by an earlier call (holding a token it
    # minted then) would leave that mint out of this recording.
    runtime.clients.drop(integration_id)
    principal = Principal(tenant_id=integration.tenant_id, role="server")
    validate = connection.validate
    with tapped(tap):
        if operation == DISCONNECT:
            await runtime.custody.disconnect(integration_id, actor="recording")
        elif validate is not None and operation == validate.operation_id():
            ok, row = await Setup(runtime).validate(principal, integration_id)
            if not ok:
                raise RecordingFailed(f"the health check did not pass (health {row.health})")
        else:
            if definition.operation(operation) is None:
                raise NotFoundError(f"{definition.id} has no operation {operation}")
            result = await runtime.executor.run_inline(integration_id, operation, trigger="manual", config=config)
            if result.run.status != "succeeded":
                raise RecordingFailed(f"the run {result.run.status}: {result.run.error_code}")
    metadata: dict[str, Any] = {
        "kind": DISCONNECT if operation == DISCONNECT else "operation",
        "definition": definition.id,
        "connection": connection_id,
        "slot": type(selecting.slot).__name__ if selecting is not None else "",
        "credential": _public(selecting.slot if selecting is not None else None),
    }
    if operation != DISCONNECT:
        metadata["operation"] = operation
    if config:
        metadata["config"] = config
    if integration.user_input:
        metadata["user_input"] = integration.user_input
    routing = {k: v for k, v in (integration.provider_data or {}).items() if k != "connection"}
    if routing:
        metadata["provider_data"] = routing
    if operator is not None:
        metadata["operator"] = _public(operator)
    return Cassette(scrub_interactions(tap.interactions, secrets), metadata)


async def record_to(
    runtime: Services,
    integration_id: str,
    operation: str,
    path: str | Path,
    *,
    config: dict[str, Any] | None = None,
    upstreams: Mapping[str, str] | None = None,
) -> Path:
    """:func:`record`, written to ``path``."""
    cassette = await record(runtime, integration_id, operation, config=config, upstreams=upstreams)
    return dump_cassette(cassette, path)


# -- webhook examples ----------------------------------------------------------------------------------------------

WEBHOOK_PREFIX = "webhook:"


def webhook_cassette(
    definition_id: str, webhook: str, deliveries: list[tuple[dict[str, str], bytes]], secrets: list[str]
) -> Cassette:
    """Example deliveries as a cassette: each request one delivery (its headers and raw body), each response the
    acknowledgement; scrubbed like any recording (signature headers included: the suite signs examples afresh)."""
    interactions = [
        Interaction(
            Request(
                "POST",
                f"https://tether.invalid/v1/webhooks/{definition_id}/{webhook}",
                {k: [v] for k, v in headers.items()},
                body,
            ),
            Response(200, {}, b""),
        )
        for headers, body in deliveries
    ]
    metadata = {"kind": "webhook", "definition": definition_id, "webhook": webhook}
    return Cassette(scrub_interactions(interactions, secrets), metadata)


def record_webhook_examples(
    runtime: Services, integration_id: str, webhook: str, path: str | Path, *, limit: int = 5
) -> Path:
    """The latest ``limit`` deliveries the engine received for the integration's ``webhook`` endpoint (as they were
    recorded before acknowledgement: raw body and headers), written as an example cassette."""
    with runtime.db.session() as session:
        integration = session.get(Integration, integration_id)
        if integration is None:
            raise NotFoundError(f"no integration {integration_id}")
        definition = runtime.definition(integration.definition_id)
        declared = next((w for w in definition.webhooks if w.name == webhook), None)
        if declared is None:
            raise NotFoundError(f"{definition.id} has no webhook {webhook!r}")
        rows = session.exec(
            select(WebhookDelivery)
            .join(WebhookEndpoint, col(WebhookEndpoint.id) == col(WebhookDelivery.endpoint_id))
            .where(col(WebhookDelivery.integration_id) == integration_id)
            .where(col(WebhookEndpoint.webhook).in_([webhook, declared.__name__]))
            .order_by(col(WebhookDelivery.received_at).desc())
            .limit(limit)
        ).all()
    if not rows:
        raise RecordingFailed(f"integration {integration_id} has received no {webhook} delivery to record")
    held = [s for s in (runtime.keystore.load(integration_id, slot) for slot in definition.slots) if s is not None]
    secrets = [value for stored in held for value in slot_secrets(stored.slot)]
    operator = runtime.operator_config(definition.id)
    if operator is not None:
        secrets += slot_secrets(operator)
    deliveries = [(dict(row.headers), bytes(row.body)) for row in reversed(rows)]
    return dump_cassette(webhook_cassette(definition.id, webhook, deliveries, secrets), path)


def declared_webhook(definition: Definition, webhook: str) -> type[Webhook]:
    """The definition's webhook of that name (or class name); ``not_found`` naming the ones it has."""
    found = next((w for w in definition.webhooks if webhook in (w.name, w.__name__)), None)
    if found is None:
        names = ", ".join(w.name for w in definition.webhooks) or "none"
        raise NotFoundError(f"{definition.id} has no webhook {webhook!r} (its webhooks: {names})")
    return found


def example_event_type(webhook: type[Webhook], body: bytes, headers: Mapping[str, str]) -> str | None:
    """The event type an example delivery carries where the webhook's ``Header`` or ``JsonField`` locator says
    (``None``: absent, or a ``CelValue`` this needs no engine to evaluate)."""
    locator = webhook.event_type
    if isinstance(locator, Header):
        value: Any = {k.lower(): v for k, v in headers.items()}.get(locator.name.lower())
    elif isinstance(locator, JsonField):
        value = json_path(parse_body(body, {k.lower(): v for k, v in headers.items()}), locator.path)
    else:
        return None
    return None if value is None or isinstance(value, dict | list) or value == "" else str(value)


def webhook_examples_to(
    definition: Definition,
    webhook: str,
    bodies: list[bytes],
    path: str | Path,
    *,
    headers: Mapping[str, str] | None = None,
    secrets: list[str] | None = None,
) -> Path:
    """Example deliveries a provider documents (``bodies``, each with the same ``headers``) written as the
    webhook's example cassette, scrubbed like a recording: signature and credential headers keep no value (the
    suite signs each example afresh), and ``secrets`` (the operator config's) are replaced wherever they appear.
    A JSON body without a ``Content-Type`` header given gets ``application/json``, as a provider would send it."""
    declared = declared_webhook(definition, webhook)
    if not bodies:
        raise RecordingFailed("no example delivery given")
    given = {name.lower(): value for name, value in (headers or {}).items()}
    deliveries = []
    for body in bodies:
        sent = dict(given)
        if "content-type" not in sent and _is_json(body):
            sent["content-type"] = "application/json"
        deliveries.append((sent, body))
    return dump_cassette(webhook_cassette(definition.id, declared.name, deliveries, list(secrets or ())), path)


def _is_json(body: bytes) -> bool:
    try:
        json.loads(body)
    except (ValueError, RecursionError):
        return False
    return True


# -- recording against a stand-in, without a deployment ------------------------------------------------------------


def scratch_engine(definition: Definition, workdir: str | Path, operator_config: dict[str, Any] | None = None) -> Any:
    """A runtime over a new SQLite in ``workdir`` with ``definition`` alone and its operator config given as values:
    for recording against a stand-in (``record(..., upstreams=...)``) without a deployment. Close it when done."""
    from engine.catalog.registry import Registry
    from engine.custody.crypto import KeyRing, generate_master_key
    from engine.custody.masterkey import KeySource
    from engine.runtime import Runtime
    from engine.settings import Settings
    from engine.store.database import Database

    folder = Path(workdir)
    folder.mkdir(parents=True, exist_ok=True)
    # Loopback allowed in the settings too: custody's own calls (a token refresh, a revocation) read it there.
    settings = Settings(
        database_url=f"sqlite:///{folder / 'recording.db'}",
        state_dir=str(folder),
        metrics=False,
        allow_loopback_providers=True,
    )
    registry = Registry(allow_loopback=True)
    registry.register(definition)
    model = definition.operator_config
    config = model.model_validate(operator_config or {}) if model is not None else None
    keys = KeySource(KeyRing.from_master_key(generate_master_key()), "env")
    runtime = Runtime(settings, Database(settings.database_url), registry, keys, {definition.id: config})
    runtime.db.upgrade()
    return runtime


def connect(
    runtime: Services,
    definition: Definition,
    connection: type,
    credential: Any,
    *,
    user_input: dict[str, Any] | None = None,
    owner_id: str = "recorder",
) -> str:
    """An integration connected through ``connection`` holding ``credential``: what setup leaves behind."""
    from engine.store.tables import IntegrationStatus

    with runtime.db.session() as session:
        integration = Integration(
            tenant_id="recording",
            owner_id=owner_id,
            definition_id=definition.id,
            status=IntegrationStatus.connected,
            user_input=user_input or {},
            provider_data={"connection": connection.connection_id()},
        )
        session.add(integration)
    runtime.keystore.save(integration.id, credential)
    return integration.id
