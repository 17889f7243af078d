"""The API's calls as data (method, path, query, body, how to read the answer), shared by ``Client`` and
``AsyncClient`` so the two cannot disagree on a path or a parameter."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import quote

import httpx

from tether_client import _models as m
from tether_client.errors import error_of

#: Run statuses after which a run does not change again.
FINISHED = frozenset({"succeeded", "failed", "cancelled", "stalled"})
#: The server's own bound on one ``?wait=`` (longer waits are several requests).
MAX_WAIT_PER_REQUEST = 60.0


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    read: Callable[[httpx.Response], Any]
    params: dict[str, Any] = field(default_factory=dict)
    body: Any = None
    #: Statuses that are answers, not errors (an inline run's 200 and a queued one's 202).
    ok: tuple[int, ...] = (200, 201, 202, 204)

    def answer(self, response: httpx.Response) -> Any:
        if response.status_code not in self.ok:
            raise error_of(response)
        return self.read(response)


def _seg(value: str) -> str:
    return quote(value, safe="")


def _model(model: type[Any]) -> Callable[[httpx.Response], Any]:
    return lambda response: model.model_validate(response.json())


def _params(**values: Any) -> dict[str, Any]:
    """Query parameters without the ``None`` ones; datetimes as RFC 3339."""
    out = {}
    for key, value in values.items():
        if value is None:
            continue
        out[key] = value.isoformat() if isinstance(value, datetime) else value
    return out


def _body(model: type[Any], **values: Any) -> dict[str, Any]:
    """A request body validated by the server's own request model (unknown fields refused before sending)."""
    return model.model_validate(values).model_dump(mode="json", exclude_unset=True, by_alias=True)


# -- integrations -------------------------------------------------------------------------------------------------


def list_integrations() -> Call:
    return Call("GET", "/v1/integrations", lambda r: [m.IntegrationView.model_validate(i) for i in r.json()])


def create_integration(definition_id: str, owner_id: str, name: str, user_input: dict[str, Any] | None) -> Call:
    values: dict[str, Any] = {"definition_id": definition_id, "owner_id": owner_id, "name": name}
    if user_input is not None:
        values["user_input"] = user_input
    return Call("POST", "/v1/integrations", _model(m.IntegrationView), body=_body(m.CreateIntegration, **values))


def get_integration(integration_id: str) -> Call:
    return Call("GET", f"/v1/integrations/{_seg(integration_id)}", _model(m.IntegrationView))


def update_integration(integration_id: str, **values: Any) -> Call:
    body = _body(m.UpdateIntegration, **{k: v for k, v in values.items() if v is not None})
    return Call("PATCH", f"/v1/integrations/{_seg(integration_id)}", _model(m.IntegrationView), body=body)


def delete_integration(integration_id: str) -> Call:
    return Call("DELETE", f"/v1/integrations/{_seg(integration_id)}", lambda r: None)


def connect(
    integration_id: str, verb: str, connection: str | None, return_url: str, product: str | None = None
) -> Call:
    values: dict[str, Any] = {"return_url": return_url}
    if connection is not None:
        values["connection"] = connection
    if product is not None:
        values["product"] = product
    path = f"/v1/integrations/{_seg(integration_id)}/{verb}"
    return Call(
        "POST", path, lambda r: m.Redirect.model_validate(r.json()).redirect_url, body=_body(m.ConnectRequest, **values)
    )


def submit_credential(integration_id: str, slot: str, values: dict[str, Any]) -> Call:
    path = f"/v1/integrations/{_seg(integration_id)}/credentials/{_seg(slot)}"
    return Call("POST", path, _model(m.IntegrationView), body=values)


def validate(integration_id: str) -> Call:
    return Call("POST", f"/v1/integrations/{_seg(integration_id)}/validate", _model(m.ValidateResult))


def disconnect(integration_id: str) -> Call:
    return Call("POST", f"/v1/integrations/{_seg(integration_id)}/disconnect", _model(m.DisconnectResult))


def access_token(integration_id: str) -> Call:
    return Call("GET", f"/v1/integrations/{_seg(integration_id)}/access-token", _model(m.AccessTokenView))


def refresh_access_token(integration_id: str, refused: str | None) -> Call:
    path = f"/v1/integrations/{_seg(integration_id)}/access-token/refresh"
    body = _body(m.RefreshRequest, refused=refused) if refused is not None else None
    return Call("POST", path, _model(m.AccessTokenView), body=body)


def audit(integration_id: str) -> Call:
    read = lambda r: [m.AuditView.model_validate(e) for e in r.json()]  # noqa: E731
    return Call("GET", f"/v1/integrations/{_seg(integration_id)}/audit", read)


# -- operations and runs ------------------------------------------------------------------------------------------


def _run_answer(response: httpx.Response) -> m.InlineResponse | m.QueuedResponse:
    if response.status_code == 202:
        return m.QueuedResponse.model_validate(response.json())
    return m.InlineResponse.model_validate(response.json())


def run_operation(integration_id: str, operation: str, config: dict[str, Any] | None) -> Call:
    path = f"/v1/integrations/{_seg(integration_id)}/operations/{_seg(operation)}"
    return Call("POST", path, _run_answer, body=_body(m.RunRequest, config=config), ok=(200, 202))


def get_run(run_id: str, wait: float) -> Call:
    params = _params(wait=min(wait, MAX_WAIT_PER_REQUEST)) if wait > 0 else {}
    return Call("GET", f"/v1/runs/{_seg(run_id)}", _model(m.RunView), params=params)


def list_runs(
    integration_id: str, *, limit: int, operation: str | None, status: str | None, cursor: str | None
) -> Call:
    params = _params(limit=limit, operation=operation, status=status, cursor=cursor)
    return Call("GET", f"/v1/integrations/{_seg(integration_id)}/runs", _model(m.RunList), params=params)


def cancel_run(run_id: str) -> Call:
    return Call("POST", f"/v1/runs/{_seg(run_id)}/cancel", _model(m.RunView))


# -- records and changes ------------------------------------------------------------------------------------------


def list_records(
    schema: str,
    *,
    integration_id: str | None,
    owner_id: str | None,
    definition_id: str | None,
    updated_since: datetime | str | None,
    cursor: str | None,
    limit: int | None,
) -> Call:
    params = _params(
        integration_id=integration_id,
        owner_id=owner_id,
        definition_id=definition_id,
        updated_since=updated_since,
        cursor=cursor,
        limit=limit,
    )
    return Call("GET", f"/v1/records/{_seg(schema)}", _model(m.RecordPage), params=params)


def get_record(schema: str, record_id: int | str) -> Call:
    return Call("GET", f"/v1/records/{_seg(schema)}/{_seg(str(record_id))}", lambda r: r.json())


def list_changes(after: int, *, limit: int | None, schema: str | None, integration_id: str | None) -> Call:
    params = _params(after=after, limit=limit, schema=schema, integration_id=integration_id)
    return Call("GET", "/v1/changes", _model(m.ChangePage), params=params)


# -- outbound events ----------------------------------------------------------------------------------------------


def create_event_endpoint(url: str, event_types: list[str], description: str) -> Call:
    body = _body(m.CreateEndpoint, url=url, event_types=event_types, description=description)
    return Call("POST", "/v1/event-endpoints", _model(m.EndpointWithSecret), body=body)


def list_event_endpoints() -> Call:
    return Call("GET", "/v1/event-endpoints", lambda r: m.EndpointList.model_validate(r.json()).endpoints)


def get_event_endpoint(endpoint_id: str) -> Call:
    return Call("GET", f"/v1/event-endpoints/{_seg(endpoint_id)}", _model(m.EndpointView))


def update_event_endpoint(endpoint_id: str, **values: Any) -> Call:
    body = _body(m.UpdateEndpoint, **{k: v for k, v in values.items() if v is not None})
    return Call("PATCH", f"/v1/event-endpoints/{_seg(endpoint_id)}", _model(m.EndpointView), body=body)


def delete_event_endpoint(endpoint_id: str) -> Call:
    return Call("DELETE", f"/v1/event-endpoints/{_seg(endpoint_id)}", lambda r: None)


def rotate_event_secret(endpoint_id: str) -> Call:
    return Call("POST", f"/v1/event-endpoints/{_seg(endpoint_id)}/rotate-secret", _model(m.EndpointWithSecret))


def list_event_deliveries(
    *, endpoint_id: str | None, status: str | None, event_type: str | None, limit: int, cursor: str | None
) -> Call:
    params = _params(endpoint_id=endpoint_id, status=status, event_type=event_type, limit=limit, cursor=cursor)
    return Call("GET", "/v1/event-deliveries", _model(m.EngineApiEventsDeliveryList), params=params)


def redeliver_event(delivery_id: str) -> Call:
    path = f"/v1/event-deliveries/{_seg(delivery_id)}/redeliver"
    return Call("POST", path, _model(m.EngineApiEventsDeliveryView))
