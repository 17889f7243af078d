"""Migrated scratch databases without running Alembic for every test.

Running the migrations costs 0.5-2.5 s a database on the loaded 2-core test machine (Alembic loads every revision
script and runs each operation through its machinery), and most tests of the suite start from a fresh migrated
database: that was a large share of the suite's time. The migrations run here once per process and per set of host
model packages (``ingest.hosts``: a test may configure other ones, whose branches then migrate too):

- SQLite: into a template file, copied for each test (the same bytes the migrations wrote).
- PostgreSQL: into a template schema, recording every statement Alembic sent; each test's schema gets the same
  statements replayed in one transaction. The statements name no schema (the connection's ``search_path`` picks
  it), so the replay builds exactly what the migrations built, ``alembic_version`` included. The schemas are made
  one ahead and dropped in the background (``PostgresSchemas``).

The migrations themselves are still tested by running them (``tests/store``); ``upgrade`` here checks that the
result is at every head, so a template that went stale could not pass for a migrated database.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import create_engine, event, text
from sqlalchemy.pool import NullPool

from engine.context import EngineContext
from engine.store.database import Database, normalize_url

_lock = threading.Lock()
R = TypeVar("R", bound=EngineContext)
_sqlite_templates: dict[tuple[tuple[str, str], ...], Path] = {}
#: A statement as the driver's cursor got it: text, parameters, and whether it was an ``executemany``.
Statement = tuple[str, Any, bool]
_postgres_scripts: dict[tuple[str, tuple[tuple[str, str], ...]], list[Statement]] = {}
_heads: dict[tuple[tuple[str, str], ...], tuple[str, ...]] = {}


def _packages_key() -> tuple[tuple[str, str], ...]:
    from ingest.hosts import host_packages

    return tuple((p.module, str(p.migrations)) for p in host_packages())


def _check_at_heads(db: Database, key: tuple[tuple[str, str], ...]) -> None:
    """The database records the same heads as a real ``upgrade`` of this package set did."""
    found = db.current_heads()
    if found != _heads[key]:
        raise AssertionError(f"scratch database at {found}, expected {_heads[key]}")


def upgrade_sqlite(db: Database) -> None:
    """``db.upgrade()`` for a new, empty SQLite file database: a copy of the migrated template."""
    path = db.engine.url.database
    if not path or db.dialect != "sqlite" or (Path(path).exists() and Path(path).stat().st_size):
        db.upgrade()  # not a fresh file: migrate it for real
        return
    key = _packages_key()
    with _lock:
        template = _sqlite_templates.get(key)
        if template is None or not template.exists():
            folder = Path(tempfile.mkdtemp(prefix="tether-test-template-"))
            atexit.register(shutil.rmtree, folder, True)
            template = folder / "template.db"
            made = Database(f"sqlite:///{template}")
            try:
                made.upgrade()
                _heads[key] = made.current_heads()
            finally:
                made.dispose()  # the last connection's close checkpoints the WAL into the file
            _sqlite_templates[key] = template
    db.engine.dispose()  # nothing may hold the file open while it is written
    shutil.copyfile(template, path)
    _check_at_heads(db, key)


def migrated(runtime: R) -> R:
    """``Runtime.start(..., migrate=True)`` for tests: a fresh SQLite file from the template, else a real upgrade."""
    upgrade_sqlite(runtime.db)
    return runtime


def _record(db: Database, run: Callable[[], None]) -> list[Statement]:
    statements: list[Statement] = []

    def keep(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, many: bool) -> None:
        statements.append((statement, parameters, many))

    event.listen(db.engine, "before_cursor_execute", keep)
    try:
        run()
    finally:
        event.remove(db.engine, "before_cursor_execute", keep)
    return statements


class PostgresSchemas:
    """Fresh migrated schemas in one PostgreSQL database, each made ahead while the previous test runs and dropped
    after its test in the background: the DDL (not Alembic) is most of the cost on PostgreSQL (~1.5 s of
    ``CREATE TABLE``/``CREATE INDEX`` and ~0.5 s of ``DROP SCHEMA`` a test on the loaded machine), and it runs on
    the server's core while the test runs on its own.

    One schema is made ahead at a time, for the host packages the last test had; a test that configured other host
    packages gets one made for them on the spot. Schemas still made ahead at exit are dropped then.
    """

    def __init__(self, admin_url: str, schema_url: Callable[[str], str]) -> None:
        self.admin_url = admin_url
        self.schema_url = schema_url
        self._work = ThreadPoolExecutor(max_workers=1, thread_name_prefix="scratch-schemas")
        self._ahead: tuple[tuple[tuple[str, str], ...], Future[str]] | None = None
        self._admin = create_engine(normalize_url(admin_url), isolation_level="AUTOCOMMIT", poolclass=NullPool)

    def take(self) -> str:
        """The name of a new migrated schema (raises what making it raised)."""
        key = _packages_key()
        script = self._script(key)
        ahead, self._ahead = self._ahead, None
        schema: str | None = None
        if ahead is not None:
            if ahead[0] == key:
                schema = ahead[1].result()
            else:
                self._work.submit(self._drop_made, ahead[1])
        if schema is None:
            schema = self._make(script)
        self._ahead = (key, self._work.submit(self._make, script))
        return schema

    def give_back(self, schema: str) -> None:
        """Drop ``schema`` in the background (its engine must have been disposed)."""
        self._work.submit(self._drop, schema)

    def close(self) -> None:
        """Wait for the background work and drop the schema made ahead (the end of the session)."""
        ahead, self._ahead = self._ahead, None
        if ahead is not None:
            self._work.submit(self._drop_made, ahead[1])
        self._work.shutdown(wait=True)
        self._admin.dispose()

    def _script(self, key: tuple[tuple[str, str], ...]) -> list[Statement]:
        script_key = (self.admin_url, key)
        with _lock:
            script = _postgres_scripts.get(script_key)
            if script is None:
                script = _postgres_scripts[script_key] = self._record(key)
        return script

    def _record(self, key: tuple[tuple[str, str], ...]) -> list[Statement]:
        schema = self._create()
        try:
            made = Database(self.schema_url(schema))
            try:
                script = _record(made, made.upgrade)
                _heads[key] = made.current_heads()
            finally:
                made.dispose()
        finally:
            self._drop(schema)
        return script

    def _create(self) -> str:
        schema = f"tether_test_{uuid.uuid4().hex[:12]}"
        with self._admin.connect() as connection:
            connection.execute(text(f'CREATE SCHEMA "{schema}"'))
        return schema

    def _make(self, script: list[Statement]) -> str:
        schema = self._create()
        # Straight on the driver, exactly as recorded (the same text and parameters, so the same escaping), in one
        # transaction: a failure leaves the schema empty.
        engine = create_engine(normalize_url(self.schema_url(schema)), poolclass=NullPool)
        try:
            with engine.begin() as connection:
                cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
                try:
                    cursor.execute("SET LOCAL synchronous_commit TO off")  # a scratch schema need not be durable
                    for statement, parameters, many in script:
                        if many:
                            cursor.executemany(statement, parameters)
                        else:
                            cursor.execute(statement, parameters)
                finally:
                    cursor.close()
        except BaseException:
            engine.dispose()
            self._drop(schema)
            raise
        engine.dispose()
        return schema

    def _drop(self, schema: str) -> None:
        with self._admin.connect() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))

    def _drop_made(self, made: Future[str]) -> None:
        try:
            schema = made.result()
        except Exception:  # it failed, and left nothing: the test that takes the next one sees the error
            return
        self._drop(schema)


def check_migrated(db: Database) -> None:
    """``db`` is at the heads a real ``upgrade`` reached for the current host packages."""
    _check_at_heads(db, _packages_key())
