"""Todoist: OAuth declared as data (``todoist.toml``), two operations, and the task mapping."""

from __future__ import annotations

from dataclasses import replace

from definitions.todoist.mappings import MAPPINGS
from definitions.todoist.oauth import OAUTH
from definitions.todoist.operations import CompleteTask, TaskSync

definition = replace(
    OAUTH.definition(
        operations=(TaskSync, CompleteTask),
        mappings=MAPPINGS,
        category="productivity",
        docs_url="https://developer.todoist.com/api/v1/",
    ),
    standard_suite_skips={
        "webhook.verifies": "no Todoist webhook is declared: the task sync polls the Sync API with its sync_token",
        "webhook.refuses_tampered": "no Todoist webhook is declared: nothing to tamper with",
    },
)
