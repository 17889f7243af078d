"""Where the sandbox keeps its state: beside Tether's own tables on PostgreSQL, in a file of its own on SQLite.

Why a file of its own: on SQLite a write locks the whole database, and the Keystore refreshes a token while holding
that lock (``BEGIN IMMEDIATE``, so that a refresh is single-flight across processes). The sandbox's token endpoint,
answering that very refresh, must write (rotate the refresh token); in the same file it would wait for the lock the
refresh holds until the refresh timed out. A provider never shares its storage with its client, and with its own
file the sandbox does not either. Every local process derives the same file name (``tether.db`` →
``tether-sandbox.db``), so a worker and the server still see the same tokens. PostgreSQL locks rows, so there the
sandbox's tables are the migration's, in the one database.

The side file's tables are created on first use (``create_all`` of the ``sandbox_*`` tables only); it holds demo
state only, so deleting it resets the sandbox.
"""

from __future__ import annotations

import threading
import weakref
from pathlib import Path

from sqlalchemy.engine import make_url
from sqlmodel import SQLModel

from engine.sandbox import tables
from engine.sandbox.store import ensure_seeded
from engine.store.database import Database

TABLES = [
    model.__table__  # type: ignore[attr-defined]
    for model in (
        tables.SandboxAccount,
        tables.SandboxRecord,
        tables.SandboxCode,
        tables.SandboxGrant,
        tables.SandboxToken,
        tables.SandboxWebhook,
        tables.SandboxEvent,
    )
]
#: Main database → its side database; ``None`` when the main one holds the sandbox's tables itself (PostgreSQL). Never
#: the main database as its own value: the entry would keep its key, and so the database and its engine, alive.
_SIDE: weakref.WeakKeyDictionary[Database, Database | None] = weakref.WeakKeyDictionary()
_LOCK = threading.Lock()


def side_url(url: str) -> str | None:
    """The sandbox's own SQLite file beside ``url``'s; None when ``url`` is not a SQLite file."""
    parsed = make_url(url)
    if not parsed.drivername.startswith("sqlite") or parsed.database in (None, "", ":memory:"):
        return None
    path = Path(parsed.database)
    return parsed.set(database=str(path.with_name(f"{path.stem}-sandbox{path.suffix}"))).render_as_string(
        hide_password=False
    )


def sandbox_db(main: Database) -> Database:
    """The (seeded) database of the sandbox's tables for Tether's database ``main``."""
    with _LOCK:
        if main in _SIDE:
            side = _SIDE[main]
        else:
            url = side_url(main.url)
            side = None if url is None else Database(url)
            if side is not None:
                SQLModel.metadata.create_all(side.engine, tables=TABLES)
                weakref.finalize(main, side.dispose)  # the side file's connections go with the main database
            _SIDE[main] = side
    found = main if side is None else side
    ensure_seeded(found)
    return found
