"""Webhook subscriptions of the sandbox's accounts: where to deliver change events and the secret to sign with.

A subscription's URL must be one of this Tether's own webhook URLs (``{public_url}/v1/webhooks/…``): the sandbox
delivers only there, through the egress guard's own-origin rule. The secret is a Standard Webhooks secret
(``whsec_`` + base64), sealed by the key ring like every secret Tether keeps.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlmodel import select

from engine.sandbox.answers import bad_request
from engine.sandbox.database import sandbox_db
from engine.sandbox.tables import SandboxWebhook
from engine.store.database import Database
from engine.store.tables import new_id
from engine.webhooks.verification import InvalidSignature, standard_webhooks_key

if TYPE_CHECKING:
    from engine.context import EngineContext

MAX_URL = 2000
MAX_SECRET = 200


def webhook_prefix(runtime: EngineContext) -> str:
    return f"{runtime.settings.public_url.rstrip('/')}/v1/webhooks/"


def _aad(subscription_id: str) -> bytes:
    return f"sandbox_webhook:{subscription_id}".encode()


def subscribe(runtime: EngineContext, account_id: str, url: str, secret: str) -> str:
    prefix = webhook_prefix(runtime)
    if len(url) > MAX_URL or not url.startswith(prefix) or len(url) == len(prefix):
        raise bad_request(f"url must be one of this Tether's webhook URLs ({prefix}…)")
    if len(secret) > MAX_SECRET:
        raise bad_request("secret is too long")
    try:
        key = standard_webhooks_key(secret)
    except InvalidSignature:
        raise bad_request("secret must be a Standard Webhooks secret (whsec_ and base64)") from None
    if len(key) < 16:
        raise bad_request("secret must hold at least 16 bytes")
    subscription_id = new_id()
    sealed = runtime.keys.keyring.encrypt(secret.encode(), aad=_aad(subscription_id))
    row = SandboxWebhook(
        id=subscription_id, account_id=account_id, url=url, key_id=sealed.key_id, secret_ciphertext=sealed.blob
    )
    with sandbox_db(runtime.db).session() as session:
        session.add(row)
    return subscription_id


def unsubscribe(db: Database, account_id: str, subscription_id: str) -> bool:
    with db.session() as session:
        row = session.get(SandboxWebhook, subscription_id[:64])
        if row is None or row.account_id != account_id:
            return False
        session.delete(row)
    return True


def of_account(db: Database, account_id: str) -> list[SandboxWebhook]:
    with db.session() as session:
        return list(session.exec(select(SandboxWebhook).where(SandboxWebhook.account_id == account_id)))


def secret_of(runtime: EngineContext, row: SandboxWebhook) -> str:
    return runtime.keys.keyring.decrypt(row.key_id, row.secret_ciphertext, aad=_aad(row.id)).decode()
