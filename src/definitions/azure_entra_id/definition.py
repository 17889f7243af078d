"""The Microsoft Entra ID definition: every part of the provider, declared in one place."""

from __future__ import annotations

from definitions.azure_entra_id.client import EntraClient
from definitions.azure_entra_id.config import EntraConfig
from definitions.azure_entra_id.connections import EntraAdminConsentConnection
from definitions.azure_entra_id.mappings import MAPPINGS
from definitions.azure_entra_id.operations import DirectorySync, HealthCheck
from definitions.azure_entra_id.slots import EntraTenant
from definitions.azure_entra_id.webhook import GraphChangeNotifications
from engine import Definition

definition = Definition(
    id="azure_entra_id",
    name="Microsoft Entra ID",
    description="Sync the users, groups and group memberships of a Microsoft Entra ID (Azure AD) tenant.",
    category="identity",
    docs_url="https://learn.microsoft.com/graph/delta-query-overview",
    operator_config=EntraConfig,
    slots=(EntraTenant,),
    clients=(EntraClient,),
    connections=(EntraAdminConsentConnection,),
    operations=(HealthCheck, DirectorySync),
    webhooks=(GraphChangeNotifications,),
    mappings=MAPPINGS,
)
