"""The AWS Security Hub definition: every part of the provider, declared in one place."""

from __future__ import annotations

from definitions.aws_security_hub.audit_manager import AuditAssessmentSync, AuditEvidenceSync
from definitions.aws_security_hub.client import SecurityHubClient
from definitions.aws_security_hub.config import AwsSecurityHubConfig
from definitions.aws_security_hub.connections import AwsKeysConnection, AwsRoleConnection
from definitions.aws_security_hub.mappings import MAPPINGS
from definitions.aws_security_hub.operations import FindingSync, HealthCheck, ResourceSync
from definitions.aws_security_hub.slots import AwsAccessKeys, AwsAssumeRole
from engine import Definition

definition = Definition(
    id="aws_security_hub",
    name="AWS Security Hub",
    description="Sync Security Hub findings (control checks, detections, CVEs) and the AWS resources they name, "
    "and Audit Manager assessment controls and compliance-check evidence.",
    category="cloud_security",
    docs_url="https://docs.aws.amazon.com/securityhub/latest/userguide/what-is-securityhub.html",
    operator_config=AwsSecurityHubConfig,
    slots=(AwsAssumeRole, AwsAccessKeys),
    clients=(SecurityHubClient,),
    connections=(AwsRoleConnection, AwsKeysConnection),
    operations=(HealthCheck, FindingSync, ResourceSync, AuditAssessmentSync, AuditEvidenceSync),
    mappings=MAPPINGS,
    standard_suite_skips={
        "webhook.verifies": "Security Hub and Audit Manager send no webhooks: AWS delivers findings through "
        "EventBridge (to a target in the customer's account), not to an HTTP endpoint Tether holds; the syncs poll",
        "webhook.refuses_tampered": "no webhook (see webhook.verifies)",
    },
)
