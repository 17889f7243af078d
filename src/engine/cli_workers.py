"""``tether worker`` and ``tether scheduler``.

Registered on the main CLI with ``app.command("worker")(worker)`` and ``app.command("scheduler")(scheduler)``; also
runnable on their own as ``python -m engine.cli_workers worker|scheduler``.
"""

from __future__ import annotations

import typer

from engine.errors import ConfigurationError, DefinitionError
from engine.processes import configure_worker_logging


def worker(
    threads: int = typer.Option(64, help="Worker threads per process (runs in flight per process)."),
    processes: int = typer.Option(1, help="Worker processes to start."),
) -> None:
    """Execute queued runs from TETHER_BROKER_URL (redis:// or amqp://) until interrupted."""
    from engine.processes import run_worker

    configure_worker_logging()
    try:
        run_worker(threads=threads, processes=processes)
    except (ConfigurationError, DefinitionError) as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(1) from None


def scheduler(
    interval: float = typer.Option(5.0, help="Seconds between passes."),
    iterations: int = typer.Option(0, help="Stop after this many passes (0: run until interrupted)."),
) -> None:
    """Enqueue due scheduled runs (exactly once across scheduler processes) and recover runs of dead workers."""
    from engine.processes import run_scheduler

    configure_worker_logging()
    try:
        total = run_scheduler(interval=interval, iterations=iterations or None)
    except (ConfigurationError, DefinitionError) as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"scheduler enqueued {total} runs")


app = typer.Typer(no_args_is_help=True, add_completion=False)
app.command("worker")(worker)
app.command("scheduler")(scheduler)

if __name__ == "__main__":
    app()
