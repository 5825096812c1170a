"""The archive page served over HTTP on loopback (uvicorn in a thread) for a test."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn

from brokerflow.app.s3server import free_port
from brokerflow.app.web import create_app
from brokerflow.archive.service import Archive


@contextmanager
def serving(archive: Archive, *, prefect_ui: str | None = None) -> Iterator[str]:
    """Serve the archive page of ``archive`` (its inbox linking runs to ``prefect_ui``); its
    base URL."""
    port = free_port()
    # log_config=None: uvicorn must not reconfigure logging in a process where Prefect's API
    # log handler is installed (its flush waits on a thread that waits on the logging lock)
    app = create_app(archive, prefect_ui=prefect_ui)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning", log_config=None))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the archive page did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
