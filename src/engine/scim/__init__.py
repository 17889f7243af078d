"""SCIM 2.0 (push): identity providers provision users and groups into Tether over per-integration endpoints.

Start at ``definition.py``. Modules: ``webhook`` (the endpoint row: path token + bearer secret), ``mappings``
(SCIM User/Group → directory models), ``protocol`` (filters, PATCH, projection; pure), ``store`` (resources in the
directory tables, written through the ingest pipeline), ``discovery`` (ServiceProviderConfig, ResourceTypes,
Schemas), ``connect`` (marking a credential-less integration connected). The HTTP routes live in
``engine.api.scim``. ``README.md`` tells operators how to set it up.
"""

from engine.scim.definition import definition

__all__ = ["definition"]
