"""Connection: a tenant's admin grants consent to the multi-tenant app, which then acts app-only.

The admin-consent redirect carries ``tenant`` (and ``admin_consent=True``). Both are claims anyone can type into a
URL, so the callback is also bound to the flow state and ``verify_install`` proves the tenant with the provider: a
token for that tenant can only be minted once an admin there consented, and ``/organization`` must then answer
the same tenant ID.
"""

from __future__ import annotations

from typing import cast

from definitions.azure_entra_id.client import EntraClient
from definitions.azure_entra_id.operations import HealthCheck
from definitions.azure_entra_id.slots import EntraTenant
from definitions.microsoft_graph import get_json
from engine import (
    AppInstall,
    Connection,
    ConnectionContext,
    IntegrationMetadata,
    NoRevocation,
    ProviderError,
)

ADMIN_CONSENT_URL = ("https://login.microsoftonline.com/organizations/v2.0/adminconsent"
                     "?client_id={client_id}&scope=https://graph.microsoft.com/.default")


class EntraAdminConsentConnection(Connection):
    """An admin of the tenant consents to the app's application permissions (User.Read.All, Group.Read.All,
    GroupMember.Read.All); Tether stores only the tenant ID."""

    title = "Grant admin consent in Microsoft Entra"
    credential = EntraTenant
    clients = (EntraClient,)
    # The engine appends ``redirect_uri`` and ``state``; ``tenant`` on the callback becomes ``EntraTenant``.
    auth = AppInstall(slot=EntraTenant, install_url=ADMIN_CONSENT_URL, callback_param="tenant")
    validate = HealthCheck
    disconnect = NoRevocation(
        reason="Microsoft has no API to withdraw admin consent for another tenant. An admin removes the app in "
        "the Entra admin center under Enterprise applications → Tether → Properties → Delete; until then the "
        "app keeps its consented permissions, though Tether no longer uses them.",
    )

    async def verify_install(self, ctx: ConnectionContext) -> None:
        """Prove the ``tenant`` claim: mint an app-only token for it and read back the organisation's ID."""
        await self._organization(ctx)

    async def resolve(self, ctx: ConnectionContext) -> IntegrationMetadata:
        organization = await self._organization(ctx)
        domains = organization.get("verifiedDomains") or []
        default = next((d.get("name") for d in domains if d.get("isDefault")), None)
        return IntegrationMetadata(
            account_id=organization.get("id"),
            account_name=organization.get("displayName"),
            workspace=default,
            attributes={"tenant_id": organization.get("id"), "default_domain": default},
        )

    async def _organization(self, ctx: ConnectionContext) -> dict[str, object]:
        tenant_id = cast(EntraTenant, ctx.credential).tenant_id
        body = await get_json(ctx.client, "/v1.0/organization", **{"$select": "id,displayName,verifiedDomains"})
        organization = (body.get("value") or [{}])[0]
        if str(organization.get("id", "")).lower() != tenant_id.lower():
            raise ProviderError("the consent callback's tenant is not the tenant the app's token is for",
                                code="tenant_mismatch")
        return organization
