"""Microsoft Teams: post messages to channels, and sync channel messages into ``message``, through Microsoft
Graph. Start at ``definition.py``.

Modules, one concept each: ``config``, ``slots``, ``client``, ``operations``, ``connections`` and ``mappings``;
Graph's errors, paging and delta links are ``definitions.microsoft_graph``, shared with Entra ID.
"""

from definitions.microsoft_teams.definition import definition

__all__ = ["definition"]
