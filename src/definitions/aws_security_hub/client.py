"""The AWS client: boto3 clients for Security Hub, Audit Manager and STS, acting in the customer's account.

Two credential shapes. A role (``AwsAssumeRole``): Tether's own AWS identity (operator config, or boto3's default
chain) calls ``sts:AssumeRole`` with the role ARN and the external ID Tether derived for this integration, and
the temporary credentials are renewed by botocore shortly before they expire (``DeferredRefreshableCredentials``:
nothing is called until the first request). Access keys (``AwsAccessKeys``) are used as they are.

boto3 signs the requests; they are sent through Tether's egress client (``transport.EgressSender``), with its
total deadline, size cap and address checks. The endpoints are AWS's regional ones, derived from a region that
must match a strict pattern, and only the operator may point them elsewhere (``endpoint_url``, for tests against
moto on 127.0.0.1). Retries are off (one attempt): a throttled run is deferred by the queue rather than slept on
in a worker.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import boto3
import botocore.session
from botocore.config import Config
from botocore.credentials import DeferredRefreshableCredentials

from definitions.aws_security_hub.aws import call
from definitions.aws_security_hub.config import AwsSecurityHubConfig
from definitions.aws_security_hub.external_id import external_id_for
from definitions.aws_security_hub.slots import AwsAccessKeys, AwsAssumeRole
from definitions.aws_security_hub.transport import EgressSender
from engine import Client, ClientContext, ConfigurationError

#: One hour: the default maximum session of a role, so no role needs a longer ``MaxSessionDuration``.
SESSION_SECONDS = 3600
BOTO_CONFIG = Config(
    retries={"mode": "standard", "total_max_attempts": 1},
    connect_timeout=10,
    read_timeout=30,
    user_agent_extra="Tether (aws_security_hub)",
)


@dataclass
class AwsApi:
    """What operations receive: ready boto3 clients in the customer's account and region."""

    securityhub: Any
    sts: Any
    region: str
    #: Audit Manager in the same account and region (same credential: one role reads both services).
    auditmanager: Any = None
    #: The external ID sent with ``AssumeRole`` (``None`` for access keys).
    external_id: str | None = None
    #: What sends the clients' requests; closed with the clients.
    sender: EgressSender | None = None

    def close(self) -> None:
        if self.sender is not None:
            self.sender.close()

    async def account_id(self) -> str:
        """The customer's account, from ``sts:GetCallerIdentity`` as the connected identity."""
        identity = await call(self.sts.get_caller_identity)
        return str(identity["Account"])


class SecurityHubClient(Client):
    """boto3 clients built from a role to assume or from access keys."""

    slots = (AwsAssumeRole, AwsAccessKeys)

    def build(self, ctx: ClientContext) -> AwsApi:
        if ctx.operator_config is None:
            raise ConfigurationError("aws_security_hub: the operator config is not set")
        config = cast(AwsSecurityHubConfig, ctx.operator_config)
        credential = ctx.credential
        if isinstance(credential, AwsAccessKeys):
            session = boto3.Session(
                aws_access_key_id=credential.access_key_id,
                aws_secret_access_key=credential.secret_access_key.get_secret_value(),
                region_name=credential.region,
            )
            return _api(session, credential.region, config, EgressSender())
        if not isinstance(credential, AwsAssumeRole):
            raise TypeError(f"SecurityHubClient cannot be built from {type(credential).__name__}")
        external_id = external_id_for(ctx.integration_id, config.external_id_secret.get_secret_value())
        sender = EgressSender()
        session = assumed_session(config, credential, external_id, session_name=f"tether-{ctx.integration_id}",
                                  sender=sender)
        return _api(session, credential.region, config, sender, external_id)


def tether_session(config: AwsSecurityHubConfig, region: str) -> boto3.Session:
    """Tether's own identity, the one customers' roles trust."""
    if config.access_key_id and config.secret_access_key:
        return boto3.Session(aws_access_key_id=config.access_key_id,
                             aws_secret_access_key=config.secret_access_key.get_secret_value(), region_name=region)
    return boto3.Session(region_name=region)


def assumed_session(config: AwsSecurityHubConfig, role: AwsAssumeRole, external_id: str, *,
                    session_name: str, sender: EgressSender) -> boto3.Session:
    """A session whose credentials come from ``AssumeRole`` on first use and are renewed before they expire."""
    sts = sender.attach(tether_session(config, role.region).client(
        "sts", region_name=role.region, endpoint_url=config.endpoint_url, config=BOTO_CONFIG))

    def refresh() -> dict[str, str]:
        answer = sts.assume_role(RoleArn=role.role_arn, RoleSessionName=session_name[:64],
                                 ExternalId=external_id, DurationSeconds=SESSION_SECONDS)
        temporary = answer["Credentials"]
        return {
            "access_key": temporary["AccessKeyId"],
            "secret_key": temporary["SecretAccessKey"],
            "token": temporary["SessionToken"],
            "expiry_time": temporary["Expiration"].isoformat(),
        }

    core = botocore.session.get_session()
    core._credentials = DeferredRefreshableCredentials(refresh_using=refresh, method="sts-assume-role")
    return boto3.Session(botocore_session=core, region_name=role.region)


def _api(session: boto3.Session, region: str, config: AwsSecurityHubConfig, sender: EgressSender,
         external_id: str | None = None) -> AwsApi:
    def client(service: str) -> Any:
        return sender.attach(
            session.client(service, region_name=region, endpoint_url=config.endpoint_url, config=BOTO_CONFIG))

    return AwsApi(securityhub=client("securityhub"), sts=client("sts"), region=region,
                  auditmanager=client("auditmanager"), external_id=external_id, sender=sender)
