"""The data format of a ``customOauth2`` provider: one TOML or JSON file, the fields of seed 000's block.

Why data and not Python: an OAuth2 provider that only needs token custody, an account lookup and revocation is
fully described by a handful of URLs and JSON paths, so an operator can add one without writing code. The file
is parsed into ``ProviderSpec`` here and turned into a ``Definition`` by ``generate``.

Keys are the seed's camelCase names. ``clientId`` and ``clientSecret`` are secret *names*, never values, written
``{ secret = "NOTION_CLIENT_ID" }`` (seed 000's ``@secret("NOTION_CLIENT_ID")``); the value is read from
``TETHER_SECRET_NOTION_CLIENT_ID``. Because the engine names operator variables ``TETHER_SECRET_<DEF>_<FIELD>``,
a secret name must start with the definition's ID (``NOTION_…`` for ``id = "notion"``).

Besides the seed's fields a file carries ``id``, ``name`` and ``description`` (what the catalog shows), and may
carry ``headers`` (static request headers the provider's API needs, e.g. ``Notion-Version``),
``authorizeParams`` (extra authorize-URL parameters, e.g. Google's ``access_type = "offline"``), and ``apiUrl`` with
``[[streams]]``: ingest operations declared as data (``engine.kit.streams``), each a paged, optionally incremental
listing mapped with CEL into an internal model.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from engine.kit.streams import StreamSpec, paths

_ID = re.compile(r"^[a-z][a-z0-9_]*$")
_SECRET_NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")
#: Seed 000 spells the onboarding hints in camelCase; the engine's ``Definition`` in snake_case.
ONBOARDING = {"afterAuth": "after_auth", "combined": "combined", "settings": "settings"}


class SecretRef(BaseModel):
    """``{ secret = "NAME" }``: the name of an operator secret, read from ``TETHER_SECRET_<NAME>``."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        title="SecretRef",
        json_schema_extra={"description": "The name of an operator secret, never its value."},
    )

    secret: str = Field(
        description="The secret's name, UPPER_SNAKE_CASE; its value is read from TETHER_SECRET_<NAME>.",
        json_schema_extra={"pattern": _SECRET_NAME.pattern},
    )

    @field_validator("secret")
    @classmethod
    def _upper_snake(cls, value: str) -> str:
        if not _SECRET_NAME.match(value):
            raise PydanticCustomError("secret_name", "a secret name is UPPER_SNAKE_CASE (NOTION_CLIENT_ID)")
        return value


Mode = Literal["required", "optional", "manual"]
Onboarding = Literal["afterAuth", "combined", "settings"]
Access = Literal["read", "write"]

_MODE = "Whether the host app requires the integration, offers it, or leaves it to be connected by hand later."
_ONBOARDING = "When the host app prompts for it: right after sign-up (afterAuth), combined with it, or in settings."
_ACCESS = "The access a connection asks for at first: read (scopes) or write (upgradeScopes)."
_SCOPES = "OAuth scopes asked for with read access."
_UPGRADE = "OAuth scopes asked for with write access, and when the host app upgrades a read connection."
#: The key editors and the JSON Schema know a file's schema by; a file may carry it (Taplo also reads ``#:schema``).
_SCHEMA_KEY = Field(default=None, alias="$schema", description="The JSON Schema of this file, for editors.")


def _file_shape(title: str, description: str) -> ConfigDict:
    """A file's top level: unknown keys refused, camelCase keys, a title and description for the JSON Schema."""
    return ConfigDict(
        extra="forbid", frozen=True, populate_by_name=True, title=title, json_schema_extra={"description": description}
    )


def _id_field(description: str) -> Any:
    """A definition ID key: its pattern in the JSON Schema (the validators below give the human message)."""
    return Field(description=description, json_schema_extra={"pattern": _ID.pattern})


def _definition_id(value: str) -> str:
    if not _ID.match(value):
        raise PydanticCustomError("definition_id", "a definition ID is a snake_case name (acme_crm)")
    return value


class ProviderSpec(BaseModel):
    """One data-declared provider, exactly as its file declares it.

    Extension point: a new part of the format is one more field here (camelCase alias, a ``description``, a
    default so older files stay valid); the JSON Schema (``definitions.custom_oauth2.schema``), the reference
    page's key check and the loader's line-numbered errors follow from the model.
    """

    model_config = _file_shape(
        "ProviderSpec", "A provider declared as data: its OAuth 2.0 connection and account lookup."
    )

    schema_: str | None = _SCHEMA_KEY
    id: str = _id_field("The definition's ID, snake_case; class names (stable IDs) derive from it.")
    name: str = Field(description="What the catalog shows.")
    description: str = Field(default="", description="One sentence for the catalog.")
    mode: Mode = Field(default="manual", description=_MODE)
    onboarding: Onboarding = Field(default="settings", description=_ONBOARDING)
    access: Access = Field(default="read", description=_ACCESS)
    client_id: SecretRef = Field(alias="clientId", description="The OAuth client ID's secret name.")
    client_secret: SecretRef = Field(alias="clientSecret", description="The OAuth client secret's secret name.")
    authorize_url: str = Field(alias="authorizeUrl", description="The provider's authorization endpoint (https).")
    token_url: str = Field(alias="tokenUrl", description="The provider's token endpoint (https).")
    account_url: str = Field(alias="accountUrl", description="A GET that answers the connected account (https).")
    account_id_path: str = Field(alias="accountIdPath", description="Dotted path of the account ID in that answer.")
    account_email_path: str | None = Field(default=None, alias="accountEmailPath", description="Path of its email.")
    account_name_path: str | None = Field(default=None, alias="accountNamePath", description="Path of its name.")
    scopes: tuple[str, ...] = Field(default=(), description=_SCOPES)
    upgrade_scopes: tuple[str, ...] = Field(default=(), alias="upgradeScopes", description=_UPGRADE)
    revoke_url: str | None = Field(
        default=None, alias="revokeUrl", description="RFC 7009 revocation endpoint; absent, disconnect only forgets."
    )
    headers: dict[str, str] = Field(default={}, description="Static headers on every request to the provider's API.")
    authorize_params: dict[str, str] = Field(
        default={}, alias="authorizeParams", description="Extra parameters of the authorize URL."
    )
    api_url: str | None = Field(
        default=None,
        alias="apiUrl",
        description="The base URL the streams' relative request paths are joined to (https, checked at start-up).",
    )
    streams: tuple[StreamSpec, ...] = Field(
        default=(),
        description="Ingest operations declared as streams ([[streams]]): request, records, pagination, stop "
        "conditions, incremental sync, the schema they emit and its CEL mapping (docs/data-streams.md).",
    )

    @field_validator("streams")
    @classmethod
    def _streams_named_once_and_rooted(cls, streams: tuple[StreamSpec, ...], info: ValidationInfo) -> tuple:
        names = [stream.name for stream in streams]
        if len(set(names)) != len(names):
            raise PydanticCustomError("stream_names", "two streams share a name (a stream's name is its operation ID)")
        if any(stream.request.path.startswith("/") for stream in streams) and not info.data.get("api_url"):
            raise PydanticCustomError("stream_api_url", "a stream with a relative request path needs apiUrl")
        return streams

    @field_validator("id")
    @classmethod
    def _snake_id(cls, value: str) -> str:
        return _definition_id(value)

    @field_validator("client_id", "client_secret")
    @classmethod
    def _secret_named_after_the_definition(cls, ref: SecretRef, info: ValidationInfo) -> SecretRef:
        # A field validator (not a model one) so the error points at the key, and so at its line.
        definition_id = info.data.get("id")
        if definition_id is None:
            return ref  # the id's own error is reported
        prefix = f"{definition_id.upper()}_"
        if not ref.secret.startswith(prefix) or len(ref.secret) == len(prefix):
            raise PydanticCustomError(
                "secret_prefix", "secret names start with {prefix} (TETHER_SECRET_<DEF>_<FIELD>)", {"prefix": prefix}
            )
        if info.field_name == "client_secret" and info.data.get("client_id") == ref:
            raise PydanticCustomError("secret_distinct", "clientId and clientSecret name the same secret")
        return ref

    def field_name(self, ref: SecretRef) -> str:
        """The operator config field a secret name becomes (``NOTION_CLIENT_ID`` → ``client_id``)."""
        return ref.secret[len(self.id) + 1 :].lower()

    @property
    def definition_onboarding(self) -> str:
        return ONBOARDING[self.onboarding]


class OverrideSpec(BaseModel):
    """An operator's file changing a data-declared definition's product settings for this deployment.

    ``override = "notion"`` names the definition; every other key is optional and replaces the definition's own.
    Only these keys: what a provider *is* (URLs, paths, secrets) stays in its own file.
    """

    model_config = _file_shape(
        "OverrideSpec", "This deployment's mode, onboarding, access or scopes of a data provider."
    )

    schema_: str | None = _SCHEMA_KEY
    override: str = _id_field("The ID of the data-declared definition this file changes.")
    mode: Mode | None = Field(default=None, description=_MODE)
    onboarding: Onboarding | None = Field(default=None, description=_ONBOARDING)
    access: Access | None = Field(default=None, description=_ACCESS)
    scopes: tuple[str, ...] | None = Field(default=None, description=_SCOPES)
    upgrade_scopes: tuple[str, ...] | None = Field(default=None, alias="upgradeScopes", description=_UPGRADE)

    @field_validator("override")
    @classmethod
    def _snake_id(cls, value: str) -> str:
        return _definition_id(value)

    def changes(self) -> dict[str, Any]:
        """The keys this file sets, by field name (what to merge into the target's spec)."""
        return {name: value for name, value in self if name not in ("schema_", "override") and value is not None}


#: A definition file is one or the other: a file with ``override`` is an override, any other a provider.
DataFile = ProviderSpec | OverrideSpec


def read_path(document: Any, path: str | None) -> Any:
    """The value at a dotted JSON path (``bot.owner.user.id``; list items by index, ``items.0.id``), or ``None``.

    A leading ``$.`` is accepted, so JSONPath-style ``$.user.id`` reads the same; no path reads nothing. The
    streams read their paths the same way (``engine.kit.streams.paths``).
    """
    return paths.read(document, path) if path else None
