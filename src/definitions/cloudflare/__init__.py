"""Cloudflare: zones, DNS records and security events. Read it top to bottom, starting at ``definition.py``.

Modules, one concept each: ``slots`` (the API token and account), ``api`` (Cloudflare's response envelope, its
errors and ``result_info`` pagination), ``client``, ``operations``, ``connections`` and ``mappings``.
"""

from definitions.cloudflare.definition import definition

__all__ = ["definition"]
