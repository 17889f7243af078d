"""Microsoft Teams: post messages to channels through Microsoft Graph. Start at ``definition.py``.

Modules, one concept each: ``config``, ``slots``, ``graph`` (Graph's errors), ``client``, ``operations`` and
``connections``. Nothing is ingested, so there are no mappings.
"""

from definitions.microsoft_teams.definition import definition

__all__ = ["definition"]
