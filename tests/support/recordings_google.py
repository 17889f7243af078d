"""Recording the committed cassettes of the Google definitions (``tests/cassettes/<definition>/``): **google_calendar**,
**google**, **google_workspace** and **gcp_scc**, against stand-ins on 127.0.0.1 that answer with Google's documented
shapes (``tests/fixtures/<definition>/``, and ``support.google_apis`` for Gmail and Drive) and page as Google does
(``pageToken`` → ``nextPageToken``, the last page without one).

* Google's OAuth endpoints, shared: OpenID Connect ``userinfo`` (the account the generated health checks read),
  RFC 7009 ``/revoke`` (a disconnect revokes the refresh token, then the access token), and the token endpoint
  (a service account's JWT-bearer grant, RFC 7523).
* **google_calendar**: ``calendars/primary`` and the event list (two pages, then ``nextSyncToken``).
* **google**: the same OAuth; Calendar, Gmail v1 and Drive v3 served by ``support.google_apis`` (one item a page).
* **google_workspace**: the Directory API (users, groups, members; two pages each), through the admin's OAuth grant
  (disconnect revokes it) and through a service account with domain-wide delegation.
* **gcp_scc**: SCC findings (two pages), through a service account key and through workload identity federation
  (STS token exchange, then ``generateAccessToken`` for the impersonated service account).

The recording tap sends Google's origins to the stand-ins (``upstreams``); the cassettes keep Google's URLs.
Registered in ``support.recordings.RECORDERS``, so ``python -m support.recordings`` re-records these too.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import SecretStr

from engine.testing.recording import connect, record_to, scratch_engine
from support.google_apis import ERRORS
from support.replay import Answer, Received, replay_server
from support.standins import answer, fixture, loopback_allowed

#: A token far from expiry: neither the recording nor a replay long after it asks the token endpoint to refresh.
FAR = datetime(2099, 1, 1, tzinfo=UTC)
ACCESS_TOKEN = "ya29.a0R3c0rdedGoogleAccessT0kenNotInACassette01"
REFRESH_TOKEN = "1//0gR3c0rdedGoogleRefreshT0kenNotInACassette01"
OAUTH_CLIENT = {
    "client_id": "1234567890-rec.apps.googleusercontent.com",
    "client_secret": "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sette",
}
#: The credentials these recordings use: none may be in a committed file (``test_standard_suite``).
SECRETS = (ACCESS_TOKEN, REFRESH_TOKEN, OAUTH_CLIENT["client_secret"])
#: Google's documented 404 body (``google.rpc.Status`` over HTTP).
NOT_FOUND = ERRORS["not_found"]
GOOGLE_ORIGINS = (
    "https://openidconnect.googleapis.com",
    "https://oauth2.googleapis.com",
    "https://www.googleapis.com",
    "https://gmail.googleapis.com",
)


def _basic(client: dict[str, str]) -> str:
    return "Basic " + base64.b64encode(f"{client['client_id']}:{client['client_secret']}".encode()).decode()


#: Revoked tokens of the one recorded user grant (emptied when a recording starts): Google ends a grant whole.
REVOKED_GRANTS: set[str] = set()


def google_oauth(request: Received) -> Answer | None:
    """Google's OAuth endpoints for the user grant: ``userinfo`` with the access token, RFC 7009 ``/revoke`` with the
    client's credentials; ``None`` for any other path."""
    if request.path == "/revoke" and request.method == "POST":
        if request.headers.get("authorization") != _basic(OAUTH_CLIENT):
            return Answer(401, {"error": "invalid_client", "error_description": "Unauthorized"})
        token = request.form().get("token", [""])[0]
        # Google's documented answers: 200 once revoked, 400 ``invalid_token`` for a token it does not know, and
        # revoking either token of a grant ends the whole grant, so the other one is then unknown too.
        if token not in (ACCESS_TOKEN, REFRESH_TOKEN) or REVOKED_GRANTS:
            return Answer(400, {"error": "invalid_token", "error_description": "Token expired or revoked"})
        REVOKED_GRANTS.add(token)
        return Answer(200, {})
    if request.path == "/v1/userinfo":
        if request.headers.get("authorization") != f"Bearer {ACCESS_TOKEN}":
            return answer("google_calendar", "error_401")
        return answer("google_calendar", "userinfo")
    return None


def user_grant(slot: type, scopes: tuple[str, ...]) -> Any:
    return slot(
        access_token=SecretStr(ACCESS_TOKEN), refresh_token=SecretStr(REFRESH_TOKEN), expires_at=FAR, scopes=scopes
    )


async def record_oauth_definition(
    definition: Any,
    out: Path,
    workdir: Path,
    operations: tuple[str, ...],
    scopes: tuple[str, ...],
    upstreams: dict[str, str],
) -> list[Path]:
    """The generated OAuth connection's health check, ``operations`` and the disconnect (RFC 7009), recorded."""
    connection = definition.connections[0]
    assert connection.validate is not None
    REVOKED_GRANTS.clear()
    runtime = scratch_engine(definition, workdir, OAUTH_CLIENT)
    try:
        iid = connect(runtime, definition, connection, user_grant(connection.credential, scopes))
        paths = [
            await record_to(runtime, iid, op, out / f"{op}.yaml", upstreams=upstreams)
            for op in (connection.validate.operation_id(), *operations)
        ]
        target = out / f"disconnect.{connection.connection_id()}.yaml"
        paths.append(await record_to(runtime, iid, "disconnect", target, upstreams=upstreams))
        return paths
    finally:
        runtime.close()


# -- Google Calendar -----------------------------------------------------------------------------------------------


def calendar_standin(request: Received) -> Answer:
    """OAuth, the primary calendar, the calendar list, and the primary calendar's events: two pages by
    ``pageToken``; with a ``syncToken``, the changes since."""
    oauth = google_oauth(request)
    if oauth is not None:
        return oauth
    if request.headers.get("authorization") != f"Bearer {ACCESS_TOKEN}":
        return answer("google_calendar", "error_401")
    if request.path == "/calendar/v3/calendars/primary":
        return answer("google_calendar", "calendar_primary")
    if request.path == "/calendar/v3/users/me/calendarList":
        return answer("google_calendar", "calendar_list")
    if request.path == "/calendar/v3/calendars/primary/events" and request.method == "GET":
        if "syncToken" in request.query:
            return answer("google_calendar", "events_incremental")
        next_page = fixture("google_calendar", "events_page1")["body"]["nextPageToken"]
        second = request.query.get("pageToken") == [next_page]
        return answer("google_calendar", "events_page2" if second else "events_page1")
    return Answer(404, NOT_FOUND)


async def record_google_calendar(out: Path, workdir: Path) -> list[Path]:
    from definitions.google_calendar import definition
    from definitions.google_calendar.oauth import OAUTH

    with loopback_allowed(), replay_server(calendar_standin) as server:
        return await record_oauth_definition(
            definition,
            out,
            workdir,
            ("EventsSync",),
            tuple(OAUTH.spec.scopes),
            dict.fromkeys(GOOGLE_ORIGINS, server.url),
        )


# -- Google (Calendar, Gmail, Drive on one grant) ------------------------------------------------------------------


async def record_google(out: Path, workdir: Path) -> list[Path]:
    from definitions.google import definition
    from definitions.google.products import CALENDAR_READ, DRIVE_METADATA, GMAIL_METADATA
    from support.google_apis import GoogleState, app
    from support.server import free_port, serve

    state = GoogleState.from_fixtures()
    state.page_cap = 1  # Google may return fewer items than asked: one a page, so every list pages
    state.authorize = lambda token: {CALENDAR_READ, GMAIL_METADATA, DRIVE_METADATA} if token == ACCESS_TOKEN else None

    def oauth_only(request: Received) -> Answer:
        return google_oauth(request) or Answer(404, NOT_FOUND)

    with loopback_allowed(), replay_server(oauth_only) as oauth, serve(app(state), free_port()) as apis:
        upstreams = {
            "https://openidconnect.googleapis.com": oauth.url,
            "https://oauth2.googleapis.com": oauth.url,
            "https://www.googleapis.com": apis,
            "https://gmail.googleapis.com": apis,
        }
        scopes = ("openid", "email", CALENDAR_READ, GMAIL_METADATA, DRIVE_METADATA)
        return await record_oauth_definition(
            definition, out, workdir, ("EventsSync", "MessagesSync", "FilesSync"), scopes, upstreams
        )


# -- service accounts (Google Workspace, Security Command Center) -------------------------------------------------

#: A real key (the client signs its JWT assertion with it), generated once per process.
_PEM = (
    rsa.generate_private_key(public_exponent=65537, key_size=2048)
    .private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    .decode()
)
SA_EMAIL = "tether-reader@acme-prod.iam.gserviceaccount.com"
#: A service account JSON key as the Cloud console downloads it (its documented fields).
SA_KEY = json.dumps(
    {
        "type": "service_account",
        "project_id": "acme-prod",
        "private_key_id": "5f1e2d3c4b5a69788796a5b4c3d2e1f0a9b8c7d6",
        "private_key": _PEM,
        "client_email": SA_EMAIL,
        "client_id": "104857600000000000001",
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": "https://oauth2.googleapis.com/token",
    }
)
SA_TOKEN = "ya29.c.R3c0rdedServiceAccountT0kenNotInACassette"
STS_TOKEN = "ya29.d.R3c0rdedFederatedT0kenNotInACassette"
IMPERSONATED_TOKEN = "ya29.c.R3c0rdedImpersonatedT0kenNotInACassette"
SECRETS += (_PEM, SA_KEY, SA_TOKEN, STS_TOKEN, IMPERSONATED_TOKEN)
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"


def service_account_token(request: Received, definition: str, name: str) -> Answer | None:
    """Google's token endpoint for a service account's signed assertion (RFC 7523): the documented token answer,
    carrying the recording's own token; ``None`` for any other path."""
    if request.path != "/token" or request.method != "POST":
        return None
    form = {k: v[0] for k, v in request.form().items()}
    minted = fixture(definition, name)
    if form.get("grant_type") != JWT_BEARER or form.get("assertion", "").count(".") != 2:
        return Answer(400, {"error": "invalid_grant", "error_description": "Invalid JWT Signature."})
    return Answer(minted["status"], {**minted["body"], "access_token": SA_TOKEN}, minted["headers"])


# -- Google Workspace ----------------------------------------------------------------------------------------------

WORKSPACE_CUSTOMER = "C03az79cb"
WORKSPACE_INPUT = {"customer_id": WORKSPACE_CUSTOMER, "admin_email": "liz@example.com"}
WORKSPACE_MEMBERS = {"03x8tuzt3jkd0ab": "members_writers", "01baon6m1l4eozs": "members_pages"}


def workspace_standin(request: Received) -> Answer:
    """The Directory API for customer ``C03az79cb``: users and groups two pages each by ``pageToken``, each group's
    members (the second group has none: Google leaves ``members`` out), the customer; Google's OAuth and token
    endpoints for both connections."""
    minted = service_account_token(request, "google_workspace", "token_service_account")
    oauth = minted or google_oauth(request)
    if oauth is not None:
        return oauth
    if request.headers.get("authorization") not in (f"Bearer {ACCESS_TOKEN}", f"Bearer {SA_TOKEN}"):
        return answer("google_workspace", "error_401")
    base = "/admin/directory/v1"
    if request.path == f"{base}/customers/{WORKSPACE_CUSTOMER}":
        return answer("google_workspace", "customer")
    if request.path in (f"{base}/users", f"{base}/groups") and request.query.get("customer") != [WORKSPACE_CUSTOMER]:
        return answer("google_workspace", "error_403_forbidden")
    if request.path == f"{base}/users":
        if request.query.get("maxResults") == ["1"]:
            return answer("google_workspace", "users_health")
        token = fixture("google_workspace", "users_page1")["body"]["nextPageToken"]
        return answer("google_workspace", "users_page2" if request.query.get("pageToken") == [token] else "users_page1")
    if request.path == f"{base}/groups":
        token = fixture("google_workspace", "groups_page1")["body"]["nextPageToken"]
        return answer(
            "google_workspace", "groups_page2" if request.query.get("pageToken") == [token] else "groups_page1"
        )
    group = request.path.removeprefix(f"{base}/groups/").removesuffix("/members")
    if request.path.endswith("/members") and group in WORKSPACE_MEMBERS:
        return answer("google_workspace", WORKSPACE_MEMBERS[group])
    return Answer(404, NOT_FOUND)


async def record_google_workspace(out: Path, workdir: Path) -> list[Path]:
    from definitions.google_workspace import definition
    from definitions.google_workspace.client import SCOPES
    from definitions.google_workspace.connections import GoogleServiceAccountConnection, GoogleWorkspaceOAuthConnection
    from definitions.google_workspace.slots import GoogleServiceAccountKey, GoogleWorkspaceOAuthToken

    with loopback_allowed(), replay_server(workspace_standin) as server:
        upstreams = {origin: server.url for origin in ("https://admin.googleapis.com", *GOOGLE_ORIGINS)}
        REVOKED_GRANTS.clear()
        runtime = scratch_engine(definition, workdir, OAUTH_CLIENT)
        try:
            admin = connect(
                runtime,
                definition,
                GoogleWorkspaceOAuthConnection,
                user_grant(GoogleWorkspaceOAuthToken, SCOPES),
                user_input=WORKSPACE_INPUT,
            )
            paths = [
                await record_to(runtime, admin, op, out / f"{op}.yaml", upstreams=upstreams)
                for op in ("HealthCheck", "DirectorySync")
            ]
            service = connect(
                runtime,
                definition,
                GoogleServiceAccountConnection,
                GoogleServiceAccountKey(key_json=SecretStr(SA_KEY)),
                user_input=WORKSPACE_INPUT,
                owner_id="service-account",
            )
            for op in ("HealthCheck", "DirectorySync"):
                target = out / f"GoogleServiceAccountConnection.{op}.yaml"
                paths.append(await record_to(runtime, service, op, target, upstreams=upstreams))
            target = out / "disconnect.GoogleWorkspaceOAuthConnection.yaml"
            paths.append(await record_to(runtime, admin, "disconnect", target, upstreams=upstreams))
            return paths
        finally:
            runtime.close()


# -- Security Command Center ---------------------------------------------------------------------------------------

SCC_PARENT = "organizations/123456789012"
WIF = {"project_number": "1029384756", "pool_id": "tether-pool", "provider_id": "tether-oidc"}


def scc_standin(request: Received) -> Answer:
    """``sources/-/findings`` of the organization (two pages by ``pageToken``; one finding for the health check's
    ``pageSize=1``), Google's token endpoint for a service account, and for workload identity federation STS's
    token exchange (RFC 8693) and the IAM Credentials API's ``generateAccessToken``."""
    minted = service_account_token(request, "gcp_scc", "token")
    if minted is not None:
        return minted
    if request.path == "/v1/token" and request.method == "POST":  # sts.googleapis.com
        form = {k: v[0] for k, v in request.form().items()}
        if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:token-exchange" or not form.get("audience"):
            return Answer(400, {"error": "invalid_request", "error_description": "Invalid value for grant_type."})
        return Answer(
            200,
            {
                "access_token": STS_TOKEN,
                "issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
                "token_type": "Bearer",
                "expires_in": 3599,
            },
        )
    if request.path.endswith(":generateAccessToken") and request.method == "POST":  # iamcredentials.googleapis.com
        if request.headers.get("authorization") != f"Bearer {STS_TOKEN}":
            return answer("gcp_scc", "error_401")
        return Answer(200, {"accessToken": IMPERSONATED_TOKEN, "expireTime": "2099-01-01T00:00:00Z"})
    if request.headers.get("authorization") not in (f"Bearer {SA_TOKEN}", f"Bearer {IMPERSONATED_TOKEN}"):
        return answer("gcp_scc", "error_401")
    if request.path != f"/v1/{SCC_PARENT}/sources/-/findings":
        return answer("gcp_scc", "error_403")
    first = fixture("gcp_scc", "findings_page1")
    if request.query.get("pageSize") == ["1"]:
        body = {**first["body"], "listFindingsResults": first["body"]["listFindingsResults"][:1]}
        return Answer(first["status"], body, first["headers"])
    second = request.query.get("pageToken") == [first["body"]["nextPageToken"]]
    return answer("gcp_scc", "findings_page2") if second else answer("gcp_scc", "findings_page1")


async def record_gcp_scc(out: Path, workdir: Path) -> list[Path]:
    from definitions.gcp_scc import definition
    from definitions.gcp_scc.connections import ServiceAccountKeyConnection, WorkloadIdentityConnection
    from definitions.gcp_scc.slots import GcpServiceAccountKey, GcpWorkloadIdentity

    with loopback_allowed(), replay_server(scc_standin) as server:
        origins = ("https://securitycenter.googleapis.com", "https://sts.googleapis.com")
        upstreams = {o: server.url for o in (*origins, "https://iamcredentials.googleapis.com", *GOOGLE_ORIGINS)}
        runtime = scratch_engine(definition, workdir, None)
        try:
            key = connect(
                runtime,
                definition,
                ServiceAccountKeyConnection,
                GcpServiceAccountKey(service_account_json=SecretStr(SA_KEY), parent=SCC_PARENT),
            )
            paths = [
                await record_to(runtime, key, op, out / f"{op}.yaml", upstreams=upstreams)
                for op in ("HealthCheck", "FindingsSync")
            ]
            federated = connect(
                runtime,
                definition,
                WorkloadIdentityConnection,
                GcpWorkloadIdentity(**WIF, service_account_email=SA_EMAIL, parent=SCC_PARENT),
                owner_id="federated",
            )
            for op in ("HealthCheck", "FindingsSync"):
                target = out / f"WorkloadIdentityConnection.{op}.yaml"
                paths.append(await record_to(runtime, federated, op, target, upstreams=upstreams))
            return paths
        finally:
            runtime.close()


RECORDERS = {
    "google_calendar": record_google_calendar,
    "google": record_google,
    "google_workspace": record_google_workspace,
    "gcp_scc": record_gcp_scc,
}
