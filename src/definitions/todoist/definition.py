"""Todoist: OAuth declared as data (``todoist.toml``) plus two operations."""

from __future__ import annotations

from definitions.todoist.oauth import OAUTH
from definitions.todoist.operations import CompleteTask, TaskSync

definition = OAUTH.definition(
    operations=(TaskSync, CompleteTask),
    category="productivity",
    docs_url="https://developer.todoist.com/api/v1/",
)
