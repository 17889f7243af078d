"""Google (Calendar, Gmail, Drive) on one OAuth connection. Modules, one concept each: ``products`` (the scope sets
one grant can add), ``config`` (the OAuth client and API roots), ``gmail`` and ``drive`` (the API calls the syncs
make), ``operations`` (the syncs), ``mappings``, ``definition``. The OAuth part is data: ``oauth.toml``.
"""

from definitions.google.definition import definition, google_definition

__all__ = ["definition", "google_definition"]
