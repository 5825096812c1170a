"""``brokerflow up`` as a child process for the tests that need the whole stack."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.request import Request, urlopen

from brokerflow.app.s3server import free_port
from tests.support.paths import console_script

CSRF_CLIENT = "brokerflow-tests"


def prefect_api(port: int, path: str, body: dict[str, Any] | None = None) -> Any:
    """GET (or POST ``body`` as JSON to) the stack's Prefect API, with the CSRF token that
    ``up`` makes the API require."""
    base = f"http://127.0.0.1:{port}/api"
    with urlopen(f"{base}/csrf-token?client={CSRF_CLIENT}", timeout=30) as response:
        token = json.loads(response.read())["token"]
    request = Request(base + path, data=None if body is None else json.dumps(body).encode(),
                      headers={"Content-Type": "application/json", "Prefect-Csrf-Token": token,
                               "Prefect-Csrf-Client": CSRF_CLIENT})
    with urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def clean_env(home: Path, **extra: str) -> dict[str, str]:
    """This environment without brokerflow/Prefect settings, pointed at ``home``."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("BROKERFLOW_", "PREFECT_API_URL"))}
    env.update(BROKERFLOW_HOME=str(home), PREFECT_SERVER_ANALYTICS_ENABLED="false", **extra)
    return env


@dataclass
class Stack:
    process: subprocess.Popen[str]
    home: Path
    prefect_port: int
    s3_port: int
    web_port: int
    output: str

    def interrupt(self) -> int:
        """Ctrl-C, as the terminal sends it to the process group; the exit code."""
        os.killpg(self.process.pid, signal.SIGINT)
        return self.process.wait(timeout=60)

    def wait_for_output(self, text: str, timeout: float = 120) -> str:
        """Read ``up``'s further output until a line contains ``text``; that line."""
        lines: queue.Queue[str] = queue.Queue()

        def read() -> None:
            assert self.process.stdout is not None
            for line in self.process.stdout:
                lines.put(line)
                if text in line:
                    return

        threading.Thread(target=read, daemon=True).start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                break
            self.output += line
            if text in line:
                return line
        raise AssertionError(f"no line with {text!r} within {timeout:.0f} s:\n{self.output}")


@contextmanager
def running_stack(home: Path, *options: str, **env: str) -> Iterator[Stack]:
    """Start ``brokerflow up OPTIONS`` on free ports (``env``: more environment), wait for
    "Press Ctrl-C"; always take it down."""
    prefect_port, s3_port, web_port = free_port(), free_port(), free_port()
    process = subprocess.Popen(
        [*console_script(), "up", "--prefect-port", str(prefect_port), "--s3-port", str(s3_port),
         "--web-port", str(web_port), *options],
        env=clean_env(home, **env), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )
    try:
        assert process.stdout is not None
        lines: list[str] = []
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            lines.append(line)
            if "Press Ctrl-C" in line:
                break
        output = "".join(lines)
        assert "Press Ctrl-C" in output, output
        yield Stack(process, home, prefect_port, s3_port, web_port, output)
    finally:
        if process.poll() is None:  # a failed assertion: take the whole stack down
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
                os.killpg(process.pid, sig)
                try:
                    process.wait(timeout=60)
                    break
                except subprocess.TimeoutExpired:
                    continue
