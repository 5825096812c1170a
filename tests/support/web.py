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
def serving(archive: Archive) -> Iterator[str]:
    """Serve the archive page of ``archive``; its base URL."""
    port = free_port()
    # log_config=None: uvicorn must not reconfigure logging in a process where Prefect's API
    # log handler is installed (its flush waits on a thread that waits on the logging lock)
    server = uvicorn.Server(uvicorn.Config(create_app(archive), host="127.0.0.1", port=port,
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
