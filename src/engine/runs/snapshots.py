"""Complete-snapshot removal: the membership "episodes" of a full listing, applied by the engine.

A full listing has no "deleted" event: a record simply stops appearing. An operation that lists a schema
completely says so (``Operation.complete_snapshots``); the pipeline then collects the upsert keys of every record
of that schema it persisted during the run, and when the listing has finished, the integration's records of the
schema the run did not see are removed, with the records that reference them and every ``remove`` change, in one
transaction (``IngestPipeline.remove_unseen``).

Concluding absence from a partial read would remove live records, so nothing is removed unless all of these hold:
the operation's ``ingest()`` ran to its end (an exception fails the run before this point), no record of the
schema was rejected on the way in (a rejected record was seen but not stored), and no newer run of the same
operation on the same integration is running or has succeeded (an older run finishing late must not undo a
newer one's upserts).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import select

from engine.store.database import Database
from engine.store.tables import Run, RunStatus


def remove_unconfirmed(
    pipeline: Any,
    db: Database,
    ctx: Any,
    run: Run,
    seen: dict[str, set[tuple[Any, ...]]],
    rejected: Iterable[str],
) -> dict[str, int]:
    """Apply the run's complete snapshots (``ctx.snapshot``); returns the records removed per schema."""
    refused = set(rejected)
    trusted = [schema for schema in sorted(ctx.snapshot) if schema not in refused]
    if not trusted or _superseded(db, run):
        return {}
    return {schema: pipeline.remove_unseen(ctx, schema, seen.get(schema, set())) for schema in trusted}


def _superseded(db: Database, run: Run) -> bool:
    """Whether a run of the same operation and integration, queued after this one, is running or succeeded."""
    table = Run.__table__  # type: ignore[attr-defined]
    query = (
        select(table.c.id)
        .where(
            table.c.integration_id == run.integration_id,
            table.c.operation == run.operation,
            table.c.queued_at > run.queued_at,
            table.c.status.in_([RunStatus.running.value, RunStatus.succeeded.value]),
        )
        .limit(1)
    )
    with db.engine.connect() as connection:
        return connection.execute(query).first() is not None
