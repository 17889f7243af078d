"""The runtime: the long-lived objects one engine process holds (settings, database, registry, operator config).

Built once at start-up by ``Runtime.start``; everything that serves requests or runs operations receives it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from engine.catalog import load_registry
from engine.config import OperatorConfig, load_operator_config, missing_operator_variables
from engine.database import Database
from engine.definition import Definition
from engine.errors import ConfigurationError, ProviderNotEnabled
from engine.registry import Registry
from engine.settings import Settings, get_settings


@dataclass
class Runtime:
    settings: Settings
    db: Database
    registry: Registry
    #: Operator config per enabled definition (``None`` for definitions that declare none).
    operator_configs: dict[str, OperatorConfig | None] = field(default_factory=dict)
    #: Definitions left disabled, with the variables they lack.
    disabled: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def start(
        cls, settings: Settings | None = None, *, registry: Registry | None = None, migrate: bool = False
    ) -> Runtime:
        """Load definitions and operator config, open the database; fail fast on a bad configuration."""
        settings = settings or get_settings()
        registry = registry or load_registry(settings)
        runtime = cls(settings, Database(settings.database_url), registry)
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
            model = definition.operator_config
            if model is None:
                self.operator_configs[definition.id] = None
                continue
            missing = missing_operator_variables(definition.id, model)
            if missing and definition.id not in required:
                self.disabled[definition.id] = missing
                continue
            # Explicitly required definitions fail start-up here, naming the variable.
            self.operator_configs[definition.id] = load_operator_config(definition.id, model)

    def enabled(self, definition_id: str) -> bool:
        return definition_id in self.operator_configs

    def definition(self, definition_id: str) -> Definition:
        """An enabled definition; ``ProviderNotEnabled`` when its operator config is missing."""
        definition = self.registry.get(definition_id)
        if not self.enabled(definition_id):
            raise ProviderNotEnabled(f"{definition_id} is not enabled on this server")
        return definition

    def close(self) -> None:
        self.db.dispose()
