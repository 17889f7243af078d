"""Recording a cassette: one operation of a stored integration run against the real provider, through the egress
guard, its exchanges kept by a :class:`~engine.testing.replay.RecordingTap` and scrubbed before anything is written.

What runs is the engine's own path for that name: the connection's health check runs as ``Setup.validate`` does,
``disconnect`` as ``Custody.disconnect`` does (it really disconnects: the grant is revoked), any other operation as
``Executor.run_inline`` does (records land in the database as a manual run's would). The secrets scrubbed are
those the slot and operator config schemas declare (every ``SecretStr`` of every credential the integration holds),
plus credential headers and credential-named fields (``engine.testing.scrub``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, SecretStr
from pydantic_core import to_jsonable_python

from engine.api.principal import Principal
from engine.authoring.definition import Definition
from engine.errors import NotFoundError, TetherError
from engine.integrations.setup import Setup
from engine.kit.egress import tapped
from engine.observability.logs import slot_secrets
from engine.services import Services
from engine.store.tables import Integration
from engine.testing.cassettes import Cassette, dump_cassette
from engine.testing.replay import RecordingTap
from engine.testing.scrub import SCRUBBED, scrub_interactions

__all__ = ["RecordingFailed", "record", "record_to"]

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
