"""Envelope encryption: roundtrip, tamper and row binding, rotation, master key files, secret-free errors."""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path

import pytest

from engine.custody.crypto import (
    DecryptFailed,
    KeyRing,
    Sealed,
    generate_master_key,
    load_or_create_master_key,
)
from engine.errors import ConfigurationError

AAD = b"credential:int_1:refresh_token"
SECRET = b"refresh-token-do-not-leak-7f3a"
KEY_A = bytes(range(32))
KEY_B = bytes(range(100, 132))


def ring_with(*keys: tuple[str, bytes]) -> KeyRing:
    ring = KeyRing()
    for key_id, key in keys:
        ring.add_key(key_id, key)
    return ring


def assert_no_secret(error: Exception, *secrets: bytes | str) -> None:
    text = f"{error} {error!r} {getattr(error, 'message', '')}"
    for secret in secrets:
        needle = secret if isinstance(secret, str) else secret.decode("latin-1")
        assert needle not in text
        if isinstance(secret, bytes):
            assert secret.hex() not in text
            assert base64.urlsafe_b64encode(secret).decode() not in text


def test_roundtrip_and_fresh_nonces() -> None:
    ring = ring_with(("a", KEY_A))
    first, second = ring.encrypt(SECRET, aad=AAD), ring.encrypt(SECRET, aad=AAD)
    assert first.key_id == "a"
    assert SECRET not in first.blob
    assert len(first.blob) == 12 + len(SECRET) + 16
    assert first.blob != second.blob
    assert ring.decrypt(first, aad=AAD) == SECRET
    assert ring.decrypt(second.key_id, second.blob, aad=AAD) == SECRET
    assert ring.decrypt(ring.encrypt(b"", aad=AAD), aad=AAD) == b""


@pytest.mark.parametrize("position", [0, 11, 12, -1])
def test_flipped_byte_is_detected(position: int) -> None:
    ring = ring_with(("a", KEY_A))
    sealed = ring.encrypt(SECRET, aad=AAD)
    blob = bytearray(sealed.blob)
    blob[position] ^= 0x01
    with pytest.raises(DecryptFailed) as info:
        ring.decrypt("a", bytes(blob), aad=AAD)
    assert info.value.code == "decrypt_failed"
    assert_no_secret(info.value, SECRET, KEY_A)


def test_truncated_blob_is_detected() -> None:
    ring = ring_with(("a", KEY_A))
    with pytest.raises(DecryptFailed):
        ring.decrypt("a", ring.encrypt(SECRET, aad=AAD).blob[:20], aad=AAD)


def test_wrong_aad_fails_so_blobs_cannot_move_between_rows() -> None:
    ring = ring_with(("a", KEY_A))
    sealed = ring.encrypt(SECRET, aad=b"credential:int_1:refresh_token")
    for other in (b"credential:int_2:refresh_token", b"credential:int_1:access_token", b""):
        with pytest.raises(DecryptFailed) as info:
            ring.decrypt(sealed, aad=other)
        assert_no_secret(info.value, SECRET, KEY_A)


def test_relabelled_key_id_fails_even_with_the_same_key_bytes() -> None:
    ring = ring_with(("a", KEY_A), ("alias", KEY_A))
    sealed = ring.encrypt(SECRET, aad=AAD)
    assert sealed.key_id == "alias"
    with pytest.raises(DecryptFailed):
        ring.decrypt(Sealed("a", sealed.blob), aad=AAD)


def test_wrong_or_unknown_key_fails() -> None:
    sealed = ring_with(("a", KEY_A)).encrypt(SECRET, aad=AAD)
    with pytest.raises(DecryptFailed) as info:
        ring_with(("a", KEY_B)).decrypt(sealed, aad=AAD)
    assert_no_secret(info.value, SECRET, KEY_A, KEY_B)
    with pytest.raises(DecryptFailed, match="no key"):
        ring_with(("b", KEY_B)).decrypt(sealed, aad=AAD)


def test_rotation_keeps_old_blobs_readable_and_rewrap_moves_them() -> None:
    ring = ring_with(("k1", KEY_A))
    old = ring.encrypt(SECRET, aad=AAD)
    ring.add_key("k2", KEY_B, activate=True)
    assert ring.active_key_id == "k2"
    assert ring.needs_rewrap(old)
    assert ring.decrypt(old, aad=AAD) == SECRET
    assert ring.encrypt(b"new", aad=AAD).key_id == "k2"

    moved = ring.rewrap(old.key_id, old.blob, AAD)
    assert moved.key_id == "k2"
    assert not ring.needs_rewrap(moved)
    assert ring.decrypt(moved, aad=AAD) == SECRET
    # Only the new key is needed once rows are re-wrapped.
    assert ring_with(("k2", KEY_B)).decrypt(moved, aad=AAD) == SECRET
    with pytest.raises(DecryptFailed):
        ring.rewrap(old.key_id, old.blob, b"credential:other:slot")


def test_add_key_without_activation_and_validation() -> None:
    ring = ring_with(("k1", KEY_A))
    ring.add_key("k2", KEY_B, activate=False)
    assert ring.active_key_id == "k1"
    ring.add_key("k1", KEY_A)  # same bytes: idempotent
    with pytest.raises(ConfigurationError) as info:
        ring.add_key("k1", KEY_B)
    assert_no_secret(info.value, KEY_A, KEY_B)
    with pytest.raises(ConfigurationError):
        ring.add_key("bad|id", KEY_A)
    with pytest.raises(ConfigurationError):
        ring.add_key("short", b"\0" * 16)
    with pytest.raises(ConfigurationError):
        KeyRing().encrypt(SECRET, aad=AAD)
    assert "k1" in repr(ring)
    assert KEY_A.hex() not in repr(ring)


def test_master_keys_derive_stable_ids_and_rotate() -> None:
    old_master, new_master = generate_master_key(), generate_master_key()
    sealed = KeyRing.from_master_key(old_master).encrypt(SECRET, aad=AAD)
    assert sealed.key_id == KeyRing.from_master_key(old_master).active_key_id
    assert old_master not in sealed.key_id

    rotated = KeyRing.from_master_key(f"{new_master}, {old_master}")
    assert rotated.active_key_id != sealed.key_id
    assert rotated.decrypt(sealed, aad=AAD) == SECRET
    moved = rotated.rewrap(sealed.key_id, sealed.blob, AAD)
    assert KeyRing.from_master_key(new_master).decrypt(moved, aad=AAD) == SECRET
    with pytest.raises(DecryptFailed):
        KeyRing.from_master_key(new_master).decrypt(sealed, aad=AAD)


@pytest.mark.parametrize("bad", ["", "not base64 at all!", base64.urlsafe_b64encode(b"k" * 16).decode()])
def test_bad_master_key_is_refused_without_echo(bad: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        KeyRing.from_master_key(bad)
    if bad:
        assert bad not in str(info.value)


def test_master_key_file_is_created_0600_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "state" / "master.key"
    key, created = load_or_create_master_key(path)
    assert created
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(base64.urlsafe_b64decode(key)) == 32
    assert [p.name for p in path.parent.iterdir()] == ["master.key"]
    assert load_or_create_master_key(path) == (key, False)
    assert KeyRing.from_master_key(key).decrypt(
        KeyRing.from_master_key(key).encrypt(SECRET, aad=AAD), aad=AAD
    ) == SECRET


def test_master_key_file_0600_even_with_a_permissive_umask(tmp_path: Path) -> None:
    previous = os.umask(0)
    try:
        _, created = load_or_create_master_key(tmp_path / "master.key")
    finally:
        os.umask(previous)
    assert created
    assert stat.S_IMODE((tmp_path / "master.key").stat().st_mode) == 0o600


def test_existing_key_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    key = generate_master_key()
    path.write_text(key + "\n")
    path.chmod(0o644)
    with pytest.raises(ConfigurationError, match="chmod 600") as info:
        load_or_create_master_key(path)
    assert key not in str(info.value)


def test_corrupt_key_file_is_refused_without_echo(tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    path.write_text("garbage-key-material\n")
    path.chmod(0o600)
    with pytest.raises(ConfigurationError) as info:
        load_or_create_master_key(path)
    assert "garbage-key-material" not in str(info.value)
