"""Task: a to-do item from a task manager (a Todoist task, and later Asana, Jira or Microsoft To Do items).

A task often has no date at all, which is why it is not a ``calendar_event``: ``due_at`` is optional, and a due
*day* without a time (``all_day_due``) is kept apart from a due instant. Completion is a state of the task
(``completed`` and ``completed_at``), not a removal: a completed task stays a row until the provider deletes it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import JSON, UniqueConstraint
from sqlmodel import Field, SQLModel

from ingest.annotations import IngestOptions, from_context, mapped, record_indexes, upsert_key


class Task(SQLModel, table=True):
    __tablename__ = "task"
    __table_args__ = (UniqueConstraint("tenant_id", "integration_id", "external_id"), *record_indexes("task"))
    __ingest__: ClassVar[IngestOptions] = IngestOptions(schema="task")

    id: int | None = Field(default=None, primary_key=True)
    tenant_id: str = from_context("tenant_id")
    integration_id: str = from_context("integration_id")
    definition_id: str = from_context("definition_id")
    #: The provider's task ID: the upsert and lookup key.
    external_id: str = upsert_key(lookup=True)
    title: str = mapped()
    description: str | None = mapped(None)
    #: The project, list or board the task belongs to (provider ID), and its parent task for a sub-task.
    project_id: str | None = mapped(None)
    parent_id: str | None = mapped(None)
    #: Normalised ``low``, ``medium``, ``high``, ``urgent`` (the provider's own scale stays in ``attributes``).
    priority: str | None = mapped(None)
    labels: list[Any] | None = mapped(None, sa_type=JSON)
    #: When the task is due: an instant, or midnight UTC of the due day when ``all_day_due`` is true.
    due_at: datetime | None = mapped(None)
    all_day_due: bool | None = mapped(None)
    recurring: bool | None = mapped(None)
    completed: bool | None = mapped(None)
    completed_at: datetime | None = mapped(None)
    assignee_id: str | None = mapped(None)
    source_created_at: datetime | None = mapped(None)
    source_updated_at: datetime | None = mapped(None)
    url: str | None = mapped(None)
    attributes: dict[str, Any] | None = mapped(None, sa_type=JSON)
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    updated_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
