"""A local Microsoft Graph for subscription tests: the app-only token endpoint and ``/v1.0/subscriptions`` (create,
list, update, delete) in Graph's documented shapes, served on a real port.

Shapes from the Graph reference (microsoftgraph/microsoft-graph-docs-contrib): ``subscription-post-subscriptions.md``
(``201`` with the subscription, after validating ``notificationUrl`` — and ``lifecycleNotificationUrl`` — by POSTing
``?validationToken=…`` and expecting the token back as ``text/plain``, else ``400``), ``subscription-list.md``
(``{"value": [...]}``), ``subscription-update.md`` (``PATCH`` ``expirationDateTime`` → ``200`` with the
subscription), ``subscription-delete.md`` (``204``); a missing subscription answers ``404`` with Graph's error body.

For Teams it also answers, as the signed-in user, ``/me/joinedTeams`` and ``/teams/{id}/channels``
(``user-list-joinedteams.md``, ``channel-list.md``: ``{"value": [...]}``) from ``channels``, and one channel message or
reply (``chatmessage-get.md``) from ``messages``, keyed ``team/channel/message[/reply]``.
"""

from __future__ import annotations

import secrets
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from support.server import free_port, serve

APP_TOKEN = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.app-only.sig"


def _not_found(subscription_id: str) -> JSONResponse:
    return JSONResponse(
        {
            "error": {
                "code": "ResourceNotFound",
                "message": f"The object was not found. Subscription '{subscription_id}'.",
                "innerError": {"request-id": str(uuid.uuid4()), "date": "2024-05-20T11:00:00"},
            }
        },
        status_code=404,
    )


@dataclass
class FakeGraph:
    """What the local Graph holds and was asked."""

    subscriptions: dict[str, dict[str, Any]] = field(default_factory=dict)
    calls: list[tuple[str, str]] = field(default_factory=list)
    #: Validate the notification URL on create, as Graph does (needs the Tether app on a real port).
    validate: bool = True
    validations: list[tuple[str, int, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    url: str = ""
    #: Teams: the user's teams and each one's channel IDs, and the messages to answer.
    channels: dict[str, list[str]] = field(default_factory=dict)
    messages: dict[str, dict[str, Any]] = field(default_factory=dict)

    def count(self, method: str) -> int:
        return sum(1 for m, _ in self.calls if m == method)

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/{tenant}/oauth2/v2.0/token")
        async def token(tenant: str) -> dict[str, Any]:
            return {"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": APP_TOKEN}

        def authorized(request: Request) -> bool:
            return request.headers.get("authorization") == f"Bearer {APP_TOKEN}"

        @app.get("/v1.0/subscriptions")
        async def list_subscriptions(request: Request) -> Response:
            self.calls.append(("GET", "/v1.0/subscriptions"))
            if not authorized(request):
                return JSONResponse({"error": {"code": "InvalidAuthenticationToken", "message": "x"}}, 401)
            with self.lock:
                held = [{**s, "clientState": None} for s in self.subscriptions.values()]  # Graph never lists it
            return JSONResponse({"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#subscriptions",
                                 "value": held})

        @app.post("/v1.0/subscriptions")
        def create(request: Request, body: dict[str, Any]) -> Response:  # sync: validation calls back out
            self.calls.append(("POST", "/v1.0/subscriptions"))
            if not authorized(request):
                return JSONResponse({"error": {"code": "InvalidAuthenticationToken", "message": "x"}}, 401)
            if self.validate:
                for url in {body["notificationUrl"], body.get("lifecycleNotificationUrl") or body["notificationUrl"]}:
                    token = "Validation: Testing client application " + secrets.token_hex(4)
                    answer = httpx.post(f"{url}?validationToken={quote(token)}", content=b"",
                                        headers={"Content-Type": "text/plain; charset=utf-8"}, timeout=10)
                    self.validations.append((url, answer.status_code, answer.headers.get("content-type", "")))
                    if answer.status_code != 200 or answer.text != token:
                        return JSONResponse({"error": {"code": "ValidationError",
                                                       "message": "Subscription validation request failed."}}, 400)
            subscription = {
                "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#subscriptions/$entity",
                "id": str(uuid.uuid4()),
                "resource": body["resource"],
                "applicationId": "24d3b144-21ae-4080-943f-7067b395b913",
                "changeType": body["changeType"],
                "clientState": body.get("clientState"),
                "notificationUrl": body["notificationUrl"],
                "lifecycleNotificationUrl": body.get("lifecycleNotificationUrl"),
                "expirationDateTime": body["expirationDateTime"],
                "creatorId": "8ee44408-0679-472c-bc2a-692812af3437",
                "latestSupportedTlsVersion": body.get("latestSupportedTlsVersion", "v1_2"),
                "notificationContentType": "application/json",
            }
            with self.lock:
                self.subscriptions[subscription["id"]] = subscription
            return JSONResponse(subscription, status_code=201)

        @app.patch("/v1.0/subscriptions/{subscription_id}")
        async def update(subscription_id: str, body: dict[str, Any]) -> Response:
            self.calls.append(("PATCH", subscription_id))
            with self.lock:
                held = self.subscriptions.get(subscription_id)
                if held is None:
                    return _not_found(subscription_id)
                held["expirationDateTime"] = body["expirationDateTime"]
                return JSONResponse(dict(held))

        @app.get("/v1.0/me/joinedTeams")
        async def joined_teams(request: Request) -> Response:
            self.calls.append(("GET", "/v1.0/me/joinedTeams"))
            if not authorized(request):
                return JSONResponse({"error": {"code": "InvalidAuthenticationToken", "message": "x"}}, 401)
            return JSONResponse({"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#teams",
                                 "value": [{"id": t, "displayName": f"Team {t[:4]}", "description": None}
                                           for t in self.channels]})

        @app.get("/v1.0/teams/{team_id}/channels")
        async def channels(team_id: str, request: Request) -> Response:
            self.calls.append(("GET", f"/v1.0/teams/{team_id}/channels"))
            if not authorized(request):
                return JSONResponse({"error": {"code": "InvalidAuthenticationToken", "message": "x"}}, 401)
            return JSONResponse({"@odata.context": f"https://graph.microsoft.com/v1.0/$metadata#teams('{team_id}')"
                                 "/channels(id,displayName)",
                                 "value": [{"id": c, "displayName": "General"}
                                           for c in self.channels.get(team_id, [])]})

        @app.get("/v1.0/teams/{team_id}/channels/{channel_id}/messages/{message_id}")
        @app.get("/v1.0/teams/{team_id}/channels/{channel_id}/messages/{message_id}/replies/{reply_id}")
        async def message(request: Request, team_id: str, channel_id: str, message_id: str,
                          reply_id: str | None = None) -> Response:
            key = "/".join(p for p in (team_id, channel_id, message_id, reply_id) if p)
            self.calls.append(("GET", key))
            if not authorized(request):
                return JSONResponse({"error": {"code": "InvalidAuthenticationToken", "message": "x"}}, 401)
            found = self.messages.get(key)
            return JSONResponse(found) if found is not None else _not_found(key)

        @app.delete("/v1.0/subscriptions/{subscription_id}")
        async def delete(subscription_id: str) -> Response:
            self.calls.append(("DELETE", subscription_id))
            with self.lock:
                if self.subscriptions.pop(subscription_id, None) is None:
                    return _not_found(subscription_id)
            return Response(status_code=204)

        return app


@contextmanager
def fake_graph(*, validate: bool = True) -> Iterator[FakeGraph]:
    graph = FakeGraph(validate=validate)
    with serve(graph.app(), free_port()) as url:  # type: ignore[arg-type]
        graph.url = url
        yield graph
