"""A background thread that repeats an action while a block runs."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager


@contextmanager
def repeating(action: Callable[[], None], *, every: float, name: str,
              tolerated: tuple[type[Exception], ...], log: logging.Logger,
              what: str) -> Iterator[None]:
    """Run ``action`` every ``every`` seconds in a daemon thread until the block ends; a
    ``tolerated`` error is logged as "could not ``what``" and tried again next period."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(every):
            try:
                action()
            except tolerated as exc:
                log.warning("could not %s: %s", what, exc)

    thread = threading.Thread(target=loop, name=name, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)
