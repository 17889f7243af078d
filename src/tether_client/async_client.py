"""``AsyncClient``: the asynchronous client over httpx (the same methods as ``Client``, awaited)."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from typing import Any, TypeVar

import httpx

from tether_client import _calls as calls
from tether_client import _models as m
from tether_client._auth import auth_of, is_provider_401
from tether_client.errors import ProviderUnauthorized
from tether_client.principal import PrincipalSigner

T = TypeVar("T")


class AsyncClient:
    """Tether's API for a host app: ``AsyncClient(base_url, api_key="tk_…")`` or ``principal=PrincipalSigner(…)``.

    Use it as an async context manager (or await ``aclose()``) so that its connection pool is released.
    """

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        principal: PrincipalSigner | None = None,
        timeout: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"), auth=auth_of(api_key, principal), timeout=timeout, transport=transport
        )

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _do(self, call: calls.Call) -> Any:
        body = {} if call.body is None and call.method == "POST" else call.body
        response = await self._http.request(call.method, call.path, params=call.params or None, json=body)
        return call.answer(response)

    # -- integrations ---------------------------------------------------------------------------------------------

    async def list_integrations(self) -> list[m.IntegrationView]:
        return await self._do(calls.list_integrations())

    async def create_integration(
        self, definition_id: str, *, owner_id: str = "", name: str = "", user_input: dict[str, Any] | None = None
    ) -> m.IntegrationView:
        return await self._do(calls.create_integration(definition_id, owner_id, name, user_input))

    async def get_integration(self, integration_id: str) -> m.IntegrationView:
        return await self._do(calls.get_integration(integration_id))

    async def update_integration(
        self,
        integration_id: str,
        *,
        name: str | None = None,
        user_input: dict[str, Any] | None = None,
        filter_expr: str | None = None,
    ) -> m.IntegrationView:
        call = calls.update_integration(integration_id, name=name, user_input=user_input, filter_expr=filter_expr)
        return await self._do(call)

    async def delete_integration(self, integration_id: str) -> None:
        await self._do(calls.delete_integration(integration_id))

    async def connect(
        self, integration_id: str, *, connection: str | None = None, return_url: str = "", product: str | None = None
    ) -> str:
        """The URL to send the user's browser to (the provider's consent, or Tether's form)."""
        return await self._do(calls.connect(integration_id, "connect", connection, return_url, product))

    async def reconnect(self, integration_id: str, *, connection: str | None = None, return_url: str = "") -> str:
        return await self._do(calls.connect(integration_id, "reconnect", connection, return_url))

    async def upgrade(
        self, integration_id: str, *, connection: str | None = None, return_url: str = "", product: str | None = None
    ) -> str:
        """With ``product`` (Google's ``gmail``): add that product to the grant; without: read → write access."""
        return await self._do(calls.connect(integration_id, "upgrade", connection, return_url, product))

    async def submit_credential(self, integration_id: str, slot: str, values: dict[str, Any]) -> m.IntegrationView:
        """A typed-in credential (an API key…): validated and health-checked by the server, then kept."""
        return await self._do(calls.submit_credential(integration_id, slot, values))

    async def validate(self, integration_id: str) -> m.ValidateResult:
        return await self._do(calls.validate(integration_id))

    async def disconnect(self, integration_id: str) -> m.DisconnectResult:
        return await self._do(calls.disconnect(integration_id))

    async def audit(self, integration_id: str) -> list[m.AuditView]:
        return await self._do(calls.audit(integration_id))

    # -- access tokens --------------------------------------------------------------------------------------------

    async def get_access_token(self, integration_id: str, *, refresh: bool = False) -> m.AccessTokenView:
        """A short-lived token (server principals); ``refresh=True``: a new one although this one is still valid."""
        if refresh:
            return await self.refresh_access_token(integration_id)
        return await self._do(calls.access_token(integration_id))

    async def refresh_access_token(self, integration_id: str, refused: str | None = None) -> m.AccessTokenView:
        """A new token because the provider refused ``refused`` (default: the one Tether would hand out now); a
        token another caller already renewed is returned as it is."""
        return await self._do(calls.refresh_access_token(integration_id, refused))

    async def with_integration_access(self, integration_id: str, fn: Callable[[str], Awaitable[T] | T]) -> T:
        """``fn(access_token)`` (a coroutine function or a plain one); if the provider refused the token (``fn``
        raised ``ProviderUnauthorized`` or returned an ``httpx.Response`` with 401), once more with a token Tether
        refreshed. The second answer is final."""
        token = (await self.get_access_token(integration_id)).access_token
        try:
            result = await _call(fn, token)
        except ProviderUnauthorized:
            result = None  # a refused token: refresh below and retry once
        else:
            if not is_provider_401(result):
                return result
        return await _call(fn, (await self.refresh_access_token(integration_id, token)).access_token)

    # -- operations and runs ----------------------------------------------------------------------------------------

    async def run(
        self, integration_id: str, operation: str, config: dict[str, Any] | None = None
    ) -> m.InlineResponse | m.QueuedResponse:
        """Start an operation: an inline one answers with its result and run, a queued one with the run's ID.
        A failed inline run raises, with the run on the exception (``error.run``)."""
        return await self._do(calls.run_operation(integration_id, operation, config))

    async def get_run(self, run_id: str, *, wait: float = 0) -> m.RunView:
        """The run; with ``wait`` seconds, answered once it finished (or as it is when the time is up)."""
        deadline = time.monotonic() + wait
        while True:
            run = await self._do(calls.get_run(run_id, max(0.0, deadline - time.monotonic())))
            if run.status in calls.FINISHED or time.monotonic() >= deadline:
                return run
            await asyncio.sleep(min(0.2, max(0.0, deadline - time.monotonic())))

    async def list_runs(
        self,
        integration_id: str,
        *,
        limit: int = 50,
        operation: str | None = None,
        status: str | None = None,
        cursor: str | None = None,
    ) -> m.RunList:
        return await self._do(
            calls.list_runs(integration_id, limit=limit, operation=operation, status=status, cursor=cursor)
        )

    async def iter_runs(
        self, integration_id: str, *, limit: int = 50, operation: str | None = None, status: str | None = None
    ) -> AsyncIterator[m.RunView]:
        """Every run, newest first, following ``next_cursor`` page by page."""
        cursor: str | None = None
        while True:
            page = await self.list_runs(integration_id, limit=limit, operation=operation, status=status, cursor=cursor)
            for run in page.runs:
                yield run
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    async def cancel_run(self, run_id: str) -> m.RunView:
        return await self._do(calls.cancel_run(run_id))

    # -- records and changes ----------------------------------------------------------------------------------------

    async def list_records(
        self,
        schema: str,
        *,
        integration_id: str | None = None,
        owner_id: str | None = None,
        definition_id: str | None = None,
        updated_since: datetime | str | None = None,
        cursor: str | None = None,
        limit: int | None = None,
    ) -> m.RecordPage:
        call = calls.list_records(
            schema,
            integration_id=integration_id,
            owner_id=owner_id,
            definition_id=definition_id,
            updated_since=updated_since,
            cursor=cursor,
            limit=limit,
        )
        return await self._do(call)

    async def iter_records(self, schema: str, **filters: Any) -> AsyncIterator[dict[str, Any]]:
        """Every record of ``schema`` matching the filters (those of ``list_records``), following ``next_cursor``."""
        cursor: str | None = filters.pop("cursor", None)
        while True:
            page = await self.list_records(schema, cursor=cursor, **filters)
            for record in page.data:
                yield record
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    async def get_record(self, schema: str, record_id: int | str) -> dict[str, Any]:
        return await self._do(calls.get_record(schema, record_id))

    async def list_changes(
        self,
        after: int = 0,
        *,
        limit: int | None = None,
        schema: str | None = None,
        integration_id: str | None = None,
    ) -> m.ChangePage:
        return await self._do(calls.list_changes(after, limit=limit, schema=schema, integration_id=integration_id))

    async def iter_changes(
        self,
        after: int = 0,
        *,
        limit: int | None = None,
        schema: str | None = None,
        integration_id: str | None = None,
    ) -> AsyncIterator[m.ChangeView]:
        """The changes after ``after`` in order, following ``next_after`` until the feed is caught up; keep the
        last ``seq`` you applied and start from it next time."""
        while True:
            page = await self.list_changes(after, limit=limit, schema=schema, integration_id=integration_id)
            for change in page.changes:
                yield change
            if not page.changes:
                return
            after = page.next_after

    # -- outbound events ------------------------------------------------------------------------------------------

    async def create_event_endpoint(
        self, url: str, event_types: list[str], *, description: str = ""
    ) -> m.EndpointWithSecret:
        """Register a receiver; the answer's ``secret`` (``whsec_…``) is shown once: keep it for ``verify_event``."""
        return await self._do(calls.create_event_endpoint(url, event_types, description))

    async def list_event_endpoints(self) -> list[m.EndpointView]:
        return await self._do(calls.list_event_endpoints())

    async def get_event_endpoint(self, endpoint_id: str) -> m.EndpointView:
        return await self._do(calls.get_event_endpoint(endpoint_id))

    async def update_event_endpoint(
        self,
        endpoint_id: str,
        *,
        url: str | None = None,
        event_types: list[str] | None = None,
        description: str | None = None,
        enabled: bool | None = None,
    ) -> m.EndpointView:
        call = calls.update_event_endpoint(
            endpoint_id, url=url, event_types=event_types, description=description, enabled=enabled
        )
        return await self._do(call)

    async def delete_event_endpoint(self, endpoint_id: str) -> None:
        await self._do(calls.delete_event_endpoint(endpoint_id))

    async def rotate_event_secret(self, endpoint_id: str) -> m.EndpointWithSecret:
        """A new secret; the old one keeps signing beside it for the overlap."""
        return await self._do(calls.rotate_event_secret(endpoint_id))

    async def list_event_deliveries(
        self,
        *,
        endpoint_id: str | None = None,
        status: str | None = None,
        event_type: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> m.EngineApiEventsDeliveryList:
        call = calls.list_event_deliveries(
            endpoint_id=endpoint_id, status=status, event_type=event_type, limit=limit, cursor=cursor
        )
        return await self._do(call)

    async def iter_event_deliveries(
        self, *, endpoint_id: str | None = None, status: str | None = None, event_type: str | None = None
    ) -> AsyncIterator[m.EngineApiEventsDeliveryView]:
        """The delivery log, following ``next_cursor``."""
        cursor: str | None = None
        while True:
            page = await self.list_event_deliveries(
                endpoint_id=endpoint_id, status=status, event_type=event_type, cursor=cursor
            )
            for delivery in page.deliveries:
                yield delivery
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    async def redeliver_event(self, delivery_id: str) -> m.EngineApiEventsDeliveryView:
        return await self._do(calls.redeliver_event(delivery_id))


async def _call(fn: Callable[[str], Awaitable[T] | T], token: str) -> T:
    result = fn(token)
    return await result if inspect.isawaitable(result) else result  # type: ignore[return-value]
