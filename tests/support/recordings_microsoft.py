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
import os
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from engine.kit.egress import LOOPBACK_ENV
from engine.testing.recording import connect, record_to, scratch_engine
from support.cassette_fixtures import response_fixture
from support.replay import Answer, Received, replay_server

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
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

SECRETS = (
    ENTRA_CONFIG["client_secret"],
    ENTRA_APP_TOKEN,
    TEAMS_CONFIG["client_secret"],
    TEAMS_ACCESS,
    TEAMS_REFRESH,
)

Recorder = Callable[[Path, Path], Awaitable[list[Path]]]


def fixture(definition: str, name: str) -> dict[str, Any]:
    return response_fixture(FIXTURES / definition, name)


def published(definition: str, name: str) -> dict[str, Any]:
    """A provider's own example (``published/``): ``{"source", "body"}``, the body as the docs print it."""
    return json.loads((FIXTURES / definition / "published" / f"{name}.json").read_text())


def answer(definition: str, name: str) -> Answer:
    recorded = fixture(definition, name)
    return Answer(recorded["status"], recorded["body"], recorded.get("headers") or {})


@contextmanager
def loopback_allowed() -> Iterator[None]:
    """Stand-ins are plain http on 127.0.0.1: the egress guard admits them only with loopback allowed."""
    before = os.environ.get(LOOPBACK_ENV)
    os.environ[LOOPBACK_ENV] = "1"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(LOOPBACK_ENV, None)
        else:
            os.environ[LOOPBACK_ENV] = before


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
            return [
                await record_to(runtime, iid, op, out / f"{op}.yaml", upstreams=upstreams)
                for op in ("HealthCheck", "DirectorySync")
            ]
    finally:
        runtime.close()


RECORDERS: dict[str, Recorder] = {"azure_entra_id": record_entra}
