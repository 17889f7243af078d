"""Asana's listings (https://developers.asana.com/reference/gettasks), declared as streams: the kit runs each one
(``engine.kit.streams``: the page loop, the guards against a repeated cursor or a listing shorter than the provider
promised, checkpoints, 429 deferral), so this file only says what only Asana's API reference can say.

Each ``StreamSpec`` becomes an ingest operation named by ``name`` (a stable ID: renaming it is a migration) and its
``map`` the CEL mapping of what it lists.
"""

from __future__ import annotations

from engine.kit.celpaths import is_true, optional, present, text
from engine.kit.streams import CursorPagination, IncrementalSpec, RequestSpec, StreamSpec

#: The task properties asked for (``opt_fields``: a task listing is compact, ``gid`` and ``name``, without it).
OPT_FIELDS = (
    "name,notes,completed,completed_at,due_on,due_at,start_on,assignee,parent,projects,tags.name,"
    "created_at,modified_at,permalink_url,resource_subtype"
)
#: A due day without a time (``due_on``), kept as midnight UTC with ``all_day_due``; ``due_at`` is an instant.
DUE_AT = f'{present("due_at")} ? payload.due_at : ({present("due_on")} ? payload.due_on + "T00:00:00Z" : null)'

#: task field → CEL over one Asana task (``payload``). Asana has no priority or recurrence property (those live
#: in custom fields, per workspace), so those fields are not mapped.
FIELDS = {
    "external_id": "payload.gid",  # Asana's IDs are strings (``gid``; the numeric ``id`` is gone since 2020)
    "title": "payload.name",
    "description": text("notes"),
    "project_id": f"{present('projects')} && size(payload.projects) > 0 ? payload.projects[0].gid : null",
    "parent_id": f"{present('parent')} ? payload.parent.gid : null",
    "labels": f"{present('tags')} ? payload.tags.map(t, t.name) : []",
    "due_at": DUE_AT,
    "all_day_due": f"{present('due_at')} ? false : ({present('due_on')} ? true : null)",
    "completed": is_true("completed"),
    "completed_at": optional("completed_at"),
    "assignee_id": f"{present('assignee')} ? payload.assignee.gid : null",
    "source_created_at": optional("created_at"),
    "source_updated_at": optional("modified_at"),
    "url": optional("permalink_url"),
    "attributes": f'{{"resource_subtype": {optional("resource_subtype")}, "start_on": {optional("start_on")}}}',
}

TASKS = StreamSpec(
    name="TaskSync",
    description="Asana's task records.",
    # ``GET /tasks?project=…``; after the first run only the tasks modified since the last one.
    request=RequestSpec(
        path="/tasks",
        params={"project": "{input.project_gid}", "opt_fields": OPT_FIELDS, "modified_since": "{incremental}"},
    ),
    records="data",
    # ``next_page.offset`` is the next page's token (``next_page`` is null on the last); ``limit`` is 1..100.
    pagination=CursorPagination(
        kind="cursor", cursor_path="next_page.offset", param="offset", page_size_param="limit", page_size=100
    ),
    incremental=IncrementalSpec(cursor_field="modified_at"),
    schema_name="task",
    variant="asana",
    map="{" + ", ".join(f'"{name}": {cel}' for name, cel in FIELDS.items()) + "}",
)

STREAMS = (TASKS,)
