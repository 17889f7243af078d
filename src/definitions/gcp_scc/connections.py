"""Connections: a service account key, or workload identity federation (Tether as the pool's OIDC issuer)."""

from __future__ import annotations

from typing import cast

from definitions.gcp_scc.client import SccApi, SccClient
from definitions.gcp_scc.operations import HealthCheck
from definitions.gcp_scc.slots import GcpServiceAccountKey, GcpWorkloadIdentity
from engine import Connection, ConnectionContext, IntegrationMetadata, NoRevocation


class ServiceAccountKeyConnection(Connection):
    """A pasted JSON key of a service account with the Security Center Findings Viewer role."""

    title = "Use a service account key"
    credential = GcpServiceAccountKey
    clients = (SccClient,)
    validate = HealthCheck
    disconnect = NoRevocation(
        reason="Tether forgets the key but cannot delete it. Delete the key under IAM & Admin → Service "
        "accounts → Keys in the Google Cloud console.",
    )

    async def resolve(self, ctx: ConnectionContext) -> IntegrationMetadata:
        api = cast(SccApi, ctx.client)
        auth = api.http.auth
        email = getattr(auth, "client_email", None)
        return IntegrationMetadata(account_id=api.parent, account_name=api.parent, account_email=email,
                                   url="https://console.cloud.google.com/security/command-center/findings")


class WorkloadIdentityConnection(Connection):
    """Workload identity federation: Tether's signed OIDC token exchanged at Google STS; no secret stored."""

    title = "Use workload identity federation"
    credential = GcpWorkloadIdentity
    clients = (SccClient,)
    validate = HealthCheck
    disconnect = NoRevocation(
        reason="Tether stores no key. Remove the workload identity pool provider (or its service account "
        "binding) in the Google Cloud console.",
    )

    async def resolve(self, ctx: ConnectionContext) -> IntegrationMetadata:
        api = cast(SccApi, ctx.client)
        email = getattr(api.http.auth, "client_email", None)
        return IntegrationMetadata(account_id=api.parent, account_name=api.parent, account_email=email,
                                   url="https://console.cloud.google.com/security/command-center/findings")
