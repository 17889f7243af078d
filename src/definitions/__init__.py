"""Tether's built-in provider definitions, one package per provider.

``CATALOG`` lists them explicitly; third-party packages add theirs through the ``tether.definitions`` entry-point
group. New provider authors: start from ``definitions.github_app``.
"""

#: The built-in definitions: a module exposing ``definition``, or ``module:attribute`` for one declared as data.
CATALOG: tuple[str, ...] = (
    "definitions.github_app",
    "definitions.slack",
    "definitions.okta",
    "definitions.google_workspace",
    "definitions.azure_entra_id",
    "definitions.microsoft_teams",
    "definitions.aws_security_hub",
    "definitions.cloudflare",
    "definitions.azure_security_center",
    "definitions.gcp_scc",
    "definitions.google_calendar",
    "definitions.google",
    "definitions.todoist",
    "definitions.custom_oauth2:notion",
    "definitions.sandbox",
)
