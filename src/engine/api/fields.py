"""Text fields of request bodies, bounded by the column that stores them.

PostgreSQL refuses a value longer than its ``VARCHAR(N)`` column (``StringDataRightTruncation``), which came back as
a 500 (a 201-character ``owner_id``); SQLite stores it silently, so the two databases disagreed. A request model
field that lands in such a column uses one of these types: an over-long value is a 422 ``invalid_input`` naming
the field, before anything is looked up. The bounds are read from ``engine.store.tables``, so a column widened by a
migration widens its field with it.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field
from sqlmodel import SQLModel

from engine.store.tables import Integration


def column_length(table: type[SQLModel], column: str) -> int:
    """The ``N`` of a ``VARCHAR(N)`` column (a column without one is a programming error here)."""
    length = getattr(table.__table__.c[column].type, "length", None)  # type: ignore[attr-defined]
    if not isinstance(length, int):  # ``String`` and SQLModel's ``AutoString`` carry it
        raise TypeError(f"{table.__name__}.{column} has no length")
    return length


TENANT_ID_MAX = column_length(Integration, "tenant_id")
OWNER_ID_MAX = column_length(Integration, "owner_id")
NAME_MAX = column_length(Integration, "name")
DEFINITION_ID_MAX = column_length(Integration, "definition_id")

#: ``integration.owner_id`` (and ``auth_flow.owner_id``): whose integration this is.
OwnerId = Annotated[str, Field(max_length=OWNER_ID_MAX)]
#: ``integration.name``: a label people read.
IntegrationName = Annotated[str, Field(max_length=NAME_MAX)]
#: ``integration.definition_id``: looked up in the registry first, but bounded like the column all the same.
DefinitionId = Annotated[str, Field(max_length=DEFINITION_ID_MAX)]
