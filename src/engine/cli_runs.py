"""``tether runs``: list runs and follow them as they are queued, start and finish.

An operator command, like ``tether records``: it reads the database directly, so it sees every tenant unless
``--tenant`` narrows it, and needs no server running. ``tail`` polls (one indexed read per interval); the run table
has no change notification to listen to, and a second's delay is what an operator watching a terminal expects.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import typer

from engine.cli_records import _database, _table

if TYPE_CHECKING:
    from engine.store.tables import Run, RunStatus

# The engine's modules are imported inside the commands, as in ``cli_records``: every ``tether`` command imports
# this module, and the execution layer alone would add seconds to ``tether --help``.

runs_app = typer.Typer(help="List runs and follow them (the API's GET /v1/runs).", no_args_is_help=True)

_COLUMNS = ("id", "integration_id", "operation", "status", "attempts", "error_code", "queued_at", "finished_at")
#: ``RunStatus``'s values, for the help text (a test keeps them equal).
STATUS_NAMES = ("queued", "running", "succeeded", "failed", "cancelled", "stalled")
_STATUSES = ", ".join(STATUS_NAMES)


def _status(value: str | None) -> RunStatus | None:
    from engine.store.tables import RunStatus

    if value is None:
        return None
    try:
        return RunStatus(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a run status ({_STATUSES})") from None


@runs_app.command("list")
def runs_list(
    integration: str = typer.Option(None, "--integration", help="One integration's runs."),
    status: str = typer.Option(None, "--status", help=f"Only runs in this status ({_STATUSES})."),
    tenant: str = typer.Option(None, "--tenant", help="One tenant's runs (default: every tenant)."),
    limit: int = typer.Option(50, "--limit", min=1, max=500, help="Runs to show (1..500)."),
    as_json: bool = typer.Option(False, "--json", help="Print the runs as the API shows them (RunView)."),
) -> None:
    """The newest runs first."""
    from sqlmodel import col, select

    from engine.runs.execution import RunView
    from engine.store.tables import Run

    wanted = _status(status)
    query = _scoped(select(Run), integration, tenant)
    if wanted is not None:
        query = query.where(col(Run.status) == wanted)
    with _database().session() as session:
        runs = session.exec(query.order_by(col(Run.queued_at).desc(), col(Run.id).desc()).limit(limit)).all()
    if as_json:
        typer.echo("[" + ",\n".join(RunView.of(run).model_dump_json() for run in runs) + "]")
        return
    typer.echo(_table(_COLUMNS, [_row(run) for run in runs]))


@runs_app.command("tail")
def runs_tail(
    integration: str = typer.Option(None, "--integration", help="Only this integration's runs."),
    tenant: str = typer.Option(None, "--tenant", help="Only this tenant's runs."),
    last: int = typer.Option(10, "--last", min=0, max=500, help="Runs to show first, newest last."),
    interval: float = typer.Option(1.0, "--interval", min=0.05, help="Seconds between reads of the run table."),
    count: int = typer.Option(0, "--count", min=0, help="Stop after this many lines (0: until Ctrl-C)."),
    timeout: float = typer.Option(0.0, "--timeout", min=0.0, help="Stop after this many seconds (0: never)."),
) -> None:
    """Print a line for each new run and each status change (attempts included) until Ctrl-C."""
    from sqlalchemy import func, or_
    from sqlmodel import col, select

    from engine.runs.execution import TERMINAL
    from engine.store.tables import Run

    db = _database()
    printed = 0
    started = time.monotonic()
    #: What was last printed (or seen) of each run: its status and attempt, and when it was queued (a finished
    #: run is forgotten once older than ``since``, which no later read can return again).
    known: dict[str, tuple[str, int, datetime]] = {}

    def emit(runs: Iterable[Run]) -> bool:
        """Print the runs that are new or changed; ``True`` once ``count`` lines are out."""
        nonlocal printed
        for run in runs:
            state = (str(run.status), run.attempts, _aware(run.queued_at))
            if known.get(run.id) == state:
                continue
            known[run.id] = state
            typer.echo(_line(run))
            printed += 1
            if count and printed >= count:
                return True
        return False

    try:
        scoped = _scoped(select(Run), integration, tenant)
        with db.session() as session:
            recent = session.exec(scoped.order_by(col(Run.queued_at).desc(), col(Run.id).desc()).limit(last)).all()
            unfinished = session.exec(scoped.where(col(Run.status).notin_(list(TERMINAL)))).all()
            newest = session.exec(_scoped(select(func.max(Run.queued_at)), integration, tenant)).one()
        if emit(reversed(recent)):
            return
        for run in unfinished:  # older unfinished runs are followed too, printed when they change
            known.setdefault(run.id, (str(run.status), run.attempts, _aware(run.queued_at)))
        # ``since`` is kept as the database hands it back (naive on SQLite, which compares stored text), so the
        # next read binds it as the column stores it.
        since: datetime | None = newest
        while not (timeout and time.monotonic() - started >= timeout):
            _pause(interval)
            followed = [run_id for run_id, (state, _, _) in known.items() if state not in TERMINAL]
            query = scoped
            new = col(Run.queued_at) >= since if since is not None else None
            if followed and new is not None:
                query = query.where(or_(new, col(Run.id).in_(followed)))
            elif followed:
                query = query.where(col(Run.id).in_(followed))
            elif new is not None:
                query = query.where(new)
            with db.session() as session:
                runs = session.exec(query.order_by(col(Run.queued_at), col(Run.id))).all()
            if emit(runs):
                return
            if runs:
                latest = max((r.queued_at for r in runs), key=_aware)
                since = latest if since is None or _aware(latest) > _aware(since) else since
            if since is not None:
                horizon = _aware(since)
                for run_id in [r for r, (state, _, at) in known.items() if state in TERMINAL and at < horizon]:
                    del known[run_id]
    except KeyboardInterrupt:  # Ctrl-C is how tail ends
        raise typer.Exit(0) from None


def _pause(seconds: float) -> None:
    """The wait between two reads (its own name, so a test can act between them)."""
    time.sleep(seconds)


def _scoped(query: Any, integration: str | None, tenant: str | None) -> Any:
    from sqlmodel import col

    from engine.store.tables import Run

    if integration:
        query = query.where(col(Run.integration_id) == integration)
    if tenant:
        query = query.where(col(Run.tenant_id) == tenant)
    return query


def _row(run: Run) -> dict[str, Any]:
    return {name: getattr(run, name) for name in _COLUMNS}


def _line(run: Run) -> str:
    """``time  run  integration  operation  status[ error_code]  attempt N``: one change, one line."""
    at = _aware(run.finished_at or run.started_at or run.queued_at)
    status = str(run.status) + (f" {run.error_code}" if run.error_code else "")
    return f"{at:%Y-%m-%dT%H:%M:%S}  {run.id}  {run.integration_id}  {run.operation}  {status}  attempt {run.attempts}"


def _aware(value: datetime | None) -> datetime:
    assert value is not None  # queued_at always is; started_at/finished_at are read behind ``or``
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
