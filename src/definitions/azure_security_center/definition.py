"""The Azure Security Center (Defender for Cloud) definition: every part, declared in one place."""

from __future__ import annotations

from definitions.azure_security_center.client import ArmClient
from definitions.azure_security_center.connections import ServicePrincipalConnection
from definitions.azure_security_center.mappings import MAPPINGS
from definitions.azure_security_center.operations import AssessmentsCollect, HealthCheck, SubAssessmentsCollect
from definitions.azure_security_center.slots import AzureServicePrincipal
from engine import Definition

definition = Definition(
    id="azure_security_center",
    name="Microsoft Defender for Cloud",
    description="Sync security assessments and sub-assessments of an Azure subscription as vulnerabilities.",
    category="cloud_security",
    docs_url="https://learn.microsoft.com/en-us/rest/api/defenderforcloud/assessments",
    slots=(AzureServicePrincipal,),
    clients=(ArmClient,),
    connections=(ServicePrincipalConnection,),
    operations=(HealthCheck, AssessmentsCollect, SubAssessmentsCollect),
    mappings=MAPPINGS,
    standard_suite_skips={
        "webhook.verifies": "Defender for Cloud sends no webhooks: its alerts leave through continuous export to an "
        "Event Hub or Log Analytics workspace, not an HTTP delivery Tether receives; assessments are collected",
        "webhook.refuses_tampered": "no webhook (see webhook.verifies)",
    },
)
