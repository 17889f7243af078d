"""GitHub: the reference definition. Read it top to bottom, starting at ``definition.py``.

Modules, one concept each: ``config`` (the app's operator config), ``slots`` (what is stored), ``rest``
(GitHub's errors and ``Link`` pagination, described to the provider kit: ``engine.kit.providerkit``), ``client``
(app JWT and installation tokens), ``operations``, ``alerts`` (security alerts), ``directory`` (organisation
members), ``connections``, ``webhook`` and ``mappings``.
"""

from definitions.github_app.definition import definition

__all__ = ["definition"]
