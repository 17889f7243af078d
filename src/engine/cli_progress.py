"""A progress display for the CLI's long commands (``keys rotate``, ``db upgrade``, ``mapping dry-run``), with rich.

It draws on stderr and only on a terminal, as rich decides (``isatty``, or ``TTY_COMPATIBLE=1``/``FORCE_COLOR`` set by
the user): in CI, in a pipe or under a test runner it is off and draws nothing, so stdout stays the command's plain,
scriptable answer and stderr holds only errors. ``steps`` hands the command one function to call per unit done.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

#: Called once per unit done: ``advance(n=1, label=None)`` (a new label replaces the description).
Advance = Callable[..., None]


def _noop(n: int = 1, label: str | None = None) -> None:
    return None


@contextmanager
def steps(label: str, total: int | None) -> Iterator[Advance]:
    """A progress bar of ``total`` units labelled ``label`` (a spinner when ``total`` is ``None``), on stderr when
    it is a terminal; elsewhere an ``advance`` that does nothing."""
    console = Console(stderr=True)  # made here: the stderr of this call (a test runner swaps it)
    if not console.is_terminal:
        yield _noop
        return
    columns = [SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn()]
    # Lines the command prints go above the bar only when stdout is that same terminal; a redirected stdout is
    # left alone (rich would otherwise send its lines to the console, which is stderr).
    redirect = sys.stdout.isatty()
    with Progress(
        *columns, TimeElapsedColumn(), console=console, redirect_stdout=redirect, redirect_stderr=False
    ) as progress:
        task = progress.add_task(label, total=total)

        def advance(n: int = 1, label: str | None = None) -> None:
            if label is None:
                progress.advance(task, n)
            else:
                progress.update(task, advance=n, description=label)

        yield advance


__all__ = ["Advance", "steps"]
