"""Where the key ring comes from: ``TETHER_SECRET_MASTER_KEY``, or a generated file for the embedded default.

The setting is ``"<active>[,<retired>,...]"`` (see ``engine.custody.crypto``). Without it, the embedded default keeps a
generated key in ``{state_dir}/master.key`` (mode 0600) and says so once, because losing that file loses every
stored credential.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from engine.custody.crypto import KeyRing, load_or_create_master_key
from engine.settings import Settings

ENV = "TETHER_SECRET_MASTER_KEY"
log = logging.getLogger("tether.keys")


@dataclass(frozen=True)
class KeySource:
    keyring: KeyRing
    #: ``"env"`` or the key file's path.
    origin: str
    created: bool = False

    @property
    def path(self) -> Path | None:
        return None if self.origin == "env" else Path(self.origin)


def key_file(settings: Settings) -> Path:
    return Path(settings.state_dir) / "master.key"


def load_keyring(settings: Settings) -> KeySource:
    value = settings.secret_master_key.get_secret_value().strip()
    if value:
        return KeySource(KeyRing.from_master_key(value), "env")
    path = key_file(settings)
    text, created = load_or_create_master_key(path)
    if created:
        log.warning(
            "generated a new master key in %s (mode 0600): back it up; without it stored credentials "
            "cannot be decrypted. Set %s in production.",
            path,
            ENV,
        )
    return KeySource(KeyRing.from_master_key(text), str(path), created)
