"""Operator config: Tether's own AWS identity and the secret external IDs are derived from.

Read from the environment once per deployment (``TETHER_SECRET_AWS_SECURITY_HUB_EXTERNAL_ID_SECRET``, …), never
from a tenant. ``endpoint_url`` exists for tests against a local AWS emulator (moto): boto3 does not go through
Tether's egress guard, so an endpoint is never taken from user input, only from the operator.
"""

from __future__ import annotations

from pydantic import SecretStr, field_validator

from engine import OperatorConfig


class AwsSecurityHubConfig(OperatorConfig):
    """Tether's side of the cross-account trust."""

    #: HMAC key that derives each integration's external ID (``external_id.py``). Rotating it changes every
    #: external ID, so every customer's role trust policy would have to be updated: set it once.
    external_id_secret: SecretStr
    #: Tether's AWS access key that calls ``sts:AssumeRole``. Unset: boto3's default chain (an instance or task
    #: role, ``AWS_*`` variables), which is what production on AWS should use.
    access_key_id: str | None = None
    secret_access_key: SecretStr | None = None
    #: The AWS principal customers trust in their role (shown on the setup page), e.g.
    #: ``arn:aws:iam::111122223333:role/tether``.
    principal_arn: str = ""
    #: Tests only: send every AWS call to this endpoint (a moto server on 127.0.0.1). Unset in production, where
    #: boto3 uses AWS's regional endpoints.
    endpoint_url: str | None = None

    @field_validator("endpoint_url")
    @classmethod
    def _endpoint(cls, value: str | None) -> str | None:
        if value and not value.startswith(("https://", "http://127.0.0.1", "http://localhost", "http://[::1]")):
            raise ValueError("endpoint_url must be https, or http on loopback for tests")
        return value or None
