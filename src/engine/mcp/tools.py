"""The tools an MCP user sees: one per operation of each of their integrations.

A tool is named ``{definition}__{Operation}`` (``sandbox__HealthCheck``): an owner has at most one integration of a
definition (the store's unique key on tenant, owner and definition), so the name is stable and unique. Names keep
to ``[A-Za-z0-9_-]``, at most 64 characters (what MCP allows and what the strictest model APIs accept); a longer one
is cut and ends with a digest of the whole.

Listed: every integration of the owner whose definition is enabled on this server, whatever its state, so that an
agent asking for a tool of a provider the person has not connected (or must reconnect) gets the structured error
with the link to fix it instead of a tool that does not exist. Not listed: operations the caller may not start (a
write a ``user`` principal may not run, ``Policy.user_may_run``), like the REST API's ``operation_not_allowed``.

The input schema is the operation's config model's JSON Schema; the description is the operation's docstring and a
line naming the integration and its state.
"""

from __future__ import annotations

import hashlib
import inspect
from dataclasses import dataclass
from typing import Any

import mcp_types as types
from sqlmodel import col, select

from engine.authoring.definition import Definition
from engine.authoring.operations import NoConfig, Operation
from engine.mcp.auth import McpUser
from engine.runtime import Runtime
from engine.store.tables import Integration

MAX_NAME = 64
#: Prefix of the ``_meta`` keys of a tool (a one-label prefix, which the spec allows for implementation keys).
META_PREFIX = "tether/"


@dataclass(frozen=True)
class Entry:
    """One tool: an operation of one integration."""

    name: str
    integration: Integration
    definition: Definition
    operation: type[Operation]


def integrations(runtime: Runtime, user: McpUser) -> list[Integration]:
    """The owner's integrations, oldest first."""
    query = select(Integration).where(Integration.tenant_id == user.tenant_id, Integration.owner_id == user.owner_id)
    with runtime.db.session() as session:
        return list(session.exec(query.order_by(col(Integration.created_at), col(Integration.id))).all())


def entries(runtime: Runtime, user: McpUser) -> list[Entry]:
    found: list[Entry] = []
    for row in integrations(runtime, user):
        if not runtime.enabled(row.definition_id):
            continue
        definition = runtime.registry.get(row.definition_id)
        for operation in definition.operations:
            if not user.principal.is_server and not operation.policy.users_may_run:
                continue
            found.append(Entry(tool_name(definition.id, operation.operation_id()), row, definition, operation))
    return found


def find(runtime: Runtime, user: McpUser, name: str) -> Entry | None:
    return next((entry for entry in entries(runtime, user) if entry.name == name), None)


def schema_by_name(runtime: Runtime, name: str) -> dict[str, Any] | None:
    """The input schema of a tool from its name alone (it is the operation's, whoever calls): what the SDK checks a
    2026-07-28 call's ``Mcp-Param-*`` headers against, without listing the caller's tools once more. ``None`` for a
    name that does not parse (a cut one, an unknown one): the SDK then skips that check and the call finds no tool."""
    definition_id, _, operation_id = name.partition("__")
    if definition_id not in runtime.registry or not runtime.enabled(definition_id):
        return None
    operation = runtime.registry.get(definition_id).operation(operation_id)
    if operation is None or tool_name(definition_id, operation.operation_id()) != name:
        return None
    return input_schema(operation)


def tool_name(definition_id: str, operation_id: str) -> str:
    whole = f"{_safe(definition_id)}__{_safe(operation_id)}"
    if len(whole) <= MAX_NAME:
        return whole
    digest = hashlib.sha256(whole.encode()).hexdigest()[:8]
    return f"{whole[: MAX_NAME - 9]}_{digest}"


def _safe(text: str) -> str:
    return "".join(c if c.isascii() and (c.isalnum() or c in "_-") else "_" for c in text)


def input_schema(operation: type[Operation]) -> dict[str, Any]:
    if operation.config is NoConfig:
        return {"type": "object", "properties": {}, "additionalProperties": False}
    schema = operation.config.model_json_schema()
    schema.setdefault("type", "object")
    return schema


def describe(entry: Entry) -> types.Tool:
    operation, row = entry.operation, entry.integration
    doc = inspect.cleandoc(operation.__doc__ or "") or operation.operation_id()
    label = row.name or (row.account or {}).get("account_name") or row.id
    where = f"On the {entry.definition.name} integration {label!r} (now {row.status})."
    write = operation.policy.access == "write"
    return types.Tool(
        name=entry.name,
        title=f"{entry.definition.name}: {operation.operation_id()}",
        description=f"{doc}\n\n{where}",
        input_schema=input_schema(operation),
        annotations=types.ToolAnnotations(
            read_only_hint=not write, destructive_hint=write, idempotent_hint=not write, open_world_hint=True
        ),
        _meta={
            f"{META_PREFIX}integration_id": row.id,
            f"{META_PREFIX}definition_id": entry.definition.id,
            f"{META_PREFIX}operation": operation.operation_id(),
            f"{META_PREFIX}access": operation.policy.access,
            f"{META_PREFIX}status": str(row.status),
        },
    )
