"""The engine context: what every service reads and none owns.

Settings, the database, the registry with each definition's operator config, the key ring, and the stores built
directly on them (Keystore, Keymaker, the client cache). Services that act on top of it (custody, the executor,
setup, webhook processing) receive it, or the runtime that extends it (``engine.runtime``), from the composition
root; nothing in here knows them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Self

from engine.authoring.clients import ClientContext, RenewToken
from engine.authoring.config import OperatorConfig, UserInput, load_operator_config, missing_operator_variables
from engine.authoring.connections import Connection
from engine.authoring.definition import Definition
from engine.authoring.slots import CredentialSlot
from engine.catalog.describe import unoffered_connections
from engine.catalog.loading import load_registry
from engine.catalog.registry import Registry
from engine.custody.clientcache import ClientCache
from engine.custody.keymaker import Keymaker
from engine.custody.keystore import Keystore, StoredCredential
from engine.custody.masterkey import KeySource, load_keyring
from engine.custody.oidc import identity_tokens
from engine.errors import ConfigurationError, NotFoundError, ProviderNotEnabled
from engine.governor import Governor, LocalGovernor
from engine.governor.redis import RedisGovernor
from engine.settings import Settings, get_settings
from engine.store.database import Database
from engine.store.tables import Integration


@dataclass
class EngineContext:
    settings: Settings
    db: Database
    registry: Registry
    keys: KeySource
    #: Operator config per enabled definition (``None`` for definitions that declare none).
    operator_configs: dict[str, OperatorConfig | None] = field(default_factory=dict)
    #: Definitions left disabled, with the variables they lack.
    disabled: dict[str, list[str]] = field(default_factory=dict)
    #: Per definition, the connections its operator config cannot serve, with the variables they lack.
    unoffered: dict[str, dict[str, list[str]]] = field(default_factory=dict)

    @classmethod
    def start(
        cls, settings: Settings | None = None, *, registry: Registry | None = None, migrate: bool = False
    ) -> Self:
        """Load definitions and operator config, open the database; fail fast on a bad configuration."""
        settings = settings or get_settings()
        registry = registry or load_registry(settings)
        runtime = cls(settings, Database(settings.database_url), registry, load_keyring(settings))
        runtime._load_operator_configs()
        if migrate:
            runtime.db.upgrade()
        return runtime

    def _load_operator_configs(self) -> None:
        required = self.settings.required_definitions()
        for name in required:
            if name not in self.registry:
                raise ConfigurationError(f"TETHER_ENABLED_DEFINITIONS names unknown definition {name!r}")
        for definition in self.registry.definitions():
            switched_off = self._switched_off(definition)
            if switched_off:
                if definition.id in required:
                    raise ConfigurationError(f"{definition.id}: set {', '.join(switched_off)} to enable it")
                self.disabled[definition.id] = switched_off
                continue
            model = definition.operator_config
            if model is None:
                self.operator_configs[definition.id] = None
                continue
            missing = missing_operator_variables(definition.id, model)
            self.unoffered[definition.id] = unoffered = unoffered_connections(definition)
            if definition.connections and len(unoffered) == len(definition.connections):
                # No connection can start (an OAuth client secret is unset): the definition is not offered.
                missing = list(dict.fromkeys([*missing, *(name for names in unoffered.values() for name in names)]))
                if definition.id in required:
                    raise ConfigurationError(f"{definition.id}: missing environment variable(s): {', '.join(missing)}")
            if missing and definition.id not in required:
                self.disabled[definition.id] = missing
                continue
            # Explicitly required definitions fail start-up here, naming the variable.
            self.operator_configs[definition.id] = load_operator_config(definition.id, model)

    def _switched_off(self, definition: Definition) -> list[str]:
        """``TETHER_X=1`` for each engine switch the definition requires (``requires_settings``) that is off.

        A switch is a boolean ``Settings`` field; when ``Settings`` also has ``{name}_enabled()`` (a field whose
        unset value means "decide from the deployment", like the sandbox), that method gives the answer.
        """
        off = []
        for name in definition.requires_settings:
            if name not in type(self.settings).model_fields:
                raise ConfigurationError(f"{definition.id} requires engine setting {name!r}, which does not exist")
            resolve = getattr(self.settings, f"{name}_enabled", None)
            if not (resolve() if callable(resolve) else bool(getattr(self.settings, name))):
                off.append(f"TETHER_{name.upper()}=1")
        return off

    def enabled(self, definition_id: str) -> bool:
        return definition_id in self.operator_configs

    def definition(self, definition_id: str) -> Definition:
        """An enabled definition; ``not_found`` when unknown, ``provider_not_enabled`` without operator config."""
        if definition_id not in self.registry:
            raise NotFoundError(f"no definition {definition_id!r}")
        definition = self.registry.get(definition_id)
        if not self.enabled(definition_id):
            raise ProviderNotEnabled(f"{definition_id} is not enabled on this server")
        return definition

    def operator_config(self, definition_id: str) -> OperatorConfig | None:
        self.definition(definition_id)
        return self.operator_configs[definition_id]

    def user_input(self, integration: Integration) -> UserInput | None:
        model = self.registry.get(integration.definition_id).user_input
        return model.model_validate(integration.user_input or {}) if model is not None else None

    @cached_property
    def keystore(self) -> Keystore:
        return Keystore(self.db, self.keys.keyring)

    @cached_property
    def keymaker(self) -> Keymaker:
        return Keymaker(self.db, self.keys.keyring)

    @cached_property
    def governor(self) -> Governor:
        """Provider budgets: in Redis when the deployment has one (shared by every worker), else in process."""
        url = self.settings.governor_url or (
            self.settings.broker_url if self.settings.broker_url.startswith(("redis://", "rediss://")) else ""
        )
        if url:
            return RedisGovernor(url, namespace=self.settings.broker_namespace)
        return LocalGovernor()

    @cached_property
    def clients(self) -> ClientCache:
        return ClientCache()

    def build_client(self, integration: Integration, connection: type[Connection], stored: StoredCredential) -> Any:
        """The connection's client for this credential version, built once and reused."""
        if not connection.clients:
            return None
        shape = type(stored.slot)
        client_type = next((c for c in connection.clients if shape in c.slots), None)
        if client_type is None:
            raise NotFoundError(f"connection {connection.connection_id()} has no client for {shape.slot_id()}")
        ctx = self.client_context(integration, stored.slot, renew_token=self.token_renewer(integration, stored))
        return self.clients.get(integration.id, shape.slot_id(), stored.version, lambda: client_type().build(ctx))

    def client_context(
        self, integration: Integration, slot: CredentialSlot, *, renew_token: RenewToken | None = None
    ) -> ClientContext:
        """What a client build of ``integration`` gets: the credential, the configs, Tether's identity and URL."""
        return ClientContext(
            integration.id,
            slot,
            self.operator_config(integration.definition_id),
            self.user_input(integration),
            tenant_id=integration.tenant_id,
            identity_token=identity_tokens(self, integration.tenant_id, integration.id),
            public_url=self.settings.public_url.rstrip("/"),
            renew_token=renew_token,
        )

    def token_renewer(self, integration: Integration, stored: StoredCredential) -> RenewToken | None:
        """How a client of a stored OAuth credential renews a refused access token; the bare context has no
        custody to ask (``engine.services.Services`` has)."""
        return None

    def close(self) -> None:
        self.db.dispose()
        if "governor" in self.__dict__:  # built on first use (cached_property)
            self.governor.close()
