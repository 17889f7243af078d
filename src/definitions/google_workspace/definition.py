"""The Google Workspace definition: every part of the provider, declared in one place."""

from __future__ import annotations

from definitions.google_workspace.client import GoogleWorkspaceClient
from definitions.google_workspace.config import GoogleWorkspaceConfig, GoogleWorkspaceInput
from definitions.google_workspace.connections import GoogleServiceAccountConnection, GoogleWorkspaceOAuthConnection
from definitions.google_workspace.mappings import MAPPINGS
from definitions.google_workspace.operations import DirectorySync, HealthCheck
from definitions.google_workspace.slots import GoogleServiceAccountKey, GoogleWorkspaceOAuthToken
from engine import Definition

definition = Definition(
    id="google_workspace",
    name="Google Workspace",
    description="Sync the users, groups and group memberships of a Google Workspace account.",
    category="identity",
    docs_url="https://developers.google.com/admin-sdk/directory/v1/guides",
    operator_config=GoogleWorkspaceConfig,
    user_input=GoogleWorkspaceInput,
    slots=(GoogleWorkspaceOAuthToken, GoogleServiceAccountKey),
    clients=(GoogleWorkspaceClient,),
    connections=(GoogleWorkspaceOAuthConnection, GoogleServiceAccountConnection),
    operations=(HealthCheck, DirectorySync),
    mappings=MAPPINGS,
    standard_suite_skips={
        "webhook.verifies": (
            "no push channel (the Directory API's users.watch) is declared: the directory sync reads it in full"
        ),
        "webhook.refuses_tampered": "no push channel is declared: nothing to tamper with",
    },
)
