"""Client registrations: factories that turn one resolved credential into an API client.

A client lists the credential slots it can be built from. A connection that enables a client must hold exactly
one of those slots, so the credential shape a build receives is never ambiguous. Built clients are cached by the
runtime per (integration, slot, credential version); client classes are in-process only and need no stable ID.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from engine.authoring.config import OperatorConfig, UserInput
from engine.authoring.slots import CredentialSlot

#: ``identity_token(audience, ttl_seconds)``: a JWT signed by Tether's own OIDC key (``/v1/oidc/jwks``), whose
#: subject is ``tether:{tenant}:{integration}``; for workload identity federation (a provider trusting Tether).
IdentityToken = Callable[[str, int], str]

#: ``renew_token(refused)``: the provider refused the OAuth access token ``refused`` before its recorded expiry (it
#: answered 401): refresh the grant once through the Keystore and return the new access token. Concurrent callers
#: holding the same refused token share one refresh. Raises ``reconnect_required`` when the grant is dead.
RenewToken = Callable[[str], Awaitable[str]]


@dataclass(frozen=True)
class ClientContext:
    """What a client build receives: the one credential it resolved, plus the definition's configs."""

    integration_id: str
    credential: CredentialSlot
    operator_config: OperatorConfig | None
    user_input: UserInput | None
    tenant_id: str = ""
    #: Tether's identity for this integration (``None`` where the engine has none to give, e.g. in unit tests).
    identity_token: IdentityToken | None = None
    #: Tether's own public URL (``Settings.public_url``, no trailing slash), for a provider Tether itself serves
    #: (the sandbox at ``{public_url}/sandbox``); empty where the engine has none to give.
    public_url: str = ""
    #: For an OAuth2 credential the engine holds: see ``RenewToken`` (``None`` elsewhere, e.g. during setup).
    renew_token: RenewToken | None = None


class Client(ABC):
    """Base class for client registrations. Subclass it and implement ``build``."""

    #: The slots this client can be built from.
    slots: ClassVar[tuple[type[CredentialSlot], ...]] = ()

    @classmethod
    def client_id(cls) -> str:
        return cls.__name__

    @abstractmethod
    def build(self, ctx: ClientContext) -> Any:
        """Return a ready client (usually an ``httpx.AsyncClient`` from ``engine.kit.egress``)."""
