"""Google Cloud Security Command Center: findings as findings and vulnerabilities.

Modules, one concept each: ``slots`` (a service account key, or workload identity federation), ``rest`` (Google's
error answers), ``client`` (the JWT bearer assertion, or Tether's OIDC token exchanged at STS, for an access
token), ``operations``, ``connections`` and ``mappings``.
"""

from definitions.gcp_scc.definition import definition

__all__ = ["definition"]
