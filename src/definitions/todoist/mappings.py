"""Mapping: a Todoist task (an ``items`` entry of the Sync API, ``POST /api/v1/sync``) → ``task``.

Checked against the unified API v1 the client calls, and against the shapes of the versions before it, because
Todoist renamed fields between them and tasks recorded by older clients still carry the old names (the official
SDK, ``Doist/todoist-api-python``, loads both spellings): ``added_at`` (v1) was ``created_at`` (REST v2) and
``date_added`` (Sync v9); ``responsible_uid`` (v1) is REST v2's ``assignee_id``; ``checked`` (v1) is REST v2's
``is_completed``, and the SDK's own v1 task fixture carries neither, only ``completed_at``; REST v2 split a timed
due date into ``due.datetime``, v1 puts it in ``due.date``. Every optional property is guarded for absence *and*
null (an incremental sync sends a deleted task as little more than its ID).

Due dates come in three forms (Todoist's API v1 reference, "Due dates"): a day (``2016-09-01``, stored as midnight
UTC with ``all_day_due``), a fixed instant (``…Z``), and a floating time (``2016-09-01T12:00:00``, the same wall
time in every zone), stored as that wall time in UTC with ``attributes.due_floating`` so nothing pretends it is
an instant. Todoist's priority runs 1 (normal) to 4 (urgent); the raw value stays in ``attributes``.

A deleted task (``is_deleted``) is kept as a tombstone, ``attributes.deleted`` true, because a ``Payload`` has no
remove form yet (README, "Not built yet").
"""

from __future__ import annotations

from engine import Mapping


def _present(path: str) -> str:
    """CEL: ``payload.<path>`` is there and not null, compared by type (the reference back end, celpy, has no
    ``!=`` between a map or a list and ``null``)."""
    return f"(has(payload.{path}) && type(payload.{path}) != null_type)"


def _opt(path: str) -> str:
    """CEL: ``payload.<path>`` when present and not null, else null."""
    return f"({_present(path)} ? payload.{path} : null)"


def _first(*paths: str) -> str:
    """CEL: the first of ``payload.<path>`` present and not null, else null."""
    expression = "null"
    for path in reversed(paths):
        expression = f"({_present(path)} ? payload.{path} : {expression})"
    return expression


def _true(path: str) -> str:
    return f"(has(payload.{path}) && payload.{path} == true)"


HAS_DUE = f"({_present('due')} && {_present('due.date')})"
#: REST v2's timed due date; v1 has none (its ``due.date`` carries the time).
DUE_DATETIME = _present("due.datetime")
PRIORITY = '{"1": "low", "2": "medium", "3": "high", "4": "urgent"}'
TASK_URL = "https://app.todoist.com/app/task/"

TASK = Mapping(
    schema="task",
    variant="task",
    map=f"""
    {{
      "external_id": string(payload.id),
      "title": {_present("content")} ? payload.content : "",
      "description": {_present("description")} && payload.description != "" ? payload.description : null,
      "project_id": {_present("project_id")} ? string(payload.project_id) : null,
      "parent_id": {_present("parent_id")} ? string(payload.parent_id) : null,
      "priority": !{_present("priority")} ? null
        : (string(int(payload.priority)) in {PRIORITY} ? {PRIORITY}[string(int(payload.priority))] : null),
      "labels": {_present("labels")} ? payload.labels : [],
      "due_at": !{HAS_DUE} ? null
        : {DUE_DATETIME} ? payload.due.datetime
        : size(payload.due.date) == 10 ? payload.due.date + "T00:00:00Z"
        : payload.due.date.endsWith("Z") ? payload.due.date : payload.due.date + "Z",
      "all_day_due": !{HAS_DUE} ? null : size(payload.due.date) == 10 && !{DUE_DATETIME},
      "recurring": {_present("due")} ? {_true("due.is_recurring")} : null,
      "completed": {_true("checked")} || {_true("is_completed")} || {_present("completed_at")},
      "completed_at": {_first("completed_at", "date_completed")},
      "assignee_id": {_present("responsible_uid")} ? string(payload.responsible_uid)
        : ({_present("assignee_id")} ? string(payload.assignee_id) : null),
      "source_created_at": {_first("added_at", "created_at", "date_added")},
      "source_updated_at": {_opt("updated_at")},
      "url": {_present("url")} ? payload.url : "{TASK_URL}" + string(payload.id),
      "attributes": {{
        "todoist_priority": {_opt("priority")},
        "section_id": {_opt("section_id")},
        "creator_id": {_first("added_by_uid", "creator_id")},
        "due_string": {HAS_DUE} ? {_opt("due.string")} : null,
        "due_timezone": {HAS_DUE} ? {_opt("due.timezone")} : null,
        "due_floating": {HAS_DUE} && !{DUE_DATETIME} && size(payload.due.date) > 10
          && !payload.due.date.endsWith("Z"),
        "deadline": {_present("deadline")} ? {_opt("deadline.date")} : null,
        "duration": {_opt("duration")},
        "deleted": {_true("is_deleted")}
      }}
    }}
    """,
)

MAPPINGS = (TASK,)
