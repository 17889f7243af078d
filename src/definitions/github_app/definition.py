"""The GitHub definition: every part of the provider, declared in one place."""

from __future__ import annotations

from definitions.github_app.alerts import CodeScanningAlertSync, DependabotAlertSync, SecretScanningAlertSync
from definitions.github_app.client import GitHubClient
from definitions.github_app.config import GitHubAppConfig
from definitions.github_app.connections import GitHubAppConnection, GitHubTokenConnection
from definitions.github_app.directory import DirectorySync
from definitions.github_app.mappings import MAPPINGS
from definitions.github_app.operations import HealthCheck, RepositorySync
from definitions.github_app.slots import GitHubAppInstallation, GitHubPersonalAccessToken
from definitions.github_app.webhook import GitHubAppWebhook
from engine import Definition

definition = Definition(
    id="github_app",
    name="GitHub",
    description="Sync the repositories, security alerts and organisation members of a GitHub account, via the "
    "GitHub App or a token.",
    category="source_control",
    docs_url="https://docs.github.com/en/apps/creating-github-apps",
    operator_config=GitHubAppConfig,
    slots=(GitHubAppInstallation, GitHubPersonalAccessToken),
    clients=(GitHubClient,),
    connections=(GitHubAppConnection, GitHubTokenConnection),
    operations=(HealthCheck, RepositorySync, DependabotAlertSync, CodeScanningAlertSync, SecretScanningAlertSync,
                DirectorySync),
    webhooks=(GitHubAppWebhook,),
    mappings=MAPPINGS,
)
