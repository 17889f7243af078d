"""Todoist: OAuth declared as data (``todoist.toml``), two operations, and the task mapping."""

from __future__ import annotations

from definitions.todoist.mappings import MAPPINGS
from definitions.todoist.oauth import OAUTH
from definitions.todoist.operations import CompleteTask, TaskSync

definition = OAUTH.definition(
    operations=(TaskSync, CompleteTask),
    mappings=MAPPINGS,
    category="productivity",
    docs_url="https://developer.todoist.com/api/v1/",
)
