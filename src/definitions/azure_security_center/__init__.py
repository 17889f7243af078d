"""Microsoft Defender for Cloud (Azure Security Center): assessments and sub-assessments as vulnerabilities.

Modules, one concept each: ``slots`` (the service principal), ``arm`` (Azure Resource Manager errors and
``nextLink`` paging), ``client`` (client-credentials tokens), ``operations``, ``connections`` and ``mappings``.
"""

from definitions.azure_security_center.definition import definition

__all__ = ["definition"]
