"""A local S3 endpoint on loopback: a ``minio`` server when the binary is on PATH, else moto.

moto keeps objects in memory only; it is what tests and a laptop without MinIO get.  Point
``BROKERFLOW_S3_ENDPOINT`` at a real MinIO for anything that must persist.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Protocol


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_in_use(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def wait_for_http(url: str, *, timeout: float = 30.0) -> None:
    """Poll ``url`` until it answers with any HTTP status."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(url, timeout=2).close()
            return
        except urllib.error.HTTPError:
            return  # it answered
        except (urllib.error.URLError, OSError):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{url} did not answer within {timeout:.0f}s") from None
            time.sleep(0.1)


class LocalS3Server(Protocol):
    kind: str
    endpoint: str

    def stop(self) -> None: ...


class MotoS3Server:
    """moto's standalone S3 server in a thread of this process."""

    kind = "moto"

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0) -> None:
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
        self._server = ThreadedMotoServer(ip_address=host, port=port or free_port(host),
                                          verbose=False)
        self._server.start()
        bound_host, bound_port = self._server.get_host_and_port()
        self.endpoint = f"http://{bound_host}:{bound_port}"
        wait_for_http(self.endpoint + "/moto-api/")

    def stop(self) -> None:
        self._server.stop()


class MinioS3Server:
    """A ``minio server`` child process with its data under ``data_dir``."""

    kind = "minio"

    def __init__(self, *, data_dir: Path, access_key: str, secret_key: str,
                 host: str = "127.0.0.1", port: int = 0) -> None:
        binary = shutil.which("minio")
        if binary is None:
            raise FileNotFoundError("minio is not on PATH")
        port = port or free_port(host)
        data_dir.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, MINIO_ROOT_USER=access_key, MINIO_ROOT_PASSWORD=secret_key,
                   MINIO_BROWSER="off")
        self._process = subprocess.Popen(
            [binary, "server", str(data_dir), "--address", f"{host}:{port}", "--quiet"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        self.endpoint = f"http://{host}:{port}"
        wait_for_http(self.endpoint + "/minio/health/live")

    def stop(self) -> None:
        self._process.terminate()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()


def start_local_s3(*, data_dir: Path, access_key: str, secret_key: str,
                   host: str = "127.0.0.1", port: int = 0) -> LocalS3Server:
    """MinIO when the binary is on PATH, else moto."""
    if shutil.which("minio"):
        return MinioS3Server(data_dir=data_dir, access_key=access_key, secret_key=secret_key,
                             host=host, port=port)
    return MotoS3Server(host=host, port=port)
