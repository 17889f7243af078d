"""Credential slots: the typed shape of one persisted secret.

A slot is a pydantic model of the *final* secret a connection stores (an API token, an installation ID, an OAuth
token set), never of transient auth data. Its class name is its stable ID: it is written to the database, so
renaming the class is a migration.

A slot that a connection's auth flow produces is auth-managed; every other slot is entered by a person and its
JSON Schema becomes the manual form. Mark secret fields ``SecretStr`` so they never print.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, SecretStr


class CredentialSlot(BaseModel):
    """Base class for credential slots. Subclass it; the subclass name is the slot ID."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: Short human name shown on the manual form; defaults to the class name.
    title: ClassVar[str] = ""

    @classmethod
    def slot_id(cls) -> str:
        return cls.__name__

    @classmethod
    def form_schema(cls) -> dict[str, Any]:
        """JSON Schema of the manual form (secret fields are ``writeOnly`` with ``format: password``)."""
        return cls.model_json_schema()

    def reveal(self) -> dict[str, Any]:
        """The plain values, secrets included: for the Keystore and for clients, never for output."""
        return _reveal(self.model_dump())


class OAuth2Token(CredentialSlot):
    """The persisted result of an OAuth 2.0 grant. Subclass it per definition so the slot ID is the provider's.

    The refresh token never leaves the Keystore: consumers get short-lived access tokens only.
    """

    access_token: SecretStr
    refresh_token: SecretStr | None = None
    token_type: str = "Bearer"
    expires_at: datetime | None = None
    scopes: tuple[str, ...] = ()


def _reveal(value: Any) -> Any:
    from pydantic import SecretBytes, SecretStr

    if isinstance(value, SecretStr | SecretBytes):
        return value.get_secret_value()
    if isinstance(value, dict):
        return {k: _reveal(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_reveal(v) for v in value]
    return value
