"""Progress for long work, on stderr with rich (nothing when stderr is not a terminal, or for
work that ends before it is worth showing)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn


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


class Steps:
    """Named steps of a long command, shown one at a time (``[k/n] name``, elapsed time)."""

    def __init__(self, bar: Progress, task: TaskID, total: int) -> None:
        self._bar, self._task, self._total, self._step = bar, task, total, 0

    def next(self, name: str) -> None:
        """The previous step is done; ``name`` is under way."""
        if self._step:
            self._bar.advance(self._task)
        self._step += 1
        self.note(name)

    def note(self, text: str) -> None:
        """What the current step is doing now (the step count unchanged)."""
        self._bar.update(self._task, description=f"[{self._step}/{self._total}] {text}")


@contextmanager
def stepping(total: int) -> Iterator[Steps]:
    """``Steps`` shown on stderr while the block runs.  Printed output keeps going to stdout;
    when stdout is the same terminal it is printed above the line."""
    console = Console(stderr=True)
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                  console=console, transient=True, disable=not console.is_terminal,
                  redirect_stdout=sys.stdout.isatty(), redirect_stderr=False) as bar:
        yield Steps(bar, bar.add_task("", total=total), total)


@contextmanager
def watching(what: str) -> Iterator[Callable[[str], None]]:
    """A callback ``note(text)`` shown as ``<what>: <text>`` with a spinner while waiting."""
    console = Console(stderr=True)
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                  console=console, transient=True, disable=not console.is_terminal) as bar:
        task = bar.add_task(what, total=None)

        def note(text: str) -> None:
            bar.update(task, description=f"{what}: {text}")

        yield note
