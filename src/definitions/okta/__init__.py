"""Okta: read it top to bottom, starting at ``definition.py``.

Modules, one concept each: ``config`` (the org URL a user enters), ``slots`` (what is stored), ``api`` (Okta's
errors, ``X-Rate-Limit-*`` headers and ``Link`` pagination), ``client`` (API token or service app),
``operations``, ``snapshot`` (removing memberships a complete snapshot no longer confirms), ``connections``,
``webhook`` (event hooks) and ``mappings``. ``README.md`` tells operators how to set it up.
"""

from definitions.okta.definition import definition

__all__ = ["definition"]
