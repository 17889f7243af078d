# DO NOT EDIT: written by scripts/codegen.py from the ingest annotations in src/ingest/models/.

"""Typed ingest types: what each internal model accepts from a mapping, and its topic."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from ingest.fields import IngestInput, IngestMetadata, UtcDatetime

__all__ = ["INPUT_TYPES", "REQUESTED_TYPES", "TOPICS", "Any"]


class AssetInput(IngestInput):
    """A validated ``asset`` record as a mapping produces it."""

    schema_name: ClassVar[str] = "asset"
    topic: ClassVar[str] = "integration.ingest.asset.requested"

    source_identifier: str
    name: str
    asset_type: str
    description: str | None = None
    url: str | None = None
    owner: str | None = None
    visibility: str | None = None
    archived: bool | None = None
    source_updated_at: UtcDatetime | None = None
    attributes: dict[str, Any] | None = None


class AssetIngestRequested(BaseModel):
    """A ``asset`` record on its way to persistence, with where it came from."""

    model_config = ConfigDict(frozen=True)
    topic: ClassVar[str] = "integration.ingest.asset.requested"

    metadata: IngestMetadata
    input: AssetInput


class DirectoryAccountInput(IngestInput):
    """A validated ``directory_account`` record as a mapping produces it."""

    schema_name: ClassVar[str] = "directory_account"
    topic: ClassVar[str] = "integration.ingest.directory_account.requested"

    external_id: str
    email: str | None = None
    display_name: str | None = None
    given_name: str | None = None
    family_name: str | None = None
    username: str | None = None
    account_type: str | None = None
    status: str | None = None
    is_admin: bool | None = None
    mfa_enabled: bool | None = None
    last_login_at: UtcDatetime | None = None
    source_created_at: UtcDatetime | None = None
    attributes: dict[str, Any] | None = None


class DirectoryAccountIngestRequested(BaseModel):
    """A ``directory_account`` record on its way to persistence, with where it came from."""

    model_config = ConfigDict(frozen=True)
    topic: ClassVar[str] = "integration.ingest.directory_account.requested"

    metadata: IngestMetadata
    input: DirectoryAccountInput


class DirectoryGroupInput(IngestInput):
    """A validated ``directory_group`` record as a mapping produces it."""

    schema_name: ClassVar[str] = "directory_group"
    topic: ClassVar[str] = "integration.ingest.directory_group.requested"

    external_id: str
    name: str
    email: str | None = None
    description: str | None = None
    group_type: str | None = None
    member_count: int | None = None
    attributes: dict[str, Any] | None = None


class DirectoryGroupIngestRequested(BaseModel):
    """A ``directory_group`` record on its way to persistence, with where it came from."""

    model_config = ConfigDict(frozen=True)
    topic: ClassVar[str] = "integration.ingest.directory_group.requested"

    metadata: IngestMetadata
    input: DirectoryGroupInput


class DirectoryMembershipInput(IngestInput):
    """A validated ``directory_membership`` record as a mapping produces it."""

    schema_name: ClassVar[str] = "directory_membership"
    topic: ClassVar[str] = "integration.ingest.directory_membership.requested"

    account_external_id: str
    group_external_id: str
    role: str | None = None
    attributes: dict[str, Any] | None = None


class DirectoryMembershipIngestRequested(BaseModel):
    """A ``directory_membership`` record on its way to persistence, with where it came from."""

    model_config = ConfigDict(frozen=True)
    topic: ClassVar[str] = "integration.ingest.directory_membership.requested"

    metadata: IngestMetadata
    input: DirectoryMembershipInput


class FindingInput(IngestInput):
    """A validated ``finding`` record as a mapping produces it."""

    schema_name: ClassVar[str] = "finding"
    topic: ClassVar[str] = "integration.ingest.finding.requested"

    external_id: str
    title: str
    description: str | None = None
    severity: str | None = None
    status: str | None = None
    category: str | None = None
    source: str | None = None
    resource_identifier: str | None = None
    recommendation: str | None = None
    url: str | None = None
    first_seen_at: UtcDatetime | None = None
    last_seen_at: UtcDatetime | None = None
    attributes: dict[str, Any] | None = None


class FindingIngestRequested(BaseModel):
    """A ``finding`` record on its way to persistence, with where it came from."""

    model_config = ConfigDict(frozen=True)
    topic: ClassVar[str] = "integration.ingest.finding.requested"

    metadata: IngestMetadata
    input: FindingInput


class VulnerabilityInput(IngestInput):
    """A validated ``vulnerability`` record as a mapping produces it."""

    schema_name: ClassVar[str] = "vulnerability"
    topic: ClassVar[str] = "integration.ingest.vulnerability.requested"

    external_id: str
    cve_id: str | None = None
    title: str
    description: str | None = None
    severity: str | None = None
    cvss_score: float | None = None
    status: str | None = None
    source: str | None = None
    package_name: str | None = None
    package_version: str | None = None
    fixed_version: str | None = None
    resource_identifier: str | None = None
    url: str | None = None
    published_at: UtcDatetime | None = None
    attributes: dict[str, Any] | None = None


class VulnerabilityIngestRequested(BaseModel):
    """A ``vulnerability`` record on its way to persistence, with where it came from."""

    model_config = ConfigDict(frozen=True)
    topic: ClassVar[str] = "integration.ingest.vulnerability.requested"

    metadata: IngestMetadata
    input: VulnerabilityInput


class CalendarEventInput(IngestInput):
    """A validated ``calendar_event`` record as a mapping produces it."""

    schema_name: ClassVar[str] = "calendar_event"
    topic: ClassVar[str] = "integration.ingest.calendar_event.requested"

    external_id: str
    title: str
    description: str | None = None
    start_at: UtcDatetime | None = None
    end_at: UtcDatetime | None = None
    all_day: bool | None = None
    location: str | None = None
    organizer_email: str | None = None
    status: str | None = None
    url: str | None = None
    attendees: list[Any] | None = None
    attributes: dict[str, Any] | None = None


class CalendarEventIngestRequested(BaseModel):
    """A ``calendar_event`` record on its way to persistence, with where it came from."""

    model_config = ConfigDict(frozen=True)
    topic: ClassVar[str] = "integration.ingest.calendar_event.requested"

    metadata: IngestMetadata
    input: CalendarEventInput


class ContactInput(IngestInput):
    """A validated ``contact`` record as a mapping produces it."""

    schema_name: ClassVar[str] = "contact"
    topic: ClassVar[str] = "integration.ingest.contact.requested"

    external_id: str
    full_name: str | None = None
    email: str | None = None
    phone: str | None = None
    company: str | None = None
    title: str | None = None
    address: str | None = None
    attributes: dict[str, Any] | None = None


class ContactIngestRequested(BaseModel):
    """A ``contact`` record on its way to persistence, with where it came from."""

    model_config = ConfigDict(frozen=True)
    topic: ClassVar[str] = "integration.ingest.contact.requested"

    metadata: IngestMetadata
    input: ContactInput


class MessageInput(IngestInput):
    """A validated ``message`` record as a mapping produces it."""

    schema_name: ClassVar[str] = "message"
    topic: ClassVar[str] = "integration.ingest.message.requested"

    external_id: str
    kind: str
    thread_id: str | None = None
    sender: str | None = None
    sender_name: str | None = None
    recipients: list[Any] | None = None
    subject: str | None = None
    sent_at: UtcDatetime | None = None
    labels: list[Any] | None = None
    snippet: str | None = None
    channel_id: str | None = None
    team_id: str | None = None
    url: str | None = None
    attributes: dict[str, Any] | None = None


class MessageIngestRequested(BaseModel):
    """A ``message`` record on its way to persistence, with where it came from."""

    model_config = ConfigDict(frozen=True)
    topic: ClassVar[str] = "integration.ingest.message.requested"

    metadata: IngestMetadata
    input: MessageInput


class FileInput(IngestInput):
    """A validated ``file`` record as a mapping produces it."""

    schema_name: ClassVar[str] = "file"
    topic: ClassVar[str] = "integration.ingest.file.requested"

    external_id: str
    name: str | None = None
    mime_type: str | None = None
    kind: str | None = None
    owners: list[Any] | None = None
    size_bytes: int | None = None
    source_created_at: UtcDatetime | None = None
    source_modified_at: UtcDatetime | None = None
    url: str | None = None
    trashed: bool | None = None
    parent_id: str | None = None
    attributes: dict[str, Any] | None = None


class FileIngestRequested(BaseModel):
    """A ``file`` record on its way to persistence, with where it came from."""

    model_config = ConfigDict(frozen=True)
    topic: ClassVar[str] = "integration.ingest.file.requested"

    metadata: IngestMetadata
    input: FileInput


INPUT_TYPES: dict[str, type[IngestInput]] = {
    "asset": AssetInput,
    "directory_account": DirectoryAccountInput,
    "directory_group": DirectoryGroupInput,
    "directory_membership": DirectoryMembershipInput,
    "finding": FindingInput,
    "vulnerability": VulnerabilityInput,
    "calendar_event": CalendarEventInput,
    "contact": ContactInput,
    "message": MessageInput,
    "file": FileInput,
}
REQUESTED_TYPES: dict[str, type[BaseModel]] = {
    "asset": AssetIngestRequested,
    "directory_account": DirectoryAccountIngestRequested,
    "directory_group": DirectoryGroupIngestRequested,
    "directory_membership": DirectoryMembershipIngestRequested,
    "finding": FindingIngestRequested,
    "vulnerability": VulnerabilityIngestRequested,
    "calendar_event": CalendarEventIngestRequested,
    "contact": ContactIngestRequested,
    "message": MessageIngestRequested,
    "file": FileIngestRequested,
}
TOPICS: dict[str, str] = {
    "asset": "integration.ingest.asset.requested",
    "directory_account": "integration.ingest.directory_account.requested",
    "directory_group": "integration.ingest.directory_group.requested",
    "directory_membership": "integration.ingest.directory_membership.requested",
    "finding": "integration.ingest.finding.requested",
    "vulnerability": "integration.ingest.vulnerability.requested",
    "calendar_event": "integration.ingest.calendar_event.requested",
    "contact": "integration.ingest.contact.requested",
    "message": "integration.ingest.message.requested",
    "file": "integration.ingest.file.requested",
}
