"""Microsoft Teams: post messages to channels through Microsoft Graph. Start at ``definition.py``.

Modules, one concept each: ``config``, ``slots``, ``client``, ``operations`` and ``connections``; Graph's errors
are ``definitions.microsoft_graph``, shared with Entra ID. Nothing is ingested, so there are no mappings.
"""

from definitions.microsoft_teams.definition import definition

__all__ = ["definition"]
