"""From a ``ProviderSpec`` to engine parts: config, slot, client, connection, health check, streams, definition.

Each declared stream becomes an ingest operation of the definition (``engine.kit.streams.stream_operation``, named
by the stream) over the generated client, with its CEL mapping; the streams' URLs are checked by the registry's
``https_only`` rule with the provider's other URLs.

Stable IDs are class names, so every generated class is named from the file's ``id`` (``notion`` →
``NotionConfig``, ``NotionToken``, ``NotionClient``, ``NotionOAuth``, ``NotionHealthCheck``): renaming the ``id``
is a migration, editing anything else is not.

The account URL is checked like the other provider URLs: ``DataOAuth2`` lists it in ``urls()``, so the registry's
``https_only`` rule refuses an ``http://`` account URL too (allowed only to loopback, only when loopback is).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import httpx
from pydantic import SecretStr, create_model, field_validator

from definitions.custom_oauth2.spec import ProviderSpec, read_path
from engine import (
    Client,
    ClientContext,
    Connection,
    ConnectionContext,
    Definition,
    IntegrationMetadata,
    Mapping,
    NoRevocation,
    OAuth2,
    OAuth2Token,
    Operation,
    OperationContext,
    OperatorConfig,
    Policy,
    ProviderError,
    Revoke,
)
from engine.kit.egress import egress_client, read_json
from engine.kit.providerkit import BearerAuth, raise_for_status
from engine.kit.streams import stream_mapping, stream_operation

#: The standard suite's webhook checks, which a data definition cannot meet: the format declares no webhooks.
NO_WEBHOOKS = {
    "webhook.verifies": "a data definition (customOauth2 file) receives no webhooks: the format declares none",
    "webhook.refuses_tampered": "a data definition (customOauth2 file) receives no webhooks: the format declares none",
}


@dataclass(frozen=True, kw_only=True)
class DataOAuth2(OAuth2):
    """``OAuth2`` plus the account URL, so registration checks that URL's scheme like the others."""

    account_url: str = ""
    #: The API base URL and any absolute stream URLs: the streams send the token there.
    api_urls: tuple[str, ...] = ()
    #: The spec this auth was generated from: what an override file is merged into (``loader``).
    spec: ProviderSpec | None = field(default=None, compare=False, repr=False)

    def urls(self) -> list[str]:
        return [*super().urls(), *([self.account_url] if self.account_url else []), *self.api_urls]


class _ClientId(SecretStr):
    """A client ID read from ``TETHER_SECRET_<NAME>`` like the secret, but readable with ``str()``.

    Why: the engine builds the OAuth client with ``str(config.<client_id field>)``; a plain ``SecretStr`` would
    send its mask. A client ID is not a secret once it is in an authorize URL; the repr stays masked anyway.
    """

    def __str__(self) -> str:
        return self.get_secret_value()


@dataclass(frozen=True)
class Generated:
    """The parts generated for one provider; ``definition()`` assembles them, adding any operations."""

    spec: ProviderSpec
    config: type[OperatorConfig]
    slot: type[OAuth2Token]
    client: type[Client]
    connection: type[Connection]
    health_check: type[Operation]
    #: One ingest operation per declared stream, and the streams' mappings.
    streams: tuple[type[Operation], ...] = ()
    stream_mappings: tuple[Mapping, ...] = ()

    def definition(
        self,
        *,
        operations: Sequence[type[Operation]] = (),
        mappings: Sequence[Mapping] = (),
        category: str = "",
        docs_url: str = "",
    ) -> Definition:
        spec = self.spec
        return Definition(
            id=spec.id,
            name=spec.name,
            description=spec.description or f"{spec.name}, connected with OAuth 2.0 declared as data.",
            category=category,
            docs_url=docs_url,
            mode=spec.mode,
            onboarding=cast(Any, spec.definition_onboarding),
            operator_config=self.config,
            slots=(self.slot,),
            clients=(self.client,),
            connections=(self.connection,),
            operations=(self.health_check, *self.streams, *operations),
            mappings=(*self.stream_mappings, *mappings),
            standard_suite_skips=dict(NO_WEBHOOKS),
        )


def camel(definition_id: str) -> str:
    return "".join(part.capitalize() for part in definition_id.split("_"))


def generate(spec: ProviderSpec) -> Generated:
    stem = camel(spec.id)
    id_field, secret_field = spec.field_name(spec.client_id), spec.field_name(spec.client_secret)

    def reveal_id(value: SecretStr) -> SecretStr:
        return _ClientId(value.get_secret_value())

    config = cast(type[OperatorConfig], create_model(
        f"{stem}Config",
        __base__=OperatorConfig,
        __validators__={"_client_id_readable": field_validator(id_field, mode="after")(reveal_id)},
        **{id_field: (SecretStr, ...), secret_field: (SecretStr, ...)},  # type: ignore[call-overload]
    ))
    config.__doc__ = (
        f"{spec.name}'s OAuth client: TETHER_SECRET_{spec.client_id.secret}, TETHER_SECRET_{spec.client_secret.secret}."
    )

    slot = cast(type[OAuth2Token], type(f"{stem}Token", (OAuth2Token,), {
        "__doc__": f"The token set {spec.name} granted.", "__module__": __name__,
    }))

    headers = {"Accept": "application/json", "User-Agent": f"Tether ({spec.id})", **spec.headers}

    def build(self: Client, ctx: ClientContext) -> httpx.AsyncClient:
        credential = ctx.credential
        if not isinstance(credential, OAuth2Token):
            raise TypeError(f"{type(self).__name__} is built from an OAuth2 token")
        return egress_client(headers=headers, auth=BearerAuth(credential.access_token.get_secret_value()))

    client = cast(type[Client], type(f"{stem}Client", (Client,), {
        "__doc__": f"An egress-guarded HTTP client sending {spec.name}'s bearer token.",
        "__module__": __name__,
        "slots": (slot,),
        "build": build,
    }))

    async def fetch_account(http: httpx.AsyncClient) -> Any:
        response = await http.get(spec.account_url)
        raise_for_status(response, spec.name)
        return await read_json(response)

    async def run(self: Operation, ctx: OperationContext) -> Any:
        account = await fetch_account(ctx.client)
        return {"ok": True, "account_id": _text(read_path(account, spec.account_id_path))}

    health_check = cast(type[Operation], type(f"{stem}HealthCheck", (Operation,), {
        "__doc__": f"Health check: {spec.name}'s account URL answers to the stored token.",
        "__module__": __name__,
        "client": client,
        "policy": Policy.inline(),
        "run": run,
    }))

    async def resolve(self: Connection, ctx: ConnectionContext) -> IntegrationMetadata:
        account = await fetch_account(ctx.client)
        account_id = _text(read_path(account, spec.account_id_path))
        if account_id is None:
            raise ProviderError(f"{spec.name}'s account answer has nothing at accountIdPath")
        return IntegrationMetadata(
            account_id=account_id,
            account_email=_text(read_path(account, spec.account_email_path)),
            account_name=_text(read_path(account, spec.account_name_path)),
        )

    auth = oauth_auth(spec, slot)
    disconnect = Revoke(slot) if spec.revoke_url else NoRevocation(
        f"{spec.name} offers no token revocation: remove Tether's access in your {spec.name} account settings"
    )
    attrs: dict[str, Any] = {
        "__doc__": f"Connect {spec.name} with OAuth 2.0 (declared in data).",
        "__module__": __name__,
        "credential": slot,
        "clients": (client,),
        "auth": auth,
        "validate": health_check,
        "disconnect": disconnect,
        "title": f"Connect {spec.name}",
        "resolve": resolve,
    }
    connection = cast(type[Connection], type(f"{stem}OAuth", (Connection,), attrs))
    streams = tuple(
        stream_operation(stream, client=client, base_url=spec.api_url or "", provider=spec.name, module=__name__)
        for stream in spec.streams
    )
    mappings = tuple(stream_mapping(stream) for stream in spec.streams)
    return Generated(spec, config, slot, client, connection, health_check, streams, mappings)


def oauth_auth(spec: ProviderSpec, slot: type[OAuth2Token]) -> DataOAuth2:
    """The connection's OAuth2 declaration; write access asks for the upgrade scopes from the start."""
    initial = spec.upgrade_scopes if spec.access == "write" and spec.upgrade_scopes else spec.scopes
    return DataOAuth2(
        slot=slot,
        authorize_url=spec.authorize_url,
        token_url=spec.token_url,
        revoke_url=spec.revoke_url,
        account_url=spec.account_url,
        scopes=tuple(initial),
        upgrade_scopes=tuple(spec.upgrade_scopes),
        client_id=spec.field_name(spec.client_id),
        client_secret=spec.field_name(spec.client_secret),
        extra_authorize_params=tuple(spec.authorize_params.items()),
        api_urls=(
            *([spec.api_url] if spec.api_url else []),
            *(s.request.path for s in spec.streams if not s.request.path.startswith("/")),
        ),
        spec=spec,
    )


def _text(value: Any) -> str | None:
    """Account fields are strings; numeric IDs (Todoist, GitHub) are written as text, objects are not read."""
    if value is None or isinstance(value, dict | list):
        return None
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)

