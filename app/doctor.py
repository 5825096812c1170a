"""``brokerflow doctor``: is this installation ready?  One line per check, OK / WARN / FAIL,
each with what is wrong and how to fix it.

Checks run side by side, each in a daemon thread with its own deadline (and the network
calls inside with shorter timeouts), so an unreachable service costs one timeout, never a
hang.  Nothing is written: the database is not migrated (a missing SQLite file is reported,
not created), no object is stored, no bucket created.
"""

from __future__ import annotations

import contextvars
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

from brokerflow.kernel.settings import Settings

OK, WARN, FAIL = "OK", "WARN", "FAIL"
WORK_POOL = "brokerflow"
CLOCK_TOLERANCE_SECONDS = 5.0
SERVE_POLL_FRESH_SECONDS = 120.0  # a serve process polls its deployments every few seconds
TEMPLATE_FONT = "WenQuanYi Micro Hei"  # the first CJK family of templates/base.html


@dataclass(frozen=True)
class Check:
    name: str
    status: str
    message: str

    def line(self) -> str:
        return f"{self.status:<4}  {self.name:<9} {self.message}"


def _worst(*statuses: str) -> str:
    return FAIL if FAIL in statuses else WARN if WARN in statuses else OK


def _timed(name: str, check: Callable[[], Check], timeout: float) -> Callable[[], Check]:
    """``check`` run in a daemon thread: its result, or FAIL when it overran ``timeout``."""

    def run() -> Check:
        box: list[Check] = []
        context = contextvars.copy_context()  # Prefect's settings context, in the thread

        def target() -> None:
            try:
                box.append(check())
            except Exception as exc:  # a check's own bug must not hide the others
                box.append(Check(name, FAIL, f"the check failed: {exc!r}"))

        thread = threading.Thread(target=context.run, args=(target,), name=f"doctor-{name}",
                                  daemon=True)
        thread.start()
        thread.join(timeout)
        return box[0] if box else Check(name, FAIL, f"no answer within {timeout:.0f} s")

    return run


# --------------------------------------------------------------------------- settings


def check_settings(settings: Settings) -> Check:
    """No default, short or repetitive secret (outside development mode)."""
    from brokerflow.kernel.errors import UnsafeSettings

    try:
        settings.check_secrets()
    except UnsafeSettings as exc:
        return Check("settings", FAIL, str(exc))
    mode = "development mode (BROKERFLOW_DEV=1)" if settings.dev else "production mode"
    return Check("settings", OK, f"secrets set, {mode}, home {settings.home}")


# --------------------------------------------------------------------------- database


def check_database(settings: Settings, timeout: float) -> Check:
    """Reachable, and at this release's schema head."""
    from sqlalchemy import create_engine, inspect
    from sqlalchemy.engine import make_url
    from sqlalchemy.pool import NullPool

    from brokerflow.app.backup import known_revision, schema_head, schema_revision

    url = settings.database_url
    shown = make_url(url).render_as_string(hide_password=True)
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:" and not Path(path).is_file():
            return Check("database", FAIL, f"{shown}: no such database file; start "
                         "'brokerflow up' (it creates and migrates it) or fix "
                         "BROKERFLOW_DATABASE_URL")
        engine = create_engine(url, poolclass=NullPool,
                               connect_args={"timeout": timeout})
    else:
        engine = create_engine(url, poolclass=NullPool,
                               connect_args={"connect_timeout": max(1, int(timeout))})
    try:
        with engine.connect() as connection:
            revision = schema_revision(connection)
            tables = inspect(connection).get_table_names()
    except Exception as exc:
        return Check("database", FAIL, f"{shown} is unreachable ({_first_line(exc)}); check "
                     "BROKERFLOW_DATABASE_URL and that the database server runs")
    finally:
        engine.dispose()
    head = schema_head()
    if revision == head:
        return Check("database", OK, f"{shown}, schema at head {head}")
    if revision is None:
        what = "holds no brokerflow schema" if not tables else "has tables but no revision"
        return Check("database", FAIL, f"{shown} {what}; 'brokerflow up' migrates it")
    if not known_revision(revision):
        return Check("database", FAIL, f"{shown} is at schema {revision}, unknown to this "
                     "release (written by a newer brokerflow): upgrade brokerflow")
    return Check("database", WARN, f"{shown} is at schema {revision}, this release at {head}: "
                 "the next 'brokerflow up' (or any command) migrates it; back it up first")


def _first_line(exc: BaseException) -> str:
    """A short reason: an S3 error's code and message, else the first line (≤ 160)."""
    seen: BaseException | None = exc
    while seen is not None:
        code = getattr(seen, "code", None)
        if isinstance(code, str) and code:
            return f"{code}: {getattr(seen, 'message', '') or ''}".rstrip(": ")
        seen = seen.__cause__
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0][:160] if text else type(exc).__name__


# --------------------------------------------------------------------------- document store


def check_store(settings: Settings, timeout: float) -> Check:
    """Reachable; the bucket exists with versioning and Object Lock, or the directory store
    exists and is writable.  Reads only."""
    from brokerflow.archive.stores import open_store

    quick = settings.model_copy(update={"s3_retries": 0, "s3_timeout_seconds": timeout,
                                        "s3_retry_seconds": 0.0})
    store = open_store(quick)
    where = store.location()
    if store.kind == "directory":
        root = Path(where)
        if not root.is_dir():
            return Check("store", FAIL, f"directory store {root} does not exist: start "
                         "'brokerflow up' (it creates it) or set BROKERFLOW_STORE_DIR")
        if not os.access(root, os.W_OK | os.X_OK):
            return Check("store", FAIL, f"directory store {root} is not writable by this "
                         "user: fix its owner or permissions")
    try:
        next(iter(store.versions("brokerflow-doctor/")), None)  # an empty prefix: a probe read
        versioned = store.versioning_enabled()
        mode = store.lock_mode()
    except Exception as exc:
        return Check("store", FAIL, f"{where} is unreachable or has no bucket "
                     f"({_first_line(exc)}); check BROKERFLOW_S3_ENDPOINT and the keys, or "
                     "start 'brokerflow up' (it creates the bucket)")
    if not versioned:
        return Check("store", FAIL, f"{where}: versioning is off; the archive needs a bucket "
                     "made with Object Lock (versioning on): create a new bucket")
    if not mode:
        return Check("store", FAIL, f"{where}: no retention (Object Lock) configured; "
                     "'brokerflow up' prepares the store")
    if store.kind == "directory":
        return Check("store", WARN, f"{where}: directory store, writable, retention {mode} "
                     "recorded; not a legal WORM: production uses MinIO/S3 with Object Lock "
                     "(set BROKERFLOW_S3_ENDPOINT)")
    if mode != "COMPLIANCE" and not settings.dev:
        return Check("store", FAIL, f"{where}: versioning and Object Lock on, default "
                     f"retention {mode}: a privileged user can lift GOVERNANCE retention; "
                     "production keeps records in COMPLIANCE mode ('brokerflow up' sets it)")
    return Check("store", OK, f"{where}: versioning and Object Lock on ({mode}); records "
                 f"retained {settings.retention_years} years each, inputs in "
                 f"{settings.s3_inputs_bucket}")


def check_signing(settings: Settings) -> Check:
    """The branch archive's signing key opens with its passphrase (nothing is archived
    unsigned)."""
    from brokerflow.archive.signing import load_signer
    from brokerflow.kernel.errors import BrokerflowError

    try:
        signer = load_signer(settings)
    except BrokerflowError as exc:
        return Check("signing", FAIL, f"{exc}: documents cannot be archived until it is fixed")
    return Check("signing", OK, f"archive signing key ready (certificate "
                 f"{signer.fingerprint[:16]}…)")


# --------------------------------------------------------------------------- Prefect


def prefect_api_url() -> str:
    """PREFECT_API_URL (the environment, the local stack's ``stack.json``, a profile)."""
    from brokerflow.app.runs import use_local_stack_api

    use_local_stack_api()
    from prefect.settings import PREFECT_API_URL

    return str(PREFECT_API_URL.value() or "")


@contextmanager
def _client(timeout: float) -> Iterator[Any]:
    """A Prefect client that gives up after ``timeout`` (no retries)."""
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_CLIENT_MAX_RETRIES, temporary_settings

    with temporary_settings(updates={PREFECT_CLIENT_MAX_RETRIES: 0}), \
            get_client(httpx_settings={"timeout": timeout}, sync_client=True) as client:
        yield client


def check_prefect(api_url: str, timeout: float) -> Check:
    """The API answers its health check."""
    if not api_url:
        return Check("prefect", FAIL, "no Prefect API configured: start 'brokerflow up', or "
                     "set PREFECT_API_URL to your Prefect server")
    with _client(timeout) as client:
        problem = client.api_healthcheck()
    if problem is not None:
        return Check("prefect", FAIL, f"{api_url} does not answer ({_first_line(problem)}): "
                     "start 'brokerflow up' or fix PREFECT_API_URL")
    return Check("prefect", OK, f"{api_url} healthy")


def check_workers(api_url: str, timeout: float) -> Check:
    """Pool ``brokerflow`` has an online worker, or a serve process polls the deployments."""
    if not api_url:
        return Check("workers", WARN, "not checked: no Prefect API")
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName
    from prefect.exceptions import ObjectNotFound, PrefectHTTPStatusError

    from brokerflow.app.serving import declared_deployments

    names = [d["name"] for d in declared_deployments()]
    try:
        with _client(timeout) as client:
            try:
                workers = client.read_workers_for_work_pool(WORK_POOL)
            except (ObjectNotFound, PrefectHTTPStatusError) as exc:  # no such pool: none
                if getattr(getattr(exc, "response", None), "status_code", 404) != 404:
                    raise
                workers = []
            deployments = client.read_deployments(deployment_filter=DeploymentFilter(
                name=DeploymentFilterName(any_=names)))
    except Exception as exc:
        return Check("workers", WARN, f"not checked: the Prefect API did not answer "
                     f"({_first_line(exc)})")
    online = [w.name for w in workers if str(w.status.value).upper() == "ONLINE"]
    if online:
        return Check("workers", OK, f"pool {WORK_POOL}: {len(online)} worker(s) online "
                     f"({', '.join(sorted(online)[:3])})")
    now = datetime.now(UTC)
    served = [d for d in deployments if not d.work_pool_name and d.last_polled is not None
              and (now - d.last_polled).total_seconds() < SERVE_POLL_FRESH_SECONDS]
    if served:
        return Check("workers", OK, f"no worker in pool {WORK_POOL}; a serve process polls "
                     f"{len(served)} of {len(names)} deployment(s) ('brokerflow up')")
    return Check("workers", WARN, f"no worker polling pool {WORK_POOL} and no serve process "
                 "polling brokerflow's deployments: approvals and closings will not run; "
                 "start 'brokerflow up' (or 'brokerflow serve'), or "
                 f"'prefect worker start --pool {WORK_POOL}'")


# --------------------------------------------------------------------------- fonts, clock


def check_fonts() -> Check:
    """The templates' Chinese font is installed (fontconfig), and the document fonts draw
    every character of CJK Extensions A and B (names may hold them)."""
    from brokerflow.kernel.glyphs import CJK_EXTENSIONS
    from brokerflow.kernel.render import (
        CJK_FONT_PACKAGE,
        FONT_PACKAGES,
        cjk_font_families,
        document_coverage,
    )

    families = cjk_font_families()
    if not families:
        return Check("fonts", FAIL, "no Chinese (CJK) font installed: documents would show "
                     f"empty boxes; apt-get install {CJK_FONT_PACKAGE}")
    matched = ""
    if shutil.which("fc-match"):
        matched = subprocess.run(["fc-match", "-f", "%{family[0]} (%{file})",
                                  f"{TEMPLATE_FONT}:lang=zh"], capture_output=True,
                                 text=True, timeout=10, check=False).stdout.strip()
    if TEMPLATE_FONT not in families:
        return Check("fonts", WARN, f"{TEMPLATE_FONT} (the templates' font) is missing; "
                     f"documents use {matched or families[0]}; apt-get install "
                     f"{CJK_FONT_PACKAGE}")
    coverage = document_coverage()
    gaps = []
    for block, (first, last) in CJK_EXTENSIONS.items():
        lacking = last - first + 1 - coverage.count(first, last)
        gaps.append(f"{block} {'covered' if not lacking else f'lacks {lacking} characters'}")
    if any("lacks" in gap for gap in gaps):
        return Check("fonts", WARN, f"{matched or TEMPLATE_FONT}; {', '.join(gaps)}: names "
                     "with them are refused; apt-get install " + " ".join(FONT_PACKAGES))
    return Check("fonts", OK, f"{matched or TEMPLATE_FONT}; {', '.join(gaps)}")


def server_offset(url: str, timeout: float, headers: dict[str, str] | None = None) -> float:
    """Seconds the server's HTTP ``Date`` is ahead of this machine (±0.5 s resolution)."""
    import httpx

    before = time.time()
    response = httpx.get(url, timeout=timeout, headers=headers or {})
    after = time.time()
    stamp = response.headers.get("date")
    if not stamp:
        raise ValueError(f"{url} sent no Date header")
    server = parsedate_to_datetime(stamp).timestamp() + 0.5  # the header drops fractions
    return server - (before + after) / 2


def check_clock(settings: Settings, api_url: str, timeout: float) -> Check:
    """This machine's clock against the Prefect server's and the S3 endpoint's."""
    parts, statuses = [], []
    sources = []
    if api_url:
        auth = os.environ.get("PREFECT_API_AUTH_STRING")
        headers = {"Authorization": "Basic " + _b64(auth)} if auth else {}
        sources.append(("Prefect", api_url.rstrip("/") + "/health", headers))
    if settings.s3_endpoint:
        sources.append(("S3", settings.s3_endpoint.rstrip("/") + "/", {}))
    if not sources:
        return Check("clock", WARN, "nothing to compare with (no Prefect API, no S3 endpoint)")
    skewed = []
    for label, url, headers in sources:
        try:
            offset = server_offset(url, timeout, headers)
        except Exception as exc:
            parts.append(f"{label} not compared ({_first_line(exc)})")
            statuses.append(WARN)
            continue
        parts.append(f"{label} {round(offset):+d} s")
        if abs(offset) > CLOCK_TOLERANCE_SECONDS:
            skewed.append(label)
            statuses.append(WARN)
    advice = (f"; {' and '.join(skewed)} more than {CLOCK_TOLERANCE_SECONDS:.0f} s apart from "
              "this machine: enable time sync (NTP, e.g. chrony or systemd-timesyncd) on every "
              "machine") if skewed else ""
    return Check("clock", _worst(OK, *statuses), "servers' clocks minus this one's: "
                 + ", ".join(parts) + advice)


def _b64(text: str) -> str:
    import base64

    return base64.b64encode(text.encode()).decode()


# --------------------------------------------------------------------------- all


def run_checks(settings: Settings, *, timeout: float = 5.0) -> list[Check]:
    """Every check, in a fixed order (they run side by side)."""
    try:
        api_url = prefect_api_url()
    except Exception as exc:  # a broken Prefect profile
        api_url = ""
        broken: Check | None = Check("prefect", FAIL, f"Prefect settings unreadable: {exc}")
    else:
        broken = None
    grace = timeout + 2
    checks: list[tuple[str, Callable[[], Check]]] = [
        ("settings", lambda: check_settings(settings)),
        ("database", lambda: check_database(settings, timeout)),
        ("store", lambda: check_store(settings, timeout)),
        ("signing", lambda: check_signing(settings)),
        ("prefect", (lambda: broken) if broken else lambda: check_prefect(api_url, timeout)),
        ("workers", lambda: check_workers(api_url, timeout)),
        ("fonts", check_fonts),
        ("clock", lambda: check_clock(settings, api_url, timeout)),
    ]
    results: list[Check | None] = [None] * len(checks)

    def run(i: int, name: str, check: Callable[[], Check]) -> None:
        results[i] = _timed(name, check, grace)()

    threads = [threading.Thread(target=contextvars.copy_context().run, args=(run, i, name, check),
                                daemon=True) for i, (name, check) in enumerate(checks)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + grace + 1
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    return [result or Check(name, FAIL, f"no answer within {grace:.0f} s")
            for result, (name, _) in zip(results, checks, strict=True)]
