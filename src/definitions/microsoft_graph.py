"""Microsoft Graph conventions shared by the Graph definitions (``azure_entra_id``, ``microsoft_teams``).

Graph answers errors as ``{"error": {"code", "message", "innerError"}}``; the message can echo request data, so
only the method, the path and the status reach an error message. 401 is ``unauthorized``; 429, and a 503 that
carries ``Retry-After`` (Graph throttles with both), is ``rate_limited`` with ``retry_after`` so the queue defers
the run instead of failing it. Paging and delta links are absolute URLs that carry our bearer token when
followed: ``pages`` follows them on Graph's own origin only. A delta query (users, groups, channel messages) adds
``@odata.deltaLink`` on its last page, the link to read the next round's changes from: ``DeltaPages`` yields the
items and keeps it, after checking it stays on Graph's origin too.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any
from urllib.parse import quote

import httpx

from engine import ProviderError
from engine.kit import providerkit
from engine.kit.egress import read_json

GRAPH_URL = "https://graph.microsoft.com"
#: Graph throttling answers carry ``Retry-After``; when one does not, wait this long (Graph's own guidance).
DEFAULT_RETRY_AFTER = 10.0
#: A guard against a broken ``@odata.nextLink`` chain (a directory of a few million objects fits).
MAX_PAGES = 50_000


def _is_throttled(response: httpx.Response) -> bool:
    return response.status_code == 429 or (response.status_code == 503 and bool(response.headers.get("retry-after")))


_retry_after = providerkit.retry_after_or(DEFAULT_RETRY_AFTER)

raise_for_status = partial(
    providerkit.raise_for_status, provider="Microsoft Graph", is_rate_limit=_is_throttled, retry_after=_retry_after
)
#: ``GET`` one resource (a path, or an absolute Graph URL) and return its JSON body.
get_json = providerkit.json_getter(raise_for_status)
#: ``POST`` a JSON body and return the JSON answer.
post_json = providerkit.json_poster(raise_for_status)


def pages(client: httpx.AsyncClient, url: str) -> AsyncIterator[providerkit.Page]:
    """The pages of a collection (``value`` items), following ``@odata.nextLink`` on Graph's origin."""
    return providerkit.follow_links(
        client,
        url,
        style=providerkit.NextLinkPages(items_path="value", next_path="@odata.nextLink"),
        check=raise_for_status,
        what="Microsoft Graph paging",
        max_pages=MAX_PAGES,
        max_seconds=None,
    )


@dataclass
class DeltaPages:
    """The items of a paged Graph collection; after the last page, ``delta_link`` holds the round's delta link
    (delta queries only)."""

    client: httpx.AsyncClient
    url: str
    delta_link: str | None = None

    async def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        async for page in pages(self.client, self.url):
            for item in page.items:
                yield item
            if page.next is None:
                delta_link = page.raw.get("@odata.deltaLink") if isinstance(page.raw, dict) else None
                if delta_link is not None:
                    _check_origin(self.client, str(delta_link))
                self.delta_link = delta_link


def _check_origin(client: httpx.AsyncClient, url: str) -> None:
    # The client's own origin (Graph's, in production): the link is followed with our bearer token.
    parsed, origin = httpx.URL(url), client.base_url
    same = (parsed.scheme, parsed.host, parsed.port) == (origin.scheme, origin.host, origin.port)
    if parsed.is_absolute_url and not same:
        raise ProviderError("Microsoft Graph paging points to another origin")



# -- change-notification subscriptions (https://learn.microsoft.com/graph/api/resources/subscription) ------------

SUBSCRIPTIONS = "/v1.0/subscriptions"
#: The longest a subscription on directory objects (users, groups) may live: 41,760 minutes (29 days). A bit less is
#: asked for, so that clock skew never makes Graph refuse the request.
DIRECTORY_SUBSCRIPTION_LIFETIME = timedelta(minutes=41760) - timedelta(hours=1)


def graph_time(value: datetime) -> str:
    """A UTC timestamp as Graph writes them (``2016-11-20T18:23:45.935691Z``)."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_graph_time(value: Any) -> datetime | None:
    """Graph's ``expirationDateTime`` (seven fractional digits, ``Z``), or ``None`` when absent or unreadable."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


async def find_subscription(client: httpx.AsyncClient, notification_url: str, resource: str) -> dict[str, Any] | None:
    """The subscription this app already holds for ``notification_url`` on ``resource`` (``GET /subscriptions``
    lists the app's own), so that creating one again after a crash adopts it instead of holding two."""
    async for page in pages(client, SUBSCRIPTIONS):
        for item in page.items:
            if (
                isinstance(item, dict)
                and item.get("notificationUrl") == notification_url
                and str(item.get("resource", "")).strip("/").lower() == resource.strip("/").lower()
            ):
                return item
    return None


async def create_subscription(
    client: httpx.AsyncClient,
    *,
    resource: str,
    change_type: str,
    notification_url: str,
    client_state: str,
    expires_at: datetime,
) -> dict[str, Any]:
    """``POST /subscriptions`` (Graph validates ``notification_url`` and ``lifecycleNotificationUrl``, the same URL,
    before it answers ``201`` with the subscription)."""
    body = {
        "changeType": change_type,
        "notificationUrl": notification_url,
        "lifecycleNotificationUrl": notification_url,
        "resource": resource,
        "expirationDateTime": graph_time(expires_at),
        "clientState": client_state,
        "latestSupportedTlsVersion": "v1_2",
    }
    answer = await post_json(client, SUBSCRIPTIONS, body)
    if not isinstance(answer, dict) or not isinstance(answer.get("id"), str) or not answer["id"]:
        raise ProviderError("Microsoft Graph answered a subscription without an id", code="provider_error")
    return answer


async def renew_subscription(
    client: httpx.AsyncClient, subscription_id: str, expires_at: datetime
) -> dict[str, Any] | None:
    """``PATCH /subscriptions/{id}`` with a new ``expirationDateTime`` (it also reauthorizes); ``None`` when Graph
    no longer has it (``404``)."""
    response = await client.patch(
        f"{SUBSCRIPTIONS}/{quote(subscription_id, safe='')}", json={"expirationDateTime": graph_time(expires_at)}
    )
    if response.status_code == 404:
        return None
    raise_for_status(response)
    answer = await read_json(response)
    return answer if isinstance(answer, dict) else {}


async def delete_subscription(client: httpx.AsyncClient, subscription_id: str) -> bool:
    """``DELETE /subscriptions/{id}``; ``False`` when it was already gone (``404``)."""
    response = await client.delete(f"{SUBSCRIPTIONS}/{quote(subscription_id, safe='')}")
    if response.status_code == 404:
        return False
    raise_for_status(response)
    return True


__all__ = [
    "DEFAULT_RETRY_AFTER",
    "DIRECTORY_SUBSCRIPTION_LIFETIME",
    "GRAPH_URL",
    "DeltaPages",
    "create_subscription",
    "delete_subscription",
    "find_subscription",
    "get_json",
    "graph_time",
    "pages",
    "parse_graph_time",
    "post_json",
    "raise_for_status",
    "renew_subscription",
]
