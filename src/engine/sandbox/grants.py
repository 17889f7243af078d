"""Grants and their tokens: codes exchanged once, refresh tokens that rotate, reuse that revokes, revocation.

- An authorization code lives 60 s and is used once; a second use revokes the grant it was exchanged for
  (RFC 6749 §4.1.2), since someone else holds the code.
- A refresh token is used once: each refresh answers a new refresh token and a new access token. Presenting a
  refresh token that was already rotated revokes the whole grant (OAuth 2.0 Security BCP §4.14.2): either the
  client or an attacker replayed it, and the server cannot tell which.
- Revoking either token revokes the grant (RFC 7009 lets the server do so; every token of it dies).
- Tokens are stored as SHA-256 digests; an access token lives ``Settings.sandbox_token_seconds``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import update
from sqlmodel import Session, col, select

from engine.sandbox.store import digest
from engine.sandbox.tables import SandboxCode, SandboxGrant, SandboxToken
from engine.store.database import Database

CODE_SECONDS = 60
READ_SCOPES = ("directory:read", "assets:read", "events:read")
SCOPES = (*READ_SCOPES, "records:write")


class GrantError(Exception):
    """An RFC 6749 §5.2 error: ``error`` is its code (``invalid_grant``, ``invalid_request`` …)."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error = error
        self.description = description


@dataclass(frozen=True)
class Issued:
    access_token: str
    refresh_token: str
    expires_in: int
    scopes: list[str]


@dataclass(frozen=True)
class Caller:
    """Who an API call is from: an account, with the scopes its token carries (an API key carries all)."""

    account_id: str
    scopes: tuple[str, ...]


def _now() -> datetime:
    return datetime.now(UTC)


def s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


def new_code(db: Database, *, account_id: str, redirect_uri: str, scopes: list[str], challenge: str) -> str:
    code = "sbx_code_" + secrets.token_urlsafe(24)
    row = SandboxCode(
        code_hash=digest(code),
        account_id=account_id,
        redirect_uri=redirect_uri,
        scopes=scopes,
        code_challenge=challenge,
        expires_at=_now() + timedelta(seconds=CODE_SECONDS),
    )
    with db.session() as session:
        session.add(row)
    return code


def exchange_code(db: Database, code: str, *, redirect_uri: str, verifier: str, token_seconds: int) -> Issued:
    row = _claim_code(db, code)
    # Checked after the claim has committed: a code is spent even by a failed exchange.
    if row.expires_at <= _now():
        raise GrantError("invalid_grant", "the authorization code has expired")
    if not hmac.compare_digest(row.redirect_uri.encode(), redirect_uri.encode()):
        raise GrantError("invalid_grant", "redirect_uri does not match the authorization request")
    if not verifier or not hmac.compare_digest(s256(verifier).encode(), row.code_challenge.encode()):
        raise GrantError("invalid_grant", "the PKCE code_verifier does not match the code_challenge")
    with db.session() as session:
        grant = SandboxGrant(account_id=row.account_id, scopes=row.scopes)
        session.add(grant)
        session.flush()
        session.execute(
            update(SandboxCode).where(col(SandboxCode.code_hash) == row.code_hash).values(grant_id=grant.id)
        )
        return _issue(session, grant, token_seconds)


def _claim_code(db: Database, code: str) -> SandboxCode:
    """Mark the code used (once, under concurrency too); a code used before revokes the grant it gave."""
    with db.session() as session:
        row = session.get(SandboxCode, digest(code))
        if row is None:
            raise GrantError("invalid_grant", "unknown authorization code")
        claimed = session.execute(
            update(SandboxCode)
            .where(col(SandboxCode.code_hash) == row.code_hash, col(SandboxCode.used_at).is_(None))
            .values(used_at=_now())
        )
        first_use = claimed.rowcount == 1  # type: ignore[attr-defined]
        if not first_use and row.grant_id:
            _revoke_grant(session, row.grant_id)
    if not first_use:
        raise GrantError("invalid_grant", "the authorization code was already used; its grant is revoked")
    return row


def refresh(db: Database, refresh_token: str, *, token_seconds: int) -> Issued:
    with db.session() as session:
        row = session.get(SandboxToken, digest(refresh_token))
        if row is None or row.kind != "refresh":
            raise GrantError("invalid_grant", "unknown refresh token")
        grant = session.get_one(SandboxGrant, row.grant_id)
        if grant.revoked_at is not None:
            raise GrantError("invalid_grant", "the grant was revoked")
        rotated = session.execute(
            update(SandboxToken)
            .where(col(SandboxToken.token_hash) == row.token_hash, col(SandboxToken.rotated_at).is_(None))
            .values(rotated_at=_now())
        )
        reused = rotated.rowcount != 1  # type: ignore[attr-defined]
    if reused:
        # Committed on its own: the answer is an error, and the revocation must outlive it.
        with db.session() as session:
            _revoke_grant(session, row.grant_id)
        raise GrantError("invalid_grant", "the refresh token was already used; the grant is revoked")
    with db.session() as session:
        return _issue(session, session.get_one(SandboxGrant, row.grant_id), token_seconds)


def revoke_token(db: Database, token: str) -> None:
    """RFC 7009: revoke the grant behind ``token`` (either kind); an unknown token is no error."""
    with db.session() as session:
        row = session.get(SandboxToken, digest(token))
        if row is not None:
            _revoke_grant(session, row.grant_id)


def caller_for_token(db: Database, token: str) -> Caller | None:
    """The caller of a live access token; None when it is unknown, expired or its grant revoked."""
    with db.session() as session:
        found = session.exec(
            select(SandboxToken, SandboxGrant)
            .join(SandboxGrant, col(SandboxGrant.id) == col(SandboxToken.grant_id))
            .where(col(SandboxToken.token_hash) == digest(token))
        ).first()
    if found is None:
        return None
    row, grant = found
    if row.kind != "access" or grant.revoked_at is not None or row.expires_at is None or row.expires_at <= _now():
        return None
    return Caller(grant.account_id, tuple(grant.scopes))


def expire_tokens(db: Database, account_id: str) -> int:
    """Every access token of the account expires now (the next API call is 401; a refresh still works)."""
    grants = select(SandboxGrant.id).where(SandboxGrant.account_id == account_id)
    with db.session() as session:
        result = session.execute(
            update(SandboxToken)
            .where(col(SandboxToken.grant_id).in_(grants), SandboxToken.kind == "access")
            .values(expires_at=_now() - timedelta(seconds=1))
        )
    return int(result.rowcount)  # type: ignore[attr-defined]


def revoke_grants(db: Database, account_id: str) -> int:
    with db.session() as session:
        result = session.execute(
            update(SandboxGrant)
            .where(col(SandboxGrant.account_id) == account_id, col(SandboxGrant.revoked_at).is_(None))
            .values(revoked_at=_now())
        )
    return int(result.rowcount)  # type: ignore[attr-defined]


def active_grants(db: Database, account_id: str) -> int:
    with db.session() as session:
        rows = session.exec(
            select(SandboxGrant.id).where(SandboxGrant.account_id == account_id, col(SandboxGrant.revoked_at).is_(None))
        ).all()
    return len(rows)


def _revoke_grant(session: Session, grant_id: str) -> None:
    session.execute(
        update(SandboxGrant)
        .where(col(SandboxGrant.id) == grant_id, col(SandboxGrant.revoked_at).is_(None))
        .values(revoked_at=_now())
    )


def _issue(session: Session, grant: SandboxGrant, token_seconds: int) -> Issued:
    access = "sbx_at_" + secrets.token_urlsafe(32)
    refresh_token = "sbx_rt_" + secrets.token_urlsafe(32)
    expires = _now() + timedelta(seconds=token_seconds)
    session.add(SandboxToken(token_hash=digest(access), grant_id=grant.id, kind="access", expires_at=expires))
    session.add(SandboxToken(token_hash=digest(refresh_token), grant_id=grant.id, kind="refresh"))
    return Issued(access, refresh_token, token_seconds, list(grant.scopes))
