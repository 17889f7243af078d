"""Mappings: how a provider payload becomes an internal model, as CEL.

A mapping is selected by the exact (schema, variant) of a payload. ``filter`` is a CEL boolean (empty: keep
everything) and ``map`` a CEL expression producing the model's fields (empty: the payload as it is). Both see the
variables ``envelope``, ``variant``, ``resource``, ``action`` and ``payload``, and are compiled once at
registration.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Mapping:
    schema: str
    variant: str = ""
    filter: str = ""
    map: str = ""
