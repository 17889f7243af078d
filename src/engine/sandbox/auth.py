"""Who calls the sandbox's API: an OAuth access token (``Authorization: Bearer``) or an account's API key
(``X-Api-Key: sbx_key_<account>``), and the failure scenario armed on that account.

An unknown, expired or revoked token answers 401 ``invalid_token`` with ``WWW-Authenticate: Bearer
error="invalid_token"`` (RFC 6750 §3), which is what tells a client to refresh, or to reconnect when the refresh
fails too. An API key carries every scope.
"""

from __future__ import annotations

from fastapi import Request
from sqlalchemy import update
from sqlmodel import col, select

from engine.sandbox.answers import Answer
from engine.sandbox.database import sandbox_db
from engine.sandbox.grants import SCOPES, Caller, caller_for_token
from engine.sandbox.store import digest
from engine.sandbox.tables import SandboxAccount
from engine.store.database import Database

#: The scope each kind needs.
KIND_SCOPES = {
    "users": "directory:read",
    "groups": "directory:read",
    "memberships": "directory:read",
    "assets": "assets:read",
    "findings": "assets:read",
    "events": "events:read",
}
#: The scope of the API's writes (``PATCH /findings/{id}``): the grant's write tier.
WRITE_SCOPE = "records:write"
_REALM = 'Bearer realm="sandbox"'


def invalid_token(message: str) -> Answer:
    return Answer(401, "invalid_token", message, {"WWW-Authenticate": f'{_REALM}, error="invalid_token"'})


def authenticate(request: Request) -> Caller:
    db: Database = sandbox_db(request.app.state.runtime.db)
    key = request.headers.get("x-api-key")
    authorization = request.headers.get("authorization", "")
    if key is not None:
        with db.session() as session:
            account = session.exec(select(SandboxAccount).where(SandboxAccount.api_key_hash == digest(key))).first()
        if account is None:
            raise invalid_token("unknown API key")
        return Caller(account.id, SCOPES)
    if authorization[:7].lower() == "bearer " and authorization[7:].strip():
        caller = caller_for_token(db, authorization[7:].strip())
        if caller is None:
            raise invalid_token("the access token is unknown, expired or revoked")
        return caller
    raise Answer(
        401, "invalid_token", "send an access token (Authorization: Bearer) or X-Api-Key", {"WWW-Authenticate": _REALM}
    )


def require_scope(caller: Caller, scope: str) -> None:
    if scope not in caller.scopes:
        raise Answer(
            403,
            "insufficient_scope",
            f"the token's grant lacks the scope {scope}",
            {"WWW-Authenticate": f'{_REALM}, error="insufficient_scope", scope="{scope}"'},
        )


def fail_if_armed(db: Database, account_id: str) -> None:
    """Spend one armed failure of the account, answering it (429 with ``Retry-After``, or 500)."""
    with db.session() as session:
        spent = session.execute(
            update(SandboxAccount)
            .where(col(SandboxAccount.id) == account_id, col(SandboxAccount.fail_remaining) > 0)
            .values(fail_remaining=SandboxAccount.fail_remaining - 1)
        )
        if spent.rowcount != 1:  # type: ignore[attr-defined]
            return
        account = session.get_one(SandboxAccount, account_id)
        status, retry_after = account.fail_status, account.fail_retry_after
    if status == 429:
        raise Answer(429, "rate_limited", "rate limited (a sandbox scenario)", {"Retry-After": str(retry_after)})
    raise Answer(500, "server_error", "server error (a sandbox scenario)")
