"""Slack: read it top to bottom, starting at ``definition.py``.

Modules, one concept each: ``config`` (the Slack app's operator config), ``slots`` (what is stored), ``api``
(Slack's ``{"ok": false}`` errors, rate limits and cursor pagination), ``client``, ``operations``,
``connections``, ``webhook`` (the Events API) and ``mappings``. ``README.md`` tells operators how to set it up.
"""

from definitions.slack.definition import definition

__all__ = ["definition"]
