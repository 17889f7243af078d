"""Operator config: the sandbox's OAuth client. Its values are fixed and public (sandbox only), so both have
defaults and nothing needs setting; ``TETHER_SANDBOX_CLIENT_ID`` / ``TETHER_SECRET_SANDBOX_CLIENT_SECRET`` override
them for a sandbox registered otherwise.
"""

from __future__ import annotations

from pydantic import SecretStr

from engine import OperatorConfig

CLIENT_ID = "tether-sandbox"
CLIENT_SECRET = "sandbox-secret"


class SandboxConfig(OperatorConfig):
    """The client Tether is registered as at the sandbox's authorization server."""

    client_id: str = CLIENT_ID
    client_secret: SecretStr = SecretStr(CLIENT_SECRET)
