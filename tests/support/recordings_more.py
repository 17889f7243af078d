"""Recording the committed cassettes of **cloudflare** and **todoist** (``tests/cassettes/<definition>/``) against
stand-ins on 127.0.0.1 (``support.replay.ReplayServer``) that answer with the providers' documented shapes
(``tests/fixtures/<definition>/``) and page as the providers do:

* Cloudflare's v4 envelope, zones paged by ``result_info.page``/``total_pages``, DNS records by
  ``result_info.cursors.after``, security events from the GraphQL Analytics API;
* Todoist's unified API v1: ``/api/v1/sync`` with ``sync_token`` (``*`` for a full sync) and the user resource.

Registered in ``support.recordings.RECORDERS``, so ``python -m support.recordings`` re-records these too.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

from pydantic import SecretStr

from engine.testing.recording import connect, record_to, scratch_engine
from support.replay import Answer, Received, replay_server
from support.standins import answer, fixture, loopback_allowed

CLOUDFLARE_TOKEN = "cfR3c0rdedT0kenNeverInACassette000000001"
CLOUDFLARE_ACCOUNT = "023e105f4ecef8ad9ca31a8372d0c353"
TODOIST_TOKEN = "0123456789abcdefR3c0rdedT0d01stT0ken0001"
TODOIST_CONFIG = {"client_id": "todoist-client-id-rec-0001", "client_secret": "todoist-client-secret-rec-0001"}
#: The credentials these recordings use: none may be in a committed file (``test_standard_suite``).
SECRETS = (CLOUDFLARE_TOKEN, TODOIST_TOKEN, TODOIST_CONFIG["client_secret"])


# -- Cloudflare --------------------------------------------------------------------------------------------------

CF = "/client/v4"
CF_ZONES = ("9a7b105f4ecef8ad9ca31a8372d0c353", "5b1a3f7c9d2e4b6a8c0d1e2f3a4b5c6d")


def cloudflare_standin(request: Received) -> Answer:
    """The token check, the account, its two zones (a page each, by number), the first zone's DNS records (two
    pages by cursor; the second zone has none) and the first zone's firewall events (GraphQL)."""
    if request.headers.get("authorization") != f"Bearer {CLOUDFLARE_TOKEN}":
        return answer("cloudflare", "error_401")
    path = request.path.removeprefix(CF)
    if path == "/user/tokens/verify":
        return answer("cloudflare", "token_verify")
    if path == f"/accounts/{CLOUDFLARE_ACCOUNT}":
        return answer("cloudflare", "account")
    if path == "/zones" and request.query.get("account.id") == [CLOUDFLARE_ACCOUNT]:
        return answer("cloudflare", "zones_page2" if request.query.get("page") == ["2"] else "zones_page1")
    if path == f"/zones/{CF_ZONES[0]}/dns_records":
        after = fixture("cloudflare", "dns_records_page1")["body"]["result_info"]["cursors"]["after"]
        return answer(
            "cloudflare", "dns_records_page2" if request.query.get("cursor") == [after] else "dns_records_page1"
        )
    if path == f"/zones/{CF_ZONES[1]}/dns_records":
        return answer("cloudflare", "dns_records_empty")
    if path == "/graphql" and request.method == "POST":
        zone = json.loads(request.body)["variables"]["zoneTag"]
        return answer("cloudflare", "firewall_events" if zone == CF_ZONES[0] else "firewall_events_empty")
    return Answer(404, {"success": False, "errors": [{"code": 7003, "message": "Could not route"}], "result": None})


async def record_cloudflare(out: Path, workdir: Path) -> list[Path]:
    from definitions.cloudflare import definition
    from definitions.cloudflare.connections import CloudflareTokenConnection
    from definitions.cloudflare.slots import CloudflareApiToken

    runtime = scratch_engine(definition, workdir, None)
    try:
        credential = CloudflareApiToken(api_token=SecretStr(CLOUDFLARE_TOKEN), account_id=CLOUDFLARE_ACCOUNT)
        iid = connect(runtime, definition, CloudflareTokenConnection, credential)
        with loopback_allowed(), replay_server(cloudflare_standin) as server:
            upstreams = {"https://api.cloudflare.com": server.url}
            return [
                await record_to(runtime, iid, op, out / f"{op}.yaml", upstreams=upstreams)
                for op in ("HealthCheck", "ZoneSync", "SecurityEventSync")
            ]
    finally:
        runtime.close()


# -- Todoist ---------------------------------------------------------------------------------------------------


def todoist_standin(request: Received) -> Answer:
    """The user resource, a full sync (``sync_token=*``: every active task and a new ``sync_token``; an incremental
    sync with that token: what changed) and RFC 7009 revocation with the app's client credentials."""
    if request.path == "/api/v1/revoke" and request.method == "POST":
        client = base64.b64encode(f"{TODOIST_CONFIG['client_id']}:{TODOIST_CONFIG['client_secret']}".encode())
        if request.headers.get("authorization") != f"Basic {client.decode()}":
            return Answer(401, {"error": "invalid_client"})
        return Answer(200 if request.form().get("token") == [TODOIST_TOKEN] else 400)
    if request.headers.get("authorization") != f"Bearer {TODOIST_TOKEN}":
        return answer("todoist", "error_401")
    if request.path == "/api/v1/user":
        return answer("todoist", "user")
    if request.path == "/api/v1/sync" and request.method == "POST":
        token = request.form().get("sync_token", ["*"])[0]
        return answer("todoist", "sync_full" if token == "*" else "sync_incremental")
    return Answer(404, "Not Found")


async def record_todoist(out: Path, workdir: Path) -> list[Path]:
    from definitions.todoist import definition

    connection = definition.connections[0]
    assert connection.validate is not None
    # Loopback allowed before the engine is made: revocation reads it from the engine's settings.
    with loopback_allowed(), replay_server(todoist_standin) as server:
        runtime = scratch_engine(definition, workdir, TODOIST_CONFIG)
        try:
            credential = connection.credential(access_token=SecretStr(TODOIST_TOKEN), scopes=("data:read",))
            iid = connect(runtime, definition, connection, credential)
            upstreams = {"https://api.todoist.com": server.url}
            paths = [
                await record_to(runtime, iid, op, out / f"{op}.yaml", upstreams=upstreams)
                for op in (connection.validate.operation_id(), "TaskSync")
            ]
            target = out / f"disconnect.{connection.connection_id()}.yaml"
            paths.append(await record_to(runtime, iid, "disconnect", target, upstreams=upstreams))
            return paths
        finally:
            runtime.close()


RECORDERS = {"cloudflare": record_cloudflare, "todoist": record_todoist}
