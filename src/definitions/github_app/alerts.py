"""Security alerts: Dependabot, code scanning and secret scanning alerts → ``vulnerability``, one variant each.

Each sync walks the repositories the credential can see and lists every alert of each one (all states, so that
fixed and dismissed alerts update their rows) from ``/repos/{owner}/{repo}/<kind>/alerts``. A repository where
the feature is off or not licensed answers 403 or 404: it has no alerts to sync, so it is skipped; a 401 or a
rate limit still fails the run. Per repository rather than per organisation because it works the same for a
personal account, an organisation and a personal access token.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any, ClassVar

from definitions.github_app.client import GitHubClient
from definitions.github_app.operations import repositories
from definitions.github_app.rest import paginate
from engine import Emits, Operation, OperationContext, Payload, Policy, ProviderError


class RepositoryAlertSync(Operation):
    """Shared by the three alert syncs: not an operation of its own (no ``emits``, not in the definition)."""

    client = GitHubClient
    policy = Policy.queued(reconcile=True, schedule=timedelta(hours=6))
    #: The path under ``/repos/{owner}/{repo}/`` and the vulnerability variant its alerts become.
    path: ClassVar[str]
    variant: ClassVar[str]
    params: ClassVar[dict[str, str]] = {}

    async def ingest(self, ctx: OperationContext) -> AsyncIterator[Payload]:
        async for repository in repositories(ctx.client):
            alerts = paginate(ctx.client, f"/repos/{repository['full_name']}/{self.path}", **self.params)
            try:
                async for alert in alerts:
                    yield alert_payload(self.variant, alert, repository)
            except ProviderError as error:
                if not feature_unavailable(error):
                    raise


class DependabotAlertSync(RepositoryAlertSync):
    """Sync the Dependabot alerts (vulnerable dependencies) of every repository."""

    emits = (Emits("vulnerability", "dependabot_alert"),)
    path = "dependabot/alerts"
    variant = "dependabot_alert"


class CodeScanningAlertSync(RepositoryAlertSync):
    """Sync the code-scanning alerts (CodeQL and other tools) of every repository."""

    emits = (Emits("vulnerability", "code_scanning_alert"),)
    path = "code-scanning/alerts"
    variant = "code_scanning_alert"


class SecretScanningAlertSync(RepositoryAlertSync):
    """Sync the secret-scanning alerts (committed credentials) of every repository, without the secrets."""

    emits = (Emits("vulnerability", "secret_scanning_alert"),)
    path = "secret-scanning/alerts"
    variant = "secret_scanning_alert"
    params = {"hide_secret": "true"}


def alert_payload(variant: str, alert: dict[str, Any], repository: dict[str, Any]) -> Payload:
    """The ``{"alert", "repository"}`` shape the mappings read; a secret GitHub sends anyway is dropped."""
    alert = {key: value for key, value in alert.items() if key != "secret"}
    return Payload(schema="vulnerability", variant=variant, data={"alert": alert, "repository": repository})


def feature_unavailable(error: ProviderError) -> bool:
    """403 (disabled, not licensed, no permission) or 404 (never set up) that is not a rate limit."""
    return error.provider_status in (403, 404) and error.code != "rate_limited"
