"""The one base class of request bodies: a field the model does not declare is refused, never dropped.

A typo (``ownerid`` for ``owner_id``) or a field at the wrong level (an operation's ``lookback_hours`` beside
``config`` instead of inside it) would otherwise be ignored and the request would do something else than asked,
with a success status. ``tests/api/test_states_and_tiers.py`` checks that every body model of every route derives
the same rule.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class RequestBody(BaseModel):
    """Base of every request body model: unknown fields are a 422 ``invalid_input`` naming the field."""

    model_config = ConfigDict(extra="forbid")
