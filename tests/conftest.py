"""Real parts for every test: an S3 endpoint over HTTP on 127.0.0.1 (MinIO when on PATH or
given by BROKERFLOW_S3_ENDPOINT, else moto's standalone server), a Prefect test server (one per
session, started by the first test that needs it), and a fresh SQLite file per test -- or, with
BROKERFLOW_TEST_DATABASE=postgres, a fresh PostgreSQL database per test (a throwaway local
cluster, or the server of BROKERFLOW_TEST_POSTGRES_URL)."""

from __future__ import annotations

import itertools
import os
import secrets
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ["DO_NOT_TRACK"] = "1"  # Prefect's client-side telemetry: no network here
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")

# Prefect configures logging when first imported; imported here, before any test captures
# output, its console handlers write to the real stderr (imported inside a test, they would
# keep that test's captured stream, closed after it: a later warning would print a
# "Logging error" traceback into another test's output)
import prefect.main  # noqa: E402, F401

from brokerflow.app.cli import main as cli_main  # noqa: E402
from brokerflow.app.postgres import LocalCluster, find_bindir  # noqa: E402
from brokerflow.app.s3server import free_port, start_local_s3  # noqa: E402
from brokerflow.archive.service import Archive, open_archive  # noqa: E402
from brokerflow.archive.signing import ensure_archive_keys  # noqa: E402
from brokerflow.kernel.db import new_session  # noqa: E402
from brokerflow.kernel.errors import MissingPostgres  # noqa: E402
from brokerflow.kernel.identity import UserView  # noqa: E402
from brokerflow.kernel.render import DocumentRenderer  # noqa: E402
from brokerflow.kernel.roster import get_user_view, load_roster  # noqa: E402
from brokerflow.kernel.settings import Settings, load_settings  # noqa: E402
from tests.support.paths import ROSTER_CSV  # noqa: E402

TEST_S3_ACCESS_KEY = "brokerflow-test"
TEST_S3_SECRET_KEY = "brokerflow-test-secret-0123456789"
_bucket_numbers = itertools.count(1)


@dataclass(frozen=True)
class S3Endpoint:
    url: str
    access_key: str
    secret_key: str
    kind: str


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Endpoint]:
    """One S3 endpoint for the whole session; each test gets its own bucket."""
    external = os.environ.get("BROKERFLOW_S3_ENDPOINT")
    if external:
        yield S3Endpoint(external, os.environ["BROKERFLOW_S3_ACCESS_KEY"],
                         os.environ["BROKERFLOW_S3_SECRET_KEY"], "external")
        return
    server = start_local_s3(kind="minio" if shutil.which("minio") else "moto",
                            data_dir=tmp_path_factory.mktemp("s3"),
                            access_key=TEST_S3_ACCESS_KEY, secret_key=TEST_S3_SECRET_KEY)
    yield S3Endpoint(server.endpoint, TEST_S3_ACCESS_KEY, TEST_S3_SECRET_KEY, server.kind)
    server.stop()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A PostgreSQL database: BROKERFLOW_TEST_POSTGRES_URL, else a throwaway cluster of
    ``brokerflow.app.postgres`` (the one ``up --postgres`` runs; no fsync); skipped when the
    server binaries are not installed."""
    given = os.environ.get("BROKERFLOW_TEST_POSTGRES_URL")
    if given:
        yield given
        return
    try:
        bindir = find_bindir()
    except MissingPostgres as exc:
        if chosen_test_database() == "postgres":  # asked for: never a vacuous green run
            pytest.fail(f"BROKERFLOW_TEST_DATABASE=postgres: {exc}")
        pytest.skip("no PostgreSQL server installed (apt-get install postgresql)")
    base = Path(tempfile.mkdtemp(prefix="bf-pg-"))  # pytest's tmp is root-only; short: socket
    # on 127.0.0.1 as well: a plain URL that helpers may turn into another database's
    cluster = LocalCluster(base / "pg", bindir=bindir, durable=False, tcp_port=free_port())
    password = secrets.token_urlsafe(18)
    cluster.init(password)
    cluster.start()
    try:
        yield cluster.url("postgres", password)
    finally:
        cluster.stop()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def postgres_database(postgres_url: str) -> Iterator[str]:
    """A new, empty PostgreSQL database for one test (dropped after it)."""
    import sqlalchemy
    from sqlalchemy.engine import make_url

    name = f"bf_test_{os.getpid()}_{next(_bucket_numbers)}"
    admin = sqlalchemy.create_engine(postgres_url, isolation_level="AUTOCOMMIT",
                                     poolclass=sqlalchemy.NullPool)
    with admin.connect() as connection:
        connection.exec_driver_sql(f"CREATE DATABASE {name}")
    yield make_url(postgres_url).set(database=name).render_as_string(hide_password=False)
    with admin.connect() as connection:  # the test's own connections end with it
        connection.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    admin.dispose()


@pytest.fixture(scope="session")
def prefect_api() -> Iterator[None]:
    """A real Prefect API server (SQLite) for the session."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield


def chosen_test_database() -> str:
    """The database the tests' ``env`` gives each test: ``sqlite`` (a file, the default) or
    ``postgres`` (a new database of ``postgres_url``'s server), by BROKERFLOW_TEST_DATABASE."""
    chosen = os.environ.get("BROKERFLOW_TEST_DATABASE", "sqlite").strip().lower()
    if chosen not in ("sqlite", "postgres"):
        raise pytest.UsageError(f"BROKERFLOW_TEST_DATABASE={chosen!r}: sqlite or postgres")
    return chosen


@pytest.fixture
def own_database_url(tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """This test's own, empty database: a SQLite file, or with BROKERFLOW_TEST_DATABASE=postgres
    a new PostgreSQL database."""
    if chosen_test_database() == "postgres":
        url: str = request.getfixturevalue("postgres_database")
        return url
    return f"sqlite:///{tmp_path / 'brokerflow.db'}"


@pytest.fixture
def env(
    tmp_path: Path, s3_endpoint: S3Endpoint, monkeypatch: pytest.MonkeyPatch,
    own_database_url: str,
) -> dict[str, str]:
    """BROKERFLOW_* variables for this test: own home, database (``own_database_url``) and
    bucket."""
    values = {
        "BROKERFLOW_HOME": str(tmp_path / "home"),
        "BROKERFLOW_DATABASE_URL": own_database_url,
        "BROKERFLOW_S3_ENDPOINT": s3_endpoint.url,
        "BROKERFLOW_S3_ACCESS_KEY": s3_endpoint.access_key,
        "BROKERFLOW_S3_SECRET_KEY": s3_endpoint.secret_key,
        "BROKERFLOW_S3_BUCKET": f"bf-test-{os.getpid()}-{next(_bucket_numbers)}",
        "BROKERFLOW_SECRET_KEY": "test-secret-key-not-for-production",
        "BROKERFLOW_ID_HASH_KEY": "test-id-hash-key-not-for-production",
        "BROKERFLOW_AUDIT_KEY": "test-audit-key-not-for-production-0123",
        "BROKERFLOW_TOTP_KEY": "test-totp-key-not-for-production-01234",
        "BROKERFLOW_SIGNING_KEY_PASSPHRASE": "test-signing-passphrase-not-for-production",
        "BROKERFLOW_S3_RETRIES": "1",
        "BROKERFLOW_S3_TIMEOUT_SECONDS": "5",
        "BROKERFLOW_S3_RETRY_SECONDS": "4",
        "BROKERFLOW_ARCHIVE_RETRIES": "1",
        "BROKERFLOW_ARCHIVE_RETRY_DELAY_SECONDS": "0.5",
    }
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    for key in ("BROKERFLOW_USER", "BROKERFLOW_SECRET", "BROKERFLOW_DEV"):
        monkeypatch.delenv(key, raising=False)
    ensure_archive_keys(load_settings(check_secrets=False))  # as 'brokerflow up' does
    return values


@pytest.fixture
def development(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Development mode (``BROKERFLOW_DEV=1``), labelled where a test uses it: the sample
    signers sign with their static secrets (``pw-<user>``) instead of one-time codes, and
    closings may read worker paths.  Production signing is tests/test_security.py's and
    tests/test_prefect_ui.py's."""
    monkeypatch.setenv("BROKERFLOW_DEV", "1")


@pytest.fixture
def settings(env: dict[str, str]) -> Settings:
    return load_settings()


@pytest.fixture
def archive(settings: Settings) -> Archive:
    return open_archive(settings)


@pytest.fixture
def roster(archive: Archive) -> None:
    """The sample roster (brokerflow/sample/roster.csv) loaded into this test's database."""
    with new_session(archive.engine) as session:
        load_roster(session, path=ROSTER_CSV, actor=None)
        session.commit()


@pytest.fixture
def user(archive: Archive, roster: None) -> Callable[[str], UserView]:
    def lookup(user_id: str) -> UserView:
        with new_session(archive.engine) as session:
            view = get_user_view(session, user_id)
        assert view is not None, user_id
        return view

    return lookup


@pytest.fixture(scope="session")
def renderer() -> DocumentRenderer:
    return DocumentRenderer()


@pytest.fixture(scope="session")
def make_pdf(renderer: DocumentRenderer) -> Callable[..., bytes]:
    """A real PDF (rendered EXT cover sheet) with the given subject."""

    def make(subject: str = "外部文件", branch: str = "SZ01", serial: str = "") -> bytes:
        return renderer.render_pdf(
            "EXT", {"branch": branch, "subject": subject, "serial": serial,
                    "body": {"note": subject}})

    return make


@dataclass
class CliResult:
    code: int
    out: str
    err: str
    out_bytes: bytes = b""


@pytest.fixture
def cli(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsysbinary: pytest.CaptureFixture[bytes]
) -> Callable[..., CliResult]:
    """Run ``brokerflow ARGS`` in-process, acting as ``user`` with ``secret``."""

    def run(*argv: str, user: str | None = None, secret: str | None = None) -> CliResult:
        if secret is None and user is not None:
            secret = f"pw-{user}"
        if secret is not None:
            monkeypatch.setenv("BROKERFLOW_SECRET", secret)
        else:
            monkeypatch.delenv("BROKERFLOW_SECRET", raising=False)
        args = list(argv) + (["--as", user] if user else [])
        capsysbinary.readouterr()
        code = cli_main(args)
        captured = capsysbinary.readouterr()
        return CliResult(code, captured.out.decode(errors="replace"),
                         captured.err.decode(errors="replace"), captured.out)

    return run


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    """End the test process right after pytest is done, skipping interpreter finalization.

    Once (1 of 6 full runs, all 131 tests passed and reported) this process aborted in
    finalization with no message, turning a green run red.  Everything the session started
    has been stopped by its fixtures by now; the exit status is pytest's own.
    """
    status = getattr(config, "_brokerflow_exitstatus", None)
    if status is None or os.environ.get("BROKERFLOW_TEST_NORMAL_EXIT") == "1":
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(int(status))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    session.config._brokerflow_exitstatus = exitstatus  # type: ignore[attr-defined]
