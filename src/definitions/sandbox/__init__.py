"""The sandbox: a provider Tether itself serves (``engine.sandbox``, under ``{public_url}/sandbox``), so the engine's
real paths (OAuth with PKCE, refresh rotation, revocation, egress, pagination, 429 deferral, signed webhooks, ingest)
run end to end on the embedded default. Read it top to bottom, starting at ``definition.py``.

Modules, one concept each: ``config`` (the sandbox's fixed OAuth client), ``slots`` (what is stored), ``api`` (the
sandbox's errors, ``Retry-After`` and cursor pages), ``client`` (a bearer token that renews once when refused, or an
API key), ``operations``, ``connections``, ``webhook`` (signed change events) and ``mappings``.
"""

from definitions.sandbox.definition import definition

__all__ = ["definition"]
