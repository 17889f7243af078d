"""Microsoft Entra ID: users, groups and memberships from Microsoft Graph delta queries. Start at
``definition.py``.

Modules, one concept each: ``config`` (the multi-tenant app), ``slots`` (what is stored), ``client`` (app-only
tokens per tenant; Graph's errors, ``@odata.nextLink`` paging and delta links are ``definitions.microsoft_graph``,
shared with Teams),
``operations``, ``connections``, ``webhook`` (change notifications) and ``mappings``.
"""

from definitions.azure_entra_id.definition import definition

__all__ = ["definition"]
