"""Named points where a fault test may stop a process, to kill it at a known moment.

``BROKERFLOW_FAILPOINTS`` lists ``name=action`` pairs (comma-separated); unset, every
``failpoint()`` call returns at once.  The one action is ``pause``: the process writes
``<name>.<pid>`` into ``BROKERFLOW_FAILPOINT_DIR`` (so the test knows it got there) and sleeps
until it is killed.  Used by the reliability tests (``docs/reliability.md``); nothing in
production sets the variable.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

ENV = "BROKERFLOW_FAILPOINTS"
DIR_ENV = "BROKERFLOW_FAILPOINT_DIR"


def armed(spec: str | None) -> dict[str, str]:
    """``{point: action}`` from a ``BROKERFLOW_FAILPOINTS`` value (pure)."""
    points: dict[str, str] = {}
    for item in (spec or "").split(","):
        name, _, action = item.strip().partition("=")
        if name:
            points[name] = action or "pause"
    return points


def failpoint(name: str) -> None:
    """Stop here when a fault test armed ``name``; otherwise do nothing."""
    action = armed(os.environ.get(ENV)).get(name)
    if action is None:
        return
    if action != "pause":
        raise ValueError(f"{ENV}: unknown action {action!r} for {name}")
    marker_dir = Path(os.environ.get(DIR_ENV, "."))
    marker_dir.mkdir(parents=True, exist_ok=True)
    (marker_dir / f"{name}.{os.getpid()}").write_text(str(time.time()), encoding="utf-8")
    while True:  # until the test kills this process
        time.sleep(3600)
