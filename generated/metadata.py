# DO NOT EDIT: written by scripts/codegen.py from the ingest annotations in src/ingest/models/.

"""What each internal model accepts from a mapping."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ModelMetadata:
    schema: str
    table: str
    topic: str
    allowed: tuple[str, ...]
    required: tuple[str, ...]
    upsert: tuple[str, ...]
    lookup: tuple[str, ...]
    #: (column, context source) pairs filled from the integration context.
    context: tuple[tuple[str, str], ...]
    #: (field, target schema, column receiving the target's ID) triples resolved at persistence.
    references: tuple[tuple[str, str, str], ...]
    stock_persistence: bool


MODELS: dict[str, ModelMetadata] = {
    "asset": ModelMetadata(
        schema="asset",
        table="asset",
        topic="integration.ingest.asset.requested",
        allowed=(
            "source_identifier",
            "name",
            "asset_type",
            "description",
            "url",
            "owner",
            "visibility",
            "archived",
            "source_updated_at",
            "attributes",
        ),
        required=("source_identifier", "name", "asset_type"),
        upsert=("source_identifier",),
        lookup=("source_identifier",),
        context=(("tenant_id", "tenant_id"), ("integration_id", "integration_id"), ("definition_id", "definition_id")),
        references=(),
        stock_persistence=True,
    ),
    "directory_account": ModelMetadata(
        schema="directory_account",
        table="directory_account",
        topic="integration.ingest.directory_account.requested",
        allowed=(
            "external_id",
            "email",
            "display_name",
            "given_name",
            "family_name",
            "username",
            "account_type",
            "status",
            "is_admin",
            "mfa_enabled",
            "last_login_at",
            "source_created_at",
            "attributes",
        ),
        required=("external_id",),
        upsert=("external_id",),
        lookup=("external_id",),
        context=(("tenant_id", "tenant_id"), ("integration_id", "integration_id"), ("definition_id", "definition_id")),
        references=(),
        stock_persistence=True,
    ),
    "directory_group": ModelMetadata(
        schema="directory_group",
        table="directory_group",
        topic="integration.ingest.directory_group.requested",
        allowed=("external_id", "name", "email", "description", "group_type", "member_count", "attributes"),
        required=("external_id", "name"),
        upsert=("external_id",),
        lookup=("external_id",),
        context=(("tenant_id", "tenant_id"), ("integration_id", "integration_id"), ("definition_id", "definition_id")),
        references=(),
        stock_persistence=True,
    ),
    "directory_membership": ModelMetadata(
        schema="directory_membership",
        table="directory_membership",
        topic="integration.ingest.directory_membership.requested",
        allowed=("account_external_id", "group_external_id", "role", "attributes"),
        required=("account_external_id", "group_external_id"),
        upsert=("account_external_id", "group_external_id"),
        lookup=(),
        context=(("tenant_id", "tenant_id"), ("integration_id", "integration_id"), ("definition_id", "definition_id")),
        references=(
            ("account_external_id", "directory_account", "account_id"),
            ("group_external_id", "directory_group", "group_id"),
        ),
        stock_persistence=True,
    ),
    "finding": ModelMetadata(
        schema="finding",
        table="finding",
        topic="integration.ingest.finding.requested",
        allowed=(
            "external_id",
            "title",
            "description",
            "severity",
            "status",
            "category",
            "source",
            "resource_identifier",
            "recommendation",
            "url",
            "first_seen_at",
            "last_seen_at",
            "attributes",
        ),
        required=("external_id", "title"),
        upsert=("external_id",),
        lookup=("external_id",),
        context=(("tenant_id", "tenant_id"), ("integration_id", "integration_id"), ("definition_id", "definition_id")),
        references=(),
        stock_persistence=True,
    ),
    "vulnerability": ModelMetadata(
        schema="vulnerability",
        table="vulnerability",
        topic="integration.ingest.vulnerability.requested",
        allowed=(
            "external_id",
            "cve_id",
            "title",
            "description",
            "severity",
            "cvss_score",
            "status",
            "source",
            "package_name",
            "package_version",
            "fixed_version",
            "resource_identifier",
            "url",
            "published_at",
            "attributes",
        ),
        required=("external_id", "title"),
        upsert=("external_id",),
        lookup=("external_id",),
        context=(("tenant_id", "tenant_id"), ("integration_id", "integration_id"), ("definition_id", "definition_id")),
        references=(),
        stock_persistence=True,
    ),
    "calendar_event": ModelMetadata(
        schema="calendar_event",
        table="calendar_event",
        topic="integration.ingest.calendar_event.requested",
        allowed=(
            "external_id",
            "title",
            "description",
            "start_at",
            "end_at",
            "all_day",
            "location",
            "organizer_email",
            "status",
            "url",
            "attendees",
            "attributes",
        ),
        required=("external_id", "title"),
        upsert=("external_id",),
        lookup=("external_id",),
        context=(("tenant_id", "tenant_id"), ("integration_id", "integration_id"), ("definition_id", "definition_id")),
        references=(),
        stock_persistence=True,
    ),
    "contact": ModelMetadata(
        schema="contact",
        table="contact",
        topic="integration.ingest.contact.requested",
        allowed=("external_id", "full_name", "email", "phone", "company", "title", "address", "attributes"),
        required=("external_id",),
        upsert=("external_id",),
        lookup=("external_id", "email"),
        context=(("tenant_id", "tenant_id"), ("integration_id", "integration_id"), ("definition_id", "definition_id")),
        references=(),
        stock_persistence=True,
    ),
}
