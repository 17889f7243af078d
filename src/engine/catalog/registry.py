"""The registry: validates definitions at start-up and indexes them for the runtime.

Registration compiles every CEL expression once and enforces the rules below; a definition that breaks one is
refused with a ``DefinitionError`` naming the definition, the part and the rule. The registry is read-only once
the engine has started.

Rules (the ``rule`` of each ``DefinitionError``):

==================== ===================================================================================
``definition_id``    the ID is a non-empty snake_case name
``duplicate_definition`` no two definitions share an ID
``part_type``        every part is the right kind of class (slot, client, connection, operation, config)
``duplicate_id``     IDs are unique per kind inside a definition (slots, clients, connections, operations,
                     webhooks, events, mappings)
``undeclared_slot``  every slot a connection or client names is declared by the definition
``connection_credential`` a connection has a selecting credential slot
``auth_slot``        a connection's auth produces a slot of that same connection, of the shape the auth needs
                     (OAuth2 → an ``OAuth2Token`` subclass; client credentials → ``client_id``/``client_secret``)
``oauth_config``     an OAuth2 auth's client ID and secret name fields of the operator config
``install_verified`` an app-install connection verifies the claimed installation (``verify_install``)
``disconnect_declared`` a connection declares ``Revoke(slot)`` or ``NoRevocation(reason)``
``disconnect_slot``  a revoked slot belongs to that same connection
``revoke_implemented`` ``Revoke`` has a provider teardown (``revoke()``, or an OAuth2 ``revoke_url``)
``undeclared_client`` every client a connection or operation names is declared by the definition
``client_shape``     a client lists slots, and each connection enabling it holds exactly one of them
``validate_operation`` the health check is a declared, inline, raw-result operation the connection can build
``manual_slot``      a slot nobody's auth produces has fields a person can enter
``execution_path``   an operation overrides exactly one of ``run`` and ``ingest``
``ingest_schemas``   ingest operations and emitting events declare their schemas; raw operations declare none
``policy``           reconcile and schedules are for queued operations; a schedule is at least a minute
``known_product``    an operation's ``Policy.product`` is a ``Product`` of one of the definition's OAuth2 connections,
                     and product IDs are unique per connection
``known_schema``     emitted schemas and mappings target internal models in the ingest catalog
``snapshot_schemas`` an operation's complete snapshots are schemas it emits
``mapping_coverage`` each emitted (schema, variant) has a mapping
``mapping_unused``   each mapping is for a (schema, variant) something emits
``cel_compile``      every CEL expression compiles
``map_fields``       a map literal writes only allowed fields and covers the required and upsert keys
``https_only``       provider URLs are https (http only to loopback, and only when allowed for tests), or start
                     with ``{public_url}/`` (Tether's own origin, for a provider it serves)
``webhook_verifier`` every webhook declares a verification scheme
``webhook_events``   every webhook has a name, an event-type locator and events with a ``match`` and a handler;
                     a static webhook can route deliveries to an integration; its methods are among GET, HEAD, POST
==================== ===================================================================================
"""

from __future__ import annotations

import inspect
import ipaddress
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from urllib.parse import urlsplit

from pydantic import BaseModel

from engine.authoring.clients import Client
from engine.authoring.config import OperatorConfig, UserInput
from engine.authoring.connections import PUBLIC_URL, AppInstall, Auth, ClientCredentials, OAuth2, Revoke
from engine.authoring.connections import Connection as ConnectionBase
from engine.authoring.definition import Definition
from engine.authoring.mappings import Mapping
from engine.authoring.operations import Emits, Operation
from engine.authoring.slots import CredentialSlot, OAuth2Token
from engine.authoring.webhooks import CelValue, Webhook, WebhookEvent
from engine.cel import Expression, compile_expression
from engine.errors import CelError, DefinitionError
from engine.webhooks.verification import EndpointSecret, OperatorSecret, Verifier
from ingest.catalog import ModelSpec
from ingest.catalog import catalog as ingest_catalog

#: The HTTP methods a webhook endpoint can answer (``Webhook.methods``).
WEBHOOK_METHODS = frozenset({"GET", "HEAD", "POST"})

_SNAKE = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass(frozen=True)
class CompiledMapping:
    """A mapping with its expressions compiled (``None``: empty, so pass-through)."""

    mapping: Mapping
    filter: Expression | None
    map: Expression | None


@dataclass
class Registered:
    """One validated definition plus what registration compiled for it."""

    definition: Definition
    mappings: dict[tuple[str, str], CompiledMapping] = field(default_factory=dict)
    expressions: dict[str, Expression] = field(default_factory=dict)


class Registry:
    """Validated definitions by ID."""

    def __init__(self, *, allow_loopback: bool = False, models: dict[str, ModelSpec] | None = None) -> None:
        self.allow_loopback = allow_loopback
        self._models = models
        self._entries: dict[str, Registered] = {}

    # -- lookup ----------------------------------------------------------------------------------------------

    def __contains__(self, definition_id: object) -> bool:
        return definition_id in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, definition_id: str) -> Definition:
        return self._entries[definition_id].definition

    def definitions(self) -> list[Definition]:
        return [e.definition for e in self._entries.values()]

    def mapping(self, definition_id: str, schema: str, variant: str = "") -> CompiledMapping | None:
        return self._entries[definition_id].mappings.get((schema, variant))

    def expression(self, definition_id: str, key: str) -> Expression:
        """A compiled expression of a definition other than a mapping (a webhook's event-type CEL, say)."""
        return self._entries[definition_id].expressions[key]

    @property
    def models(self) -> dict[str, ModelSpec]:
        return self._models if self._models is not None else ingest_catalog()

    # -- registration ----------------------------------------------------------------------------------------

    def register(self, definition: Definition) -> None:
        """Validate and add one definition; raises ``DefinitionError`` on the first rule it breaks."""
        entry = _Checker(definition, self).check()
        if definition.id in self._entries:
            raise DefinitionError(
                definition.id, "definition", "another definition has this ID", rule="duplicate_definition"
            )
        self._entries[definition.id] = entry

    def register_all(self, definitions: Iterable[Definition]) -> None:
        for definition in definitions:
            self.register(definition)


class _Checker:
    def __init__(self, definition: Definition, registry: Registry) -> None:
        self.d = definition
        self.registry = registry
        self.models = registry.models

    def fail(self, part: str, reason: str, rule: str) -> DefinitionError:
        return DefinitionError(self.d.id or "<no id>", part, reason, rule=rule)

    def check(self) -> Registered:
        d = self.d
        if not isinstance(d.id, str) or not _SNAKE.match(d.id):
            raise self.fail("definition", f"ID {d.id!r} must be a non-empty snake_case name", "definition_id")
        self.check_types()
        self.check_unique()
        for connection in d.connections:
            self.check_connection(connection)
        for client in d.clients:
            self.check_client(client)
        for operation in d.operations:
            self.check_operation(operation)
        for webhook in d.webhooks:
            self.check_webhook(webhook)
        entry = Registered(d)
        self.check_mappings(entry)
        self.check_expressions(entry)
        return entry

    # -- kinds and uniqueness --------------------------------------------------------------------------------

    def check_types(self) -> None:
        d = self.d
        expected: list[tuple[str, Iterable[object], type]] = [
            ("slots", d.slots, CredentialSlot),
            ("clients", d.clients, Client),
            ("connections", d.connections, ConnectionBase),
            ("operations", d.operations, Operation),
            ("webhooks", d.webhooks, Webhook),
        ]
        for part, items, base in expected:
            for item in items:
                if not (inspect.isclass(item) and issubclass(item, base)):
                    raise self.fail(part, f"{item!r} is not a subclass of {base.__name__}", "part_type")
        if d.operator_config is not None and not _subclass(d.operator_config, OperatorConfig):
            raise self.fail("operator_config", "must subclass OperatorConfig", "part_type")
        if d.user_input is not None and not _subclass(d.user_input, UserInput):
            raise self.fail("user_input", "must subclass UserInput", "part_type")
        for operation in d.operations:
            if not _subclass(operation.config, BaseModel):
                raise self.fail(f"operation {operation.__name__}", "config must be a pydantic model", "part_type")
        for mapping in d.mappings:
            if not isinstance(mapping, Mapping):
                raise self.fail("mappings", f"{mapping!r} is not a Mapping", "part_type")

    def check_unique(self) -> None:
        d = self.d
        kinds: list[tuple[str, list[str]]] = [
            ("slot", [s.slot_id() for s in d.slots]),
            ("client", [c.client_id() for c in d.clients]),
            ("connection", [c.connection_id() for c in d.connections]),
            ("operation", [o.operation_id() for o in d.operations]),
            ("webhook", [str(getattr(w, "name", "")) for w in d.webhooks]),
            ("webhook event", [e.event_id() for w in d.webhooks for e in w.events]),
            ("mapping", [f"({m.schema}, {m.variant!r})" for m in d.mappings]),
        ]
        for kind, ids in kinds:
            duplicates = sorted(i for i, n in Counter(ids).items() if n > 1)
            if duplicates:
                raise self.fail(f"{kind}s", f"duplicate {kind} ID {duplicates[0]}", "duplicate_id")

    # -- connections and clients -----------------------------------------------------------------------------

    def check_connection(self, connection: type[ConnectionBase]) -> None:
        part = f"connection {connection.connection_id()}"
        declared = set(self.d.slots)
        selecting = getattr(connection, "credential", None)
        if selecting is None:
            raise self.fail(part, "declares no selecting credential slot", "connection_credential")
        own = connection.all_slots()
        for slot in own:
            if slot not in declared:
                raise self.fail(part, f"slot {_name(slot)} is not declared by the definition", "undeclared_slot")
        if connection.auth is not None and connection.auth.slot not in own:
            raise self.fail(
                part,
                f"auth produces {_name(connection.auth.slot)}, not a slot of this connection",
                "auth_slot",
            )
        if connection.auth is not None:
            self.check_auth(part, connection.auth)
        if isinstance(connection.auth, AppInstall) and not connection.overrides("verify_install"):
            raise self.fail(
                part,
                "installs an app but implements no verify_install(): a callback's installation "
                "ID is a claim, not proof",
                "install_verified",
            )
        disconnect = getattr(connection, "disconnect", None)
        if disconnect is None:
            raise self.fail(
                part, "declares no disconnect (Revoke(slot) or NoRevocation(reason))", "disconnect_declared"
            )
        if isinstance(disconnect, Revoke):
            if disconnect.slot not in own:
                raise self.fail(
                    part,
                    f"revokes {_name(disconnect.slot)}, not a slot of this connection",
                    "disconnect_slot",
                )
            generic = isinstance(connection.auth, OAuth2) and connection.auth.revoke_url
            if not generic and not connection.overrides("revoke"):
                raise self.fail(
                    part,
                    "declares Revoke but implements no revoke() and has no OAuth2 revoke_url",
                    "revoke_implemented",
                )
        elif not getattr(disconnect, "reason", "").strip():
            raise self.fail(part, "NoRevocation needs a reason telling the user what to do", "disconnect_declared")
        for client in connection.clients:
            if client not in self.d.clients:
                raise self.fail(part, f"client {_name(client)} is not declared by the definition", "undeclared_client")
            shapes = [s for s in client.slots if s in own]
            if len(shapes) != 1:
                raise self.fail(
                    part,
                    f"client {_name(client)} must resolve exactly one credential shape here, found {len(shapes)}",
                    "client_shape",
                )
        if connection.validate is not None:
            self.check_validate(part, connection)

    def check_auth(self, part: str, auth: Auth) -> None:
        if isinstance(auth, OAuth2):
            if not issubclass(auth.slot, OAuth2Token):
                raise self.fail(
                    part, f"OAuth2 produces {_name(auth.slot)}, which must subclass OAuth2Token", "auth_slot"
                )
            fields = self.d.operator_config.model_fields if self.d.operator_config else {}
            for name in (auth.client_id, auth.client_secret):
                if name not in fields:
                    raise self.fail(part, f"OAuth2 client field {name!r} is not in the operator config", "oauth_config")
            ids = [p.id for p in auth.products]
            if len(ids) != len(set(ids)) or any(not p.scopes for p in auth.products):
                raise self.fail(part, "products need unique IDs and at least one scope each", "known_product")
        if isinstance(auth, ClientCredentials):
            missing = {"client_id", "client_secret"} - set(auth.slot.model_fields)
            if missing:
                raise self.fail(
                    part,
                    f"client credentials need {', '.join(sorted(missing))} on {_name(auth.slot)}",
                    "auth_slot",
                )
        for url in auth.urls():
            self.check_url(part, url)

    def check_validate(self, part: str, connection: type[ConnectionBase]) -> None:
        op = connection.validate
        assert op is not None
        if op not in self.d.operations:
            raise self.fail(
                part, f"validate names {_name(op)}, which is not a declared operation", "validate_operation"
            )
        if op.policy.mode != "inline" or op.execution_paths() != ["run"]:
            raise self.fail(
                part,
                f"validate operation {_name(op)} must be inline and return a raw result",
                "validate_operation",
            )
        if op.client is not None and op.client not in connection.clients:
            raise self.fail(
                part,
                f"validate operation {_name(op)} uses client {_name(op.client)}, which this connection does not enable",
                "validate_operation",
            )

    def check_client(self, client: type[Client]) -> None:
        part = f"client {client.client_id()}"
        if not client.slots:
            raise self.fail(part, "lists no credential slots", "client_shape")
        for slot in client.slots:
            if slot not in self.d.slots:
                raise self.fail(part, f"slot {_name(slot)} is not declared by the definition", "undeclared_slot")

    def check_manual_slots(self) -> None:
        for slot in self.d.manual_slots():
            if not slot.model_fields:
                raise self.fail(
                    f"slot {slot.slot_id()}",
                    "has no fields and no connection's auth produces it",
                    "manual_slot",
                )

    # -- operations, webhooks, mappings ----------------------------------------------------------------------

    def check_operation(self, op: type[Operation]) -> None:
        part = f"operation {op.operation_id()}"
        paths = op.execution_paths()
        if len(paths) != 1:
            found = " and ".join(paths) if paths else "neither"
            raise self.fail(part, f"must override exactly one of run() and ingest(), found {found}", "execution_path")
        if paths == ["ingest"] and not op.emits:
            raise self.fail(part, "is an ingest operation but declares no emitted schemas", "ingest_schemas")
        if paths == ["run"] and op.emits:
            raise self.fail(part, "returns a raw result but declares emitted schemas", "ingest_schemas")
        if paths == ["ingest"] and not inspect.isasyncgenfunction(op.ingest):
            raise self.fail(part, "ingest() must be an async generator (async def … yield)", "execution_path")
        if paths == ["run"] and not inspect.iscoroutinefunction(op.run):
            raise self.fail(part, "run() must be a coroutine function (async def)", "execution_path")
        if op.client is not None and op.client not in self.d.clients:
            raise self.fail(part, f"client {_name(op.client)} is not declared by the definition", "undeclared_client")
        policy = op.policy
        if policy.mode == "inline" and (policy.reconcile or policy.schedule):
            raise self.fail(part, "reconcile and schedules are for queued operations", "policy")
        if policy.schedule is not None and policy.schedule < timedelta(minutes=1):
            raise self.fail(part, "a schedule must be at least one minute", "policy")
        if policy.product is not None:
            products = {p.id for c in self.d.connections if isinstance(c.auth, OAuth2) for p in c.auth.products}
            if policy.product not in products:
                why = f"needs product {policy.product!r}, which no OAuth2 connection of the definition declares"
                raise self.fail(part, why, "known_product")
        self.check_emits(part, op.emits)
        emitted = {e.schema for e in op.emits}
        for schema in op.complete_snapshots:
            if schema not in emitted:
                why = f"declares a complete snapshot of {schema!r}, which it does not emit"
                raise self.fail(part, why, "snapshot_schemas")

    def check_emits(self, part: str, emits: Iterable[Emits]) -> None:
        for emitted in emits:
            if emitted.schema not in self.models:
                raise self.fail(part, f"emits unknown schema {emitted.schema!r}", "known_schema")

    def check_webhook(self, webhook: type[Webhook]) -> None:
        name = getattr(webhook, "name", "")
        part = f"webhook {name or webhook.__name__}"
        if not name:
            raise self.fail(part, "has no name", "webhook_events")
        verifier = getattr(webhook, "verifier", None)
        if verifier is None:
            raise self.fail(part, "declares no verifier: an unverified webhook cannot be declared", "webhook_verifier")
        if not isinstance(verifier, Verifier):
            # Anything else would register and then refuse every delivery: say so at start-up instead.
            what = f"declares verifier {type(verifier).__name__}, which is not an engine Verifier"
            raise self.fail(part, what, "webhook_verifier")
        if not isinstance(verifier.secret, OperatorSecret | EndpointSecret):
            raise self.fail(part, "its verifier's secret is neither an OperatorSecret nor an EndpointSecret",
                            "webhook_verifier")
        if getattr(webhook, "event_type", None) is None:
            raise self.fail(part, "declares no event_type locator", "webhook_events")
        if webhook.static and webhook.route is Webhook.route:
            raise self.fail(part, "is static but implements no route()", "webhook_events")
        hooks = ("subscribe", "renew", "unsubscribe")
        if webhook.subscribes() and (webhook.static or any(getattr(webhook, m) is getattr(Webhook, m) for m in hooks)):
            raise self.fail(part, "declares subscriptions: it must be per integration and implement subscribe(), "
                            "renew() and unsubscribe()", "webhook_events")
        methods = getattr(webhook, "methods", frozenset())
        if not methods or not set(methods) <= WEBHOOK_METHODS or any(m != m.upper() for m in methods):
            raise self.fail(part, f"declares methods {sorted(methods)}: a non-empty subset of GET, HEAD, POST",
                            "webhook_events")
        matches = [getattr(e, "match", None) for e in webhook.events]
        for event in webhook.events:
            epart = f"{part} event {event.__name__}"
            if not (inspect.isclass(event) and issubclass(event, WebhookEvent)):
                raise self.fail(epart, "is not a WebhookEvent", "part_type")
            if not getattr(event, "match", None):
                raise self.fail(epart, "has no match", "webhook_events")
            if matches.count(event.match) > 1:
                raise self.fail(epart, f"match {event.match!r} is handled twice", "webhook_events")
            if not event.has_handler():
                raise self.fail(epart, "has no handle()", "webhook_events")
            if not inspect.isasyncgenfunction(event.handle):
                raise self.fail(epart, "handle() must be an async generator (async def … yield)", "webhook_events")
            self.check_emits(epart, event.emits)

    def emitted(self) -> dict[tuple[str, str], str]:
        out: dict[tuple[str, str], str] = {}
        for op in self.d.operations:
            for e in op.emits:
                out.setdefault((e.schema, e.variant), f"operation {op.operation_id()}")
        for webhook in self.d.webhooks:
            for event in webhook.events:
                for e in event.emits:
                    out.setdefault((e.schema, e.variant), f"webhook {webhook.name} event {event.event_id()}")
        return out

    def check_mappings(self, entry: Registered) -> None:
        emitted = self.emitted()
        mapped = {(m.schema, m.variant) for m in self.d.mappings}
        for key, where in emitted.items():
            if key not in mapped:
                raise self.fail(where, f"emits ({key[0]}, {key[1]!r}) but no mapping covers it", "mapping_coverage")
        for m in self.d.mappings:
            part = f"mapping ({m.schema}, {m.variant!r})"
            spec = self.models.get(m.schema)
            if spec is None:
                raise self.fail(part, f"targets unknown schema {m.schema!r}", "known_schema")
            if (m.schema, m.variant) not in emitted:
                raise self.fail(part, "nothing in this definition emits this (schema, variant)", "mapping_unused")
            filter_expr = self.compile(part + " filter", m.filter) if m.filter.strip() else None
            map_expr = self.compile(part + " map", m.map) if m.map.strip() else None
            if map_expr is not None:
                self.check_map_fields(part, map_expr, spec)
            entry.mappings[(m.schema, m.variant)] = CompiledMapping(m, filter_expr, map_expr)
        self.check_manual_slots()

    def check_map_fields(self, part: str, expr: Expression, spec: ModelSpec) -> None:
        keys = expr.map_literal_keys()
        if keys is None:
            return
        for key in keys:
            if key not in spec.allowed:
                why = "is filled from the integration context" if key in dict(spec.context) else "is not mapped"
                raise self.fail(part, f"writes field {key!r}, which {why} on {spec.schema}", "map_fields")
        for key in spec.required:
            if key not in keys:
                kind = "upsert key" if key in spec.upsert else "required field"
                raise self.fail(part, f"does not produce {kind} {key!r} of {spec.schema}", "map_fields")

    def check_expressions(self, entry: Registered) -> None:
        for webhook in self.d.webhooks:
            for attr in ("event_type", "delivery_id"):
                locator = getattr(webhook, attr, None)
                if isinstance(locator, CelValue):
                    entry.expressions[f"{webhook.name}.{attr}"] = self.compile(
                        f"webhook {webhook.name} {attr}", locator.expression
                    )

    def compile(self, part: str, text: str) -> Expression:
        try:
            return compile_expression(text)
        except CelError as exc:
            raise self.fail(part, exc.message, "cel_compile") from None

    def check_url(self, part: str, url: str) -> None:
        if url.startswith(PUBLIC_URL + "/"):  # Tether's own origin (a provider it serves): the operator's scheme
            return
        if "{" in url:  # a template filled from operator config; its scheme and host are still literal
            url = re.sub(r"\{[^}]*\}", "x", url)
        parts = urlsplit(url)
        if parts.scheme == "https" and parts.hostname:
            return
        if parts.scheme == "http" and self.registry.allow_loopback and _is_loopback(parts.hostname or ""):
            return
        raise self.fail(part, f"provider URL {url!r} must use https", "https_only")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _subclass(value: object, base: type) -> bool:
    return inspect.isclass(value) and issubclass(value, base)


def _name(value: object) -> str:
    return getattr(value, "__name__", repr(value))
