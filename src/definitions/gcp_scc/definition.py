"""The Google Cloud Security Command Center definition: every part, declared in one place."""

from __future__ import annotations

from definitions.gcp_scc.client import SccClient
from definitions.gcp_scc.connections import ServiceAccountKeyConnection, WorkloadIdentityConnection
from definitions.gcp_scc.mappings import MAPPINGS
from definitions.gcp_scc.operations import FindingsSync, HealthCheck
from definitions.gcp_scc.slots import GcpServiceAccountKey, GcpWorkloadIdentity
from engine import Definition

definition = Definition(
    id="gcp_scc",
    name="Google Cloud Security Command Center",
    description="Sync Security Command Center findings (threats, misconfigurations, CVEs) of an organization, "
    "folder or project.",
    category="cloud_security",
    docs_url="https://cloud.google.com/security-command-center/docs/reference/rest/v1/organizations.sources.findings/list",
    slots=(GcpServiceAccountKey, GcpWorkloadIdentity),
    clients=(SccClient,),
    connections=(ServiceAccountKeyConnection, WorkloadIdentityConnection),
    operations=(HealthCheck, FindingsSync),
    mappings=MAPPINGS,
    standard_suite_skips={
        "webhook.verifies": (
            "SCC notifies through Pub/Sub (notificationConfigs), which no webhook of this definition receives: "
            "findings are polled"
        ),
        "webhook.refuses_tampered": "no webhook is declared: nothing to tamper with",
    },
)
