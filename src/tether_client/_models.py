# DO NOT EDIT: written by scripts/client_codegen.py (datamodel-code-generator) from the server's /openapi.json.
# ruff: noqa: E501

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, RootModel


class AccessTokenView(BaseModel):
    access_token: Annotated[str, Field(title="Access Token")]
    token_type: Annotated[str, Field(title="Token Type")]
    expires_at: Annotated[AwareDatetime | None, Field(title="Expires At")]
    scopes: Annotated[list[str], Field(title="Scopes")]


class Acknowledgement(BaseModel):
    status: Annotated[str, Field(title="Status")]
    delivery_id: Annotated[str | None, Field(title="Delivery Id")] = ""


class AuditView(BaseModel):
    id: Annotated[str, Field(title="Id")]
    actor: Annotated[str, Field(title="Actor")]
    action: Annotated[str, Field(title="Action")]
    outcome: Annotated[str, Field(title="Outcome")]
    detail: Annotated[dict[str, Any], Field(title="Detail")]
    created_at: Annotated[AwareDatetime, Field(title="Created At")]


class Op(StrEnum):
    upsert = "upsert"
    remove = "remove"


class ChangeView(BaseModel):
    seq: Annotated[int, Field(title="Seq")]
    schema_: Annotated[str, Field(alias="schema", title="Schema")]
    record_id: Annotated[int, Field(title="Record Id")]
    integration_id: Annotated[str, Field(title="Integration Id")]
    op: Annotated[Op, Field(title="Op")]
    record: Annotated[dict[str, Any] | None, Field(title="Record")]
    changed_at: Annotated[AwareDatetime, Field(title="Changed At")]


class ConnectRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
    )
    connection: Annotated[str | None, Field(title="Connection")] = None
    return_url: Annotated[str | None, Field(title="Return Url")] = ""
    product: Annotated[str | None, Field(title="Product")] = None


class Auth(StrEnum):
    oauth2 = "oauth2"
    client_credentials = "client_credentials"
    app_install = "app_install"
    direct_input = "direct_input"


class Disconnect(StrEnum):
    revoke = "revoke"
    none = "none"


class EventType(StrEnum):
    integration_connected = "integration.connected"
    integration_reconnect_required = "integration.reconnect_required"
    integration_disconnected = "integration.disconnected"
    run_failed = "run.failed"
    run_succeeded = "run.succeeded"
    run_stalled = "run.stalled"
    records_changed = "records.changed"


class CreateEndpoint(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
    )
    url: Annotated[str, Field(max_length=2000, min_length=1, title="Url")]
    event_types: Annotated[
        list[EventType], Field(max_length=7, min_length=1, title="Event Types")
    ]
    description: Annotated[str | None, Field(max_length=500, title="Description")] = ""


class CreateIntegration(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
    )
    definition_id: Annotated[str, Field(max_length=100, title="Definition Id")]
    owner_id: Annotated[
        str | None,
        Field(
            description="Required for server principals: whose integration this is.",
            max_length=200,
            title="Owner Id",
        ),
    ] = ""
    name: Annotated[str | None, Field(max_length=200, title="Name")] = ""
    user_input: Annotated[dict[str, Any] | None, Field(title="User Input")] = None


class Mode(StrEnum):
    required = "required"
    optional = "optional"
    manual = "manual"


class Onboarding(StrEnum):
    after_auth = "after_auth"
    combined = "combined"
    settings = "settings"


class AccessTier(StrEnum):
    read = "read"
    write = "write"


class DeliveryStatus(StrEnum):
    received = "received"
    processed = "processed"
    failed = "failed"
    duplicate = "duplicate"
    unrouted = "unrouted"


class EmitView(BaseModel):
    schema_name: Annotated[str, Field(title="Schema Name")]
    variant: Annotated[str, Field(title="Variant")]


class EndpointView(BaseModel):
    id: Annotated[str, Field(title="Id")]
    url: Annotated[str, Field(title="Url")]
    event_types: Annotated[list[str], Field(title="Event Types")]
    description: Annotated[str, Field(title="Description")]
    enabled: Annotated[bool, Field(title="Enabled")]
    previous_secret_expires_at: Annotated[
        AwareDatetime | None, Field(title="Previous Secret Expires At")
    ]
    created_at: Annotated[AwareDatetime, Field(title="Created At")]
    updated_at: Annotated[AwareDatetime, Field(title="Updated At")]


class EndpointWithSecret(BaseModel):
    id: Annotated[str, Field(title="Id")]
    url: Annotated[str, Field(title="Url")]
    event_types: Annotated[list[str], Field(title="Event Types")]
    description: Annotated[str, Field(title="Description")]
    enabled: Annotated[bool, Field(title="Enabled")]
    previous_secret_expires_at: Annotated[
        AwareDatetime | None, Field(title="Previous Secret Expires At")
    ]
    created_at: Annotated[AwareDatetime, Field(title="Created At")]
    updated_at: Annotated[AwareDatetime, Field(title="Updated At")]
    secret: Annotated[str, Field(title="Secret")]


class ErrorBody(BaseModel):
    code: Annotated[str, Field(title="Code")]
    message: Annotated[str, Field(title="Message")]
    upgrade_url: Annotated[str | None, Field(title="Upgrade Url")] = None
    missing_scopes: Annotated[list[str] | None, Field(title="Missing Scopes")] = None
    product: Annotated[str | None, Field(title="Product")] = None
    fields: Annotated[list[dict[str, str]] | None, Field(title="Fields")] = None


class ErrorEnvelope(BaseModel):
    error: ErrorBody


class EventDeliveryStatus(StrEnum):
    pending = "pending"
    sending = "sending"
    delivered = "delivered"
    dead = "dead"


class EventView(BaseModel):
    id: Annotated[str, Field(title="Id")]
    topic: Annotated[str, Field(title="Topic")]
    match: Annotated[str, Field(title="Match")]
    emits: Annotated[list[EmitView], Field(title="Emits")]


class Health(BaseModel):
    status: Annotated[str, Field(title="Status")]
    database: Annotated[str, Field(title="Database")]
    definitions: Annotated[int, Field(title="Definitions")]


class IntegrationView(BaseModel):
    id: Annotated[str, Field(title="Id")]
    tenant_id: Annotated[str, Field(title="Tenant Id")]
    owner_id: Annotated[str, Field(title="Owner Id")]
    definition_id: Annotated[str, Field(title="Definition Id")]
    name: Annotated[str, Field(title="Name")]
    status: Annotated[str, Field(title="Status")]
    health: Annotated[str, Field(title="Health")]
    status_reason: Annotated[str, Field(title="Status Reason")]
    connection: Annotated[str | None, Field(title="Connection")]
    account: Annotated[dict[str, Any], Field(title="Account")]
    user_input: Annotated[dict[str, Any], Field(title="User Input")]
    filter_expr: Annotated[str, Field(title="Filter Expr")]
    connected_at: Annotated[AwareDatetime | None, Field(title="Connected At")]
    created_at: Annotated[AwareDatetime, Field(title="Created At")]
    updated_at: Annotated[AwareDatetime, Field(title="Updated At")]


class Mode2(StrEnum):
    inline = "inline"
    queued = "queued"


class Access(StrEnum):
    read = "read"
    write = "write"


class OperationView(BaseModel):
    id: Annotated[str, Field(title="Id")]
    topic: Annotated[str, Field(title="Topic")]
    description: Annotated[str, Field(title="Description")]
    mode: Annotated[Mode2, Field(title="Mode")]
    reconcile: Annotated[bool, Field(title="Reconcile")]
    schedule_seconds: Annotated[int | None, Field(title="Schedule Seconds")]
    access: Annotated[Access, Field(title="Access")]
    product: Annotated[str | None, Field(title="Product")] = None
    user_may_run: Annotated[bool, Field(title="User May Run")]
    client: Annotated[str | None, Field(title="Client")]
    emits: Annotated[list[EmitView], Field(title="Emits")]
    config_schema: Annotated[dict[str, Any], Field(title="Config Schema")]


class ProductView(BaseModel):
    id: Annotated[str, Field(title="Id")]
    title: Annotated[str, Field(title="Title")]
    scopes: Annotated[list[str], Field(title="Scopes")]


class QueuedResponse(BaseModel):
    run_id: Annotated[str, Field(title="Run Id")]
    status: Annotated[str, Field(title="Status")]


class RecordPage(BaseModel):
    data: Annotated[
        list[dict[str, Any]],
        Field(
            description="Records in id order: every field the schema's model declares (its ingest fields, id, integration_id, definition_id, created_at, updated_at), tenant_id left out.",
            title="Data",
        ),
    ]
    next_cursor: Annotated[
        str | None,
        Field(
            description="``cursor`` of the next page; null on the last one",
            title="Next Cursor",
        ),
    ] = None


class Redirect(BaseModel):
    redirect_url: Annotated[str, Field(title="Redirect Url")]


class Refused(RootModel[str]):
    root: Annotated[
        str,
        Field(
            description="The access token the provider refused; without it, the one Tether would hand out now.",
            max_length=8192,
            title="Refused",
        ),
    ]


class RefreshRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
    )
    refused: Annotated[
        Refused | None,
        Field(
            description="The access token the provider refused; without it, the one Tether would hand out now.",
            title="Refused",
        ),
    ] = None


class RunRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
    )
    config: Annotated[dict[str, Any] | None, Field(title="Config")] = None


class RunStatus(StrEnum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"
    stalled = "stalled"


class RunView(BaseModel):
    id: Annotated[str, Field(title="Id")]
    integration_id: Annotated[str, Field(title="Integration Id")]
    operation: Annotated[str, Field(title="Operation")]
    trigger: Annotated[str, Field(title="Trigger")]
    status: RunStatus
    config: Annotated[dict[str, Any], Field(title="Config")]
    result: Annotated[Any, Field(title="Result")]
    attempts: Annotated[int, Field(title="Attempts")]
    payloads_out: Annotated[int, Field(title="Payloads Out")]
    records_ingested: Annotated[int, Field(title="Records Ingested")]
    records_filtered: Annotated[int, Field(title="Records Filtered")]
    records_rejected: Annotated[int, Field(title="Records Rejected")]
    error_code: Annotated[str, Field(title="Error Code")]
    error_message: Annotated[str, Field(title="Error Message")]
    queued_at: Annotated[AwareDatetime, Field(title="Queued At")]
    started_at: Annotated[AwareDatetime | None, Field(title="Started At")]
    finished_at: Annotated[AwareDatetime | None, Field(title="Finished At")]
    duration_ms: Annotated[int | None, Field(title="Duration Ms")]


class ScimConnectRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
    )
    owner_id: Annotated[str | None, Field(max_length=200, title="Owner Id")] = ""
    name: Annotated[str | None, Field(max_length=200, title="Name")] = ""


class ScimConnectionView(BaseModel):
    integration_id: Annotated[str, Field(title="Integration Id")]
    base_url: Annotated[str, Field(title="Base Url")]
    bearer_token: Annotated[str, Field(title="Bearer Token")]


class ScimErrorBody(BaseModel):
    schemas: Annotated[list[str], Field(title="Schemas")]
    status: Annotated[str, Field(title="Status")]
    detail: Annotated[str | None, Field(title="Detail")] = None
    scimType: Annotated[str | None, Field(title="Scimtype")] = None


class UnroutedView(BaseModel):
    id: Annotated[str, Field(title="Id")]
    definition_id: Annotated[str, Field(title="Definition Id")]
    webhook: Annotated[str, Field(title="Webhook")]
    reason: Annotated[str, Field(title="Reason")]
    received_at: Annotated[AwareDatetime, Field(title="Received At")]


class Url(RootModel[str]):
    root: Annotated[str, Field(max_length=2000, min_length=1, title="Url")]


class EventTypes(RootModel[list[EventType]]):
    root: Annotated[
        list[EventType], Field(max_length=7, min_length=1, title="Event Types")
    ]


class Description(RootModel[str]):
    root: Annotated[str, Field(max_length=500, title="Description")]


class UpdateEndpoint(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
    )
    url: Annotated[Url | None, Field(title="Url")] = None
    event_types: Annotated[EventTypes | None, Field(title="Event Types")] = None
    description: Annotated[Description | None, Field(title="Description")] = None
    enabled: Annotated[bool | None, Field(title="Enabled")] = None


class Name(RootModel[str]):
    root: Annotated[str, Field(max_length=200, title="Name")]


class UpdateIntegration(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
    )
    name: Annotated[Name | None, Field(title="Name")] = None
    user_input: Annotated[dict[str, Any] | None, Field(title="User Input")] = None
    filter_expr: Annotated[
        str | None,
        Field(
            description="Tenant-level CEL filter applied before ingest; server principals only.",
            title="Filter Expr",
        ),
    ] = None


class ValidateResult(BaseModel):
    is_valid: Annotated[bool, Field(title="Is Valid")]
    integration: IntegrationView


class WebhookView(BaseModel):
    name: Annotated[str, Field(title="Name")]
    verifier: Annotated[str, Field(title="Verifier")]
    static: Annotated[bool, Field(title="Static")]
    events: Annotated[list[EventView], Field(title="Events")]


class EngineApiEventsDeliveryView(BaseModel):
    id: Annotated[str, Field(title="Id")]
    event_id: Annotated[str, Field(title="Event Id")]
    endpoint_id: Annotated[str, Field(title="Endpoint Id")]
    event_type: Annotated[str, Field(title="Event Type")]
    status: EventDeliveryStatus
    attempts: Annotated[int, Field(title="Attempts")]
    next_attempt_at: Annotated[AwareDatetime | None, Field(title="Next Attempt At")]
    last_status_code: Annotated[int | None, Field(title="Last Status Code")]
    last_error: Annotated[str, Field(title="Last Error")]
    created_at: Annotated[AwareDatetime, Field(title="Created At")]
    delivered_at: Annotated[AwareDatetime | None, Field(title="Delivered At")]


class EngineApiWebhooksDeliveryView(BaseModel):
    id: Annotated[str, Field(title="Id")]
    delivery_id: Annotated[str, Field(title="Delivery Id")]
    event_type: Annotated[str, Field(title="Event Type")]
    status: DeliveryStatus
    error_code: Annotated[str, Field(title="Error Code")]
    error_message: Annotated[str, Field(title="Error Message")]
    attempts: Annotated[int, Field(title="Attempts")]
    received_at: Annotated[AwareDatetime, Field(title="Received At")]
    processed_at: Annotated[AwareDatetime | None, Field(title="Processed At")]


class ChangePage(BaseModel):
    changes: Annotated[list[ChangeView], Field(title="Changes")]
    next_after: Annotated[int, Field(title="Next After")]


class ConnectionView(BaseModel):
    id: Annotated[str, Field(title="Id")]
    title: Annotated[str, Field(title="Title")]
    auth: Annotated[Auth, Field(title="Auth")]
    credential_slot: Annotated[str, Field(title="Credential Slot")]
    manual_slot_schema: Annotated[
        dict[str, Any] | None, Field(title="Manual Slot Schema")
    ]
    scopes: Annotated[list[str], Field(title="Scopes")]
    upgrade_scopes: Annotated[list[str], Field(title="Upgrade Scopes")]
    products: Annotated[
        list[ProductView] | None, Field(title="Products", validate_default=True)
    ] = []
    validate_operation: Annotated[str | None, Field(title="Validate Operation")]
    disconnect: Annotated[Disconnect, Field(title="Disconnect")]
    disconnect_note: Annotated[str, Field(title="Disconnect Note")]
    enabled: Annotated[bool | None, Field(title="Enabled")] = True
    missing_config: Annotated[list[str] | None, Field(title="Missing Config")] = []


class DefinitionDetail(BaseModel):
    id: Annotated[str, Field(title="Id")]
    name: Annotated[str, Field(title="Name")]
    description: Annotated[str, Field(title="Description")]
    category: Annotated[str, Field(title="Category")]
    mode: Annotated[Mode, Field(title="Mode")]
    onboarding: Annotated[Onboarding, Field(title="Onboarding")]
    enabled: Annotated[bool, Field(title="Enabled")]
    access_tiers: Annotated[list[AccessTier], Field(title="Access Tiers")]
    connections: Annotated[list[str], Field(title="Connections")]
    operations: Annotated[list[str], Field(title="Operations")]
    webhooks: Annotated[list[str], Field(title="Webhooks")]
    schemas: Annotated[list[EmitView], Field(title="Schemas")]
    missing_config: Annotated[list[str], Field(title="Missing Config")]
    docs_url: Annotated[str, Field(title="Docs Url")]
    user_input_schema: Annotated[
        dict[str, Any] | None, Field(title="User Input Schema")
    ]
    connection_details: Annotated[
        list[ConnectionView], Field(title="Connection Details")
    ]
    operation_details: Annotated[list[OperationView], Field(title="Operation Details")]
    webhook_details: Annotated[list[WebhookView], Field(title="Webhook Details")]


class DefinitionSummary(BaseModel):
    id: Annotated[str, Field(title="Id")]
    name: Annotated[str, Field(title="Name")]
    description: Annotated[str, Field(title="Description")]
    category: Annotated[str, Field(title="Category")]
    mode: Annotated[Mode, Field(title="Mode")]
    onboarding: Annotated[Onboarding, Field(title="Onboarding")]
    enabled: Annotated[bool, Field(title="Enabled")]
    access_tiers: Annotated[list[AccessTier], Field(title="Access Tiers")]
    connections: Annotated[list[str], Field(title="Connections")]
    operations: Annotated[list[str], Field(title="Operations")]
    webhooks: Annotated[list[str], Field(title="Webhooks")]
    schemas: Annotated[list[EmitView], Field(title="Schemas")]
    missing_config: Annotated[list[str] | None, Field(title="Missing Config")] = []


class DisconnectResult(BaseModel):
    integration: IntegrationView
    note: Annotated[
        str,
        Field(
            description="What the user must still do at the provider, when it offers no revocation.",
            title="Note",
        ),
    ]


class EndpointList(BaseModel):
    endpoints: Annotated[list[EndpointView], Field(title="Endpoints")]


class InlineResponse(BaseModel):
    result: Annotated[Any, Field(title="Result")]
    run: RunView


class RunList(BaseModel):
    runs: Annotated[list[RunView], Field(title="Runs")]
    next_cursor: Annotated[str | None, Field(title="Next Cursor")] = None


class UnroutedList(BaseModel):
    deliveries: Annotated[list[UnroutedView], Field(title="Deliveries")]
    counts: Annotated[dict[str, int], Field(title="Counts")]
    total: Annotated[int, Field(title="Total")]


class EngineApiEventsDeliveryList(BaseModel):
    deliveries: Annotated[list[EngineApiEventsDeliveryView], Field(title="Deliveries")]
    next_cursor: Annotated[str | None, Field(title="Next Cursor")] = None


class EngineApiWebhooksDeliveryList(BaseModel):
    deliveries: Annotated[
        list[EngineApiWebhooksDeliveryView], Field(title="Deliveries")
    ]
    counts: Annotated[dict[str, int], Field(title="Counts")]
