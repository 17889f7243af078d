"""``Client``: the synchronous client over httpx."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any, TypeVar

import httpx

from tether_client import _calls as calls
from tether_client import _models as m
from tether_client._auth import auth_of, is_provider_401
from tether_client.errors import ProviderUnauthorized
from tether_client.principal import PrincipalSigner

T = TypeVar("T")


class Client:
    """Tether's API for a host app: ``Client(base_url, api_key="tk_…")`` or ``principal=PrincipalSigner(…)``.

    Use it as a context manager (or call ``close()``) so that its connection pool is released.
    """

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        principal: PrincipalSigner | None = None,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"), auth=auth_of(api_key, principal), timeout=timeout, transport=transport
        )

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _do(self, call: calls.Call) -> Any:
        body = {} if call.body is None and call.method == "POST" else call.body
        response = self._http.request(call.method, call.path, params=call.params or None, json=body)
        return call.answer(response)

    # -- integrations ---------------------------------------------------------------------------------------------

    def list_integrations(self) -> list[m.IntegrationView]:
        return self._do(calls.list_integrations())

    def create_integration(
        self, definition_id: str, *, owner_id: str = "", name: str = "", user_input: dict[str, Any] | None = None
    ) -> m.IntegrationView:
        return self._do(calls.create_integration(definition_id, owner_id, name, user_input))

    def get_integration(self, integration_id: str) -> m.IntegrationView:
        return self._do(calls.get_integration(integration_id))

    def update_integration(
        self,
        integration_id: str,
        *,
        name: str | None = None,
        user_input: dict[str, Any] | None = None,
        filter_expr: str | None = None,
    ) -> m.IntegrationView:
        call = calls.update_integration(integration_id, name=name, user_input=user_input, filter_expr=filter_expr)
        return self._do(call)

    def delete_integration(self, integration_id: str) -> None:
        self._do(calls.delete_integration(integration_id))

    def connect(
        self, integration_id: str, *, connection: str | None = None, return_url: str = "", product: str | None = None
    ) -> str:
        """The URL to send the user's browser to (the provider's consent, or Tether's form)."""
        return self._do(calls.connect(integration_id, "connect", connection, return_url, product))

    def reconnect(self, integration_id: str, *, connection: str | None = None, return_url: str = "") -> str:
        return self._do(calls.connect(integration_id, "reconnect", connection, return_url))

    def upgrade(
        self, integration_id: str, *, connection: str | None = None, return_url: str = "", product: str | None = None
    ) -> str:
        """With ``product`` (Google's ``gmail``): add that product to the grant; without: read → write access."""
        return self._do(calls.connect(integration_id, "upgrade", connection, return_url, product))

    def submit_credential(self, integration_id: str, slot: str, values: dict[str, Any]) -> m.IntegrationView:
        """A typed-in credential (an API key…): validated and health-checked by the server, then kept."""
        return self._do(calls.submit_credential(integration_id, slot, values))

    def validate(self, integration_id: str) -> m.ValidateResult:
        return self._do(calls.validate(integration_id))

    def disconnect(self, integration_id: str) -> m.DisconnectResult:
        return self._do(calls.disconnect(integration_id))

    def audit(self, integration_id: str) -> list[m.AuditView]:
        return self._do(calls.audit(integration_id))

    # -- access tokens --------------------------------------------------------------------------------------------

    def get_access_token(self, integration_id: str, *, refresh: bool = False) -> m.AccessTokenView:
        """A short-lived token (server principals); ``refresh=True``: a new one although this one is still valid."""
        if refresh:
            return self.refresh_access_token(integration_id)
        return self._do(calls.access_token(integration_id))

    def refresh_access_token(self, integration_id: str, refused: str | None = None) -> m.AccessTokenView:
        """A new token because the provider refused ``refused`` (default: the one Tether would hand out now); a
        token another caller already renewed is returned as it is."""
        return self._do(calls.refresh_access_token(integration_id, refused))

    def with_integration_access(self, integration_id: str, fn: Callable[[str], T]) -> T:
        """``fn(access_token)``; if the provider refused it (``fn`` raised ``ProviderUnauthorized`` or returned an
        ``httpx.Response`` with 401), once more with a token Tether refreshed. The second answer is final."""
        token = self.get_access_token(integration_id).access_token
        try:
            result = fn(token)
        except ProviderUnauthorized:
            result = None  # a refused token: refresh below and retry once
        else:
            if not is_provider_401(result):
                return result
        return fn(self.refresh_access_token(integration_id, token).access_token)

    # -- operations and runs ----------------------------------------------------------------------------------------

    def run(
        self, integration_id: str, operation: str, config: dict[str, Any] | None = None
    ) -> m.InlineResponse | m.QueuedResponse:
        """Start an operation: an inline one answers with its result and run, a queued one with the run's ID.
        A failed inline run raises, with the run on the exception (``error.run``)."""
        return self._do(calls.run_operation(integration_id, operation, config))

    def get_run(self, run_id: str, *, wait: float = 0) -> m.RunView:
        """The run; with ``wait`` seconds, answered once it finished (or as it is when the time is up)."""
        deadline = time.monotonic() + wait
        while True:
            run = self._do(calls.get_run(run_id, max(0.0, deadline - time.monotonic())))
            if run.status in calls.FINISHED or time.monotonic() >= deadline:
                return run
            time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))

    def list_runs(
        self,
        integration_id: str,
        *,
        limit: int = 50,
        operation: str | None = None,
        status: str | None = None,
        cursor: str | None = None,
    ) -> m.RunList:
        return self._do(calls.list_runs(integration_id, limit=limit, operation=operation, status=status, cursor=cursor))

    def iter_runs(
        self, integration_id: str, *, limit: int = 50, operation: str | None = None, status: str | None = None
    ) -> Iterator[m.RunView]:
        """Every run, newest first, following ``next_cursor`` page by page."""
        cursor: str | None = None
        while True:
            page = self.list_runs(integration_id, limit=limit, operation=operation, status=status, cursor=cursor)
            yield from page.runs
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def cancel_run(self, run_id: str) -> m.RunView:
        return self._do(calls.cancel_run(run_id))

    # -- records and changes ----------------------------------------------------------------------------------------

    def list_records(
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
        return self._do(call)

    def iter_records(self, schema: str, **filters: Any) -> Iterator[dict[str, Any]]:
        """Every record of ``schema`` matching the filters (those of ``list_records``), following ``next_cursor``."""
        cursor: str | None = filters.pop("cursor", None)
        while True:
            page = self.list_records(schema, cursor=cursor, **filters)
            yield from page.data
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def get_record(self, schema: str, record_id: int | str) -> dict[str, Any]:
        return self._do(calls.get_record(schema, record_id))

    def list_changes(
        self,
        after: int = 0,
        *,
        limit: int | None = None,
        schema: str | None = None,
        integration_id: str | None = None,
    ) -> m.ChangePage:
        return self._do(calls.list_changes(after, limit=limit, schema=schema, integration_id=integration_id))

    def iter_changes(
        self,
        after: int = 0,
        *,
        limit: int | None = None,
        schema: str | None = None,
        integration_id: str | None = None,
    ) -> Iterator[m.ChangeView]:
        """The changes after ``after`` in order, following ``next_after`` until the feed is caught up; keep the
        last ``seq`` you applied and start from it next time."""
        while True:
            page = self.list_changes(after, limit=limit, schema=schema, integration_id=integration_id)
            yield from page.changes
            if not page.changes:
                return
            after = page.next_after

    # -- outbound events ------------------------------------------------------------------------------------------

    def create_event_endpoint(self, url: str, event_types: list[str], *, description: str = "") -> m.EndpointWithSecret:
        """Register a receiver; the answer's ``secret`` (``whsec_…``) is shown once: keep it for ``verify_event``."""
        return self._do(calls.create_event_endpoint(url, event_types, description))

    def list_event_endpoints(self) -> list[m.EndpointView]:
        return self._do(calls.list_event_endpoints())

    def get_event_endpoint(self, endpoint_id: str) -> m.EndpointView:
        return self._do(calls.get_event_endpoint(endpoint_id))

    def update_event_endpoint(
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
        return self._do(call)

    def delete_event_endpoint(self, endpoint_id: str) -> None:
        self._do(calls.delete_event_endpoint(endpoint_id))

    def rotate_event_secret(self, endpoint_id: str) -> m.EndpointWithSecret:
        """A new secret; the old one keeps signing beside it for the overlap."""
        return self._do(calls.rotate_event_secret(endpoint_id))

    def list_event_deliveries(
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
        return self._do(call)

    def iter_event_deliveries(
        self, *, endpoint_id: str | None = None, status: str | None = None, event_type: str | None = None
    ) -> Iterator[m.EngineApiEventsDeliveryView]:
        """The delivery log, following ``next_cursor``."""
        cursor: str | None = None
        while True:
            page = self.list_event_deliveries(
                endpoint_id=endpoint_id, status=status, event_type=event_type, cursor=cursor
            )
            yield from page.deliveries
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def redeliver_event(self, delivery_id: str) -> m.EngineApiEventsDeliveryView:
        return self._do(calls.redeliver_event(delivery_id))
