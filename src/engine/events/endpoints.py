"""Event endpoints: the host app's URLs, the event types each receives, and their signing secrets.

A secret is ``whsec_`` + base64 of 24 random bytes (the Standard Webhooks format), generated here, returned once by
the call that made it, and stored only sealed by the key ring under AAD ``event_endpoint:{id}:{generation}``, so a
blob copied into another endpoint, or the previous secret's blob relabelled as the current one, fails to open.
Rotation makes a new current secret (generation + 1) and keeps the old one, with its own AAD, signing alongside for
the overlap window: Standard Webhooks lets ``webhook-signature`` carry several signatures, so a receiver holding
either secret verifies every delivery during the switch.

URLs: ``https://`` only, or ``http://`` to a loopback address where the egress guard allows loopback (tests). The
guard checks again at every delivery (where names are resolved), so a name pointing at a private address is refused
then, and recorded on the delivery.
"""

from __future__ import annotations

import base64
import ipaddress
import secrets
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import update as sa_update
from sqlmodel import Session, col, select

from engine.custody.crypto import KeyRing
from engine.errors import EgressRefused, NotFoundError, TetherError
from engine.kit.egress import check_address, loopback_allowed
from engine.kit.inputs import storable
from engine.store.database import Database
from engine.store.tables import EventEndpoint, new_id, utcnow

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 24
URL_MAX = 2000


class InvalidEndpointUrl(TetherError):
    code = "invalid_endpoint_url"
    status = 422


def generate_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii")


def secret_aad(endpoint_id: str, generation: int) -> bytes:
    return f"event_endpoint:{endpoint_id}:{generation}".encode()


def check_url(url: str, *, allow_loopback: bool | None = None) -> str:
    """``url`` if an event may be sent there, else ``InvalidEndpointUrl`` saying why (never echoing the URL)."""
    if len(url) > URL_MAX or not storable(url):
        raise InvalidEndpointUrl(f"url must be at most {URL_MAX} characters of text")
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, ValueError):
        raise InvalidEndpointUrl("url is not a valid absolute URL") from None
    loopback = loopback_allowed(allow_loopback)
    host = parsed.host
    if parsed.scheme not in ("https", "http") or not host:
        raise InvalidEndpointUrl("url must be an absolute https:// URL")
    if parsed.userinfo:
        raise InvalidEndpointUrl("url must not carry a user name or password")
    if parsed.fragment:
        raise InvalidEndpointUrl("url must not carry a fragment")
    literal = _ip_literal(host)
    if parsed.scheme == "http" and not (loopback and literal is not None and literal.is_loopback):
        raise InvalidEndpointUrl("url must be https:// (plain http only to loopback, where loopback is allowed)")
    if literal is not None:
        try:
            check_address(host, str(literal), allow_loopback=loopback)
        except EgressRefused:
            raise InvalidEndpointUrl("url points at an address outbound requests may not reach") from None
    elif host == "localhost" or host.endswith(".localhost"):
        raise InvalidEndpointUrl("url points at an address outbound requests may not reach")
    return url


def _ip_literal(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def create(
    db: Database, keyring: KeyRing, tenant_id: str, *, url: str, event_types: Sequence[str], description: str = ""
) -> tuple[EventEndpoint, str]:
    """A new enabled endpoint and its secret (the only time the secret leaves this module in clear)."""
    endpoint_id = new_id()
    secret = generate_secret()
    sealed = keyring.encrypt(secret.encode(), aad=secret_aad(endpoint_id, 1))
    row = EventEndpoint(
        id=endpoint_id,
        tenant_id=tenant_id,
        url=check_url(url),
        event_types=sorted(set(event_types)),
        description=description,
        key_id=sealed.key_id,
        secret_ciphertext=sealed.blob,
    )
    with db.session() as session:
        session.add(row)
    return row, secret


def get(db: Database, tenant_id: str, endpoint_id: str) -> EventEndpoint:
    with db.session() as session:
        return _owned(session, tenant_id, endpoint_id)


def list_endpoints(db: Database, tenant_id: str) -> list[EventEndpoint]:
    with db.session() as session:
        query = select(EventEndpoint).where(EventEndpoint.tenant_id == tenant_id)
        return list(session.exec(query.order_by(col(EventEndpoint.created_at), col(EventEndpoint.id))).all())


def update(db: Database, tenant_id: str, endpoint_id: str, changes: dict[str, Any]) -> EventEndpoint:
    """Set ``url``, ``event_types``, ``description`` or ``enabled`` (the keys present in ``changes``)."""
    with db.session() as session:
        row = _owned(session, tenant_id, endpoint_id)
        if "url" in changes:
            row.url = check_url(changes["url"])
        if "event_types" in changes:
            row.event_types = sorted(set(changes["event_types"]))
        if "description" in changes:
            row.description = changes["description"]
        if "enabled" in changes:
            row.enabled = bool(changes["enabled"])
        row.updated_at = utcnow()
        session.add(row)
        return row


def delete(db: Database, tenant_id: str, endpoint_id: str) -> None:
    """Remove the endpoint; its deliveries go with it (their events stay in the outbox for other endpoints)."""
    with db.session() as session:
        session.delete(_owned(session, tenant_id, endpoint_id))


def rotate(
    db: Database, keyring: KeyRing, tenant_id: str, endpoint_id: str, *, overlap: timedelta
) -> tuple[EventEndpoint, str]:
    """A new current secret; the current one becomes the previous, signing beside it until ``now + overlap``.

    A secret two rotations old is dropped: only one previous secret is kept."""
    secret = generate_secret()
    with db.session() as session:
        row = _owned(session, tenant_id, endpoint_id)
        generation = row.secret_generation + 1
        sealed = keyring.encrypt(secret.encode(), aad=secret_aad(row.id, generation))
        row.previous_key_id, row.previous_secret_ciphertext = row.key_id, row.secret_ciphertext
        row.previous_expires_at = utcnow() + overlap
        row.key_id, row.secret_ciphertext, row.secret_generation = sealed.key_id, sealed.blob, generation
        row.updated_at = utcnow()
        session.add(row)
        return row, secret


def signing_secrets(keyring: KeyRing, row: EventEndpoint, now: datetime) -> list[str]:
    """The secrets a delivery is signed with now: the current one, and the previous one while it overlaps."""
    out = [keyring.decrypt(row.key_id, row.secret_ciphertext, aad=secret_aad(row.id, row.secret_generation)).decode()]
    if row.previous_secret_ciphertext and row.previous_expires_at is not None and row.previous_expires_at > now:
        aad = secret_aad(row.id, row.secret_generation - 1)
        out.append(keyring.decrypt(row.previous_key_id, row.previous_secret_ciphertext, aad=aad).decode())
    return out


def key_ids_in_use(db: Database) -> set[str]:
    """Key IDs sealing an endpoint secret (``Keystore.key_ids_in_use`` adds them before a key is dropped)."""
    with db.session() as session:
        rows = session.exec(select(EventEndpoint.key_id, EventEndpoint.previous_key_id)).all()
    return {key for pair in rows for key in pair if key}


def rewrap(db: Database, keyring: KeyRing) -> int:
    """Move every endpoint secret not under the active key onto it (``Keystore.rewrap_all``); returns rows moved.

    Each row is rewritten only if it is unchanged since it was read, so a rotation meanwhile is never undone."""
    active, moved = keyring.active_key_id, 0
    with db.session() as session:
        query = select(EventEndpoint).where(
            (col(EventEndpoint.key_id) != active)
            | ((col(EventEndpoint.previous_key_id) != active) & (col(EventEndpoint.previous_key_id) != ""))
        )
        rows = session.exec(query).all()
    for row in rows:
        values: dict[str, Any] = {}
        if row.key_id != active:
            sealed = keyring.rewrap(row.key_id, row.secret_ciphertext, secret_aad(row.id, row.secret_generation))
            values.update(key_id=sealed.key_id, secret_ciphertext=sealed.blob)
        if row.previous_secret_ciphertext and row.previous_key_id not in ("", active):
            aad = secret_aad(row.id, row.secret_generation - 1)
            sealed = keyring.rewrap(row.previous_key_id, row.previous_secret_ciphertext, aad)
            values.update(previous_key_id=sealed.key_id, previous_secret_ciphertext=sealed.blob)
        if not values:
            continue
        with db.session() as session:
            result = session.execute(
                sa_update(EventEndpoint)
                .where(
                    col(EventEndpoint.id) == row.id,
                    col(EventEndpoint.secret_generation) == row.secret_generation,
                    col(EventEndpoint.key_id) == row.key_id,
                    col(EventEndpoint.previous_key_id) == row.previous_key_id,
                )
                .values(**values)
            )
            moved += int(result.rowcount or 0)
    return moved


def _owned(session: Session, tenant_id: str, endpoint_id: str) -> EventEndpoint:
    row = session.get(EventEndpoint, endpoint_id) if storable(endpoint_id) else None
    if row is None or row.tenant_id != tenant_id:
        raise NotFoundError(f"no event endpoint {endpoint_id}")
    return row
