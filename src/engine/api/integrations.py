"""``/v1/integrations``: configure, connect, validate, reconnect, disconnect — scoped to the caller's principal."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Body, Depends, Request, Response
from pydantic import BaseModel, Field
from sqlmodel import col, select

from engine.api.bodies import RequestBody
from engine.api.fields import DefinitionId, IntegrationName, OwnerId
from engine.api.principal import Principal, current_principal
from engine.custody.tokens import AccessToken
from engine.integrations.lifecycle import IntegrationNotConnected, InvalidTransition
from engine.integrations.setup import Setup
from engine.runtime import Runtime
from engine.store.tables import AuditEvent, Integration, IntegrationStatus

router = APIRouter(prefix="/v1/integrations", tags=["integrations"])


class IntegrationView(BaseModel):
    """An integration as API callers see it: no credential material, ever."""

    id: str
    tenant_id: str
    owner_id: str
    definition_id: str
    name: str
    status: str
    health: str
    status_reason: str
    connection: str | None
    account: dict[str, Any]
    user_input: dict[str, Any]
    filter_expr: str
    connected_at: datetime | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: Integration) -> IntegrationView:
        return cls(
            id=row.id,
            tenant_id=row.tenant_id,
            owner_id=row.owner_id,
            definition_id=row.definition_id,
            name=row.name,
            status=row.status,
            health=row.health,
            status_reason=row.status_reason,
            connection=(row.provider_data or {}).get("connection"),
            account=row.account or {},
            user_input=row.user_input or {},
            filter_expr=row.filter_expr,
            connected_at=row.connected_at,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )


class CreateIntegration(RequestBody):
    definition_id: DefinitionId
    owner_id: OwnerId = Field(default="", description="Required for server principals: whose integration this is.")
    name: IntegrationName = ""
    user_input: dict[str, Any] | None = None


class UpdateIntegration(RequestBody):
    name: IntegrationName | None = None
    user_input: dict[str, Any] | None = None
    filter_expr: str | None = Field(
        default=None, description="Tenant-level CEL filter applied before ingest; server principals only."
    )


class ConnectRequest(RequestBody):
    connection: str | None = None
    return_url: str = ""
    #: A product of the connection (Google's ``gmail``) whose scopes to ask for, beside those already granted.
    product: str | None = None


class Redirect(BaseModel):
    redirect_url: str


class ValidateResult(BaseModel):
    is_valid: bool
    integration: IntegrationView


class DisconnectResult(BaseModel):
    integration: IntegrationView
    note: str = Field(description="What the user must still do at the provider, when it offers no revocation.")


class AccessTokenView(BaseModel):
    access_token: str
    token_type: str
    expires_at: datetime | None
    scopes: list[str]

    @classmethod
    def of(cls, token: AccessToken) -> AccessTokenView:
        scopes = list(token.scopes)
        return cls(access_token=token.token, token_type=token.token_type, expires_at=token.expires_at, scopes=scopes)


class RefreshRequest(RequestBody):
    refused: str | None = Field(
        default=None,
        max_length=8192,
        description="The access token the provider refused; without it, the one Tether would hand out now.",
    )


class AuditView(BaseModel):
    id: str
    actor: str
    action: str
    outcome: str
    detail: dict[str, Any]
    created_at: datetime


def _setup(request: Request) -> Setup:
    return Setup(request.app.state.runtime)


def _runtime(request: Request) -> Runtime:
    return request.app.state.runtime


@router.get("", response_model=list[IntegrationView])
def list_integrations(request: Request, principal: Principal = Depends(current_principal)) -> list[IntegrationView]:
    query = select(Integration).where(Integration.tenant_id == principal.tenant_id)
    if not principal.is_server:
        query = query.where(Integration.owner_id == principal.owner_id)
    with _runtime(request).db.session() as session:
        rows = session.exec(query.order_by(col(Integration.created_at))).all()
    return [IntegrationView.of(r) for r in rows]


@router.post("", response_model=IntegrationView, status_code=201)
def create_integration(
    body: CreateIntegration, request: Request, principal: Principal = Depends(current_principal)
) -> IntegrationView:
    row = _setup(request).configure(
        principal, body.definition_id, owner_id=body.owner_id, user_input=body.user_input, name=body.name
    )
    return IntegrationView.of(row)


@router.get("/{integration_id}", response_model=IntegrationView)
def get_integration(
    integration_id: str, request: Request, principal: Principal = Depends(current_principal)
) -> IntegrationView:
    return IntegrationView.of(_setup(request).get(principal, integration_id))


@router.patch("/{integration_id}", response_model=IntegrationView)
def update_integration(
    integration_id: str, body: UpdateIntegration, request: Request, principal: Principal = Depends(current_principal)
) -> IntegrationView:
    row = _setup(request).update(
        principal, integration_id, user_input=body.user_input, name=body.name, filter_expr=body.filter_expr
    )
    return IntegrationView.of(row)


@router.delete("/{integration_id}", status_code=204)
async def delete_integration(
    integration_id: str, request: Request, principal: Principal = Depends(current_principal)
) -> Response:
    """Disconnect (revoking at the provider when the connection declares it), then delete the record."""
    setup = _setup(request)
    row = setup.get(principal, integration_id)
    runtime = _runtime(request)
    if (row.provider_data or {}).get("connection"):
        await runtime.custody.disconnect(row.id, actor=_actor(principal))
    with runtime.db.session() as session:
        fresh = session.get(Integration, row.id)
        if fresh is not None:
            session.delete(fresh)
    runtime.clients.drop(row.id)
    return Response(status_code=204)


@router.post("/{integration_id}/disconnect", response_model=DisconnectResult)
async def disconnect_integration(
    integration_id: str, request: Request, principal: Principal = Depends(current_principal)
) -> DisconnectResult:
    """Disconnect but keep the record (and its history): it can be connected again later."""
    setup = _setup(request)
    row = setup.get(principal, integration_id)
    if row.status == IntegrationStatus.disconnected:
        raise InvalidTransition("this integration is already disconnected")
    if not (row.provider_data or {}).get("connection"):
        raise IntegrationNotConnected(f"this integration is {row.status}: there is no connection to disconnect")
    note = await _runtime(request).custody.disconnect(row.id, actor=_actor(principal))
    return DisconnectResult(integration=IntegrationView.of(setup.get(principal, integration_id)), note=note)


@router.post("/{integration_id}/connect", response_model=Redirect)
def connect(
    integration_id: str, body: ConnectRequest, request: Request, principal: Principal = Depends(current_principal)
) -> Redirect:
    url = _setup(request).begin(
        principal, integration_id, connection_id=body.connection, return_url=body.return_url, product=body.product
    )
    return Redirect(redirect_url=url)


@router.post("/{integration_id}/upgrade", response_model=Redirect)
def upgrade(
    integration_id: str, body: ConnectRequest, request: Request, principal: Principal = Depends(current_principal)
) -> Redirect:
    """Ask for more access: with ``product``, that product's scopes (kept beside what is granted); without, the
    connection's upgrade scopes (read → write access)."""
    url = _setup(request).begin(
        principal,
        integration_id,
        connection_id=body.connection,
        return_url=body.return_url,
        upgrade=body.product is None,
        product=body.product,
    )
    return Redirect(redirect_url=url)


@router.post("/{integration_id}/reconnect", response_model=Redirect)
def reconnect(
    integration_id: str, body: ConnectRequest, request: Request, principal: Principal = Depends(current_principal)
) -> Redirect:
    """Run the active connection's flow again (after ``reconnect_required``)."""
    url = _setup(request).begin(principal, integration_id, connection_id=body.connection, return_url=body.return_url)
    return Redirect(redirect_url=url)


@router.post("/{integration_id}/credentials/{slot}", response_model=IntegrationView)
async def submit_credential(
    integration_id: str,
    slot: str,
    body: dict[str, Any],
    request: Request,
    principal: Principal = Depends(current_principal),
) -> IntegrationView:
    """Direct input of a manual credential slot (an API key, a token); validated, health-checked, then saved."""
    row = await _setup(request).submit_credential(principal, integration_id, slot, body)
    return IntegrationView.of(row)


@router.post("/{integration_id}/validate", response_model=ValidateResult)
async def validate(
    integration_id: str, request: Request, principal: Principal = Depends(current_principal)
) -> ValidateResult:
    is_valid, row = await _setup(request).validate(principal, integration_id)
    return ValidateResult(is_valid=is_valid, integration=IntegrationView.of(row))


@router.get("/{integration_id}/access-token", response_model=AccessTokenView)
async def access_token(
    integration_id: str, request: Request, principal: Principal = Depends(current_principal)
) -> AccessTokenView:
    """A short-lived access token for the host app's server; never a refresh token."""
    row = _tokened(request, principal, integration_id)
    return AccessTokenView.of(await _runtime(request).custody.get_access_token(row.id))


@router.post("/{integration_id}/access-token/refresh", response_model=AccessTokenView)
async def refresh_access_token(
    integration_id: str,
    request: Request,
    principal: Principal = Depends(current_principal),
    body: RefreshRequest | None = Body(None),
) -> AccessTokenView:
    """A new access token although the current one has not expired, for a host app whose call the provider refused
    with 401 (``Custody.renew``: callers refused the same token share one refresh; a token already renewed is
    returned as it is). OAuth connections only (``no_access_token`` otherwise)."""
    row = _tokened(request, principal, integration_id)
    custody = _runtime(request).custody
    refused = body.refused if body is not None and body.refused else (await custody.get_access_token(row.id)).token
    return AccessTokenView.of(await custody.renew(row.id, refused))


def _tokened(request: Request, principal: Principal, integration_id: str) -> Integration:
    """The integration, if the caller is the host's server and it holds a connection with a token to hand out."""
    row = _setup(request).get(principal, integration_id)
    principal.require_server()
    has_connection = bool((row.provider_data or {}).get("connection"))
    if row.status in (IntegrationStatus.pending, IntegrationStatus.disconnected) or not has_connection:
        raise IntegrationNotConnected(f"this integration is {row.status}: it holds no token")
    return row


@router.get("/{integration_id}/audit", response_model=list[AuditView])
def audit_events(
    integration_id: str, request: Request, principal: Principal = Depends(current_principal)
) -> list[AuditView]:
    row = _setup(request).get(principal, integration_id)
    with _runtime(request).db.session() as session:
        events = session.exec(
            select(AuditEvent).where(AuditEvent.integration_id == row.id).order_by(col(AuditEvent.created_at))
        ).all()
    return [
        AuditView(id=e.id, actor=e.actor, action=e.action, outcome=e.outcome, detail=e.detail, created_at=e.created_at)
        for e in events
    ]


def _actor(principal: Principal) -> str:
    return f"server:{principal.tenant_id}" if principal.is_server else f"user:{principal.owner_id}"
