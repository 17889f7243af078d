"""Reading and changing the sandbox's records: seeding, keyset pages, and the controls' create/update/delete.

Pages are ordered by ``(updated_at, id)`` and the cursor is that pair of the last record, opaque to callers
(base64url JSON), so a page never skips or repeats a record while others change: a record changed meanwhile moves
past the cursor and is seen again later, as an incremental sync expects.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, delete, or_
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, func, select

from engine.sandbox.seed import ACCOUNTS, BY_ID, ID_PREFIX, KINDS, SeedAccount, rfc3339, seed_records
from engine.sandbox.tables import SandboxAccount, SandboxEvent, SandboxRecord
from engine.store.database import Database

_SEEDED: set[str] = set()


class BadCursor(ValueError):
    """A cursor this server did not hand out."""


def digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def ensure_seeded(db: Database) -> None:
    """Seed the accounts on first use (once per database per process; a concurrent seeder's rows win)."""
    if db.url in _SEEDED:
        return
    if not _accounts(db):
        try:
            with db.session() as session:
                for account in ACCOUNTS:
                    session.add(
                        SandboxAccount(
                            id=account.id,
                            name=account.name,
                            domain=account.domain,
                            api_key_hash=digest(account.api_key),
                        )
                    )
                    session.flush()
                    _add_seed_records(session, account)
        except IntegrityError:
            # Another process seeded first (its rows are the same seed); anything else is a real failure.
            if _accounts(db) < len(ACCOUNTS):
                raise
    _SEEDED.add(db.url)


def _accounts(db: Database) -> int:
    with db.session() as session:
        return int(session.exec(select(func.count()).select_from(SandboxAccount)).one())


def forget_seeded(db: Database) -> None:
    """For a database dropped and migrated again under the same URL (tests)."""
    _SEEDED.discard(db.url)


def _add_seed_records(session: Session, account: SeedAccount) -> None:
    for kind, record_id, fields, stamp in seed_records(account):
        session.add(SandboxRecord(account_id=account.id, kind=kind, id=record_id, data=fields, updated_at=stamp))


def reset_account(db: Database, account_id: str) -> None:
    """Records back to the seed, no events, no armed failure; grants and subscriptions stay (the integration stays
    connected)."""
    with db.session() as session:
        session.exec(delete(SandboxRecord).where(col(SandboxRecord.account_id) == account_id))  # type: ignore[call-overload]
        session.exec(delete(SandboxEvent).where(col(SandboxEvent.account_id) == account_id))  # type: ignore[call-overload]
        row = session.get_one(SandboxAccount, account_id)
        row.fail_status = row.fail_remaining = row.fail_retry_after = 0
        session.add(row)
        _add_seed_records(session, BY_ID[account_id])


def shape(row: SandboxRecord) -> dict[str, Any]:
    """A record as the API answers it."""
    return {"id": row.id, **row.data, "updated_at": rfc3339(row.updated_at), "deleted": row.deleted}


@dataclass(frozen=True)
class Page:
    data: list[dict[str, Any]]
    next_cursor: str | None


def encode_cursor(row: SandboxRecord) -> str:
    text = json.dumps([row.updated_at.astimezone(UTC).isoformat(), row.id], separators=(",", ":"))
    return base64.urlsafe_b64encode(text.encode()).rstrip(b"=").decode()


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        stamp, record_id = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        moment = datetime.fromisoformat(stamp)
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        raise BadCursor("the cursor is not one this API handed out") from None
    if not isinstance(record_id, str) or moment.tzinfo is None:
        raise BadCursor("the cursor is not one this API handed out")
    return moment, record_id


def list_page(
    db: Database, account_id: str, kind: str, *, limit: int, cursor: str | None, updated_since: datetime | None
) -> Page:
    """One page of ``kind``; deleted records only when ``updated_since`` is given (incremental reads)."""
    query = select(SandboxRecord).where(SandboxRecord.account_id == account_id, SandboxRecord.kind == kind)
    if updated_since is None:
        query = query.where(col(SandboxRecord.deleted).is_(False))
    else:
        query = query.where(col(SandboxRecord.updated_at) > updated_since)
    if cursor:
        stamp, last_id = decode_cursor(cursor)
        query = query.where(
            or_(
                col(SandboxRecord.updated_at) > stamp,
                and_(col(SandboxRecord.updated_at) == stamp, col(SandboxRecord.id) > last_id),
            )
        )
    query = query.order_by(col(SandboxRecord.updated_at), col(SandboxRecord.id)).limit(limit + 1)
    with db.session() as session:
        rows = list(session.exec(query))
    more = len(rows) > limit
    rows = rows[:limit]
    return Page([shape(r) for r in rows], encode_cursor(rows[-1]) if more and rows else None)


def counts(db: Database, account_id: str) -> dict[str, int]:
    """Live (not deleted) records per kind."""
    query = (
        select(SandboxRecord.kind, func.count())
        .where(SandboxRecord.account_id == account_id, col(SandboxRecord.deleted).is_(False))
        .group_by(SandboxRecord.kind)
    )
    with db.session() as session:
        found = dict(session.exec(query).all())
    return {kind: int(found.get(kind, 0)) for kind in KINDS}


def new_record_id(kind: str) -> str:
    """The id of a record created through the controls: the kind's prefix and random hex (never a seeded id)."""
    return f"{ID_PREFIX[kind]}_{uuid.uuid4().hex[:12]}"
