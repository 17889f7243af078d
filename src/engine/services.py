"""What the services below the surfaces are given: the engine context and the two services they hand work to.

Webhook processing dispatches operations to the executor and ends a connection through custody; setup asks custody
for tokens; the scheduler and the queue actors drive the executor. Each receives a ``Services``, which the
composition root (``engine.runtime.Runtime``) implements by building custody and the executor once, so none of them
imports the runtime and the import graph has no cycle through it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from engine.authoring.clients import RenewToken
from engine.authoring.slots import OAuth2Token
from engine.context import EngineContext
from engine.custody.keystore import StoredCredential
from engine.custody.tokens import Custody
from engine.runs.execution import Executor
from engine.store.tables import Integration


class Services(EngineContext, ABC):
    """The engine context, with custody and the executor built on it."""

    @property
    @abstractmethod
    def custody(self) -> Custody:
        """Tokens, refresh and disconnect (``engine.custody.tokens``)."""

    @property
    @abstractmethod
    def executor(self) -> Executor:
        """The one execution path of operations (``engine.runs.execution``)."""

    def token_renewer(self, integration: Integration, stored: StoredCredential) -> RenewToken | None:
        """A stored OAuth credential's client renews a refused access token through custody (one refresh)."""
        if not isinstance(stored.slot, OAuth2Token):
            return None
        integration_id = integration.id

        async def renew(refused: str) -> str:
            return (await self.custody.renew(integration_id, refused)).token

        return renew
