"""The Okta definition: every part of the provider, declared in one place."""

from __future__ import annotations

from definitions.okta.client import OktaClient
from definitions.okta.config import OktaSettings
from definitions.okta.connections import OktaApiTokenConnection, OktaServiceAppConnection
from definitions.okta.mappings import GROUP, MEMBERSHIP, USER
from definitions.okta.operations import DirectorySync, HealthCheck
from definitions.okta.slots import OktaApiToken, OktaServiceApp
from definitions.okta.webhook import OktaEventHook
from engine import Definition

definition = Definition(
    id="okta",
    name="Okta",
    description="Sync an Okta org's users, groups and group memberships, via an API token or a service app.",
    category="identity",
    docs_url="https://developer.okta.com/docs/reference/core-okta-api/",
    user_input=OktaSettings,
    slots=(OktaApiToken, OktaServiceApp),
    clients=(OktaClient,),
    connections=(OktaApiTokenConnection, OktaServiceAppConnection),
    operations=(HealthCheck, DirectorySync),
    webhooks=(OktaEventHook,),
    mappings=(USER, GROUP, MEMBERSHIP),
)
