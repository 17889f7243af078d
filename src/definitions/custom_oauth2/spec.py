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

import json
import re
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from engine import ConfigurationError
from engine.kit.streams import StreamSpec

_ID = re.compile(r"^[a-z][a-z0-9_]*$")
_SECRET_NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")
#: Seed 000 spells the onboarding hints in camelCase; the engine's ``Definition`` in snake_case.
ONBOARDING = {"afterAuth": "after_auth", "combined": "combined", "settings": "settings"}


class SecretRef(BaseModel):
    """``{ secret = "NAME" }``: the name of an operator secret, read from ``TETHER_SECRET_<NAME>``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    secret: str

    @field_validator("secret")
    @classmethod
    def _upper_snake(cls, value: str) -> str:
        if not _SECRET_NAME.match(value):
            raise ValueError("a secret name is UPPER_SNAKE_CASE")
        return value


class ProviderSpec(BaseModel):
    """One ``customOauth2`` provider, exactly as its data file declares it."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    id: str
    name: str
    description: str = ""
    mode: Literal["required", "optional", "manual"] = "manual"
    onboarding: Literal["afterAuth", "combined", "settings"] = "settings"
    access: Literal["read", "write"] = "read"
    client_id: SecretRef = Field(alias="clientId")
    client_secret: SecretRef = Field(alias="clientSecret")
    authorize_url: str = Field(alias="authorizeUrl")
    token_url: str = Field(alias="tokenUrl")
    account_url: str = Field(alias="accountUrl")
    account_id_path: str = Field(alias="accountIdPath")
    account_email_path: str | None = Field(default=None, alias="accountEmailPath")
    account_name_path: str | None = Field(default=None, alias="accountNamePath")
    scopes: tuple[str, ...] = ()
    upgrade_scopes: tuple[str, ...] = Field(default=(), alias="upgradeScopes")
    revoke_url: str | None = Field(default=None, alias="revokeUrl")
    headers: dict[str, str] = {}
    authorize_params: dict[str, str] = Field(default={}, alias="authorizeParams")
    api_url: str | None = Field(
        default=None,
        alias="apiUrl",
        description="The base URL the streams' relative request paths are joined to (https, checked at start-up).",
    )
    streams: tuple[StreamSpec, ...] = Field(
        default=(),
        description="Ingest operations declared as streams ([[streams]]): request, records, pagination, stop "
        "conditions, incremental sync, the schema they emit and its CEL mapping (engine.kit.streams.spec).",
    )

    @field_validator("id")
    @classmethod
    def _snake_id(cls, value: str) -> str:
        if not _ID.match(value):
            raise ValueError("id is a snake_case name")
        return value

    @model_validator(mode="after")
    def _secrets_named_after_the_definition(self) -> ProviderSpec:
        prefix = f"{self.id.upper()}_"
        for ref in (self.client_id, self.client_secret):
            if not ref.secret.startswith(prefix) or len(ref.secret) == len(prefix):
                raise ValueError(f"secret names start with {prefix!r} (TETHER_SECRET_<DEF>_<FIELD>)")
        if self.client_id.secret == self.client_secret.secret:
            raise ValueError("clientId and clientSecret name the same secret")
        names = [stream.name for stream in self.streams]
        if len(set(names)) != len(names):
            raise ValueError("two streams share a name")
        if any(stream.request.path.startswith("/") for stream in self.streams) and not self.api_url:
            raise ValueError("a stream with a relative path needs apiUrl")
        return self

    def field_name(self, ref: SecretRef) -> str:
        """The operator config field a secret name becomes (``NOTION_CLIENT_ID`` → ``client_id``)."""
        return ref.secret[len(self.id) + 1 :].lower()

    @property
    def definition_onboarding(self) -> str:
        return ONBOARDING[self.onboarding]


def parse_spec(data: dict[str, Any], origin: str = "customOauth2 data") -> ProviderSpec:
    """Validate parsed file content; the error names the file and the offending keys, never values."""
    try:
        return ProviderSpec.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '<file>'}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigurationError(f"{origin}: {problems}") from None


def load_spec(path: str | Path) -> ProviderSpec:
    """Read one ``.toml`` or ``.json`` provider file."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix == ".toml":
            data = tomllib.loads(text)
        elif path.suffix == ".json":
            data = json.loads(text)
        else:
            raise ConfigurationError(f"{path.name}: a customOauth2 file is .toml or .json")
    except (tomllib.TOMLDecodeError, ValueError) as exc:
        if isinstance(exc, ConfigurationError):
            raise
        raise ConfigurationError(f"{path.name}: not valid {path.suffix[1:].upper()}") from None
    if not isinstance(data, dict):
        raise ConfigurationError(f"{path.name}: the top level is a table of fields")
    return parse_spec(data, path.name)


def read_path(document: Any, path: str | None) -> Any:
    """The value at a dotted JSON path (``bot.owner.user.id``; list items by index, ``items.0.id``), or ``None``.

    A leading ``$.`` is accepted, so JSONPath-style ``$.user.id`` reads the same.
    """
    if not path:
        return None
    if path.startswith("$."):
        path = path[2:]
    current = document
    for part in path.split("."):
        if isinstance(current, dict):
            current = current.get(part)
        elif isinstance(current, list) and part.isdigit() and int(part) < len(current):
            current = current[int(part)]
        else:
            return None
        if current is None:
            return None
    return current
