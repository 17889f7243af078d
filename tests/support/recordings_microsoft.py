"""Recording the Microsoft definitions' cassettes (``tests/cassettes/<definition>/``) against stand-ins on 127.0.0.1.

* **azure_entra_id**: the tenant's token endpoint (client credentials, ``login.microsoftonline.com``) and Graph's
  ``/organization``, ``/users/delta`` (two pages linked by ``@odata.nextLink``, the last one ending in
  ``@odata.deltaLink``) and ``/groups/delta``, answered from ``tests/fixtures/azure_entra_id/`` (Graph's documented
  shapes).
* **microsoft_teams**: as the signed-in user, ``/me``, ``/me/joinedTeams``, ``/teams/{id}/channels`` and a
  channel's ``/messages/delta`` (two pages, then a delta link), from the published examples in
  ``tests/fixtures/microsoft_teams/published/`` (microsoft-graph-docs-contrib).
* **azure_security_center**: the tenant's token endpoint (scope ``https://management.azure.com/.default``) and
  Azure Resource Manager's subscription read and Defender for Cloud's assessments list (two pages linked by ARM's
  ``nextLink``), from ``tests/fixtures/azure_security_center/``.

Each stand-in checks the credential the definition sends and answers the provider's documented error otherwise.
The recording tap sends the providers' origins to the stand-in (``upstreams``); the cassettes keep the providers'
URLs. ``support.recordings`` registers these recorders (``RECORDERS``) and their credentials (``SECRETS``).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from pydantic import SecretStr

from engine.testing.cassettes import dump_cassette
from engine.testing.recording import connect, record_to, scratch_engine, webhook_cassette
from support.replay import Answer, Received, replay_server
from support.standins import FIXTURES, answer, fixture, loopback_allowed

LOGIN = "https://login.microsoftonline.com"
GRAPH = "https://graph.microsoft.com"
ARM = "https://management.azure.com"

#: The tenant of the documented examples (Contoso's, in Graph's ``/organization`` example).
TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
ENTRA_CONFIG = {
    "client_id": "9c2b5ab8-7d4e-4e0f-8a4d-5c1f0e2b3a41",
    "client_secret": "entra~R3c0rdedSecretNotInCassette",
}
ENTRA_APP_TOKEN = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.R3c0rdedEntraAppT0ken.sig"
TEAMS_CONFIG = {
    "client_id": "5e3ce6c0-2b1f-4285-8d4b-75ee78787346",
    "client_secret": "teams~R3c0rdedSecretNotInCassette",
}
TEAMS_ACCESS = "eyJ0eXAiOiJKV1QiLCJub25jZSI6.R3c0rdedTeamsUserT0ken.sig"
TEAMS_REFRESH = "0.AXoAR3c0rdedTeamsRefreshT0kenNotInACassette"
ARM_PRINCIPAL = {
    "tenant_id": TENANT,
    "client_id": "4f2a1c3e-8b7d-4e6f-9a0b-1c2d3e4f5a6b",
    "subscription_id": "20ff7fc3-e762-44dd-bd96-b71116dcdc23",
}
ARM_SECRET = "arm~R3c0rdedPrincipalSecretNotInCassette"
ARM_TOKEN = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.R3c0rdedArmT0ken.sig"

SECRETS = (
    ENTRA_CONFIG["client_secret"],
    ENTRA_APP_TOKEN,
    TEAMS_CONFIG["client_secret"],
    TEAMS_ACCESS,
    TEAMS_REFRESH,
    ARM_SECRET,
    ARM_TOKEN,
)

Recorder = Callable[[Path, Path], Awaitable[list[Path]]]


def published(definition: str, name: str) -> dict[str, Any]:
    """A provider's own example (``published/``): ``{"source", "body"}``, the body as the docs print it."""
    return json.loads((FIXTURES / definition / "published" / f"{name}.json").read_text())


def graph_examples(path: Path, definition: str, webhook: str, bodies: list[dict[str, Any]]) -> Path:
    """Graph's documented notification batches as an example cassette (the suite puts its own clientState in)."""
    deliveries = [({"Content-Type": "application/json"}, json.dumps(body).encode()) for body in bodies]
    return dump_cassette(webhook_cassette(definition, webhook, deliveries, list(SECRETS)), path)


def _lifecycle() -> dict[str, Any]:
    """The lifecycle notifications of Graph's article (one per ``lifecycleEvent``), shared by both definitions."""
    return dict(json.loads((FIXTURES / "azure_entra_id" / "lifecycle_notifications.json").read_text())["body"])


def _client_credentials(request: Received, config: dict[str, str], token: str, definition: str) -> Answer:
    """The tenant's v2.0 token endpoint: the client-credentials grant with the app's own ID and secret."""
    form = {k: v[0] for k, v in request.form().items()}
    if form.get("client_id") != config["client_id"] or form.get("client_secret") != config["client_secret"]:
        return answer("azure_entra_id", "token_error_invalid_client")
    minted = fixture(definition, "token")
    return Answer(200, {**minted["body"], "access_token": token}, minted["headers"])


# -- Microsoft Entra ID --------------------------------------------------------------------------------------------


def entra_standin(request: Received) -> Answer:
    if request.method == "POST" and request.path == f"/{TENANT}/oauth2/v2.0/token":
        return _client_credentials(request, ENTRA_CONFIG, ENTRA_APP_TOKEN, "azure_entra_id")
    if request.headers.get("authorization") != f"Bearer {ENTRA_APP_TOKEN}":
        return answer("azure_entra_id", "error_401")
    if request.path == "/v1.0/organization":
        return answer("azure_entra_id", "organization")
    if request.path == "/v1.0/users/delta":
        # The first page's @odata.nextLink carries $skiptoken; the last answers @odata.deltaLink.
        return answer("azure_entra_id", "users_delta_page2" if "$skiptoken" in request.query else "users_delta_page1")
    if request.path == "/v1.0/groups/delta":
        return answer("azure_entra_id", "groups_delta")
    return Answer(404, {"error": {"code": "Request_ResourceNotFound", "message": "Resource not found."}})


async def record_entra(out: Path, workdir: Path) -> list[Path]:
    from definitions.azure_entra_id import definition
    from definitions.azure_entra_id.connections import EntraAdminConsentConnection
    from definitions.azure_entra_id.slots import EntraTenant

    runtime = scratch_engine(definition, workdir, ENTRA_CONFIG)
    try:
        iid = connect(runtime, definition, EntraAdminConsentConnection, EntraTenant(tenant_id=TENANT))
        with loopback_allowed(), replay_server(entra_standin) as server:
            upstreams = {LOGIN: server.url, GRAPH: server.url}
            paths = [
                await record_to(runtime, iid, op, out / f"{op}.yaml", upstreams=upstreams)
                for op in ("HealthCheck", "DirectorySync")
            ]
    finally:
        runtime.close()
    users = json.loads((FIXTURES / "azure_entra_id" / "notification_users.json").read_text())["body"]
    target = out / "webhook.change_notifications.yaml"
    paths.append(graph_examples(target, "azure_entra_id", "change_notifications", [users, _lifecycle()]))
    return paths


# -- Microsoft Teams -----------------------------------------------------------------------------------------------

#: The team of the published ``joinedTeams`` example.
JOINED_TEAM = "172b0cce-e65d-44ce-9a49-91d9f2e8493a"


def _published_answer(name: str) -> Answer:
    return Answer(200, published("microsoft_teams", name)["body"], {"Content-Type": "application/json"})


#: The team and channel of the published channel-message examples (what a change notification names).
MESSAGES_TEAM, MESSAGES_CHANNEL = (
    "fbe2bf47-16c8-47cf-b4a5-4b9b187c508b",
    "19:4a95f7d8db4c4e7fae857bcebe0623e6@thread.tacv2",
)
#: What the recorded FetchChangedMessages is dispatched with: a created message, a deleted one Graph still answers
#: (``deletedDateTime`` set) and a deleted one it no longer has (404: the message of the published notification).
CHANGED = [
    ("1616965872395", "created"),
    ("1614029151240", "deleted"),
    ("1612293113399", "deleted"),
]


def _one_message(message_id: str) -> Answer:
    """``GET …/messages/{id}`` (chatmessage-get.md): a message of the published lists, else Graph's 404."""
    for name in ("channel_messages", "deleted_message"):
        for message in published("microsoft_teams", name)["body"]["value"]:
            if message.get("id") == message_id:
                return Answer(200, message, {"Content-Type": "application/json"})
    return Answer(404, {"error": {"code": "NotFound", "message": "Resource not found."}})


def _same_channel(page: dict[str, Any], path: str) -> dict[str, Any]:
    """The published delta pages come from the docs' own channel: their links point, as Graph's do, to the channel
    that was asked (the ``$skiptoken`` / ``$deltatoken`` kept)."""
    out = dict(page)
    for key in ("@odata.nextLink", "@odata.deltaLink"):
        if key in out:
            out[key] = f"{GRAPH}{path}?{str(out[key]).split('?', 1)[1]}"
    return out


def teams_standin(request: Received) -> Answer:
    """As the signed-in user: ``/me``, the joined team and its channel, and the channel's message delta (the first
    page's ``@odata.nextLink`` carries ``$skiptoken``, the last answers ``@odata.deltaLink``)."""
    if request.headers.get("authorization") != f"Bearer {TEAMS_ACCESS}":
        return answer("microsoft_teams", "error_401")
    if request.path == "/v1.0/me":
        return answer("microsoft_teams", "me")
    if request.path == "/v1.0/me/joinedTeams":
        return _published_answer("joined_teams")
    if request.path == f"/v1.0/teams/{JOINED_TEAM}/channels":
        return _published_answer("channels")
    if request.path.startswith(f"/v1.0/teams/{MESSAGES_TEAM}/channels/") and "/messages/" in request.path:
        return _one_message(unquote(request.path).rsplit("/", 1)[1])
    if request.path.endswith("/messages/delta"):
        page = published("microsoft_teams", "delta_final" if "$skiptoken" in request.query else "delta_initial")
        return Answer(200, _same_channel(page["body"], request.path), {"Content-Type": "application/json"})
    return Answer(404, {"error": {"code": "NotFound", "message": "Resource not found."}})


async def record_teams(out: Path, workdir: Path) -> list[Path]:
    from definitions.microsoft_teams import definition
    from definitions.microsoft_teams.connections import SCOPES, TeamsOAuthConnection
    from definitions.microsoft_teams.slots import TeamsOAuthToken

    runtime = scratch_engine(definition, workdir, TEAMS_CONFIG)
    try:
        credential = TeamsOAuthToken(
            access_token=SecretStr(TEAMS_ACCESS),
            refresh_token=SecretStr(TEAMS_REFRESH),
            # Far ahead: neither the recording nor a replay long after it asks the token endpoint.
            expires_at=datetime(2099, 1, 1, tzinfo=UTC),
            scopes=SCOPES,
        )
        iid = connect(runtime, definition, TeamsOAuthConnection, credential)
        with loopback_allowed(), replay_server(teams_standin) as server:
            upstreams = {LOGIN: server.url, GRAPH: server.url}
            paths = [
                await record_to(runtime, iid, op, out / f"{op}.yaml", upstreams=upstreams)
                for op in ("HealthCheck", "ChannelMessagesSync")
            ]
            changed = {
                "messages": [
                    {"team_id": MESSAGES_TEAM, "channel_id": MESSAGES_CHANNEL, "message_id": m, "change_type": c}
                    for m, c in CHANGED
                ]
            }
            target = out / "FetchChangedMessages.yaml"
            paths.append(
                await record_to(runtime, iid, "FetchChangedMessages", target, config=changed, upstreams=upstreams)
            )
    finally:
        runtime.close()
    bodies = [published("microsoft_teams", n)["body"] for n in ("notification_channel_message", "notification_reply")]
    target = out / "webhook.channel_messages.yaml"
    paths.append(graph_examples(target, "microsoft_teams", "channel_messages", [*bodies, _lifecycle()]))
    return paths


# -- Microsoft Defender for Cloud (Azure Resource Manager) ---------------------------------------------------------

SUBSCRIPTION = "20ff7fc3-e762-44dd-bd96-b71116dcdc23"  # the documented examples' subscription
SECURITY = f"/subscriptions/{SUBSCRIPTION}/providers/Microsoft.Security"


def arm_standin(request: Received) -> Answer:
    """The tenant's token endpoint for the service principal, then ARM: the subscription, the assessments (two
    pages: the first's ``nextLink`` carries ``$skipToken``) and the sub-assessments, each with its api-version."""
    if request.method == "POST" and request.path == f"/{TENANT}/oauth2/v2.0/token":
        form = {k: v[0] for k, v in request.form().items()}
        if form.get("client_id") != ARM_PRINCIPAL["client_id"] or form.get("client_secret") != ARM_SECRET:
            return answer("azure_security_center", "token_error")
        if form.get("scope") != f"{ARM}/.default":
            return answer("azure_security_center", "token_error")
        minted = fixture("azure_security_center", "token")
        return Answer(200, {**minted["body"], "access_token": ARM_TOKEN}, minted["headers"])
    if request.headers.get("authorization") != f"Bearer {ARM_TOKEN}":
        return answer("azure_security_center", "error_401")
    version = request.query.get("api-version", [""])
    if request.path == f"/subscriptions/{SUBSCRIPTION}" and version == ["2022-12-01"]:
        return answer("azure_security_center", "subscription")
    if request.path == f"{SECURITY}/assessments" and version == ["2021-06-01"]:
        return answer(
            "azure_security_center", "assessments_page2" if "$skipToken" in request.query else "assessments_page1"
        )
    if request.path == f"{SECURITY}/subAssessments" and version == ["2019-01-01-preview"]:
        return answer("azure_security_center", "sub_assessments")
    return Answer(404, {"error": {"code": "ResourceNotFound", "message": "The resource was not found."}})


async def record_defender(out: Path, workdir: Path) -> list[Path]:
    from definitions.azure_security_center import definition
    from definitions.azure_security_center.connections import ServicePrincipalConnection
    from definitions.azure_security_center.slots import AzureServicePrincipal

    runtime = scratch_engine(definition, workdir, None)
    try:
        credential = AzureServicePrincipal(**ARM_PRINCIPAL, client_secret=SecretStr(ARM_SECRET))
        iid = connect(runtime, definition, ServicePrincipalConnection, credential)
        with loopback_allowed(), replay_server(arm_standin) as server:
            upstreams = {LOGIN: server.url, ARM: server.url}
            return [
                await record_to(runtime, iid, op, out / f"{op}.yaml", upstreams=upstreams)
                for op in ("HealthCheck", "AssessmentsCollect", "SubAssessmentsCollect")
            ]
    finally:
        runtime.close()


RECORDERS: dict[str, Recorder] = {
    "azure_entra_id": record_entra,
    "microsoft_teams": record_teams,
    "azure_security_center": record_defender,
}
