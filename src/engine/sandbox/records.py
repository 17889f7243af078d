"""The fields of each record kind, as the controls accept them, and the changes the controls make.

A create names every required field of its kind; an update names only the fields it changes. Unknown fields are
refused (422 ``invalid_input``), like every request body of Tether. A change stamps the record with now() and
returns the change event the webhook sender delivers.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from engine.errors import NotFoundError, TetherError, ValidationFailed
from engine.sandbox.seed import rfc3339
from engine.sandbox.store import new_record_id, shape
from engine.sandbox.tables import SandboxRecord
from engine.store.database import Database

Text = Annotated[str, Field(max_length=500)]
Email = Annotated[str, Field(min_length=3, max_length=320, pattern=r"^[^@\s]+@[^@\s]+$")]
Ident = Annotated[str, Field(min_length=1, max_length=64)]


class _Fields(BaseModel):
    model_config = ConfigDict(extra="forbid")


class User(_Fields):
    email: Email
    name: Text
    title: Text = ""
    department: Text = ""
    active: bool = True
    created_at: AwareDatetime | None = None


class Group(_Fields):
    name: Text
    description: Text = ""


class Membership(_Fields):
    group_id: Ident
    user_id: Ident
    role: Literal["member", "owner"] = "member"


class Asset(_Fields):
    hostname: Text
    ip: Annotated[str, Field(max_length=45)] = ""
    os: Text = ""
    owner_email: Email | None = None


class Finding(_Fields):
    asset_id: Ident
    title: Text
    severity: Literal["low", "medium", "high", "critical"] = "medium"
    status: Literal["open", "resolved"] = "open"
    cve: Annotated[str, Field(max_length=32)] = ""


class Event(_Fields):
    title: Text
    start: AwareDatetime
    end: AwareDatetime
    organizer_email: Email
    attendees: Annotated[list[Email], Field(max_length=100)] = []


MODELS: dict[str, type[_Fields]] = {
    "users": User,
    "groups": Group,
    "memberships": Membership,
    "assets": Asset,
    "findings": Finding,
    "events": Event,
}


def _validated(kind: str, body: Any, current: dict[str, Any] | None = None) -> dict[str, Any]:
    """The fields of ``body`` (over ``current`` for an update) as stored, datetimes as RFC 3339; else 422
    ``invalid_input`` naming the field."""
    if not isinstance(body, dict):
        raise ValidationFailed("the body must be a JSON object of the record's fields")
    try:
        fields = MODELS[kind].model_validate({**(current or {}), **body}).model_dump()
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        if first.get("type") == "extra_forbidden":
            raise ValidationFailed(f"unknown field: {where}") from None
        if first.get("type") == "missing":
            raise TetherError(f"missing field: {where}", code="missing_field", status=400) from None
        raise ValidationFailed(f"invalid value at {where or 'body'}: {first.get('msg', '')}") from None
    return {k: rfc3339(v) if isinstance(v, datetime) else v for k, v in fields.items()}


def create(db: Database, account_id: str, kind: str, body: Any) -> dict[str, Any]:
    fields = _validated(kind, body)
    now = datetime.now(UTC)
    if kind == "users" and fields.get("created_at") is None:
        fields["created_at"] = rfc3339(now)
    row = SandboxRecord(account_id=account_id, kind=kind, id=new_record_id(kind), data=fields, updated_at=now)
    with db.session() as session:
        session.add(row)
    return shape(row)


def update(db: Database, account_id: str, kind: str, record_id: str, body: Any) -> dict[str, Any]:
    with db.session() as session:
        row = session.get(SandboxRecord, (account_id, kind, record_id))
        if row is None or row.deleted:
            raise NotFoundError(f"no {kind} record {record_id!r} in this account")
        row.data = _validated(kind, body, row.data)
        row.updated_at = datetime.now(UTC)
        session.add(row)
    return shape(row)


def remove(db: Database, account_id: str, kind: str, record_id: str) -> dict[str, Any]:
    """Mark deleted (kept, so that incremental reads see the deletion)."""
    with db.session() as session:
        row = session.get(SandboxRecord, (account_id, kind, record_id))
        if row is None or row.deleted:
            raise NotFoundError(f"no {kind} record {record_id!r} in this account")
        row.deleted = True
        row.updated_at = datetime.now(UTC)
        session.add(row)
    return shape(row)
