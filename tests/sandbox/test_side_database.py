"""The sandbox's side database does not keep Tether's database alive (``engine.sandbox.database``): on PostgreSQL
the sandbox's tables live in the main database, and an entry mapping the database to itself in the weak-keyed map
kept every such database, with its engine, for the rest of the process."""

from __future__ import annotations

import gc
import weakref
from pathlib import Path

from engine.sandbox.database import sandbox_db
from engine.store.database import Database
from support.scratchdb import upgrade_sqlite


def test_a_postgresql_database_is_its_own_sandbox_and_is_freed_after(postgres_database: Database) -> None:
    main = Database(postgres_database.url)
    assert sandbox_db(main) is main and sandbox_db(main) is main
    ref = weakref.ref(main)
    main.dispose()
    del main
    gc.collect()
    assert ref() is None


def test_a_sqlite_database_gets_a_side_file_freed_with_it(tmp_path: Path) -> None:
    main = Database(f"sqlite:///{tmp_path / 'tether.db'}")
    upgrade_sqlite(main)
    side = sandbox_db(main)
    assert side is not main and sandbox_db(main) is side
    assert side.url.endswith("tether-sandbox.db")
    refs = [weakref.ref(main), weakref.ref(side)]
    main.dispose()
    del main, side
    gc.collect()
    assert [ref() for ref in refs] == [None, None]
