"""Variants of the Slack definition that the standard suite must fail, each replayed on Slack's own cassettes
(``tests/cassettes/slack``): the classes keep Slack's names, since cassettes name operations and connections by
their stable IDs.

* :data:`first_page_only`: ``UserSync`` reads the first page of ``users.list`` and stops (``ingest.pages_to_end``);
* :data:`endless_pages`: ``UserSync`` follows ``next_cursor`` with no guard against a cursor it already followed
  (``ingest.repeated_cursor``);
* :data:`leaky`: the client logs the bot token it was built with (``secrets.not_logged``);
* :data:`wrong_field`: the user mapping reads ``payload.user_id``, a field of another API version
  (``ingest.maps_records``);
* :data:`stale_token`: the client keeps the first token it was built with, so a refreshed token is never sent
  (``auth.refreshes``);

and one of the sandbox definition, replayed on the sandbox's cassettes (``tests/cassettes/sandbox``):

* :data:`forgetful_sync`: ``Sync`` saves its watermarks as the next cursor but never reads them back, so every run
  lists everything from the first page (``ingest.resumes``).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import replace

import httpx

from definitions.sandbox import definition as sandbox
from definitions.sandbox import operations as sandbox_operations
from definitions.slack import connections as slack_connections
from definitions.slack import definition as slack
from definitions.slack import operations as slack_operations
from definitions.slack.api import PAGE_LIMIT, call
from definitions.slack.client import SlackClient
from definitions.slack.slots import SlackBotToken, SlackOAuthToken
from engine import ClientContext, OperationContext, Payload
from engine.kit.providerkit import BearerAuth

log = logging.getLogger("definitions.leaky_slack")


class FirstPageUserSync(slack_operations.UserSync):
    async def ingest(self, ctx: OperationContext) -> AsyncIterator[Payload]:
        body = await call(ctx.client, "users.list", form={"limit": PAGE_LIMIT})
        for member in body.get("members", []):
            yield Payload(schema="directory_account", variant="user", data=member, resource="user")


class EndlessUserSync(slack_operations.UserSync):
    async def ingest(self, ctx: OperationContext) -> AsyncIterator[Payload]:
        cursor = ""
        while True:
            form = {"limit": PAGE_LIMIT, **({"cursor": cursor} if cursor else {})}
            body = await call(ctx.client, "users.list", form=form)
            for member in body.get("members", []):
                yield Payload(schema="directory_account", variant="user", data=member, resource="user")
            cursor = (body.get("response_metadata") or {}).get("next_cursor") or ""
            if not cursor:
                return


def _named(cls: type, name: str) -> type:
    """``cls`` under the stable ID (class name) the cassettes know it by."""
    return type(name, (cls,), {"__module__": __name__, "__qualname__": name})


def _with_user_sync(sync: type) -> object:
    named = _named(sync, "UserSync")
    others = tuple(o for o in slack.operations if o.operation_id() != "UserSync")
    return replace(slack, operations=(*others, named))


first_page_only = _with_user_sync(FirstPageUserSync)
wrong_field = replace(
    slack,
    mappings=tuple(
        replace(m, map=m.map.replace('"external_id": payload.id,', '"external_id": payload.user_id,'))
        for m in slack.mappings
    ),
)
assert wrong_field.mappings != slack.mappings
endless_pages = _with_user_sync(EndlessUserSync)


class LeakyClient(SlackClient):
    """Builds Slack's client and writes the token into a log line, as a careless debug statement would."""

    def build(self, ctx: ClientContext) -> httpx.AsyncClient:
        credential = ctx.credential
        token = (
            credential.access_token if isinstance(credential, SlackOAuthToken) else credential.bot_token
        ).get_secret_value()
        log.info("building the Slack client with token %s", token)
        return super().build(ctx)


_health = type("HealthCheck", (slack_operations.HealthCheck,), {"client": LeakyClient, "__module__": __name__})
_sync = type("UserSync", (slack_operations.UserSync,), {"client": LeakyClient, "__module__": __name__})
_oauth = type(
    "SlackOAuthConnection",
    (slack_connections.SlackOAuthConnection,),
    {"clients": (LeakyClient,), "validate": _health, "__module__": __name__},
)
_bot = type(
    "SlackBotTokenConnection",
    (slack_connections.SlackBotTokenConnection,),
    {"clients": (LeakyClient,), "validate": _health, "__module__": __name__},
)
leaky = replace(
    slack,
    clients=(LeakyClient, SlackClient),
    connections=(_oauth, _bot),
    operations=(_health, _sync, *(o for o in slack.operations if o.operation_id() not in ("HealthCheck", "UserSync"))),
)
assert SlackBotToken in LeakyClient.slots


class CrashingHealthCheck(slack_operations.HealthCheck):
    async def run(self, ctx: OperationContext) -> dict[str, object]:
        raise KeyError("a field the code expected")


_crash = _named(CrashingHealthCheck, "HealthCheck")
crashing_health = replace(
    slack,
    connections=tuple(type(c.__name__, (c,), {"validate": _crash, "__module__": __name__}) for c in slack.connections),
    operations=(_crash, *(o for o in slack.operations if o.operation_id() != "HealthCheck")),
)


class StaleTokenClient(SlackClient):
    """Keeps the first token it was built with for good (a cache with no key), as a client memoised at import
    time would: after a refresh it still sends the expired token."""

    first: str | None = None

    def build(self, ctx: ClientContext) -> httpx.AsyncClient:
        credential = ctx.credential
        if StaleTokenClient.first is None:
            StaleTokenClient.first = (
                credential.access_token if isinstance(credential, SlackOAuthToken) else credential.bot_token
            ).get_secret_value()
        client = super().build(ctx)
        client.auth = BearerAuth(StaleTokenClient.first)
        return client


_stale_health = type(
    "HealthCheck", (slack_operations.HealthCheck,), {"client": StaleTokenClient, "__module__": __name__}
)
_stale_connections = tuple(
    type(c.__name__, (c,), {"clients": (StaleTokenClient,), "validate": _stale_health, "__module__": __name__})
    for c in slack.connections
)
stale_token = replace(
    slack,
    clients=(StaleTokenClient, SlackClient),
    connections=_stale_connections,
    operations=(_stale_health, *(o for o in slack.operations if o.operation_id() != "HealthCheck")),
)


class ForgetfulSync(sandbox_operations.Sync):
    """Drops the cursor it was given, then runs the real sync (which still saves a new one)."""

    async def ingest(self, ctx: OperationContext) -> AsyncIterator[Payload]:
        ctx.cursor = None
        async for item in super().ingest(ctx):
            yield item


forgetful_sync = replace(
    sandbox,
    operations=(_named(ForgetfulSync, "Sync"), *(o for o in sandbox.operations if o.operation_id() != "Sync")),
)
