"""AES-256-GCM envelope encryption with key IDs: the primitive under the Keystore.

Why key IDs: every sealed value records which key sealed it, so a new key can be activated at any time while
old rows keep decrypting; :meth:`KeyRing.rewrap` then moves rows to the active key one at a time, no downtime.

Sealed format: ``Sealed(key_id, blob)`` with ``blob = nonce (12 random bytes) + ciphertext + tag (16)``. The
key ID is stored next to the blob (its own column). The AES-GCM associated data is
``b"tether.v1|" + key_id + b"|" + aad``: the caller's ``aad`` names the row (for example
``b"credential:{integration_id}:{slot}"``), so a blob copied into another row, or relabelled with another
key ID, fails to decrypt. Key IDs are limited to ``[A-Za-z0-9_.-]{1,64}``, so the encoding is unambiguous.

Master keys and the keyring format: a master key is the urlsafe base64 text of 32 random bytes. Nothing else
is stored: from each master key, HKDF-SHA256 (no salt; the input is already uniform) derives

* the data key: 32 bytes, info ``b"tether/data-key/v1"``;
* its key ID: ``"m"`` + 12 hex digits of HKDF output with info ``b"tether/key-id/v1"`` (names the key without
  revealing anything usable about it).

The serialized keyring is the master key setting itself: ``"<active>[,<retired>,...]"``. To rotate, generate a
new master key, put it first and keep the old one after the comma; re-wrap rows (they tell you their key ID);
then drop the old key from the setting.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import os
import re
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from engine.errors import ConfigurationError, TetherError

__all__ = ["DecryptFailed", "KeyRing", "Sealed", "generate_master_key", "load_or_create_master_key"]

NONCE_BYTES = 12
TAG_BYTES = 16
KEY_BYTES = 32
_KEY_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_AAD_PREFIX = b"tether.v1|"


class DecryptFailed(TetherError):
    """A sealed value did not decrypt: wrong key, wrong row (AAD) or tampered bytes. Says nothing secret."""

    code = "decrypt_failed"
    status = 500


@dataclass(frozen=True)
class Sealed:
    """An encrypted value and the ID of the key that sealed it."""

    key_id: str
    blob: bytes


def _aad(key_id: str, aad: bytes) -> bytes:
    return _AAD_PREFIX + key_id.encode("ascii") + b"|" + aad


def _hkdf(master: bytes, info: bytes, length: int) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=info).derive(master)


def _decode_master(text: str) -> bytes:
    text = text.strip()
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != KEY_BYTES:
        # Never echo the value: it may be a real key with a typo.
        raise ConfigurationError("a master key must be the urlsafe base64 text of 32 bytes")
    return raw


def generate_master_key() -> str:
    """A new master key: urlsafe base64 of 32 random bytes."""
    return base64.urlsafe_b64encode(secrets.token_bytes(KEY_BYTES)).decode("ascii")


class KeyRing:
    """Named 32-byte AES keys, one of them active for new encryptions."""

    def __init__(self) -> None:
        self._keys: dict[str, AESGCM] = {}
        self._raw: dict[str, bytes] = {}
        self._active: str | None = None

    def __repr__(self) -> str:
        return f"KeyRing(active={self._active!r}, key_ids={list(self._keys)!r})"

    @classmethod
    def from_master_key(cls, master: str) -> KeyRing:
        """Build a keyring from ``"<active>[,<retired>,...]"`` master keys (see the module docstring)."""
        ring = cls()
        parts = [p for p in (s.strip() for s in master.split(",")) if p]
        if not parts:
            raise ConfigurationError("no master key given")
        for index, part in enumerate(parts):
            raw = _decode_master(part)
            key_id = "m" + _hkdf(raw, b"tether/key-id/v1", 6).hex()
            ring.add_key(key_id, _hkdf(raw, b"tether/data-key/v1", KEY_BYTES), activate=index == 0)
        return ring

    @property
    def active_key_id(self) -> str:
        if self._active is None:
            raise ConfigurationError("the keyring has no active key")
        return self._active

    @property
    def key_ids(self) -> tuple[str, ...]:
        return tuple(self._keys)

    def add_key(self, key_id: str, key: bytes, activate: bool = True) -> None:
        """Add a key (idempotent for the same bytes); a key ID can never be bound to different bytes."""
        if not _KEY_ID.fullmatch(key_id):
            raise ConfigurationError("a key ID must match [A-Za-z0-9_.-]{1,64}")
        if len(key) != KEY_BYTES:
            raise ConfigurationError(f"key {key_id} must be {KEY_BYTES} bytes")
        known = self._raw.get(key_id)
        if known is not None and not secrets.compare_digest(known, key):
            raise ConfigurationError(f"key ID {key_id} is already bound to a different key")
        if known is None:
            self._raw[key_id] = bytes(key)
            self._keys[key_id] = AESGCM(bytes(key))
        if activate or self._active is None:
            self._active = key_id

    def encrypt(self, plaintext: bytes, *, aad: bytes) -> Sealed:
        """Seal with the active key; a fresh random nonce each time."""
        key_id = self.active_key_id
        nonce = os.urandom(NONCE_BYTES)
        return Sealed(key_id, nonce + self._keys[key_id].encrypt(nonce, plaintext, _aad(key_id, aad)))

    def decrypt(self, sealed: Sealed | str, blob: bytes | None = None, *, aad: bytes) -> bytes:
        """Open ``sealed`` (or ``key_id`` + ``blob``) with the same ``aad`` it was sealed with."""
        if isinstance(sealed, Sealed):
            key_id, data = sealed.key_id, sealed.blob
        else:
            if blob is None:
                raise TypeError("decrypt(key_id, blob, aad=...) needs the blob")
            key_id, data = sealed, blob
        aead = self._keys.get(key_id)
        if aead is None:
            raise DecryptFailed(f"no key with ID {key_id!r} in the keyring")
        if len(data) < NONCE_BYTES + TAG_BYTES:
            raise DecryptFailed(f"the sealed value under key {key_id} is truncated")
        try:
            return aead.decrypt(data[:NONCE_BYTES], data[NONCE_BYTES:], _aad(key_id, aad))
        except InvalidTag:
            raise DecryptFailed(
                f"decryption under key {key_id} failed: wrong key, wrong row or tampered data"
            ) from None

    def rewrap(self, key_id: str, blob: bytes, aad: bytes) -> Sealed:
        """Decrypt with key ``key_id`` and seal again with the active key (same ``aad``)."""
        return self.encrypt(self.decrypt(key_id, blob, aad=aad), aad=aad)

    def derive(self, info: bytes, length: int = 32) -> dict[str, bytes]:
        """Key material for another purpose (``info`` names it), one per key ID, derived with HKDF from each data key:
        deterministic, so every process holding the same keys agrees, and nothing new needs storing."""
        return {key_id: _hkdf(raw, info, length) for key_id, raw in self._raw.items()}

    def needs_rewrap(self, sealed: Sealed) -> bool:
        return sealed.key_id != self.active_key_id


def _private_file_check(path: Path) -> None:
    if os.name != "posix":
        return
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise ConfigurationError(f"{path} is readable by other users (mode {mode:o}); chmod 600 it")


def _write_new(path: Path, text: str) -> bool:
    """Create ``path`` with mode 0600 holding ``text``; False when it already exists."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        if hasattr(os, "fchmod"):
            os.fchmod(handle.fileno(), 0o600)  # the umask can only remove bits; make the mode exact
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    return True


def load_or_create_master_key(path: str | os.PathLike[str]) -> tuple[str, bool]:
    """Read the master key file, or create it (mode 0600) with a new key. Returns ``(key, created)``.

    The embedded default uses this; when ``created`` is true the caller tells the user where the key is,
    because losing it means losing every stored credential. Creation is race safe: the key is written to a
    private temporary file and hard-linked into place, so a concurrent creator's key wins intact (without
    hard links, an exclusive create is the fallback). An existing file that other users can read is refused.
    """
    target = Path(path)
    if not target.exists():
        target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        key = generate_master_key()
        tmp = target.with_name(f".{target.name}.{secrets.token_hex(8)}.tmp")
        _write_new(tmp, key + "\n")
        try:
            os.link(tmp, target)
            return key, True
        except FileExistsError:
            del key  # a concurrent creator won the race: its key, not ours, is read below
        except OSError:  # no hard links on this filesystem
            if _write_new(target, key + "\n"):
                return key, True
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
    _private_file_check(target)
    try:
        text = target.read_text(encoding="ascii").strip()
    except UnicodeDecodeError:
        raise ConfigurationError(f"{target} does not hold a master key") from None
    KeyRing.from_master_key(text)  # validate now, with a message that never echoes the key
    return text, False
