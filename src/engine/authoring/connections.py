"""Connections: one way to connect a definition (OAuth, app install, an API key).

A connection wires credential slots and clients together and declares its four hooks:

- ``auth``: how the selecting credential is acquired (``OAuth2``, ``AppInstall``, ``ClientCredentials``), or
  ``None`` when a person types it in (direct input of a manual slot);
- ``validate``: an inline operation run as a health check before a credential is saved;
- ``resolve``: a method deriving integration metadata (who or what we connected to);
- ``disconnect``: ``Revoke(slot)`` (the provider-side teardown in ``revoke``, or RFC 7009 for OAuth2 with a
  ``revoke_url``) or ``NoRevocation(reason)``, an explicit statement that the provider offers none.

The connection's class name is its stable ID (``provider_data.connection`` names the active one).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict

from engine.authoring.config import OperatorConfig, UserInput
from engine.authoring.slots import CredentialSlot

if TYPE_CHECKING:
    from engine.authoring.clients import Client
    from engine.authoring.operations import Operation


# -- auth declarations ---------------------------------------------------------------------------------------

#: A provider URL may start with this placeholder: Tether's own public URL (``Settings.public_url``), for a provider
#: Tether itself serves (the sandbox). The engine fills it in before any request; the registry accepts such a URL
#: as the operator's own origin (its scheme is whatever the operator serves on).
PUBLIC_URL = "{public_url}"


def own_url(url: str, public_url: str) -> str:
    """``url`` with a leading ``{public_url}`` replaced by ``public_url`` (any other URL is returned as it is)."""
    return public_url.rstrip("/") + url[len(PUBLIC_URL):] if url.startswith(PUBLIC_URL) else url


@dataclass(frozen=True, kw_only=True)
class Auth:
    """Base of auth declarations: ``slot`` is the credential the flow produces."""

    slot: type[CredentialSlot]

    #: Whether the flow itself produces the slot (so it is not a manual form). Client credentials do not: a
    #: person enters the client ID and secret, and the engine mints tokens from them.
    produces_credential: ClassVar[bool] = True

    def urls(self) -> list[str]:
        """Provider URLs this auth calls, checked by the registry (https only)."""
        return []


@dataclass(frozen=True)
class Product:
    """One product a single OAuth grant can serve (Google's Calendar, Gmail, Drive): its name and read scopes.

    A connection with products asks, at connect or upgrade, for the scopes it already holds plus the chosen
    product's, so a grant grows one product at a time (Google's incremental authorization) and what it covers is
    read back from the granted scopes: a product is granted when all its scopes are. An operation names the
    product it needs in ``Policy(product=...)``; without its scopes it is ``upgrade_required``.
    """

    id: str
    title: str
    scopes: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class OAuth2(Auth):
    """OAuth 2.0 authorization code with PKCE (S256).

    ``client_id`` and ``client_secret`` name operator config fields. ``upgrade_scopes`` are requested when the
    host app upgrades access (read → write). ``products`` are named scope sets the grant can add one at a time
    (``Product``).
    """

    authorize_url: str
    token_url: str
    revoke_url: str | None = None
    scopes: tuple[str, ...] = ()
    upgrade_scopes: tuple[str, ...] = ()
    client_id: str = "client_id"
    client_secret: str = "client_secret"
    pkce: bool = True
    extra_authorize_params: tuple[tuple[str, str], ...] = ()
    products: tuple[Product, ...] = ()

    def urls(self) -> list[str]:
        return [u for u in (self.authorize_url, self.token_url, self.revoke_url) if u]

    def product(self, product_id: str) -> Product | None:
        return next((p for p in self.products if p.id == product_id), None)

    def at(self, public_url: str) -> OAuth2:
        """This auth with ``{public_url}`` filled in its endpoints (itself when none uses it)."""
        if not any(u.startswith(PUBLIC_URL) for u in self.urls()):
            return self
        return replace(
            self,
            authorize_url=own_url(self.authorize_url, public_url),
            token_url=own_url(self.token_url, public_url),
            revoke_url=own_url(self.revoke_url, public_url) if self.revoke_url else None,
        )


@dataclass(frozen=True, kw_only=True)
class ClientCredentials(Auth):
    """OAuth 2.0 client credentials (app-only access), with the client ID and secret from the slot.

    The slot must have ``client_id`` and ``client_secret`` fields; the engine mints access tokens from them.
    """

    token_url: str
    scopes: tuple[str, ...] = ()

    produces_credential: ClassVar[bool] = False

    def urls(self) -> list[str]:
        return [self.token_url]


@dataclass(frozen=True, kw_only=True)
class AppInstall(Auth):
    """Install an app into the user's account (GitHub App style).

    ``install_url`` may reference operator config fields as ``{field}``. The callback parameter named by
    ``callback_param`` is a claim, not proof: the connection's ``verify_install`` checks it with the provider.
    """

    install_url: str
    callback_param: str = "installation_id"

    def urls(self) -> list[str]:
        return [self.install_url]


# -- disconnect declarations ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Revoke:
    """Disconnect revokes ``slot`` at the provider."""

    slot: type[CredentialSlot]


@dataclass(frozen=True)
class NoRevocation:
    """The provider offers no revocation; ``reason`` tells the user what to do by hand."""

    reason: str


Disconnect = Revoke | NoRevocation


# -- metadata and hook context -------------------------------------------------------------------------------


class IntegrationMetadata(BaseModel):
    """Who or what an integration is connected to (never transient setup details)."""

    model_config = ConfigDict(extra="forbid")

    account_id: str | None = None
    account_name: str | None = None
    account_email: str | None = None
    workspace: str | None = None
    url: str | None = None
    attributes: dict[str, Any] = {}


@dataclass(frozen=True)
class ConnectionContext:
    """What ``resolve`` and ``revoke`` receive."""

    integration_id: str
    credential: CredentialSlot
    client: Any
    operator_config: OperatorConfig | None
    user_input: UserInput | None


class Connection:
    """Base class for connections. Subclass it and set the class attributes."""

    #: The selecting credential slot: the one whose presence makes this connection active.
    credential: ClassVar[type[CredentialSlot]]
    #: Further slots that take part (the selecting slot is always included).
    slots: ClassVar[tuple[type[CredentialSlot], ...]] = ()
    clients: ClassVar[tuple[type[Client], ...]] = ()
    auth: ClassVar[Auth | None] = None
    validate: ClassVar[type[Operation] | None] = None
    disconnect: ClassVar[Disconnect]
    #: Catalog text shown next to the connect button.
    title: ClassVar[str] = ""

    @classmethod
    def connection_id(cls) -> str:
        return cls.__name__

    @classmethod
    def all_slots(cls) -> tuple[type[CredentialSlot], ...]:
        own = getattr(cls, "credential", None)
        head = (own,) if own is not None else ()
        return head + tuple(s for s in cls.slots if s is not own)

    @classmethod
    def overrides(cls, name: str) -> bool:
        return getattr(cls, name) is not getattr(Connection, name)

    async def resolve(self, ctx: ConnectionContext) -> IntegrationMetadata | None:
        """Derive integration metadata; the default derives none."""
        return None

    async def verify_install(self, ctx: ConnectionContext) -> None:
        """For ``AppInstall``: prove the installation the callback claims belongs to this app (ask the provider with
        the app's own credentials). Callback parameters are claims, not proof; the registry requires an override."""
        raise NotImplementedError(f"{type(self).__name__} installs an app but implements no verify_install()")

    async def revoke(self, ctx: ConnectionContext) -> None:
        """Provider-side teardown for ``Revoke``; OAuth2 connections with a ``revoke_url`` need not override it."""
        raise NotImplementedError(f"{type(self).__name__} declares Revoke but implements no revoke()")


def granted_products(auth: object, granted: tuple[str, ...] | list[str]) -> list[str]:
    """The IDs of the connection's products whose every scope the grant holds, in declaration order."""
    if not isinstance(auth, OAuth2):
        return []
    have = set(granted)
    return [p.id for p in auth.products if set(p.scopes) <= have]


def missing_product_scopes(auth: object, product_id: str, granted: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """The scopes of ``product_id`` the grant lacks (all of them when the connection declares no such product)."""
    product = auth.product(product_id) if isinstance(auth, OAuth2) else None
    if product is None:
        return (product_id,)
    have = set(granted)
    return tuple(s for s in product.scopes if s not in have)


def missing_write_scopes(auth: object, granted: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """The write tier's scopes a grant lacks: empty when the connection has no separate write tier (an API key, an
    OAuth connection without upgrade scopes beyond its initial ones) or the grant holds them all."""
    if not isinstance(auth, OAuth2) or not auth.upgrade_scopes:
        return ()
    if not set(auth.upgrade_scopes) - set(auth.scopes or ()):
        return ()
    have = set(granted)
    return tuple(s for s in auth.upgrade_scopes if s not in have)
