"""The ``Definition``: one provider package, declared top to bottom.

A definition's ID is explicit (it is stored on every integration); every other stable ID comes from a class name.
The registry validates a definition when it is registered and refuses an inconsistent one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from engine.authoring.clients import Client
from engine.authoring.config import OperatorConfig, UserInput
from engine.authoring.connections import Connection
from engine.authoring.mappings import Mapping
from engine.authoring.operations import Operation
from engine.authoring.slots import CredentialSlot
from engine.authoring.webhooks import Webhook
from engine.governor.limits import RateLimit


@dataclass(frozen=True, kw_only=True)
class Definition:
    id: str
    name: str
    description: str
    category: str = ""
    docs_url: str = ""
    #: Product hints (seed 000): is the integration required, optional or connected by hand later; when to
    #: prompt for it (``after_auth``, ``combined``, ``settings``).
    mode: Literal["required", "optional", "manual"] = "manual"
    onboarding: Literal["after_auth", "combined", "settings"] = "settings"
    operator_config: type[OperatorConfig] | None = None
    #: Engine switches (``Settings`` field names, e.g. ``"sandbox"``) that must be on for this definition to be
    #: enabled; off, it is disabled and the catalog names the variable that turns it on (``TETHER_SANDBOX=1``).
    requires_settings: tuple[str, ...] = ()
    user_input: type[UserInput] | None = None
    slots: tuple[type[CredentialSlot], ...] = ()
    clients: tuple[type[Client], ...] = ()
    connections: tuple[type[Connection], ...] = ()
    operations: tuple[type[Operation], ...] = ()
    webhooks: tuple[type[Webhook], ...] = ()
    mappings: tuple[Mapping, ...] = ()
    #: The provider's published rate limit, kept by the rate governor across every worker (``engine.governor``).
    #: Undeclared, calls are still paused when the provider answers 429 or reports a window with nothing left.
    rate_limit: RateLimit | None = None
    #: Checks of the standard suite (``engine.testing.suite.CHECKS``) this definition cannot pass, each with the
    #: reason (``{"disconnect.revokes": "the provider has no revocation endpoint"}``). The registry refuses an
    #: unknown check name or an empty reason.
    standard_suite_skips: dict[str, str] = field(default_factory=dict, hash=False, compare=False)

    def topic(self, name: str) -> str:
        return f"{self.id}.{name}"

    def connection(self, connection_id: str) -> type[Connection] | None:
        return next((c for c in self.connections if c.connection_id() == connection_id), None)

    def operation(self, operation_id: str) -> type[Operation] | None:
        return next((o for o in self.operations if o.operation_id() == operation_id), None)

    def slot(self, slot_id: str) -> type[CredentialSlot] | None:
        return next((s for s in self.slots if s.slot_id() == slot_id), None)

    def manual_slots(self) -> tuple[type[CredentialSlot], ...]:
        """Slots a person enters by hand: those no connection's auth flow produces."""
        managed = {c.auth.slot for c in self.connections if c.auth is not None and c.auth.produces_credential}
        return tuple(s for s in self.slots if s not in managed)
