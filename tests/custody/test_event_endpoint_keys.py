"""Event endpoint secrets are sealed values like credentials: a master key rotation moves them (current and previous
secret) onto the new key, and the old key counts as in use until it has (so ``tether keys prune`` keeps it)."""

from __future__ import annotations

from datetime import timedelta

from engine.custody.crypto import KeyRing, generate_master_key
from engine.custody.keystore import Keystore
from engine.events import endpoints
from engine.store.database import Database
from engine.store.tables import EventEndpoint, utcnow


def test_rewrap_moves_both_secrets_and_in_use_tracks_them(database: Database) -> None:
    old_key, new_key = generate_master_key(), generate_master_key()
    old_ring = KeyRing.from_master_key(old_key)
    row, first = endpoints.create(
        database, old_ring, "t1", url="https://hooks.example.com/", event_types=["run.failed"]
    )
    _, second = endpoints.rotate(database, old_ring, "t1", row.id, overlap=timedelta(hours=1))
    ring = KeyRing.from_master_key(f"{new_key},{old_key}")
    store = Keystore(database, ring)
    assert old_ring.active_key_id in store.key_ids_in_use()
    assert store.rewrap_all() == 1  # one endpoint row: its current and its previous secret
    assert store.key_ids_in_use() == {ring.active_key_id}
    new_only = KeyRing.from_master_key(new_key)
    with database.session() as session:
        fresh = session.get_one(EventEndpoint, row.id)
    assert endpoints.signing_secrets(new_only, fresh, utcnow()) == [second, first]
