"""Progress for long work, on stderr with rich (nothing when stderr is not a terminal, or for
work that ends before it is worth showing)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn


@contextmanager
def counting(what: str) -> Iterator[Callable[[int], None]]:
    """A callback ``progress(n)`` (n items done so far) shown as ``n <what>``."""
    console = Console(stderr=True)
    with Progress(SpinnerColumn(), TextColumn("{task.completed:,} " + what),
                  TimeElapsedColumn(), console=console, transient=True,
                  disable=not console.is_terminal) as bar:
        task = bar.add_task(what, total=None)

        def progress(done: int) -> None:
            bar.update(task, completed=done)

        yield progress
