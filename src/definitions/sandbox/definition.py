"""The sandbox definition: every part of the provider, declared in one place.

Enabled only while the sandbox is on (``Settings.sandbox``: on by default for the embedded default, elsewhere
``TETHER_SANDBOX=1``); off, the catalog says which variable turns it on.
"""

from __future__ import annotations

from definitions.sandbox.client import SandboxClient
from definitions.sandbox.config import SandboxConfig
from definitions.sandbox.connections import SandboxKey, SandboxOAuth
from definitions.sandbox.mappings import MAPPINGS
from definitions.sandbox.operations import HealthCheck, ResolveFinding, Sync
from definitions.sandbox.slots import SandboxApiKey, SandboxToken
from definitions.sandbox.webhook import SandboxEvents
from engine import Definition

definition = Definition(
    id="sandbox",
    name="Sandbox",
    description="A test provider Tether serves itself: seeded accounts with users, groups, memberships, assets, "
    "findings and events, over OAuth or an API key, with signed change webhooks and failure controls.",
    category="testing",
    docs_url="/sandbox/",
    operator_config=SandboxConfig,
    requires_settings=("sandbox",),
    slots=(SandboxToken, SandboxApiKey),
    clients=(SandboxClient,),
    connections=(SandboxOAuth, SandboxKey),
    operations=(HealthCheck, Sync, ResolveFinding),
    webhooks=(SandboxEvents,),
    mappings=MAPPINGS,
)
