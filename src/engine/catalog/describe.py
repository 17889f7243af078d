"""What the catalog shows about a definition: its IDs, schemas, modes and hints, as typed views.

The HTTP catalog and ``tether definitions list|show`` both render these, so they never disagree.
"""

from __future__ import annotations

import os
import string
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel

from engine.authoring.config import env_name
from engine.authoring.connections import AppInstall, ClientCredentials, NoRevocation, OAuth2
from engine.authoring.connections import Connection as ConnectionBase
from engine.authoring.definition import Definition
from engine.authoring.operations import Operation


class EmitView(BaseModel):
    schema_name: str
    variant: str


class ProductView(BaseModel):
    id: str
    title: str
    scopes: list[str]


class ConnectionView(BaseModel):
    id: str
    title: str
    auth: Literal["oauth2", "client_credentials", "app_install", "direct_input"]
    credential_slot: str
    #: Present for direct-input connections: the JSON Schema of the form a person fills in.
    manual_slot_schema: dict[str, Any] | None
    scopes: list[str]
    upgrade_scopes: list[str]
    #: Products one grant can add one at a time (``POST .../upgrade`` with ``{"product": id}``).
    products: list[ProductView] = []
    validate_operation: str | None
    disconnect: Literal["revoke", "none"]
    disconnect_note: str
    #: False when the operator config lacks what this connection needs (an OAuth client secret); connect answers
    #: ``provider_not_enabled`` then.
    enabled: bool = True
    #: The variables this connection still needs (names only, never values).
    missing_config: list[str] = []


class OperationView(BaseModel):
    id: str
    topic: str
    description: str
    mode: Literal["inline", "queued"]
    reconcile: bool
    schedule_seconds: int | None
    access: Literal["read", "write"]
    #: The connection product it needs (``Policy.product``), or ``None``.
    product: str | None = None
    #: Whether a ``user`` principal may start it (``Policy.user_may_run``; reads by default, writes not).
    user_may_run: bool
    client: str | None
    emits: list[EmitView]
    config_schema: dict[str, Any]


class EventView(BaseModel):
    id: str
    topic: str
    match: str
    emits: list[EmitView]


class WebhookView(BaseModel):
    name: str
    verifier: str
    static: bool
    events: list[EventView]


class DefinitionSummary(BaseModel):
    id: str
    name: str
    description: str
    category: str
    mode: Literal["required", "optional", "manual"]
    onboarding: Literal["after_auth", "combined", "settings"]
    enabled: bool
    access_tiers: list[Literal["read", "write"]]
    connections: list[str]
    operations: list[str]
    webhooks: list[str]
    schemas: list[EmitView]
    #: For a disabled definition: the variables an operator sets to enable it (names only, never values).
    missing_config: list[str] = []


class DefinitionDetail(DefinitionSummary):
    docs_url: str
    #: Variables an operator must set to enable this definition and every one of its connections (names only,
    #: never values). A definition with some connections enabled is ``enabled`` and still lists the others' needs.
    missing_config: list[str]
    user_input_schema: dict[str, Any] | None
    connection_details: list[ConnectionView]
    operation_details: list[OperationView]
    webhook_details: list[WebhookView]


def summarize(definition: Definition, *, enabled: bool, missing_config: list[str] | None = None) -> DefinitionSummary:
    return DefinitionSummary(**_summary_fields(definition, enabled), missing_config=list(missing_config or []))


def detail(
    definition: Definition,
    *,
    enabled: bool,
    missing_config: list[str],
    unoffered: Mapping[str, list[str]] | None = None,
) -> DefinitionDetail:
    """``unoffered`` maps a connection ID to the variables it lacks (``unoffered_connections``)."""
    d = definition
    unoffered = unoffered or {}
    needed = dict.fromkeys(missing_config)
    for names in unoffered.values():
        needed.update(dict.fromkeys(names))
    return DefinitionDetail(
        **_summary_fields(d, enabled),
        docs_url=d.docs_url,
        missing_config=list(needed),
        user_input_schema=d.user_input.model_json_schema() if d.user_input else None,
        connection_details=[_connection(d, c, unoffered.get(c.connection_id(), [])) for c in d.connections],
        operation_details=[_operation(d, o) for o in d.operations],
        webhook_details=[
            WebhookView(
                name=w.name,
                verifier=type(w.verifier).__name__,
                static=w.static,
                events=[
                    EventView(
                        id=e.event_id(),
                        topic=d.topic(e.event_id()),
                        match=e.match,
                        emits=[EmitView(schema_name=x.schema, variant=x.variant) for x in e.emits],
                    )
                    for e in w.events
                ],
            )
            for w in d.webhooks
        ],
    )


def _summary_fields(d: Definition, enabled: bool) -> dict[str, Any]:
    emitted: dict[tuple[str, str], None] = {}
    for op in d.operations:
        emitted.update(dict.fromkeys((e.schema, e.variant) for e in op.emits))
    for w in d.webhooks:
        for event in w.events:
            emitted.update(dict.fromkeys((e.schema, e.variant) for e in event.emits))
    tiers: list[Literal["read", "write"]] = ["read"]
    if any(o.policy.access == "write" for o in d.operations):
        tiers.append("write")
    return {
        "id": d.id,
        "name": d.name,
        "description": d.description,
        "category": d.category,
        "mode": d.mode,
        "onboarding": d.onboarding,
        "enabled": enabled,
        "access_tiers": tiers,
        "connections": [c.connection_id() for c in d.connections],
        "operations": [o.operation_id() for o in d.operations],
        "webhooks": [w.name for w in d.webhooks],
        "schemas": [EmitView(schema_name=s, variant=v) for s, v in emitted],
    }


def connection_missing_config(
    definition: Definition, connection: type[ConnectionBase], environ: Mapping[str, str] | None = None
) -> list[str]:
    """The operator variables a connection needs and the environment lacks.

    A definition's operator config may keep a connection's fields optional so that its other connections work
    without them (Google Workspace's service account needs no OAuth client). The connection itself still cannot
    start without them: an OAuth2 connection needs its client ID and secret (the engine authenticates at the
    token endpoint with ``client_secret_basic``), an app install the config fields its ``install_url`` names.
    """
    model = definition.operator_config
    if model is None:
        return []
    env = os.environ if environ is None else environ
    auth = connection.auth
    if isinstance(auth, OAuth2):
        fields = [auth.client_id, auth.client_secret]
    elif isinstance(auth, AppInstall):
        fields = [name for _, name, _, _ in string.Formatter().parse(auth.install_url) if name]
    else:
        return []
    missing: dict[str, None] = {}
    for name in fields:
        field = model.model_fields.get(name)
        if field is None:
            continue
        variable = env_name(definition.id, model, name)
        defaulted = not field.is_required() and field.default not in (None, "")
        if not env.get(variable) and not defaulted:
            missing[variable] = None
    return list(missing)


def unoffered_connections(definition: Definition, environ: Mapping[str, str] | None = None) -> dict[str, list[str]]:
    """Connection ID → the variables it lacks, for the connections this server cannot offer."""
    found = {c.connection_id(): connection_missing_config(definition, c, environ) for c in definition.connections}
    return {cid: names for cid, names in found.items() if names}


def _connection(d: Definition, c: type[ConnectionBase], missing: list[str]) -> ConnectionView:
    auth = c.auth
    kind: Literal["oauth2", "client_credentials", "app_install", "direct_input"] = (
        "oauth2"
        if isinstance(auth, OAuth2)
        else "client_credentials"
        if isinstance(auth, ClientCredentials)
        else "app_install"
        if isinstance(auth, AppInstall)
        else "direct_input"
    )
    manual = c.credential in d.manual_slots()
    return ConnectionView(
        id=c.connection_id(),
        title=c.title or c.connection_id(),
        auth=kind,
        credential_slot=c.credential.slot_id(),
        manual_slot_schema=c.credential.form_schema() if manual else None,
        scopes=list(getattr(auth, "scopes", ()) or ()),
        upgrade_scopes=list(getattr(auth, "upgrade_scopes", ()) or ()),
        products=[ProductView(id=p.id, title=p.title, scopes=list(p.scopes)) for p in getattr(auth, "products", ())],
        validate_operation=c.validate.operation_id() if c.validate else None,
        disconnect="none" if isinstance(c.disconnect, NoRevocation) else "revoke",
        disconnect_note=c.disconnect.reason if isinstance(c.disconnect, NoRevocation) else "",
        enabled=not missing,
        missing_config=missing,
    )


def _operation(d: Definition, o: type[Operation]) -> OperationView:
    schedule = o.policy.schedule
    return OperationView(
        id=o.operation_id(),
        topic=d.topic(o.operation_id()),
        description=o.description(),
        mode=o.policy.mode,
        reconcile=o.policy.reconcile,
        schedule_seconds=int(schedule.total_seconds()) if schedule else None,
        access=o.policy.access,
        product=o.policy.product,
        user_may_run=o.policy.users_may_run,
        client=o.client.client_id() if o.client else None,
        emits=[EmitView(schema_name=e.schema, variant=e.variant) for e in o.emits],
        config_schema=o.config.model_json_schema(),
    )
