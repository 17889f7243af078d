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

A deleted task (``is_deleted``) comes as a removal (``REMOVE``): only its ``external_id`` is used, and its row goes.
``attributes.deleted`` still says it for a host that maps such items without removing them.
"""

from __future__ import annotations

from engine import Mapping
from engine.kit.celpaths import first, is_true, optional, present

HAS_DUE = f"({present('due')} && {present('due.date')})"
#: REST v2's timed due date; v1 has none (its ``due.date`` carries the time).
DUE_DATETIME = present("due.datetime")
PRIORITY = '{"1": "low", "2": "medium", "3": "high", "4": "urgent"}'
TASK_URL = "https://app.todoist.com/app/task/"

TASK = Mapping(
    schema="task",
    variant="task",
    map=f"""
    {{
      "external_id": string(payload.id),
      "title": {present("content")} ? payload.content : "",
      "description": {present("description")} && payload.description != "" ? payload.description : null,
      "project_id": {present("project_id")} ? string(payload.project_id) : null,
      "parent_id": {present("parent_id")} ? string(payload.parent_id) : null,
      "priority": !{present("priority")} ? null
        : (string(int(payload.priority)) in {PRIORITY} ? {PRIORITY}[string(int(payload.priority))] : null),
      "labels": {present("labels")} ? payload.labels : [],
      "due_at": !{HAS_DUE} ? null
        : {DUE_DATETIME} ? payload.due.datetime
        : size(payload.due.date) == 10 ? payload.due.date + "T00:00:00Z"
        : payload.due.date.endsWith("Z") ? payload.due.date : payload.due.date + "Z",
      "all_day_due": !{HAS_DUE} ? null : size(payload.due.date) == 10 && !{DUE_DATETIME},
      "recurring": {present("due")} ? {is_true("due.is_recurring")} : null,
      "completed": {is_true("checked")} || {is_true("is_completed")} || {present("completed_at")},
      "completed_at": {first("completed_at", "date_completed")},
      "assignee_id": {present("responsible_uid")} ? string(payload.responsible_uid)
        : ({present("assignee_id")} ? string(payload.assignee_id) : null),
      "source_created_at": {first("added_at", "created_at", "date_added")},
      "source_updated_at": {optional("updated_at")},
      "url": {present("url")} ? payload.url : "{TASK_URL}" + string(payload.id),
      "attributes": {{
        "todoist_priority": {optional("priority")},
        "section_id": {optional("section_id")},
        "creator_id": {first("added_by_uid", "creator_id")},
        "due_string": {HAS_DUE} ? {optional("due.string")} : null,
        "due_timezone": {HAS_DUE} ? {optional("due.timezone")} : null,
        "due_floating": {HAS_DUE} && !{DUE_DATETIME} && size(payload.due.date) > 10
          && !payload.due.date.endsWith("Z"),
        "deadline": {present("deadline")} ? {optional("deadline.date")} : null,
        "duration": {optional("duration")},
        "deleted": {is_true("is_deleted")}
      }}
    }}
    """,
)

MAPPINGS = (TASK,)
