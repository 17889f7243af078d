"""Tether's built-in provider definitions, one package per provider.

``CATALOG`` lists them explicitly; third-party packages add theirs through the ``tether.definitions`` entry-point
group. New provider authors: start from ``definitions.github_app``.
"""

#: Module paths of the built-in definitions; each module exposes ``definition``.
CATALOG: tuple[str, ...] = (
    "definitions.github_app",
    "definitions.slack",
    "definitions.okta",
    "definitions.google_workspace",
    "definitions.azure_entra_id",
    "definitions.microsoft_teams",
)
