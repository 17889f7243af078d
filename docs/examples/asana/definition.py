"""Asana: connected with an API key a person pastes, its listings synced as streams.

Made by ``tether definitions new asana`` and filled in from Asana's API reference (https://developers.asana.com/
reference): a personal access token sent as a bearer token, the account from ``GET /users/me``, and one project's
tasks (``streams.py``). This is the worked example of ``docs/authoring.md``; ``tests/definitions/test_asana_example.py``
scaffolds the skeleton, puts these files in its place and syncs against a local server answering Asana's shapes.
"""

from __future__ import annotations

from typing import Any

import httpx
from pydantic import SecretStr

from asana.streams import STREAMS
from engine import (
    Client,
    ClientContext,
    Connection,
    ConnectionContext,
    CredentialSlot,
    Definition,
    IntegrationMetadata,
    NoRevocation,
    Operation,
    OperationContext,
    OperatorConfig,
    Policy,
    ProviderError,
    UserInput,
)
from engine.kit.egress import egress_client
from engine.kit.providerkit import BearerAuth, json_getter, raise_for_status
from engine.kit.streams import stream_mapping, stream_operation
from engine.kit.streams.paths import read

PROVIDER = "Asana"
#: The user the token acts as (``GET /users/me``: ``{"data": {"gid", "name", "email", "workspaces"}}``).
ACCOUNT_PATH = "/users/me"
ACCOUNT_ID = "data.gid"
ACCOUNT_NAME = "data.name"
ACCOUNT_EMAIL = "data.email"


class AsanaConfig(OperatorConfig):
    #: ``TETHER_ASANA_API_URL``: every Asana API path is under it.
    api_url: str = "https://app.asana.com/api/1.0"


class AsanaInput(UserInput):
    """What the user picks when connecting: the project whose tasks are synced (its ``gid``, in the project's URL)."""

    project_gid: str


class AsanaApiKey(CredentialSlot):
    """A personal access token (Asana: My settings → Apps → Manage developer apps → New access token)."""

    title = "Personal access token"

    api_key: SecretStr


def check(response: httpx.Response) -> None:
    """Error answers: 401 is ``unauthorized``, 429 defers the run by ``Retry-After`` (Asana sends it with every 429,
    in seconds), a 5xx is retried. Asana's errors are plain HTTP statuses with ``{"errors": [...]}``."""
    raise_for_status(response, PROVIDER, typed=True, transient=True)


get_json = json_getter(check)


class AsanaClient(Client):
    """An egress-guarded client of Asana's API."""

    slots = (AsanaApiKey,)

    def build(self, ctx: ClientContext) -> httpx.AsyncClient:
        assert isinstance(ctx.credential, AsanaApiKey)
        assert isinstance(ctx.operator_config, AsanaConfig)
        token = ctx.credential.api_key.get_secret_value()
        # Asana takes a personal access token as ``Authorization: Bearer <token>``.
        return egress_client(base_url=ctx.operator_config.api_url, auth=BearerAuth(token))


class AsanaHealthCheck(Operation):
    """The account answer: checked before a credential is saved, and by ``POST …/validate``."""

    client = AsanaClient
    policy = Policy.inline()

    async def run(self, ctx: OperationContext) -> dict[str, Any]:
        account = await get_json(ctx.client, ACCOUNT_PATH)
        return {"ok": True, "account_id": _text(read(account, ACCOUNT_ID))}


class AsanaConnection(Connection):
    title = "Paste an API key"
    credential = AsanaApiKey
    clients = (AsanaClient,)
    auth = None  # typed in: the slot's JSON Schema is the form
    validate = AsanaHealthCheck
    # A personal access token cannot be revoked through the API: its owner deletes it.
    disconnect = NoRevocation("Delete the token in Asana: My settings → Apps → Manage developer apps.")

    async def resolve(self, ctx: ConnectionContext) -> IntegrationMetadata:
        account = await get_json(ctx.client, ACCOUNT_PATH)
        account_id = _text(read(account, ACCOUNT_ID))
        if account_id is None:
            raise ProviderError(f"{PROVIDER}'s account answer has nothing at {ACCOUNT_ID!r}")
        return IntegrationMetadata(
            account_id=account_id,
            account_name=_text(read(account, ACCOUNT_NAME)),
            account_email=_text(read(account, ACCOUNT_EMAIL)),
        )


def _text(value: Any) -> str | None:
    """Account fields as text (numeric IDs too); objects and lists are no account field."""
    if value is None or isinstance(value, dict | list):
        return None
    return str(value).lower() if isinstance(value, bool) else str(value)


#: One ingest operation per stream, run by the kit with this client.
STREAM_OPERATIONS = tuple(
    stream_operation(spec, client=AsanaClient, provider=PROVIDER, module=__name__) for spec in STREAMS
)

definition = Definition(
    id="asana",
    name=PROVIDER,
    description="Sync the tasks of an Asana project.",
    category="productivity",
    docs_url="https://developers.asana.com/reference/rest-api-reference",
    operator_config=AsanaConfig,
    user_input=AsanaInput,
    slots=(AsanaApiKey,),
    clients=(AsanaClient,),
    connections=(AsanaConnection,),
    operations=(AsanaHealthCheck, *STREAM_OPERATIONS),
    mappings=tuple(stream_mapping(spec) for spec in STREAMS),
)
