"""Building blocks of the generated ingest types (``generated/ingest_types.py``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict


def _as_utc(value: datetime) -> datetime:
    # Providers often send timestamps without an offset; they are UTC by convention, and the columns need one.
    return value.replace(tzinfo=UTC) if value.utcoffset() is None else value.astimezone(UTC)


#: A timestamp stored in UTC; a value without an offset is taken as UTC.
UtcDatetime = Annotated[datetime, AfterValidator(_as_utc)]


class IngestInput(BaseModel):
    """Base of every generated ingest type: what a mapping produced, validated.

    Keys a mapping produces beyond the model's fields are ignored (an empty map passes the whole provider payload
    through); numbers are accepted where text is expected, because provider IDs are often numeric.
    """

    model_config = ConfigDict(extra="ignore", coerce_numbers_to_str=True, frozen=True)


class IngestMetadata(BaseModel):
    """Where a typed ingest request came from."""

    model_config = ConfigDict(frozen=True)

    tenant_id: str
    integration_id: str
    definition_id: str
    run_id: str | None = None
    delivery_id: str | None = None
    source: Literal["operation", "webhook", "workflow", "direct"] = "operation"
