"""Connections: a role Tether assumes with its external ID (recommended), or an IAM user's access keys.

Neither can be revoked by Tether: it never created anything in the customer's account. The role connection
shows its external ID before the role exists (``setup_details``), because the customer writes it into the
role's trust policy.
"""

from __future__ import annotations

from typing import Any, cast

from definitions.aws_security_hub.client import AwsApi, SecurityHubClient
from definitions.aws_security_hub.config import AwsSecurityHubConfig
from definitions.aws_security_hub.external_id import external_id_for
from definitions.aws_security_hub.operations import HealthCheck
from definitions.aws_security_hub.slots import AwsAccessKeys, AwsAssumeRole
from engine import Connection, ConnectionContext, IntegrationMetadata, NoRevocation


class AwsRoleConnection(Connection):
    """Tether assumes a read-only role in the customer's account, with temporary credentials only."""

    title = "Assume an IAM role"
    credential = AwsAssumeRole
    clients = (SecurityHubClient,)
    validate = HealthCheck
    disconnect = NoRevocation(
        reason="Tether forgets the role but cannot remove it. Delete the IAM role (or the statement trusting "
        "Tether in its trust policy) in the IAM console of your AWS account.",
    )

    @staticmethod
    def setup_details(integration_id: str, operator_config: AwsSecurityHubConfig) -> dict[str, str]:
        """What the setup page shows before the role exists: whom to trust, and with which external ID."""
        return {
            "principal_arn": operator_config.principal_arn,
            "external_id": external_id_for(integration_id, operator_config.external_id_secret.get_secret_value()),
        }

    async def resolve(self, ctx: ConnectionContext) -> IntegrationMetadata:
        api = cast(AwsApi, ctx.client)
        role = cast(AwsAssumeRole, ctx.credential)
        return _metadata(await api.account_id(), api, {"role_arn": role.role_arn, "external_id": api.external_id})


class AwsKeysConnection(Connection):
    """An IAM user's access key pair: no role to create, but the keys are long-lived secrets."""

    title = "Use access keys"
    credential = AwsAccessKeys
    clients = (SecurityHubClient,)
    validate = HealthCheck
    disconnect = NoRevocation(
        reason="Tether forgets the keys but cannot deactivate them. Deactivate and delete the access key "
        "under IAM → Users → Security credentials in your AWS account.",
    )

    async def resolve(self, ctx: ConnectionContext) -> IntegrationMetadata:
        api = cast(AwsApi, ctx.client)
        return _metadata(await api.account_id(), api, {})


def _metadata(account_id: str, api: AwsApi, attributes: dict[str, Any]) -> IntegrationMetadata:
    return IntegrationMetadata(account_id=account_id, account_name=f"AWS account {account_id}",
                               attributes={"region": api.region, **attributes})
