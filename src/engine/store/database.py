"""The database: one SQLAlchemy engine per URL, sessions, and Alembic migrations.

SQLite is the embedded default; PostgreSQL is production. Both go through the same tables and the same
migrations, so what the tests prove on one holds on the other.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlmodel import Session

from engine.settings import Settings

if TYPE_CHECKING:
    from engine.store.loopdb import LoopConnection, LoopConnections
    from engine.store.threaddb import ThreadConnection

MIGRATIONS = Path(__file__).parents[1] / "migrations"  # engine/migrations, where Alembic's script location is


def normalize_url(url: str) -> str:
    """Accept plain ``postgresql://`` URLs and use the psycopg 3 driver for them."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def create_db_engine(url: str) -> Engine:
    """``hide_parameters``: a statement's bound values (tokens, credentials, a user's input) never reach the text of
    an exception, which may be logged or shown; the statement itself still is."""
    url = normalize_url(url)
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, hide_parameters=True)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        return engine
    return create_engine(
        url, pool_pre_ping=True, pool_size=pool_size(), max_overflow=max_overflow(), hide_parameters=True
    )


#: Connections a process keeps open between uses. Blocking database calls run in anyio's worker threads (40 at most
#: by default), so 20 kept plus 20 overflow means a busy process never waits for a connection; keeping 20 (not 10)
#: matters under sustained concurrency: every overflow connection is closed when it is returned and opened again on
#: the next burst (a PostgreSQL backend start each time).
DEFAULT_POOL_SIZE = 20
DEFAULT_MAX_OVERFLOW = 20


def pool_size() -> int:
    """``TETHER_DATABASE_POOL_SIZE``, else ``DEFAULT_POOL_SIZE`` (PostgreSQL)."""
    value = Settings().database_pool_size
    return DEFAULT_POOL_SIZE if value is None else value


def max_overflow() -> int:
    """``TETHER_DATABASE_MAX_OVERFLOW``, else ``DEFAULT_MAX_OVERFLOW`` (PostgreSQL)."""
    value = Settings().database_max_overflow
    return DEFAULT_MAX_OVERFLOW if value is None else value


class Database:
    """An engine plus a session factory."""

    def __init__(self, url: str) -> None:
        self.url = normalize_url(url)
        self.engine = create_db_engine(self.url)
        self._loop_connection: LoopConnection | None = None
        self._worker_connections: LoopConnections | None = None
        #: Further loop connections by purpose (``loop_connection_for``), closed with the rest on ``dispose``.
        self._purpose_connections: dict[str, LoopConnection] = {}
        self._thread_connections: dict[str, ThreadConnection] = {}

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @property
    def loop_connection(self) -> LoopConnection:
        """PostgreSQL only: a connection per event loop for statements the loop runs itself
        (``engine.store.loopdb``)."""
        if self._loop_connection is None:
            from engine.store.loopdb import LoopConnection

            self._loop_connection = LoopConnection(self.engine)
        return self._loop_connection

    @property
    def worker_connections(self) -> LoopConnections:
        """PostgreSQL only: up to ``TETHER_WORKER_LOOP_CONNECTIONS`` (default 3) connections per event loop for the
        batched statements of a worker's loop (``engine.webhooks.deliverystore``), whose messages in flight overlap:
        their claims and finishes run side by side instead of one after another. Opened as statements overlap."""
        if self._worker_connections is None:
            from engine.store.loopdb import LoopConnections

            self._worker_connections = LoopConnections(self.engine, Settings().worker_loop_connections)
        return self._worker_connections

    def thread_connection_for(self, purpose: str) -> ThreadConnection:
        """PostgreSQL only: an autocommit connection per thread for ``purpose`` (the run creation's group commit,
        ``engine.store.threaddb``), outside the pool."""
        found = self._thread_connections.get(purpose)
        if found is None:
            from engine.store.threaddb import ThreadConnection

            found = self._thread_connections.setdefault(purpose, ThreadConnection(self.engine))
        return found

    def loop_connection_for(self, purpose: str) -> LoopConnection:
        """PostgreSQL only: a connection per event loop of its own for ``purpose`` (the run claims and the run
        finishes each have one), so one purpose's statement in flight never queues behind another's."""
        found = self._purpose_connections.get(purpose)
        if found is None:
            from engine.store.loopdb import LoopConnection

            found = self._purpose_connections.setdefault(purpose, LoopConnection(self.engine))
        return found

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session that commits on success and rolls back on error."""
        with Session(self.engine, expire_on_commit=False) as session:
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise

    def upgrade(self, revision: str = "heads", *, on_step: Callable[[str], None] | None = None) -> None:
        """Apply migrations up to ``revision``; ``heads``/``head``: Tether's and every host package's branch.
        ``on_step`` is called with each revision once applied (the CLI's progress display)."""
        revision = "heads" if revision == "head" else revision
        with self.engine.begin() as connection:
            config = alembic_config(self.url)
            config.attributes["connection"] = connection
            if on_step is not None:
                config.attributes["on_version_apply"] = lambda *, step, **_: on_step(str(step.up_revision_id))
            command.upgrade(config, revision)

    def pending_upgrades(self, revision: str = "heads") -> int:
        """How many migrations ``upgrade(revision)`` would apply (for a progress display's total)."""
        revision = "heads" if revision == "head" else revision
        script = ScriptDirectory.from_config(alembic_config(self.url))
        applied = self.current_heads()
        return sum(1 for _ in script.iterate_revisions(revision, applied or "base"))

    def downgrade(self, revision: str) -> None:
        with self.engine.begin() as connection:
            config = alembic_config(self.url)
            config.attributes["connection"] = connection
            command.downgrade(config, revision)

    def current_heads(self) -> tuple[str, ...]:
        """The applied head of each branch (Tether's, and one per host package), sorted."""
        with self.engine.connect() as connection:
            return tuple(sorted(MigrationContext.configure(connection).get_current_heads()))

    def current_revision(self) -> str | None:
        """The applied revision; with host branches, their heads joined by ``, ``."""
        heads = self.current_heads()
        return ", ".join(heads) if heads else None

    def is_up_to_date(self) -> bool:
        """Every branch's head is applied. The database may record only a host head: one that depends on Tether's
        head stands for both."""
        script = ScriptDirectory.from_config(alembic_config(self.url))
        applied = {r.revision for r in script.iterate_revisions(self.current_heads(), "base")}
        return set(script.get_heads()) <= applied

    def dispose(self) -> None:
        if self._loop_connection is not None:
            self._loop_connection.close()
        if self._worker_connections is not None:
            self._worker_connections.close()
        for connections in self._purpose_connections.values():
            connections.close()
        for threaded in self._thread_connections.values():
            threaded.close()
        self.engine.dispose()


def alembic_config(url: str) -> Config:
    """Tether's migrations plus each host model package's (``ingest.hosts``): one version location, and one Alembic
    branch, per package."""
    from ingest.hosts import host_packages

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    locations = [MIGRATIONS / "versions", *(p.migrations for p in host_packages() if p.migrations is not None)]
    config.set_main_option("path_separator", "os")
    config.set_main_option("version_locations", os.pathsep.join(str(p).replace("%", "%%") for p in locations))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config
