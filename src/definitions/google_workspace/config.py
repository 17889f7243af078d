"""Operator config and user input: the OAuth client of the deployment, and which Workspace a tenant means.

The OAuth client comes from the environment (``TETHER_GOOGLE_WORKSPACE_CLIENT_ID``,
``TETHER_SECRET_GOOGLE_WORKSPACE_CLIENT_SECRET``). Both are optional so that a deployment offering only the
service-account connection needs no OAuth client; the OAuth connection cannot start without them.
"""

from __future__ import annotations

from pydantic import Field, SecretStr

from engine import OperatorConfig, UserInput


class GoogleWorkspaceConfig(OperatorConfig):
    """The OAuth client created in the Google Cloud console (APIs & Services → Credentials)."""

    client_id: str | None = None
    client_secret: SecretStr | None = None


class GoogleWorkspaceInput(UserInput):
    """Which Workspace account to read, and whom a service account acts as.

    The Directory API lists users and groups of one customer (``customer``) or one domain (``domain``). One of
    the two is needed: without either the health check reports ``customer_id_missing`` instead of guessing.
    """

    #: The customer ID from Admin console → Account → Account settings (``C03az79cb``), or ``my_customer``.
    customer_id: str = Field(default="", max_length=64, pattern=r"^[A-Za-z0-9_]*$")
    #: A primary or secondary domain, used when no customer ID is given.
    domain: str = Field(default="", max_length=253, pattern=r"^[A-Za-z0-9.-]*$")
    #: For the service-account connection: the super admin the service account impersonates (the JWT ``sub``).
    admin_email: str = Field(default="", max_length=320)
