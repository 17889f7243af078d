"""Credential slots: a service account key, or workload identity federation (Tether as the OIDC issuer).

Class names are stable IDs stored in the database: renaming one is a migration.
"""

from __future__ import annotations

from pydantic import Field, SecretStr

from engine import CredentialSlot

#: The SCC parent findings are listed under; it goes into the URL path, so only these shapes are accepted.
PARENT = r"^(organizations|folders|projects)/[a-z0-9-]{1,63}$"


class GcpServiceAccountKey(CredentialSlot):
    """The JSON key of a service account granted *Security Center Findings Viewer* on ``parent``."""

    title = "Service account key"

    service_account_json: SecretStr
    #: ``organizations/123``, ``folders/456`` or ``projects/my-project``.
    parent: str = Field(pattern=PARENT)


class GcpWorkloadIdentity(CredentialSlot):
    """Workload identity federation: a token signed by Tether (OIDC issuer) exchanged at Google STS, no key stored.

    ``service_account_email``, when set, is impersonated with the federated token; otherwise the pool's principal
    (``principal://…/subject/tether:{tenant}:{integration}``) itself needs the Findings Viewer role.
    """

    title = "Workload identity federation"

    project_number: str = Field(pattern=r"^[0-9]{1,20}$")
    pool_id: str = Field(pattern=r"^[a-z0-9-]{4,32}$")
    provider_id: str = Field(pattern=r"^[a-z0-9-]{4,32}$")
    service_account_email: str | None = None
    parent: str = Field(pattern=PARENT)
