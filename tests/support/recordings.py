"""Recording the committed cassettes (``tests/cassettes/<definition>/``) against live local servers.

* **sandbox**: the real sandbox provider served by a live Tether on 127.0.0.1 (``sandbox.conftest.start``), connected
  with the seeded key ``sbx_key_acme`` through the API; its webhook example is a delivery the sandbox really sent
  (a control changes a record, the delivery lands in Tether's ``webhook_delivery`` table).
* **github_app**, **slack** and **okta**: stand-ins on 127.0.0.1 (``support.replay.ReplayServer``) that answer with the
  providers' documented shapes (``tests/fixtures/<definition>/``) and page them as the providers do (GitHub's
  ``Link`` header, Slack's ``response_metadata.next_cursor``); the recording tap sends the providers' origins to
  them (``upstreams``) while the cassettes keep the providers' URLs. Their webhook examples are the documented
  example deliveries.

``python -m support.recordings [OUT]`` (from ``tests/``, with ``PYTHONPATH`` as the README's test command sets it)
re-records every cassette into ``OUT`` (default ``tests/cassettes``).
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from urllib.parse import parse_qs

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import SecretStr

from engine.testing.cassettes import dump_cassette
from engine.testing.recording import connect, record_to, record_webhook_examples, scratch_engine, webhook_cassette
from support import recordings_google, recordings_microsoft, recordings_more, recordings_other
from support.replay import Answer, Received, replay_server
from support.standins import FIXTURES, fixture, loopback_allowed

TESTS = Path(__file__).resolve().parents[1]
CASSETTES = TESTS / "cassettes"
#: Credentials the recordings use; the test of the committed cassettes checks none of them is in any file.
GITHUB_TOKEN = "ghp_R3c0rdedT0kenNeverInACassette0001"
SLACK_TOKEN = "xoxb-17653672481-19874698323-R3c0rdedN0tInCassette"
SLACK_CONFIG = {
    "client_id": "1234.5678",
    "client_secret": "slack-client-secret-rec",
    "signing_secret": "8f742231b10e8888abcd99yyyzzz85a5",
}
#: The recording app's key: generated once per process (a real key: the app JWT is signed with it).
_PRIVATE_KEY = (
    rsa.generate_private_key(public_exponent=65537, key_size=2048)
    .private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    .decode()
)
GITHUB_CONFIG = {
    "app_id": "123456",
    "app_slug": "tether-rec",
    "private_key": _PRIVATE_KEY,
    "webhook_secret": "github-webhook-secret-rec",
}
SANDBOX_KEY = "sbx_key_acme"
INSTALLATION = 42
INSTALLATION_TOKEN = "ghs_1nstallat1onT0kenNotInACassette01"
#: The values the slot and operator config schemas declare secret (client IDs and app IDs are not).
SECRETS = (
    GITHUB_TOKEN,
    SLACK_TOKEN,
    SANDBOX_KEY,
    SLACK_CONFIG["client_secret"],
    SLACK_CONFIG["signing_secret"],
    GITHUB_CONFIG["private_key"],
    GITHUB_CONFIG["webhook_secret"],
    INSTALLATION_TOKEN,
    "00QCjAl4MlV-R3c0rdedOktaT0kenNotInACassette",
)


# -- helpers ---------------------------------------------------------------------------------------------------


def webhook_examples(path: Path, definition: str, webhook: str, deliveries: list[tuple[dict[str, str], bytes]]) -> Path:
    """Documented example deliveries as an example cassette."""
    return dump_cassette(webhook_cassette(definition, webhook, deliveries, list(SECRETS)), path)


# -- GitHub ----------------------------------------------------------------------------------------------------


def github_standin(request: Received) -> Answer:
    """``/user`` and ``/user/repos`` (one repository per page, linked with GitHub's ``Link`` header) for a token; the
    app's installation 42: its token mint, ``/installation/repositories`` (two pages) and uninstalling."""
    auth = request.headers.get("authorization", "")
    if request.path.startswith("/app/"):
        if not auth.startswith("Bearer ey"):  # an app JWT
            return Answer(401, fixture("github_app", "error_401")["body"])
        if request.method == "POST" and request.path == f"/app/installations/{INSTALLATION}/access_tokens":
            minted = fixture("github_app", "access_token")
            # Far ahead, unlike the documented example's: a replay long after the recording must not mint again.
            return Answer(201, {**minted["body"], "token": INSTALLATION_TOKEN, "expires_at": "2099-01-01T00:00:00Z"})
        if request.method == "DELETE" and request.path == f"/app/installations/{INSTALLATION}":
            return Answer(204)
        return Answer(404, {"message": "Not Found"})
    if request.path == "/installation/repositories":
        if auth != f"Bearer {INSTALLATION_TOKEN}":
            return Answer(401, fixture("github_app", "error_401")["body"])
        page = request.query.get("page", ["1"])[0]
        listed = fixture(
            "github_app", "installation_repositories_page2" if page == "2" else "installation_repositories_page1"
        )
        return Answer(200, listed["body"], listed["headers"])
    if auth != f"Bearer {GITHUB_TOKEN}":
        return Answer(401, fixture("github_app", "error_401")["body"])
    if request.path == "/user":
        return Answer(200, fixture("github_app", "user")["body"])
    if request.path == "/user/repos":
        repos = fixture("github_app", "user_repos")
        page = int(request.query.get("page", ["1"])[0])
        body = repos["body"][page - 1 : page]
        headers = dict(repos["headers"])
        if page < len(repos["body"]):
            headers["Link"] = f'<https://api.github.com/user/repos?per_page=100&page={page + 1}>; rel="next"'
        return Answer(200, body, headers)
    return Answer(404, {"message": "Not Found"})


async def record_github(out: Path, workdir: Path) -> list[Path]:
    from definitions.github_app import definition
    from definitions.github_app.connections import GitHubAppConnection, GitHubTokenConnection
    from definitions.github_app.slots import GitHubAppInstallation, GitHubPersonalAccessToken

    runtime = scratch_engine(definition, workdir, GITHUB_CONFIG)
    try:
        iid = connect(
            runtime, definition, GitHubTokenConnection, GitHubPersonalAccessToken(token=SecretStr(GITHUB_TOKEN))
        )
        with loopback_allowed(), replay_server(github_standin) as server:
            upstreams = {"https://api.github.com": server.url}
            paths = [
                await record_to(runtime, iid, op, out / f"{op}.yaml", upstreams=upstreams)
                for op in ("HealthCheck", "RepositorySync")
            ]
            app = connect(
                runtime,
                definition,
                GitHubAppConnection,
                GitHubAppInstallation(installation_id=INSTALLATION),
                owner_id="app",
            )
            for op in ("HealthCheck", "RepositorySync"):
                target = out / f"GitHubAppConnection.{op}.yaml"
                paths.append(await record_to(runtime, app, op, target, upstreams=upstreams))
            target = out / "disconnect.GitHubAppConnection.yaml"
            paths.append(await record_to(runtime, app, "disconnect", target, upstreams=upstreams))
    finally:
        runtime.close()
    deliveries = []
    for name in ("webhook_repository", "webhook_ping"):
        example = fixture("github_app", name)
        deliveries.append((example["headers"], json.dumps(example["body"]).encode()))
    paths.append(webhook_examples(out / "webhook.app.yaml", "github_app", "app", deliveries))
    return paths


# -- Slack -------------------------------------------------------------------------------------------------------


def slack_standin(request: Received) -> Answer:
    """``auth.test``, ``users.list`` (two pages by ``cursor``) and ``auth.revoke``, with the bot token."""
    if request.headers.get("authorization") != f"Bearer {SLACK_TOKEN}":
        return Answer(200, fixture("slack", "error_invalid_auth")["body"])
    form = {k: v[0] for k, v in parse_qs(request.body.decode()).items()}
    names = {"/api/auth.test": "auth_test", "/api/auth.revoke": "auth_revoke"}
    if request.path == "/api/users.list":
        first = fixture("slack", "users_list_page1")
        cursor = first["body"]["response_metadata"]["next_cursor"]
        name = "users_list_page2" if form.get("cursor") == cursor else "users_list_page1"
    elif request.path in names:
        name = names[request.path]
    else:
        return Answer(200, {"ok": False, "error": "unknown_method"})
    answer = fixture("slack", name)
    return Answer(answer["status"], answer["body"], answer["headers"])


async def record_slack(out: Path, workdir: Path) -> list[Path]:
    from definitions.slack import definition
    from definitions.slack.connections import SlackOAuthConnection
    from definitions.slack.slots import SlackOAuthToken

    runtime = scratch_engine(definition, workdir, SLACK_CONFIG)
    try:
        credential = SlackOAuthToken(
            access_token=SecretStr(SLACK_TOKEN), token_type="bot", scopes=("users:read", "users:read.email")
        )
        iid = connect(runtime, definition, SlackOAuthConnection, credential)
        with loopback_allowed(), replay_server(slack_standin) as server:
            upstreams = {"https://slack.com": server.url}
            paths = [
                await record_to(runtime, iid, op, out / f"{op}.yaml", upstreams=upstreams)
                for op in ("HealthCheck", "UserSync")
            ]
            paths.append(
                await record_to(
                    runtime, iid, "disconnect", out / "disconnect.SlackOAuthConnection.yaml", upstreams=upstreams
                )
            )
    finally:
        runtime.close()
    deliveries = []
    for name in ("event_user_change", "event_team_join"):
        deliveries.append(({"Content-Type": "application/json"}, json.dumps(fixture("slack", name)["body"]).encode()))
    paths.append(webhook_examples(out / "webhook.events.yaml", "slack", "events", deliveries))
    return paths


# -- Okta --------------------------------------------------------------------------------------------------------

OKTA_TOKEN = "00QCjAl4MlV-R3c0rdedOktaT0kenNotInACassette"
OKTA_PAGES = {
    "/api/v1/users": ("users_page1", "users_page2"),
    "/api/v1/groups": ("groups_page1", "groups_page2"),
    "/api/v1/groups/00g1emaKYZTWRYYRRTSK/users": ("group_engineering_users", None),
    "/api/v1/groups/00g1emaKYZTWRYYRRTSL/users": ("group_everyone_users_page1", "group_everyone_users_page2"),
}


def okta_standin(request: Received) -> Answer:
    """The org's users, groups and members, each paged by ``after`` as the documented ``Link`` headers say."""
    if request.headers.get("authorization") != f"SSWS {OKTA_TOKEN}":
        return Answer(401, fixture("okta", "error_401")["body"])
    pages = OKTA_PAGES.get(request.path)
    if pages is None:
        return Answer(404, {"errorCode": "E0000007", "errorSummary": "Not found"})
    name = pages[1] if "after" in request.query and pages[1] else pages[0]
    answer = fixture("okta", name)
    return Answer(answer["status"], answer["body"], answer["headers"])


async def record_okta(out: Path, workdir: Path) -> list[Path]:
    from definitions.okta import definition
    from definitions.okta.connections import OktaApiTokenConnection
    from definitions.okta.slots import OktaApiToken

    runtime = scratch_engine(definition, workdir, None)
    try:
        credential = OktaApiToken(api_token=SecretStr(OKTA_TOKEN))
        iid = connect(
            runtime, definition, OktaApiTokenConnection, credential, user_input={"org_url": "https://acme.okta.com"}
        )
        with loopback_allowed(), replay_server(okta_standin) as server:
            upstreams = {"https://acme.okta.com": server.url}
            paths = [
                await record_to(runtime, iid, op, out / f"{op}.yaml", upstreams=upstreams)
                for op in ("HealthCheck", "DirectorySync")
            ]
    finally:
        runtime.close()
    delivery = fixture("okta", "event_hook_delivery")
    deliveries = [({"Content-Type": "application/json"}, json.dumps(delivery["body"]).encode())]
    paths.append(webhook_examples(out / "webhook.event_hook.yaml", "okta", "event_hook", deliveries))
    return paths


# -- SCIM -----------------------------------------------------------------------------------------------------------


async def record_scim(out: Path, workdir: Path) -> list[Path]:
    """SCIM is pushed, never called: its one cassette is RFC 7643's example user and group as pushed resources."""
    deliveries = [
        (
            {"Content-Type": "application/scim+json", "X-Tether-Scim-Resource": resource},
            (FIXTURES / "scim" / "published" / name).read_bytes(),
        )
        for resource, name in (("User", "rfc7643_8_1_minimal_user.json"), ("Group", "rfc7643_8_4_group.json"))
    ]
    return [webhook_examples(out / "webhook.scim.yaml", "scim", "scim", deliveries)]


# -- the sandbox -------------------------------------------------------------------------------------------------


async def consent(redirect_url: str, account: str) -> None:
    """Play the browser through the sandbox's OAuth: Tether's start URL, the consent form, Tether's callback."""
    async with httpx.AsyncClient(follow_redirects=False, timeout=30) as browser:
        authorize = (await browser.get(redirect_url)).headers["location"]
        query = {k: v[0] for k, v in parse_qs(authorize.split("?", 1)[1]).items()}
        approved = await browser.post(
            authorize.split("?")[0], data={**query, "account": account, "decision": "approve"}
        )
        assert approved.status_code == 302, approved.text
        back = await browser.get(approved.headers["location"])
        assert back.status_code == 302 and "tether_result=connected" in back.headers["location"], back.text


async def record_sandbox(out: Path, workdir: Path) -> list[Path]:
    """Against the real sandbox on a live Tether: the API key connection's health check and sync, and one change
    webhook the sandbox delivered."""
    from engine.api.principal import create_api_key
    from sandbox.conftest import start

    with pytest.MonkeyPatch.context() as monkeypatch:
        for live in start(f"sqlite:///{workdir / 'tether.db'}", str(workdir), monkeypatch):
            key, _ = create_api_key(live.runtime.db, tenant="acme", role="server", name="recording")
            headers = {"Authorization": f"Bearer {key}"}
            async with httpx.AsyncClient(base_url=live.base, headers=headers, timeout=30) as api:
                created = await api.post("/v1/integrations", json={"definition_id": "sandbox", "owner_id": "rec"})
                iid = created.json()["id"]
                answer = await api.post(
                    f"/v1/integrations/{iid}/credentials/SandboxApiKey", json={"api_key": SANDBOX_KEY}
                )
                assert answer.status_code == 200, answer.text
                paths = [await record_to(live.runtime, iid, op, out / f"{op}.yaml") for op in ("HealthCheck", "Sync")]
                # The OAuth connection: its health check, and a disconnect that revokes the grant (RFC 7009).
                created = await api.post("/v1/integrations", json={"definition_id": "sandbox", "owner_id": "oauth"})
                oauth_id = created.json()["id"]
                started = await api.post(
                    f"/v1/integrations/{oauth_id}/connect",
                    json={"connection": "SandboxOAuth", "return_url": f"{live.base}/integrations"},
                )
                assert started.status_code == 200, started.text
                await consent(started.json()["redirect_url"], "acme")
                paths.append(
                    await record_to(live.runtime, oauth_id, "HealthCheck", out / "SandboxOAuth.HealthCheck.yaml")
                )
                paths.append(
                    await record_to(live.runtime, oauth_id, "disconnect", out / "disconnect.SandboxOAuth.yaml")
                )
                changed = await api.patch(
                    "/sandbox/control/accounts/acme/records/users/usr_5bcebeee2cf7",
                    json={"title": "Principal Engineer"},
                )
                assert changed.status_code == 200, changed.text
            paths.append(record_webhook_examples(live.runtime, iid, "events", out / "webhook.events.yaml", limit=1))
    return paths


RECORDERS = {
    "sandbox": record_sandbox,
    "github_app": record_github,
    "slack": record_slack,
    "okta": record_okta,
    "scim": record_scim,
}

# The other definitions' recordings, each group in a module of its own (their credentials join SECRETS).
for _group in (recordings_microsoft, recordings_other, recordings_more, recordings_google):
    RECORDERS.update(_group.RECORDERS)
    SECRETS += _group.SECRETS


async def record_all(out: Path, workdir: Path, only: tuple[str, ...] = ()) -> dict[str, list[Path]]:
    done = {}
    for name, recorder in RECORDERS.items():
        if only and name not in only:
            continue
        (workdir / name).mkdir(parents=True, exist_ok=True)
        done[name] = await recorder(out / name, workdir / name)
    return done


if __name__ == "__main__":  # pragma: no cover - the maintainer's re-recording command
    import tempfile

    target = Path(sys.argv[1]) if len(sys.argv) > 1 else CASSETTES
    with tempfile.TemporaryDirectory() as scratch:
        for name, paths in asyncio.run(record_all(target, Path(scratch))).items():
            print(name, *(p.name for p in paths))
