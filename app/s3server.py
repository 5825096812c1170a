"""A local S3 endpoint for ``up --store minio|moto``: a ``minio`` server, or moto.

moto keeps objects in memory only and checks no signatures; it is what tests and a laptop
without MinIO get, never a store: it listens on loopback only, answers only requests that name
the stack's access key, and never serves moto's own ``/moto-api`` (whose reset wipes every
bucket).  Point ``BROKERFLOW_S3_ENDPOINT`` at a real MinIO for anything that must persist.
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
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote

from brokerflow.kernel.errors import BadInput

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
log = logging.getLogger("brokerflow.s3server")


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
    """moto's standalone S3 server in a thread of this process (tests and development only).

    Loopback only (``BadInput`` otherwise).  With ``access_key``, a request that does not name
    it (``Credential=KEY/`` in its signature or presigned query) is refused with 403; moto's
    ``/moto-api`` is always refused.  Refusals are logged (``brokerflow.s3server``)."""

    kind = "moto"

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0,
                 access_key: str | None = None) -> None:
        from moto.server import ThreadedMotoServer

        if host not in LOOPBACK_HOSTS:
            raise BadInput(f"the moto S3 test server never listens beyond loopback ({host}); "
                           "set BROKERFLOW_S3_ENDPOINT to a real S3/MinIO endpoint",
                           column="--host")
        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
        self.refused = 0

        class GuardedMotoServer(ThreadedMotoServer):
            def _server_entry(inner) -> None:  # noqa: N805  (moto builds its app here)
                from moto.server import (
                    DomainDispatcherApplication,
                    MotoRequestHandler,
                    create_backend_app,
                )
                from werkzeug.serving import make_server

                app = self._guard(DomainDispatcherApplication(create_backend_app), access_key)
                inner._server = make_server(inner._ip_address, inner._port, app, True,
                                            request_handler=MotoRequestHandler)
                inner._server_ready_event.set()
                inner._server.serve_forever()

        self._server = GuardedMotoServer(ip_address=host, port=port or free_port(host),
                                         verbose=False)
        self._server.start()
        bound_host, bound_port = self._server.get_host_and_port()
        self.endpoint = f"http://{bound_host}:{bound_port}"
        wait_for_http(self.endpoint + "/")

    def _guard(self, app: Callable[..., Iterable[bytes]],
               access_key: str | None) -> Callable[..., Iterable[bytes]]:
        def guarded(environ: dict[str, Any], start_response: Callable[..., Any]
                    ) -> Iterable[bytes]:
            path = environ.get("PATH_INFO", "")
            signed = (environ.get("HTTP_AUTHORIZATION", "") + " "
                      + unquote(environ.get("QUERY_STRING", "")))
            reason = ("moto's own API is not served" if path.startswith("/moto-api")
                      else "the request does not name the stack's access key"
                      if access_key is not None and f"Credential={access_key}/" not in signed
                      else "")
            if not reason:
                return app(environ, start_response)
            self.refused += 1
            log.warning("refused %s %s from %s: %s", environ.get("REQUEST_METHOD"), path,
                        environ.get("REMOTE_ADDR"), reason)
            start_response("403 Forbidden", [("Content-Type", "application/xml")])
            return [b"<?xml version='1.0' encoding='UTF-8'?><Error><Code>AccessDenied</Code>"
                    b"<Message>" + reason.encode() + b"</Message></Error>"]

        return guarded

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


def start_local_s3(*, kind: str, data_dir: Path, access_key: str, secret_key: str,
                   host: str = "127.0.0.1", port: int = 0) -> LocalS3Server:
    """A local ``minio`` server (its binary must be on PATH) or moto (tests only: loopback,
    guarded by the key, objects in memory)."""
    if kind == "minio":
        if not shutil.which("minio"):
            raise BadInput("no minio binary on PATH: install MinIO, or use the directory store "
                           "(the default) or BROKERFLOW_S3_ENDPOINT", column="--store")
        return MinioS3Server(data_dir=data_dir, access_key=access_key, secret_key=secret_key,
                             host=host, port=port)
    return MotoS3Server(host=host, port=port, access_key=access_key)
