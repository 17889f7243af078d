"""Credential slots: a role Tether assumes (recommended), or an IAM user's access keys.

Class names are stable IDs stored in the database: renaming one is a migration. Neither slot holds an external ID:
Tether derives it (``external_id.py``), so a user can never choose or change it.
"""

from __future__ import annotations

from pydantic import Field, SecretStr

from engine import CredentialSlot

#: ``arn:aws:iam::<12-digit account>:role/<path/name>`` (commercial, China and GovCloud partitions).
ROLE_ARN = r"^arn:aws(-cn|-us-gov)?:iam::[0-9]{12}:role/[A-Za-z0-9+=,.@_/-]+$"
#: A region name such as ``us-east-1`` or ``ap-southeast-2``; it picks AWS endpoints, so nothing else passes.
REGION = r"^[a-z]{2}(-gov)?-[a-z]+-\d$"


class AwsAssumeRole(CredentialSlot):
    """An IAM role in the customer's account that trusts Tether's principal with Tether's external ID.

    Not a secret: Tether gets temporary credentials for it from STS on demand, and the external ID keeps another
    Tether customer from pointing their integration at this role (the confused-deputy problem).
    """

    title = "IAM role (recommended)"

    role_arn: str = Field(pattern=ROLE_ARN, max_length=2048)
    #: The Security Hub home (aggregation) region.
    region: str = Field(default="us-east-1", pattern=REGION)


class AwsAccessKeys(CredentialSlot):
    """Long-lived keys of an IAM user with read access to Security Hub; simpler, but keys never expire."""

    title = "Access keys"

    access_key_id: str = Field(pattern=r"^[A-Z0-9]{16,128}$")
    secret_access_key: SecretStr
    region: str = Field(default="us-east-1", pattern=REGION)
