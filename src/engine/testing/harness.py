"""A scratch engine for one definition: the real runtime (SQLite in a folder of its own, migrated; a fresh master
key; the definition alone in its registry) and integrations connected with *canary* credentials.

A canary is a made-up value put where the slot or operator config schema says a secret goes (each ``SecretStr``
field): the replayed definition sends it wherever it sends the real one, and the standard suite then looks for it
where no secret may be (log records, request URLs, run errors). Non-secret fields come from the cassette's
metadata, as recorded.
"""

from __future__ import annotations

import atexit
import secrets as _random
import shutil
import tempfile
import threading
import typing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel, SecretStr, ValidationError

from engine.authoring.definition import Definition
from engine.authoring.slots import CredentialSlot
from engine.catalog.registry import Registry
from engine.custody.crypto import KeyRing, generate_master_key
from engine.custody.masterkey import KeySource
from engine.runs.execution import Executor, RunOutcome
from engine.runtime import Runtime
from engine.settings import Settings
from engine.store.database import Database
from engine.store.tables import Integration, IntegrationStatus
from engine.testing.scrub import SCRUBBED

__all__ = ["Harness", "SuiteSetupError", "canary_model"]

TENANT = "suite"
OWNER = "suite-owner"


class SuiteSetupError(Exception):
    """The suite could not build what a cassette describes (its message says what)."""


def _is_secret(annotation: Any) -> bool:
    if annotation is SecretStr:
        return True
    return any(_is_secret(arg) for arg in typing.get_args(annotation))


def _private_key() -> str:
    """A fresh RSA key (PEM) for a secret named ``*private_key*``: a definition signs with it (GitHub's app JWT), so
    a random string would fail before any request. Still a canary: no one else has it."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def _service_account_key(canaries: list[str]) -> str:
    """A secret named ``*json`` holds a key file: Google's service account JSON key (``key_json``,
    ``service_account_json``), the one such format the catalog reads. A fresh key, so the client can sign its token
    request; its private key and key ID are canaries of their own (a log line could hold one without the rest)."""
    import json

    pem, key_id = _private_key(), _random.token_hex(20)
    canaries.extend([pem, key_id])
    return json.dumps(
        {
            "type": "service_account",
            "project_id": "suite-project",
            "private_key_id": key_id,
            "private_key": pem,
            "client_email": "suite@suite-project.iam.gserviceaccount.com",
            "client_id": "100000000000000000001",
            "token_uri": "https://oauth2.googleapis.com/token",
        }
    )


def canary_model(
    model: type[BaseModel], known: dict[str, Any] | None, canaries: list[str], *, expired: bool = False
) -> BaseModel:
    """``model`` with the recorded non-secret values of ``known``, a fresh canary in every secret field (appended to
    ``canaries``) and, for required fields the recording did not keep, a placeholder. ``expired``: a token past
    its expiry, holding a refresh token (the suite's refresh check)."""
    values: dict[str, Any] = {}
    known = known or {}
    for name, info in model.model_fields.items():
        recorded = known.get(name)
        if _is_secret(info.annotation):
            # Absent when recorded (no refresh token): a canary there would change what is sent, except for the
            # refresh check, whose expired token must hold a refresh token.
            optional = recorded is None and not info.is_required()
            if optional and not (expired and name == "refresh_token"):
                continue
            if "private_key" in name:
                canary = _private_key()
            elif name.endswith("json"):
                canary = _service_account_key(canaries)
            else:
                canary = f"canary{name.replace('_', '')}{_random.token_hex(8)}"
            canaries.append(canary)
            values[name] = canary
        elif name in known and recorded != SCRUBBED:
            values[name] = recorded
        elif info.is_required():
            values[name] = f"suite-{name}"
    if "expires_at" in model.model_fields:
        # A token the recording saw as fresh: replay must not ask the token endpoint, which the cassette lacks
        # (unless the check is the refresh, which answers the token endpoint itself).
        values["expires_at"] = datetime.now(UTC) + (timedelta(hours=-1) if expired else timedelta(days=1))
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        fields = ", ".join(".".join(str(p) for p in e["loc"]) for e in exc.errors())
        raise SuiteSetupError(f"{model.__name__} cannot be built from the cassette's metadata ({fields})") from None


_template: list[Path] = []
_template_lock = threading.Lock()


def _migrated_template() -> Path:
    """A migrated SQLite file, made once per process: each scratch engine starts from a copy of it, since running
    the migrations costs about a second and the suite builds several engines per definition."""
    with _template_lock:
        if not _template or not _template[0].exists():
            folder = Path(tempfile.mkdtemp(prefix="tether-suite-template-"))
            atexit.register(shutil.rmtree, folder, True)
            path = folder / "template.db"
            db = Database(f"sqlite:///{path}")
            try:
                db.upgrade()
            finally:
                db.dispose()
            _template[:] = [path]
        return _template[0]


class _Executor(Executor):
    """The engine's executor, keeping each run's outcome (the suite reads a deferral's delay from it)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.outcomes: dict[str, RunOutcome] = {}
        self.queued: list[tuple[str, float | None]] = []

    async def execute(self, run_id: str, *, inline: bool = False) -> RunOutcome:
        outcome = await super().execute(run_id, inline=inline)
        self.outcomes[run_id] = outcome
        return outcome


class Harness:
    """One definition on a scratch engine in ``workdir``."""

    def __init__(self, definition: Definition, workdir: Path, *, operator_config: dict[str, Any] | None = None):
        workdir.mkdir(parents=True, exist_ok=True)
        self.definition = definition
        self.canaries: list[str] = []
        settings = Settings(
            database_url=f"sqlite:///{workdir / 'suite.db'}",
            state_dir=str(workdir),
            sandbox=True,  # definitions that require the sandbox switch (the sandbox itself) are enabled here
            metrics=False,
        )
        registry = Registry(allow_loopback=True)
        registry.register(definition)
        config = None
        if definition.operator_config is not None:
            config = canary_model(definition.operator_config, operator_config, self.canaries)
        keys = KeySource(KeyRing.from_master_key(generate_master_key()), "env")
        shutil.copyfile(_migrated_template(), workdir / "suite.db")
        self.runtime = Runtime(settings, Database(settings.database_url), registry, keys, {definition.id: config})
        self.executor = _Executor(self.runtime, self.runtime.custody, enqueue=self._enqueue)

    def _enqueue(self, run_id: str, delay: float | None, time_limit: float | None) -> None:
        self.executor.queued.append((run_id, delay))

    def connect(self, metadata: dict[str, Any], *, expired: bool = False) -> str:
        """An integration connected through the cassette's connection, holding a canary credential (``expired``:
        an access token past its expiry, with a refresh token)."""
        connection_id = metadata.get("connection")
        connection = self.definition.connection(str(connection_id))
        if connection is None:
            raise SuiteSetupError(f"the cassette names no connection of {self.definition.id} ({connection_id!r})")
        slot_id = metadata.get("slot") or connection.credential.slot_id()
        slot = self.definition.slot(str(slot_id))
        if slot is None:
            raise SuiteSetupError(f"the cassette names no slot of {self.definition.id} ({slot_id!r})")
        credential = canary_model(slot, metadata.get("credential"), self.canaries, expired=expired)
        assert isinstance(credential, CredentialSlot)
        with self.runtime.db.session() as session:
            integration = Integration(
                tenant_id=TENANT,
                owner_id=f"{OWNER}-{_random.token_hex(4)}",  # one integration per owner and definition
                definition_id=self.definition.id,
                status=IntegrationStatus.connected,
                user_input=dict(metadata.get("user_input") or {}),
                provider_data={**dict(metadata.get("provider_data") or {}), "connection": connection.connection_id()},
                account=dict(metadata.get("account") or {}),
            )
            session.add(integration)
        self.runtime.keystore.save(integration.id, credential)
        return integration.id

    def integration(self, integration_id: str) -> Integration:
        with self.runtime.db.session() as session:
            row = session.get(Integration, integration_id)
        assert row is not None
        return row

    def close(self) -> None:
        self.runtime.close()
